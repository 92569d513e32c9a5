//! Token introspection (RFC 7662) for routes with `auth.introspect: true`: after a token passed
//! local verification, the provider's discovered `introspection_endpoint` says whether it is
//! still active (a JWT stays valid until `exp` after a logout at Keycloak). The gateway
//! authenticates with its `client` credentials.
//!
//! Answers are cached per token for `introspection.cache_ttl` (never past the token's `exp`),
//! keyed by a SHA-256 of the token — the token itself is not kept. One request per token is in
//! flight at a time: concurrent requests with the same token wait for its answer. The cache is
//! bounded (`max_entries`; a full cache drops expired answers, then the oldest half). A failing
//! endpoint is [`IntrospectionError`]: the request path answers 503 (fail closed).

use super::client::ClientCredentials;
use super::introspection_cache::{hash, Answer, IntrospectionError};
use super::provider::{unix_now, Provider};
use crate::policy::Identity;
use std::sync::Arc;

/// Whether `token` (verified locally, expiring at `exp`; or opaque, `exp` unknown) is still
/// active at `provider`: `Some(identity)` from the introspection response when it is.
pub async fn introspect(
    provider: &Provider,
    client: &ClientCredentials,
    token: &str,
    exp: Option<u64>,
) -> Result<Answer, IntrospectionError> {
    let cache = &provider.introspection;
    let key = hash(token);
    let now = unix_now();
    if let Some(answer) = cache.cached(&key, now) {
        return Ok(answer);
    }
    let flight = cache.flight(key);
    let answer = flight
        .get_or_init(|| async {
            let answer = ask(provider, client, token).await;
            if let Ok(identity) = &answer {
                let ttl = provider.settings.introspection_ttl.as_secs();
                // An opaque token's expiry is only known from the answer.
                let exp = exp.or_else(|| {
                    identity.as_ref().and_then(|i| {
                        i.claims()
                            .get("exp")
                            .and_then(crate::policy::RawJson::as_u64)
                    })
                });
                let until = exp.map_or(now + ttl, |exp| exp.min(now + ttl));
                let entries = provider.settings.introspection_entries;
                cache.remember(key, identity.clone(), until, now, entries);
            }
            answer
        })
        .await
        .clone();
    cache.land(&key);
    answer
}

/// One call of the introspection endpoint.
async fn ask(
    provider: &Provider,
    client: &ClientCredentials,
    token: &str,
) -> Result<Answer, IntrospectionError> {
    let endpoint = provider
        .endpoints()
        .and_then(|e| e.introspection.clone())
        .ok_or_else(|| IntrospectionError("no introspection_endpoint in discovery".into()))?;
    let mut form = vec![
        ("token", token.to_owned()),
        ("token_type_hint", "access_token".to_owned()),
    ];
    let authorization = client.authenticate(&mut form);
    let (status, body) = provider
        .fetcher()
        .post_form(&endpoint, &form, authorization.as_deref())
        .await
        .map_err(|error| IntrospectionError(error.to_string()))?;
    if status != reqwest::StatusCode::OK {
        return Err(IntrospectionError(format!("{endpoint} answered {status}")));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        IntrospectionError(format!("{endpoint} answered something other than JSON"))
    })?;
    let active = answer
        .get("active")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| IntrospectionError(format!("{endpoint} answered without `active`")))?;
    Ok(active.then(|| Arc::new(Identity::from_claims(answer))))
}
