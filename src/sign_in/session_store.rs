//! Where sessions live: sealed into the cookie itself (`store: cookie`, stateless) or in Redis
//! under an opaque id that the cookie carries (`store: redis`). The service asks this file for
//! the sealed session a cookie stands for, and tells it when a session starts, changes or ends;
//! only the Redis store has anything to do for the last three.

use super::redirect::random_url_token;
use super::redis_sessions::{RedisSessions, StoreUnavailable};
use super::session::Session;
use super::settings::SignInSettings;
use crate::config::file::SessionStoreKind;
use crate::ratelimit::RedisSettings;
use std::time::Duration;

/// The session store of one snapshot.
#[derive(Debug)]
pub enum SessionStore {
    Cookie,
    Redis(Box<RedisSessions>),
    /// `store: redis` whose client could not be made: every session operation fails closed.
    Broken(StoreUnavailable),
}

/// What the cookie of a new session holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieContent {
    /// The sealed session itself.
    Sealed(String),
    /// The id of a session kept in Redis.
    Id(String),
}

impl SessionStore {
    /// The store `settings` ask for; `redis` is the `redis` section (the compiler requires it
    /// for `store: redis`).
    pub fn new(settings: &SignInSettings, redis: Option<&RedisSettings>) -> SessionStore {
        if settings.store != SessionStoreKind::Redis {
            return SessionStore::Cookie;
        }
        let made = redis
            .ok_or_else(|| StoreUnavailable("no `redis` section".into()))
            .and_then(RedisSessions::new);
        match made {
            Ok(store) => SessionStore::Redis(Box::new(store)),
            Err(error) => {
                tracing::error!(%error, "browser sessions cannot be stored");
                SessionStore::Broken(error)
            }
        }
    }

    /// The sealed session behind the cookie's value; `None` when the store no longer has it.
    pub async fn sealed(&self, cookie: String) -> Result<Option<String>, StoreUnavailable> {
        match self {
            SessionStore::Cookie => Ok(Some(cookie)),
            SessionStore::Redis(store) => store.load(&cookie).await,
            SessionStore::Broken(error) => Err(error.clone()),
        }
    }

    /// Stores a new session; returns what its cookie holds.
    pub async fn create(
        &self,
        session: &Session,
        sealed: String,
        ttl: Duration,
        now: u64,
    ) -> Result<CookieContent, StoreUnavailable> {
        match self {
            SessionStore::Cookie => Ok(CookieContent::Sealed(sealed)),
            SessionStore::Redis(store) => {
                let id = random_url_token(32)
                    .ok_or_else(|| StoreUnavailable("no randomness for a session id".into()))?;
                store.save(&id, &session.sid, &sealed, ttl, now).await?;
                Ok(CookieContent::Id(id))
            }
            SessionStore::Broken(error) => Err(error.clone()),
        }
    }

    /// Keeps a changed session (refreshed, or its idle deadline moved). `Ok(true)` when the
    /// cookie has to carry it (the cookie store), `Ok(false)` when the store holds it.
    pub async fn update(
        &self,
        cookie: &str,
        session: &Session,
        sealed: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<bool, StoreUnavailable> {
        match self {
            SessionStore::Cookie => Ok(true),
            SessionStore::Redis(store) => {
                store.save(cookie, &session.sid, sealed, ttl, now).await?;
                Ok(false)
            }
            SessionStore::Broken(error) => Err(error.clone()),
        }
    }

    /// Ends the session the cookie names (logout).
    pub async fn end(&self, cookie: &str) -> Result<(), StoreUnavailable> {
        match self {
            SessionStore::Redis(store) => store.delete(cookie).await,
            _ => Ok(()),
        }
    }

    /// Ends every session of provider session `sid` (back-channel logout).
    pub async fn end_sid(&self, sid: &str) -> Result<(), StoreUnavailable> {
        match self {
            SessionStore::Redis(store) => store.delete_sid(sid).await.map(|_| ()),
            SessionStore::Broken(error) => Err(error.clone()),
            SessionStore::Cookie => Ok(()),
        }
    }
}
