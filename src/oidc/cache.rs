//! The verified-token cache of one provider, and its short negative cache.
//!
//! Entries are keyed by a 64-bit hash of the whole token and hold the token itself for a full
//! comparison on hit. An entry is valid until the earlier of its `exp` and the cache TTL, and is
//! flushed when its key leaves the JWKS. Memory: each entry holds the token (about 1 KB for a
//! Keycloak access token), its claims text with their index (about 1.5 KB) and the membership
//! index, plus 2-3 KB more once a claim-path rule or JSON transform has parsed the whole claims
//! set, so 10,000 entries cost roughly 30-60 MB; size `token_cache.max_entries` accordingly. Bad-signature tokens are remembered for
//! 30 s so that replaying one cannot burn CPU on signature checks.

use crate::policy::Identity;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;
const NEGATIVE_TTL_SECONDS: u64 = 30;
const NEGATIVE_CAPACITY_PER_SHARD: usize = 1024;

/// A verified token.
#[derive(Clone)]
pub struct CachedToken {
    pub token: Arc<str>,
    pub identity: Arc<Identity>,
    pub kid: Option<String>,
    /// Unix time after which the entry is no longer used.
    pub valid_until: u64,
}

#[derive(Default)]
struct Shard {
    verified: HashMap<u64, CachedToken>,
    rejected: HashMap<u64, u64>,
    /// When a full shard last dropped its expired entries: at most once a second, so that an
    /// insert into a full shard is O(1) however many live entries it holds.
    last_sweep: u64,
}

/// A bounded, sharded token cache.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
    ttl_seconds: u64,
    seed: u64,
}

