//! Integration: rate limits counted in a real Redis Cluster (three masters on loopback) — keys
//! spread over every shard with the slot routing of the cluster client, one limit shared by two
//! gateways, a daily quota that survives a gateway restart, and a master killed and brought back:
//! requests follow `on_error` within `timeout`, nothing hangs, limits recover.

mod common;

use common::redis_cluster::RedisCluster;
use common::{client, mocks, GatewayProcess};
use std::time::{Duration, Instant};

fn config(upstream: std::net::SocketAddr, cluster: &RedisCluster) -> String {
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
redis:
  cluster: [{seeds}]
  timeout: 200ms
  on_error: deny
upstreams:
  api:
    targets: ["{upstream}"]
rate_limits:
  per_key:
    key: header:X-Api-Key
    rate: 5/min
    store: redis
  daily:
    key: header:X-Api-Key
    rate: 3/day
routes:
  - name: minute
    match: {{ path_prefix: /minute/ }}
    strip_prefix: true
    upstream: api
    auth: none
    rate_limit: per_key
  - name: day
    match: {{ path_prefix: /day/ }}
    strip_prefix: true
    upstream: api
    auth: none
    rate_limit: daily
"#,
        seeds = seeds.join(", ")
    )
}

async fn status(gateway: &GatewayProcess, path: &str, key: &str) -> u16 {
    let response = client()
        .get(gateway.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Polls until a request for `key` is counted by the cluster (not refused by `on_error`).
async fn until_counted(gateway: &GatewayProcess, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if status(gateway, "/minute/_test/echo", key).await == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster never counted a request:\n{}", gateway.log());
}

#[tokio::test]
async fn limits_live_on_every_shard_are_shared_and_survive_restarts() {
    let cluster = RedisCluster::start();
    let upstream = mocks::upstream("api");
    let text = config(upstream.addr(), &cluster);
    let first = GatewayProcess::start(&text);
    until_counted(&first, "warm-up").await;

    // Thirty keys land on all three shards; each one is limited at exactly 5 a minute.
    for index in 0..30 {
        let key = format!("tenant-{index}");
        let statuses = futures_util::future::join_all(
            (0..6).map(|_| status(&first, "/minute/_test/echo", &key)),
        )
        .await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            5,
            "{key}: {statuses:?}"
        );
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{key}");
    }
    for node in 0..3 {
        assert!(
            cluster.key_count(node) > 0,
            "node {node} holds no limit key"
        );
    }

    // A second gateway shares the counts.
    let second = GatewayProcess::start(&text);
    until_counted(&second, "warm-up-2").await;
    for gateway in [&first, &second, &first] {
        assert_eq!(status(gateway, "/minute/_test/echo", "shared").await, 200);
    }
    for gateway in [&second, &first] {
        assert_eq!(status(gateway, "/minute/_test/echo", "shared").await, 200);
    }
    assert_eq!(status(&second, "/minute/_test/echo", "shared").await, 429);

    // A daily quota (3/day counts in Redis) survives a gateway restart.
    for _ in 0..3 {
        assert_eq!(status(&first, "/day/_test/echo", "daily-key").await, 200);
    }
    drop(first);
    let restarted = GatewayProcess::start(&text);
    until_counted(&restarted, "warm-up-3").await;
    assert_eq!(
        status(&restarted, "/day/_test/echo", "daily-key").await,
        429
    );
}

#[tokio::test]
async fn a_killed_master_means_on_error_within_timeout_and_limits_recover_with_it() {
    let mut cluster = RedisCluster::start();
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), &cluster));
    until_counted(&gateway, "warm-up").await;
    let keys: Vec<String> = (0..30).map(|i| format!("fleet-{i}")).collect();
    for key in &keys {
        assert_eq!(status(&gateway, "/minute/_test/echo", key).await, 200);
    }

    cluster.kill(0);
    // Keys on the dead master are refused (on_error: deny), the others still count; no
    // request waits much beyond the 200 ms timeout.
    let mut refused = 0;
    for key in &keys {
        let started = Instant::now();
        let code = status(&gateway, "/minute/_test/echo", key).await;
        assert!(code == 200 || code == 429, "{key}: {code}");
        refused += usize::from(code == 429);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{key} waited {:?}",
            started.elapsed()
        );
    }
    assert!(refused > 0, "some keys lived on the killed master");

    cluster.restart(0);
    let recovered = {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut all = false;
        let mut attempt = 0;
        while !all && Instant::now() < deadline {
            attempt += 1;
            let mut ok = true;
            for key in keys.iter().map(|k| format!("{k}-after-{attempt}")) {
                ok &= status(&gateway, "/minute/_test/echo", &key).await == 200;
            }
            all = ok;
            if !all {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        all
    };
    assert!(
        recovered,
        "limits did not recover with the cluster:\n{}",
        gateway.log()
    );
}
