//! The development identity provider reading back its own tokens: refresh tokens presented at the
//! token endpoint (HS512 with the realm secret, `typ: Refresh`, not expired) and the
//! `id_token_hint` of RP-initiated logout (signed by a key the realm publishes, issued by the
//! realm, `typ: ID`; like Keycloak, an expired hint is still accepted).

use super::keys::SigningAlg;
use super::state::Shared;
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn decode_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The claims of a refresh token `realm` issued, if its signature, `typ`, `iss` and `exp` hold.
pub fn refresh_token_claims(
    shared: &Shared,
    realm: &str,
    token: &str,
) -> Option<Map<String, Value>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    if decode_part(header)?.get("alg")? != "HS512" {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    {
        let realms = shared.realms();
        let key = hmac::Key::new(hmac::HMAC_SHA512, &realms.get(realm)?.refresh_secret);
        hmac::verify(&key, signing_input.as_bytes(), &signature).ok()?;
    }
    let claims = decode_part(payload)?;
    let fresh = claims.get("exp")?.as_i64()? > unix_now();
    let issued_here = claims.get("iss")?.as_str()? == shared.issuer(realm);
    (fresh && issued_here && claims.get("typ")? == "Refresh").then_some(claims)
}

fn jsonwebtoken_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// The claims of an ID token signed by a key `realm` publishes (expiry not checked).
pub fn id_token_hint_claims(
    shared: &Shared,
    realm: &str,
    token: &str,
) -> Option<Map<String, Value>> {
    let claims = signed_claims(shared, realm, token)?;
    (claims.get("typ")? == "ID").then_some(claims)
}

/// The claims of any token signed by a key `realm` publishes, with the realm's issuer (expiry
/// not checked).
pub fn signed_claims(shared: &Shared, realm: &str, token: &str) -> Option<Map<String, Value>> {
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let (jwk, alg) = {
        let realms = shared.realms();
        let key = realms
            .get(realm)?
            .published
            .iter()
            .find(|k| k.kid() == kid)?
            .clone();
        (key.public_jwk(), key.alg())
    };
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).ok()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    let mut validation = Validation::new(jsonwebtoken_alg(alg));
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    validation.set_issuer(&[shared.issuer(realm)]);
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .ok()
        .map(|data| data.claims)
}

#[cfg(test)]
mod tests {
    use super::super::DevIdp;
    use super::*;

    #[test]
    fn reads_back_its_own_tokens_only() {
        let idp = DevIdp::start(&["acme", "other"]).expect("idp");
        let shared = &idp.shared;
        let refresh = idp.token("acme").refresh_token().mint().expect("mint");
        assert!(refresh_token_claims(shared, "acme", &refresh).is_some());
        assert!(refresh_token_claims(shared, "other", &refresh).is_none());
        let expired = idp
            .token("acme")
            .expired()
            .refresh_token()
            .mint()
            .expect("mint");
        assert!(refresh_token_claims(shared, "acme", &expired).is_none());
        let access = idp.token("acme").mint().expect("mint");
        assert!(refresh_token_claims(shared, "acme", &access).is_none());
        assert!(
            id_token_hint_claims(shared, "acme", &access).is_none(),
            "typ Bearer"
        );
        let id = idp.token("acme").expired().id_token().mint().expect("mint");
        assert!(id_token_hint_claims(shared, "acme", &id).is_some());
        assert!(id_token_hint_claims(shared, "other", &id).is_none());
        let es = idp
            .token("acme")
            .id_token()
            .alg(SigningAlg::ES256)
            .mint()
            .expect("mint");
        assert!(id_token_hint_claims(shared, "acme", &es).is_some());
        let mut forged = id.clone();
        forged.push('A');
        assert!(id_token_hint_claims(shared, "acme", &forged).is_none());
    }
}
