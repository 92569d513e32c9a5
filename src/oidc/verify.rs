//! Pure token verification: split and decode (a header with `crit` is refused), signature
//! against a key set, then the claims (`exp` required; `exp`, `nbf`, `iat` numeric when present;
//! issuer, audience, authorized party, `typ`). No I/O, and the clock is a parameter, so every
//! rule is tested deterministically (tests in `verify/tests.rs`).

use super::failure::{AuthFailure, AuthReason};
use super::jose_header::{self, HeaderError, JoseHeader};
use super::keys::{KeyLookup, KeySet};
use crate::policy::{Claims, RawJson};
use base64::Engine;
use jsonwebtoken::Algorithm;
use std::borrow::Cow;

/// A token split into its parts; the payload is decoded (not yet trusted).
pub struct TokenParts<'a> {
    pub header: JoseHeader,
    pub claims: Claims,
    signing_input: &'a str,
    signature: &'a str,
}

/// Splits `token` and decodes header and payload. `alg: none` is refused here.
pub fn split(token: &str) -> Result<TokenParts<'_>, AuthFailure> {
    let malformed = |why: &str| {
        AuthFailure::new(
            AuthReason::Malformed,
            format!("the token is not a valid JWT: {why}"),
        )
    };
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("expected three dot-separated parts"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or_else(|| malformed("expected three dot-separated parts"))?;
    if payload_b64.contains('.') || signature.is_empty() {
        return Err(malformed(
            "expected three dot-separated parts with a signature",
        ));
    }
    let header = jose_header::read(header_b64).map_err(|error| match error {
        HeaderError::Unsigned => AuthFailure::new(
            AuthReason::AlgorithmNotAllowed,
            "unsigned tokens (`alg: none`) are never accepted",
        ),
        HeaderError::Malformed(why) => malformed(why),
    })?;
    // The gateway understands no JWS extension, so any `crit` (even `b64`, RFC 7797) means a
    // token it must not accept (RFC 7515 §4.1.11).
    if header.has_crit {
        return Err(AuthFailure::new(
            AuthReason::UnsupportedCriticalHeader,
            "the token's header lists critical extensions (`crit`); none is supported",
        ));
    }
    let payload_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload_b64.trim_end_matches('='))
        .map_err(|_| malformed("its payload is not base64url"))?;
    let payload_text =
        String::from_utf8(payload_bytes).map_err(|_| malformed("its payload is not JSON"))?;
    let claims = Claims::parse(payload_text).map_err(|error| malformed(&error.to_string()))?;
    Ok(TokenParts {
        header,
        claims,
        signing_input,
        signature,
    })
}

/// Verifies the signature with the matching key; returns the kid used.
pub fn verify_signature(
    parts: &TokenParts<'_>,
    keys: &KeySet,
    allowed: &[Algorithm],
) -> Result<(), AuthFailure> {
    let algorithm = parts.header.alg;
    if !allowed.contains(&algorithm) {
        return Err(AuthFailure::new(
            AuthReason::AlgorithmNotAllowed,
            format!(
                "algorithm {algorithm:?} is not allowed for this provider (allowed: {allowed:?})"
            ),
        ));
    }
    let key = match keys.find(parts.header.kid.as_deref(), algorithm) {
        KeyLookup::Found(key) => key,
        KeyLookup::AlgorithmMismatch => {
            return Err(AuthFailure::new(
                AuthReason::AlgorithmNotAllowed,
                format!("the token's algorithm {algorithm:?} does not match its signing key"),
            ))
        }
        KeyLookup::UnknownKid => {
            return Err(AuthFailure::new(
                AuthReason::UnknownKid,
                match &parts.header.kid {
                    Some(kid) => format!("no key `{kid}` in the provider's key set"),
                    None => "the token has no `kid` and the provider has several keys".into(),
                },
            ))
        }
    };
    let message = parts.signing_input.as_bytes();
    let verified = match key.parsed.get(algorithm) {
        Some(parsed) => super::parsed_keys::verify(parsed, message, parts.signature),
        // HMAC (a configured shared secret) has no parsed form.
        None => jsonwebtoken::crypto::verify(parts.signature, message, &key.key, algorithm)
            .unwrap_or(false),
    };
    if verified {
        Ok(())
    } else {
        Err(AuthFailure::new(
            AuthReason::BadSignature,
            "the signature does not verify",
        ))
    }
}

