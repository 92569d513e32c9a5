//! Integration: pre-aggregated global limits (`sync_interval`) with a real Redis — three gateways
//! share one limit through local shares reconciled every 20 ms: the fleet admits about the limit
//! (not three times it), Redis sees a handful of batched calls instead of one script per
//! request, and a Redis that goes away leaves each instance limiting itself to its share.

mod common;

use common::redis_cluster::RedisCluster;
use common::{client, mocks, GatewayProcess, RedisProcess};
use futures_util::future::join_all;

/// `redis_section` is the body of the `redis` section (`url: …` or `cluster: […]`).
fn config(upstream: std::net::SocketAddr, redis_section: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
admin:
  listen: "127.0.0.1:{{admin_port}}"
redis:
  {redis_section}
  timeout: 200ms
upstreams:
  api:
    targets: ["{upstream}"]
rate_limits:
  global_per_client:
    key: header:X-Client
    rate: 60/min
    store: redis
    sync_interval: 20ms
routes:
  - name: api
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
    rate_limit: global_per_client
"#
    )
}

fn redis_command(port: u16, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Calls of `command` the Redis on `port` has served since the last reset (`INFO commandstats`).
fn calls(port: u16, command: &str) -> u64 {
    let stats = redis_command(port, &["info", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Waits until each instance has learnt from its heartbeats that three share the limit.
async fn three_know_each_other(gateways: &[GatewayProcess]) {
    for gateway in gateways {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !gateway
            .metrics_text()
            .await
            .contains("portcullis_ratelimit_sync_instances{policy=\"global_per_client\"} 3")
        {
            assert!(std::time::Instant::now() < deadline, "{}", gateway.log());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Keys the syncs of `gateway` carried so far.
async fn keys_synced(gateway: &GatewayProcess) -> u64 {
    let metrics = gateway.metrics_text().await;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("portcullis_ratelimit_sync_keys_total{policy=\"global_per_client\"} ")
        })
        .map_or(0, |n| n.parse().unwrap())
}

/// Waits until no gateway has synced a key for ten intervals: every key has settled (a refused
/// key is synced at each interval until it has), so each view includes every admission.
async fn settled(gateways: &[GatewayProcess]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = (Vec::new(), std::time::Instant::now());
    while last.1.elapsed() < std::time::Duration::from_millis(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            gateways[0].log()
        );
        let mut counts = Vec::new();
        for gateway in gateways {
            counts.push(keys_synced(gateway).await);
        }
        if counts != last.0 {
            last = (counts, std::time::Instant::now());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn admitted(gateways: &[GatewayProcess], client_id: &str, each: usize) -> usize {
    let http = client();
    let requests = gateways.iter().flat_map(|gateway| {
        let http = http.clone();
        (0..each).map(move |_| {
            let request = http
                .get(gateway.url("/_test/echo"))
                .header("x-client", client_id)
                .send();
            async move { request.await.unwrap().status().as_u16() }
        })
    });
    join_all(requests)
        .await
        .into_iter()
        .filter(|s| *s == 200)
        .count()
}

#[tokio::test]
async fn three_gateways_share_one_limit_with_a_few_batched_redis_calls() {
    let upstream = mocks::upstream("api");
    let mut redis = RedisProcess::start();
    let text = config(upstream.addr(), &format!("url: \"{}\"", redis.url()));
    let gateways: Vec<GatewayProcess> = (0..3).map(|_| GatewayProcess::start(&text)).collect();
    three_know_each_other(&gateways).await;
    redis_command(redis.port, &["config", "resetstat"]);

    // 150 requests against a bucket of 60: each instance admits its share of the budget. (A burst
    // this short can end before a budget left unused by one instance is handed to the others,
    // hence the lower bound; three times 60 is what instances limiting alone would admit.)
    let total = admitted(&gateways, "tenant-a", 50).await;
    assert!(
        (40..=66).contains(&total),
        "admitted {total} of a 60 budget"
    );
    // Once the syncs have run, the fleet knows the bucket is empty.
    settled(&gateways).await;
    // The first burst may have left part of the budget unused (see above): what the fleet admits
    // now is at most that rest, plus the refill of a second or two and the sync's small slack.
    let later = admitted(&gateways, "tenant-a", 10).await;
    assert!(
        total + later <= 66,
        "{later} more admitted after {total}: the fleet went past its budget of 60"
    );
    let requests = 180;
    let scripts = calls(redis.port, "evalsha") + calls(redis.port, "eval");
    assert!(
        (1..=requests / 5).contains(&scripts),
        "{scripts} script calls for {requests} requests"
    );
    // The script's text goes once per sync (SCRIPT LOAD), not once per key.
    assert_eq!(calls(redis.port, "eval"), 0);
    let metrics = gateways[0].metrics_text().await;
    assert!(
        metrics.contains(
            "portcullis_ratelimit_syncs_total{policy=\"global_per_client\",result=\"ok\"}"
        ),
        "{metrics}"
    );

    // Redis gone: no request waits on it; each instance keeps to its share of a fresh key.
    redis.kill();
    let started = std::time::Instant::now();
    let alone = admitted(&gateways, "tenant-b", 40).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!((54..=66).contains(&alone), "admitted {alone} without Redis");
}

#[tokio::test]
async fn synced_limits_work_across_the_shards_of_a_cluster() {
    let upstream = mocks::upstream("api");
    let cluster = RedisCluster::start();
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let text = config(upstream.addr(), &format!("cluster: [{}]", seeds.join(", ")));
    let gateways: Vec<GatewayProcess> = (0..3).map(|_| GatewayProcess::start(&text)).collect();
    three_know_each_other(&gateways).await;
    // Twelve tenants, spread over the shards: each gets about its budget of 60, not 3 x 60.
    for tenant in 0..12 {
        let total = admitted(&gateways, &format!("tenant-{tenant}"), 30).await;
        assert!(
            (40..=66).contains(&total),
            "tenant-{tenant}: admitted {total} of 60"
        );
    }
    let metrics = gateways[1].metrics_text().await;
    assert!(
        metrics.contains(
            "portcullis_ratelimit_syncs_total{policy=\"global_per_client\",result=\"failed\"} 0"
        ),
        "{metrics}"
    );
    assert!(cluster.keys("portcullis:rl:*").len() >= 12);
    // By EVALSHA; the text only to a node that answered NOSCRIPT (each did, once per key in the
    // first sync that reached it: nothing had loaded the script there).
    let by_sha: u64 = cluster.ports.iter().map(|p| calls(*p, "evalsha")).sum();
    let by_text: u64 = cluster.ports.iter().map(|p| calls(*p, "eval")).sum();
    assert!(by_sha > by_text, "{by_sha} EVALSHA, {by_text} EVAL");
}
