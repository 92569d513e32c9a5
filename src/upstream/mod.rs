//! Upstream target pools: round robin over resolved targets, active health checks
//! (pingora-load-balancing's `Backends`), passive failure handling and the per-request peer
//! (timeouts, TLS, SNI).
//!
//! Host names are resolved by a [`TargetDiscovery`] when the pool starts and again every
//! `RESOLVE_INTERVAL`, never in `validate` and never on the request path. A target that fails
//! `max_failures` connections in a row is set aside for `fail_timeout` (passive check); the
//! active check (TCP connect or HTTP GET) runs every `interval` on the control-plane runtime.
//! Selection reads a snapshot of the resolved targets, rebuilt when membership changes, so a
//! request allocates nothing to pick one (a pool of one target reads no counter either).

mod targets;

pub use targets::{PassiveState, ResolvedTarget, Target, TargetDiscovery, TargetError};

use arc_swap::ArcSwap;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backends;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often host names are resolved again.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

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

/// A running upstream pool.
pub struct Upstream {
    pub settings: UpstreamSettings,
    /// Resolution and the active health check's verdicts.
    backends: Backends,
    /// The resolved targets in address order, replaced when resolution changes membership.
    targets: ArcSwap<Vec<Arc<ResolvedTarget>>>,
    /// Round-robin position.
    next: AtomicUsize,
    epoch: Instant,
}

impl Upstream {
    /// Builds the pool; no network activity until [`Upstream::start`].
    pub fn new(settings: UpstreamSettings) -> Arc<Self> {
        let discovery = TargetDiscovery::new(settings.targets.clone());
        let mut backends = Backends::new(Box::new(discovery));
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
                backends.set_health_check(Box::new(check));
            }
            None => {
                let mut check = TcpHealthCheck::new();
                check.consecutive_success = health.healthy_after;
                check.consecutive_failure = health.unhealthy_after;
                backends.set_health_check(check);
            }
        }
        Arc::new(Upstream {
            settings,
            backends,
            targets: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        })
    }

    /// Resolves the targets once (so the pool can serve), then keeps resolving and
    /// health-checking on `runtime` until the pool is dropped.
    pub async fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if let Err(e) = self.resolve().await {
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
                    let _ = upstream.resolve().await;
                }
                upstream.backends.run_health_check(true).await;
            }
        });
    }

    /// Resolves the targets; a change of membership replaces the selection snapshot.
    async fn resolve(&self) -> pingora::Result<()> {
        self.backends
            .update(|backends| {
                self.targets
                    .store(Arc::new(ResolvedTarget::all_of(&backends)));
            })
            .await
    }

    /// The next target by round robin that is healthy, not set aside and not in `tried`.
    /// When every target is down, the first untried one in turn is returned rather than
    /// failing outright.
    pub fn select(&self, tried: &[SocketAddr]) -> Option<Arc<ResolvedTarget>> {
        let targets = self.targets.load();
        let count = targets.len();
        let start = match count {
            0 => return None,
            1 => 0,
            _ => self.next.fetch_add(1, Ordering::Relaxed) % count,
        };
        let mut fallback = None;
        for offset in 0..count {
            let target = &targets[(start + offset) % count];
            if tried.contains(&target.address) {
                continue;
            }
            if self.backends.ready(&target.backend) && !target.passive.set_aside(|| self.now_ms()) {
                return Some(Arc::clone(target));
            }
            fallback.get_or_insert(target);
        }
        fallback.map(Arc::clone)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Records a failed connection; after `max_failures` in a row the target is set aside.
    pub fn report_failure(&self, target: &ResolvedTarget) {
        let settings = &self.settings;
        let until = self.now_ms() + settings.fail_timeout.as_millis() as u64;
        if target.passive.record_failure(settings.max_failures, until) {
            tracing::warn!(upstream = %settings.name, target = %target.address,
                "target set aside after {} failed connections", settings.max_failures);
        }
    }

    /// Records a successful connection.
    pub fn report_success(&self, target: &ResolvedTarget) {
        target.passive.record_success();
    }

    /// How many resolved targets the active check currently considers healthy.
    pub fn healthy_targets(&self) -> usize {
        let targets = self.targets.load();
        targets
            .iter()
            .filter(|target| self.backends.ready(&target.backend))
            .count()
    }

    /// The peer to connect to for one request.
    pub fn peer(&self, target: &ResolvedTarget) -> HttpPeer {
        let settings = &self.settings;
        let (tls, sni) = match &settings.tls {
            Some(tls) => (true, tls.sni.clone()),
            None => (false, String::new()),
        };
        let mut peer = HttpPeer::new(target.address, tls, sni);
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
