//! The configuration file as written by users: plain serde structs, `deny_unknown_fields`
//! everywhere, no behaviour. [`crate::compile`] turns them into the validated configuration;
//! nothing on the request path looks at these types. The `routes` section is in
//! [`super::route_file`], re-exported here.
//!
//! `../shared/spec/portcullis.example.yaml` is the contract for this schema; the README's
//! configuration reference documents every key.

pub use super::edge_file::*;
use super::policy_file::{AuthFile, RuleFile};
pub use super::route_file::*;
pub use super::sign_in_file::*;
pub use super::telemetry_file::*;
pub use super::units::StringOrList;
use super::units::{ByteRate, ByteSize, ConfigDuration, RateSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A Portcullis configuration file (YAML; `${VAR}` references are expanded before parsing).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerFile,
    #[serde(default)]
    pub admin: Option<AdminFile>,
    #[serde(default)]
    pub identity_providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamFile>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitFile>,
    #[serde(default)]
    pub redis: Option<RedisFile>,
    /// CIDRs whose X-Forwarded-For / Forwarded headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Where a token may come from besides `Authorization: Bearer`, and how large it may be.
    #[serde(default)]
    pub tokens: TokensFile,
    /// Settings applied to every route that does not say otherwise.
    #[serde(default)]
    pub defaults: DefaultsFile,
    #[serde(default)]
    pub access_log: Option<AccessLogFile>,
    /// Spans exported over OTLP/HTTP.
    #[serde(default)]
    pub telemetry: Option<TelemetryFile>,
    /// The key of the identity assertions (`request.identity_assertion`).
    #[serde(default)]
    pub assertion_signing: Option<AssertionSigningFile>,
    /// Browser sign-in (OIDC authorization code flow) for routes with `auth.sign_in`.
    #[serde(default)]
    pub browser_sign_in: Option<BrowserSignInFile>,
    /// The forward-auth endpoint for nginx `auth_request`, Traefik and Caddy; off when absent.
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// `stdout` (default), `off`, or a file path.
    #[serde(default)]
    pub path: Option<String>,
    /// Replace the subject (`sub`) with `-` in log lines.
    #[serde(default)]
    pub redact_subject: Option<bool>,
    /// Lines queued for the writer before new ones are dropped (default 16384).
    #[serde(default)]
    pub buffer_lines: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Plain-text listeners: HTTP/1.1, plus HTTP/2 with prior knowledge (h2c) when `h2c` is on.
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub tls: Option<ServerTlsFile>,
    /// Worker threads; default: the number of CPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Let idle worker threads steal ready connections from busy ones (default false: each
    /// connection stays on the thread that accepted it, which costs less per request).
    #[serde(default)]
    pub work_stealing: Option<bool>,
    /// Accept HTTP/2 prior-knowledge connections on the plain listeners (default true).
    #[serde(default)]
    pub h2c: Option<bool>,
    /// How long an idle client keep-alive connection stays open (default 60s).
    #[serde(default)]
    pub keepalive_timeout: Option<ConfigDuration>,
    /// A request head must be complete this long after it started; the first one on a
    /// connection counts from the accept (default 10s). Closes slowloris connections.
    #[serde(default)]
    pub header_timeout: Option<ConfigDuration>,
    /// A request body must arrive at least this fast on average once it has had 5 s (default
    /// `1KiB/s`; `0` switches it off); slower gets 408.
    #[serde(default)]
    pub min_body_rate: Option<ByteRate>,
    /// Client connections open at once; more are closed as soon as they are accepted
    /// (default 10000).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Longest wait for the next chunk of a client request (default 60s).
    #[serde(default)]
    pub read_timeout: Option<ConfigDuration>,
    /// Longest wait for a client to accept response bytes (default 60s).
    #[serde(default)]
    pub write_timeout: Option<ConfigDuration>,
    /// Largest request head (request line + headers) accepted; larger gets 431 (default 64KiB).
    #[serde(default)]
    pub max_header_size: Option<ByteSize>,
    /// How long SIGTERM waits for in-flight requests before exiting (default 10s).
    #[serde(default)]
    pub shutdown_timeout: Option<ConfigDuration>,
    /// Where `portcullis reload` finds the running instance.
    #[serde(default)]
    pub pid_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFile {
    pub listen: StringOrList,
    pub certificate: String,
    pub private_key: String,
    /// Offer HTTP/2 through ALPN (default true).
    #[serde(default)]
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// OpenID Connect discovery URL; issuer and jwks_uri are taken from its document.
    #[serde(default)]
    pub discovery: Option<String>,
    /// Expected issuer; with `discovery` it must equal the discovered issuer exactly.
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Offline keys: a JWKS file, an inline JWKS document, or PEM public keys.
    #[serde(default)]
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub jwks_inline: Option<String>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// Shared secret enabling HS256/384/512 for this provider (never on by default).
    #[serde(default)]
    pub shared_secret: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted `azp` values; empty means any.
    #[serde(default)]
    pub authorized_parties: Vec<String>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub clock_skew: Option<ConfigDuration>,
    /// Accepted values of the `typ` claim (Keycloak: `Bearer`).
    #[serde(default)]
    pub token_types: Option<Vec<String>>,
    /// The `realm` parameter of WWW-Authenticate (default: the provider's name).
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub jwks: JwksFile,
    #[serde(default)]
    pub token_cache: TokenCacheFile,
    /// Accept a self-signed or private CA for the IdP's HTTPS (PEM file).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The gateway as a confidential client of this provider (browser sign-in, introspection).
    #[serde(default)]
    pub client: Option<ProviderClientFile>,
    /// Token introspection for routes with `auth.introspect: true`.
    #[serde(default)]
    pub introspection: Option<IntrospectionFile>,
    /// Accept tokens that are not JWTs on `introspect` routes: introspection alone decides.
    #[serde(default)]
    pub opaque_tokens: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksFile {
    #[serde(default)]
    pub refresh_interval: Option<ConfigDuration>,
    #[serde(default)]
    pub min_refetch_interval: Option<ConfigDuration>,
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCacheFile {
    #[serde(default)]
    pub max_entries: Option<usize>,
    #[serde(default)]
    pub ttl: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// Another header carrying the bare token (e.g. `X-Access-Token`).
    #[serde(default)]
    pub header: Option<String>,
    /// A query parameter carrying the token (discouraged by RFC 6750; off by default).
    #[serde(default)]
    pub query: Option<String>,
    /// A cookie carrying the token.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Tokens larger than this are refused before parsing (default 8KiB).
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsFile {
    /// Auth for routes without their own `auth`; without it such a route is a config error.
    #[serde(default)]
    pub auth: Option<AuthFile>,
    /// How much a 401/403 body says: `full` (reason and requirement) or `minimal`.
    #[serde(default)]
    pub error_detail: Option<ErrorDetail>,
    /// CORS for routes without their own `cors`.
    #[serde(default)]
    pub cors: Option<CorsFile>,
    /// Client IP lists for routes without their own `client_ips`.
    #[serde(default)]
    pub client_ips: Option<ClientIpsFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorDetail {
    Full,
    Minimal,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// `host:port` targets, balanced round robin. Host names resolve when connecting.
    pub targets: Vec<String>,
    #[serde(default)]
    pub connect_timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub read_timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub write_timeout: Option<ConfigDuration>,
    /// How long an idle pooled upstream connection is kept (default 60s).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    /// Passive failure handling: consecutive connection failures before a target is set aside.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// How long a target that failed passively stays set aside (default 10s).
    #[serde(default)]
    pub fail_timeout: Option<ConfigDuration>,
    /// Replace the Host header sent upstream (default: the client's Host).
    #[serde(default)]
    pub host_header: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// Server name sent in SNI and verified in the certificate (default: the target's host).
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the upstream certificate (default true).
    #[serde(default)]
    pub verify: Option<bool>,
    /// Offer HTTP/2 to the upstream through ALPN (default false: HTTP/1.1).
    #[serde(default)]
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    /// `tcp` (connect only) or `http` (GET `path`, expect 2xx).
    #[serde(default)]
    pub kind: Option<HealthCheckKind>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
    /// Consecutive results needed to flip a target's state (default 1 up, 1 down).
    #[serde(default)]
    pub healthy_after: Option<usize>,
    #[serde(default)]
    pub unhealthy_after: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// `client_id`, `subject`, `client_ip`, `claim:<path>`, `header:<name>`, or a list of them.
    pub key: StringOrList,
    /// Requests per period; exactly one of `rate` and `concurrency`.
    #[serde(default)]
    pub rate: Option<RateSpec>,
    /// At most this many requests of one key in flight at once (instead of `rate`).
    #[serde(default)]
    pub concurrency: Option<u64>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub tiers: Vec<RateTierFile>,
    #[serde(default)]
    pub store: Option<RateLimitStore>,
    /// With `store: redis`: count locally and reconcile with Redis every interval (absent or
    /// `0`: one Redis round trip per request, exact).
    #[serde(default)]
    pub sync_interval: Option<ConfigDuration>,
    /// Send RateLimit-Policy / RateLimit headers (default true).
    #[serde(default)]
    pub headers: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTierFile {
    pub when: RuleFile,
    pub rate: RateSpec,
    #[serde(default)]
    pub burst: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitStore {
    Local,
    Redis,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// One Redis: `redis://[user:password@]host[:port][/db]`. Exactly one of `url` and `cluster`.
    #[serde(default)]
    pub url: Option<String>,
    /// A Redis Cluster: seed node URLs (the others are discovered).
    #[serde(default)]
    pub cluster: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub on_error: Option<RedisOnError>,
    #[serde(default)]
    pub pool_size: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisOnError {
    Allow,
    Deny,
}
