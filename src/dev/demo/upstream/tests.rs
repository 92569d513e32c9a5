//! Tests of [`DemoUpstream`]: each starts one on port 0 and talks to it like a client, over a
//! raw TCP stream (HTTP/1.1) or reqwest (HTTP/2 prior knowledge).

use super::DemoUpstream;
use std::net::SocketAddr;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A response as read off the wire.
struct RawResponse {
    status: u16,
    /// Names lowercased, in the order received.
    headers: Vec<(String, String)>,
    /// Decoded from chunked transfer-encoding when it was used.
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Reads one response: status line, headers, then a body delimited by Content-Length, chunked
/// encoding, or the end of the connection.
async fn read_response(reader: &mut (impl AsyncBufRead + Unpin)) -> RawResponse {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = response.header("content-length") {
        let mut body = vec![0; length.parse().unwrap()];
        reader.read_exact(&mut body).await.unwrap();
        response.body = body;
    } else if response.header("transfer-encoding") == Some("chunked") {
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if ![204, 304].contains(&status) {
        reader.read_to_end(&mut response.body).await.unwrap();
    }
    response
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a new
/// connection, with `Connection: close`, and reads the response.
async fn exchange(address: SocketAddr, head: &str, body: &[u8]) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{head}\r\nHost: upstream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    read_response(&mut BufReader::new(stream)).await
}

async fn get(address: SocketAddr, path: &str) -> RawResponse {
    exchange(address, &format!("GET {path} HTTP/1.1"), b"").await
}

fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index % 256) as u8).collect()
}

const ORDER_42: &str = r#"{"id":"42","owner":"Alice Example","status":"shipped","total":"129.90","currency":"EUR","internal_cost":"71.20","card_number":"4111111111111111","items":[{"sku":"A-1","qty":2,"price":"39.95","internal_cost":"21.00"},{"sku":"B-7","qty":1,"price":"50.00","internal_cost":"29.20"}]}"#;

#[tokio::test]
async fn status_and_order_carry_the_upstream_name() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let status = get(upstream.addr(), "/status").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("x-upstream"), Some("alpha"));
    assert_eq!(status.header("content-type"), Some("application/json"));
    assert_eq!(status.body, br#"{"status":"ok","upstream":"alpha"}"#);

    let order = get(upstream.addr(), "/orders/42").await;
    assert_eq!(order.status, 200);
    assert_eq!(order.header("x-upstream"), Some("alpha"));
    assert_eq!(String::from_utf8(order.body).unwrap(), ORDER_42);
    let odd_id = get(upstream.addr(), "/orders/a%22b").await.json();
    assert_eq!(odd_id["id"], "a%22b");
    assert_eq!(get(upstream.addr(), "/me").await.status, 200);
    assert_eq!(get(upstream.addr(), "/reports/q3").await.status, 200);
    assert_eq!(upstream.requests(), 5);
}

#[tokio::test]
async fn post_orders_creates_an_order_or_rejects_invalid_json() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let created = exchange(
        upstream.addr(),
        "POST /orders HTTP/1.1",
        br#"{"sku":"A-1"}"#,
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("/orders/1001"));
    let order = created.json();
    assert_eq!(
        (&order["id"], &order["sku"]),
        (&"1001".into(), &"A-1".into())
    );
    let invalid = exchange(upstream.addr(), "POST /orders HTTP/1.1", b"{nope").await;
    assert_eq!(invalid.status, 400);
    assert!(invalid.json()["error"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
}

#[tokio::test]
async fn echo_describes_the_request_as_received() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let head = "PUT /_test/echo/deeper?b=2&a=%20 HTTP/1.1\r\nX-One: 1\r\nX-Two: two\r\nX-One: 2";
    let echo = exchange(upstream.addr(), head, b"hello").await;
    assert_eq!(echo.status, 200);
    let text = String::from_utf8(echo.body.clone()).unwrap();
    let echo = echo.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/_test/echo/deeper?b=2&a=%20");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["x-one"], serde_json::json!(["1", "2"]));
    assert_eq!(echo["headers"]["host"], serde_json::json!(["upstream"]));
    assert!(text.find("\"x-one\"").unwrap() < text.find("\"x-two\"").unwrap());
    assert_eq!(
        (echo["body_length"].as_u64(), echo["body"].as_str()),
        (Some(5), Some("hello"))
    );

    let large = exchange(
        upstream.addr(),
        "POST /_test/echo HTTP/1.1",
        &pattern(70_000),
    )
    .await;
    assert_eq!(large.json()["body_length"], 70_000);
    assert!(large.json()["body"].is_null());
}

