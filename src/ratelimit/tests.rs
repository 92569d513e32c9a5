//! Hermetic tests of keys, tiers, the local store and headers; time is a [`ManualClock`].

use super::compile_rate_limits;
use super::*;
use crate::config::file::{RateLimitFile, RedisFile};
use futures_util::FutureExt;
use http::HeaderMap;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// Compiles a `rate_limits` section.
fn policies(yaml: &str) -> Vec<RateLimitPolicy> {
    let files: BTreeMap<String, RateLimitFile> = serde_yaml::from_str(yaml).unwrap();
    let mut errors = Vec::new();
    let compiled = compile_rate_limits(&files, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    compiled
}

fn limiter(yaml: &str) -> (RateLimiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let limiter = RateLimiter::with_clock(&policies(yaml), None, None, clock.clone(), 1 << 16);
    (limiter, clock)
}

/// Local checks never await.
fn check<'a>(limiter: &'a RateLimiter, key: &str, tier: Option<usize>) -> Decision<'a> {
    limiter
        .check(0, key, tier)
        .now_or_never()
        .expect("local checks are ready at once")
}

/// The key of the first policy in `yaml` for a request with these verified claims.
fn key_of(yaml: &str, claims: Option<&Value>, headers: &HeaderMap) -> (String, KeySource) {
    let policy = &policies(yaml)[0];
    let identity = claims.map(|c| Identity::from_claims(c.clone()));
    let mut out = String::from("stale");
    let source = rate_key(&policy.key, identity.as_ref(), headers, IP, &mut out);
    (out, source)
}

#[test]
fn gcra_admits_exactly_capacity_plus_elapsed_over_interval() {
    // 10/s offered at 20/s for 50 s: the full bucket (10), then one per 100 ms.
    let (limiter, clock) = limiter("p: { key: client_id, rate: 10/s }");
    let mut allowed = 0;
    for _ in 0..1000 {
        allowed += u32::from(check(&limiter, "a", None).allowed);
        clock.advance(Duration::from_millis(50));
    }
    // Last arrival at 49.95 s: 10 + floor(49.95 / 0.1) = 509.
    assert_eq!(allowed, 509);
}

#[test]
fn steady_traffic_at_the_rate_is_never_limited() {
    let (limiter, clock) = limiter("p: { key: client_id, rate: 600/min }");
    for _ in 0..5000 {
        assert!(check(&limiter, "a", None).allowed);
        clock.advance(Duration::from_millis(100));
    }
}

#[test]
fn burst_adds_to_the_rate() {
    let (limiter, clock) = limiter("p: { key: client_id, rate: 100/s, burst: 50 }");
    let first = check(&limiter, "a", None);
    assert_eq!((first.remaining, first.limit), (149, 100));
    for _ in 1..150 {
        assert!(check(&limiter, "a", None).allowed);
    }
    let limited = check(&limiter, "a", None);
    assert!(!limited.allowed);
    assert_eq!(limited.retry_after, Some(Duration::from_millis(10)));
    assert_eq!(limited.reset_after, Duration::from_millis(1500));
    clock.advance(Duration::from_millis(10));
    assert!(check(&limiter, "a", None).allowed);
    assert!(!check(&limiter, "a", None).allowed);
}

#[test]
fn the_window_recovers() {
    let (limiter, clock) = limiter("p: { key: client_id, rate: 5/min }");
    for _ in 0..5 {
        assert!(check(&limiter, "a", None).allowed);
    }
    let limited = check(&limiter, "a", None);
    assert_eq!(limited.retry_after, Some(Duration::from_secs(12)));
    clock.advance(Duration::from_secs(12));
    assert!(check(&limiter, "a", None).allowed);
    assert!(!check(&limiter, "a", None).allowed);
    clock.advance(Duration::from_secs(60));
    assert_eq!(check(&limiter, "a", None).remaining, 4);
    // Other keys were never affected.
    assert_eq!(check(&limiter, "b", None).remaining, 4);
}

#[test]
fn tiers_pick_the_rate_by_role() {
    let yaml = "p:
  key: client_id
  rate: 2/s
  tiers:
    - { when: { realm_role: premium }, rate: 5/s }
    - { when: { realm_role: gold }, rate: 3/s, burst: 1 }";
    let (limiter, _clock) = limiter(yaml);
    let premium = json!({"azp": "app-p", "realm_access": {"roles": ["premium", "gold"]}});
    let gold = json!({"azp": "app-g", "realm_access": {"roles": ["gold"]}});
    let plain = json!({"azp": "app-n", "realm_access": {"roles": ["reader"]}});
    let run = |claims: Option<&Value>| {
        let identity = claims.map(|c| Identity::from_claims(c.clone()));
        let mut buf = String::new();
        let mut decisions = Vec::new();
        for _ in 0..10 {
            let d = limiter
                .check_request(0, identity.as_ref(), &HeaderMap::new(), IP, &mut buf)
                .now_or_never()
                .unwrap();
            decisions.push((d.allowed, d.tier));
        }
        let allowed = decisions.iter().filter(|(a, _)| *a).count();
        (allowed, decisions[0].1)
    };
    assert_eq!(
        run(Some(&premium)),
        (5, Some(0)),
        "first matching tier wins"
    );
    assert_eq!(run(Some(&gold)), (4, Some(1)));
    assert_eq!(run(Some(&plain)), (2, None));
    assert_eq!(
        run(None),
        (2, None),
        "anonymous: base rate, keyed on the address"
    );
}

