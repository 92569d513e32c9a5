//! Integration: rate limits through the gateway — accuracy against a driven rate, burst, tiers
//! by role, recovery, response headers, X-Forwarded-For trust, and Redis: one limit shared by
//! two gateways, a quota surviving a restart, and Redis killed in allow and deny modes.

mod common;

use common::mocks::{self, DevIdp};
use common::{client, problem, GatewayProcess, RedisProcess};
use std::time::{Duration, Instant};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr, policies: &str, extra: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
identity_providers:
  acme:
    issuer: "{issuer}"
    jwks_uri: "{jwks}"
    audiences: ["orders-api"]
upstreams:
  api:
    targets: ["{upstream}"]
rate_limits:
{policies}
{extra}
routes:
  - name: limited
    match: {{ path_prefix: /limited/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
    rate_limit: policy
  - name: anonymous
    match: {{ path_prefix: /anonymous/ }}
    strip_prefix: true
    upstream: api
    auth: none
    rate_limit: by_ip
"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
    )
}

const BY_IP: &str = "  by_ip:\n    key: client_ip\n    rate: 2/min\n";

async fn statuses(
    url: &str,
    token: Option<&str>,
    count: usize,
    headers: &[(&str, &str)],
) -> Vec<u16> {
    let http = client();
    let mut result = Vec::new();
    for _ in 0..count {
        let mut request = http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        result.push(request.send().await.unwrap().status().as_u16());
    }
    result
}

#[tokio::test]
async fn burst_tiers_headers_and_recovery() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let policies = format!(
        "  policy:\n    key: client_id\n    rate: 3/s\n    burst: 2\n    tiers:\n      - when: {{ realm_role: premium }}\n        rate: 1000/s\n{BY_IP}"
    );
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), &policies, ""));
    let url = gateway.url("/limited/status");
    let basic = idp.token("acme").client("basic-app").mint().unwrap();
    let got = statuses(&url, Some(&basic), 6, &[]).await;
    assert_eq!(
        got,
        [200, 200, 200, 200, 200, 429],
        "3/s + burst 2 admits 5 at once"
    );

    let response = client().get(&url).bearer_auth(&basic).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["ratelimit-policy"], "\"policy\";q=3;w=1");
    assert_eq!(problem(response).await["reason"], "rate_limited");

    // Another client has its own bucket; a premium one gets its tier's rate.
    let other = idp.token("acme").client("other-app").mint().unwrap();
    let response = client().get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["ratelimit-policy"], "\"policy\";q=3;w=1");
    assert!(response.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"policy\";r=4;t="));
    let premium = idp
        .token("acme")
        .client("premium-app")
        .realm_roles(&["premium"])
        .mint()
        .unwrap();
    assert!(statuses(&url, Some(&premium), 30, &[])
        .await
        .iter()
        .all(|s| *s == 200));

    // The window recovers: one request every 1/3 s passes again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(statuses(&url, Some(&basic), 1, &[]).await, [200]);
}

#[tokio::test]
async fn accuracy_at_a_driven_rate() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let policies = format!("  policy:\n    key: client_id\n    rate: 20/s\n{BY_IP}");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), &policies, ""));
    let url = gateway.url("/limited/status");
    let token = idp.token("acme").mint().unwrap();
    let http = client();
    // Drive 50 requests/s for 2 s. Expected: the full bucket (20) plus 20/s × elapsed.
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let (mut allowed, mut limited) = (0u32, 0u32);
    for _ in 0..100 {
        ticker.tick().await;
        match http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
        {
            200 => allowed += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let expected = 20.0 + 20.0 * started.elapsed().as_secs_f64();
    assert_eq!(allowed + limited, 100);
    assert!(
        (f64::from(allowed) - expected).abs() <= 3.0,
        "allowed {allowed}, expected {expected:.1} ± 3"
    );
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let policies = format!("  policy:\n    key: client_id\n    rate: 100/s\n{BY_IP}");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), &policies, ""));
    let url = gateway.url("/anonymous/status");
    let mut got = Vec::new();
    for i in 0..4 {
        let spoofed = format!("203.0.113.{i}");
        got.extend(statuses(&url, None, 1, &[("x-forwarded-for", spoofed.as_str())]).await);
    }
    assert_eq!(
        got,
        [200, 200, 429, 429],
        "an untrusted peer's X-Forwarded-For is ignored"
    );

    let trusted = config(
        &idp,
        upstream.addr(),
        &policies,
        "trusted_proxies: [\"127.0.0.0/8\"]",
    );
    let gateway = GatewayProcess::start(&trusted);
    let url = gateway.url("/anonymous/status");
    let mut got = Vec::new();
    for i in 0..4 {
        let client_address = format!("203.0.113.{i}");
        got.extend(
            statuses(
                &url,
                None,
                1,
                &[("x-forwarded-for", client_address.as_str())],
            )
            .await,
        );
    }
    assert_eq!(
        got,
        [200, 200, 200, 200],
        "behind a trusted proxy each client has its own key"
    );
}

