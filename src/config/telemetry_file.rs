//! File schema of `telemetry`: where spans go. Plain serde structs; [`crate::telemetry`]
//! compiles them.

use serde::Deserialize;

/// `telemetry`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    #[serde(default)]
    pub tracing: Option<TracingFile>,
}

/// `telemetry.tracing`: spans exported over OTLP/HTTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to `/v1/traces` below it.
    pub otlp_endpoint: String,
    /// Share of new traces sampled, 0.0 to 1.0 (default 1.0); a request that arrives with a
    /// `traceparent` follows its caller's decision.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// `service.name` of the spans (default `portcullis`).
    #[serde(default)]
    pub service_name: Option<String>,
}
