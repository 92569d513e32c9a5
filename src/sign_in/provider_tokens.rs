//! Checks of the two tokens a provider sends the gateway as a client, not as an API: the ID
//! token of a sign-in (OIDC Core §3.1.3.7: signature, `iss`, `aud` = our client, `azp`, `exp`,
//! `nonce`) and the logout token of a back-channel logout (OIDC Back-Channel Logout §2.6:
//! signature, `iss`, `aud`, `iat`, the logout event, `sid` or `sub`, and no `nonce`). Both are
//! verified with the provider's key set, like access tokens.

use crate::oidc::authenticator::verify_signature_refetching;
use crate::oidc::provider::{unix_now, Provider};
use crate::oidc::verify::{split, TokenParts};
use crate::oidc::{AuthFailure, AuthReason};
use serde_json::Value;
use std::sync::Arc;

/// The back-channel logout event's name in `events`.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How old a logout token without `exp` may be.
const LOGOUT_TOKEN_MAX_AGE: u64 = 600;

/// Who an ID token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenFacts {
    pub subject: String,
    /// The provider's session id; empty when the provider sends none.
    pub sid: String,
}

/// Whom a logout token ends: the sessions of `sid`, or all sessions of `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutTarget {
    pub sid: Option<String>,
    pub subject: Option<String>,
}

fn refused(why: impl Into<String>) -> AuthFailure {
    AuthFailure::new(AuthReason::Malformed, why)
}

/// Verifies the signature of `token` with `provider`'s keys (one refetch on an unknown kid).
async fn verified_parts<'a>(
    provider: &Arc<Provider>,
    token: &'a str,
) -> Result<TokenParts<'a>, AuthFailure> {
    let parts = split(token)?;
    let keys = provider.keys().ok_or_else(|| {
        AuthFailure::new(
            AuthReason::ProviderUnavailable,
            "the provider has no keys yet",
        )
    })?;
    verify_signature_refetching(provider, &parts, keys)
        .await
        .map(|()| parts)
}

fn string_claim<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload.get(name).and_then(Value::as_str)
}

fn audiences(payload: &Value) -> Vec<&str> {
    match payload.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The issuer a provider's tokens must name, and its clock skew.
struct Expected {
    issuer: String,
    skew: u64,
}

fn expected(provider: &Provider) -> Result<Expected, AuthFailure> {
    let rules = provider.rules().ok_or_else(|| {
        AuthFailure::new(
            AuthReason::ProviderUnavailable,
            "the provider's issuer is not known yet",
        )
    })?;
    Ok(Expected {
        issuer: rules.issuer.clone(),
        skew: rules.clock_skew_seconds,
    })
}

fn check_issuer(payload: &Value, expected: &Expected) -> Result<u64, AuthFailure> {
    if string_claim(payload, "iss") != Some(expected.issuer.as_str()) {
        return Err(AuthFailure::new(
            AuthReason::UnknownIssuer,
            format!("the token's issuer is not `{}`", expected.issuer),
        ));
    }
    Ok(expected.skew)
}

/// Checks the ID token of a sign-in for client `client_id` with the `nonce` the gateway sent.
pub async fn check_id_token(
    provider: &Arc<Provider>,
    token: &str,
    client_id: &str,
    nonce: &str,
) -> Result<IdTokenFacts, AuthFailure> {
    let parts = verified_parts(provider, token).await?;
    check_id_claims(
        parts.claims.document(),
        &expected(provider)?,
        client_id,
        nonce,
        unix_now(),
    )
}

fn check_id_claims(
    payload: &Value,
    expected: &Expected,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<IdTokenFacts, AuthFailure> {
    let skew = check_issuer(payload, expected)?;
    let audiences = audiences(payload);
    if !audiences.contains(&client_id) {
        return Err(AuthFailure::new(
            AuthReason::AudienceMismatch,
            format!("the ID token is not for client `{client_id}`"),
        ));
    }
    let azp = string_claim(payload, "azp");
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(client_id) {
        return Err(AuthFailure::new(
            AuthReason::UnauthorizedParty,
            "the ID token's `azp` is not this client",
        ));
    }
    let exp = payload
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| refused("the ID token has no numeric `exp`"))?;
    if exp.saturating_add(skew) <= now {
        return Err(AuthFailure::new(
            AuthReason::Expired,
            "the ID token has expired",
        ));
    }
    if let Some(typ) = string_claim(payload, "typ") {
        if !typ.eq_ignore_ascii_case("ID") {
            return Err(AuthFailure::new(
                AuthReason::WrongTokenType,
                format!(
                    "a `{}` token was sent as the ID token",
                    typ.chars().take(20).collect::<String>()
                ),
            ));
        }
    }
    if string_claim(payload, "nonce") != Some(nonce) {
        return Err(refused(
            "the ID token's `nonce` is not the one of this sign-in (replayed?)",
        ));
    }
    let subject = string_claim(payload, "sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refused("the ID token has no `sub`"))?;
    Ok(IdTokenFacts {
        subject: subject.to_owned(),
        sid: string_claim(payload, "sid").unwrap_or_default().to_owned(),
    })
}

/// Checks a back-channel logout token sent to client `client_id`.
pub async fn check_logout_token(
    provider: &Arc<Provider>,
    token: &str,
    client_id: &str,
) -> Result<LogoutTarget, AuthFailure> {
    let parts = verified_parts(provider, token).await?;
    check_logout_claims(
        parts.claims.document(),
        &expected(provider)?,
        client_id,
        unix_now(),
    )
}

fn check_logout_claims(
    payload: &Value,
    expected: &Expected,
    client_id: &str,
    now: u64,
) -> Result<LogoutTarget, AuthFailure> {
    let skew = check_issuer(payload, expected)?;
    if !audiences(payload).contains(&client_id) {
        return Err(AuthFailure::new(
            AuthReason::AudienceMismatch,
            format!("the logout token is not for client `{client_id}`"),
        ));
    }
    let iat = payload
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| refused("the logout token has no numeric `iat`"))?;
    if iat > now.saturating_add(skew) {
        return Err(AuthFailure::new(
            AuthReason::IssuedInFuture,
            "the logout token was issued in the future",
        ));
    }
    match payload.get("exp").map(Value::as_u64) {
        Some(Some(exp)) if exp.saturating_add(skew) <= now => {
            return Err(AuthFailure::new(
                AuthReason::Expired,
                "the logout token has expired",
            ))
        }
        Some(None) => return Err(refused("the logout token's `exp` is not a number")),
        None if iat.saturating_add(LOGOUT_TOKEN_MAX_AGE) < now => {
            return Err(AuthFailure::new(
                AuthReason::Expired,
                "the logout token is too old",
            ))
        }
        _ => {}
    }
    if !payload
        .get("events")
        .and_then(Value::as_object)
        .is_some_and(|events| events.get(LOGOUT_EVENT).is_some_and(Value::is_object))
    {
        return Err(refused("the logout token has no back-channel logout event"));
    }
    if payload.get("nonce").is_some() {
        return Err(refused("a logout token must not carry a `nonce`"));
    }
    let non_empty = |name| {
        string_claim(payload, name)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let target = LogoutTarget {
        sid: non_empty("sid"),
        subject: non_empty("sub"),
    };
    if target.sid.is_none() && target.subject.is_none() {
        return Err(refused("the logout token names neither `sid` nor `sub`"));
    }
    Ok(target)
}

#[cfg(test)]
mod tests;
