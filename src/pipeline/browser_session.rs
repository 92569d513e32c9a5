//! The browser half of the authentication step, for routes with `auth.sign_in`: a request that
//! carries no bearer token is authenticated by its session cookie, whose access token then takes
//! the very path of a bearer token (same cache, same checks, same [`Identity`]). Without a
//! usable session, a browser navigation is sent to the provider's login page and every other
//! request (XHR, fetch, scripts) gets the usual 401 — never a redirect it cannot follow.

use super::context::Context;
use crate::metrics::metrics;
use crate::oidc::provider::unix_now;
use crate::oidc::Verified;
use crate::reply::{Denial, Reply};
use crate::sign_in::flow;
use crate::sign_in::redirect::safe_return_path;
use crate::sign_in::service::{SessionLookup, SignIn};
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// The request's `Cookie` header values (HTTP/2 may send several).
pub fn cookie_headers(request: &RequestHeader) -> Vec<&str> {
    request
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect()
}

/// Whether the request is a top-level browser navigation that can follow a redirect to a login
/// page: GET or HEAD, `Accept` naming `text/html`, and no fetch metadata or XHR marker saying
/// otherwise.
pub fn is_browser_navigation(request: &RequestHeader) -> bool {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let method = &request.method;
    (method == http::Method::GET || method == http::Method::HEAD)
        && header("accept").to_ascii_lowercase().contains("text/html")
        && matches!(
            header("sec-fetch-mode"),
            "" | "navigate" | "nested-navigate"
        )
        && !header("x-requested-with").eq_ignore_ascii_case("XMLHttpRequest")
}

/// `scheme://authority` of the request as the browser sees it: the scheme of the listener, or
/// of `X-Forwarded-Proto` from a trusted proxy.
pub fn request_origin(request: &RequestHeader, ctx: &Context) -> String {
    let forwarded = request
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|_| ctx.facts.peer_trusted)
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let scheme = match forwarded.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ if ctx.facts.tls => "https",
        _ => "http",
    };
    let authority = request
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri.authority().map(|a| a.as_str()))
        .unwrap_or(ctx.facts.host.as_str())
        .to_ascii_lowercase();
    format!("{scheme}://{authority}")
}

/// Authenticates by session cookie for a route whose sign-in provider is `provider` and which
/// accepts `providers`. `Ok` carries the verified access token; `Err` the redirect to sign in,
/// or a 401 for a request that cannot follow one.
pub async fn authenticate(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    providers: &[usize],
    provider: usize,
    unauthenticated: impl FnOnce() -> Denial,
) -> Result<Verified, Reply> {
    let Some(sign_in) = snapshot.sign_in.as_deref() else {
        return Err(unauthenticated().into());
    };
    let cookies = cookie_headers(request);
    let now = unix_now();
    let authenticator = &snapshot.authenticator;
    match sign_in
        .resume(&cookies, &authenticator.providers, now)
        .await
    {
        SessionLookup::Active {
            session,
            provider: session_provider,
            set_cookies,
        } if providers.contains(&session_provider) => {
            match authenticator
                .authenticate_token(&session.access_token, &[session_provider])
                .await
            {
                Ok(verified) => {
                    ctx.response_cookies = set_cookies;
                    ctx.session_access_token = Some(session.access_token);
                    return Ok(verified);
                }
                Err(failure) => {
                    tracing::debug!(
                        reason = failure.reason.as_str(),
                        "a session's access token was refused; signing in again"
                    );
                }
            }
        }
        SessionLookup::Unavailable(error) => {
            tracing::warn!(%error, "the browser session could not be looked up");
            metrics()
                .sign_in_events
                .with_label_values(&["session_lookup", "store_unavailable"])
                .inc();
            return Err(Denial::SignInFailed {
                status: 503,
                reason: "session_store_unavailable",
                detail: error.to_string(),
            }
            .into());
        }
        SessionLookup::Ended { why } => {
            metrics()
                .sign_in_events
                .with_label_values(&["session_ended", why])
                .inc();
        }
        _ => {}
    }
    if !ctx.sign_in_redirects || !is_browser_navigation(request) {
        return Err(unauthenticated().into());
    }
    start_sign_in(request, ctx, snapshot, sign_in, provider, &cookies, now)
}

fn start_sign_in(
    request: &RequestHeader,
    ctx: &Context,
    snapshot: &Snapshot,
    sign_in: &SignIn,
    provider: usize,
    cookies: &[&str],
    now: u64,
) -> Result<Verified, Reply> {
    let wanted = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let return_to = safe_return_path(wanted).unwrap_or("/");
    let redirect_uri = format!(
        "{}{}",
        request_origin(request, ctx),
        sign_in.settings.callback_path
    );
    let started = flow::begin(
        sign_in,
        &snapshot.authenticator,
        provider,
        &redirect_uri,
        return_to,
        cookies,
        now,
    );
    let outcome = if started.is_ok() {
        "redirected"
    } else {
        "failed"
    };
    metrics()
        .sign_in_events
        .with_label_values(&["start", outcome])
        .inc();
    match started {
        Ok(redirect) => Err(Reply::Redirect {
            location: redirect.location,
            set_cookies: redirect.set_cookies,
        }),
        Err(error) => Err(Denial::SignInFailed {
            status: error.status(),
            reason: error.reason(),
            detail: error.detail(),
        }
        .into()),
    }
}
