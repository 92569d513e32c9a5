//! Integration: client connections that never end. A silent or dripping client, an idle
//! keep-alive connection and one connection too many are closed on time; requests that are
//! merely slow (a slow upstream, an HTTP/2 connection in use, a short HTTP/1.0 request on an
//! h2c-enabled listener) are not. Raw sockets, since a client library would not misbehave.

mod common;

use common::{mocks, GatewayProcess};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway's config; `server_extra` lines replace the 1 s `header_timeout` when they set one.
fn config(upstream: std::net::SocketAddr, server_extra: &str) -> String {
    let header_timeout = if server_extra.contains("header_timeout") {
        ""
    } else {
        "  header_timeout: 1s"
    };
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
{header_timeout}
  keepalive_timeout: 1s
{server_extra}
admin:
  listen: "127.0.0.1:{{admin_port}}"
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: api
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
"#
    )
}

async fn connect(gateway: &GatewayProcess) -> TcpStream {
    TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .expect("connect to the gateway")
}

/// Reads until the gateway closes the connection; returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Instant) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the connection was still open after {within:?}"),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        Instant::now(),
    )
}

/// The value of an unlabelled metric, or of one `reason` of the closed-connections counter.
async fn metric(gateway: &GatewayProcess, line_start: &str) -> f64 {
    let text = gateway.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

const OPEN: &str = "portcullis_client_connections_open ";

fn closed(reason: &str) -> String {
    format!("portcullis_client_connections_closed_total{{reason=\"{reason}\"}} ")
}

/// Waits until the gateway counts `count` open client connections.
async fn wait_for_open(gateway: &GatewayProcess, count: f64) {
    for _ in 0..250 {
        if metric(gateway, OPEN).await == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the gateway never counted {count} open connections:\n{}",
        gateway.log()
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_header_timeout() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), ""));
    let before = metric(&gateway, &closed("header_timeout")).await;
    let started = Instant::now();
    let mut stream = connect(&gateway).await;
    let (answer, closed_at) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(
        answer, "",
        "nothing is answered to a client that sent nothing"
    );
    let open_for = closed_at - started;
    assert!(
        open_for >= Duration::from_millis(900),
        "closed after {open_for:?}"
    );
    assert!(metric(&gateway, &closed("header_timeout")).await > before);
}

#[tokio::test]
async fn a_head_sent_byte_by_byte_is_closed_at_header_timeout() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), ""));
    let stream = connect(&gateway).await;
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let drip = tokio::spawn(async move {
        // Every byte arrives well within read_timeout; the head as a whole never completes.
        for byte in b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: "
            .iter()
            .cycle()
        {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer))
        .await
        .expect("the dripping connection is closed within 5 s")
        .unwrap_or(0);
    drip.abort();
    assert_eq!(read, 0, "no answer, the connection is closed");
    let open_for = started.elapsed();
    assert!(
        open_for >= Duration::from_millis(900),
        "closed after {open_for:?}"
    );
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed_after_keepalive_timeout() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), ""));
    let mut stream = connect(&gateway).await;
    stream
        .write_all(b"GET /_test/status/200 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let (rest, closed_at) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(rest.is_empty() || rest.ends_with('}'), "{rest}");
    let idle_for = closed_at - answered;
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed after {idle_for:?}"
    );
    assert!(metric(&gateway, &closed("idle_timeout")).await >= 1.0);
}

/// A connection in use outlives its first idle deadline: each exchange moves the deadline (the
/// timer armed for an earlier one fires and is armed again), and it closes a whole
/// `keepalive_timeout` after its last exchange.
#[tokio::test]
async fn each_exchange_moves_the_idle_deadline_of_a_keepalive_connection() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), ""));
    let mut stream = connect(&gateway).await;
    let mut buffer = [0u8; 4096];
    let mut answered = Instant::now();
    for exchange in 0..3 {
        if exchange > 0 {
            // Past the first idle deadline (1 s) by the third request, never idle for 1 s.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        stream
            .write_all(b"GET /_test/status/200 HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let n = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "exchange {exchange}: {answer}"
        );
        answered = Instant::now();
    }
    let (rest, closed_at) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(rest.is_empty() || rest.ends_with('}'), "{rest}");
    let idle_for = closed_at - answered;
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed {idle_for:?} after the last exchange"
    );
}

#[tokio::test]
async fn a_short_http10_request_is_answered_on_an_h2c_listener() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), "  h2c: true"));
    let mut stream = connect(&gateway).await;
    // 18 bytes: shorter than the 24-byte HTTP/2 preface the listener looks for.
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_millis(900)).await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
}

#[tokio::test]
async fn a_slow_exchange_is_not_cut_by_the_connection_deadlines() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), ""));
    // The upstream takes longer than header_timeout and keepalive_timeout: over HTTP/1.1 and
    // over one HTTP/2 connection, each request in turn.
    let http1 = common::client()
        .get(gateway.url("/_test/slow/1500"))
        .send()
        .await
        .unwrap();
    assert_eq!(http1.status(), 200);
    let h2c = common::h2c_client();
    for _ in 0..2 {
        let response = h2c
            .get(gateway.url("/_test/slow/1500"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
    }
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_once() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(
        upstream.addr(),
        "  max_connections: 2\n  header_timeout: 30s",
    ));
    // The readiness probes of the test harness are connections too: wait until they are gone.
    wait_for_open(&gateway, 0.0).await;
    let first = connect(&gateway).await;
    let _second = connect(&gateway).await;
    wait_for_open(&gateway, 2.0).await;
    let mut third = connect(&gateway).await;
    let started = Instant::now();
    let (answer, closed_at) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert_eq!(answer, "");
    assert!(closed_at - started < Duration::from_secs(1));
    assert!(metric(&gateway, &closed("max_connections")).await >= 1.0);

    // A place given back is a place for the next client.
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut next = connect(&gateway).await;
        next.write_all(b"GET /_test/status/204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = read_until_closed(&mut next, Duration::from_secs(5)).await;
        if answer.starts_with("HTTP/1.1 204") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a connection was served once one closed");
}

#[tokio::test]
async fn a_body_dripped_below_min_body_rate_gets_408() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr(), "  min_body_rate: 1KiB/s"));
    let mut stream = connect(&gateway).await;
    stream
        .write_all(b"POST /_test/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        while writer.write_all(&[b'x'; 16]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(Duration::from_secs(15), reader.read(&mut buffer))
            .await
            .expect("the gateway answers the dripping body")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    drip.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"client_too_slow\""),
        "{answer}"
    );
}
