//! Who can sign in at the development identity provider and what is going on in a realm: its
//! users and OAuth clients, the authorization codes waiting to be redeemed, the live SSO sessions
//! (with the clients that received tokens in each), the refresh tokens issued, the grant counters
//! and the log of back-channel logout deliveries. Plain data; [`super::state::Shared`] holds one
//! [`Accounts`] per realm behind a lock.

use super::keys::random_id;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The client every realm starts with: the gateway's browser sign-in client.
pub const GATEWAY_CLIENT_ID: &str = "portcullis-gateway";
/// The secret of [`GATEWAY_CLIENT_ID`].
pub const GATEWAY_CLIENT_SECRET: &str = "portcullis-dev-secret";
/// The SSO session cookie (Keycloak's `KEYCLOAK_SESSION`), `Path=/realms/{realm}/`, HttpOnly.
pub const SESSION_COOKIE: &str = "DEVIDP_SESSION";
/// What a user's `sub` starts with; the username follows (`0b9e6a4c-alice`).
pub const SUBJECT_PREFIX: &str = "0b9e6a4c-";
/// How long an authorization code can be redeemed (Keycloak's default: one minute).
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// An SSO session ends after this long without use (Keycloak's SSO Session Idle: 30 minutes);
/// refresh tokens live as long.
pub const SSO_IDLE_TIMEOUT: Duration = Duration::from_secs(1800);

/// A user of a realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUser {
    pub username: String,
    pub password: String,
    /// `realm_access.roles` of the user's access tokens.
    pub realm_roles: Vec<String>,
    /// `groups` (full paths, `/engineering`) of the user's access tokens.
    pub groups: Vec<String>,
    /// `email` of the user's tokens; empty: no `email` claim.
    pub email: String,
}

impl DevUser {
    /// A user with password `password`, email `{username}@example.com`, no roles, no groups.
    pub fn new(username: &str, password: &str) -> Self {
        DevUser {
            username: username.to_owned(),
            password: password.to_owned(),
            realm_roles: Vec::new(),
            groups: Vec::new(),
            email: format!("{username}@example.com"),
        }
    }

    /// Sets the realm roles.
    pub fn with_realm_roles(mut self, roles: &[&str]) -> Self {
        self.realm_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    /// Sets the group paths.
    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }

    /// The `sub` of the user's tokens: [`SUBJECT_PREFIX`] then the username.
    pub fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}{}", self.username)
    }

    /// The users every realm starts with: alice (reader, writer; /engineering), bob (reader;
    /// /finance) and mallory (nothing); each one's password is the username.
    pub fn built_in() -> Vec<DevUser> {
        vec![
            DevUser::new("alice", "alice")
                .with_realm_roles(&["reader", "writer"])
                .with_groups(&["/engineering"]),
            DevUser::new("bob", "bob")
                .with_realm_roles(&["reader"])
                .with_groups(&["/finance"]),
            DevUser::new("mallory", "mallory"),
        ]
    }
}

/// A confidential OIDC client of a realm. A URI pattern ending in `*` matches by prefix; `"*"`
/// alone matches any http(s) URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClient {
    pub id: String,
    pub secret: String,
    /// Keycloak's "Valid redirect URIs".
    pub redirect_uris: Vec<String>,
    /// Keycloak's "Valid post logout redirect URIs".
    pub post_logout_redirect_uris: Vec<String>,
    /// Keycloak's "Backchannel logout URL"; logout tokens carry `sid` and `sub`.
    pub backchannel_logout_url: Option<String>,
}

impl Default for DevClient {
    /// The realm's default client: [`GATEWAY_CLIENT_ID`] with [`GATEWAY_CLIENT_SECRET`].
    fn default() -> Self {
        DevClient::new(GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET)
    }
}

impl DevClient {
    /// A client that accepts any redirect and post-logout redirect URI, without back-channel URL.
    pub fn new(id: &str, secret: &str) -> Self {
        DevClient {
            id: id.to_owned(),
            secret: secret.to_owned(),
            redirect_uris: vec!["*".to_owned()],
            post_logout_redirect_uris: vec!["*".to_owned()],
            backchannel_logout_url: None,
        }
    }

    /// Whether `uri` may receive authorization responses.
    pub fn allows_redirect_uri(&self, uri: &str) -> bool {
        uri_allowed(&self.redirect_uris, uri)
    }

    /// Whether `uri` may receive the browser after logout.
    pub fn allows_post_logout_redirect_uri(&self, uri: &str) -> bool {
        uri_allowed(&self.post_logout_redirect_uris, uri)
    }
}

