//! The shared store: GCRA state in Redis, so every gateway instance enforces one limit and
//! restarts keep long quotas.
//!
//! **One round trip.** A Lua script reads the key's TAT, decides, and writes the new TAT with a
//! TTL equal to the time until the bucket is full (an idle key costs Redis nothing). It reads the
//! clock with Redis `TIME`, so all instances share one clock; state is kept in microseconds.
//! The script is called by `EVALSHA`; a `NOSCRIPT` reply (Redis restarted or flushed its script
//! cache) is answered by one `EVAL` of the full text, which caches it again. Keys are
//! `portcullis:rl:<policy>:<key>`; a key longer than 200 bytes is replaced by `|h:<FNV-1a hex>`
//! (stable across instances; `|` never starts a regular key, see [`super::key`]).
//!
//! **Never waits longer than `timeout`.** Connections are multiplexed [`ConnectionManager`]s
//! (`pool_size` of them, round robin), created on first use inside the runtime, so a Redis that is
//! down at start cannot stop the gateway. Every call is bounded by `tokio::time::timeout`. After
//! [`BREAKER_THRESHOLD`] consecutive failures a breaker opens: calls fail at once (no wait, no
//! connect) and one probe per back-off interval (100 ms doubling to 2 s) tests Redis again, so a
//! dead Redis sees a handful of reconnects per second, not one per request.
//!
//! The batched call of `sync_interval` policies is in [`sync`].

use super::gcra::Limit;
use super::metrics;
use super::redis_connection::{ConnectionPool, RedisConnection};
use super::redis_settings::RedisSettings;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

mod sync;
pub use sync::SyncAnswer;
/// Consecutive failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 3;
const BACKOFF_MIN_NS: u64 = 100_000_000;
const BACKOFF_MAX_NS: u64 = 2_000_000_000;
const MAX_KEY_BYTES: usize = 200;

/// Script result: `{allowed 0|1, remaining, reset_after µs, retry_after µs}`.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local window = emission * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000))
return {1, math.floor((window - used) / emission + 1e-6), math.ceil(used), 0}
"#;

/// The answer from Redis, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOutcome {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_after_us: u64,
    pub retry_after_us: u64,
}

/// Why a call failed (the metric's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    Timeout,
    Connection,
    Server,
    Reply,
    /// The breaker is open: not tried.
    Unavailable,
}

impl RedisFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Timeout => "timeout",
            RedisFailure::Connection => "connection",
            RedisFailure::Server => "server",
            RedisFailure::Reply => "reply",
            RedisFailure::Unavailable => "unavailable",
        }
    }
}

/// Why a [`RedisStore`] cannot be prepared: the Redis client refuses the URL (bad syntax or
/// an unsupported scheme). Connection failures are not reported here; they happen per call.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error(transparent)]
    InvalidUrl(redis::RedisError),
}

/// Connections, script and breaker for one Redis.
pub struct RedisStore {
    settings: RedisSettings,
    pool: ConnectionPool,
    script_sha: String,
    /// SHA1 of [`sync::SYNC_SCRIPT`], for `EVALSHA`.
    sync_sha: String,
    breaker: Breaker,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("settings", &self.settings)
            .finish()
    }
}