/// The claim checks of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub authorized_parties: Vec<String>,
    pub token_types: Option<Vec<String>>,
    pub clock_skew_seconds: u64,
}

/// A NumericDate claim: `Ok(None)` when absent, refused when present but not a number (a
/// string `nbf` must not pass as "no `nbf`").
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, AuthFailure> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or_else(|| {
            AuthFailure::new(
                AuthReason::Malformed,
                format!("the token's `{name}` claim is not a number"),
            )
        }),
    }
}

/// One registered-claim check: the claims, the provider's rules, and the time (Unix seconds).
pub type ClaimCheck = fn(&Claims, &ClaimRules, f64) -> Result<(), AuthFailure>;

/// The registered-claim checks, by claim name, in the order they run. [`check_claims`] stops at
/// the first failure; a decision trace runs them all (each is the same function either way).
pub const CLAIM_CHECKS: [(&str, ClaimCheck); 7] = [
    ("exp", check_expiry),
    ("nbf", check_not_before),
    ("iat", check_issued_at),
    ("iss", check_issuer),
    ("aud", check_audience),
    ("azp", check_authorized_party),
    ("typ", check_token_type),
];

/// Checks the registered claims against `rules` at Unix time `now`.
pub fn check_claims(claims: &Claims, rules: &ClaimRules, now: u64) -> Result<(), AuthFailure> {
    let now = now as f64;
    for (_, check) in CLAIM_CHECKS {
        check(claims, rules, now)?;
    }
    Ok(())
}

fn check_expiry(claims: &Claims, rules: &ClaimRules, now: f64) -> Result<(), AuthFailure> {
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| {
        AuthFailure::new(
            AuthReason::Malformed,
            "the token has no numeric `exp` claim",
        )
    })?;
    if exp + rules.clock_skew_seconds as f64 <= now {
        return Err(AuthFailure::new(
            AuthReason::Expired,
            format!("the token expired {}s ago", (now - exp) as u64),
        ));
    }
    Ok(())
}

fn check_not_before(claims: &Claims, rules: &ClaimRules, now: f64) -> Result<(), AuthFailure> {
    match numeric_date(claims, "nbf")? {
        Some(nbf) if nbf > now + rules.clock_skew_seconds as f64 => Err(AuthFailure::new(
            AuthReason::NotYetValid,
            format!("the token is not valid for another {}s", (nbf - now) as u64),
        )),
        _ => Ok(()),
    }
}

fn check_issued_at(claims: &Claims, rules: &ClaimRules, now: f64) -> Result<(), AuthFailure> {
    match numeric_date(claims, "iat")? {
        Some(iat) if iat > now + rules.clock_skew_seconds as f64 => Err(AuthFailure::new(
            AuthReason::IssuedInFuture,
            format!(
                "the token was issued {}s in the future (check the clocks)",
                (iat - now) as u64
            ),
        )),
        _ => Ok(()),
    }
}

fn check_issuer(claims: &Claims, rules: &ClaimRules, _now: f64) -> Result<(), AuthFailure> {
    if claims.get("iss").and_then(RawJson::as_str).as_deref() != Some(rules.issuer.as_str()) {
        return Err(AuthFailure::new(
            AuthReason::UnknownIssuer,
            format!("the token's issuer is not `{}`", rules.issuer),
        ));
    }
    Ok(())
}

