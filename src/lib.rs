//! Portcullis: an identity-aware edge API gateway on Pingora.
//!
//! A request flows through these modules, in this order:
//!
//! | module | role |
//! |---|---|
//! | [`config`] | the YAML file (serde structs) compiled into an immutable, validated [`config::RuntimeConfig`] snapshot held in an `ArcSwap` |
//! | [`request_id`] | the id every response and log line carries |
//! | [`routing`] | request host/path/method → route (matchit, no per-request allocation) |
//! | [`oidc`] | token extraction, OIDC discovery, JWKS cache, signature and claim verification |
//! | [`auth_phase`] | route authentication and authorization (401 / 403) |
//! | [`policy`] | rule expressions over Keycloak claims: compile and evaluate |
//! | [`ratelimit`] / [`ratelimit_phase`] | per-client rate limits, local or through Redis (429) |
//! | [`transform`] / [`body_phase`] | header operations, JSON body transforms |
//! | [`forwarding`] | upstream request / response rewriting, X-Forwarded-*, error classification |
//! | [`metrics`] / [`access_log`] / [`request_log`] | Prometheus metrics and the JSON access log |
//! | [`admin`] | /healthz /readyz /metrics POST /reload |
//! | [`upstream`] | target pools: round robin, health checks, passive failure handling, TLS |
//! | [`proxy`] | the one `ProxyHttp` implementation: calls one module per phase, holds no policy itself |
//! | [`denial`] | every refusal the gateway produces and the single mapping to an HTTP response |
//! | [`server`] | builds the Pingora server (listeners, TLS, h2c, background services) from a snapshot |
//! | [`devidp`] | a development identity provider shaped like a Keycloak realm (demo, tests, benches) |
//! | [`demo`] | `portcullis demo`: gateway + demo upstream + development IdP in one process |
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod auth_phase;
pub mod body_phase;
pub mod config;
pub mod demo;
pub mod denial;
pub mod devidp;
pub mod forwarding;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod ratelimit_phase;
pub mod request_id;
pub mod request_log;
pub mod routing;
pub mod server;
pub mod transform;
pub mod upstream;
