//! Criterion benches of local rate limiting (target: < 100 ns for an uncontended check): the
//! store alone, one key and 100,000 rotating keys; the whole `RateLimiter::check` (tier lookup,
//! metrics); key extraction from claims; the local share check of a `sync_interval` policy (what
//! such a request costs instead of a Redis round trip); and a concurrency slot taken and given
//! back.
//!
//! Run: `cargo bench --bench ratelimit`. Absolute numbers depend on the machine.

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt;
use portcullis::config::file::RateLimitStore;
use portcullis::config::units::RateSpec;
use portcullis::ratelimit::synced::SyncedStore;
use portcullis::ratelimit::{rate_key, Limit, LocalStore, MonotonicClock, RateLimiter};
use portcullis::ratelimit::{ConcurrencyLimiter, ConcurrencyPolicy, RateKeyPart, RateLimitPolicy};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

fn policy() -> RateLimitPolicy {
    RateLimitPolicy {
        name: "per_client".into(),
        key: vec![RateKeyPart::ClientId],
        // High enough that the bench is never limited; the work is the same either way.
        rate: RateSpec {
            count: 1_000_000_000,
            period: Duration::from_secs(1),
        },
        burst: 0,
        tiers: Vec::new(),
        store: RateLimitStore::Local,
        headers: true,
        sync_interval: None,
    }
}

fn local_check(c: &mut Criterion) {
    let store = LocalStore::new(Arc::new(MonotonicClock::new()), 1 << 20);
    let limit = Limit::new(policy().rate, 0);
    c.bench_function("local store check, one key", |b| {
        b.iter(|| black_box(store.check(black_box("client-42"), &limit)))
    });

    let keys: Vec<String> = (0..100_000).map(|i| format!("client-{i}")).collect();
    let mut next = 0;
    c.bench_function("local store check, 100k rotating keys", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(store.check(&keys[next], &limit))
        })
    });

    let limiter = RateLimiter::new(&[policy()], None, None);
    c.bench_function("RateLimiter::check, local, one key", |b| {
        b.iter(|| {
            let decision = limiter
                .check(0, black_box("client-42"), None)
                .now_or_never();
            black_box(decision.map(|d| d.allowed))
        })
    });

    let identity = portcullis::policy::Identity::from_claims(
        serde_json::json!({"azp": "orders-app", "sub": "8f1c", "scope": "openid"}),
    );
    let headers = http::HeaderMap::new();
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let mut buf = String::with_capacity(64);
    let p = policy();
    c.bench_function("rate_key, client_id", |b| {
        b.iter(|| black_box(rate_key(&p.key, Some(&identity), &headers, ip, &mut buf)))
    });
}

fn synced_and_concurrency(c: &mut Criterion) {
    let store = SyncedStore::new(Arc::new(MonotonicClock::new()), 1 << 20);
    store.set_instances(3);
    let limit = Limit::new(policy().rate, 0);
    c.bench_function("synced share check, one key", |b| {
        b.iter(|| black_box(store.check(black_box("client-42"), &limit, None)))
    });
    let concurrency = ConcurrencyLimiter::new(
        &[ConcurrencyPolicy {
            name: "bench_jobs".into(),
            key: vec![RateKeyPart::ClientIp],
            limit: 1_000_000,
        }],
        None,
    );
    let headers = http::HeaderMap::new();
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let mut buf = String::with_capacity(64);
    c.bench_function("concurrency slot, taken and released", |b| {
        b.iter(|| black_box(concurrency.acquire(0, None, &headers, ip, &mut buf).is_ok()))
    });
}

criterion_group!(benches, local_check, synced_and_concurrency);
criterion_main!(benches);
