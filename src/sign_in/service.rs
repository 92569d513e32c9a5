//! The running sign-in service of one snapshot: its settings, the gateway's client at each
//! provider, and the state that outlives a reload (ended sessions, refreshes in flight). The
//! request path asks it for the session of a request ([`SignIn::resume`]); the flow and logout
//! files answer the reserved paths.

use super::cookie_jar::{self, CookieSettings};
use super::redis_sessions::StoreUnavailable;
use super::refresh::{RefreshFailure, RefreshFlights};
use super::revocation::RevokedSessions;
use super::session::{Session, SessionClock, SessionVerdict};
use super::session_store::{CookieContent, SessionStore};
use super::settings::SignInSettings;
use super::token_endpoint;
use crate::oidc::client::ClientCredentials;
use crate::oidc::provider::Provider;
use crate::ratelimit::RedisSettings;
use std::sync::Arc;
use std::time::Duration;

/// How many ended sessions (and subjects) are remembered at most.
const REVOKED_CAPACITY: usize = 100_000;

/// Browser sign-in for one snapshot.
#[derive(Debug)]
pub struct SignIn {
    pub settings: Arc<SignInSettings>,
    /// The gateway's client at each provider, by provider index (`None`: no `client` block).
    pub clients: Vec<Option<ClientCredentials>>,
    /// Provider names, by index (sessions name their provider).
    pub provider_names: Vec<String>,
    pub revoked: Arc<RevokedSessions>,
    refreshes: Arc<RefreshFlights>,
    pub store: SessionStore,
}

/// Why a new session could not be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// It does not fit into the cookies a browser keeps.
    TooLarge,
    /// The Redis session store failed.
    Unavailable(StoreUnavailable),
}

/// The session a request carries, and what became of it.
#[derive(Debug)]
pub enum SessionLookup {
    /// No session cookie.
    Absent,
    /// A cookie that is not (or no longer) a session: tampered, sealed with a retired key,
    /// past its lifetime or idle timeout, logged out, or its refresh was refused.
    Ended { why: &'static str },
    /// A usable session; `set_cookies` re-seal it when it changed (refresh, idle deadline).
    Active {
        session: Session,
        provider: usize,
        set_cookies: Vec<String>,
    },
    /// The Redis session store failed: nothing can be said about the session.
    Unavailable(StoreUnavailable),
}

impl SignIn {
    /// The service for `settings`; `previous` hands over the ended sessions and refreshes.
    pub fn new(
        settings: Arc<SignInSettings>,
        clients: Vec<Option<ClientCredentials>>,
        provider_names: Vec<String>,
        redis: Option<&RedisSettings>,
        previous: Option<&SignIn>,
    ) -> SignIn {
        if !settings.secure_cookies {
            tracing::warn!("browser_sign_in.session.insecure_cookies is on: session cookies are sent without `Secure`, so they travel over plain HTTP; use this for local development only");
        }
        SignIn {
            store: SessionStore::new(&settings, redis),
            settings,
            clients,
            provider_names,
            revoked: previous.map_or_else(
                || Arc::new(RevokedSessions::new(REVOKED_CAPACITY)),
                |p| p.revoked.clone(),
            ),
            refreshes: previous.map_or_else(Default::default, |p| p.refreshes.clone()),
        }
    }

    pub fn cookie_settings(&self) -> CookieSettings {
        CookieSettings {
            secure: self.settings.secure_cookies,
        }
    }

    pub fn clock(&self) -> SessionClock {
        SessionClock {
            lifetime: self.settings.lifetime,
            idle_timeout: self.settings.idle_timeout,
            refresh_before: self.settings.refresh_before,
        }
    }

    /// The index of provider `name`.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.provider_names.iter().position(|n| n == name)
    }

    /// Seconds a session cookie lives in the browser: until the session's absolute end.
    fn cookie_max_age(&self, session: &Session, now: u64) -> u64 {
        session
            .created_at
            .saturating_add(self.settings.lifetime.as_secs())
            .saturating_sub(now)
    }

    /// How long the store keeps `session` from `now`: until its idle or absolute deadline.
    fn store_ttl(&self, session: &Session, now: u64) -> Duration {
        let idle_end = session
            .last_seen
            .saturating_add(self.settings.idle_timeout.as_secs());
        let lifetime_end = session
            .created_at
            .saturating_add(self.settings.lifetime.as_secs());
        Duration::from_secs(idle_end.min(lifetime_end).saturating_sub(now))
    }

    /// `Set-Cookie` values that carry `content` (chunked when large), replacing what the
    /// request carried.
    fn cookie_for(
        &self,
        content: &str,
        session: &Session,
        cookie_headers: &[&str],
        now: u64,
    ) -> Result<Vec<String>, cookie_jar::CookieTooLarge> {
        let chunks = cookie_jar::count_chunks(cookie_headers, &self.settings.cookie);
        cookie_jar::set_cookie_values(
            &self.settings.cookie,
            content,
            self.cookie_max_age(session, now),
            &self.cookie_settings(),
            chunks,
        )
    }

    /// Keeps a new session (signed in just now); returns the `Set-Cookie` values of its cookie.
    pub async fn start_session(
        &self,
        session: &Session,
        cookie_headers: &[&str],
        now: u64,
    ) -> Result<Vec<String>, StartFailure> {
        let sealed = session.seal(&self.settings.keys);
        let content = self
            .store
            .create(session, sealed, self.store_ttl(session, now), now)
            .await
            .map_err(StartFailure::Unavailable)?;
        let value = match &content {
            CookieContent::Sealed(sealed) => sealed,
            CookieContent::Id(id) => id,
        };
        self.cookie_for(value, session, cookie_headers, now)
            .map_err(|_| StartFailure::TooLarge)
    }

