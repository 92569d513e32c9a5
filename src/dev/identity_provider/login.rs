//! The authorization endpoint (`/realms/{realm}/protocol/openid-connect/auth`) as a browser meets
//! Keycloak's: the request is checked (unknown client or unregistered `redirect_uri`: an error
//! page, never a redirect; a bad `response_type`, `scope` or PKCE method: an error redirect), a
//! live SSO cookie yields a code at once, otherwise a login form (`id="kc-form-login"`) posts the
//! credentials back to the same URL. Every reflected value is HTML-escaped.

use super::accounts::{AuthorizationCode, SESSION_COOKIE};
use super::grants::granted_scope;
use super::state::Shared;
use super::verify::unix_now;
use super::web::{
    cookie, error_page, escape_html, html_page, parse_form, redirect, session_cookie, with_cookie,
    with_params, HttpResponse,
};
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::time::Instant;

/// A checked authorization request.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    /// The scope granted (see [`granted_scope`]).
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt: Option<String>,
}

/// Why the request is not served.
enum Rejection {
    /// An error page (400): nothing can be trusted to redirect to.
    Page(&'static str),
    /// An error redirect to the (registered) redirect URI.
    Redirect(String),
}

/// Answers `GET` (`form: None`) or `POST` (the login form's body) of the authorization endpoint.
pub fn authorize(
    shared: &Shared,
    realm: &str,
    query: &str,
    headers: &HeaderMap,
    form: Option<&[u8]>,
) -> HttpResponse {
    let params = parse_form(query.as_bytes());
    let request = match check(shared, realm, &params) {
        Ok(request) => request,
        Err(Rejection::Page(message)) => return error_page(StatusCode::BAD_REQUEST, message),
        Err(Rejection::Redirect(location)) => return redirect(&location),
    };
    match form {
        None => without_credentials(shared, realm, query, headers, &request),
        Some(form) => with_credentials(shared, realm, query, &request, &parse_form(form)),
    }
}

fn check(
    shared: &Shared,
    realm: &str,
    params: &HashMap<String, String>,
) -> Result<AuthRequest, Rejection> {
    let param = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let client_id = param("client_id").ok_or(Rejection::Page("Missing parameter: client_id"))?;
    let client = shared
        .with_accounts(realm, |accounts| accounts.clients.get(&client_id).cloned())
        .flatten()
        .ok_or(Rejection::Page("Client not found."))?;
    let redirect_uri = param("redirect_uri")
        .filter(|uri| client.allows_redirect_uri(uri))
        .ok_or(Rejection::Page("Invalid parameter: redirect_uri"))?;
    let state = param("state");
    let issuer = shared.issuer(realm);
    let error = |error: &str, description: &str| {
        Rejection::Redirect(with_params(
            &redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(description)),
                ("state", state.as_deref()),
                ("iss", Some(&issuer)),
            ],
        ))
    };
    match param("response_type").as_deref() {
        None => return Err(error("invalid_request", "Missing parameter: response_type")),
        Some("code") => {}
        Some(_) => {
            return Err(error(
                "unsupported_response_type",
                "Unsupported response_type",
            ))
        }
    }
    let requested_scope = param("scope");
    let scope = granted_scope(requested_scope.as_deref());
    if !scope.starts_with("openid") {
        return Err(error("invalid_request", "Missing openid scope"));
    }
    let code_challenge = match (param("code_challenge"), param("code_challenge_method")) {
        (_, Some(method)) if method != "S256" => {
            return Err(error(
                "invalid_request",
                "Invalid parameter: code_challenge_method",
            ))
        }
        (None, _) => {
            return Err(error(
                "invalid_request",
                "Missing parameter: code_challenge",
            ))
        }
        (Some(_), None) => {
            return Err(error(
                "invalid_request",
                "Missing parameter: code_challenge_method",
            ))
        }
        (Some(challenge), Some(_)) => challenge,
    };
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if code_challenge.len() != 43 || !code_challenge.bytes().all(base64url) {
        return Err(error(
            "invalid_request",
            "Invalid parameter: code_challenge",
        ));
    }
    Ok(AuthRequest {
        client_id,
        redirect_uri,
        scope,
        state,
        nonce: param("nonce"),
        code_challenge,
        prompt: param("prompt"),
    })
}

