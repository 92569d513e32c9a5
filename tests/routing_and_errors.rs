//! Integration: routing by host, path kind and method with its precedence rule, and every
//! error the gateway produces itself (404, 405, 400, 431, 502, 504) as problem+json with a
//! request id.

mod common;

use common::{client, closed_port, mocks, problem, GatewayProcess};

fn config(upstream: std::net::SocketAddr, dead_port: u16) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
  max_header_size: 4KiB
admin:
  listen: "127.0.0.1:{{admin_port}}"
upstreams:
  api:
    targets: ["{upstream}"]
  slow:
    targets: ["{upstream}"]
    read_timeout: 300ms
  dead:
    targets: ["127.0.0.1:{dead_port}"]
routes:
  - name: host-specific
    match: {{ host: api.example.com, path: /_test/echo }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: host-specific }} }}
  - name: wildcard-host
    match: {{ host: "*.example.org", path: /_test/echo }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: wildcard-host }} }}
  - name: exact
    match: {{ path: /_test/echo, methods: [GET] }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: exact }} }}
  - name: exact-post
    match: {{ path: /_test/echo, methods: [POST] }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: exact-post }} }}
  - name: template
    match: {{ path: "/orders/{{id}}", methods: [GET] }}
    upstream: api
    auth: none
  - name: prefix-short
    match: {{ path_prefix: /_test/ }}
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: prefix-short }} }}
  - name: prefix-stripped
    match: {{ path_prefix: /api/v1/ }}
    strip_prefix: true
    upstream: api
    auth: none
    request: {{ set_headers: {{ X-Route: prefix-stripped }} }}
  - name: only-delete
    match: {{ path: /things, methods: [DELETE, PUT] }}
    upstream: api
    auth: none
  - name: slow
    match: {{ path_prefix: /slow/ }}
    strip_prefix: true
    upstream: slow
    auth: none
  - name: dead
    match: {{ path: /dead }}
    upstream: dead
    auth: none
"#
    )
}

async fn route_of(response: reqwest::Response) -> String {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["headers"]["x-route"][0]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

#[tokio::test]
async fn routes_by_host_path_kind_and_method_with_precedence() {
    let upstream = mocks::upstream("api");
    let dead = closed_port();
    let gateway = GatewayProcess::start(&config(upstream.addr(), dead.port()));
    let http = client();
    let get =
        |host: &'static str, path: &str| http.get(gateway.url(path)).header("host", host).send();
    assert_eq!(
        route_of(get("api.example.com", "/_test/echo").await.unwrap()).await,
        "host-specific"
    );
    assert_eq!(
        route_of(get("API.Example.com:8080", "/_test/echo").await.unwrap()).await,
        "host-specific"
    );
    assert_eq!(
        route_of(get("eu.example.org", "/_test/echo").await.unwrap()).await,
        "wildcard-host"
    );
    assert_eq!(
        route_of(get("other", "/_test/echo").await.unwrap()).await,
        "exact"
    );
    assert_eq!(
        route_of(get("other", "/_test/echo?x=1").await.unwrap()).await,
        "exact",
        "query ignored"
    );
    let post = http
        .post(gateway.url("/_test/echo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(route_of(post).await, "exact-post");
    // PATCH matches neither exact route but the less specific prefix route accepts any method.
    let patch = http.patch(gateway.url("/_test/echo")).send().await.unwrap();
    assert_eq!(route_of(patch).await, "prefix-short");
    assert_eq!(
        route_of(get("other", "/_test/echo/deeper").await.unwrap()).await,
        "prefix-short"
    );
    let order = get("other", "/orders/42").await.unwrap();
    assert_eq!(order.status(), 200);
    let order: serde_json::Value = order.json().await.unwrap();
    assert_eq!(order["id"], "42");
}

#[tokio::test]
async fn strip_prefix_rewrites_the_upstream_path_and_keeps_the_query() {
    let upstream = mocks::upstream("api");
    let dead = closed_port();
    let gateway = GatewayProcess::start(&config(upstream.addr(), dead.port()));
    let response = client()
        .get(gateway.url("/api/v1/_test/echo?a=1&b=2"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["path"], "/_test/echo?a=1&b=2");
    assert_eq!(body["headers"]["x-route"][0], "prefix-stripped");
}

#[tokio::test]
async fn gateway_errors_are_problem_json_with_request_id() {
    let upstream = mocks::upstream("api");
    let dead = closed_port();
    let gateway = GatewayProcess::start(&config(upstream.addr(), dead.port()));
    let http = client();

    let response = http.get(gateway.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["reason"], "no_route");

    let response = http.get(gateway.url("/things")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "PUT, DELETE");
    assert_eq!(problem(response).await["reason"], "method_not_allowed");

    let response = http.get(gateway.url("/_test/../things")).send().await;
    // reqwest normalizes dot segments itself; send the raw path over a socket instead.
    drop(response);
    let raw = raw_request(
        gateway.port,
        "GET /_test/%2e%2e/things HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("path_not_normalized"), "{raw}");

    let response = http
        .get(gateway.url("/_test/echo"))
        .header("x-big", "x".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(problem(response).await["reason"], "headers_too_large");

    let response = http
        .get(gateway.url("/dead?access_token=never-in-a-log-4711"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body = problem(response).await;
    assert_eq!(body["reason"], "upstream_unavailable", "{body}");
    // Pingora's own error line (written as the request ends) names the request without its
    // query.
    let logged = common::wait_until(std::time::Duration::from_secs(5), || {
        gateway.log().contains("GET /dead, Host:")
    });
    let log = gateway.log();
    assert!(logged, "{log}");
    assert!(!log.contains("never-in-a-log-4711"), "{log}");

    let response = http
        .get(gateway.url("/slow/_test/slow/3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(problem(response).await["reason"], "upstream_timeout");
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_reaches_the_upstream() {
    let upstream = mocks::upstream("api");
    let dead = closed_port();
    let gateway = GatewayProcess::start(&config(upstream.addr(), dead.port()));
    let http = client();
    let response = http
        .get(gateway.url("/_test/echo"))
        .header("x-request-id", "trace-abc.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"][0], "trace-abc.1");

    let response = http
        .get(gateway.url("/_test/echo"))
        .header("x-request-id", "bad id\"")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 16);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"][0], generated.as_str());
    assert_eq!(body["headers"]["x-request-id"].as_array().unwrap().len(), 1);
}

/// Sends raw bytes and returns the raw response head and body.
async fn raw_request(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 8192];
    let read = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}
