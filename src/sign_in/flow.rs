//! The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1): the
//! redirect that starts a sign-in, with its login state sealed into a short-lived cookie, and
//! the callback that checks the state, exchanges the code, verifies the ID token and the access
//! token, and turns them into a session cookie.

use super::cookie_jar;
use super::provider_tokens::check_id_token;
use super::redirect::{form_pairs, form_value, pkce_s256_challenge, random_url_token, with_query};
use super::service::{SignIn, StartFailure};
use super::session::{LoginState, Session};
use super::token_endpoint;
use crate::oidc::{AuthFailure, Authenticator};

/// Login-state cookies a browser may hold at once; older ones are expired when more arrive.
pub const MAX_LOGIN_STATES: usize = 4;
/// The characters of `state` that name its cookie.
const STATE_COOKIE_ID_LEN: usize = 12;

/// A redirect the gateway answers with, and the cookies it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub location: String,
    pub set_cookies: Vec<String>,
}

/// Why a sign-in could not start or finish. Each has a stable reason code.
#[derive(Debug)]
pub enum SignInError {
    /// The provider's discovery document (authorization or token endpoint) is not known yet.
    ProviderNotReady(String),
    /// The callback carries no `state`, or the browser has no login-state cookie for it
    /// (another browser, cookies blocked, already used).
    StateMissing,
    /// The login-state cookie does not open or does not match.
    StateInvalid,
    /// The sign-in took longer than `login_timeout`.
    StateExpired,
    /// The provider answered the authorization request with an error (`access_denied`…).
    ProviderRefused(String),
    /// The code exchange failed.
    TokenExchange(token_endpoint::TokenEndpointError),
    /// The ID token or the access token from the exchange failed verification.
    TokenRejected {
        which: &'static str,
        failure: AuthFailure,
    },
    /// The session does not fit into the cookies a browser keeps.
    SessionTooLarge,
    /// The system's random generator failed: no state, nonce or verifier can be made.
    NoRandomness,
    /// The Redis session store failed.
    StoreUnavailable(String),
}

impl SignInError {
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            SignInError::ProviderNotReady(_) => "provider_unavailable",
            SignInError::StateMissing => "sign_in_state_missing",
            SignInError::StateInvalid => "sign_in_state_invalid",
            SignInError::StateExpired => "sign_in_state_expired",
            SignInError::ProviderRefused(_) => "sign_in_refused",
            SignInError::TokenExchange(_) => "token_exchange_failed",
            SignInError::TokenRejected { .. } => "sign_in_token_rejected",
            SignInError::SessionTooLarge => "session_too_large",
            SignInError::NoRandomness => "sign_in_unavailable",
            SignInError::StoreUnavailable(_) => "session_store_unavailable",
        }
    }

    /// The HTTP status: 503 while the provider is unknown, 502 when it failed us, 400 else.
    pub fn status(&self) -> u16 {
        match self {
            SignInError::ProviderNotReady(_)
            | SignInError::NoRandomness
            | SignInError::StoreUnavailable(_) => 503,
            SignInError::TokenExchange(_) | SignInError::SessionTooLarge => 502,
            _ => 400,
        }
    }

    /// What the problem body says (no code, token or cookie value).
    pub fn detail(&self) -> String {
        match self {
            SignInError::ProviderNotReady(name) => format!("identity provider `{name}` is not reachable yet; retry shortly"),
            SignInError::StateMissing => "this sign-in was not started in this browser, or was already finished; start again from the page you wanted".into(),
            SignInError::StateInvalid => "the sign-in state does not match; start again from the page you wanted".into(),
            SignInError::StateExpired => "the sign-in took too long; start again from the page you wanted".into(),
            SignInError::ProviderRefused(error) => format!("the identity provider refused the sign-in: {error}"),
            SignInError::TokenExchange(error) => format!("exchanging the code failed: {error}"),
            SignInError::TokenRejected { which, failure } => format!("the {which} from the sign-in was refused: {}: {}", failure.reason.as_str(), failure.description),
            SignInError::SessionTooLarge => "the session does not fit into cookies".into(),
            SignInError::NoRandomness => "the gateway cannot make random tokens right now".into(),
            SignInError::StoreUnavailable(error) => error.clone(),
        }
    }
}

/// The login-state cookie of `state`.
fn state_cookie_name(sign_in: &SignIn, state: &str) -> String {
    let id: String = state.chars().take(STATE_COOKIE_ID_LEN).collect();
    format!("{}{id}", sign_in.settings.state_cookie_prefix)
}

