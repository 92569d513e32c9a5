//! Pre-aggregated global limits (`sync_interval: D` on a `store: redis` policy): each instance
//! admits against its local view of the global bucket and reconciles with Redis every `D` in
//! one batched call carrying the admissions of every key that changed. No request waits on Redis.
//!
//! **Algorithm (GCRA with local shares).** Redis keeps the global TAT of each key, exactly as in
//! the one-round-trip mode (the two modes share keys and can be switched by a reload). At each
//! sync an instance adds its pending admissions `n` to the global TAT unconditionally
//! (`tat = max(tat, now) + n·T`) and reads back the backlog `B = tat − now`, hence the budget
//! left `A = capacity − B/T` (negative when the fleet is in debt). With `N` live instances (each
//! sync refreshes a heartbeat; `N` counts those seen within `max(1 s, 5·D)`), an instance may then
//! admit, until its next sync, its share of that budget — less what the others admitted and have
//! not synced yet, estimated as `(N−1)·m` with `m` the larger of what this instance sent in this
//! sync and in the one before (a sync right after a refusal sends nothing, though the others are
//! as busy as before) — plus its share of the refill. The instance keeps that as a local credit:
//!
//! ```text
//! at an answer:   credit = (A − (N−1)·m)/N − (admitted while the sync was in flight)
//! at a request:   credit = min(credit + elapsed/(T·N), max(credit, capacity/N, 1))
//!                 admit (credit −= 1) while credit >= 1
//! ```
//!
//! The cap keeps a view that aged without answers (a key idle here for an hour) from growing past
//! a share of a full bucket.
//!
//! A key new to an instance starts from `capacity/N` (a cold fleet shares one full bucket). One
//! busy instance among idle ones still reaches the full rate within a few intervals (its share of
//! the refill plus the budget the idle ones leave), but its first burst is `capacity/N`.
//!
//! **Settling.** An answer is a view taken before the others' next syncs. So that an instance
//! does not keep a view that predates the others' last admissions once its own traffic for a key
//! stops, a key this instance has refused (the limit binds: the fleet contends for it) is synced
//! with nothing to add at the [`SETTLE_SYNCS`] intervals after its last local request; then it
//! leaves the batches until it is used again. Keys never refused here are not settled, so a key
//! used once costs one script, not three (per-client keys of many light clients).
//!
//! **Bound on over-admission.** Every admission reaches the global TAT within one interval, and
//! a global debt is paid back by smaller allowances, so over any period the fleet admits at most
//! what an exact limiter admits (`rate·time + capacity`) plus the admissions not yet synced: at
//! most `N` instances × one interval's allowance, i.e. about `rate·D + capacity/N` when the limit
//! binds. The transient error (instances syncing at different instants, `N` changing) is at most
//! `(N−1)/N · rate · D` per interval and is repaid within the next intervals. Example: 3 instances,
//! 3000/s, `D` = 20 ms: ≤ 60 requests beyond an exact limiter at any time, 0.2 % of 10 s.
//!
//! **Redis unavailable.** Pending admissions stay pending (sent with the next successful sync);
//! credits keep growing at `rate/N` (up to the cap), so each instance limits itself to its
//! share. With `on_error: deny`, once no sync has succeeded for `max(1 s, 50·D)`, every request
//! is refused instead (a key idle for longer while Redis is healthy is not: staleness is the
//! store's, not the key's).
//!
//! **Memory and work.** A key with nothing to sync whose credit is back to `capacity/N` is what
//! a fresh share would be, so forgetting it changes no decision: a shard forgets such keys when
//! it has doubled since its last sweep (amortized O(1) per new key) and each sync sweeps one
//! shard in turn, so memory follows the keys used lately. A shard never holds more than
//! `max_keys/64` keys: at the bound it forgets keys with nothing to sync (their next request
//! starts from a fresh share) down to three quarters. A sync visits only the queued keys (those
//! with admissions, a refusal or settling syncs), not every key held.

use super::gcra::Limit;
use super::local::Clock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

const SHARDS: usize = 64;

/// A shard is not swept before it holds this many keys.
const MIN_SWEEP_LEN: usize = 64;

/// Syncs of a refused key after its last local request, to learn what the others admitted.
pub const SETTLE_SYNCS: u8 = 2;

/// One key's local view.
#[derive(Debug, Clone, Copy)]
struct Share {
    /// Admitted here and not yet taken by a sync.
    pending: u64,
    /// Taken by the sync in flight, not yet answered.
    in_flight: u64,
    /// Requests this instance may still admit (may be negative: the fleet's debt).
    credit: f64,
    /// Local clock (ns) up to which the refill is counted in `credit`.
    credit_at: u64,
    /// Refused since the last sync: the key wants a fresh budget even without admissions.
    wanted: bool,
    /// Admissions carried by the last answered sync (the others' activity is estimated from it).
    last_sent: u64,
    /// Syncs owed to a refused key once its local traffic stops (see "Settling").
    settle: u8,
    /// In its shard's queue for the next sync.
    queued: bool,
    /// The bucket of the last request (its tier's rate).
    limit: Limit,
}

