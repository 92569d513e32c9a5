//! Integration: forwarding headers, hop-by-hop handling, large streamed bodies with flat
//! memory, HTTP/2 over TLS and h2c, round robin and failover.

mod common;

use common::{client, closed_port, mocks, GatewayProcess};
use futures_util::StreamExt;
use std::collections::HashMap;

fn single_upstream_config(targets: &str, extra_server: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
{extra_server}
upstreams:
  api:
    targets: [{targets}]
    connect_timeout: 1s
    max_failures: 1
    fail_timeout: 30s
routes:
  - name: all
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
"#
    )
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&single_upstream_config(
        &format!("\"{}\"", upstream.addr()),
        "",
    ));
    let response = client()
        .get(gateway.url("/_test/echo"))
        .header("host", "shop.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("x-custom", "passes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let headers = &body["headers"];
    // The peer (127.0.0.1) is not a trusted proxy: its X-Forwarded-For is replaced, not trusted.
    assert_eq!(headers["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(headers["x-forwarded-host"][0], "shop.example.com");
    assert_eq!(headers["host"][0], "shop.example.com");
    assert_eq!(headers["x-custom"][0], "passes");
    assert!(headers.get("x-secret-hop").is_none(), "{headers}");
    assert!(headers.get("keep-alive").is_none(), "{headers}");
}

#[tokio::test]
async fn trusted_proxies_extend_x_forwarded_for() {
    let upstream = mocks::upstream("api");
    let config = single_upstream_config(&format!("\"{}\"", upstream.addr()), "")
        + "trusted_proxies: [\"127.0.0.0/8\"]\n";
    let gateway = GatewayProcess::start(&config);
    let response = client()
        .get(gateway.url("/_test/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["headers"]["x-forwarded-for"][0],
        "203.0.113.9, 127.0.0.1"
    );
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");
}

#[tokio::test]
async fn large_bodies_stream_both_ways_with_flat_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&single_upstream_config(
        &format!("\"{}\"", upstream.addr()),
        "",
    ));
    let http = client();
    // Warm up so that the baseline includes allocator and pool set-up.
    http.get(gateway.url("/status")).send().await.unwrap();
    let baseline = gateway.rss_kib();

    let response = http
        .get(gateway.url(&format!("/_test/bytes/{SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    let mut peak = baseline;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
        if received % (8 * 1024 * 1024) < 65536 {
            peak = peak.max(gateway.rss_kib());
        }
    }
    assert_eq!(received, SIZE);

    let chunks = futures_util::stream::iter(
        (0..SIZE / 65536).map(|_| Ok::<_, std::io::Error>(vec![7u8; 65536])),
    );
    let response = http
        .post(gateway.url("/_test/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["received"], SIZE);
    peak = peak.max(gateway.rss_kib());
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        growth_mib < 40,
        "gateway RSS grew by {growth_mib} MiB while streaming 2 x 100 MiB"
    );
}

#[tokio::test]
async fn round_robin_and_failover_after_a_target_is_down() {
    let first = mocks::upstream("first");
    let second = mocks::upstream("second");
    let targets = format!("\"{}\", \"{}\"", first.addr(), second.addr());
    let gateway = GatewayProcess::start(&single_upstream_config(&targets, ""));
    let http = client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..10 {
        let response = http.get(gateway.url("/status")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let name = response.headers()["x-upstream"]
            .to_str()
            .unwrap()
            .to_owned();
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(counts.get("first"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("second"), Some(&5), "{counts:?}");

    // One target refuses connections: every request still succeeds (retried on the other), and
    // after the first failure the dead target is set aside.
    let dead = closed_port();
    let targets = format!("\"127.0.0.1:{}\", \"{}\"", dead.port(), first.addr());
    let gateway = GatewayProcess::start(&single_upstream_config(&targets, ""));
    let before = first.requests();
    for _ in 0..20 {
        let response = http.get(gateway.url("/status")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-upstream"], "first");
    }
    assert_eq!(first.requests() - before, 20);
}

fn write_certificate(dir: &std::path::Path) -> (String, String, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        cert_pem.into_bytes(),
    )
}

#[tokio::test]
async fn http2_over_tls_and_h2c() {
    let upstream = mocks::upstream("api");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = write_certificate(dir.path());
    // Port 0: the gateway binds a free port and logs it (`tls listening on …`); the harness
    // waits until that port accepts connections.
    let tls = format!(
        "  tls:\n    listen: \"127.0.0.1:0\"\n    certificate: {cert}\n    private_key: {key}\n"
    );
    let gateway = GatewayProcess::start(&single_upstream_config(
        &format!("\"{}\"", upstream.addr()),
        &tls,
    ));
    let tls_port = gateway.tls_port.expect("the TLS listener's port");

    let tls_client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert_pem).unwrap()])
        .build()
        .unwrap();
    let response = tls_client
        .get(format!("https://localhost:{tls_port}/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(body["headers"]["host"][0], format!("localhost:{tls_port}"));

    let h2c = common::h2c_client();
    let response = h2c.get(gateway.url("/_test/echo")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let response = h2c.get(gateway.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
}
