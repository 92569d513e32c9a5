//! Signed identity for upstreams (`request.identity_assertion: HEADER` on a route): the gateway
//! mints a short-lived JWT about the verified caller — `iss` `portcullis`, `aud` the route's
//! upstream name, `sub`, `azp`, realm roles, groups, `iat`, `exp` (60 s, never past the original
//! token's `exp`) and the original token's `jti` — signed ES256 with a key generated at start.
//! Upstreams verify it with the public keys at `GET /.portcullis/jwks.json` on the gateway
//! listener, so they need not trust the network (like Pomerium's `X-Pomerium-Jwt-Assertion`).
//!
//! Without `assertion_signing.key_file`, each instance generates its key at start and rotates it
//! every 24 h; the previous key stays in the JWKS for another day, so an upstream's cached JWKS
//! keeps working. With a key file (P-256, PKCS#8 PEM), every instance of a fleet signs with the
//! same key, so an upstream can verify with any instance's JWKS; replacing the file and
//! reloading rotates it (the previous key stays published). Keys and minted assertions survive
//! reloads. Minting is cached per (original token, audience) until 10 s before the assertion
//! expires: a warm path costs no signature.

use crate::policy::Identity;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The issuer of assertions.
pub const ISSUER: &str = "portcullis";
/// Where the gateway serves its public keys.
pub const JWKS_PATH: &str = "/.portcullis/jwks.json";
/// Life of one assertion.
const LIFETIME_SECONDS: u64 = 60;
/// A cached assertion is minted again this long before it expires.
const REFRESH_MARGIN_SECONDS: u64 = 10;
const ROTATE_AFTER: Duration = Duration::from_secs(24 * 3600);
const MAX_CACHED: usize = 10_000;

struct SigningKey {
    pair: EcdsaKeyPair,
    /// The PKCS#8 document, to carry the key into a reloaded signer.
    pkcs8: Vec<u8>,
    kid: String,
    created: Instant,
}

/// The PKCS#8 DER of a P-256 private key in PEM (`-----BEGIN PRIVATE KEY-----`), checked.
pub fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("no `-----BEGIN PRIVATE KEY-----` block (PKCS#8 PEM)".into());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the PEM block is not base64".to_owned())?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map_err(|_| "not a P-256 (ES256) private key".to_owned())?;
    Ok(der)
}

impl SigningKey {
    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pair.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Some(SigningKey {
            pair,
            pkcs8: der.to_vec(),
            kid,
            created: Instant::now(),
        })
    }

    fn generate() -> Option<SigningKey> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        SigningKey::from_pkcs8(document.as_ref())
    }

    fn public_jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(32.min(point.len().saturating_sub(1)));
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    fn sign(&self, claims: &Value) -> Option<String> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .ok()?;
        Some(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// (original token id, audience) of a minted assertion; the value is (assertion, unix expiry).
type MintKey = (String, String);

struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
    /// Generated keys rotate by age; a key from a file only when the file changes.
    rotates: bool,
}

