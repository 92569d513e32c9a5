//! The paths the gateway answers itself for browser sign-in, on every host: the callback that
//! finishes a sign-in, the logout path, and the back-channel logout path the provider calls.
//! They run after the guard step and before routing, so no route can shadow them.

use super::browser_session::{cookie_headers, request_origin};
use super::context::Context;
use super::guard;
use crate::metrics::metrics;
use crate::oidc::provider::unix_now;
use crate::reply::{Denial, Reply};
use crate::sign_in::{flow, logout};
use crate::snapshot::Snapshot;
use pingora::proxy::Session;
use std::time::Duration;

/// The largest back-channel logout body read (a logout token is about 1 KB).
const MAX_LOGOUT_BODY: usize = 16 * 1024;
/// How long the back-channel logout body may take to arrive.
const LOGOUT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which reserved path a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInPath {
    Callback,
    Logout,
    BackchannelLogout,
}

/// The reserved path `path` is, if any.
pub fn reserved(snapshot: &Snapshot, path: &str) -> Option<SignInPath> {
    let settings = &snapshot.sign_in.as_deref()?.settings;
    if path == settings.callback_path {
        Some(SignInPath::Callback)
    } else if path == settings.logout_path {
        Some(SignInPath::Logout)
    } else if path == settings.backchannel_logout_path {
        Some(SignInPath::BackchannelLogout)
    } else {
        None
    }
}

/// Answers a reserved path; the reply is what the client gets.
pub async fn serve(
    which: SignInPath,
    session: &mut Session,
    ctx: &mut Context,
    snapshot: &Snapshot,
) -> Reply {
    if let Err(denial) = guard::check(session.req_header(), ctx, snapshot) {
        return denial.into();
    }
    let Some(sign_in) = snapshot.sign_in.as_deref() else {
        return Denial::NoRoute.into();
    };
    let request = session.req_header();
    let method = request.method.clone();
    let query = request.uri.query().unwrap_or("").to_owned();
    let now = unix_now();
    let authenticator = &snapshot.authenticator;
    match which {
        SignInPath::Callback => {
            if method != http::Method::GET {
                return Denial::MethodNotAllowed {
                    allow: "GET".into(),
                }
                .into();
            }
            let cookies = cookie_headers(request);
            let finished = flow::finish(sign_in, authenticator, &query, &cookies, now).await;
            let outcome = finished
                .as_ref()
                .map_or_else(|e| e.reason(), |_| "signed_in");
            metrics()
                .sign_in_events
                .with_label_values(&["callback", outcome])
                .inc();
            match finished {
                Ok(redirect) => Reply::Redirect {
                    location: redirect.location,
                    set_cookies: redirect.set_cookies,
                },
                Err(error) => {
                    tracing::warn!(request_id = ctx.request_id.as_str(), reason = error.reason(), detail = %error.detail(), "sign-in callback refused");
                    Denial::SignInFailed {
                        status: error.status(),
                        reason: error.reason(),
                        detail: error.detail(),
                    }
                    .into()
                }
            }
        }
        SignInPath::Logout => {
            if method != http::Method::GET && method != http::Method::POST {
                return Denial::MethodNotAllowed {
                    allow: "GET, POST".into(),
                }
                .into();
            }
            let cookies = cookie_headers(request);
            let origin = request_origin(request, ctx);
            let redirect =
                logout::logout(sign_in, authenticator, &origin, &query, &cookies, now).await;
            Reply::Redirect {
                location: redirect.location,
                set_cookies: redirect.set_cookies,
            }
        }
        SignInPath::BackchannelLogout => {
            if method != http::Method::POST {
                return Denial::MethodNotAllowed {
                    allow: "POST".into(),
                }
                .into();
            }
            let body = match read_body(session).await {
                Ok(body) => body,
                Err(detail) => return Denial::InvalidLogoutToken { detail }.into(),
            };
            let ended = logout::backchannel_logout(sign_in, authenticator, &body, now).await;
            let outcome = if ended.is_ok() { "ok" } else { "refused" };
            metrics()
                .sign_in_events
                .with_label_values(&["backchannel_logout", outcome])
                .inc();
            match ended {
                Ok(()) => Reply::Done,
                Err(failure) if failure.is_unavailable() => {
                    tracing::warn!(request_id = ctx.request_id.as_str(), detail = %failure.description, "back-channel logout could not reach the session store");
                    Denial::SignInFailed {
                        status: 503,
                        reason: "session_store_unavailable",
                        detail: failure.description,
                    }
                    .into()
                }
                Err(failure) => {
                    tracing::warn!(request_id = ctx.request_id.as_str(), reason = failure.reason.as_str(), detail = %failure.description, "back-channel logout refused");
                    Denial::InvalidLogoutToken {
                        detail: format!("{}: {}", failure.reason.as_str(), failure.description),
                    }
                    .into()
                }
            }
        }
    }
}

/// Reads the whole request body, at most [`MAX_LOGOUT_BODY`] bytes within the timeout.
async fn read_body(session: &mut Session) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|e| format!("reading the body failed: {}", e.etype().as_str()))?
        {
            if body.len() + chunk.len() > MAX_LOGOUT_BODY {
                return Err(format!("the body exceeds {MAX_LOGOUT_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(LOGOUT_BODY_TIMEOUT, read)
        .await
        .map_err(|_| "the body did not arrive in time".to_owned())??;
    Ok(body)
}