fn redis_section(redis: &RedisProcess, on_error: &str) -> String {
    format!(
        "redis:\n  url: \"{}\"\n  timeout: 20ms\n  on_error: {on_error}\n",
        redis.url()
    )
}

#[tokio::test]
async fn two_gateways_share_one_limit_through_redis_and_quotas_survive_restarts() {
    let redis = RedisProcess::start();
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let policies =
        format!("  policy:\n    key: client_id\n    rate: 10/min\n    store: redis\n{BY_IP}");
    let text = config(
        &idp,
        upstream.addr(),
        &policies,
        &redis_section(&redis, "deny"),
    );
    let first = GatewayProcess::start(&text);
    let second = GatewayProcess::start(&text);
    let token = idp.token("acme").mint().unwrap();
    let mut allowed = 0;
    for _ in 0..8 {
        for gateway in [&first, &second] {
            if statuses(&gateway.url("/limited/status"), Some(&token), 1, &[]).await == [200] {
                allowed += 1;
            }
        }
    }
    assert_eq!(allowed, 10, "one global limit across both instances");

    let quota = format!("  policy:\n    key: client_id\n    rate: 3/day\n{BY_IP}");
    let text = config(
        &idp,
        upstream.addr(),
        &quota,
        &redis_section(&redis, "deny"),
    );
    let gateway = GatewayProcess::start(&text);
    let daily = idp.token("acme").client("daily-app").mint().unwrap();
    assert_eq!(
        statuses(&gateway.url("/limited/status"), Some(&daily), 2, &[]).await,
        [200, 200]
    );
    drop(gateway);
    let restarted = GatewayProcess::start(&text);
    let got = statuses(&restarted.url("/limited/status"), Some(&daily), 2, &[]).await;
    assert_eq!(
        got,
        [200, 429],
        "a day-long quota lives in Redis and survives the restart"
    );
}

#[tokio::test]
async fn redis_down_fails_open_or_closed_within_the_timeout() {
    for (mode, expected) in [("allow", 200u16), ("deny", 429u16)] {
        let mut redis = RedisProcess::start();
        let idp = mocks::idp(&["acme"]);
        let upstream = mocks::upstream("api");
        let policies =
            format!("  policy:\n    key: client_id\n    rate: 100/s\n    store: redis\n{BY_IP}");
        let gateway = GatewayProcess::start(&config(
            &idp,
            upstream.addr(),
            &policies,
            &redis_section(&redis, mode),
        ));
        let token = idp.token("acme").mint().unwrap();
        let url = gateway.url("/limited/status");
        assert_eq!(statuses(&url, Some(&token), 1, &[]).await, [200]);
        redis.kill();
        let http = client();
        for _ in 0..10 {
            let started = Instant::now();
            let status = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let took = started.elapsed();
            assert_eq!(status, expected, "on_error: {mode}");
            assert!(
                took < Duration::from_millis(250),
                "on_error: {mode}: a request took {took:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_gateway_starts_while_redis_is_down() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let policies =
        format!("  policy:\n    key: client_id\n    rate: 100/s\n    store: redis\n{BY_IP}");
    let closed = common::closed_port();
    let dead = format!(
        "redis:\n  url: \"redis://127.0.0.1:{}/0\"\n  timeout: 20ms\n  on_error: allow\n",
        closed.port()
    );
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), &policies, &dead));
    let token = idp.token("acme").mint().unwrap();
    let started = Instant::now();
    assert_eq!(
        statuses(&gateway.url("/limited/status"), Some(&token), 3, &[]).await,
        [200, 200, 200]
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}
