//! Per-client rate limits and quotas: named policies, checked per request, counted in process or
//! in Redis.
//!
//! | file | role |
//! |---|---|
//! | [`key`] | the request's key (`client_id`, `subject`, `claim:`, `header:`, `client_ip`, composites; fallback to the client address) and its tier |
//! | [`gcra`] | the bucket arithmetic and the exact `burst` semantics |
//! | [`concurrency`] | `concurrency: N` policies: requests in flight per key, released on drop |
//! | [`local`] | the in-process store: sharded, exact, memory-bounded |
//! | [`redis_store`] | the shared store: one Lua round trip, bounded latency, `on_error` |
//! | [`redis_settings`] | the `redis` section: one Redis or a cluster, timeout, `on_error` |
//! | [`redis_connection`] | connections to one Redis or a Redis Cluster, made in the background |
//! | [`synced`] | `sync_interval` policies: local shares of a global bucket, synced in batches |
//! | [`decision`] | the [`Decision`] and the `RateLimit-Policy` / `RateLimit` / `Retry-After` headers |
//! | [`metrics`] | decisions, Redis errors and latency |
//!
//! Per request, for each policy of the route: [`RateLimiter::check_request`] (or [`rate_key`] +
//! [`choose_tier`] + [`RateLimiter::check`]); all must allow. The limiter is rebuilt on reload
//! with the previous one, whose state it keeps (see [`RateLimiter::new`]).
//!
//! **Where state lives.** `store: redis` policies, and any policy whose base or tier period is a
//! day or longer when a `redis` section exists, count in Redis (so a restart does not reset a
//! quota); the others count in process. A policy that needs Redis without a `redis` section
//! counts in process (a warning is logged).

pub mod concurrency;
pub mod decision;
pub mod gcra;
pub mod key;
pub mod local;
pub mod metrics;
pub mod policy;
pub mod redis_connection;
pub mod redis_settings;
pub mod redis_store;
pub mod sync_task;
pub mod synced;

pub use concurrency::{compile_concurrency_limits, ConcurrencyLimiter, ConcurrencyPolicy, Slot};
pub use decision::{rate_limit_headers, Decision, RateLimitHeaders};
pub use gcra::Limit;
pub use key::{choose_tier, rate_key, tier_rate, KeySource, TierChoice};
pub use local::{Clock, LocalStore, ManualClock, MonotonicClock, DEFAULT_MAX_KEYS};
pub use policy::{compile_rate_limits, RateKeyPart, RateLimitPolicy};
pub use redis_settings::{compile_redis, RedisSettings, RedisTarget};
pub use redis_store::RedisStore;

use crate::config::file::{RateLimitStore, RedisOnError};
use crate::policy::Identity;
use metrics::PolicyCounters;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Periods from which a quota lives in Redis whenever one is configured.
const LONG_PERIOD: Duration = Duration::from_secs(86_400);

/// Where a policy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Local,
    Redis,
}

#[derive(Debug)]
enum Backend {
    Local(Arc<LocalStore>),
    /// Keys are `prefix` + request key.
    Redis {
        prefix: String,
    },
    /// Counted locally, synced to Redis every `interval` (same keys as `Redis`).
    Synced {
        prefix: String,
        store: Arc<synced::SyncedStore>,
        interval: Duration,
    },
}

#[derive(Debug)]
struct PolicyState {
    policy: RateLimitPolicy,
    backend: Backend,
    counters: PolicyCounters,
    /// The bucket of the base rate, then of each tier (computed once).
    limits: Vec<Limit>,
}

/// The runtime limiter of one configuration snapshot.
#[derive(Debug)]
pub struct RateLimiter {
    policies: Vec<PolicyState>,
    redis: Option<Arc<RedisStore>>,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    /// Builds the limiter. With `previous` (a reload), a local policy with the same name, key and
    /// store keeps its counters (rates may change: the state is a time, see [`gcra`]), and equal
    /// Redis settings keep their connections.
    pub fn new(
        policies: &[RateLimitPolicy],
        redis: Option<RedisSettings>,
        previous: Option<&RateLimiter>,
    ) -> Self {
        let clock = previous.map_or_else(
            || Arc::new(MonotonicClock::new()) as Arc<dyn Clock>,
            |p| p.clock.clone(),
        );
        Self::with_clock(policies, redis, previous, clock, DEFAULT_MAX_KEYS)
    }

