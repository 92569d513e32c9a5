//! File schema of `telemetry` (where spans go) and `assertion_signing` (the key of the identity
//! assertions the gateway signs for upstreams). Plain serde structs; [`crate::telemetry`] and
//! [`crate::identity_assertion`] compile them.

use schemars::JsonSchema;
use serde::Deserialize;

/// `telemetry`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryFile {
    #[serde(default)]
    pub tracing: Option<TracingFile>,
}

/// `telemetry.tracing`: spans exported over OTLP/HTTP.
#[derive(Debug, Deserialize, JsonSchema)]
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

/// `assertion_signing`: the key identity assertions are signed with.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionSigningFile {
    /// A P-256 private key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`), shared by every instance of a fleet; read again on reload.
    /// Absent: a key generated at start (one per instance), rotated daily.
    pub key_file: String,
}
