//! The mutable state of the development identity provider: its realms (published and retired
//! signing keys, request counters, accounts and sign-in state) and the knobs tests turn.
//! Everything sits behind std locks and atomics so that sync and async callers alike can reach it.

use super::accounts::Accounts;
use super::keys::{EncryptionKey, KeyError, SigningAlg, SigningKey};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// An endpoint of a realm whose requests are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Discovery,
    /// `/protocol/openid-connect/certs`
    Jwks,
    /// `/protocol/openid-connect/auth` (the login page and its form posts)
    Authorization,
    /// `/protocol/openid-connect/token`
    Token,
    /// `/protocol/openid-connect/logout`
    EndSession,
    /// `/protocol/openid-connect/token/introspect`
    Introspection,
}

/// How the IdP is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Every connection is closed as soon as it is accepted (a client sees a transport error).
    Refuse,
    /// Every request is answered `503 Service Unavailable`.
    Unavailable,
}

/// What happens to the key that was current when a realm rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old key stays in the JWKS (Keycloak's "passive" key).
    KeepOld,
    /// The old key leaves the JWKS (Keycloak's "disabled" key); it can still mint tokens.
    RemoveOld,
}

/// Fault-injection and token settings that apply to every realm.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub outage: Option<Outage>,
    /// Serve a body that is not JSON.
    pub garbage: bool,
    /// Add unusable entries to every JWKS.
    pub junk_entries: bool,
    /// `Cache-Control: max-age=N` on JWKS responses.
    pub max_age: Option<u64>,
    /// Delay before each response.
    pub latency: Duration,
    /// Life of the access and ID tokens the token endpoint issues.
    pub access_token_lifetime: Duration,
    /// Seconds added to the `Date` header of every answer (a provider with a drifting clock).
    pub clock_offset_seconds: i64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            outage: None,
            garbage: false,
            junk_entries: false,
            max_age: None,
            latency: Duration::ZERO,
            access_token_lifetime: Duration::from_secs(300),
            clock_offset_seconds: 0,
        }
    }
}

/// One realm: its keys and counters.
pub struct Realm {
    /// Keys in the JWKS, in publication order.
    pub published: Vec<Arc<SigningKey>>,
    /// The key new tokens of each algorithm are signed with.
    pub current: HashMap<SigningAlg, Arc<SigningKey>>,
    /// Keys that left the JWKS but can still sign (to test their tokens are refused).
    pub retired: Vec<Arc<SigningKey>>,
    /// Keycloak's HS512 realm secret (refresh tokens); never published.
    pub refresh_secret: Vec<u8>,
    pub discovery_requests: AtomicU64,
    pub jwks_requests: AtomicU64,
    pub authorization_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub end_session_requests: AtomicU64,
    pub introspection_requests: AtomicU64,
}

impl Realm {
    /// A realm with one key per algorithm (the RSA key serves RS256 and PS256).
    pub fn generate() -> Result<Self, KeyError> {
        let rsa = SigningKey::generate(SigningAlg::RS256)?;
        let pss = rsa.alias(SigningAlg::PS256);
        let keys = [
            rsa,
            pss,
            SigningKey::generate(SigningAlg::ES256)?,
            SigningKey::generate(SigningAlg::EdDSA)?,
        ]
        .map(Arc::new);
        let current = keys.iter().map(|k| (k.alg(), k.clone())).collect();
        Ok(Realm {
            published: keys.to_vec(),
            current,
            retired: Vec::new(),
            refresh_secret: super::keys::random_id(48).into_bytes(),
            discovery_requests: AtomicU64::new(0),
            jwks_requests: AtomicU64::new(0),
            authorization_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            end_session_requests: AtomicU64::new(0),
            introspection_requests: AtomicU64::new(0),
        })
    }

    /// A published or retired key by kid.
    pub fn key_by_kid(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.published
            .iter()
            .chain(self.retired.iter())
            .find(|k| k.kid() == kid)
            .cloned()
    }

    /// Makes a new key current for `alg`; returns its kid.
    pub fn rotate(&mut self, alg: SigningAlg, rotation: Rotation) -> Result<String, KeyError> {
        let new_key = Arc::new(SigningKey::generate(alg)?);
        let kid = new_key.kid().to_owned();
        if let Some(old) = self.current.insert(alg, new_key.clone()) {
            if rotation == Rotation::RemoveOld {
                self.remove(old.kid());
            }
        }
        self.published.push(new_key);
        Ok(kid)
    }

