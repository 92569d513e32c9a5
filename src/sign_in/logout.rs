//! Ending sessions. At the gateway's logout path: the cookies go, the session is remembered as
//! ended (a copied cookie stops working too), and the browser goes on to the provider's
//! `end_session_endpoint` (RP-initiated logout with `id_token_hint`) and from there back to a
//! same-host page. At the back-channel path: the provider's signed logout token ends the
//! sessions it names, on this instance, without the browser.

use super::flow::Redirect;
use super::provider_tokens::check_logout_token;
use super::redirect::{form_pairs, form_value, safe_return_path, with_query};
use super::service::SignIn;
use crate::oidc::verify::split;
use crate::oidc::{AuthFailure, AuthReason, Authenticator};
use crate::policy::RawJson;

/// Logs the browser out: `origin` is `scheme://host` of the request, `query` its query string
/// (`rd` names the same-host page to land on).
pub async fn logout(
    sign_in: &SignIn,
    authenticator: &Authenticator,
    origin: &str,
    query: &str,
    cookie_headers: &[&str],
    now: u64,
) -> Redirect {
    let pairs = form_pairs(query);
    let landing = form_value(&pairs, "rd")
        .and_then(safe_return_path)
        .unwrap_or(&sign_in.settings.post_logout_path)
        .to_owned();
    let session = sign_in.end_session(cookie_headers).await;
    let mut set_cookies = sign_in.clear_session_cookies(cookie_headers);
    set_cookies.dedup();
    let Some(session) = session else {
        return Redirect {
            location: landing,
            set_cookies,
        };
    };
    let forget_at = session.created_at + sign_in.settings.lifetime.as_secs();
    sign_in.revoked.revoke_sid(&session.sid, now, forget_at);
    crate::metrics::metrics()
        .sign_in_events
        .with_label_values(&["logout", "ok"])
        .inc();
    let end_session = sign_in.provider_index(&session.provider).and_then(|index| {
        let endpoint = authenticator.providers[index]
            .endpoints()?
            .end_session
            .clone()?;
        let client = sign_in.clients[index].as_ref()?;
        let post_logout = format!("{origin}{landing}");
        let mut params = vec![
            ("post_logout_redirect_uri", post_logout.as_str()),
            ("client_id", client.id.as_str()),
        ];
        if let Some(hint) = &session.id_token {
            params.push(("id_token_hint", hint.as_str()));
        }
        Some(with_query(&endpoint, &params))
    });
    Redirect {
        location: end_session.unwrap_or(landing),
        set_cookies,
    }
}

/// Handles a back-channel logout request body (`logout_token=…`): verifies the token with the
/// provider that issued it and ends the sessions it names.
pub async fn backchannel_logout(
    sign_in: &SignIn,
    authenticator: &Authenticator,
    body: &[u8],
    now: u64,
) -> Result<(), AuthFailure> {
    let malformed = |why: &str| AuthFailure::new(AuthReason::Malformed, why);
    let body = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
    let pairs = form_pairs(body);
    let token = form_value(&pairs, "logout_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no `logout_token` in the form body"))?;
    let issuer = split(token)?
        .claims
        .get("iss")
        .and_then(RawJson::as_str)
        .unwrap_or_default()
        .into_owned();
    let index = authenticator
        .providers
        .iter()
        .enumerate()
        .position(|(i, p)| {
            sign_in.clients.get(i).is_some_and(Option::is_some)
                && p.rules().is_some_and(|rules| rules.issuer == issuer)
        })
        .ok_or_else(|| {
            AuthFailure::new(
                AuthReason::UnknownIssuer,
                "the logout token's issuer is no provider with a `client`",
            )
        })?;
    let client = sign_in.clients[index]
        .as_ref()
        .ok_or_else(|| malformed("no client"))?;
    let target = check_logout_token(&authenticator.providers[index], token, &client.id).await?;
    let forget_at = now + sign_in.settings.lifetime.as_secs();
    if let Some(sid) = &target.sid {
        sign_in.revoked.revoke_sid(sid, now, forget_at);
        // With the Redis store, every instance sees the session gone.
        sign_in.store.end_sid(sid).await.map_err(|error| {
            AuthFailure::new(AuthReason::ProviderUnavailable, error.to_string())
        })?;
    } else if let Some(subject) = &target.subject {
        sign_in.revoked.revoke_subject(subject, now, forget_at);
    }
    Ok(())
}
