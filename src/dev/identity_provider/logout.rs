//! The end-session endpoint (`/realms/{realm}/protocol/openid-connect/logout`, `GET` or form
//! `POST`): RP-initiated logout as Keycloak 18+ does it. The `id_token_hint` (verified against
//! the realm's keys) or `client_id` names the initiating client; a `post_logout_redirect_uri`
//! needs one of them and must be registered for that client. The SSO session (the hint's `sid`,
//! else the SSO cookie) ends, its cookie expires, the session's other clients get back-channel
//! logouts, then the browser goes to the redirect URI (with `state`) or sees "You are logged out".

use super::accounts::SESSION_COOKIE;
use super::backchannel::deliver;
use super::state::Shared;
use super::verify::id_token_hint_claims;
use super::web::{
    cookie, error_page, expired_session_cookie, html_page, parse_form, redirect, with_cookie,
    with_params, HttpResponse,
};
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A logout request that passed the checks.
struct Logout {
    /// The SSO session to end, if one is known.
    sid: Option<String>,
    /// The client that asked (no back-channel logout for it).
    initiator: Option<String>,
    /// Where the browser goes afterwards (`state` added).
    redirect: Option<String>,
}

/// Answers the end-session endpoint; `body` is the form of a `POST` (empty for `GET`).
pub async fn end_session(
    shared: Arc<Shared>,
    realm: String,
    query: String,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> HttpResponse {
    let mut params = parse_form(query.as_bytes());
    for (name, value) in parse_form(&body) {
        params.entry(name).or_insert(value);
    }
    let logout = match check(&shared, &realm, &params, &headers) {
        Ok(logout) => logout,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
    };
    if let Some(sid) = &logout.sid {
        let ended = shared
            .with_accounts(&realm, |accounts| {
                accounts.end_session(sid, logout.initiator.as_deref())
            })
            .flatten();
        if let Some(ended) = ended {
            deliver(&shared, &realm, sid, ended).await;
        }
    }
    let response = match &logout.redirect {
        Some(location) => redirect(location),
        None => html_page(
            StatusCode::OK,
            "You are logged out",
            "<p id=\"kc-logout-message\">You are logged out.</p>",
        ),
    };
    with_cookie(response, &expired_session_cookie(&realm))
}

fn check(
    shared: &Shared,
    realm: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Logout, &'static str> {
    let param = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let hint = match param("id_token_hint") {
        Some(token) => Some(
            id_token_hint_claims(shared, realm, token).ok_or("Invalid parameter: id_token_hint")?,
        ),
        None => None,
    };
    let hint_client = hint.as_ref().and_then(|claims| {
        claims
            .get("azp")
            .or_else(|| claims.get("aud"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let client_id = param("client_id").cloned();
    if let (Some(from_hint), Some(given)) = (&hint_client, &client_id) {
        if from_hint != given {
            return Err("Parameter client_id different than the client from the ID token");
        }
    }
    let initiator = hint_client.or(client_id);
    let client = match &initiator {
        Some(id) => Some(
            shared
                .with_accounts(realm, |accounts| accounts.clients.get(id).cloned())
                .flatten()
                .ok_or("Invalid parameter: client_id")?,
        ),
        None => None,
    };
    let redirect = match (param("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(
                "Either the parameter client_id or the parameter id_token_hint is \
                        required when post_logout_redirect_uri is used.",
            )
        }
        (Some(uri), Some(client)) if client.allows_post_logout_redirect_uri(uri) => {
            let state = param("state").map(String::as_str);
            Some(with_params(uri, &[("state", state)]))
        }
        (Some(_), Some(_)) => return Err("Invalid redirect uri"),
    };
    let hint_sid = hint
        .as_ref()
        .and_then(|claims| claims.get("sid"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Logout {
        sid: hint_sid.or_else(|| cookie(headers, SESSION_COOKIE)),
        initiator,
        redirect,
    })
}