/// An absolute http(s) URI without fragment, matched against the patterns.
fn uri_allowed(patterns: &[String], uri: &str) -> bool {
    let absolute = uri.starts_with("http://") || uri.starts_with("https://");
    let clean = !uri.contains('#') && !uri.chars().any(|c| c.is_whitespace() || c.is_control());
    absolute
        && clean
        && patterns
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => uri.starts_with(prefix),
                None => pattern == uri,
            })
}

/// One back-channel logout delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelDelivery {
    /// The client the logout token was addressed to (its `aud`).
    pub client_id: String,
    /// The client's back-channel logout URL.
    pub url: String,
    /// The SSO session that ended.
    pub sid: String,
    /// The HTTP status the client answered; `None` when the request failed.
    pub status: Option<u16>,
    /// Why the request failed (connection refused, timeout…).
    pub error: Option<String>,
}

/// A code waiting for the token endpoint, with everything it is bound to.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub username: String,
    pub sid: String,
    pub scope: String,
    /// `acr` of the tokens: `1` after a password, `0` through the SSO cookie.
    pub acr: &'static str,
    pub issued: Instant,
}

/// A live SSO session.
#[derive(Debug, Clone)]
pub struct SsoSession {
    pub username: String,
    /// Unix time of the login (`auth_time`).
    pub auth_time: i64,
    last_used: Instant,
    /// Clients that received a code or tokens in this session.
    pub clients: BTreeSet<String>,
}

/// What an issued refresh token stands for.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub sid: String,
    pub username: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub acr: &'static str,
}

/// A session that was just ended, and the back-channel logouts it calls for.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub sub: String,
    /// `(client id, back-channel logout URL)` of the session's clients that have one.
    pub targets: Vec<(String, String)>,
}

/// The accounts and sign-in state of one realm.
#[derive(Debug)]
pub struct Accounts {
    pub users: BTreeMap<String, DevUser>,
    pub clients: BTreeMap<String, DevClient>,
    codes: HashMap<String, AuthorizationCode>,
    sessions: HashMap<String, SsoSession>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    grants: HashMap<String, u64>,
    pub deliveries: Vec<BackchannelDelivery>,
    /// Tokens revoked by `jti` (introspection answers `active: false`).
    pub revoked_jtis: BTreeSet<String>,
    /// SSO sessions that ended: their tokens introspect as inactive.
    pub ended_sids: BTreeSet<String>,
    /// Opaque (non-JWT) tokens issued for tests, with their claims.
    pub opaque_tokens: HashMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts::new()
    }
}

impl Accounts {
    /// The built-in users and the default client.
    pub fn new() -> Self {
        let client = DevClient::default();
        Accounts {
            users: DevUser::built_in()
                .into_iter()
                .map(|u| (u.username.clone(), u))
                .collect(),
            clients: BTreeMap::from([(client.id.clone(), client)]),
            codes: HashMap::new(),
            sessions: HashMap::new(),
            refresh_tokens: HashMap::new(),
            grants: HashMap::new(),
            deliveries: Vec::new(),
            revoked_jtis: BTreeSet::new(),
            ended_sids: BTreeSet::new(),
            opaque_tokens: HashMap::new(),
        }
    }

    /// The user if the password is right.
    pub fn check_password(&self, username: &str, password: &str) -> Option<&DevUser> {
        self.users
            .get(username)
            .filter(|user| user.password == password)
    }

    /// The client if the secret is right.
    pub fn check_client(&self, id: &str, secret: &str) -> Option<&DevClient> {
        self.clients
            .get(id)
            .filter(|client| client.secret == secret)
    }

    /// Starts an SSO session for `username`; returns its `sid`.
    pub fn start_session(&mut self, username: &str, auth_time: i64) -> String {
        let sid = random_id(16);
        self.sessions.insert(
            sid.clone(),
            SsoSession {
                username: username.to_owned(),
                auth_time,
                last_used: Instant::now(),
                clients: BTreeSet::new(),
            },
        );
        sid
    }

    /// The session if it is live (an idle one is dropped); marks it used by `client`, if any.
    pub fn use_session(&mut self, sid: &str, client: Option<&str>) -> Option<&SsoSession> {
        let idle = self
            .sessions
            .get(sid)
            .is_some_and(|s| s.last_used.elapsed() > SSO_IDLE_TIMEOUT);
        if idle {
            self.sessions.remove(sid);
            self.refresh_tokens.retain(|_, grant| grant.sid != sid);
        }
        let session = self.sessions.get_mut(sid)?;
        session.last_used = Instant::now();
        if let Some(client) = client {
            session.clients.insert(client.to_owned());
        }
        Some(session)
    }

