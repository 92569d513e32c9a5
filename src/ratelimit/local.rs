//! The in-process store: exact per-key GCRA state on 64 mutex-guarded shards.
//!
//! **Layout.** A key string is hashed once with a per-process keyed SipHash ([`RandomState`], so
//! callers cannot craft collisions); bits 32..38 of the hash pick the shard and the whole 64-bit
//! hash is the map key, so no key string is stored or cloned. Each entry is 16 bytes (hash +
//! TAT) plus hashbrown's control byte. Two distinct keys share state only if their 64-bit keyed
//! hashes collide: with a million live keys the chance that any pair does is about 3 in 10^8.
//!
//! **Memory bound.** A key whose TAT is in the past has a full bucket, which is exactly what an
//! unknown key has, so it can be dropped without changing any decision (idle eviction). Each
//! shard sweeps such keys when it has doubled in size since its last sweep (amortized O(1) per
//! new key), and [`LocalStore::sweep`] lets a background timer do it too. A shard never holds
//! more than `max_keys / 64` entries: when full, after dropping idle keys, it forgets the quarter
//! of its keys whose buckets are closest to full (the least state lost). The default cap is
//! [`DEFAULT_MAX_KEYS`] (~36 MB of tables per policy at the cap).
//!
//! **Time** comes from a [`Clock`], so tests drive it by hand.

use super::gcra::{self, Limit, Outcome};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Number of shards (a power of two).
const SHARDS: usize = 64;
/// Keys a local store holds at most (per policy), unless told otherwise.
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;
/// A shard does not sweep before it holds this many keys.
const MIN_SWEEP_LEN: usize = 256;

/// Monotonic nanoseconds for the limiter.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Nanoseconds since an arbitrary, fixed origin; never decreases.
    fn now_ns(&self) -> u64;
}

/// The real clock: [`Instant`] since the store was made.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(AtomicU64::new(0))
    }
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The map key is already a keyed hash: pass it through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type StateMap = HashMap<u64, u64, BuildHasherDefault<PassThrough>>;

struct Shard {
    /// key hash → TAT in clock nanoseconds.
    map: StateMap,
    /// Sweep idle keys once the map reaches this length.
    sweep_at: usize,
}

/// One shard per cache line pair, so that neighbouring locks do not false-share.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// Per-key GCRA state for one policy.
pub struct LocalStore {
    shards: Box<[PaddedShard]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    /// Hard cap on entries in one shard.
    max_per_shard: usize,
    /// Keys forgotten while still holding state (cap reached), for tests and diagnostics.
    forced_evictions: AtomicU64,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("keys", &self.len())
            .field("max_keys", &(self.max_per_shard * SHARDS))
            .finish()
    }
}

impl LocalStore {
    /// A store holding at most `max_keys` keys (rounded up to a multiple of 64).
    pub fn new(clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        let max_per_shard = max_keys.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                PaddedShard(Mutex::new(Shard {
                    map: StateMap::default(),
                    sweep_at: MIN_SWEEP_LEN.min(max_per_shard),
                }))
            })
            .collect();
        LocalStore {
            shards,
            hasher: RandomState::new(),
            clock,
            max_per_shard,
            forced_evictions: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key` now. Allocation-free except when a shard's table grows.
    #[inline]
    pub fn check(&self, key: &str, limit: &Limit) -> Outcome {
        let hash = self.hasher.hash_one(key);
        let now = self.clock.now_ns();
        let shard = &self.shards[(hash >> 32) as usize & (SHARDS - 1)];
        let mut shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = shard.map.get_mut(&hash) {
            let (outcome, new_tat) = gcra::check(*tat, now, limit);
            *tat = new_tat;
            return outcome;
        }
        let (outcome, new_tat) = gcra::check(0, now, limit);
        if new_tat > now {
            if shard.map.len() >= shard.sweep_at {
                self.sweep_shard(&mut shard, now);
            }
            shard.map.insert(hash, new_tat);
        }
        outcome
    }

    /// Drops every idle key (bucket full again). For a background timer; checks do it too.
    pub fn sweep(&self) {
        let now = self.clock.now_ns();
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            self.sweep_shard(&mut shard, now);
        }
    }

    fn sweep_shard(&self, shard: &mut Shard, now: u64) {
        shard.map.retain(|_, tat| *tat > now);
        let keep = self.max_per_shard - self.max_per_shard / 4;
        if shard.map.len() >= self.max_per_shard {
            // Forget the keys closest to full: the fewest requests wrongly admitted later.
            let mut tats: Vec<u64> = shard.map.values().copied().collect();
            let cut = tats.len() - keep;
            let (_, threshold, _) = tats.select_nth_unstable(cut);
            let threshold = *threshold;
            let before = shard.map.len();
            shard.map.retain(|_, tat| *tat > threshold);
            self.forced_evictions
                .fetch_add((before - shard.map.len()) as u64, Ordering::Relaxed);
        }
        let len = shard.map.len();
        if shard.map.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            shard.map.shrink_to(2 * len);
        }
        shard.sweep_at = (2 * len).clamp(MIN_SWEEP_LEN, self.max_per_shard);
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the shards' tables (entries + control bytes), excluding the allocator's
    /// own overhead.
    pub fn table_bytes(&self) -> usize {
        let per_bucket = std::mem::size_of::<(u64, u64)>() + 1;
        self.shards
            .iter()
            .map(|s| {
                let shard = s.0.lock().unwrap_or_else(PoisonError::into_inner);
                // hashbrown keeps buckets = capacity * 8 / 7 rounded up to a power of two.
                let cap = shard.map.capacity();
                let buckets = if cap == 0 {
                    0
                } else {
                    (cap * 8 / 7).next_power_of_two()
                };
                buckets * per_bucket
            })
            .sum()
    }

    /// Keys forgotten while still holding state, because a shard hit its cap.
    pub fn forced_evictions(&self) -> u64 {
        self.forced_evictions.load(Ordering::Relaxed)
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
