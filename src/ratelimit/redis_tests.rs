//! Tests against a real `redis-server`, started by each test on a free port. Without the binary
//! they fail (never skip): install it with `apt-get install -y redis-server`.

use super::compile_rate_limits;
use super::*;
use crate::config::file::RateLimitFile;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Extra time a call may take over `redis.timeout` (timer granularity, a loaded CI machine).
const MARGIN: Duration = Duration::from_millis(20);

/// `redis.timeout` of the tests where Redis goes away and comes back. A call to a Redis that is
/// down fails at once whatever the timeout; coming back takes a reconnect, then (the script
/// cache of a new Redis is empty) EVALSHA answered NOSCRIPT and EVAL: two round trips, which a
/// debug build on a VM woken from idle has been measured to take 5-8 ms.
const RECOVERY_TIMEOUT_MS: u64 = 50;

struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real Redis; \
                     install it with `apt-get install -y redis-server`"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings(url: String, timeout_ms: u64, on_error: RedisOnError) -> RedisSettings {
    RedisSettings {
        pool_size: 2,
        ..RedisSettings::single(url, Duration::from_millis(timeout_ms), on_error)
    }
}

fn limiter(yaml: &str, settings: RedisSettings) -> RateLimiter {
    let files: BTreeMap<String, RateLimitFile> = serde_yaml::from_str(yaml).unwrap();
    let mut errors = Vec::new();
    let policies = compile_rate_limits(&files, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let limiter = RateLimiter::new(&policies, Some(settings), None);
    assert_eq!(limiter.store_kind(0), StoreKind::Redis);
    limiter
}

/// Checks until Redis answers (the first connection is made in the background).
async fn until_connected(limiter: &RateLimiter, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.check(0, key, None).await.store_error {
        assert!(Instant::now() < deadline, "Redis never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_enforce_one_global_limit() {
    let server = RedisServer::start();
    let yaml = "global: { key: client_id, rate: 10/min, store: redis }";
    let a = limiter(yaml, settings(server.url(), 500, RedisOnError::Deny));
    let b = limiter(yaml, settings(server.url(), 500, RedisOnError::Deny));
    until_connected(&a, "warm").await;
    until_connected(&b, "warm").await;

    let first = a.check(0, "k1", None).await;
    assert_eq!((first.allowed, first.remaining, first.limit), (true, 9, 10));
    let mut allowed = 1;
    for i in 0..29 {
        let gateway = if i % 2 == 0 { &b } else { &a };
        let d = gateway.check(0, "k1", None).await;
        assert!(!d.store_error);
        allowed += usize::from(d.allowed);
        if !d.allowed {
            let retry = d.retry_after.unwrap();
            assert!(retry > Duration::from_secs(5) && retry <= Duration::from_secs(6));
        }
    }
    assert_eq!(allowed, 10);

    // 100 concurrent requests, half through each gateway: still exactly 10.
    let calls = (0..100).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        gateway.check(0, "k2", None)
    });
    let decisions = join_all(calls).await;
    assert!(decisions.iter().all(|d| !d.store_error));
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_survives_a_gateway_restart() {
    let server = RedisServer::start();
    // No `store:` given: a daily quota goes to Redis because one is configured.
    let yaml = "quota: { key: client_id, rate: 5/day }";
    let first = limiter(yaml, settings(server.url(), 500, RedisOnError::Deny));
    for _ in 0..5 {
        assert!(first.check(0, "partner", None).await.allowed);
    }
    drop(first);
    let restarted = limiter(yaml, settings(server.url(), 500, RedisOnError::Deny));
    let d = restarted.check(0, "partner", None).await;
    assert!(!d.allowed && !d.store_error);
    let retry = d.retry_after.unwrap();
    assert!(retry > Duration::from_secs(17_270) && retry <= Duration::from_secs(17_280));

    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("portcullis:rl:quota:partner")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl > 86_000_000 && ttl <= 86_400_000, "ttl {ttl}");

    // NOSCRIPT (script cache flushed): the EVAL fallback answers in the same call.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let d = restarted.check(0, "other", None).await;
    assert!(d.allowed && !d.store_error);
    assert_eq!(d.remaining, 4);
}

async fn killed_mid_test(on_error: RedisOnError) {
    let mut server = RedisServer::start();
    let port = server.port;
    let timeout = Duration::from_millis(RECOVERY_TIMEOUT_MS);
    let limiter = limiter(
        "p: { key: client_id, rate: 1000/s, store: redis }",
        settings(server.url(), RECOVERY_TIMEOUT_MS, on_error),
    );
    until_connected(&limiter, "k").await;
    server.kill();

    let mut slowest = Duration::ZERO;
    for _ in 0..300 {
        let started = Instant::now();
        let d = limiter.check(0, "k", None).await;
        slowest = slowest.max(started.elapsed());
        assert!(d.store_error);
        assert_eq!(d.allowed, on_error == RedisOnError::Allow);
        if !d.allowed {
            assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(slowest <= timeout + MARGIN, "a call took {slowest:?}");
    println!("{on_error:?}: slowest call with Redis killed: {slowest:?}");

    // Redis comes back on the same port: the limiter recovers by itself.
    let _server = RedisServer::start_on(port);
    until_connected(&limiter, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_fails_open_in_allow_mode() {
    killed_mid_test(RedisOnError::Allow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_fails_closed_in_deny_mode() {
    killed_mid_test(RedisOnError::Deny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_neither_blocks_nor_stays_down() {
    let port = free_port();
    let timeout = Duration::from_millis(RECOVERY_TIMEOUT_MS);
    let limiter = limiter(
        "p: { key: client_id, rate: 10/s, store: redis }",
        settings(
            format!("redis://127.0.0.1:{port}/0"),
            RECOVERY_TIMEOUT_MS,
            RedisOnError::Deny,
        ),
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let started = Instant::now();
        let d = limiter.check(0, "k", None).await;
        slowest = slowest.max(started.elapsed());
        assert!(d.store_error && !d.allowed);
    }
    assert!(slowest <= timeout + MARGIN, "a call took {slowest:?}");
    println!("slowest call with Redis down at start: {slowest:?}");
    let _server = RedisServer::start_on(port);
    until_connected(&limiter, "k").await;
}

#[test]
fn redis_store_error_shows_the_client_error_as_is() {
    let client_error = redis::Client::open("not a redis url").err().unwrap();
    let expected = client_error.to_string();
    assert_eq!(
        redis_store::RedisStoreError::InvalidUrl(client_error).to_string(),
        expected
    );
}
