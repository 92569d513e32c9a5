//! The `routes` section of the configuration file: how a route matches, and what it changes on
//! the way through (headers, path, query, JSON bodies). Plain serde structs, no behaviour.

use super::policy_file::{AuthFile, RuleFile};
use super::units::ByteSize;
use super::units::StringOrList;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: MatchFile,
    pub upstream: String,
    /// With `path_prefix`, remove the prefix before forwarding (default false).
    #[serde(default)]
    pub strip_prefix: Option<bool>,
    #[serde(default)]
    pub auth: Option<AuthFile>,
    #[serde(default)]
    pub rate_limit: Option<StringOrList>,
    #[serde(default)]
    pub request: Option<RequestTransformFile>,
    #[serde(default)]
    pub response: Option<ResponseTransformFile>,
    /// CORS for browser apps on other origins (preflights answered before auth).
    #[serde(default)]
    pub cors: Option<super::edge_file::CorsFile>,
    /// Client IP allow and deny lists, checked before auth.
    #[serde(default)]
    pub client_ips: Option<super::edge_file::ClientIpsFile>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    /// Exact host name, or `*.example.com` for any subdomain. Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Exact path (`/status`) or template (`/orders/{id}`, `/files/{*rest}`).
    #[serde(default)]
    pub path: Option<String>,
    /// Any path starting with this string.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Absent: every method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformFile {
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub append_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// Regex path rewrite: `{ pattern: "^/v1/(.*)", replacement: "/$1" }`.
    #[serde(default)]
    pub rewrite_path: Option<PathRewriteFile>,
    #[serde(default)]
    pub add_query: BTreeMap<String, String>,
    #[serde(default)]
    pub remove_query: Vec<String>,
    /// Forward the verified claims as one base64url JSON header of this name.
    #[serde(default)]
    pub claims_header: Option<String>,
    /// Send a short-lived JWT signed by the gateway about the caller in this header (keys at
    /// `GET /.portcullis/jwks.json`).
    #[serde(default)]
    pub identity_assertion: Option<String>,
    #[serde(default)]
    pub json: Option<JsonTransformFile>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRewriteFile {
    pub pattern: String,
    pub replacement: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformFile {
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub append_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub remove_headers: Vec<String>,
    #[serde(default)]
    pub json: Option<JsonTransformFile>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonTransformFile {
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// What to do with a body larger than `max_body`: `passthrough` or `reject` (413 for a
    /// request, 502 for a response). Default: `reject` for a request whose transform removes or
    /// masks fields, `passthrough` otherwise.
    #[serde(default)]
    pub oversize: Option<OversizeAction>,
    /// What to do with a body that is not valid JSON: `reject` (400 for a request, 502 for a
    /// response) or `pass` (unchanged). Default: `reject` for requests, and for responses whose
    /// transform removes or masks fields; `pass` otherwise.
    #[serde(default)]
    pub on_invalid: Option<InvalidBodyAction>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub set: BTreeMap<String, serde_json::Value>,
    /// JSON pointer -> number of trailing characters left visible.
    #[serde(default)]
    pub mask: BTreeMap<String, usize>,
    #[serde(default)]
    pub when: Option<RuleFile>,
    #[serde(default)]
    pub unless: Option<RuleFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OversizeAction {
    Passthrough,
    Reject,
}

/// What a JSON transform does with a body it cannot parse (`on_invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvalidBodyAction {
    /// Refuse the body: it never reaches the other side unchanged.
    Reject,
    /// Forward the body unchanged.
    Pass,
}