#[test]
fn missing_sources_fall_back_to_the_client_address() {
    let none = HeaderMap::new();
    let claims = json!({"sub": "u1", "client_id": "svc"});
    assert_eq!(
        key_of("p: { key: client_id, rate: 1/s }", Some(&claims), &none),
        ("svc".into(), KeySource::Configured),
        "client_id claim when there is no azp"
    );
    let fallback = (
        "|ip:192.0.2.7".to_owned(),
        KeySource::ClientIpFallback { missing_part: 0 },
    );
    assert_eq!(
        key_of("p: { key: client_id, rate: 1/s }", None, &none),
        fallback
    );
    assert_eq!(
        key_of(
            "p: { key: subject, rate: 1/s }",
            Some(&json!({"sub": ""})),
            &none
        ),
        fallback,
        "an empty value is missing"
    );
    assert_eq!(
        key_of("p: { key: 'header:x-api-key', rate: 1/s }", None, &none),
        fallback
    );
    assert_eq!(
        key_of(
            "p: { key: 'claim:org.id', rate: 1/s }",
            Some(&json!({"org": {"id": [1]}})),
            &none
        ),
        fallback,
        "arrays are not keys"
    );
    assert_eq!(
        key_of("p: { key: client_ip, rate: 1/s }", None, &none),
        ("192.0.2.7".into(), KeySource::Configured)
    );
}

#[test]
fn composite_keys_are_unambiguous() {
    let yaml = "p: { key: [client_id, 'claim:org.id', 'header:x-tenant'], rate: 1/s }";
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", "t|1".parse().unwrap());
    let claims = json!({"azp": "a\\b", "org": {"id": 42}});
    assert_eq!(
        key_of(yaml, Some(&claims), &headers),
        ("a\\\\b|42|t\\|1".into(), KeySource::Configured)
    );
    // `a|b` + `c` and `a` + `b|c` differ.
    let yaml2 = "p: { key: [subject, 'header:x-t'], rate: 1/s }";
    let key = |sub: &str, header: &str| {
        let mut h = HeaderMap::new();
        h.insert("x-t", header.parse().unwrap());
        key_of(yaml2, Some(&json!({"sub": sub})), &h).0
    };
    assert_ne!(key("a|b", "c"), key("a", "b|c"));
    // A missing part makes the whole key the address.
    let (key, source) = key_of(yaml, Some(&json!({"azp": "a"})), &headers);
    assert_eq!(key, "|ip:192.0.2.7");
    assert_eq!(source, KeySource::ClientIpFallback { missing_part: 1 });
    // Non-UTF-8 header bytes are hex-escaped.
    let mut h = HeaderMap::new();
    h.insert("x-tenant", http::HeaderValue::from_bytes(b"t\xff").unwrap());
    let only = "p: { key: 'header:x-tenant', rate: 1/s }";
    assert_eq!(key_of(only, None, &h).0, "t\\xff");
}

#[test]
fn idle_keys_are_forgotten_without_changing_decisions() {
    let clock = Arc::new(ManualClock::new());
    let store = LocalStore::new(clock.clone(), 64 * 1024);
    let limit = Limit::new(policies("p: { key: client_id, rate: 10/s }")[0].rate, 0);
    for i in 0..50_000 {
        store.check(&format!("k{i}"), &limit);
    }
    assert_eq!(store.len(), 50_000);
    clock.advance(Duration::from_millis(100));
    store.sweep();
    assert_eq!(store.len(), 0, "a full bucket is the same as no state");
    assert_eq!(store.forced_evictions(), 0);
    // Flood of new keys while old ones go idle: amortized sweeps keep the store small.
    for i in 0..200_000 {
        store.check(&format!("f{i}"), &limit);
        clock.advance(Duration::from_micros(10));
    }
    assert!(store.len() < 64 * 1024, "{}", store.len());
    assert_eq!(store.forced_evictions(), 0);
}

#[test]
fn the_key_cap_holds_under_a_flood_of_active_keys() {
    let clock = Arc::new(ManualClock::new());
    let store = LocalStore::new(clock.clone(), 64 * 256);
    let limit = Limit::new(policies("p: { key: client_id, rate: 10/hour }")[0].rate, 0);
    for i in 0..100_000 {
        store.check(&format!("k{i}"), &limit);
    }
    assert!(store.len() <= 64 * 256, "{}", store.len());
    assert!(store.forced_evictions() >= 100_000 - 64 * 256);
    // A key just used survives the next evictions: the closest-to-full go first.
    for _ in 0..3 {
        store.check("hot", &limit);
        clock.advance(Duration::from_millis(1));
    }
    for i in 0..50_000 {
        store.check(&format!("j{i}"), &limit);
    }
    assert_eq!(
        store.check("hot", &limit).remaining,
        6,
        "3 used before, 1 now"
    );
}