fn check_authorized_party(
    claims: &Claims,
    rules: &ClaimRules,
    _now: f64,
) -> Result<(), AuthFailure> {
    if !rules.authorized_parties.is_empty() {
        let azp = claims
            .get("azp")
            .and_then(RawJson::as_str)
            .unwrap_or_default();
        if !rules.authorized_parties.iter().any(|p| *p == azp) {
            return Err(AuthFailure::new(
                AuthReason::UnauthorizedParty,
                format!("client `{azp}` (azp) is not among the authorized parties"),
            ));
        }
    }
    Ok(())
}

fn check_token_type(claims: &Claims, rules: &ClaimRules, _now: f64) -> Result<(), AuthFailure> {
    if let Some(types) = &rules.token_types {
        let typ = claims.get("typ").and_then(RawJson::as_str);
        let typ = typ.as_deref();
        if !typ.is_some_and(|t| types.iter().any(|allowed| allowed.eq_ignore_ascii_case(t))) {
            return Err(AuthFailure::new(
                AuthReason::WrongTokenType,
                format!("token type {} is not accepted (expected {}); ID and refresh tokens are not access tokens", typ.map_or("(none)".into(), |t| format!("`{t}`")), types.join(" or ")),
            ));
        }
    }
    Ok(())
}

fn check_audience(claims: &Claims, rules: &ClaimRules, _now: f64) -> Result<(), AuthFailure> {
    let audiences = &rules.audiences;
    if audiences.is_empty() {
        return Ok(());
    }
    let token_audiences = audiences_of(claims);
    if token_audiences
        .iter()
        .any(|aud| audiences.iter().any(|a| a == aud))
    {
        return Ok(());
    }
    let wanted = audiences.join("` or `");
    let description = if token_audiences.is_empty() {
        format!("the token has no `aud`; expected `{wanted}`: add an Audience mapper for client `{}` in Keycloak", audiences[0])
    } else if token_audiences == ["account"] {
        format!(
            "the token's audience is only `account` (Keycloak's default); expected `{wanted}`: add an Audience mapper for client `{}` in Keycloak",
            audiences[0]
        )
    } else {
        format!(
            "the token's audience ({}) does not include `{wanted}`",
            token_audiences.join(", ")
        )
    };
    Err(AuthFailure::new(AuthReason::AudienceMismatch, description))
}

/// The `aud` claim's values: one string or an array of them.
pub fn audiences_of(claims: &Claims) -> Vec<Cow<'_, str>> {
    let mut found = Vec::new();
    if let Some(aud) = claims.get("aud") {
        match aud.as_str() {
            Some(one) => found.push(one),
            None => aud.for_each_str(|one| found.push(one)),
        }
    }
    found
}

/// For a token whose issuer matches no provider: what is near about it.
pub fn issuer_hint(token_issuer: &str, expected: &str) -> Option<String> {
    if token_issuer.trim_end_matches('/') == expected.trim_end_matches('/') {
        return Some("differs only in a trailing slash".into());
    }
    let (Ok(got), Ok(want)) = (
        reqwest::Url::parse(token_issuer),
        reqwest::Url::parse(expected),
    ) else {
        return None;
    };
    let same_path = got.path().trim_end_matches('/') == want.path().trim_end_matches('/');
    if !same_path {
        return None;
    }
    let scheme = got.scheme() != want.scheme();
    let host = got.host_str() != want.host_str();
    let port = got.port_or_known_default() != want.port_or_known_default();
    match (scheme, host, port) {
        (true, false, _) => Some(format!("differs only in the scheme ({} vs {})", got.scheme(), want.scheme())),
        (false, true, false) => Some(format!(
            "differs only in the host ({} vs {}): Keycloak builds the issuer from the Host it was called with; set its `hostname` option",
            got.host_str().unwrap_or_default(),
            want.host_str().unwrap_or_default()
        )),
        (false, false, true) => Some("differs only in the port".into()),
        (false, true, true) => Some("differs in host and port".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
