//! Sessions ended before their cookies expire: a back-channel logout (by `sid` or by `sub`) or a
//! logout at the gateway. Cookie sessions are stateless, so the gateway remembers the ended ones
//! until their lifetime is over and refuses their cookies meanwhile. The list is bounded: when
//! it is full, the entries closest to their end are forgotten first (and counted), so a flood
//! of logout tokens cannot grow memory. It outlives reloads (the snapshot hands it over).

use super::session::Session;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Ended sessions, by provider session id and by subject.
#[derive(Debug)]
pub struct RevokedSessions {
    inner: Mutex<Revoked>,
    /// Entries in both maps; lets the request path skip the lock while nothing is revoked.
    len: AtomicUsize,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Revoked {
    /// `sid` → when to forget it (Unix seconds).
    sids: HashMap<String, u64>,
    /// `sub` → (revoked at, forget at): sessions of the subject created up to "revoked at" end.
    subjects: HashMap<String, (u64, u64)>,
    /// Entries forgotten early because the list was full.
    evicted: u64,
}

impl RevokedSessions {
    /// At most `capacity` sids and `capacity` subjects.
    pub fn new(capacity: usize) -> Self {
        RevokedSessions {
            inner: Mutex::new(Revoked::default()),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Revoked> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the sessions with provider session id `sid`, remembered until `forget_at`.
    pub fn revoke_sid(&self, sid: &str, now: u64, forget_at: u64) {
        let mut revoked = self.lock();
        revoked.forget_expired(now);
        if !revoked.sids.contains_key(sid) && revoked.sids.len() >= self.capacity {
            if let Some(oldest) = revoked
                .sids
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                revoked.sids.remove(&oldest);
                revoked.evicted += 1;
            }
        }
        revoked.sids.insert(sid.to_owned(), forget_at);
        self.len.store(
            revoked.sids.len() + revoked.subjects.len(),
            Ordering::Relaxed,
        );
    }

    /// Ends every session of `subject` that started at or before `now`.
    pub fn revoke_subject(&self, subject: &str, now: u64, forget_at: u64) {
        let mut revoked = self.lock();
        revoked.forget_expired(now);
        if !revoked.subjects.contains_key(subject) && revoked.subjects.len() >= self.capacity {
            if let Some(oldest) = revoked
                .subjects
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                revoked.subjects.remove(&oldest);
                revoked.evicted += 1;
            }
        }
        revoked
            .subjects
            .insert(subject.to_owned(), (now, forget_at));
        self.len.store(
            revoked.sids.len() + revoked.subjects.len(),
            Ordering::Relaxed,
        );
    }

    /// Whether `session` has been ended.
    pub fn is_revoked(&self, session: &Session) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let revoked = self.lock();
        (!session.sid.is_empty() && revoked.sids.contains_key(&session.sid))
            || revoked
                .subjects
                .get(&session.subject)
                .is_some_and(|(at, _)| session.created_at <= *at)
    }

    /// Remembered entries and early evictions, for metrics.
    pub fn stats(&self) -> (usize, u64) {
        let revoked = self.lock();
        (revoked.sids.len() + revoked.subjects.len(), revoked.evicted)
    }
}

impl Revoked {
    fn forget_expired(&mut self, now: u64) {
        self.sids.retain(|_, forget_at| *forget_at > now);
        self.subjects.retain(|_, (_, forget_at)| *forget_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, subject: &str, created_at: u64) -> Session {
        Session {
            provider: "acme".into(),
            access_token: String::new(),
            refresh_token: None,
            id_token: None,
            access_expires_at: 0,
            sid: sid.into(),
            subject: subject.into(),
            created_at,
            last_seen: created_at,
        }
    }

    #[test]
    fn a_revoked_sid_ends_only_that_session() {
        let revoked = RevokedSessions::new(10);
        assert!(!revoked.is_revoked(&session("s1", "alice", 100)));
        revoked.revoke_sid("s1", 200, 1000);
        assert!(revoked.is_revoked(&session("s1", "alice", 100)));
        assert!(!revoked.is_revoked(&session("s2", "alice", 100)));
        assert!(
            !revoked.is_revoked(&session("", "alice", 100)),
            "no sid matches nothing"
        );
    }

    #[test]
    fn a_revoked_subject_ends_older_sessions_only() {
        let revoked = RevokedSessions::new(10);
        revoked.revoke_subject("alice", 200, 1000);
        assert!(revoked.is_revoked(&session("s1", "alice", 150)));
        assert!(
            !revoked.is_revoked(&session("s2", "alice", 201)),
            "signed in again later"
        );
        assert!(!revoked.is_revoked(&session("s3", "bob", 150)));
    }

    #[test]
    fn entries_expire_and_the_list_stays_bounded() {
        let revoked = RevokedSessions::new(3);
        for i in 0..10u64 {
            revoked.revoke_sid(&format!("s{i}"), 100, 1000 + i);
        }
        assert_eq!(revoked.stats(), (3, 7));
        assert!(
            revoked.is_revoked(&session("s9", "x", 0)),
            "the newest stay"
        );
        revoked.revoke_sid("late", 2000, 3000);
        assert_eq!(revoked.stats().0, 1, "expired entries are forgotten");
    }
}
