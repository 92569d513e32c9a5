//! Integration: W3C trace context. A valid incoming `traceparent` is continued (same trace id,
//! the gateway's span as the upstream's parent), a missing or broken one starts a trace, and the
//! trace id is in problem bodies and in the access log.

mod common;

use common::{client, mocks, problem, wait_until, GatewayProcess};
use std::time::Duration;

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
access_log: {{ path: "{{dir}}/access.log" }}
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: open
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: api
    auth: none
"#
    )
}

#[tokio::test]
async fn traces_are_continued_or_started_and_named_in_refusals_and_logs() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let http = client();
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = http
        .get(gateway.url("/open/_test/echo"))
        .header("traceparent", incoming)
        .header("tracestate", "vendor=value")
        .send()
        .await
        .unwrap();
    let headers = mocks::echoed(response).await;
    let forwarded = headers["traceparent"][0].as_str().unwrap();
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1], "0af7651916cd43dd8448eb211c80319c",
        "the same trace"
    );
    assert_ne!(
        parts[2], "b7ad6b7169203331",
        "the gateway's own span is the parent"
    );
    assert_eq!(parts[3], "01");
    assert_eq!(headers["tracestate"][0], "vendor=value");

    // No (valid) traceparent: a new trace, forwarded too.
    let started = mocks::echoed(
        http.get(gateway.url("/open/_test/echo"))
            .header("traceparent", "00-zz-yy-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let started = started["traceparent"][0].as_str().unwrap().to_owned();
    assert_eq!(started.len(), 55);
    assert!(!started.contains("zz"));

    // A refusal names its trace; so does the access log.
    let refused = http
        .get(gateway.url("/nowhere"))
        .header("traceparent", incoming)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(
        problem(refused).await["trace_id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
    let log = gateway.dir.path().join("access.log");
    let logged = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\""))
            .count()
            == 2
    });
    assert!(
        logged,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
