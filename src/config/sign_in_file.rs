//! File schema of browser sign-in: the `browser_sign_in` section (paths, scopes, the session
//! cookie and its keys), the `client` block of an identity provider (the gateway as a
//! confidential client of the realm) and the `forward_auth` section (the gateway as the sign-in
//! service of another proxy). Plain serde structs, no behaviour; `crate::sign_in` and
//! `crate::compile` compile them.

use super::units::ConfigDuration;
use schemars::JsonSchema;
use serde::Deserialize;

/// `identity_providers.<name>.client`: the gateway's own client at the provider, used for the
/// authorization code flow (and token introspection).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderClientFile {
    /// The client id (Keycloak: the client's "Client ID").
    pub id: String,
    /// The client secret, usually `"${ENV_VAR}"`. Exactly one of `secret` and `secret_file`.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret (trailing newline ignored), read again on every reload.
    #[serde(default)]
    pub secret_file: Option<String>,
    /// How the secret is presented at the token endpoint: `client_secret_basic` (default) or
    /// `client_secret_post`.
    #[serde(default)]
    pub auth_method: Option<ClientAuthMethod>,
}

/// OAuth client authentication at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the url-encoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// The `browser_sign_in` section.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserSignInFile {
    /// Where the provider sends the browser back with the code (default `/.portcullis/callback`).
    #[serde(default)]
    pub callback_path: Option<String>,
    /// Ends the session here and at the provider (default `/.portcullis/logout`).
    #[serde(default)]
    pub logout_path: Option<String>,
    /// Receives the provider's back-channel logout tokens (default
    /// `/.portcullis/backchannel-logout`).
    #[serde(default)]
    pub backchannel_logout_path: Option<String>,
    /// Scopes asked for at sign-in (default `[openid, profile, email]`; must contain `openid`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Where the browser lands after logout when the logout link names no `rd` (default `/`).
    #[serde(default)]
    pub post_logout_path: Option<String>,
    /// How long a sign-in may take, from the redirect to the callback (default 10m).
    #[serde(default)]
    pub login_timeout: Option<ConfigDuration>,
    pub session: SessionFile,
}

/// `browser_sign_in.session`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// The session cookie's name (default `__Host-portcullis`); chunks are `NAME_0`, `NAME_1`…
    #[serde(default)]
    pub cookie: Option<String>,
    /// Base64 32-byte keys: the first seals, every one opens.
    pub keys: Vec<String>,
    /// Absolute session lifetime (default 8h).
    #[serde(default)]
    pub lifetime: Option<ConfigDuration>,
    /// A session unused this long ends (default 1h).
    #[serde(default)]
    pub idle_timeout: Option<ConfigDuration>,
    /// `cookie` (default, stateless) or `redis` (server-side).
    #[serde(default)]
    pub store: Option<SessionStoreKind>,
    /// Refresh the access token when it has less than this left (default 60s).
    #[serde(default)]
    pub refresh_before: Option<ConfigDuration>,
    /// Send cookies without `Secure`, for a plain-HTTP development listener only. Cookie names
    /// with a `__Host-` or `__Secure-` prefix cannot be used then.
    #[serde(default)]
    pub insecure_cookies: Option<bool>,
}

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStoreKind {
    /// Sealed into the cookie: no server state.
    Cookie,
    /// In Redis; the cookie holds an opaque id.
    Redis,
}

/// `forward_auth`: an endpoint that answers another proxy's auth subrequest (nginx
/// `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`) with the decision the gateway's
/// routes make for the original request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthFile {
    /// The endpoint's path (default `/.portcullis/auth`), answered on every host.
    #[serde(default)]
    pub path: Option<String>,
}

/// `identity_providers.<name>.introspection`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    /// How long an answer is reused (default 30s): a revoked token stops within this time.
    #[serde(default)]
    pub cache_ttl: Option<ConfigDuration>,
    /// Answers kept at most (default 100000).
    #[serde(default)]
    pub max_entries: Option<usize>,
}
