//! The token endpoint (`POST /realms/{realm}/protocol/openid-connect/token`) as Keycloak answers
//! it: client authentication by `client_secret_basic` or `client_secret_post`, then the
//! `authorization_code` (with PKCE S256), `refresh_token` (rotating, the old one stays valid),
//! `password` and `client_credentials` grants, with Keycloak's error codes and messages.

use super::accounts::{DevUser, RefreshGrant, SSO_IDLE_TIMEOUT};
use super::mint::TokenBuilder;
use super::state::Shared;
use super::verify::{refresh_token_claims, unix_now};
use super::web::{basic_credentials, json, oauth_error, parse_form, HttpResponse};
use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// An OAuth error answer of the token endpoint.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

fn invalid_grant(description: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_grant",
        description,
    }
}

fn invalid_request(description: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        description,
    }
}

const SERVER_ERROR: Refusal = Refusal {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    error: "server_error",
    description: "The development IdP could not sign the token",
};

/// The scope a request is granted: `openid` when asked for, then Keycloak's default client
/// scopes `profile email` (other requested scopes are ignored).
pub fn granted_scope(requested: Option<&str>) -> String {
    let openid = requested.is_some_and(|s| s.split_whitespace().any(|s| s == "openid"));
    if openid {
        "openid profile email"
    } else {
        "profile email"
    }
    .to_owned()
}

/// Whether `scope` (space-separated) holds `openid`.
fn has_openid(scope: &str) -> bool {
    scope.split_whitespace().any(|s| s == "openid")
}

/// Answers a token request of `realm`.
pub fn token(shared: &Arc<Shared>, realm: &str, headers: &HeaderMap, body: &[u8]) -> HttpResponse {
    let form = parse_form(body);
    let grant_type = form.get("grant_type").map(String::as_str);
    if let Some(grant_type) = grant_type {
        shared.with_accounts(realm, |accounts| accounts.count_grant(grant_type));
    }
    let Some(client_id) = authenticate_client(shared, realm, headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client or Invalid client credentials",
        );
    };
    let answer = match grant_type {
        None => Err(invalid_request("Missing form parameter: grant_type")),
        Some("authorization_code") => authorization_code(shared, realm, &client_id, &form),
        Some("refresh_token") => refresh(shared, realm, &client_id, &form),
        Some("password") => password(shared, realm, &client_id, &form),
        Some("client_credentials") => client_credentials(shared, realm, &client_id, &form),
        Some(_) => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: "Unsupported grant_type",
        }),
    };
    match answer {
        Ok(body) => json(StatusCode::OK, &body),
        Err(refusal) => oauth_error(refusal.status, refusal.error, refusal.description),
    }
}

