//! Server-side sessions (`browser_sign_in.session.store: redis`): the sealed session lives in
//! Redis and the cookie holds only an opaque random id, so a logout — at this instance, another
//! one, or by the provider's back-channel call — ends the session on every instance at once.
//!
//! Keys (the id itself is never stored: a Redis dump yields no usable cookie), all with the hash
//! tag `{sessions}` so that they share one slot of a Redis Cluster (sessions are few next to
//! rate-limit keys; one slot keeps every call single-node):
//! - `portcullis:{sessions}:session:SHA256(id)` — the session, sealed with the session keys as
//!   in a cookie (Redis holds no readable token), expiring at the idle or absolute deadline;
//! - `portcullis:{sessions}:sid:SID` — the ids' hashes of one provider session, for back-channel
//!   logout;
//! - `portcullis:{sessions}:expiry` — a sorted set of hashes by expiry, for the active-sessions
//!   gauge.
//!
//! Every call is bounded by `redis.timeout`; a failure is [`StoreUnavailable`], which the request
//! path answers with 503 (fail closed: no session is assumed valid or invalid without Redis).

use crate::metrics::metrics;
use crate::ratelimit::redis_connection::ConnectionPool;
use crate::ratelimit::RedisSettings;
use aws_lc_rs::digest;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often at most the active-sessions gauge is recounted.
const GAUGE_INTERVAL_SECONDS: u64 = 15;
const SESSION_PREFIX: &str = "portcullis:{sessions}:session:";
const SID_PREFIX: &str = "portcullis:{sessions}:sid:";
const EXPIRY_INDEX: &str = "portcullis:{sessions}:expiry";

/// Redis did not answer in time, refused, or answered something unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUnavailable(pub String);

impl std::fmt::Display for StoreUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the session store (Redis) is unavailable: {}", self.0)
    }
}

/// The Redis side of server-side sessions.
pub struct RedisSessions {
    pool: ConnectionPool,
    timeout: Duration,
    gauge_counted_at: AtomicU64,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The storage key of session id `id`.
fn session_key(id: &str) -> String {
    format!("{SESSION_PREFIX}{}", id_hash(id))
}

fn id_hash(id: &str) -> String {
    let digest = digest::digest(&digest::SHA256, id.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn failed(error: impl std::fmt::Display) -> StoreUnavailable {
    StoreUnavailable(error.to_string())
}

impl RedisSessions {
    /// Prepares the store for the `redis` section; connects on first use.
    pub fn new(settings: &RedisSettings) -> Result<RedisSessions, StoreUnavailable> {
        Ok(RedisSessions {
            pool: ConnectionPool::new(settings).map_err(failed)?,
            timeout: settings.timeout,
            gauge_counted_at: AtomicU64::new(0),
        })
    }

    /// Runs `pipeline` within the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, StoreUnavailable> {
        let mut connection = self
            .pool
            .get(|_| None)
            .ok_or_else(|| StoreUnavailable("no connection".into()))?;
        tokio::time::timeout(self.timeout, pipeline.query_async(&mut connection))
            .await
            .map_err(|_| StoreUnavailable("no answer in time".into()))?
            .map_err(failed)
    }

    /// The sealed session of cookie value `id`, if Redis still has it.
    pub async fn load(&self, id: &str) -> Result<Option<String>, StoreUnavailable> {
        let (sealed,): (Option<String>,) = self.run(redis::pipe().get(session_key(id))).await?;
        Ok(sealed)
    }

    /// Stores the sealed session of `id` (provider session `sid`) until `ttl` from now.
    pub async fn save(
        &self,
        id: &str,
        sid: &str,
        sealed: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreUnavailable> {
        let seconds = ttl.as_secs().max(1);
        let hash = id_hash(id);
        let sid_key = format!("{SID_PREFIX}{sid}");
        let mut pipeline = redis::pipe();
        pipeline
            .set_ex(format!("{SESSION_PREFIX}{hash}"), sealed, seconds)
            .ignore()
            .sadd(&sid_key, &hash)
            .ignore()
            .expire(&sid_key, seconds as i64)
            .ignore()
            .zadd(EXPIRY_INDEX, &hash, now + seconds)
            .ignore();
        self.run::<()>(&pipeline).await?;
        self.count_active(now).await;
        Ok(())
    }

    /// Ends the session of cookie value `id`.
    pub async fn delete(&self, id: &str) -> Result<(), StoreUnavailable> {
        let hash = id_hash(id);
        let mut pipeline = redis::pipe();
        pipeline
            .del(format!("{SESSION_PREFIX}{hash}"))
            .ignore()
            .zrem(EXPIRY_INDEX, &hash)
            .ignore();
        self.run::<()>(&pipeline).await
    }

    /// Ends every session of provider session `sid`; returns how many there were.
    pub async fn delete_sid(&self, sid: &str) -> Result<usize, StoreUnavailable> {
        let sid_key = format!("{SID_PREFIX}{sid}");
        let (hashes,): (Vec<String>,) = self.run(redis::pipe().smembers(&sid_key)).await?;
        let mut pipeline = redis::pipe();
        pipeline.del(&sid_key).ignore();
        for hash in &hashes {
            pipeline
                .del(format!("{SESSION_PREFIX}{hash}"))
                .ignore()
                .zrem(EXPIRY_INDEX, hash)
                .ignore();
        }
        self.run::<()>(&pipeline).await?;
        Ok(hashes.len())
    }

    /// Recounts the live sessions for the gauge, at most every [`GAUGE_INTERVAL_SECONDS`];
    /// a failure leaves the gauge as it was.
    async fn count_active(&self, now: u64) {
        let counted = self.gauge_counted_at.load(Ordering::Relaxed);
        if now < counted + GAUGE_INTERVAL_SECONDS
            || self
                .gauge_counted_at
                .compare_exchange(counted, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut pipeline = redis::pipe();
        pipeline
            .zrembyscore(EXPIRY_INDEX, 0, now)
            .ignore()
            .zcard(EXPIRY_INDEX);
        if let Ok((active,)) = self.run::<(i64,)>(&pipeline).await {
            metrics().sign_in_sessions.set(active);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_a_hash_of_the_id_never_the_id() {
        let id = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
        let key = session_key(id);
        assert!(key.starts_with(SESSION_PREFIX));
        assert!(!key.contains(id));
        assert_eq!(key.len(), SESSION_PREFIX.len() + 64);
        assert_eq!(session_key(id), key, "stable across instances");
        assert_ne!(session_key("other"), key);
    }
}
