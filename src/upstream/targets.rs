//! The targets of one upstream pool: a configured `host:port` ([`Target`]), its resolution
//! into addresses ([`TargetDiscovery`], run by pingora-load-balancing's `Backends`), and one
//! resolved address as the request path sees it ([`ResolvedTarget`]: the address, its
//! membership entry for the active health check, and its passive failure state).

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A configured target, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// Why an upstream target is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target `{text}` needs a port, e.g. `{text}:80`")]
    MissingPort { text: String },
    #[error("target `{text}`: `{port}` is not a valid port")]
    InvalidPort { text: String, port: String },
    #[error("target `{text}`: `{host}` is not a host name or IP address")]
    InvalidHost { text: String, host: String },
}

impl Target {
    /// Parses `host:port` or `[v6]:port`; the port is required.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| TargetError::MissingPort { text: text.into() })?;
        let port: u16 = port.parse().map_err(|_| TargetError::InvalidPort {
            text: text.into(),
            port: port.into(),
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
            return Err(TargetError::InvalidHost {
                text: text.into(),
                host: host.into(),
            });
        }
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }
}

/// Passive failure state of one resolved address, kept across resolutions.
#[derive(Debug, Default)]
pub struct PassiveState {
    consecutive_failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the target is set aside (0 = usable).
    set_aside_until_ms: AtomicU64,
}

impl PassiveState {
    /// Counts a failed connection; `true` when this one reaches `max_failures` in a row, and
    /// the target is then set aside until `until_ms`.
    pub fn record_failure(&self, max_failures: u32, until_ms: u64) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < max_failures {
            return false;
        }
        self.set_aside_until_ms.store(until_ms, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        true
    }

    /// Counts a successful connection (a write only when there were failures to forget).
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the target is set aside at `now_ms()`; the clock is read only for a target that
    /// has been set aside at some point.
    pub fn set_aside(&self, now_ms: impl FnOnce() -> u64) -> bool {
        let until = self.set_aside_until_ms.load(Ordering::Relaxed);
        until != 0 && until > now_ms()
    }
}

/// One resolved address of a pool, as selection hands it to a request.
#[derive(Debug)]
pub struct ResolvedTarget {
    pub address: SocketAddr,
    /// The membership entry the active health check keys its verdict by.
    pub backend: Backend,
    pub passive: Arc<PassiveState>,
}

impl ResolvedTarget {
    /// The targets of a resolved membership, in its (address) order; a backend without an
    /// internet address or passive state (discovery always gives both) is left out.
    pub fn all_of(backends: &BTreeSet<Backend>) -> Vec<Arc<ResolvedTarget>> {
        backends
            .iter()
            .filter_map(|backend| {
                Some(Arc::new(ResolvedTarget {
                    address: *backend.addr.as_inet()?,
                    passive: backend.ext.get::<Arc<PassiveState>>()?.clone(),
                    backend: backend.clone(),
                }))
            })
            .collect()
    }
}

/// Resolves the configured targets; keeps each address's passive state across resolutions.
pub struct TargetDiscovery {
    targets: Vec<Target>,
    passive: Mutex<HashMap<SocketAddr, Arc<PassiveState>>>,
}

impl TargetDiscovery {
    pub fn new(targets: Vec<Target>) -> Self {
        TargetDiscovery {
            targets,
            passive: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl ServiceDiscovery for TargetDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut addresses = Vec::new();
        for target in &self.targets {
            match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(resolved) => addresses.extend(resolved),
                Err(e) => {
                    tracing::warn!(host = %target.host, error = %e, "cannot resolve upstream target")
                }
            }
        }
        let mut passive = self.passive.lock().unwrap_or_else(|p| p.into_inner());
        let mut backends = BTreeSet::new();
        for address in addresses {
            let state = passive.entry(address).or_default().clone();
            let mut backend = Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(address),
                weight: 1,
                ext: Default::default(),
            };
            backend.ext.insert(state);
            backends.insert(backend);
        }
        Ok((backends, HashMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_host_and_port() {
        assert_eq!(
            Target::parse("127.0.0.1:9001").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 9001
            }
        );
        assert_eq!(Target::parse("[::1]:80").unwrap().host, "::1");
        assert_eq!(Target::parse("reports.internal:443").unwrap().port, 443);
        assert!(Target::parse("reports.internal")
            .unwrap_err()
            .to_string()
            .contains("needs a port"));
        assert!(Target::parse("host:http")
            .unwrap_err()
            .to_string()
            .contains("not a valid port"));
        assert!(Target::parse(":80").is_err());
    }

    #[test]
    fn a_target_is_set_aside_after_max_failures_in_a_row() {
        let state = PassiveState::default();
        assert!(!state.set_aside(|| 1), "a new target is usable");
        assert!(!state.record_failure(3, 500));
        assert!(!state.record_failure(3, 500));
        state.record_success();
        assert!(
            !state.record_failure(3, 500),
            "a success starts the count again"
        );
        assert!(!state.record_failure(3, 500));
        assert!(state.record_failure(3, 500), "the third failure in a row");
        assert!(state.set_aside(|| 499));
        assert!(
            !state.set_aside(|| 500),
            "usable again when fail_timeout is over"
        );
        assert!(
            !state.record_failure(3, 900),
            "the count starts again after setting aside"
        );
    }

    #[test]
    fn the_clock_is_read_only_for_a_target_once_set_aside() {
        let state = PassiveState::default();
        assert!(!state.set_aside(|| panic!("no clock read for a healthy target")));
    }

    #[test]
    fn target_error_suggests_a_port() {
        assert_eq!(
            Target::parse("reports.internal").unwrap_err().to_string(),
            "target `reports.internal` needs a port, e.g. `reports.internal:80`"
        );
    }
}