impl TokenCache {
    pub fn new(max_entries: usize, ttl_seconds: u64) -> TokenCache {
        let mut seed = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            capacity_per_shard: max_entries.div_ceil(SHARDS),
            ttl_seconds,
            seed: u64::from_le_bytes(seed),
        }
    }

    /// A fast keyed hash of the token (collisions only cost a miss: hits compare the token).
    /// Two lanes of 8 bytes each per step, independent of each other, so a token of 800 bytes
    /// takes 50 dependent multiplies rather than 100.
    pub fn hash(&self, token: &str) -> u64 {
        const MULTIPLIER: u64 = 0x5bd1_e995_5bd1_e995;
        let mix = |lane: u64, word: &[u8]| {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            (lane ^ word).wrapping_mul(MULTIPLIER).rotate_left(29)
        };
        let bytes = token.as_bytes();
        let mut left = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut right = self.seed.rotate_left(32) ^ 0xc2b2_ae3d_27d4_eb4f;
        let mut pairs = bytes.chunks_exact(16);
        for pair in &mut pairs {
            let (first, second) = pair.split_at(8);
            left = mix(left, first);
            right = mix(right, second);
        }
        let mut hash = left ^ right.rotate_left(31);
        let mut words = pairs.remainder().chunks_exact(8);
        for word in &mut words {
            hash = mix(hash, word);
        }
        for byte in words.remainder() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= bytes.len() as u64;
        // The final avalanche of MurmurHash3, so shard and bucket bits depend on every lane.
        hash = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^ (hash >> 33)
    }

    /// Whether the cache keeps verified tokens at all (`token_cache.max_entries` > 0).
    pub fn is_enabled(&self) -> bool {
        self.capacity_per_shard > 0
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        let shard = &self.shards[(hash as usize) % SHARDS];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached identity of `token`, if it was verified and is still valid at `now`.
    pub fn get(&self, hash: u64, token: &str, now: u64) -> Option<Arc<Identity>> {
        if self.capacity_per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(hash);
        match shard.verified.get(&hash) {
            Some(entry) if &*entry.token == token && entry.valid_until > now => {
                Some(entry.identity.clone())
            }
            Some(entry) if &*entry.token == token => {
                shard.verified.remove(&hash);
                None
            }
            _ => None,
        }
    }

    /// Remembers a verified token until `min(exp, now + ttl)`.
    pub fn insert(
        &self,
        hash: u64,
        token: &str,
        identity: Arc<Identity>,
        kid: Option<String>,
        exp: u64,
        now: u64,
    ) {
        if self.capacity_per_shard == 0 {
            return;
        }
        let valid_until = exp.min(now + self.ttl_seconds);
        let mut shard = self.shard(hash);
        if shard.verified.len() >= self.capacity_per_shard {
            if shard.last_sweep < now {
                shard.last_sweep = now;
                shard.verified.retain(|_, entry| entry.valid_until > now);
            }
            if shard.verified.len() >= self.capacity_per_shard {
                // Still full of live entries: drop an arbitrary one.
                if let Some(victim) = shard.verified.keys().next().copied() {
                    shard.verified.remove(&victim);
                }
            }
        }
        shard.verified.insert(
            hash,
            CachedToken {
                token: Arc::from(token),
                identity,
                kid,
                valid_until,
            },
        );
    }

    /// Whether this token recently failed its signature check.
    pub fn recently_rejected(&self, hash: u64, now: u64) -> bool {
        self.shard(hash)
            .rejected
            .get(&hash)
            .is_some_and(|until| *until > now)
    }

    pub fn remember_rejected(&self, hash: u64, now: u64) {
        let mut shard = self.shard(hash);
        if shard.rejected.len() >= NEGATIVE_CAPACITY_PER_SHARD {
            shard.rejected.retain(|_, until| *until > now);
            if shard.rejected.len() >= NEGATIVE_CAPACITY_PER_SHARD {
                shard.rejected.clear();
            }
        }
        shard.rejected.insert(hash, now + NEGATIVE_TTL_SECONDS);
    }

    /// Drops every entry verified with a key that is no longer published.
    pub fn retain_kids(&self, still_published: impl Fn(Option<&str>) -> bool) {
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shard
                .verified
                .retain(|_, entry| still_published(entry.kid.as_deref()));
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.verified.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_every_byte_and_the_seed() {
        let cache = TokenCache::new(16, 300);
        // 45 bytes: two 16-byte pairs, one 8-byte word and 5 single bytes.
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0";
        let hash = cache.hash(token);
        assert_eq!(hash, cache.hash(token));
        for position in 0..token.len() {
            let mut changed = token.as_bytes().to_vec();
            changed[position] ^= 0x01;
            let changed = String::from_utf8(changed).unwrap();
            assert_ne!(hash, cache.hash(&changed), "byte {position}");
        }
        assert_ne!(hash, cache.hash(&token[..44]), "length");
        assert_ne!(hash, TokenCache::new(16, 300).hash(token), "another seed");
    }

    #[test]
    fn a_full_cache_stays_at_capacity_and_drops_expired_entries_first() {
        let cache = TokenCache::new(16, 300);
        let identity = Arc::new(Identity::from_claims(serde_json::json!({"sub": "a"})));
        for i in 0..1000 {
            let token = format!("token-{i}");
            cache.insert(
                cache.hash(&token),
                &token,
                identity.clone(),
                None,
                2_000,
                1_000,
            );
        }
        assert!(cache.len() <= 16, "{} entries", cache.len());
        let last = "token-999";
        assert!(cache.get(cache.hash(last), last, 1_001).is_some());
        // A second later, an insert into a full shard drops the expired entries first.
        let short = "short-lived";
        let hash = cache.hash(short);
        cache.insert(hash, short, identity.clone(), None, 1_002, 1_001);
        cache.insert(cache.hash("late"), "late", identity, None, 9_000, 2_500);
        assert!(cache.get(hash, short, 2_500).is_none());
    }

    #[test]
    fn hit_needs_the_same_token_and_time() {
        let cache = TokenCache::new(100, 300);
        let claims = Arc::new(Identity::from_claims(serde_json::json!({"sub": "a"})));
        let hash = cache.hash("token-a");
        cache.insert(
            hash,
            "token-a",
            claims.clone(),
            Some("k1".into()),
            1_000,
            900,
        );
        assert!(cache.get(hash, "token-a", 950).is_some());
        assert!(
            cache.get(hash, "token-b", 950).is_none(),
            "full comparison on hit"
        );
        assert!(
            cache.get(hash, "token-a", 1_000).is_none(),
            "expired at exp"
        );
    }

    #[test]
    fn ttl_caps_validity_and_removed_keys_flush() {
        let cache = TokenCache::new(100, 10);
        let hash = cache.hash("t");
        cache.insert(
            hash,
            "t",
            Arc::new(Identity::default()),
            Some("old".into()),
            10_000,
            100,
        );
        assert!(cache.get(hash, "t", 109).is_some());
        assert!(cache.get(hash, "t", 111).is_none());
        cache.insert(
            hash,
            "t",
            Arc::new(Identity::default()),
            Some("old".into()),
            10_000,
            200,
        );
        cache.retain_kids(|kid| kid == Some("new"));
        assert!(cache.get(hash, "t", 201).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(32, 300);
        for i in 0..1000 {
            let token = format!("token-{i}");
            cache.insert(
                cache.hash(&token),
                &token,
                Arc::new(Identity::default()),
                None,
                10_000,
                1,
            );
        }
        assert!(cache.len() <= 32);
    }

    #[test]
    fn negative_cache_expires() {
        let cache = TokenCache::new(10, 300);
        let hash = cache.hash("bad");
        cache.remember_rejected(hash, 100);
        assert!(cache.recently_rejected(hash, 120));
        assert!(!cache.recently_rejected(hash, 131));
    }
}