    /// Takes a key out of the JWKS (it stays usable for minting). `false` if it was not published.
    pub fn remove(&mut self, kid: &str) -> bool {
        let Some(position) = self.published.iter().position(|k| k.kid() == kid) else {
            return false;
        };
        let key = self.published.remove(position);
        self.retired.push(key);
        true
    }

    pub fn counter(&self, endpoint: Endpoint) -> &AtomicU64 {
        match endpoint {
            Endpoint::Discovery => &self.discovery_requests,
            Endpoint::Jwks => &self.jwks_requests,
            Endpoint::Authorization => &self.authorization_requests,
            Endpoint::Token => &self.token_requests,
            Endpoint::EndSession => &self.end_session_requests,
            Endpoint::Introspection => &self.introspection_requests,
        }
    }
}

/// Everything the server and the control methods share.
pub struct Shared {
    realms: RwLock<HashMap<String, Realm>>,
    knobs: Mutex<Knobs>,
    /// Users, clients and sign-in state, per realm (same keys as `realms`).
    accounts: Mutex<HashMap<String, Accounts>>,
    encryption_key: EncryptionKey,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
}

impl Shared {
    pub fn new(base_url: String, realms: HashMap<String, Realm>) -> Result<Self, KeyError> {
        let accounts = realms
            .keys()
            .map(|name| (name.clone(), Accounts::new()))
            .collect();
        Ok(Shared {
            realms: RwLock::new(realms),
            knobs: Mutex::new(Knobs::default()),
            accounts: Mutex::new(accounts),
            encryption_key: EncryptionKey::generate()?,
            base_url,
        })
    }

    /// Read access to the realms (a poisoned lock is still usable: the data is plain).
    pub fn realms(&self) -> RwLockReadGuard<'_, HashMap<String, Realm>> {
        self.realms.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn realms_mut(&self) -> RwLockWriteGuard<'_, HashMap<String, Realm>> {
        self.realms.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The accounts of every realm. Never mint a token while holding this guard's data in use
    /// across an `.await`; take what is needed and let it go.
    pub fn accounts(&self) -> MutexGuard<'_, HashMap<String, Accounts>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the accounts of `realm`; `None` if the realm does not exist.
    pub fn with_accounts<T>(&self, realm: &str, f: impl FnOnce(&mut Accounts) -> T) -> Option<T> {
        self.accounts().get_mut(realm).map(f)
    }

    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base_url)
    }

    /// Counts a request; `false` if the realm does not exist.
    pub fn count(&self, realm: &str, endpoint: Endpoint) -> bool {
        match self.realms().get(realm) {
            Some(r) => {
                r.counter(endpoint).fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn requests(&self, realm: &str, endpoint: Endpoint) -> u64 {
        self.realms()
            .get(realm)
            .map_or(0, |r| r.counter(endpoint).load(Ordering::Relaxed))
    }

    /// The OpenID Provider Metadata of a realm, as Keycloak serves it (the useful subset).
    pub fn discovery_document(&self, realm: &str) -> Value {
        let issuer = self.issuer(realm);
        let oidc = format!("{issuer}/protocol/openid-connect");
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{oidc}/auth"),
            "token_endpoint": format!("{oidc}/token"),
            "introspection_endpoint": format!("{oidc}/token/introspect"),
            "userinfo_endpoint": format!("{oidc}/userinfo"),
            "end_session_endpoint": format!("{oidc}/logout"),
            "jwks_uri": format!("{oidc}/certs"),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        })
    }

    /// The realm's JWKS: signing keys, Keycloak's `enc` key, and junk entries when asked.
    pub fn jwks_document(&self, realm: &str, junk_entries: bool) -> Option<Value> {
        let realms = self.realms();
        let realm = realms.get(realm)?;
        let mut keys: Vec<Value> = realm.published.iter().map(|k| k.public_jwk()).collect();
        keys.push(self.encryption_key.public_jwk().clone());
        if junk_entries {
            keys.extend(junk_jwks_entries());
        }
        Some(json!({ "keys": keys }))
    }
}

/// Entries a robust JWKS parser must skip without failing the set.
fn junk_jwks_entries() -> Vec<Value> {
    vec![
        json!({"kid": "junk-bad-modulus", "kty": "RSA", "alg": "RS256", "use": "sig", "n": "!!not base64!!", "e": "AQAB"}),
        json!({"kid": "junk-unknown-kty", "kty": "XYZ", "use": "sig"}),
        json!({"kid": "junk-unknown-alg", "kty": "RSA", "alg": "RS1024", "n": "AQAB", "e": "AQAB"}),
        json!({"kid": "junk-unknown-curve", "kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}),
        json!({"kid": "junk-hmac", "kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "RSA"}),
        json!(42),
        json!("not an object"),
    ]
}
