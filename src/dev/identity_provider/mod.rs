//! A development identity provider shaped like Keycloak: realms at
//! `http://127.0.0.1:PORT/realms/{realm}` with discovery and JWKS endpoints, signing keys for
//! RS256, PS256, ES256 and EdDSA (plus Keycloak's `enc` key in the JWKS), and a token builder with
//! Keycloak-shaped claims. `portcullis demo`, the integration tests and the benches use it.
//!
//! Tests steer it through thread-safe knobs (callable from sync or async code): rotate or remove
//! keys, go down, serve garbage or junk JWKS entries, set `Cache-Control: max-age`, add latency,
//! and read per-endpoint request counters.
//!
//! For browser sign-in it is also a Keycloak-like authorization server: users (alice, bob,
//! mallory; the password is the username), a confidential client `portcullis-gateway` with secret
//! `portcullis-dev-secret`, a login page, codes bound to PKCE S256, the token endpoint
//! (authorization_code, refresh_token, password, client_credentials), RP-initiated logout and
//! back-channel logout deliveries.
//!
//! ```no_run
//! use portcullis::dev::identity_provider::{DevIdp, SigningAlg};
//! let idp = DevIdp::start(&["acme"]).expect("idp");
//! let token = idp.token("acme").realm_roles(&["reader"]).alg(SigningAlg::ES256).mint();
//! ```

mod accounts;
mod backchannel;
mod grants;
mod introspect;
mod keys;
mod login;
mod logout;
mod mint;
mod server;
mod state;
mod verify;
mod web;

pub use accounts::{
    BackchannelDelivery, DevClient, DevUser, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET,
    SESSION_COOKIE,
};
pub use backchannel::BACKCHANNEL_LOGOUT_EVENT;
pub use keys::{KeyError, SigningAlg, SigningKey};
pub use mint::{MintError, TokenBuilder, DEFAULT_AUDIENCE, DEFAULT_CLIENT};
pub use state::{Endpoint, Outage, Rotation};

use state::{Realm, Shared};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A running development identity provider; it stops when dropped.
pub struct DevIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Dropping the sender stops the server thread.
    _stop: watch::Sender<bool>,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp").field("addr", &self.addr).finish()
    }
}

fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

impl DevIdp {
    /// Starts on `127.0.0.1` with a free port, with the given realms.
    pub fn start(realms: &[&str]) -> std::io::Result<Self> {
        Self::start_on(std::net::TcpListener::bind("127.0.0.1:0")?, realms)
    }

    /// Starts on `addr` (e.g. `127.0.0.1:18080`).
    pub fn start_at(addr: &str, realms: &[&str]) -> std::io::Result<Self> {
        Self::start_on(std::net::TcpListener::bind(addr)?, realms)
    }

    /// Starts on an already bound listener.
    pub fn start_on(listener: std::net::TcpListener, realms: &[&str]) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let mut generated = HashMap::new();
        for name in realms {
            generated.insert((*name).to_owned(), Realm::generate().map_err(io_error)?);
        }
        let shared = Arc::new(Shared::new(format!("http://{addr}"), generated).map_err(io_error)?);
        let (stop, stopped) = watch::channel(false);
        server::spawn_server_thread(listener, shared.clone(), stopped)?;
        Ok(DevIdp {
            shared,
            addr,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://127.0.0.1:PORT/realms/{realm}`, the `iss` of the realm's tokens.
    pub fn issuer(&self, realm: &str) -> String {
        self.shared.issuer(realm)
    }

    pub fn discovery_url(&self, realm: &str) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer(realm))
    }