#[tokio::test]
async fn bytes_stream_with_a_length_and_chunked_without() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let sized = get(upstream.addr(), "/_test/bytes/200000").await;
    assert_eq!(sized.status, 200);
    assert_eq!(sized.header("content-length"), Some("200000"));
    assert_eq!(sized.body, pattern(200_000));

    let chunked = get(upstream.addr(), "/_test/chunked/150001").await;
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.header("content-length"), None);
    assert_eq!(chunked.body, pattern(150_001));
    assert_eq!(get(upstream.addr(), "/_test/bytes/0").await.body.len(), 0);
    assert_eq!(get(upstream.addr(), "/_test/bytes/lots").await.status, 400);
}

#[tokio::test]
async fn upload_counts_and_sums_what_it_received() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let body = pattern(300_000);
    let checksum: u64 = body.iter().map(|byte| u64::from(*byte)).sum();
    let reply = exchange(upstream.addr(), "POST /_test/upload HTTP/1.1", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"received": 300_000, "checksum": checksum})
    );
}

#[tokio::test]
async fn status_slow_gzip_json_and_not_found() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let teapot = get(upstream.addr(), "/_test/status/418").await;
    assert_eq!(
        (teapot.status, teapot.json()),
        (418, serde_json::json!({"status": 418}))
    );
    let no_content = get(upstream.addr(), "/_test/status/204").await;
    assert_eq!((no_content.status, no_content.body.len()), (204, 0));
    assert_eq!(get(upstream.addr(), "/_test/status/99").await.status, 400);

    let started = std::time::Instant::now();
    assert_eq!(get(upstream.addr(), "/_test/slow/30").await.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(30));

    let gzip = get(upstream.addr(), "/_test/gzip").await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    let mut decoded = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gzip.body[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, ORDER_42.replace(r#""42""#, r#""gzip""#));

    let json = get(upstream.addr(), "/_test/json").await;
    assert_eq!(json.header("transfer-encoding"), Some("chunked"));
    assert!(
        (9_000..12_000).contains(&json.body.len()),
        "{}",
        json.body.len()
    );
    assert!(json.json()["items"][3]["supplier"]["ratings"].is_array());

    for (head, path) in [
        ("GET", "/nowhere"),
        ("POST", "/status"),
        ("GET", "/orders/1/x"),
    ] {
        let missing = exchange(upstream.addr(), &format!("{head} {path} HTTP/1.1"), b"").await;
        assert_eq!(missing.status, 404, "{head} {path}");
        assert_eq!(missing.header("x-upstream"), Some("alpha"));
        assert_eq!(missing.json(), serde_json::json!({"error": "not found"}));
    }
}

#[tokio::test]
async fn keeps_http1_connections_alive() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let stream = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .unwrap();
    let mut stream = BufReader::new(stream);
    for _ in 0..3 {
        let request = "GET /status HTTP/1.1\r\nHost: upstream\r\n\r\n";
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await.status, 200);
    }
    assert_eq!(upstream.requests(), 3);
}

#[tokio::test]
async fn speaks_http2_with_prior_knowledge() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/_test/echo", upstream.addr());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.headers()["x-upstream"], "alpha");
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (&echo["version"], &echo["path"]),
        (&"HTTP/2.0".into(), &"/_test/echo".into())
    );
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let upstream = DemoUpstream::start("127.0.0.1:0", "alpha").unwrap();
    let address = upstream.addr();
    assert_eq!(get(address, "/status").await.status, 200);
    upstream.shutdown_and_wait().await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[test]
fn background_thread_serves_synchronous_callers() {
    use std::io::{Read, Write};
    assert!(
        DemoUpstream::start("127.0.0.1:0", "alpha").is_err(),
        "no runtime here"
    );
    let bad_name = DemoUpstream::start_in_background_thread("127.0.0.1:0", "bad\nname");
    assert_eq!(
        bad_name.err().map(|error| error.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );

    let upstream = DemoUpstream::start_in_background_thread("127.0.0.1:0", "beta").unwrap();
    let address = upstream.addr();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("x-upstream: beta\r\n"), "{response}");
    assert!(
        response.ends_with(r#"{"status":"ok","upstream":"beta"}"#),
        "{response}"
    );
    assert_eq!(upstream.requests(), 1);
    upstream.shutdown();
    assert!(std::net::TcpStream::connect(address).is_err());
}
