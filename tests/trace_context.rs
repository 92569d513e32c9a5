//! Integration: W3C trace context. A valid incoming `traceparent` is continued (same trace id,
//! the gateway's span as the upstream's parent), a missing or broken one starts a trace, and the
//! trace id is in problem bodies and in the access log; sampled requests are exported as OTLP
//! spans (decoded here with the official protobuf definitions) with parent/child ids checked.

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

/// A minimal OTLP/HTTP receiver: every POST body it gets, in order.
fn otlp_receiver() -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (bodies, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = bodies.send(body);
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, received)
}

#[tokio::test]
async fn sampled_requests_are_exported_over_otlp_with_their_phases() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let upstream = mocks::upstream("api");
    let (collector, bodies) = otlp_receiver();
    let text = format!(
        "{}telemetry:\n  tracing:\n    otlp_endpoint: \"{collector}\"\n    sample_ratio: 0.0\n",
        config(upstream.addr())
    );
    let gateway = GatewayProcess::start(&text);
    let http = client();
    // The caller sampled this trace: exported although new traces are not (ratio 0).
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let echo = mocks::echoed(
        http.get(gateway.url("/open/_test/echo"))
            .header("traceparent", sampled)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let gateway_span = echo["traceparent"][0]
        .as_str()
        .unwrap()
        .split('-')
        .nth(2)
        .unwrap()
        .to_owned();
    // Not sampled by the caller, and a new trace at ratio 0: not exported.
    for traceparent in [
        "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00",
        "",
    ] {
        let mut request = http.get(gateway.url("/open/_test/echo"));
        if !traceparent.is_empty() {
            request = request.header("traceparent", traceparent);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }

    let body = bodies
        .recv_timeout(Duration::from_secs(10))
        .expect("a batch of spans within the flush interval");
    let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
    let spans: Vec<_> = export
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(
        spans
            .iter()
            .all(|s| hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736"),
        "only the sampled trace"
    );
    let root = spans
        .iter()
        .find(|s| s.name.starts_with("GET "))
        .expect("the request span");
    assert_eq!(
        hex(&root.span_id),
        gateway_span,
        "the span the upstream saw as its parent"
    );
    assert_eq!(hex(&root.parent_span_id), "00f067aa0ba902b7");
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_id)
        .map(|s| s.name.as_str())
        .collect();
    for phase in ["authenticate", "rate_limit", "upstream"] {
        assert!(children.contains(&phase), "{phase} in {children:?}");
    }
    assert!(
        bodies.recv_timeout(Duration::from_millis(1500)).is_err(),
        "nothing else was sampled"
    );
}