    pub fn jwks_uri(&self, realm: &str) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer(realm))
    }

    /// A token builder for `realm` with Keycloak-shaped defaults.
    pub fn token(&self, realm: &str) -> TokenBuilder {
        TokenBuilder::new(self.shared.clone(), realm)
    }

    /// The realm's JWKS as it is served now (without junk entries).
    pub fn jwks_json(&self, realm: &str) -> Option<String> {
        self.shared
            .jwks_document(realm, false)
            .map(|doc| doc.to_string())
    }

    /// The kid new `alg` tokens of `realm` are signed with.
    pub fn current_kid(&self, realm: &str, alg: SigningAlg) -> Option<String> {
        self.shared
            .realms()
            .get(realm)?
            .current
            .get(&alg)
            .map(|k| k.kid().to_owned())
    }

    /// The PEM public key of the realm's current `alg` key.
    pub fn public_key_pem(&self, realm: &str, alg: SigningAlg) -> Option<String> {
        self.shared
            .realms()
            .get(realm)?
            .current
            .get(&alg)
            .map(|k| k.public_key_pem())
    }

    /// A jsonwebtoken encoding key for the realm's current `alg` key (benches).
    pub fn encoding_key(&self, realm: &str, alg: SigningAlg) -> Option<jsonwebtoken::EncodingKey> {
        self.shared
            .realms()
            .get(realm)?
            .current
            .get(&alg)
            .and_then(|k| k.encoding_key().ok())
    }

    /// Adds a new current key for `alg`; returns its kid.
    pub fn rotate(
        &self,
        realm: &str,
        alg: SigningAlg,
        rotation: Rotation,
    ) -> Result<String, MintError> {
        let mut realms = self.shared.realms_mut();
        let realm_state = realms
            .get_mut(realm)
            .ok_or_else(|| MintError::UnknownRealm(realm.to_owned()))?;
        realm_state
            .rotate(alg, rotation)
            .map_err(|e| MintError::Signing(e.0))
    }

    /// Takes a key out of the realm's JWKS; `false` if it was not published.
    pub fn remove_key(&self, realm: &str, kid: &str) -> bool {
        self.shared
            .realms_mut()
            .get_mut(realm)
            .is_some_and(|r| r.remove(kid))
    }

    /// `Some(outage)` takes the IdP down; `None` brings it back.
    pub fn set_outage(&self, outage: Option<Outage>) {
        self.shared.knobs().outage = outage;
    }

    /// Serve a body that is not JSON on every endpoint.
    pub fn set_garbage(&self, on: bool) {
        self.shared.knobs().garbage = on;
    }

    /// Add unusable entries (bad modulus, unknown kty/alg/curve, `oct`, non-objects) to every JWKS.
    pub fn set_junk_entries(&self, on: bool) {
        self.shared.knobs().junk_entries = on;
    }

    /// `Cache-Control: max-age=N` on JWKS responses (`None`: `no-cache`).
    pub fn set_max_age(&self, seconds: Option<u64>) {
        self.shared.knobs().max_age = seconds;
    }

    /// Delay every response.
    /// Shifts the `Date` header of every answer by `seconds` (a drifting provider clock).
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.knobs().clock_offset_seconds = seconds;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.knobs().latency = latency;
    }

    /// Requests `realm`'s `endpoint` has received.
    pub fn requests(&self, realm: &str, endpoint: Endpoint) -> u64 {
        self.shared.requests(realm, endpoint)
    }

    pub fn jwks_requests(&self, realm: &str) -> u64 {
        self.requests(realm, Endpoint::Jwks)
    }

    pub fn discovery_requests(&self, realm: &str) -> u64 {
        self.requests(realm, Endpoint::Discovery)
    }

    /// Life of the access and ID tokens the token endpoint issues from now on (default 300 s).
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.shared.knobs().access_token_lifetime = lifetime;
    }

    /// Adds or replaces a user of `realm`; `false` if the realm does not exist.
    pub fn add_user(&self, realm: &str, user: DevUser) -> bool {
        self.shared
            .with_accounts(realm, |accounts| {
                accounts.users.insert(user.username.clone(), user);
            })
            .is_some()
    }

    /// Adds or replaces a client of `realm` (e.g. with a back-channel logout URL).
    pub fn add_client(&self, realm: &str, client: DevClient) -> bool {
        self.shared
            .with_accounts(realm, |accounts| {
                accounts.clients.insert(client.id.clone(), client);
            })
            .is_some()
    }

    /// `(sid, username)` of the realm's live SSO sessions.
    pub fn sessions(&self, realm: &str) -> Vec<(String, String)> {
        self.shared
            .with_accounts(realm, |accounts| accounts.sessions())
            .unwrap_or_default()
    }

    /// Ends SSO session `sid` as Keycloak's admin "Sign out" does: its refresh tokens stop
    /// working and every client of the session with a back-channel logout URL is told.
    pub async fn end_session(&self, realm: &str, sid: &str) -> Vec<BackchannelDelivery> {
        let ended = self
            .shared
            .with_accounts(realm, |accounts| accounts.end_session(sid, None))
            .flatten();
        match ended {
            Some(ended) => backchannel::deliver(&self.shared, realm, sid, ended).await,
            None => Vec::new(),
        }
    }

    /// Revokes the token with this `jti`: introspection answers `active: false` from now on.
    pub fn revoke_token(&self, realm: &str, jti: &str) {
        self.shared.with_accounts(realm, |accounts| {
            accounts.revoked_jtis.insert(jti.to_owned());
        });
    }

    /// An opaque (non-JWT) token standing for the claims of `builder`, known to the realm's
    /// introspection endpoint only.
    pub fn opaque_token(&self, realm: &str, builder: &TokenBuilder) -> String {
        let token = keys::random_id(32);
        self.shared.with_accounts(realm, |accounts| {
            accounts
                .opaque_tokens
                .insert(token.clone(), builder.claims().clone());
        });
        token
    }

    /// Introspection requests `realm` has received.
    pub fn introspection_requests(&self, realm: &str) -> u64 {
        self.requests(realm, Endpoint::Introspection)
    }

    /// A logout token of `realm` for `client`, without `sid` and `sub` (add them).
    pub fn logout_token(&self, realm: &str, client: &str) -> TokenBuilder {
        backchannel::logout_token(self.shared.clone(), realm, client)
    }

    /// Back-channel logout deliveries made so far.
    pub fn deliveries(&self, realm: &str) -> Vec<BackchannelDelivery> {
        self.shared
            .with_accounts(realm, |accounts| accounts.deliveries.clone())
            .unwrap_or_default()
    }

    /// Token requests of `grant_type` received so far (`authorization_code`, `refresh_token`…).
    pub fn grants(&self, realm: &str, grant_type: &str) -> u64 {
        self.shared
            .with_accounts(realm, |accounts| accounts.grants(grant_type))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