/// The gateway's assertion keys and minted assertions.
pub struct AssertionSigner {
    keys: Mutex<KeyRing>,
    minted: Mutex<HashMap<MintKey, (Arc<str>, u64)>>,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What an assertion says about `claims` (the verified token's) for `audience`.
fn assertion_claims(claims: &Value, audience: &str, now: u64) -> Value {
    let get = |name: &str| claims.get(name).cloned().unwrap_or(Value::Null);
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .map_or(now + LIFETIME_SECONDS, |exp| {
            exp.min(now + LIFETIME_SECONDS)
        });
    let mut out = Map::new();
    out.insert("iss".into(), ISSUER.into());
    out.insert("aud".into(), audience.into());
    for name in ["sub", "azp", "jti"] {
        if let Some(value) = claims.get(name) {
            out.insert(name.into(), value.clone());
        }
    }
    if let Some(roles) = claims.get("realm_access").and_then(|r| r.get("roles")) {
        out.insert("realm_roles".into(), roles.clone());
    }
    if claims.get("groups").is_some() {
        out.insert("groups".into(), get("groups"));
    }
    if let Some(issuer) = claims.get("iss") {
        out.insert("idp".into(), issuer.clone());
    }
    out.insert("iat".into(), now.into());
    out.insert("exp".into(), exp.into());
    Value::Object(out)
}

impl AssertionSigner {
    /// A signer with a fresh key; `None` when the system cannot make one.
    pub fn new() -> Option<AssertionSigner> {
        Some(AssertionSigner {
            keys: Mutex::new(KeyRing {
                current: SigningKey::generate()?,
                previous: None,
                rotates: true,
            }),
            minted: Mutex::new(HashMap::new()),
        })
    }

    /// A signer with the key `der` (PKCS#8, see [`pkcs8_from_pem`]); `previous`, the signer
    /// being replaced by a reload, stays published when its key differs.
    pub fn with_key(der: &[u8], previous: Option<&AssertionSigner>) -> Option<AssertionSigner> {
        let current = SigningKey::from_pkcs8(der)?;
        let previous = previous.and_then(|p| {
            let keys = p.keys.lock().unwrap_or_else(PoisonError::into_inner);
            (keys.current.kid != current.kid)
                .then(|| SigningKey::from_pkcs8(&keys.current.pkcs8))
                .flatten()
        });
        Some(AssertionSigner {
            keys: Mutex::new(KeyRing {
                current,
                previous,
                rotates: false,
            }),
            minted: Mutex::new(HashMap::new()),
        })
    }

    /// The key id assertions are signed with now.
    pub fn current_kid(&self) -> String {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.current.kid.clone()
    }

    /// The assertion for `identity` addressed to `audience` (cached while fresh).
    pub fn assertion(&self, identity: &Identity, audience: &str) -> Option<Arc<str>> {
        let claims = identity.claims().document();
        let now = unix_now();
        let token_id = claims
            .get("jti")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}|{}", get_str(claims, "sub"), get_str(claims, "iat")));
        let key = (token_id, audience.to_owned());
        {
            let minted = self.minted.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((jwt, exp)) = minted.get(&key) {
                if *exp > now + REFRESH_MARGIN_SECONDS {
                    return Some(jwt.clone());
                }
            }
        }
        let body = assertion_claims(claims, audience, now);
        let exp = body.get("exp").and_then(Value::as_u64).unwrap_or(now);
        let jwt: Arc<str> = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.rotates && keys.current.created.elapsed() > ROTATE_AFTER {
                if let Some(fresh) = SigningKey::generate() {
                    let old = std::mem::replace(&mut keys.current, fresh);
                    keys.previous = Some(old);
                }
            }
            keys.current.sign(&body)?.into()
        };
        let mut minted = self.minted.lock().unwrap_or_else(PoisonError::into_inner);
        if minted.len() >= MAX_CACHED {
            minted.retain(|_, (_, exp)| *exp > now + REFRESH_MARGIN_SECONDS);
            if minted.len() >= MAX_CACHED {
                minted.clear();
            }
        }
        minted.insert(key, (jwt.clone(), exp));
        Some(jwt)
    }

    /// The public keys (current and previous) as a JWKS document.
    pub fn jwks(&self) -> String {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list = vec![keys.current.public_jwk()];
        if let Some(previous) = &keys.previous {
            if !keys.rotates || previous.created.elapsed() < ROTATE_AFTER * 2 {
                list.push(previous.public_jwk());
            }
        }
        json!({ "keys": list }).to_string()
    }
}

fn get_str<'a>(claims: &'a Value, name: &str) -> std::borrow::Cow<'a, str> {
    match claims.get(name) {
        Some(Value::String(text)) => text.as_str().into(),
        Some(other) => other.to_string().into(),
        None => "".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_verify_with_the_published_key_and_are_cached() {
        let signer = AssertionSigner::new().unwrap();
        let now = unix_now();
        let identity = Identity::from_claims(json!({
            "iss": "https://idp/realms/acme", "sub": "u1", "azp": "app", "jti": "t-1",
            "exp": now + 300, "realm_access": {"roles": ["reader"]}, "groups": ["/eng"],
        }));
        let jwt = signer.assertion(&identity, "orders").unwrap();
        assert_eq!(
            signer.assertion(&identity, "orders").unwrap(),
            jwt,
            "cached"
        );
        assert_ne!(
            signer.assertion(&identity, "billing").unwrap(),
            jwt,
            "per audience"
        );
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&signer.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["orders"]);
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Value>(jwt.as_ref(), &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["realm_roles"], json!(["reader"]));
        assert_eq!(claims["groups"], json!(["/eng"]));
        assert_eq!(claims["jti"], "t-1");
        assert!(claims["exp"].as_u64().unwrap() <= now + LIFETIME_SECONDS + 1);
    }

    #[test]
    fn key_files_are_pkcs8_p256_and_a_changed_key_keeps_the_old_one_published() {
        assert!(pkcs8_from_pem("no pem here").is_err());
        assert!(
            pkcs8_from_pem("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----").is_err()
        );
        let generate = || {
            let rng = SystemRandom::new();
            let document =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(document.as_ref())
            );
            pkcs8_from_pem(&pem).unwrap()
        };
        let (first, second) = (generate(), generate());
        let a = AssertionSigner::with_key(&first, None).unwrap();
        let again = AssertionSigner::with_key(&first, None).unwrap();
        assert_eq!(a.current_kid(), again.current_kid(), "one file, one key id");
        let rotated = AssertionSigner::with_key(&second, Some(&a)).unwrap();
        let jwks = rotated.jwks();
        assert!(jwks.contains(&a.current_kid()) && jwks.contains(&rotated.current_kid()));
    }

    #[test]
    fn an_assertion_never_outlives_the_token() {
        let now = unix_now();
        let claims = assertion_claims(&json!({"sub": "u", "exp": now + 5}), "api", now);
        assert_eq!(claims["exp"], now + 5);
    }
}
