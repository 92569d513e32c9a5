//! Compiles the `browser_sign_in` section into [`SignInSettings`], offline: reserved paths are
//! distinct absolute paths, scopes include `openid`, the session keys decode to 32 bytes, the
//! cookie name is a valid token whose prefix the cookie attributes can honour, and the
//! durations are sane. Every problem is located by its config path.

use super::seal::SealKeys;
use crate::config::bounds::duration_within;
use crate::config::file::{BrowserSignInFile, SessionStoreKind};
use crate::config::PathError;
use std::time::Duration;

/// The validated `browser_sign_in` section.
#[derive(Debug)]
pub struct SignInSettings {
    /// Where the provider sends the browser back with a code.
    pub callback_path: String,
    pub logout_path: String,
    pub backchannel_logout_path: String,
    /// Where the browser lands after logout when the link names no `rd`.
    pub post_logout_path: String,
    /// The space-separated `scope` of the authorization request.
    pub scope: String,
    /// The session cookie; a large session continues in `{cookie}_1`, `{cookie}_2`…
    pub cookie: String,
    /// Login-state cookies are `{cookie}-state-{first characters of the state}`, one per
    /// sign-in in progress (several tabs may sign in at once).
    pub state_cookie_prefix: String,
    pub keys: SealKeys,
    pub lifetime: Duration,
    pub idle_timeout: Duration,
    pub refresh_before: Duration,
    pub login_timeout: Duration,
    pub store: SessionStoreKind,
    /// Whether cookies carry `Secure` (false only with `insecure_cookies: true`).
    pub secure_cookies: bool,
}

impl SignInSettings {
    /// Whether a request cookie named `name` is one of the gateway's (never sent upstream).
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        match name.strip_prefix(self.cookie.as_str()) {
            Some("") => true,
            Some(rest) => {
                rest.starts_with("-state-")
                    || rest
                        .strip_prefix('_')
                        .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
            }
            None => false,
        }
    }

    /// Whether `path` is one of the paths the gateway answers itself.
    pub fn is_reserved_path(&self, path: &str) -> bool {
        path == self.callback_path
            || path == self.logout_path
            || path == self.backchannel_logout_path
    }
}

/// Whether `path` can be a path the gateway answers itself: absolute, not `//`, printable
/// ASCII without query or fragment.
pub fn is_plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// Compiles the section at `browser_sign_in`.
pub fn compile_sign_in(
    file: &BrowserSignInFile,
    errors: &mut Vec<PathError>,
) -> Option<SignInSettings> {
    let before = errors.len();
    let path_setting =
        |value: &Option<String>, default: &str, key: &str, errors: &mut Vec<PathError>| {
            let path = value.clone().unwrap_or_else(|| default.to_owned());
            if !is_plain_absolute_path(&path) {
                errors.push(PathError::new(
                    format!("browser_sign_in.{key}"),
                    format!("`{path}` is not an absolute path without query (e.g. `{default}`)"),
                ));
            }
            path
        };
    let callback_path = path_setting(
        &file.callback_path,
        "/.portcullis/callback",
        "callback_path",
        errors,
    );
    let logout_path = path_setting(
        &file.logout_path,
        "/.portcullis/logout",
        "logout_path",
        errors,
    );
    let backchannel_logout_path = path_setting(
        &file.backchannel_logout_path,
        "/.portcullis/backchannel-logout",
        "backchannel_logout_path",
        errors,
    );
    let post_logout_path = path_setting(&file.post_logout_path, "/", "post_logout_path", errors);
    if callback_path == logout_path
        || callback_path == backchannel_logout_path
        || logout_path == backchannel_logout_path
    {
        errors.push(PathError::new(
            "browser_sign_in",
            "`callback_path`, `logout_path` and `backchannel_logout_path` must differ",
        ));
    }
    let scopes = file
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        errors.push(PathError::new(
            "browser_sign_in.scopes",
            "must contain `openid` (the ID token proves who signed in)",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        errors.push(PathError::new(
            "browser_sign_in.scopes",
            format!("`{bad}` is not a valid scope token"),
        ));
    }
    let session = &file.session;
    let cookie = session
        .cookie
        .clone()
        .unwrap_or_else(|| "__Host-portcullis".to_owned());
    let secure_cookies = !session.insecure_cookies.unwrap_or(false);
    check_cookie_name(&cookie, secure_cookies, errors);
    let keys = match SealKeys::from_base64(&session.keys) {
        Ok(keys) => Some(keys),
        Err(error) => {
            errors.push(PathError::new(
                "browser_sign_in.session.keys",
                format!("{error} (make one with `openssl rand -base64 32`)"),
            ));
            None
        }
    };
    let seconds = Duration::from_secs;
    let lifetime = duration_within(
        session.lifetime,
        seconds(8 * 3600),
        seconds(60)..=seconds(90 * 86_400),
        "browser_sign_in.session.lifetime",
        errors,
    );
    let idle_timeout = duration_within(
        session.idle_timeout,
        seconds(3600),
        seconds(60)..=lifetime.max(seconds(60)),
        "browser_sign_in.session.idle_timeout",
        errors,
    );
    let refresh_before = duration_within(
        session.refresh_before,
        seconds(60),
        seconds(0)..=seconds(3600),
        "browser_sign_in.session.refresh_before",
        errors,
    );
    let login_timeout = duration_within(
        file.login_timeout,
        seconds(600),
        seconds(30)..=seconds(3600),
        "browser_sign_in.login_timeout",
        errors,
    );
    let store = session.store.unwrap_or(SessionStoreKind::Cookie);
    if errors.len() > before {
        return None;
    }
    Some(SignInSettings {
        callback_path,
        logout_path,
        backchannel_logout_path,
        post_logout_path,
        scope: scopes.join(" "),
        state_cookie_prefix: format!("{cookie}-state-"),
        cookie,
        keys: keys?,
        lifetime,
        idle_timeout,
        refresh_before,
        login_timeout,
        store,
        secure_cookies,
    })
}

/// RFC 6265 token characters, and prefixes the attributes can honour.
fn check_cookie_name(name: &str, secure: bool, errors: &mut Vec<PathError>) {
    let token = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        errors.push(PathError::new(
            "browser_sign_in.session.cookie",
            format!("`{name}` is not a valid cookie name (letters, digits, `-`, `_`, at most 64)"),
        ));
    }
    if !secure && (name.starts_with("__Host-") || name.starts_with("__Secure-")) {
        errors.push(PathError::new(
            "browser_sign_in.session.cookie",
            format!("browsers refuse `{name}` without `Secure`; with `insecure_cookies: true` pick a name without the `__Host-`/`__Secure-` prefix"),
        ));
    }
}
