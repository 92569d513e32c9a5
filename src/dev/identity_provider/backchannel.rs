//! OpenID Connect Back-Channel Logout as Keycloak sends it: when an SSO session ends (admin "Sign
//! out" or RP-initiated logout of another client), every client of the session with a
//! back-channel logout URL receives a `POST` of `logout_token=<JWT>`
//! (`application/x-www-form-urlencoded`). The logout token is an RS256 JWT of the realm with
//! `iss`, `aud` (the client), `iat`, `exp`, `jti`, `typ: Logout`, `sid`, `sub` and the
//! back-channel logout event, and never a `nonce`. Each delivery is recorded.

use super::accounts::{BackchannelDelivery, EndedSession};
use super::mint::TokenBuilder;
use super::state::Shared;
use http::header;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The member of a logout token's `events` claim.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Seconds between a logout token's `iat` and its `exp`.
pub const LOGOUT_TOKEN_LIFETIME: i64 = 120;
/// How long a client may take to answer a delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Claims of the default token that a logout token does not carry.
const NOT_IN_LOGOUT_TOKENS: [&str; 10] = [
    "sub",
    "sid",
    "azp",
    "acr",
    "scope",
    "realm_access",
    "resource_access",
    "email_verified",
    "preferred_username",
    "nonce",
];

/// A logout token for `client` of `realm`, without `sid` and `sub` (add them).
pub fn logout_token(shared: Arc<Shared>, realm: &str, client: &str) -> TokenBuilder {
    let mut builder = TokenBuilder::new(shared, realm);
    for name in NOT_IN_LOGOUT_TOKENS {
        builder = builder.without_claim(name);
    }
    let iat = builder
        .claims()
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    builder
        .claim("aud", client)
        .claim("exp", iat + LOGOUT_TOKEN_LIFETIME)
        .claim("typ", "Logout")
        .claim("events", json!({ BACKCHANNEL_LOGOUT_EVENT: {} }))
}

/// Sends a logout token to each target of the ended session `sid`; records and returns the
/// deliveries (in target order).
pub async fn deliver(
    shared: &Arc<Shared>,
    realm: &str,
    sid: &str,
    ended: EndedSession,
) -> Vec<BackchannelDelivery> {
    if ended.targets.is_empty() {
        return Vec::new();
    }
    let http = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build();
    let mut deliveries = Vec::with_capacity(ended.targets.len());
    for (client_id, url) in ended.targets {
        let token = logout_token(shared.clone(), realm, &client_id)
            .claim("sid", sid)
            .claim("sub", ended.sub.as_str())
            .mint();
        let outcome = match (&http, token) {
            (Err(error), _) => Err(format!("no HTTP client: {error}")),
            (_, Err(error)) => Err(error.to_string()),
            (Ok(http), Ok(token)) => {
                let body = form_urlencoded::Serializer::new(String::new())
                    .append_pair("logout_token", &token)
                    .finish();
                http.post(&url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .map_err(|error| error.to_string())
            }
        };
        if let Err(error) = &outcome {
            tracing::warn!(%client_id, %url, %error, "back-channel logout not delivered");
        }
        deliveries.push(BackchannelDelivery {
            client_id,
            url,
            sid: sid.to_owned(),
            status: outcome.as_ref().ok().copied(),
            error: outcome.err(),
        });
    }
    shared.with_accounts(realm, |accounts| {
        accounts.deliveries.extend(deliveries.iter().cloned())
    });
    deliveries
}

#[cfg(test)]
mod tests {
    use super::super::DevIdp;
    use super::*;

    #[test]
    fn the_preset_is_a_logout_token() {
        let idp = DevIdp::start(&["acme"]).expect("idp");
        let token = logout_token(idp.shared.clone(), "acme", "app");
        let claims = token.claims();
        assert_eq!(claims["aud"], "app");
        assert_eq!(claims["typ"], "Logout");
        assert!(claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
        assert_eq!(
            claims["exp"].as_i64(),
            claims["iat"].as_i64().map(|iat| iat + 120)
        );
        for absent in ["sub", "sid", "nonce", "azp", "scope"] {
            assert!(claims.get(absent).is_none(), "{absent}");
        }
    }
}
