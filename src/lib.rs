//! Portcullis: an identity-aware edge API gateway on Pingora.
//!
//! Read it in the order a request meets it:
//!
//! | module | role |
//! |---|---|
//! | [`config`] | the YAML file as users write it: serde schema, units, `${VAR}` expansion, located diagnostics |
//! | [`compile`] | the compiler: a parsed file → a validated [`compile::CompiledConfig`] (offline; `validate` stops here) |
//! | [`snapshot`] | a compiled config with its services running (providers, limiter, health checks): what requests read |
//! | [`pipeline`] | the one `ProxyHttp` implementation and its steps: guard → route → authenticate → rate limit → body → upstream → response → log |
//! | [`reply`] | every response the gateway makes itself, from one typed [`reply::Denial`] |
//! | [`lifecycle`] | start-up, listeners, reload (SIGHUP, `POST /reload`), drain on SIGTERM, pid file, admin endpoints |
//!
//! Domain modules, used by the pipeline and compiled by [`compile`]; they import only the file
//! schema and diagnostics from [`config`]:
//!
//! | module | role |
//! |---|---|
//! | [`routing`] | request host/path/method → route (matchit, no per-request allocation) |
//! | [`oidc`] | token extraction, OIDC discovery, JWKS cache, signature and claim verification |
//! | [`policy`] | rule expressions over Keycloak claims: compile and evaluate |
//! | [`edge`] | policies checked before authentication: CORS, client IP lists |
//! | [`identity_assertion`] | the gateway-signed JWT about the caller for upstreams, and its JWKS |
//! | [`sign_in`] | browser sign-in: the code flow, sealed sessions, refresh, logout |
//! | [`ratelimit`] | per-client rate-limit policies, local or through Redis |
//! | [`transform`] | header operations, JSON body transforms |
//! | [`upstream`] | target pools: round robin, health checks, passive failure handling, TLS |
//! | [`metrics`] / [`access_log`] / [`telemetry`] | Prometheus metrics, the JSON access log, spans over OTLP/HTTP |
//! | [`request_id`] / [`ip_text`] / [`trace_context`] | the request id; addresses as text without `fmt`; W3C `traceparent` |
//! | [`dev`] | the development identity provider and `portcullis demo` (also the tests' mocks) |

pub mod access_log;
pub mod compile;
pub mod config;
pub mod connection;
pub mod decision_trace;
pub mod dev;
pub mod doctor;
pub mod edge;
pub mod explain;
pub mod identity_assertion;
pub mod ip_text;
pub mod lifecycle;
pub mod metrics;
pub mod oidc;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod reply;
pub mod request_id;
pub mod routing;
pub mod sign_in;
pub mod snapshot;
pub mod telemetry;
pub mod trace_context;
pub mod transform;
pub mod upstream;