    /// Ends a session; `targets` lists the back-channel URLs of its clients other than `except`.
    pub fn end_session(&mut self, sid: &str, except: Option<&str>) -> Option<EndedSession> {
        let session = self.sessions.remove(sid)?;
        self.ended_sids.insert(sid.to_owned());
        self.refresh_tokens.retain(|_, grant| grant.sid != sid);
        self.codes.retain(|_, code| code.sid != sid);
        let targets = session
            .clients
            .iter()
            .filter(|id| Some(id.as_str()) != except)
            .filter_map(|id| self.clients.get(id))
            .filter_map(|c| Some((c.id.clone(), c.backchannel_logout_url.clone()?)))
            .collect();
        let sub = match self.users.get(&session.username) {
            Some(user) => user.subject(),
            None => format!("{SUBJECT_PREFIX}{}", session.username),
        };
        Some(EndedSession { sub, targets })
    }

    /// `(sid, username)` of the live sessions, sorted by username then sid.
    pub fn sessions(&self) -> Vec<(String, String)> {
        let mut sessions: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.last_used.elapsed() <= SSO_IDLE_TIMEOUT)
            .map(|(sid, s)| (sid.clone(), s.username.clone()))
            .collect();
        sessions.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        sessions
    }

    /// Stores a code; returns it.
    pub fn issue_code(&mut self, code: AuthorizationCode) -> String {
        self.codes
            .retain(|_, c| c.issued.elapsed() <= CODE_LIFETIME);
        let id = random_id(24);
        self.codes.insert(id.clone(), code);
        id
    }

    /// Takes a code out (single use, even when the exchange then fails, as Keycloak does);
    /// `None` if unknown, used or expired.
    pub fn take_code(&mut self, code: &str) -> Option<AuthorizationCode> {
        self.codes
            .remove(code)
            .filter(|c| c.issued.elapsed() <= CODE_LIFETIME)
    }

    /// Remembers an issued refresh token by its `jti`.
    pub fn remember_refresh_token(&mut self, jti: String, grant: RefreshGrant) {
        self.refresh_tokens.insert(jti, grant);
    }

    /// What the refresh token with this `jti` was issued for.
    pub fn refresh_grant(&self, jti: &str) -> Option<RefreshGrant> {
        self.refresh_tokens.get(jti).cloned()
    }

    /// Counts a token request of `grant_type`.
    pub fn count_grant(&mut self, grant_type: &str) {
        *self.grants.entry(grant_type.to_owned()).or_insert(0) += 1;
    }

    /// Token requests of `grant_type` so far.
    pub fn grants(&self, grant_type: &str) -> u64 {
        self.grants.get(grant_type).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_patterns() {
        let client = DevClient {
            redirect_uris: vec!["https://app/cb".into(), "http://127.0.0.1:8080/*".into()],
            ..DevClient::default()
        };
        assert!(client.allows_redirect_uri("https://app/cb"));
        assert!(!client.allows_redirect_uri("https://app/cb2"));
        assert!(client.allows_redirect_uri("http://127.0.0.1:8080/.portcullis/callback"));
        assert!(!client.allows_redirect_uri("http://127.0.0.1:9090/x"));
        assert!(DevClient::default().allows_redirect_uri("https://anything/x?y=1"));
        assert!(!DevClient::default().allows_redirect_uri("javascript:alert(1)"));
        assert!(!DevClient::default().allows_redirect_uri("https://a/#frag"));
    }

    #[test]
    fn codes_are_single_use_and_sessions_end() {
        let mut accounts = Accounts::new();
        assert!(accounts.check_password("alice", "alice").is_some());
        assert!(accounts.check_password("alice", "bob").is_none());
        let sid = accounts.start_session("alice", 0);
        let code = accounts.issue_code(AuthorizationCode {
            client_id: GATEWAY_CLIENT_ID.into(),
            redirect_uri: "https://app/cb".into(),
            code_challenge: "x".into(),
            nonce: None,
            username: "alice".into(),
            sid: sid.clone(),
            scope: "openid".into(),
            acr: "1",
            issued: Instant::now(),
        });
        assert!(accounts.take_code(&code).is_some());
        assert!(accounts.take_code(&code).is_none());
        assert!(accounts.use_session(&sid, Some("a")).is_some());
        assert_eq!(accounts.sessions(), vec![(sid.clone(), "alice".to_owned())]);
        let ended = accounts.end_session(&sid, None).expect("ended");
        assert_eq!(ended.sub, "0b9e6a4c-alice");
        assert!(accounts.use_session(&sid, None).is_none());
    }
}
