//! Token minting: a builder with Keycloak-shaped defaults (an access token of user `alice` for
//! client `web-app`, audience `orders-api` and `account`, five minutes of life) and one method per
//! deviation a test needs — expired, not yet valid, ID or refresh token, another key, a forged
//! header or extra header fields (`crit`), or the HS256-with-the-RSA-public-key confusion attack.

use super::keys::{random_id, SigningAlg};
use super::state::Shared;
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The audience the builder adds by default besides Keycloak's `account`.
pub const DEFAULT_AUDIENCE: &str = "orders-api";
/// The client (`azp`) the builder uses by default.
pub const DEFAULT_CLIENT: &str = "web-app";

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    UnknownRealm(String),
    UnknownKid(String),
    Signing(&'static str),
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::UnknownRealm(realm) => {
                write!(f, "the development IdP has no realm `{realm}`")
            }
            MintError::UnknownKid(kid) => write!(f, "the realm has no key `{kid}`"),
            MintError::Signing(why) => write!(f, "signing failed: {why}"),
        }
    }
}

impl std::error::Error for MintError {}

/// What signs the token.
#[derive(Debug, Clone)]
enum Signer {
    /// The realm's current key for the algorithm.
    Current(SigningAlg),
    /// A specific published or retired key, with its own algorithm.
    Kid(String),
    /// HS512 with the realm secret (Keycloak refresh tokens).
    RefreshSecret,
    /// HS256 keyed with the PEM of the realm's RSA public key (the key-confusion attack).
    RsaPublicKeyAsHmacSecret,
}

/// Builds one token; get it from [`super::DevIdp::token`].
#[derive(Clone)]
pub struct TokenBuilder {
    shared: Arc<Shared>,
    realm: String,
    claims: Map<String, Value>,
    signer: Signer,
    /// `Some(None)` removes the `kid` header; `Some(Some(k))` forges it.
    kid_override: Option<Option<String>>,
    header_alg_override: Option<String>,
    /// Extra JOSE header fields (e.g. `crit`), written after `alg`, `typ` and `kid`.
    header_fields: Map<String, Value>,
    now: i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TokenBuilder {
    pub(super) fn new(shared: Arc<Shared>, realm: &str) -> Self {
        let now = unix_now();
        let issuer = shared.issuer(realm);
        let claims = json!({
            "exp": now + 300,
            "iat": now,
            "jti": random_id(12),
            "iss": issuer,
            "aud": [DEFAULT_AUDIENCE, "account"],
            "sub": "0b9e6a4c-alice",
            "typ": "Bearer",
            "azp": DEFAULT_CLIENT,
            "sid": random_id(12),
            "acr": "1",
            "scope": "openid profile email",
            "realm_access": {"roles": [format!("default-roles-{realm}"), "offline_access", "uma_authorization"]},
            "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
            "email_verified": true,
            "preferred_username": "alice",
        });
        TokenBuilder {
            shared,
            realm: realm.to_owned(),
            claims: match claims {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            signer: Signer::Current(SigningAlg::RS256),
            kid_override: None,
            header_alg_override: None,
            header_fields: Map::new(),
            now,
        }
    }

    /// Sets any claim (replacing a default).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim (e.g. `exp`, `aud`, `iss`).
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    pub fn username(self, name: &str) -> Self {
        self.claim("preferred_username", name)
    }

    /// The authorized party (`azp`), i.e. the client the token was issued to.
    pub fn client(self, client: &str) -> Self {
        self.claim("azp", client)
    }

    /// A client-credentials token: `azp` and `client_id` are the client, subject its service account.
    pub fn service_account(self, client: &str) -> Self {
        self.claim("azp", client)
            .claim("client_id", client)
            .claim("preferred_username", format!("service-account-{client}"))
            .claim("sub", format!("service-account-{client}"))
    }

    /// `aud` as one string.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// `aud` as an array.
    pub fn audiences(self, auds: &[&str]) -> Self {
        self.claim("aud", json!(auds))
    }

    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// The `scope` string (space-separated, as Keycloak writes it).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    pub fn realm_roles(self, roles: &[&str]) -> Self {
        self.claim("realm_access", json!({ "roles": roles }))
    }

    /// Adds `resource_access.<client>.roles`.
    pub fn client_roles(mut self, client: &str, roles: &[&str]) -> Self {
        let access = self
            .claims
            .entry("resource_access")
            .or_insert_with(|| json!({}));
        if let Value::Object(map) = access {
            map.insert(client.to_owned(), json!({ "roles": roles }));
        }
        self
    }

    /// Group memberships as Keycloak's group mapper writes them (full paths: `/team/sub`).
    pub fn groups(self, groups: &[&str]) -> Self {
        self.claim("groups", json!(groups))
    }

    /// Signs with the realm's current key for `alg`.
    pub fn alg(mut self, alg: SigningAlg) -> Self {
        self.signer = Signer::Current(alg);
        self
    }

    /// Signs with a specific key (published or retired), using its algorithm.
    pub fn signed_by(mut self, kid: &str) -> Self {
        self.signer = Signer::Kid(kid.to_owned());
        self
    }

    /// Writes this `kid` in the header whatever key signs.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid_override = Some(Some(kid.to_owned()));
        self
    }