    /// [`RateLimiter::new`] with an explicit clock for local stores and a key cap per policy.
    pub fn with_clock(
        policies: &[RateLimitPolicy],
        redis: Option<RedisSettings>,
        previous: Option<&RateLimiter>,
        clock: Arc<dyn Clock>,
        max_keys_per_policy: usize,
    ) -> Self {
        let redis = redis.and_then(|settings| {
            let reused = previous
                .and_then(|p| p.redis.as_ref())
                .filter(|store| *store.settings() == settings);
            match reused {
                Some(store) => Some(store.clone()),
                None => RedisStore::new(settings)
                    .map(Arc::new)
                    .map_err(|error| tracing::error!(%error, "Redis store disabled"))
                    .ok(),
            }
        });
        let policies = policies
            .iter()
            .map(|policy| {
                let backend = match (store_kind(policy, redis.is_some()), policy.sync_interval) {
                    (StoreKind::Redis, Some(interval)) => Backend::Synced {
                        prefix: redis_store::key_prefix(&policy.name),
                        store: previous
                            .and_then(|p| p.reusable_synced(policy))
                            .unwrap_or_else(|| {
                                Arc::new(synced::SyncedStore::new(
                                    clock.clone(),
                                    max_keys_per_policy,
                                ))
                            }),
                        interval,
                    },
                    (StoreKind::Redis, None) => Backend::Redis {
                        prefix: redis_store::key_prefix(&policy.name),
                    },
                    (StoreKind::Local, _) => {
                        let kept = previous.and_then(|p| p.reusable_store(policy));
                        Backend::Local(kept.unwrap_or_else(|| {
                            Arc::new(LocalStore::new(clock.clone(), max_keys_per_policy))
                        }))
                    }
                };
                let limits = std::iter::once(Limit::new(policy.rate, policy.burst))
                    .chain(policy.tiers.iter().map(|(_, r, b)| Limit::new(*r, *b)))
                    .collect();
                PolicyState {
                    counters: PolicyCounters::new(&policy.name, policy.tiers.len()),
                    limits,
                    policy: policy.clone(),
                    backend,
                }
            })
            .collect();
        RateLimiter {
            policies,
            redis,
            clock,
        }
    }

    fn reusable_store(&self, policy: &RateLimitPolicy) -> Option<Arc<LocalStore>> {
        self.policies.iter().find_map(|state| match &state.backend {
            Backend::Local(store)
                if state.policy.name == policy.name && state.policy.key == policy.key =>
            {
                Some(store.clone())
            }
            _ => None,
        })
    }

    fn reusable_synced(&self, policy: &RateLimitPolicy) -> Option<Arc<synced::SyncedStore>> {
        self.policies.iter().find_map(|state| match &state.backend {
            Backend::Synced { store, .. }
                if state.policy.name == policy.name && state.policy.key == policy.key =>
            {
                Some(store.clone())
            }
            _ => None,
        })
    }

    /// Starts the background sync of every `sync_interval` policy on `runtime`; each stops
    /// when this limiter is dropped.
    pub fn start_sync(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        let Some(redis) = &self.redis else { return };
        for state in &self.policies {
            if let Backend::Synced {
                prefix,
                store,
                interval,
            } = &state.backend
            {
                let job = sync_task::SyncJob {
                    store: store.clone(),
                    redis: redis.clone(),
                    prefix: prefix.clone(),
                    interval: *interval,
                    counters: metrics::SyncCounters::new(&state.policy.name),
                };
                sync_task::spawn(Arc::downgrade(self), job, runtime);
            }
        }
    }

    /// The index of a policy by name (resolve it once, at config load).
    pub fn policy_index(&self, name: &str) -> Option<usize> {
        self.policies.iter().position(|s| s.policy.name == name)
    }

    /// The policy at `index`. Panics when out of range.
    pub fn policy(&self, index: usize) -> &RateLimitPolicy {
        &self.policies[index].policy
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Where policy `index` counts. Panics when out of range.
    pub fn store_kind(&self, index: usize) -> StoreKind {
        match self.policies[index].backend {
            Backend::Local(_) => StoreKind::Local,
            Backend::Redis { .. } | Backend::Synced { .. } => StoreKind::Redis,
        }
    }

    /// The local store of policy `index`, if it counts in process.
    pub fn local_store(&self, index: usize) -> Option<&Arc<LocalStore>> {
        match &self.policies.get(index)?.backend {
            Backend::Local(store) => Some(store),
            Backend::Redis { .. } | Backend::Synced { .. } => None,
        }
    }

    /// Key, tier and check for one request against policy `index` (`key_buf` is reused).
    pub async fn check_request(
        &self,
        index: usize,
        identity: Option<&Identity>,
        headers: &http::HeaderMap,
        client_ip: IpAddr,
        key_buf: &mut String,
    ) -> Decision<'_> {
        let policy = &self.policies[index].policy;
        rate_key(&policy.key, identity, headers, client_ip, key_buf);
        let tier = choose_tier(policy, identity).index;
        self.check(index, key_buf, tier).await
    }

