//! Integration: a JSON body a route transforms is transformed or refused, never passed through
//! unchanged by accident — request bodies in every framing (Content-Length, chunked, HTTP/2 DATA
//! without a length), bodies larger than `max_body`, compressed request bodies, and bodies that
//! are not exactly one JSON document (BOM, trailing bytes, lone surrogates) in both directions,
//! over HTTP/1.1 and h2c.

mod common;

use common::{client, mocks, problem, GatewayProcess};

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: test-endpoints
    match: {{ path_prefix: /_test/ }}
    upstream: api
    auth: none
    request:
      json: {{ remove: [/password], set: {{ /via: gateway }} }}
  - name: tight-request
    match: {{ path_prefix: /tight/ }}
    strip_prefix: true
    upstream: api
    auth: none
    request:
      json: {{ max_body: 64, remove: [/password] }}
"#
    )
}

/// HTTP/1.1 and h2c (prior knowledge) clients.
fn both_protocols() -> [(&'static str, reqwest::Client); 2] {
    let h2c = common::h2c_client();
    [("HTTP/1.1", client()), ("h2c", h2c)]
}

/// A request body sent as a stream: chunked on HTTP/1.1, DATA frames without `content-length`
/// on HTTP/2.
fn streamed(text: &str) -> reqwest::Body {
    let (first, second) = text.split_at(text.len() / 2);
    let pieces = vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(first.to_owned())),
        Ok(bytes::Bytes::from(second.to_owned())),
    ];
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

/// What the echo upstream received as the request body.
async fn echoed_body(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    echo["body"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn request_json_is_transformed_or_refused_in_every_framing() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let document = r#"{"user":"bob","password":"hunter2"}"#;
    let large = format!(r#"{{"password":"hunter2","pad":"{}"}}"#, "x".repeat(100));
    for (protocol, http) in both_protocols() {
        // Streamed (chunked / HTTP/2 without content-length): transformed like a sized body.
        let response = http
            .post(gateway.url("/_test/echo"))
            .header("content-type", "application/json")
            .body(streamed(document))
            .send()
            .await
            .unwrap();
        let sent: serde_json::Value = serde_json::from_str(&echoed_body(response).await).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"user": "bob", "via": "gateway"}),
            "{protocol}"
        );
        // Larger than max_body on a route that removes a field: 413 in every framing.
        for body in [reqwest::Body::from(large.clone()), streamed(&large)] {
            let response = http
                .post(gateway.url("/tight/_test/echo"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 413, "{protocol}");
            assert_eq!(problem(response).await["reason"], "request_body_too_large");
        }
        // A compressed JSON body cannot be transformed: 415, never forwarded as it is.
        let response = http
            .post(gateway.url("/_test/echo"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(document)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{protocol}");
        assert_eq!(problem(response).await["reason"], "request_body_encoded");
    }
}

/// An upstream that answers every request with `200`, `application/json` and the body
/// `bodies` gives for the request path (read off the request line), then closes.
fn fixed_body_upstream(bodies: fn(&str) -> Vec<u8>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split(' ').nth(1).unwrap_or("/");
                let body = bodies(path);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    address
}

/// `{"internal_cost":..,"deep":[[..200 levels..]]}` — valid, but beyond serde_json's default
/// recursion limit.
fn deep_document(field: &str) -> String {
    format!(
        r#"{{"{field}":"secret","deep":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    )
}

fn upstream_bodies(path: &str) -> Vec<u8> {
    let secret = br#"{"internal_cost":"71.20"}"#;
    match path.rsplit('/').next().unwrap_or_default() {
        "bom" => [b"\xEF\xBB\xBF".as_slice(), secret].concat(),
        "trailing" => [secret.as_slice(), b" {}"].concat(),
        "surrogate" => br#"{"internal_cost":"71.20","name":"\ud800"}"#.to_vec(),
        _ => deep_document("internal_cost").into_bytes(),
    }
}

#[tokio::test]
async fn bodies_a_transform_cannot_parse_are_refused_unless_the_route_passes_them() {
    let echo = mocks::upstream("api");
    let fixed = fixed_body_upstream(upstream_bodies);
    let echo_addr = echo.addr();
    let text = format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
upstreams:
  api: {{ targets: ["{echo_addr}"] }}
  fixed: {{ targets: ["{fixed}"] }}
routes:
  - name: requests
    match: {{ path_prefix: /_test/ }}
    upstream: api
    auth: none
    request: {{ json: {{ remove: [/password] }} }}
  - name: guarded
    match: {{ path_prefix: /guarded/ }}
    upstream: fixed
    auth: none
    response: {{ json: {{ remove: [/internal_cost] }} }}
  - name: lenient
    match: {{ path_prefix: /lenient/ }}
    upstream: fixed
    auth: none
    response: {{ json: {{ remove: [/internal_cost], on_invalid: pass }} }}
"#
    );
    let gateway = GatewayProcess::start(&text);
    let invalid_requests: [&[u8]; 3] = [
        b"\xEF\xBB\xBF{\"password\":\"hunter2\"}",
        b"{\"password\":\"hunter2\"} {}",
        br#"{"password":"hunter2","name":"\ud800"}"#,
    ];
    for (protocol, http) in both_protocols() {
        // Requests: unparsable bodies are refused (400), a deep valid one is transformed.
        for body in invalid_requests {
            let response = http
                .post(gateway.url("/_test/echo"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{protocol} {body:?}");
            assert_eq!(problem(response).await["reason"], "request_body_invalid");
        }
        let response = http
            .post(gateway.url("/_test/echo"))
            .header("content-type", "application/json")
            .body(deep_document("password"))
            .send()
            .await
            .unwrap();
        let sent = echoed_body(response).await;
        assert!(
            !sent.contains("password") && sent.contains("deep"),
            "{protocol}"
        );
        // Numbers keep their digits (no trip through f64).
        let response = http
            .post(gateway.url("/_test/echo"))
            .header("content-type", "application/json")
            .body(r#"{"password":"x","id":123456789012345678901234567890,"p":0.10000000000000000555}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            echoed_body(response).await,
            r#"{"id":123456789012345678901234567890,"p":0.10000000000000000555}"#,
            "{protocol}"
        );
        // Responses: a deep valid body is transformed; an unparsable one on a route that
        // removes fields is cut off (never a complete body with the field)...
        let deep = http.get(gateway.url("/guarded/deep")).send().await.unwrap();
        let deep = deep.text().await.unwrap();
        assert!(
            !deep.contains("internal_cost") && deep.contains("deep"),
            "{protocol}"
        );
        for path in ["/guarded/bom", "/guarded/trailing", "/guarded/surrogate"] {
            match http.get(gateway.url(path)).send().await {
                // The head had not left yet: a real 502.
                Ok(response) if response.status() == 502 => {
                    let body = problem(response).await;
                    assert_eq!(body["reason"], "response_body_refused", "{protocol} {path}");
                }
                // The head had left: the response must end unfinished.
                Ok(response) => {
                    let outcome = response.bytes().await;
                    assert!(outcome.is_err(), "{protocol} {path}: {outcome:?}");
                }
                Err(_) => {}
            }
        }
        // ...and passes unchanged where the route chooses `on_invalid: pass`.
        let passed = http
            .get(gateway.url("/lenient/trailing"))
            .send()
            .await
            .unwrap();
        assert_eq!(passed.bytes().await.unwrap(), upstream_bodies("/trailing"));
    }
}