    /// Leaves `kid` out of the header.
    pub fn without_kid(mut self) -> Self {
        self.kid_override = Some(None);
        self
    }

    /// Writes this `alg` in the header whatever signs (`none`, or a mismatch with the key).
    pub fn header_alg(mut self, alg: &str) -> Self {
        self.header_alg_override = Some(alg.to_owned());
        self
    }

    /// Adds a field to the JOSE header (replacing `alg`, `typ` or `kid` if named so), e.g.
    /// `crit`; the token is signed over the header as written.
    pub fn header_field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header_fields.insert(name.to_owned(), value.into());
        self
    }

    /// Expires `seconds` after the builder's clock (negative: already expired).
    pub fn expires_in(self, seconds: i64) -> Self {
        let exp = self.now + seconds;
        self.claim("exp", exp)
    }

    /// Expired ten minutes ago, issued fifteen minutes ago.
    pub fn expired(self) -> Self {
        let now = self.now;
        self.claim("exp", now - 600).claim("iat", now - 900)
    }

    /// `nbf` this many seconds in the future.
    pub fn not_before_in(self, seconds: i64) -> Self {
        let nbf = self.now + seconds;
        self.claim("nbf", nbf)
    }

    /// `iat` this many seconds in the future (exp moved along).
    pub fn issued_in_future(self, seconds: i64) -> Self {
        let now = self.now;
        self.claim("iat", now + seconds)
            .claim("exp", now + seconds + 300)
    }

    /// Shifts the builder's clock (affects `iat`/`exp` set from now on and the defaults).
    pub fn at(mut self, unix_seconds: i64) -> Self {
        let shift = unix_seconds - self.now;
        self.now = unix_seconds;
        for name in ["iat", "exp"] {
            if let Some(value) = self.claims.get(name).and_then(Value::as_i64) {
                self.claims.insert(name.into(), json!(value + shift));
            }
        }
        self
    }

    /// A Keycloak ID token: `typ: ID`, audience the client.
    pub fn id_token(self) -> Self {
        let client = self
            .claims
            .get("azp")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_CLIENT)
            .to_owned();
        self.claim("typ", "ID")
            .claim("aud", client)
            .without_claim("scope")
            .without_claim("realm_access")
            .without_claim("resource_access")
    }

    /// A Keycloak refresh token: `typ: Refresh`, HS512 with the realm secret, audience the issuer.
    pub fn refresh_token(mut self) -> Self {
        let issuer = self.shared.issuer(&self.realm);
        self.signer = Signer::RefreshSecret;
        self.claim("typ", "Refresh").claim("aud", issuer)
    }

    /// HS256 keyed with the realm's RSA public key PEM: the classic key-confusion forgery.
    pub fn hs256_with_rsa_public_key(mut self) -> Self {
        self.signer = Signer::RsaPublicKeyAsHmacSecret;
        self
    }

    /// The claims as they stand (for assertions).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Signs and returns the compact JWT.
    pub fn mint(&self) -> Result<String, MintError> {
        let realms = self.shared.realms();
        let realm = realms
            .get(&self.realm)
            .ok_or_else(|| MintError::UnknownRealm(self.realm.clone()))?;
        let (key, alg_name) = match &self.signer {
            Signer::Current(alg) => (realm.current.get(alg).cloned(), alg.as_str()),
            Signer::Kid(kid) => {
                let key = realm
                    .key_by_kid(kid)
                    .ok_or_else(|| MintError::UnknownKid(kid.clone()))?;
                let alg = key.alg().as_str();
                (Some(key), alg)
            }
            Signer::RefreshSecret => (None, "HS512"),
            Signer::RsaPublicKeyAsHmacSecret => (None, "HS256"),
        };
        let default_kid = key.as_ref().map(|k| k.kid().to_owned());
        let kid = match &self.kid_override {
            Some(kid) => kid.clone(),
            None => default_kid,
        };
        let mut header = json!({
            "alg": self.header_alg_override.as_deref().unwrap_or(alg_name),
            "typ": "JWT",
        });
        if let Value::Object(map) = &mut header {
            if let Some(kid) = kid {
                map.insert("kid".into(), Value::String(kid));
            }
            map.extend(self.header_fields.clone());
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(self.claims.clone()).to_string())
        );
        let signature = match (&self.signer, key) {
            (Signer::RefreshSecret, _) => {
                let secret = hmac::Key::new(hmac::HMAC_SHA512, &realm.refresh_secret);
                hmac::sign(&secret, signing_input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
            (Signer::RsaPublicKeyAsHmacSecret, _) => {
                let rsa = realm
                    .current
                    .get(&SigningAlg::RS256)
                    .ok_or(MintError::Signing("the realm has no RSA key"))?;
                let secret = hmac::Key::new(hmac::HMAC_SHA256, rsa.public_key_pem().as_bytes());
                hmac::sign(&secret, signing_input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
            (Signer::Current(alg), Some(key)) => key
                .sign(*alg, signing_input.as_bytes())
                .map_err(|e| MintError::Signing(e.0))?,
            (Signer::Kid(_), Some(key)) => key
                .sign(key.alg(), signing_input.as_bytes())
                .map_err(|e| MintError::Signing(e.0))?,
            (_, None) => return Err(MintError::Signing("no key for this algorithm")),
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}