impl Share {
    fn fresh(limit: &Limit, instances: f64, now: u64) -> Share {
        Share {
            pending: 0,
            in_flight: 0,
            credit: limit.capacity as f64 / instances,
            credit_at: now,
            wanted: false,
            last_sent: 0,
            settle: 0,
            queued: false,
            limit: *limit,
        }
    }

    /// Its credit refilled up to `now`, never past a share of a full bucket.
    fn refill(&mut self, now: u64, instances: f64) {
        let emission = self.limit.emission_ns as f64;
        let refill = now.saturating_sub(self.credit_at) as f64 / (emission * instances);
        let full_share = (self.limit.capacity as f64 / instances).max(1.0);
        self.credit = (self.credit + refill).min(self.credit.max(full_share));
        self.credit_at = now;
    }

    /// Nothing to sync and a credit back to a fresh share's: forgetting it changes no decision.
    fn is_like_fresh(&mut self, now: u64, instances: f64) -> bool {
        if self.queued || self.pending > 0 || self.in_flight > 0 {
            return false;
        }
        self.refill(now, instances);
        self.credit >= self.limit.capacity as f64 / instances
    }

    /// Decides one request for `key` (this share's key) against the credit.
    fn decide(
        &mut self,
        key: &str,
        queue: &mut Vec<String>,
        limit: &Limit,
        now: u64,
        instances: f64,
        stale: bool,
    ) -> SyncedOutcome {
        self.limit = *limit;
        self.refill(now, instances);
        self.enqueue(key, queue);
        if !stale && self.credit >= 1.0 {
            self.credit -= 1.0;
            self.pending += 1;
            return SyncedOutcome {
                allowed: true,
                remaining: self.credit.max(0.0) as u64,
                retry_after_ns: 0,
            };
        }
        self.wanted = true;
        self.settle = SETTLE_SYNCS;
        let missing = (1.0 - self.credit).max(0.0);
        SyncedOutcome {
            allowed: false,
            remaining: 0,
            retry_after_ns: (missing * limit.emission_ns as f64 * instances)
                .ceil()
                .max(1.0) as u64,
        }
    }

    /// Puts the key in its shard's queue for the next sync, once.
    fn enqueue(&mut self, key: &str, queue: &mut Vec<String>) {
        if !self.queued {
            self.queued = true;
            queue.push(key.to_owned());
        }
    }
}

/// One shard's keys, and those of them the next sync carries.
#[derive(Default)]
struct Shard {
    shares: HashMap<String, Share>,
    /// Keys with admissions, a refusal or settling syncs to send (each once: `Share::queued`),
    /// so a sync visits only them, not every key held.
    queue: Vec<String>,
    /// Size at which inserting a key first sweeps the shard (twice its size after a sweep).
    sweep_at: usize,
}

/// The local decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncedOutcome {
    pub allowed: bool,
    /// Requests this instance may still admit now.
    pub remaining: u64,
    /// Until one more request fits the local allowance (0 when allowed).
    pub retry_after_ns: u64,
}

/// One key's admissions, taken for a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub key: String,
    pub admitted: u64,
    /// The key's bucket (the rate of its tier).
    pub limit: Limit,
}

/// The per-key shares of one synced policy.
pub struct SyncedStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    max_per_shard: usize,
    /// Live instances (at least 1), from the last sync.
    instances: AtomicU64,
    /// Local clock (ns) of the last successful sync (of the store's creation before the first).
    last_success_ns: AtomicU64,
    /// The shard the next sync sweeps (one per sync, in turn).
    sweep_cursor: AtomicUsize,
}

impl std::fmt::Debug for SyncedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedStore")
            .field("instances", &self.instances())
            .finish()
    }
}

