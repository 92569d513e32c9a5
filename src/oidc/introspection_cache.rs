//! The introspection answers of one provider, keyed by a SHA-256 of the token (the token is not
//! kept), bounded, and the flights that make concurrent requests with one token share a single
//! call to the endpoint (see [`super::introspection`]).

use crate::policy::Identity;
use aws_lc_rs::digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

pub type TokenHash = [u8; 32];
/// An answer: the caller's identity from the introspection response when active.
pub type Answer = Option<Arc<Identity>>;
pub type Flight = Arc<OnceCell<Result<Answer, IntrospectionError>>>;

/// The endpoint could not be asked or gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionError(pub String);

impl std::fmt::Display for IntrospectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token introspection failed: {}", self.0)
    }
}

/// Cached answers and flights of one provider.
#[derive(Debug, Default)]
pub struct IntrospectionCache {
    /// token hash → (answer, unix second until which it holds, insertion order)
    answers: Mutex<HashMap<TokenHash, (Answer, u64, u64)>>,
    flights: Mutex<HashMap<TokenHash, Flight>>,
    inserted: std::sync::atomic::AtomicU64,
}

pub fn hash(token: &str) -> TokenHash {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

impl IntrospectionCache {
    pub fn cached(&self, key: &TokenHash, now: u64) -> Option<Answer> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(key)
            .filter(|(_, until, _)| *until > now)
            .map(|(answer, _, _)| answer.clone())
    }

    pub fn remember(
        &self,
        key: TokenHash,
        answer: Answer,
        until: u64,
        now: u64,
        max_entries: usize,
    ) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= max_entries {
            answers.retain(|_, (_, until, _)| *until > now);
        }
        if answers.len() >= max_entries {
            let mut orders: Vec<u64> = answers.values().map(|(_, _, order)| *order).collect();
            orders.sort_unstable();
            let cut = orders[orders.len() / 2];
            answers.retain(|_, (_, _, order)| *order > cut);
        }
        let order = self
            .inserted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        answers.insert(key, (answer, until, order));
    }

    /// Number of cached answers.
    pub fn len(&self) -> usize {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flight of `key`: the first caller runs the call, the others wait for its answer.
    pub fn flight(&self, key: TokenHash) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.entry(key).or_default().clone()
    }

    /// Forgets the flight of `key` once it has landed.
    pub fn land(&self, key: &TokenHash) {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_the_cache_stays_bounded() {
        let cache = IntrospectionCache::default();
        let active = Some(Arc::new(Identity::from_claims(
            serde_json::json!({"sub": "u"}),
        )));
        cache.remember(hash("a"), active, 100, 10, 4);
        assert!(cache.cached(&hash("a"), 50).is_some_and(|a| a.is_some()));
        assert!(cache.cached(&hash("a"), 100).is_none(), "expired");
        for i in 0..20 {
            cache.remember(hash(&format!("t{i}")), None, 1000, 10, 4);
        }
        assert!(cache.len() <= 4, "{}", cache.len());
        let newest = cache.cached(&hash("t19"), 20);
        assert!(
            newest.is_some_and(|a| a.is_none()),
            "the newest answer is kept"
        );
    }
}
