//! Integration: requests shaped to reach an upstream resource past the route that should
//! decide on them — paths and hosts the upstream reads differently than the router, header
//! name variants, proxy headers from untrusted peers, ambiguous framing — over raw HTTP/1.1
//! sockets (a client library would normalize them first) and over h2c.

mod common;

use common::{mocks, GatewayProcess};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
  read_timeout: 1s
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: secure-host
    match: {{ host: secure.example.com, path: /_test/echo }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: secure-host }} }}
  - name: echo
    match: {{ path: /_test/echo }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: echo, X-User-Id: "gateway-set" }} }}
"#
    )
}

/// Sends `request` as written and returns everything the gateway answers until it closes the
/// connection or `Content-Length` bytes of body have arrived.
async fn raw(port: u16, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the gateway answers within 10 s")
            .unwrap_or(0);
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// The JSON body of a response (the echo document, or a problem).
fn body(response: &str) -> serde_json::Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn paths_are_normalized_before_routing_and_forwarded_normalized() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    for variant in [
        "//_test/echo",
        "/%5ftest/echo",
        "/_test//echo",
        "/%5F%74est/echo",
    ] {
        let response = raw(gateway.port, &get(variant, "api.example.com", "")).await;
        assert_eq!(status(&response), 200, "{variant}: {response}");
        let echo = body(&response);
        assert_eq!(echo["path"], "/_test/echo", "{variant}");
        assert_eq!(echo["headers"]["x-route"][0], "echo", "{variant}");
    }
    for refused in [
        "/x/..;/_test/echo",
        "/x/%2e%2e/_test/echo",
        "/_test/echo/..",
        "/%zz",
    ] {
        let response = raw(gateway.port, &get(refused, "api.example.com", "")).await;
        assert_eq!(status(&response), 400, "{refused}: {response}");
        assert_eq!(
            body(&response)["reason"],
            "path_not_normalized",
            "{refused}"
        );
    }
    assert_eq!(
        upstream.requests(),
        4,
        "no refused path reached the upstream"
    );
}

#[tokio::test]
async fn paths_over_h2c_are_normalized_too() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let h2c = common::h2c_client();
    let response = h2c.get(gateway.url("/%5ftest//echo")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/_test/echo");
    let refused = h2c
        .get(gateway.url("/x/..;/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn hosts_are_normalized_and_invalid_ones_refused() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    for host in [
        "secure.example.com.",
        "SECURE.Example.COM",
        "secure.example.com.:8080",
    ] {
        let response = raw(gateway.port, &get("/_test/echo", host, "")).await;
        assert_eq!(status(&response), 200, "{host}: {response}");
        let echo = body(&response);
        assert_eq!(echo["headers"]["x-route"][0], "secure-host", "{host}");
        let forwarded = echo["headers"]["host"][0].as_str().unwrap();
        assert!(
            forwarded.starts_with("secure.example.com"),
            "{host} -> {forwarded}"
        );
    }
    for host in [
        "a b.example.com",
        "a,b.example.com",
        "secure.example.com:http",
        "[::1",
    ] {
        let response = raw(gateway.port, &get("/_test/echo", host, "")).await;
        assert_eq!(status(&response), 400, "{host}: {response}");
        assert_eq!(body(&response)["reason"], "invalid_host", "{host}");
    }
    let two_hosts = "GET /_test/echo HTTP/1.1\r\nHost: a.example.com\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(gateway.port, two_hosts).await), 400);
}

#[tokio::test]
async fn spoofed_identity_and_proxy_headers_never_reach_the_upstream() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let spoofing = "X_User_Id: mallory\r\nX-User_Id: mallory\r\nX_Forwarded_For: 1.2.3.4\r\n\
                    X-Real-IP: 1.2.3.4\r\nForwarded: for=1.2.3.4\r\nX_Unrelated: kept\r\n";
    let response = raw(
        gateway.port,
        &get("/_test/echo", "api.example.com", spoofing),
    )
    .await;
    assert_eq!(status(&response), 200, "{response}");
    let headers = &body(&response)["headers"];
    assert_eq!(headers["x-user-id"], serde_json::json!(["gateway-set"]));
    for spoofed in [
        "x_user_id",
        "x-user_id",
        "x_forwarded_for",
        "x-real-ip",
        "forwarded",
    ] {
        assert!(
            headers.get(spoofed).is_none(),
            "{spoofed} reached the upstream: {headers}"
        );
    }
    assert_eq!(
        headers["x_unrelated"],
        serde_json::json!(["kept"]),
        "other underscore headers pass"
    );
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_a_stalled_body_is_the_clients_timeout() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let nominated = get("/_test/echo", "api.example.com", "Connection: Host\r\n");
    let response = raw(gateway.port, &nominated).await;
    assert_eq!(status(&response), 400, "{response}");
    assert_eq!(body(&response)["reason"], "bad_connection_header");
    for lengths in [
        "Content-Length: 3,3\r\n",
        "Content-Length: 3\r\nContent-Length: 3\r\n",
    ] {
        let request = format!(
            "POST /_test/echo HTTP/1.1\r\nHost: api.example.com\r\n{lengths}Connection: close\r\n\r\nabc"
        );
        let response = raw(gateway.port, &request).await;
        assert_eq!(status(&response), 400, "{lengths}: {response}");
        assert!(response.contains("bad_content_length"), "{response}");
    }
    // Announces 100 bytes, sends 3 and stalls: server.read_timeout is 1 s.
    let stalled =
        "POST /_test/echo HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 100\r\n\r\nabc";
    let response = raw(gateway.port, stalled).await;
    assert_eq!(status(&response), 408, "{response}");
    assert_eq!(body(&response)["reason"], "client_timeout");
}