    /// Counts one request for `key` under policy `index` at the rate of `tier` (`None`: the
    /// base rate). Local policies complete without awaiting; Redis ones within `redis.timeout`.
    /// Panics when `index` is out of range.
    pub async fn check(&self, index: usize, key: &str, tier: Option<usize>) -> Decision<'_> {
        let state = &self.policies[index];
        let choice = tier_rate(&state.policy, tier);
        let limit = state.limits[choice.index.map_or(0, |i| i + 1)];
        let mut decision = Decision {
            allowed: true,
            limit: choice.rate.count,
            window: choice.rate.period,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
            policy: &state.policy.name,
            tier: choice.index,
            send_headers: state.policy.headers,
            store_error: false,
        };
        match &state.backend {
            Backend::Local(store) => {
                let outcome = store.check(key, &limit);
                decision.allowed = outcome.allowed;
                decision.remaining = outcome.remaining;
                decision.reset_after = Duration::from_nanos(outcome.reset_after_ns);
                decision.retry_after =
                    (!outcome.allowed).then(|| Duration::from_nanos(outcome.retry_after_ns));
            }
            Backend::Synced {
                store, interval, ..
            } => {
                let deny = self
                    .redis
                    .as_ref()
                    .is_some_and(|r| r.settings().on_error == RedisOnError::Deny);
                let stale = deny.then(|| sync_task::stale_after(*interval).as_nanos() as u64);
                let outcome = store.check(key, &limit, stale);
                decision.allowed = outcome.allowed;
                decision.remaining = outcome.remaining;
                let used = limit.capacity.saturating_sub(outcome.remaining);
                decision.reset_after = Duration::from_nanos(used.saturating_mul(limit.emission_ns));
                decision.retry_after =
                    (!outcome.allowed).then(|| Duration::from_nanos(outcome.retry_after_ns));
            }
            Backend::Redis { prefix } => {
                let store = self.redis.as_ref().expect("redis backend implies a store");
                match store.check(prefix, key, &limit).await {
                    Ok(outcome) => {
                        decision.allowed = outcome.allowed;
                        decision.remaining = outcome.remaining;
                        decision.reset_after = Duration::from_micros(outcome.reset_after_us);
                        decision.retry_after = (!outcome.allowed)
                            .then(|| Duration::from_micros(outcome.retry_after_us));
                    }
                    Err(_) => {
                        decision.store_error = true;
                        if store.settings().on_error == RedisOnError::Allow {
                            decision.remaining = choice.rate.count;
                        } else {
                            decision.allowed = false;
                            decision.reset_after = Duration::from_secs(1);
                            decision.retry_after = Some(Duration::from_secs(1));
                        }
                    }
                }
            }
        }
        state.counters.record(decision.tier, decision.allowed);
        decision
    }

    /// Drops idle keys from every local store; call it from a background timer (every few
    /// seconds) so memory returns after a key flood even without new keys.
    pub fn sweep(&self) {
        for state in &self.policies {
            if let Backend::Local(store) = &state.backend {
                store.sweep();
            }
        }
    }
}

/// Where `policy` counts, given whether a Redis store exists.
pub fn store_kind(policy: &RateLimitPolicy, redis_configured: bool) -> StoreKind {
    let long = std::iter::once(policy.rate.period)
        .chain(policy.tiers.iter().map(|(_, rate, _)| rate.period))
        .any(|period| period >= LONG_PERIOD);
    let wants_redis = policy.store == RateLimitStore::Redis || long;
    match (wants_redis, redis_configured) {
        (true, true) => StoreKind::Redis,
        (true, false) => {
            tracing::warn!(
                policy = %policy.name,
                "rate limit counts in process: no usable `redis` section (a restart resets it)"
            );
            StoreKind::Local
        }
        (false, _) => StoreKind::Local,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod redis_tests;
