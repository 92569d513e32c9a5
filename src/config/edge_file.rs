//! File schema of the edge policies a route (or `defaults`) can carry: CORS and client IP lists.
//! Plain serde structs, no behaviour; [`crate::edge`] compiles them.

use super::units::ConfigDuration;
use schemars::JsonSchema;
use serde::Deserialize;

/// `cors`: Cross-Origin Resource Sharing for browser apps on other origins.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    /// `https://app.example.com`, `https://*.example.com` (any subdomain), or `*` (any origin,
    /// never with `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (default: the route's methods, or the usual ones).
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for (case-insensitive).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (cookies, `Authorization`).
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    /// How long browsers cache a preflight answer.
    #[serde(default)]
    pub max_age: Option<ConfigDuration>,
}

/// `client_ips`: which client addresses may use a route, as CIDR lists (IPv4 and IPv6).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientIpsFile {
    /// Only these may (absent or empty: everyone not denied).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Never these (checked first).
    #[serde(default)]
    pub deny: Vec<String>,
}
