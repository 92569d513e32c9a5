//! A signed-in browser's session and the login state of a sign-in in progress, as sealed into
//! their cookies, with the pure checks that decide what a request does with them: use, refresh,
//! re-seal (to move the idle deadline) or drop.

use super::seal::SealKeys;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The AEAD purpose of session cookies.
const SESSION_PURPOSE: &str = "portcullis-session-v1";
/// The AEAD purpose of login-state cookies.
const LOGIN_STATE_PURPOSE: &str = "portcullis-login-state-v1";

/// One browser session (short field names keep the cookie small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The provider's name (indexes change across reloads, names do not).
    #[serde(rename = "p")]
    pub provider: String,
    #[serde(rename = "a")]
    pub access_token: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// For `id_token_hint` at logout.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Unix seconds when the access token expires.
    #[serde(rename = "e")]
    pub access_expires_at: u64,
    /// The provider's session id (`sid`), what back-channel logout names.
    #[serde(rename = "s")]
    pub sid: String,
    #[serde(rename = "u")]
    pub subject: String,
    /// Unix seconds when the user signed in.
    #[serde(rename = "c")]
    pub created_at: u64,
    /// Unix seconds of the last request that re-sealed the cookie.
    #[serde(rename = "l")]
    pub last_seen: u64,
}

/// What a request does with a session it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVerdict {
    /// Use it as it is.
    Use,
    /// Use it and send it back re-sealed, so that the idle deadline moves.
    UseAndTouch,
    /// The access token is (nearly) expired: refresh it first.
    Refresh,
    /// Past its absolute lifetime.
    LifetimeOver,
    /// Unused for longer than the idle timeout.
    Idle,
}

/// Session times from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionClock {
    pub lifetime: Duration,
    pub idle_timeout: Duration,
    pub refresh_before: Duration,
}

impl SessionClock {
    /// How stale `last_seen` may get before a response re-seals the cookie: a tenth of the idle
    /// timeout, at most a minute, so that an active user is never idled out and a busy page does
    /// not get a new cookie on every request.
    fn touch_after(&self) -> u64 {
        (self.idle_timeout.as_secs() / 10).clamp(1, 60)
    }
}

impl Session {
    /// Decides what a request at `now` does with this session.
    pub fn verdict(&self, now: u64, clock: &SessionClock) -> SessionVerdict {
        if now >= self.created_at.saturating_add(clock.lifetime.as_secs()) {
            return SessionVerdict::LifetimeOver;
        }
        if now >= self.last_seen.saturating_add(clock.idle_timeout.as_secs()) {
            return SessionVerdict::Idle;
        }
        if now.saturating_add(clock.refresh_before.as_secs()) >= self.access_expires_at {
            return SessionVerdict::Refresh;
        }
        if now >= self.last_seen.saturating_add(clock.touch_after()) {
            return SessionVerdict::UseAndTouch;
        }
        SessionVerdict::Use
    }

    /// Seals the session for its cookie.
    pub fn seal(&self, keys: &SealKeys) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        keys.seal(SESSION_PURPOSE, &json)
    }

    /// Opens a session cookie; `None` for anything not sealed by one of `keys` as a session.
    pub fn open(keys: &SealKeys, sealed: &str) -> Option<Session> {
        let json = keys.open(SESSION_PURPOSE, sealed)?;
        serde_json::from_slice(&json).ok()
    }
}

/// A sign-in in progress: what the callback needs to finish it, sealed into a short-lived cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The `state` parameter sent to the provider.
    pub state: String,
    /// The PKCE code verifier.
    pub verifier: String,
    pub nonce: String,
    /// The provider's name.
    pub provider: String,
    /// The `redirect_uri` sent (the token request must repeat it).
    pub redirect_uri: String,
    /// Where the browser was going: a same-host relative path.
    pub return_to: String,
    /// Unix seconds after which the callback is refused.
    pub expires_at: u64,
}

impl LoginState {
    pub fn seal(&self, keys: &SealKeys) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        keys.seal(LOGIN_STATE_PURPOSE, &json)
    }

    pub fn open(keys: &SealKeys, sealed: &str) -> Option<LoginState> {
        let json = keys.open(LOGIN_STATE_PURPOSE, sealed)?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SealKeys {
        SealKeys::from_base64(&[super::super::seal::generate_key_base64()]).unwrap()
    }

    fn session() -> Session {
        Session {
            provider: "acme".into(),
            access_token: "a.b.c".into(),
            refresh_token: Some("r".into()),
            id_token: None,
            access_expires_at: 1_000_300,
            sid: "sid-1".into(),
            subject: "alice".into(),
            created_at: 1_000_000,
            last_seen: 1_000_000,
        }
    }

    const CLOCK: SessionClock = SessionClock {
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        refresh_before: Duration::from_secs(60),
    };

    #[test]
    fn verdict_follows_the_clock() {
        let s = session();
        assert_eq!(s.verdict(1_000_000, &CLOCK), SessionVerdict::Use);
        assert_eq!(s.verdict(1_000_059, &CLOCK), SessionVerdict::Use);
        assert_eq!(s.verdict(1_000_060, &CLOCK), SessionVerdict::UseAndTouch);
        assert_eq!(s.verdict(1_000_240, &CLOCK), SessionVerdict::Refresh);
        assert_eq!(s.verdict(1_003_600, &CLOCK), SessionVerdict::Idle);
        let mut active = s.clone();
        active.last_seen = 1_000_000 + 8 * 3600 - 10;
        active.access_expires_at = u64::MAX;
        assert_eq!(
            active.verdict(1_000_000 + 8 * 3600, &CLOCK),
            SessionVerdict::LifetimeOver
        );
    }

    #[test]
    fn sealed_session_and_login_state_do_not_open_as_each_other() {
        let keys = keys();
        let sealed = session().seal(&keys);
        assert_eq!(Session::open(&keys, &sealed), Some(session()));
        assert_eq!(LoginState::open(&keys, &sealed), None);
        let state = LoginState {
            state: "s".into(),
            verifier: "v".into(),
            nonce: "n".into(),
            provider: "acme".into(),
            redirect_uri: "https://h/cb".into(),
            return_to: "/".into(),
            expires_at: 5,
        };
        let sealed_state = state.seal(&keys);
        assert_eq!(LoginState::open(&keys, &sealed_state), Some(state));
        assert_eq!(Session::open(&keys, &sealed_state), None);
        assert_eq!(Session::open(&self::keys(), &sealed), None, "another key");
    }
}
