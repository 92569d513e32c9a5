//! The token introspection endpoint (RFC 7662) as Keycloak serves it:
//! `POST /realms/{realm}/protocol/openid-connect/token/introspect` with the client's credentials
//! and `token=…`. A token is active when a key of the realm signed it, it has not expired, its
//! `jti` was not revoked (`DevIdp::revoke_token`) and its SSO session (`sid`) has not ended. An
//! active answer carries the token's main claims (roles and groups included); an inactive one
//! only `active: false`. Opaque tokens made with `DevIdp::opaque_token` introspect alike.

use super::grants::authenticate_client;
use super::state::Shared;
use super::verify::{signed_claims, unix_now};
use super::web::{json, oauth_error, parse_form, HttpResponse};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Answers an introspection request of `realm`.
pub fn introspect(
    shared: &Arc<Shared>,
    realm: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> HttpResponse {
    let form = parse_form(body);
    if authenticate_client(shared, realm, headers, &form).is_none() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Authentication failed.",
        );
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Token not provided.",
        );
    };
    let opaque = shared
        .with_accounts(realm, |accounts| {
            accounts.opaque_tokens.get(token.as_str()).cloned()
        })
        .flatten();
    let claims = opaque
        .or_else(|| signed_claims(shared, realm, token))
        .filter(|claims| live(shared, realm, claims));
    match claims {
        Some(claims) => {
            let mut answer = Map::new();
            answer.insert("active".into(), Value::Bool(true));
            for name in [
                "sub",
                "azp",
                "exp",
                "iat",
                "jti",
                "scope",
                "sid",
                "typ",
                "iss",
                "aud",
                "realm_access",
                "resource_access",
                "groups",
                "preferred_username",
            ] {
                if let Some(value) = claims.get(name) {
                    answer.insert(name.into(), value.clone());
                }
            }
            if let Some(client) = claims.get("azp") {
                answer.insert("client_id".into(), client.clone());
            }
            if let Some(username) = claims.get("preferred_username") {
                answer.insert("username".into(), username.clone());
            }
            answer.insert("token_type".into(), Value::String("Bearer".into()));
            json(StatusCode::OK, &Value::Object(answer))
        }
        None => json(StatusCode::OK, &json!({ "active": false })),
    }
}

/// Not expired, not revoked, its session not ended.
fn live(shared: &Shared, realm: &str, claims: &Map<String, Value>) -> bool {
    let unexpired = claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp > unix_now());
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    unexpired
        && shared
            .with_accounts(realm, |accounts| {
                !accounts.revoked_jtis.contains(jti) && !accounts.ended_sids.contains(sid)
            })
            .unwrap_or(false)
}