/// Starts a sign-in at provider `provider` (an index) for a browser that wanted `return_to`
/// (a same-host path); `redirect_uri` is the callback URL on the request's own origin.
pub fn begin(
    sign_in: &SignIn,
    authenticator: &Authenticator,
    provider: usize,
    redirect_uri: &str,
    return_to: &str,
    cookie_headers: &[&str],
    now: u64,
) -> Result<Redirect, SignInError> {
    let name = &sign_in.provider_names[provider];
    let authorization = authenticator.providers[provider]
        .endpoints()
        .and_then(|e| e.authorization.clone())
        .ok_or_else(|| SignInError::ProviderNotReady(name.clone()))?;
    let client = sign_in.clients[provider]
        .as_ref()
        .ok_or_else(|| SignInError::ProviderNotReady(name.clone()))?;
    let token = || random_url_token(32).ok_or(SignInError::NoRandomness);
    let login = LoginState {
        state: token()?,
        verifier: token()?,
        nonce: token()?,
        provider: name.clone(),
        redirect_uri: redirect_uri.to_owned(),
        return_to: return_to.to_owned(),
        expires_at: now + sign_in.settings.login_timeout.as_secs(),
    };
    let challenge = pkce_s256_challenge(&login.verifier);
    let location = with_query(
        &authorization,
        &[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", redirect_uri),
            ("scope", &sign_in.settings.scope),
            ("state", &login.state),
            ("nonce", &login.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let settings = sign_in.cookie_settings();
    let mut set_cookies = cookie_jar::set_cookie_values(
        &state_cookie_name(sign_in, &login.state),
        &login.seal(&sign_in.settings.keys),
        sign_in.settings.login_timeout.as_secs(),
        &settings,
        0,
    )
    .map_err(|_| SignInError::SessionTooLarge)?;
    // Abandoned sign-ins leave state cookies behind; keep the newest few.
    let pending = login_state_cookies(sign_in, cookie_headers);
    for name in pending
        .iter()
        .take(pending.len().saturating_sub(MAX_LOGIN_STATES - 1))
    {
        set_cookies.extend(cookie_jar::expire_cookie_values(name, &settings, 0));
    }
    Ok(Redirect {
        location,
        set_cookies,
    })
}

/// Names of the login-state cookies the request carries, in order.
fn login_state_cookies(sign_in: &SignIn, cookie_headers: &[&str]) -> Vec<String> {
    cookie_headers
        .iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| name.starts_with(&sign_in.settings.state_cookie_prefix))
        .map(str::to_owned)
        .collect()
}

/// Finishes a sign-in at the callback: `query` is the callback's query string.
pub async fn finish(
    sign_in: &SignIn,
    authenticator: &Authenticator,
    query: &str,
    cookie_headers: &[&str],
    now: u64,
) -> Result<Redirect, SignInError> {
    let pairs = form_pairs(query);
    let state = form_value(&pairs, "state")
        .filter(|s| !s.is_empty())
        .ok_or(SignInError::StateMissing)?;
    let cookie_name = state_cookie_name(sign_in, state);
    let sealed = cookie_jar::cookie_values(cookie_headers.iter().copied(), &cookie_name)
        .ok_or(SignInError::StateMissing)?;
    let login =
        LoginState::open(&sign_in.settings.keys, sealed).ok_or(SignInError::StateInvalid)?;
    if login.state != state {
        return Err(SignInError::StateInvalid);
    }
    if now > login.expires_at {
        return Err(SignInError::StateExpired);
    }
    let index = sign_in
        .provider_index(&login.provider)
        .ok_or(SignInError::StateInvalid)?;
    let provider = &authenticator.providers[index];
    if let Some(error) = form_value(&pairs, "error") {
        let error: String = error
            .chars()
            .filter(char::is_ascii_graphic)
            .take(100)
            .collect();
        return Err(SignInError::ProviderRefused(error));
    }
    // RFC 9207: a provider that names itself must be the one this sign-in went to.
    if let (Some(iss), Some(rules)) = (form_value(&pairs, "iss"), provider.rules()) {
        if iss != rules.issuer {
            return Err(SignInError::StateInvalid);
        }
    }
    let code = form_value(&pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or(SignInError::StateInvalid)?;
    let client = sign_in.clients[index]
        .as_ref()
        .ok_or_else(|| SignInError::ProviderNotReady(login.provider.clone()))?;
    let tokens =
        token_endpoint::exchange_code(provider, client, code, &login.redirect_uri, &login.verifier)
            .await
            .map_err(SignInError::TokenExchange)?;
    let id_token = tokens
        .id_token
        .as_deref()
        .ok_or_else(|| SignInError::TokenRejected {
            which: "ID token",
            failure: AuthFailure::new(
                crate::oidc::AuthReason::MissingToken,
                "the token response has no `id_token` (is `openid` among the scopes?)",
            ),
        })?;
    let who = check_id_token(provider, id_token, &client.id, &login.nonce)
        .await
        .map_err(|failure| SignInError::TokenRejected {
            which: "ID token",
            failure,
        })?;
    let verified = authenticator
        .authenticate_token(&tokens.access_token, &[index])
        .await
        .map_err(|failure| SignInError::TokenRejected {
            which: "access token",
            failure,
        })?;
    let access_expires_at = verified
        .identity
        .claims()
        .get("exp")
        .and_then(crate::policy::RawJson::as_u64)
        .unwrap_or_else(|| now + tokens.expires_in.unwrap_or(60));
    let session = Session {
        provider: login.provider.clone(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
        access_expires_at,
        sid: if who.sid.is_empty() {
            random_url_token(16).ok_or(SignInError::NoRandomness)?
        } else {
            who.sid
        },
        subject: who.subject,
        created_at: now,
        last_seen: now,
    };
    let mut set_cookies = sign_in
        .start_session(&session, cookie_headers, now)
        .await
        .map_err(|failure| match failure {
            StartFailure::TooLarge => SignInError::SessionTooLarge,
            StartFailure::Unavailable(error) => SignInError::StoreUnavailable(error.to_string()),
        })?;
    set_cookies.extend(cookie_jar::expire_cookie_values(
        &cookie_name,
        &sign_in.cookie_settings(),
        0,
    ));
    Ok(Redirect {
        location: login.return_to,
        set_cookies,
    })
}