/// The authenticated client id, from `Authorization: Basic` or the form's `client_id` and
/// `client_secret`.
pub(super) fn authenticate_client(
    shared: &Shared,
    realm: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<String> {
    let (id, secret) = match basic_credentials(headers) {
        Some(credentials) => {
            let (id, secret) = credentials?;
            if form.get("client_id").is_some_and(|form_id| *form_id != id) {
                return None;
            }
            (id, secret)
        }
        None => (
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ),
    };
    shared
        .with_accounts(realm, |accounts| {
            accounts.check_client(&id, &secret).is_some()
        })?
        .then_some(id)
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

fn authorization_code(
    shared: &Arc<Shared>,
    realm: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let code = form
        .get("code")
        .ok_or(invalid_request("Missing parameter: code"))?;
    let code = shared
        .with_accounts(realm, |accounts| accounts.take_code(code))
        .flatten()
        .filter(|code| code.client_id == client_id)
        .ok_or(invalid_grant("Code not valid"))?;
    if form.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(invalid_grant("Incorrect redirect_uri"));
    }
    let verifier = form
        .get("code_verifier")
        .ok_or(invalid_grant("PKCE code verifier not specified"))?;
    if !valid_code_verifier(verifier) {
        return Err(invalid_grant("PKCE invalid code verifier"));
    }
    if s256_challenge(verifier) != code.code_challenge {
        return Err(invalid_grant(
            "PKCE verification failed: Invalid code verifier",
        ));
    }
    let grant = RefreshGrant {
        client_id: client_id.to_owned(),
        sid: code.sid,
        username: code.username,
        scope: code.scope,
        nonce: code.nonce,
        acr: code.acr,
    };
    issue(shared, realm, grant)
}

fn refresh(
    shared: &Arc<Shared>,
    realm: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let token = form
        .get("refresh_token")
        .ok_or(invalid_request("Missing parameter: refresh_token"))?;
    let claims =
        refresh_token_claims(shared, realm, token).ok_or(invalid_grant("Invalid refresh token"))?;
    if claims.get("azp").and_then(Value::as_str) != Some(client_id) {
        return Err(invalid_grant(
            "Invalid refresh token. Token client and authorized client don't match",
        ));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let grant = shared
        .with_accounts(realm, |accounts| accounts.refresh_grant(jti))
        .flatten()
        .filter(|grant| grant.client_id == client_id)
        .ok_or(invalid_grant("Session not active"))?;
    issue(shared, realm, grant)
}

fn password(
    shared: &Arc<Shared>,
    realm: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let username = form.get("username").map_or("", String::as_str);
    let password = form.get("password").map_or("", String::as_str);
    let sid = shared
        .with_accounts(realm, |accounts| {
            accounts.check_password(username, password)?;
            Some(accounts.start_session(username, unix_now()))
        })
        .flatten()
        .ok_or(Refusal {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_grant",
            description: "Invalid user credentials",
        })?;
    let grant = RefreshGrant {
        client_id: client_id.to_owned(),
        sid,
        username: username.to_owned(),
        scope: granted_scope(form.get("scope").map(String::as_str)),
        nonce: None,
        acr: "1",
    };
    issue(shared, realm, grant)
}

fn client_credentials(
    shared: &Arc<Shared>,
    realm: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let lifetime = shared.knobs().access_token_lifetime.as_secs() as i64;
    let scope = granted_scope(form.get("scope").map(String::as_str));
    let access_token = TokenBuilder::new(shared.clone(), realm)
        .service_account(client_id)
        .without_claim("sid")
        .claim("email_verified", false)
        .scope(&scope)
        .expires_in(lifetime)
        .mint()
        .map_err(|_| SERVER_ERROR)?;
    Ok(json!({
        "access_token": access_token,
        "expires_in": lifetime,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": scope,
    }))
}

/// Access, refresh and (with `openid`) ID token for `grant`, whose SSO session must be live.
fn issue(shared: &Arc<Shared>, realm: &str, grant: RefreshGrant) -> Result<Value, Refusal> {
    let found = shared.with_accounts(realm, |accounts| {
        let auth_time = accounts
            .use_session(&grant.sid, Some(&grant.client_id))?
            .auth_time;
        Some((accounts.users.get(&grant.username)?.clone(), auth_time))
    });
    let (user, auth_time) = found.flatten().ok_or(invalid_grant("Session not active"))?;
    let lifetime = shared.knobs().access_token_lifetime.as_secs() as i64;
    let access_token = access_token(shared, realm, &grant, &user, lifetime)
        .mint()
        .map_err(|_| SERVER_ERROR)?;
    let mut id_token = None;
    if has_openid(&grant.scope) {
        let at_hash = digest::digest(&digest::SHA256, access_token.as_bytes());
        let at_hash = URL_SAFE_NO_PAD.encode(&at_hash.as_ref()[..16]);
        let mut builder = user_token(shared, realm, &grant, &user)
            .claim("auth_time", auth_time)
            .claim("at_hash", at_hash)
            .expires_in(lifetime);
        if let Some(nonce) = &grant.nonce {
            builder = builder.claim("nonce", nonce.as_str());
        }
        id_token = Some(builder.id_token().mint().map_err(|_| SERVER_ERROR)?);
    }
    let idle = SSO_IDLE_TIMEOUT.as_secs() as i64;
    let mut refresh = user_token(shared, realm, &grant, &user)
        .scope(&grant.scope)
        .expires_in(idle)
        .refresh_token();
    for claim in [
        "preferred_username",
        "email",
        "email_verified",
        "resource_access",
    ] {
        refresh = refresh.without_claim(claim);
    }
    let refresh = refresh.without_claim("realm_access");
    let jti = refresh.claims().get("jti").and_then(Value::as_str);
    let jti = jti.unwrap_or_default().to_owned();
    let refresh_token = refresh.mint().map_err(|_| SERVER_ERROR)?;
    let (sid, scope) = (grant.sid.clone(), grant.scope.clone());
    shared.with_accounts(realm, |accounts| {
        accounts.remember_refresh_token(jti, grant)
    });
    let mut body = json!({
        "access_token": access_token,
        "expires_in": lifetime,
        "refresh_expires_in": idle,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": sid,
        "scope": scope,
    });
    if let (Some(id_token), Value::Object(map)) = (id_token, &mut body) {
        map.insert("id_token".into(), Value::String(id_token));
    }
    Ok(body)
}

/// The claims every token of the user carries: `sub`, `preferred_username`, `email`, `azp`,
/// `sid`, `acr`.
fn user_token(
    shared: &Arc<Shared>,
    realm: &str,
    grant: &RefreshGrant,
    user: &DevUser,
) -> TokenBuilder {
    let builder = TokenBuilder::new(shared.clone(), realm)
        .subject(&user.subject())
        .username(&user.username)
        .client(&grant.client_id)
        .claim("sid", grant.sid.as_str())
        .claim("acr", grant.acr);
    if user.email.is_empty() {
        builder
    } else {
        builder.claim("email", user.email.as_str())
    }
}

fn access_token(
    shared: &Arc<Shared>,
    realm: &str,
    grant: &RefreshGrant,
    user: &DevUser,
    lifetime: i64,
) -> TokenBuilder {
    let roles: Vec<&str> = user.realm_roles.iter().map(String::as_str).collect();
    let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
    user_token(shared, realm, grant, user)
        .realm_roles(&roles)
        .groups(&groups)
        .scope(&grant.scope)
        .expires_in(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_scope_rules() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_code_verifier(&"a".repeat(43)));
        assert!(!valid_code_verifier(&"a".repeat(42)));
        assert!(!valid_code_verifier(&format!("{}+", "a".repeat(43))));
        assert_eq!(
            granted_scope(Some("email openid x")),
            "openid profile email"
        );
        assert_eq!(granted_scope(None), "profile email");
    }
}
