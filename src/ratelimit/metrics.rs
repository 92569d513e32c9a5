//! Prometheus metrics of the limiter, in the default registry, registered on first use.
//!
//! - `portcullis_ratelimit_decisions_total{policy,tier,result}`: `tier` is `base` or `tier<N>`
//!   (index in the policy's `tiers`), `result` is `allowed` or `limited`.
//! - `portcullis_redis_errors_total{kind}`: `timeout`, `connection`, `server`, `reply`, or
//!   `unavailable` (skipped while the breaker is open).
//! - `portcullis_redis_call_duration_seconds`: every Redis round trip, errors included.
//! - `portcullis_ratelimit_syncs_total{policy,result}`, `portcullis_ratelimit_sync_keys_total
//!   {policy}`: batched syncs of `sync_interval` policies and the keys they carried (Redis
//!   commands = keys + 4 heartbeat commands per sync);
//!   `portcullis_ratelimit_sync_lag_seconds{policy}`: since the last successful sync;
//!   `portcullis_ratelimit_sync_instances{policy}`: instances sharing the policy;
//!   `portcullis_ratelimit_over_admission{policy}`: requests the fleet admitted beyond the
//!   bucket, as the last sync saw it (the largest debt of a key; repaid by later refusals).
//! - `portcullis_concurrency_in_flight{policy}`: requests holding a slot of a `concurrency`
//!   policy now (one label per policy, so the label set is bounded by the configuration).
//!
//! A name already taken in the registry is logged, never a panic: the metric then still counts,
//! unexported.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use std::sync::LazyLock;

static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "portcullis_ratelimit_decisions_total",
            "Rate-limit decisions by policy, tier and result",
        ),
        &["policy", "tier", "result"],
    )
    .expect("static metric definition");
    register(Box::new(counter.clone()));
    counter
});

static REDIS_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "portcullis_redis_errors_total",
            "Failed rate-limit calls to Redis, by kind",
        ),
        &["kind"],
    )
    .expect("static metric definition");
    register(Box::new(counter.clone()));
    counter
});

static REDIS_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    let histogram = Histogram::with_opts(
        HistogramOpts::new(
            "portcullis_redis_call_duration_seconds",
            "Duration of rate-limit calls to Redis",
        )
        .buckets(vec![
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
        ]),
    )
    .expect("static metric definition");
    register(Box::new(histogram.clone()));
    histogram
});

static IN_FLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "portcullis_concurrency_in_flight",
            "Requests holding a slot of a concurrency policy",
        ),
        &["policy"],
    )
    .expect("static metric definition");
    register(Box::new(gauge.clone()));
    gauge
});

static SYNCS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "portcullis_ratelimit_syncs_total",
            "Batched syncs of sync_interval policies",
        ),
        &["policy", "result"],
    )
    .expect("static metric definition");
    register(Box::new(counter.clone()));
    counter
});

static SYNC_KEYS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "portcullis_ratelimit_sync_keys_total",
            "Keys carried by syncs",
        ),
        &["policy"],
    )
    .expect("static metric definition");
    register(Box::new(counter.clone()));
    counter
});

static SYNC_GAUGES: LazyLock<[prometheus::GaugeVec; 2]> = LazyLock::new(|| {
    let lag = prometheus::GaugeVec::new(
        Opts::new(
            "portcullis_ratelimit_sync_lag_seconds",
            "Seconds since the last successful sync",
        ),
        &["policy"],
    )
    .expect("static metric definition");
    let over = prometheus::GaugeVec::new(
        Opts::new(
            "portcullis_ratelimit_over_admission",
            "Requests admitted beyond the bucket by the fleet, at the last sync",
        ),
        &["policy"],
    )
    .expect("static metric definition");
    register(Box::new(lag.clone()));
    register(Box::new(over.clone()));
    [lag, over]
});

static SYNC_INSTANCES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "portcullis_ratelimit_sync_instances",
            "Gateway instances sharing a synced policy, as the last sync saw them",
        ),
        &["policy"],
    )
    .expect("static metric definition");
    register(Box::new(gauge.clone()));
    gauge
});

/// The metrics of one synced policy, resolved once.
#[derive(Debug, Clone)]
pub struct SyncCounters {
    ok: IntCounter,
    failed: IntCounter,
    keys: IntCounter,
    pub lag_seconds: prometheus::Gauge,
    pub over_admission: prometheus::Gauge,
    pub instances: IntGauge,
}

impl SyncCounters {
    pub fn new(policy: &str) -> Self {
        SyncCounters {
            ok: SYNCS.with_label_values(&[policy, "ok"]),
            failed: SYNCS.with_label_values(&[policy, "failed"]),
            keys: SYNC_KEYS.with_label_values(&[policy]),
            lag_seconds: SYNC_GAUGES[0].with_label_values(&[policy]),
            over_admission: SYNC_GAUGES[1].with_label_values(&[policy]),
            instances: SYNC_INSTANCES.with_label_values(&[policy]),
        }
    }

    pub fn record(&self, ok: bool, keys: usize) {
        if ok {
            self.ok.inc();
            self.keys.inc_by(keys as u64);
        } else {
            self.failed.inc();
        }
    }
}

/// The in-flight gauge of concurrency policy `policy`.
pub fn in_flight(policy: &str) -> IntGauge {
    IN_FLIGHT.with_label_values(&[policy])
}

fn register(collector: Box<dyn prometheus::core::Collector>) {
    if let Err(error) = prometheus::register(collector) {
        tracing::warn!(%error, "rate-limit metric not registered");
    }
}

/// The counters of one policy, resolved once so that a check only does an atomic add.
#[derive(Debug, Clone)]
pub struct PolicyCounters {
    /// `[allowed, limited]` for the base rate, then for each tier.
    by_tier: Vec<[IntCounter; 2]>,
}

impl PolicyCounters {
    pub fn new(policy: &str, tiers: usize) -> Self {
        let by_tier = (0..=tiers)
            .map(|index| {
                let tier = if index == 0 {
                    "base".to_owned()
                } else {
                    format!("tier{}", index - 1)
                };
                ["allowed", "limited"].map(|r| DECISIONS.with_label_values(&[policy, &tier, r]))
            })
            .collect();
        PolicyCounters { by_tier }
    }

    #[inline]
    pub fn record(&self, tier: Option<usize>, allowed: bool) {
        let row = tier.map_or(0, |t| t + 1).min(self.by_tier.len() - 1);
        self.by_tier[row][usize::from(!allowed)].inc();
    }
}

/// Counts a failed Redis call.
pub fn redis_error(kind: &'static str) {
    REDIS_ERRORS.with_label_values(&[kind]).inc();
}

/// Records the duration of one Redis call.
pub fn redis_call(seconds: f64) {
    REDIS_DURATION.observe(seconds);
}