impl RedisStore {
    /// Prepares the store; connects nothing yet (no runtime is needed).
    pub fn new(settings: RedisSettings) -> Result<Self, RedisStoreError> {
        Ok(RedisStore {
            pool: ConnectionPool::new(&settings).map_err(RedisStoreError::InvalidUrl)?,
            script_sha: redis::Script::new(SCRIPT).get_hash().to_owned(),
            sync_sha: redis::Script::new(sync::SYNC_SCRIPT).get_hash().to_owned(),
            breaker: Breaker::new(),
            settings,
        })
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// Counts one request for `key` (the full Redis key is `prefix` + `key`). Returns within
    /// the configured timeout, whatever Redis does.
    pub async fn check(
        &self,
        prefix: &str,
        key: &str,
        limit: &Limit,
    ) -> Result<RedisOutcome, RedisFailure> {
        if !self.breaker.allow_call() {
            metrics::redis_error(RedisFailure::Unavailable.as_str());
            return Err(RedisFailure::Unavailable);
        }
        let started = Instant::now();
        let result = match self.connection() {
            Some(mut connection) => {
                let call = self.invoke(&mut connection, prefix, key, limit);
                match tokio::time::timeout(self.settings.timeout, call).await {
                    Ok(result) => result,
                    Err(_) => Err(RedisFailure::Timeout),
                }
            }
            None => Err(RedisFailure::Connection),
        };
        metrics::redis_call(started.elapsed().as_secs_f64());
        match result {
            Ok(_) => self.breaker.on_success(),
            Err(failure) => {
                metrics::redis_error(failure.as_str());
                self.breaker.on_failure();
            }
        }
        result
    }

    async fn invoke(
        &self,
        connection: &mut RedisConnection,
        prefix: &str,
        key: &str,
        limit: &Limit,
    ) -> Result<RedisOutcome, RedisFailure> {
        let redis_key = redis_key(prefix, key);
        // Microseconds per request, fractional when the rate is not a whole number of µs.
        let emission_us = limit.emission_ns as f64 / 1000.0;
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&self.script_sha)
            .arg(1)
            .arg(&redis_key)
            .arg(emission_us)
            .arg(limit.capacity);
        let reply: redis::RedisResult<Vec<i64>> = match command.query_async(connection).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(SCRIPT)
                    .arg(1)
                    .arg(&redis_key)
                    .arg(emission_us)
                    .arg(limit.capacity);
                eval.query_async(connection).await
            }
            other => other,
        };
        match reply {
            Ok(values) if values.len() == 4 => Ok(RedisOutcome {
                allowed: values[0] == 1,
                remaining: values[1].max(0) as u64,
                reset_after_us: values[2].max(0) as u64,
                retry_after_us: values[3].max(0) as u64,
            }),
            Ok(_) => Err(RedisFailure::Reply),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                Err(RedisFailure::Connection)
            }
            Err(e) if e.is_timeout() => Err(RedisFailure::Timeout),
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                tracing::warn!(error = %e, "rate-limit script failed in Redis");
                Err(RedisFailure::Server)
            }
            Err(_) => Err(RedisFailure::Connection),
        }
    }

    /// A connection from the pool; a new one loads the script in the background.
    fn connection(&self) -> Option<RedisConnection> {
        self.pool.get(|mut warm| {
            let script = redis::Script::new(SCRIPT);
            Some(tokio::spawn(async move {
                let _ = script.prepare_invoke().load_async(&mut warm).await;
            }))
        })
    }
}

/// `portcullis:rl:<policy>:` + key, long keys hashed.
fn redis_key(prefix: &str, key: &str) -> String {
    if key.len() <= MAX_KEY_BYTES {
        return format!("{prefix}{key}");
    }
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{prefix}|h:{hash:016x}:{}", key.len())
}

/// The Lua scripts the store loads into Redis, by purpose (`portcullis doctor` loads them).
pub fn scripts() -> [(&'static str, &'static str); 2] {
    [("rate limit", SCRIPT), ("limit sync", sync::SYNC_SCRIPT)]
}

/// The Redis key prefix of a policy.
pub fn key_prefix(policy: &str) -> String {
    format!("portcullis:rl:{policy}:")
}

/// Opens after [`BREAKER_THRESHOLD`] consecutive failures; while open, lets one probe through
/// per back-off interval.
struct Breaker {
    origin: Instant,
    failures: AtomicU32,
    /// 0 when closed; else the instant (ns since `origin`) the next probe may go.
    open_until: AtomicU64,
    backoff_ns: AtomicU64,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            origin: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            backoff_ns: AtomicU64::new(BACKOFF_MIN_NS),
        }
    }

    fn now_ns(&self) -> u64 {
        // +1 so that 0 keeps meaning "closed".
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn allow_call(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ns();
        if now < until {
            return false;
        }
        // Half open: the caller that moves the deadline is the probe.
        let next = now + self.backoff_ns.load(Ordering::Relaxed);
        self.open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    fn on_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.backoff_ns.store(BACKOFF_MIN_NS, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Release);
        }
    }

    fn on_failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= BREAKER_THRESHOLD {
            let backoff = self.backoff_ns.load(Ordering::Relaxed);
            self.open_until
                .store(self.now_ns() + backoff, Ordering::Release);
            self.backoff_ns
                .store((backoff * 2).min(BACKOFF_MAX_NS), Ordering::Relaxed);
        }
    }
}