/// `GET`: a code at once through a live SSO cookie, else the login page.
fn without_credentials(
    shared: &Shared,
    realm: &str,
    query: &str,
    headers: &HeaderMap,
    request: &AuthRequest,
) -> HttpResponse {
    if request.prompt.as_deref() != Some("login") {
        let live = cookie(headers, SESSION_COOKIE).and_then(|sid| {
            let username = shared
                .with_accounts(realm, |accounts| {
                    Some(accounts.use_session(&sid, None)?.username.clone())
                })
                .flatten()?;
            Some((sid, username))
        });
        if let Some((sid, username)) = live {
            return code_redirect(shared, realm, request, &username, &sid, "0");
        }
    }
    if request.prompt.as_deref() == Some("none") {
        let location = with_params(
            &request.redirect_uri,
            &[
                ("error", Some("login_required")),
                ("error_description", Some("Login required")),
                ("state", request.state.as_deref()),
                ("iss", Some(&shared.issuer(realm))),
            ],
        );
        return redirect(&location);
    }
    login_page(shared, realm, query, "", false)
}

/// `POST` of the login form: a new SSO session and a code, or the form again.
fn with_credentials(
    shared: &Shared,
    realm: &str,
    query: &str,
    request: &AuthRequest,
    form: &HashMap<String, String>,
) -> HttpResponse {
    let username = form.get("username").map_or("", String::as_str);
    let password = form.get("password").map_or("", String::as_str);
    let sid = shared
        .with_accounts(realm, |accounts| {
            accounts.check_password(username, password)?;
            Some(accounts.start_session(username, unix_now()))
        })
        .flatten();
    match sid {
        Some(sid) => with_cookie(
            code_redirect(shared, realm, request, username, &sid, "1"),
            &session_cookie(realm, &sid),
        ),
        None => login_page(shared, realm, query, username, true),
    }
}

/// Issues a code in session `sid` and redirects to the client with it.
fn code_redirect(
    shared: &Shared,
    realm: &str,
    request: &AuthRequest,
    username: &str,
    sid: &str,
    acr: &'static str,
) -> HttpResponse {
    let code = shared.with_accounts(realm, |accounts| {
        accounts.use_session(sid, Some(&request.client_id))?;
        Some(accounts.issue_code(AuthorizationCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            username: username.to_owned(),
            sid: sid.to_owned(),
            scope: request.scope.clone(),
            acr,
            issued: Instant::now(),
        }))
    });
    let Some(code) = code.flatten() else {
        return error_page(StatusCode::BAD_REQUEST, "Session not active");
    };
    let issuer = shared.issuer(realm);
    redirect(&with_params(
        &request.redirect_uri,
        &[
            ("state", request.state.as_deref()),
            ("session_state", Some(sid)),
            ("iss", Some(&issuer)),
            ("code", Some(&code)),
        ],
    ))
}

/// The login form, posting to the same URL; `failed` adds Keycloak's error text.
fn login_page(
    shared: &Shared,
    realm: &str,
    query: &str,
    username: &str,
    failed: bool,
) -> HttpResponse {
    let action = format!(
        "{}/protocol/openid-connect/auth?{query}",
        shared.issuer(realm)
    );
    let error = if failed {
        "<span id=\"input-error\" class=\"kc-feedback-text\" aria-live=\"polite\">\
         Invalid username or password.</span>\n"
    } else {
        ""
    };
    let users = shared
        .with_accounts(realm, |accounts| {
            accounts
                .users
                .values()
                .map(|u| format!("{} / {}", u.username, u.password))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let body = format!(
        "<form id=\"kc-form-login\" method=\"post\" action=\"{action}\">\n\
         <label for=\"username\">Username or email</label>\n\
         <input id=\"username\" name=\"username\" type=\"text\" value=\"{username}\" autofocus \
         autocomplete=\"username\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\">\n\
         {error}<input id=\"kc-login\" name=\"login\" type=\"submit\" value=\"Sign In\">\n\
         </form>\n<p id=\"devidp-users\">Development users: {users}</p>",
        action = escape_html(&action),
        username = escape_html(username),
        users = escape_html(&users),
    );
    html_page(StatusCode::OK, &format!("Sign in to {realm}"), &body)
}
