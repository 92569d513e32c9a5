//! The local shares of synced limits, on a manual clock, with Redis simulated as one TAT.

use super::*;
use crate::config::units::RateSpec;
use crate::ratelimit::ManualClock;
use std::time::Duration;

fn limit(count: u64) -> Limit {
    Limit::new(
        RateSpec {
            count,
            period: Duration::from_secs(1),
        },
        0,
    )
}

/// A fleet of `n` stores sharing simulated global TATs, one per key.
struct Fleet {
    clock: Arc<ManualClock>,
    stores: Vec<SyncedStore>,
    tats_ns: std::collections::HashMap<String, u64>,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let clock = Arc::new(ManualClock::new());
        let stores = (0..n)
            .map(|_| {
                let store = SyncedStore::new(clock.clone(), 100_000);
                store.set_instances(n as u64);
                store
            })
            .collect();
        Fleet {
            clock,
            stores,
            tats_ns: Default::default(),
        }
    }

    /// One sync of store `i`: its deltas added to the TAT, the budget answered.
    fn sync(&mut self, i: usize, limit: &Limit) {
        let now = self.clock.now_ns();
        for delta in self.stores[i].take() {
            let tat = self.tats_ns.entry(delta.key.clone()).or_default();
            *tat = (*tat).max(now) + delta.admitted * limit.emission_ns;
            let backlog = tat.saturating_sub(now) as f64;
            let available = limit.capacity as f64 - backlog / limit.emission_ns as f64;
            self.stores[i].answer(&delta.key, available);
        }
    }
}

#[test]
fn a_cold_fleet_shares_one_full_bucket() {
    let limit = limit(300);
    let fleet = Fleet::new(3);
    let admitted: usize = fleet
        .stores
        .iter()
        .map(|s| {
            (0..1000)
                .filter(|_| s.check("k", &limit, None).allowed)
                .count()
        })
        .sum();
    assert_eq!(
        admitted, 300,
        "the shares add up to the capacity, not 3 x 300"
    );
}

#[test]
fn under_overload_the_fleet_admits_the_global_rate_within_one_interval() {
    let limit = limit(3000);
    let mut fleet = Fleet::new(3);
    let step = Duration::from_millis(1);
    let interval = 20;
    let mut admitted = 0u64;
    // 10 s, every instance offered 10 requests a millisecond (30000/s against 3000/s), the
    // instances syncing every 20 ms at different phases.
    for ms in 0..10_000u64 {
        fleet.clock.advance(step);
        for (i, store) in fleet.stores.iter().enumerate() {
            admitted += (0..10)
                .filter(|_| store.check("k", &limit, None).allowed)
                .count() as u64;
            let _ = i;
        }
        for i in 0..3 {
            if ms % interval == (i as u64 * 7) % interval {
                fleet.sync(i, &limit);
            }
        }
    }
    let exact = 3000 * 10 + limit.capacity;
    let over = admitted as f64 / exact as f64 - 1.0;
    assert!(
        over <= 0.01,
        "admitted {admitted}, exact {exact}: over-admission {over:.4}"
    );
    assert!(
        over >= -0.05,
        "admitted {admitted}, exact {exact}: under-admission {over:.4}"
    );
}

#[test]
fn one_busy_instance_of_three_gets_the_whole_rate() {
    let limit = limit(1000);
    let mut fleet = Fleet::new(3);
    let mut admitted = 0u64;
    for ms in 0..5_000u64 {
        fleet.clock.advance(Duration::from_millis(1));
        admitted += (0..5)
            .filter(|_| fleet.stores[0].check("k", &limit, None).allowed)
            .count() as u64;
        if ms % 20 == 0 {
            fleet.sync(0, &limit);
        }
    }
    let exact = 1000 * 5 + limit.capacity;
    assert!(
        admitted as f64 >= 0.9 * exact as f64,
        "{admitted} of {exact}"
    );
    assert!(admitted <= exact + 20, "{admitted} of {exact}");
}

#[test]
fn a_failed_sync_keeps_its_admissions_and_stale_keys_can_be_refused() {
    let limit = limit(100);
    let clock = Arc::new(ManualClock::new());
    let store = SyncedStore::new(clock.clone(), 1000);
    assert!(store.check("k", &limit, None).allowed);
    assert!(store.check("k", &limit, None).allowed);
    let taken = store.take();
    assert_eq!(
        taken,
        vec![Delta {
            key: "k".into(),
            admitted: 2,
            limit
        }]
    );
    store.failed(&taken);
    assert_eq!(store.take()[0].admitted, 2, "sent again with the next sync");
    clock.advance(Duration::from_secs(2));
    assert!(
        !store.check("k", &limit, Some(1_000_000_000)).allowed,
        "stale: refused"
    );
    assert!(
        store.check("k", &limit, None).allowed,
        "on_error allow: the local share goes on"
    );
}

#[test]
fn memory_is_bounded_by_max_keys() {
    let limit = limit(10);
    let store = SyncedStore::new(Arc::new(ManualClock::new()), 640);
    for i in 0..10_000 {
        store.check(&format!("key-{i}"), &limit, None);
        if i % 100 == 0 {
            for delta in store.take() {
                store.answer(&delta.key, 10.0);
            }
        }
    }
    // Keys admitted since the last sync cannot be forgotten: at most 100 of them here.
    assert!(store.len() <= 640 + 100, "{}", store.len());
}

