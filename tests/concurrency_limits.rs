//! Integration: `concurrency` policies — at most N requests of one key in flight, 429 with
//! `Retry-After` beyond, and every slot given back however the request ends: a normal response,
//! a client that goes away, an upstream timeout, an upstream that refuses the connection.

mod common;

use common::{client, closed_port, mocks, problem, GatewayProcess};
use std::time::Duration;

fn config(upstream: std::net::SocketAddr, refusing: u16) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
admin:
  listen: "127.0.0.1:{{admin_port}}"
upstreams:
  api:
    targets: ["{upstream}"]
    read_timeout: 400ms
  gone:
    targets: ["127.0.0.1:{refusing}"]
    max_failures: 100
rate_limits:
  report_jobs:
    key: client_ip
    concurrency: 2
routes:
  - name: jobs
    match: {{ path_prefix: /jobs/ }}
    strip_prefix: true
    upstream: api
    auth: none
    rate_limit: report_jobs
  - name: gone
    match: {{ path_prefix: /gone/ }}
    upstream: gone
    auth: none
    rate_limit: report_jobs
"#
    )
}

/// Requests holding a slot of `report_jobs` now, from the gateway's gauge.
async fn in_flight(gateway: &GatewayProcess) -> i64 {
    let text = gateway.metrics_text().await;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("portcullis_concurrency_in_flight{policy=\"report_jobs\"} ")
        })
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn status_of(gateway: &GatewayProcess, path: &str) -> u16 {
    let response = client().get(gateway.url(path)).send().await.unwrap();
    response.status().as_u16()
}

/// Polls the gauge until it reads `expected` (or 10 s pass); returns the last reading.
async fn settle(gateway: &GatewayProcess, expected: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = in_flight(gateway).await;
        if now == expected || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn at_most_n_requests_of_a_key_are_in_flight_and_every_ending_gives_the_slot_back() {
    let upstream = mocks::upstream("api");
    let refusing = closed_port();
    let gateway = GatewayProcess::start(&config(upstream.addr(), refusing.port()));
    let http = client();
    let slow = || http.get(gateway.url("/jobs/_test/slow/300")).send();

    // Two slow jobs hold both slots; a third is refused at once.
    let (first, second) = (tokio::spawn(slow()), tokio::spawn(slow()));
    assert_eq!(settle(&gateway, 2).await, 2);
    let third = http
        .get(gateway.url("/jobs/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let body = problem(third).await;
    assert_eq!(body["reason"], "rate_limited");
    assert!(
        body["detail"].as_str().unwrap().contains("report_jobs"),
        "{body}"
    );
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(second.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        settle(&gateway, 0).await,
        0,
        "slots come back with the responses"
    );
    assert_eq!(status_of(&gateway, "/jobs/_test/echo").await, 200);

    // A client that gives up: its slot comes back when the gateway finishes the request.
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(impatient
        .get(gateway.url("/jobs/_test/slow/300"))
        .send()
        .await
        .is_err());
    assert_eq!(
        settle(&gateway, 0).await,
        0,
        "a client that went away leaks no slot"
    );

    // An upstream that times out (read_timeout 400 ms) and one that refuses: 504, 502, no leak.
    let timed_out = http
        .get(gateway.url("/jobs/_test/slow/2000"))
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 504);
    assert_eq!(status_of(&gateway, "/gone/x").await, 502);
    assert_eq!(settle(&gateway, 0).await, 0);
    for _ in 0..3 {
        assert_eq!(status_of(&gateway, "/jobs/_test/echo").await, 200);
    }
}
