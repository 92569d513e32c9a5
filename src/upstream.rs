//! Upstream target pools: round robin over resolved targets (pingora-load-balancing), active
//! health checks, passive failure handling and the per-request peer (timeouts, TLS, SNI).
//!
//! Host names are resolved by a [`TargetDiscovery`] when the pool starts and again every
//! `RESOLVE_INTERVAL`, never in `validate` and never on the request path. A target that fails
//! `max_failures` connections in a row is set aside for `fail_timeout` (passive check); the
//! active check (TCP connect or HTTP GET) runs every `interval` on the control-plane runtime.

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often host names are resolved again.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

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

/// Everything about an upstream that comes from the file; equal settings mean a reload may
/// keep the running pool.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub name: String,
    pub targets: Vec<Target>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls: Option<UpstreamTls>,
    pub health: HealthSettings,
    pub max_failures: u32,
    pub fail_timeout: Duration,
    pub host_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    pub sni: String,
    pub verify: bool,
    pub http2: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// `None`: TCP connect check; `Some(path)`: HTTP GET, 2xx expected.
    pub http_path: Option<String>,
    pub interval: Duration,
    pub healthy_after: usize,
    pub unhealthy_after: usize,
}

/// Passive failure state of one resolved address.
#[derive(Debug, Default)]
pub struct PassiveState {
    consecutive_failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the target is set aside (0 = usable).
    set_aside_until_ms: AtomicU64,
}

/// Resolves the configured targets; keeps each address's passive state across resolutions.
pub struct TargetDiscovery {
    targets: Vec<Target>,
    passive: Mutex<HashMap<SocketAddr, Arc<PassiveState>>>,
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

/// A running upstream pool.
pub struct Upstream {
    pub settings: UpstreamSettings,
    balancer: LoadBalancer<RoundRobin>,
    epoch: Instant,
}

impl Upstream {
    /// Builds the pool; no network activity until [`Upstream::start`].
    pub fn new(settings: UpstreamSettings) -> Arc<Self> {
        let discovery = TargetDiscovery {
            targets: settings.targets.clone(),
            passive: Mutex::new(HashMap::new()),
        };
        let mut balancer = LoadBalancer::from_backends(Backends::new(Box::new(discovery)));
        let health = &settings.health;
        match &health.http_path {
            Some(path) => {
                let host = settings
                    .host_header
                    .clone()
                    .or_else(|| settings.tls.as_ref().map(|t| t.sni.clone()))
                    .unwrap_or_else(|| settings.targets[0].host.clone());
                let mut check = HttpHealthCheck::new(&host, settings.tls.is_some());
                if let Ok(request) =
                    pingora::http::RequestHeader::build("GET", path.as_bytes(), None)
                {
                    check.req = request;
                    let _ = check.req.insert_header("host", host.as_str());
                }
                check.consecutive_success = health.healthy_after;
                check.consecutive_failure = health.unhealthy_after;
                check.validator = Some(Box::new(|response| {
                    if response.status.is_success() {
                        Ok(())
                    } else {
                        pingora::Error::e_explain(
                            pingora::ErrorType::HTTPStatus(response.status.as_u16()),
                            "health check expects 2xx",
                        )
                    }
                }));
                if let Some(tls) = &settings.tls {
                    check.peer_template.options.verify_cert = tls.verify;
                    check.peer_template.options.verify_hostname = tls.verify;
                }
                balancer.set_health_check(Box::new(check));
            }
            None => {
                let mut check = TcpHealthCheck::new();
                check.consecutive_success = health.healthy_after;
                check.consecutive_failure = health.unhealthy_after;
                balancer.set_health_check(check);
            }
        }
        Arc::new(Upstream {
            settings,
            balancer,
            epoch: Instant::now(),
        })
    }

    /// Resolves the targets once (so the pool can serve), then keeps resolving and
    /// health-checking on `runtime` until the pool is dropped.
    pub async fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if let Err(e) = self.balancer.update().await {
            tracing::warn!(upstream = %self.settings.name, error = %e, "upstream discovery failed");
        }
        let weak: Weak<Upstream> = Arc::downgrade(self);
        let interval = self.settings.health.interval;
        runtime.spawn(async move {
            let mut last_resolve = Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                let Some(upstream) = weak.upgrade() else {
                    return;
                };
                if last_resolve.elapsed() >= RESOLVE_INTERVAL {
                    last_resolve = Instant::now();
                    let _ = upstream.balancer.update().await;
                }
                upstream.balancer.backends().run_health_check(true).await;
            }
        });
    }

    /// The next target by round robin that is healthy, not set aside and not in `tried`.
    /// When every target is down, any untried target is returned rather than failing outright.
    pub fn select(&self, tried: &[SocketAddr]) -> Option<Backend> {
        let count = self.settings.targets.len().max(1) * 4;
        let now = self.now_ms();
        let untried = |backend: &Backend| {
            backend
                .addr
                .as_inet()
                .is_none_or(|address| !tried.contains(address))
        };
        self.balancer
            .select_with(b"", count, |backend, healthy| {
                healthy && untried(backend) && !Self::set_aside(backend, now)
            })
            .or_else(|| self.balancer.select_with(b"", count, |b, _| untried(b)))
    }

    fn set_aside(backend: &Backend, now_ms: u64) -> bool {
        backend
            .ext
            .get::<Arc<PassiveState>>()
            .is_some_and(|s| s.set_aside_until_ms.load(Ordering::Relaxed) > now_ms)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Records a failed connection; after `max_failures` in a row the target is set aside.
    pub fn report_failure(&self, backend: &Backend) {
        if let Some(state) = backend.ext.get::<Arc<PassiveState>>() {
            let failures = state.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= self.settings.max_failures {
                let until = self.now_ms() + self.settings.fail_timeout.as_millis() as u64;
                state.set_aside_until_ms.store(until, Ordering::Relaxed);
                state.consecutive_failures.store(0, Ordering::Relaxed);
                tracing::warn!(upstream = %self.settings.name, target = %backend.addr,
                    "target set aside after {failures} failed connections");
            }
        }
    }

    /// Records a successful connection.
    pub fn report_success(&self, backend: &Backend) {
        if let Some(state) = backend.ext.get::<Arc<PassiveState>>() {
            if state.consecutive_failures.load(Ordering::Relaxed) != 0 {
                state.consecutive_failures.store(0, Ordering::Relaxed);
            }
        }
    }

    /// How many resolved targets the active check currently considers healthy.
    pub fn healthy_targets(&self) -> usize {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .count()
    }

    /// The peer to connect to for one request.
    pub fn peer(&self, backend: &Backend) -> HttpPeer {
        let settings = &self.settings;
        let (tls, sni) = match &settings.tls {
            Some(tls) => (true, tls.sni.clone()),
            None => (false, String::new()),
        };
        let mut peer = HttpPeer::new(backend.addr.clone(), tls, sni);
        let options = &mut peer.options;
        options.connection_timeout = Some(settings.connect_timeout);
        options.read_timeout = Some(settings.read_timeout);
        options.write_timeout = Some(settings.write_timeout);
        options.idle_timeout = Some(settings.idle_timeout);
        if let Some(tls) = &settings.tls {
            options.verify_cert = tls.verify;
            options.verify_hostname = tls.verify;
            options.alpn = if tls.http2 { ALPN::H2H1 } else { ALPN::H1 };
        }
        peer
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
    fn target_error_suggests_a_port() {
        assert_eq!(
            Target::parse("reports.internal").unwrap_err().to_string(),
            "target `reports.internal` needs a port, e.g. `reports.internal:80`"
        );
    }
}