/// Admits up to `offered` requests for "k" on store `i`; returns how many were admitted.
fn offer(fleet: &Fleet, i: usize, limit: &Limit, offered: usize) -> usize {
    (0..offered)
        .filter(|_| fleet.stores[i].check("k", limit, None).allowed)
        .count()
}

#[test]
fn a_sync_sent_right_after_a_refusal_leaves_the_others_unsynced_share_alone() {
    let limit = limit(60);
    let mut fleet = Fleet::new(3);
    assert_eq!(offer(&fleet, 0, &limit, 50), 20, "the cold share");
    fleet.sync(0, &limit);
    // Refused since: the next sync carries no admissions, while the other two still hold the
    // cold shares they admitted and have not synced.
    assert_eq!(offer(&fleet, 0, &limit, 5), 0);
    fleet.sync(0, &limit);
    assert_eq!(offer(&fleet, 1, &limit, 50), 20);
    assert_eq!(offer(&fleet, 2, &limit, 50), 20);
    assert_eq!(
        offer(&fleet, 0, &limit, 50),
        0,
        "the budget left is what the others took"
    );
}

#[test]
fn once_its_traffic_stops_an_instance_learns_what_the_others_synced_after_it() {
    let limit = limit(60);
    let mut fleet = Fleet::new(3);
    assert_eq!(offer(&fleet, 0, &limit, 50), 20);
    fleet.sync(0, &limit);
    for _ in 0..2 {
        assert_eq!(offer(&fleet, 0, &limit, 5), 0);
        fleet.sync(0, &limit);
    }
    // Instance 0's last view counts none of the others' admissions: they come in now.
    assert_eq!(offer(&fleet, 1, &limit, 50), 20);
    assert_eq!(offer(&fleet, 2, &limit, 50), 20);
    fleet.sync(1, &limit);
    fleet.sync(2, &limit);
    for _ in 0..SETTLE_SYNCS {
        fleet.sync(0, &limit);
    }
    assert!(
        fleet.stores[0].take().is_empty(),
        "settled: the key leaves the batches"
    );
    assert_eq!(offer(&fleet, 0, &limit, 50), 0, "the bucket is empty");
}

#[test]
fn a_view_that_aged_without_syncs_admits_at_most_a_share_of_a_full_bucket() {
    let limit = limit(60);
    let mut fleet = Fleet::new(3);
    assert_eq!(offer(&fleet, 0, &limit, 1), 1);
    fleet.sync(0, &limit);
    fleet.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        offer(&fleet, 0, &limit, 1000),
        20,
        "an hour of refill does not add up past the bucket"
    );
}

#[test]
fn a_key_never_refused_here_leaves_the_batches_with_its_last_admissions() {
    let limit = limit(60);
    let mut fleet = Fleet::new(3);
    assert_eq!(offer(&fleet, 0, &limit, 1), 1);
    fleet.sync(0, &limit);
    assert!(
        fleet.stores[0].take().is_empty(),
        "one script for a key used once, no settling"
    );
}

#[test]
fn with_on_error_deny_a_key_idle_while_redis_answers_is_not_stale() {
    let limit = limit(100);
    let stale_after = Some(1_000_000_000);
    let mut fleet = Fleet::new(1);
    assert!(fleet.stores[0].check("k", &limit, stale_after).allowed);
    fleet.sync(0, &limit);
    fleet.stores[0].record_success();
    // "k" idle for 5 s while the syncs (of other keys, or heartbeats) keep succeeding.
    for _ in 0..5 {
        fleet.clock.advance(Duration::from_secs(1));
        fleet.stores[0].record_success();
    }
    assert!(
        fleet.stores[0].check("k", &limit, stale_after).allowed,
        "Redis is healthy: the idle key is admitted"
    );
    fleet.clock.advance(Duration::from_secs(2));
    assert!(
        !fleet.stores[0].check("new", &limit, stale_after).allowed,
        "no sync for 2 s: even a new key is refused"
    );
}

#[test]
fn keys_back_to_a_fresh_share_are_forgotten_by_the_syncs_sweeps() {
    let limit = limit(60);
    let mut fleet = Fleet::new(3);
    for i in 0..1000 {
        assert!(
            fleet.stores[0]
                .check(&format!("client-{i}"), &limit, None)
                .allowed
        );
    }
    fleet.sync(0, &limit);
    // A key whose share is used up is kept.
    assert_eq!(offer(&fleet, 0, &limit, 100), 20);
    fleet.sync(0, &limit);
    assert_eq!(fleet.stores[0].len(), 1001);
    // One request each: credit back to a fresh share after 1/20 s (rate 60/s shared by 3).
    fleet.clock.advance(Duration::from_millis(100));
    for _ in 0..SHARDS {
        fleet.sync(0, &limit);
    }
    assert_eq!(fleet.stores[0].len(), 1, "only the drained key is left");
    let again = (0..100)
        .filter(|_| fleet.stores[0].check("client-7", &limit, None).allowed)
        .count();
    assert_eq!(again, 20, "a forgotten key starts from a fresh share");
}
