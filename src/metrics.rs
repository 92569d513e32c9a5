//! Prometheus metrics of the request path, the configuration and the upstreams, registered once
//! in the default registry (`/metrics` on the admin listener serves it). Names follow the
//! Prometheus conventions: `_total` counters, `_seconds` histograms, base units.

use prometheus::{
    register_gauge_vec, register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, GaugeVec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::OnceLock;

/// Every metric this module owns.
pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub config_loaded: GaugeVec,
    pub upstream_healthy_targets: IntGaugeVec,
    pub access_log_dropped: IntCounterVec,
    pub connections_open: IntGauge,
    pub connections_closed: IntCounterVec,
    pub auth_decisions: IntCounterVec,
    pub jwks_fetches: IntCounterVec,
    pub jwks_keys: IntGaugeVec,
    pub jwks_last_success: GaugeVec,
    pub token_cache: IntCounterVec,
    pub sign_in_events: IntCounterVec,
    pub sign_in_sessions: IntGauge,
    pub introspections: IntCounterVec,
    pub spans_dropped: prometheus::IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide metrics (registered on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        requests: register_int_counter_vec!(
            "portcullis_requests_total",
            "Requests by route, method and status class",
            &["route", "method", "status"]
        )
        .expect("metric registers once"),
        request_duration: register_histogram_vec!(
            "portcullis_request_duration_seconds",
            "Time from request to the end of the response, by route",
            &["route"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("metric registers once"),
        upstream_duration: register_histogram_vec!(
            "portcullis_upstream_duration_seconds",
            "Time from choosing an upstream target to its response header, by route",
            &["route"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("metric registers once"),
        config_reloads: register_int_counter_vec!(
            "portcullis_config_reloads_total",
            "Configuration reloads by result (success, invalid)",
            &["result"]
        )
        .expect("metric registers once"),
        config_info: register_int_gauge_vec!(
            "portcullis_config_info",
            "The active configuration (value 1), labelled with the hash of its text",
            &["hash"]
        )
        .expect("metric registers once"),
        config_loaded: register_gauge_vec!(
            "portcullis_config_loaded_timestamp_seconds",
            "When the active configuration was loaded (Unix time)",
            &[]
        )
        .expect("metric registers once"),
        upstream_healthy_targets: register_int_gauge_vec!(
            "portcullis_upstream_healthy_targets",
            "Targets the health check considers healthy, by upstream",
            &["upstream"]
        )
        .expect("metric registers once"),
        access_log_dropped: register_int_counter_vec!(
            "portcullis_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind",
            &[]
        )
        .expect("metric registers once"),
        connections_open: register_int_gauge!(
            "portcullis_client_connections_open",
            "Client connections open now (counted against server.max_connections)"
        )
        .expect("metric registers once"),
        connections_closed: register_int_counter_vec!(
            "portcullis_client_connections_closed_total",
            "Client connections the gateway closed: header_timeout, idle_timeout, max_connections",
            &["reason"]
        )
        .expect("metric registers once"),
        auth_decisions: register_int_counter_vec!(
            "portcullis_auth_decisions_total",
            "Authentication and authorization decisions by provider, result and reason",
            &["provider", "result", "reason"]
        )
        .expect("metric registers once"),
        jwks_fetches: register_int_counter_vec!(
            "portcullis_jwks_fetches_total",
            "Discovery and JWKS fetches by provider and result",
            &["provider", "result"]
        )
        .expect("metric registers once"),
        jwks_keys: register_int_gauge_vec!(
            "portcullis_jwks_keys",
            "Signing keys loaded, by provider",
            &["provider"]
        )
        .expect("metric registers once"),
        jwks_last_success: register_gauge_vec!(
            "portcullis_jwks_last_success_timestamp_seconds",
            "When the provider's keys were last fetched successfully (Unix time); key age is time() minus this",
            &["provider"]
        )
        .expect("metric registers once"),
        token_cache: register_int_counter_vec!(
            "portcullis_token_cache_lookups_total",
            "Verified-token cache lookups by result (hit, miss)",
            &["result"]
        )
        .expect("metric registers once"),
        sign_in_events: register_int_counter_vec!(
            "portcullis_sign_in_events_total",
            "Browser sign-in events (start, callback, refresh, logout, backchannel_logout) by outcome",
            &["event", "outcome"]
        )
        .expect("metric registers once"),
        introspections: register_int_counter_vec!(
            "portcullis_introspections_total",
            "Token introspection answers (the cache's included) by provider and outcome",
            &["provider", "outcome"]
        )
        .expect("metric registers once"),
        spans_dropped: prometheus::register_int_counter!(
            "portcullis_spans_dropped_total",
            "Request spans dropped because the export queue was full"
        )
        .expect("metric registers once"),
        sign_in_sessions: register_int_gauge!(
            "portcullis_sign_in_active_sessions",
            "Live browser sessions in the Redis session store (recounted at most every 15 s)"
        )
        .expect("metric registers once"),
    })
}

/// `2xx`, `4xx`… for a status code; `0` (no response) becomes `none`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// A bounded method label: the standard methods, else `OTHER`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

const METHOD_LABELS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const STATUS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// One route's request metrics, each label combination looked up in the registry once (on
/// first use) instead of on every request: a label lookup hashes the values and takes the
/// vector's lock. Lazy, so a route's series appear when it serves its first request, as before.
pub struct RouteMetrics {
    route: String,
    requests: [[OnceLock<prometheus::IntCounter>; STATUS_LABELS.len()]; METHOD_LABELS.len()],
    duration: OnceLock<prometheus::Histogram>,
    upstream_duration: OnceLock<prometheus::Histogram>,
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_owned(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            duration: OnceLock::new(),
            upstream_duration: OnceLock::new(),
        }
    }

    /// `portcullis_requests_total{route, method, status}` of this route.
    pub fn requests(&self, method: &http::Method, status: u16) -> &prometheus::IntCounter {
        let m = match *method {
            http::Method::GET => 0,
            http::Method::HEAD => 1,
            http::Method::POST => 2,
            http::Method::PUT => 3,
            http::Method::DELETE => 4,
            http::Method::PATCH => 5,
            http::Method::OPTIONS => 6,
            _ => 7,
        };
        let s = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.requests[m][s].get_or_init(|| {
            let labels = [self.route.as_str(), METHOD_LABELS[m], STATUS_LABELS[s]];
            metrics().requests.with_label_values(&labels)
        })
    }

    /// `portcullis_request_duration_seconds{route}` of this route.
    pub fn duration(&self) -> &prometheus::Histogram {
        self.duration
            .get_or_init(|| metrics().request_duration.with_label_values(&[&self.route]))
    }

    /// `portcullis_upstream_duration_seconds{route}` of this route.
    pub fn upstream_duration(&self) -> &prometheus::Histogram {
        self.upstream_duration.get_or_init(|| {
            metrics()
                .upstream_duration
                .with_label_values(&[&self.route])
        })
    }
}

/// `portcullis_token_cache_lookups_total{result}`: hits and misses, resolved once.
pub fn token_cache_lookups(hit: bool) -> &'static prometheus::IntCounter {
    static COUNTERS: OnceLock<[prometheus::IntCounter; 2]> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        let vec = &metrics().token_cache;
        [
            vec.with_label_values(&["miss"]),
            vec.with_label_values(&["hit"]),
        ]
    });
    &counters[usize::from(hit)]
}

/// Records that `config` became the active configuration.
pub fn record_active_config(content_hash: u64, loaded_at: std::time::SystemTime) {
    let m = metrics();
    m.config_info.reset();
    m.config_info
        .with_label_values(&[&format!("{content_hash:016x}")])
        .set(1);
    let seconds = loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    m.config_loaded
        .with_label_values(&[] as &[&str])
        .set(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(504), "5xx");
        assert_eq!(status_class(0), "none");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"PROPFIND").unwrap()),
            "OTHER"
        );
    }
}