#[test]
fn one_million_keys_fit_in_bounded_memory() {
    let clock = Arc::new(ManualClock::new());
    let rss_before = rss_kib();
    let store = LocalStore::new(clock, DEFAULT_MAX_KEYS);
    let limit = Limit::new(policies("p: { key: client_id, rate: 10/s }")[0].rate, 0);
    let mut key = String::new();
    for i in 0..1_000_000u32 {
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "client-{i}");
        store.check(&key, &limit);
    }
    let rss_after = rss_kib();
    assert_eq!(store.len(), 1_000_000);
    let bytes = store.table_bytes();
    assert!(bytes <= 36 << 20, "{bytes} bytes of tables");
    println!(
        "1M keys: tables {} MiB, RSS +{} MiB (noisy when tests run in parallel)",
        bytes >> 20,
        rss_after.saturating_sub(rss_before) >> 10
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_reload_keeps_the_state_of_kept_policies() {
    let clock = Arc::new(ManualClock::new());
    let old_yaml = "a: { key: client_id, rate: 2/min }\nb: { key: client_id, rate: 2/min }";
    let old = RateLimiter::with_clock(&policies(old_yaml), None, None, clock.clone(), 1024);
    for index in 0..2 {
        for _ in 0..2 {
            old.check(index, "k", None).now_or_never().unwrap();
        }
    }
    let new_yaml = "a: { key: client_id, rate: 2/min }\nb: { key: subject, rate: 2/min }";
    let new = RateLimiter::with_clock(&policies(new_yaml), None, Some(&old), clock, 1024);
    assert!(
        !new.check(0, "k", None).now_or_never().unwrap().allowed,
        "kept"
    );
    assert!(
        new.check(1, "k", None).now_or_never().unwrap().allowed,
        "key changed: fresh"
    );
}

#[test]
fn long_quotas_go_to_redis_when_there_is_one() {
    let p = policies(
        "day: { key: client_id, rate: 10000/day }\nsec: { key: client_id, rate: 10/s }\nred: { key: client_id, rate: 1/s, store: redis }",
    );
    let kinds = |redis| p.iter().map(|p| store_kind(p, redis)).collect::<Vec<_>>();
    assert_eq!(
        kinds(true),
        [StoreKind::Redis, StoreKind::Redis, StoreKind::Local]
    );
    assert_eq!(kinds(false), [StoreKind::Local; 3]);
}

#[test]
fn headers_follow_the_draft() {
    let (limiter, clock) = limiter("p: { key: client_id, rate: 10/min, burst: 2 }");
    let d = check(&limiter, "a", None);
    let h = rate_limit_headers(std::slice::from_ref(&d));
    assert_eq!(h.policy.unwrap(), "\"p\";q=10;w=60");
    assert_eq!(h.state.unwrap(), "\"p\";r=11;t=6");
    assert_eq!(h.retry_after, None);
    for _ in 0..11 {
        check(&limiter, "a", None);
    }
    clock.advance(Duration::from_millis(1500));
    let limited = check(&limiter, "a", None);
    assert!(!limited.allowed);
    let h = rate_limit_headers(&[d.clone(), limited]);
    assert_eq!(h.policy.unwrap(), "\"p\";q=10;w=60, \"p\";q=10;w=60");
    assert_eq!(h.state.unwrap(), "\"p\";r=11;t=6, \"p\";r=0;t=71");
    assert_eq!(h.retry_after.unwrap(), "5", "6 s - 1.5 s, rounded up");
    let quiet = Decision {
        send_headers: false,
        policy: "q\"x",
        ..d
    };
    let h = rate_limit_headers(std::slice::from_ref(&quiet));
    assert_eq!((h.policy, h.state), (None, None));
    let mut item = String::new();
    decision::write_policy_item(&quiet, &mut item);
    assert_eq!(item, "\"q\\\"x\";q=10;w=60");
}

#[test]
fn redis_settings_are_validated() {
    let compile = |yaml: &str| {
        let file: RedisFile = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let settings = compile_redis(&file, &mut errors);
        (
            settings,
            errors.into_iter().map(|e| e.path).collect::<Vec<_>>(),
        )
    };
    let (ok, errors) = compile("url: redis://:secret@127.0.0.1:6379/0");
    let ok = ok.unwrap();
    assert!(errors.is_empty());
    assert_eq!(ok.timeout, Duration::from_millis(5));
    assert_eq!(ok.on_error, RedisOnError::Allow);
    assert!(!format!("{ok:?}").contains("secret"));
    assert_eq!(compile("url: http://x").1, ["redis.url"]);
    assert_eq!(compile("url: rediss://x").1, ["redis.url"]);
    assert_eq!(
        compile("{url: 'redis://x', timeout: 0ms}").1,
        ["redis.timeout"]
    );
    assert_eq!(
        compile("{url: 'redis://x', timeout: 2s}").1,
        ["redis.timeout"]
    );
    assert_eq!(
        compile("{url: 'redis://x', pool_size: 0}").1,
        ["redis.pool_size"]
    );
}