impl SyncedStore {
    pub fn new(clock: Arc<dyn Clock>, max_keys: usize) -> SyncedStore {
        SyncedStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            max_per_shard: max_keys.div_ceil(SHARDS).max(1),
            instances: AtomicU64::new(1),
            last_success_ns: AtomicU64::new(clock.now_ns()),
            sweep_cursor: AtomicUsize::new(0),
            clock,
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) >> 32) as usize % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed).max(1)
    }

    /// Records that a sync succeeded (Redis answered, even with no key to sync).
    pub fn record_success(&self) {
        self.last_success_ns
            .store(self.clock.now_ns(), Ordering::Relaxed);
    }

    /// Records how many instances share the limits (from the heartbeat of a sync).
    pub fn set_instances(&self, instances: u64) {
        self.instances.store(instances.max(1), Ordering::Relaxed);
    }

    /// Decides one request for `key` locally; `stale_after_ns` (with `on_error: deny`) refuses
    /// every key once no sync has succeeded for that long.
    pub fn check(&self, key: &str, limit: &Limit, stale_after_ns: Option<u64>) -> SyncedOutcome {
        let now = self.clock.now_ns();
        let instances = self.instances() as f64;
        let last_success = self.last_success_ns.load(Ordering::Relaxed);
        let stale = stale_after_ns.is_some_and(|limit| now.saturating_sub(last_success) > limit);
        let mut guard = self.shard(key);
        let Shard { shares, queue, .. } = &mut *guard;
        if let Some(share) = shares.get_mut(key) {
            return share.decide(key, queue, limit, now, instances, stale);
        }
        if guard.shares.len() >= guard.sweep_at {
            self.sweep(&mut guard, now);
        }
        let Shard { shares, queue, .. } = &mut *guard;
        let share = shares
            .entry(key.to_owned())
            .or_insert(Share::fresh(limit, instances, now));
        share.decide(key, queue, limit, now, instances, stale)
    }

    /// Takes the admissions of every queued key (and, with 0, of refused keys and keys still
    /// settling) for a sync; sweeps one shard.
    pub fn take(&self) -> Vec<Delta> {
        let now = self.clock.now_ns();
        let sweep = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let mut deltas = Vec::new();
        for (index, shard) in self.shards.iter().enumerate() {
            let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let Shard { shares, queue, .. } = &mut *guard;
            for key in std::mem::take(queue) {
                let Some(share) = shares.get_mut(&key) else {
                    continue;
                };
                if share.pending == 0 && !share.wanted {
                    share.settle = share.settle.saturating_sub(1);
                }
                if share.settle > 0 {
                    queue.push(key.clone()); // settling: in the next sync too
                } else {
                    share.queued = false;
                }
                deltas.push(Delta {
                    key,
                    admitted: share.pending,
                    limit: share.limit,
                });
                share.in_flight += share.pending;
                share.pending = 0;
                share.wanted = false;
            }
            if index == sweep {
                self.sweep(&mut guard, now);
            }
        }
        deltas
    }

    /// Applies Redis' answer for `key`: the budget `available` (requests, after every delta
    /// synced so far, ours included).
    pub fn answer(&self, key: &str, available: f64) {
        let now = self.clock.now_ns();
        let instances = self.instances() as f64;
        let mut shard = self.shard(key);
        if let Some(share) = shard.shares.get_mut(key) {
            // The others' admissions since their own last sync are not in the answer yet;
            // assume each admitted as many as this instance sent in this sync or the last one.
            let sent = share.in_flight;
            let others_unsynced = (instances - 1.0) * sent.max(share.last_sent) as f64;
            share.last_sent = sent;
            share.in_flight = 0;
            // Admitted while the sync was in flight: not in Redis' answer yet.
            share.credit = (available - others_unsynced) / instances - share.pending as f64;
            share.credit_at = now;
        }
    }

    /// A sync failed: its admissions go back to pending, to be sent with the next one.
    pub fn failed(&self, deltas: &[Delta]) {
        for delta in deltas {
            let mut shard = self.shard(&delta.key);
            let Shard { shares, queue, .. } = &mut *shard;
            if let Some(share) = shares.get_mut(&delta.key) {
                share.pending += delta.admitted;
                share.in_flight = share.in_flight.saturating_sub(delta.admitted);
                share.enqueue(&delta.key, queue);
            }
        }
    }

    /// Forgets the keys a fresh share would replace with no change; if the shard is still at
    /// its bound, forgets keys with nothing to sync (their next request starts from a fresh
    /// share) down to three quarters of it.
    fn sweep(&self, shard: &mut Shard, now: u64) {
        let instances = self.instances() as f64;
        shard
            .shares
            .retain(|_, share| !share.is_like_fresh(now, instances));
        let keep = self.max_per_shard - self.max_per_shard / 4;
        let mut excess = shard.shares.len().saturating_sub(keep);
        if shard.shares.len() >= self.max_per_shard {
            shard.shares.retain(|_, share| {
                let idle = !share.queued && share.in_flight == 0;
                let forget = idle && excess > 0;
                excess -= usize::from(forget);
                !forget
            });
        }
        let len = shard.shares.len();
        if shard.shares.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            shard.shares.shrink_to(2 * len);
        }
        shard.sweep_at = (2 * len).max(MIN_SWEEP_LEN).min(self.max_per_shard);
    }

    /// Keys held (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .shares
                    .len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