    /// `Set-Cookie` values that remove the session cookie and its chunks.
    pub fn clear_session_cookies(&self, cookie_headers: &[&str]) -> Vec<String> {
        let chunks = cookie_jar::count_chunks(cookie_headers, &self.settings.cookie);
        cookie_jar::expire_cookie_values(&self.settings.cookie, &self.cookie_settings(), chunks)
    }

    /// Ends the request's session in the store (logout); returns it when it could be read.
    pub async fn end_session(&self, cookie_headers: &[&str]) -> Option<Session> {
        let cookie = cookie_jar::read_chunked(cookie_headers, &self.settings.cookie)?;
        let sealed = match self.store.sealed(cookie.clone()).await {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::warn!(%error, "logout: the session could not be read");
                None
            }
        };
        if let Err(error) = self.store.end(&cookie).await {
            tracing::warn!(%error, "logout: the session could not be removed from the store");
        }
        Session::open(&self.settings.keys, sealed.as_deref()?)
    }

    /// The request's session: opened, checked against revocation and the clock, refreshed
    /// when its access token is about to expire. `providers` is the snapshot's provider list.
    pub async fn resume(
        &self,
        cookie_headers: &[&str],
        providers: &[Arc<Provider>],
        now: u64,
    ) -> SessionLookup {
        let Some(cookie) = cookie_jar::read_chunked(cookie_headers, &self.settings.cookie) else {
            return SessionLookup::Absent;
        };
        let sealed = match self.store.sealed(cookie.clone()).await {
            Ok(Some(sealed)) => sealed,
            Ok(None) => {
                return SessionLookup::Ended {
                    why: "not_in_store",
                }
            }
            Err(error) => return SessionLookup::Unavailable(error),
        };
        let Some(session) = Session::open(&self.settings.keys, &sealed) else {
            return SessionLookup::Ended { why: "unreadable" };
        };
        let Some(provider) = self.provider_index(&session.provider) else {
            return SessionLookup::Ended {
                why: "unknown_provider",
            };
        };
        if self.revoked.is_revoked(&session) {
            return SessionLookup::Ended { why: "logged_out" };
        }
        let (session, changed) = match session.verdict(now, &self.clock()) {
            SessionVerdict::Use => (session, false),
            SessionVerdict::UseAndTouch => (
                Session {
                    last_seen: now,
                    ..session
                },
                true,
            ),
            SessionVerdict::LifetimeOver => return SessionLookup::Ended { why: "lifetime" },
            SessionVerdict::Idle => return SessionLookup::Ended { why: "idle" },
            SessionVerdict::Refresh => {
                match self
                    .refresh(&session, &providers[provider], provider, now)
                    .await
                {
                    Ok(fresh) => (fresh, true),
                    Err(RefreshFailure::Unavailable(_)) if now < session.access_expires_at => {
                        (session, false)
                    }
                    Err(_) => {
                        return SessionLookup::Ended {
                            why: "refresh_failed",
                        }
                    }
                }
            }
        };
        let set_cookies = if changed {
            let sealed = session.seal(&self.settings.keys);
            let ttl = self.store_ttl(&session, now);
            match self
                .store
                .update(&cookie, &session, &sealed, ttl, now)
                .await
            {
                Ok(true) => match self.cookie_for(&sealed, &session, cookie_headers, now) {
                    Ok(cookies) => cookies,
                    Err(_) => return SessionLookup::Ended { why: "too_large" },
                },
                Ok(false) => Vec::new(),
                Err(error) => return SessionLookup::Unavailable(error),
            }
        } else {
            Vec::new()
        };
        SessionLookup::Active {
            session,
            provider,
            set_cookies,
        }
    }

    /// The refresh grant for `session`, once per session however many requests ask.
    async fn refresh(
        &self,
        session: &Session,
        provider: &Arc<Provider>,
        index: usize,
        now: u64,
    ) -> Result<Session, RefreshFailure> {
        let (Some(refresh_token), Some(client)) = (
            &session.refresh_token,
            self.clients.get(index).and_then(Option::as_ref),
        ) else {
            return Err(RefreshFailure::SessionEnded);
        };
        let outcome = self
            .refreshes
            .run(session, || async {
                let tokens = token_endpoint::refresh(provider, client, refresh_token)
                    .await
                    .map_err(|error| {
                        if error.is_invalid_grant() {
                            RefreshFailure::SessionEnded
                        } else {
                            RefreshFailure::Unavailable(error.to_string())
                        }
                    })?;
                Ok(Session {
                    access_expires_at: now.saturating_add(tokens.expires_in.unwrap_or(60)),
                    access_token: tokens.access_token,
                    refresh_token: tokens
                        .refresh_token
                        .or_else(|| session.refresh_token.clone()),
                    id_token: tokens.id_token.or_else(|| session.id_token.clone()),
                    last_seen: now,
                    ..session.clone()
                })
            })
            .await;
        let label = match &outcome {
            Ok(_) => "refreshed",
            Err(RefreshFailure::SessionEnded) => "session_ended",
            Err(RefreshFailure::Unavailable(why)) => {
                tracing::warn!(provider = %session.provider, error = %why, "session refresh failed");
                "unavailable"
            }
        };
        crate::metrics::metrics()
            .sign_in_events
            .with_label_values(&["refresh", label])
            .inc();
        outcome
    }
}
