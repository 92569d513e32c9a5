//! Integration: header and JSON body transformations in both directions — each operation,
//! framing (Content-Length, chunked), non-JSON and oversize passthrough, HEAD / 204 / 304,
//! compressed upstreams, HTTP/2 downstream, path and query rewriting. Bodies a transform cannot
//! change (every framing, too large, unparsable) are in `transform_refusals.rs`.

mod common;

use common::{client, mocks, GatewayProcess};

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
  - name: orders
    match: {{ path: "/orders/{{id}}" }}
    upstream: api
    auth: none
    response:
      remove_headers: [X-Upstream]
      set_headers: {{ Cache-Control: no-store }}
      append_headers: {{ X-Served-By: portcullis }}
      json:
        remove: [/internal_cost, /items/*/internal_cost]
        rename: {{ /owner: /owner_name }}
        set: {{ /gateway: true }}
        mask: {{ /card_number: 4 }}
  - name: small-limit
    match: {{ path_prefix: /small/ }}
    strip_prefix: true
    upstream: api
    auth: none
    response:
      json: {{ max_body: 100, remove: [/internal_cost] }}
  - name: reject-large
    match: {{ path_prefix: /strict/ }}
    strip_prefix: true
    upstream: api
    auth: none
    response:
      json: {{ max_body: 100, oversize: reject, remove: [/internal_cost] }}
  - name: test-endpoints
    match: {{ path_prefix: /_test/ }}
    upstream: api
    auth: none
    request:
      set_headers: {{ X-From-Gateway: "yes {{request.method}}" }}
      remove_headers: [X-Internal]
      json: {{ remove: [/password], set: {{ /via: gateway }} }}
      rewrite_path: {{ pattern: "^/_test/v2/(.*)$", replacement: "/_test/$1" }}
      add_query: {{ source: portcullis }}
      remove_query: [debug]
    response:
      json: {{ remove: [/internal_cost] }}
"#
    )
}

#[tokio::test]
async fn response_json_operations_and_headers() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let response = client().get(gateway.url("/orders/7")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers.get("x-upstream").is_none());
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-served-by"], "portcullis");
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(body.get("internal_cost").is_none(), "{body}");
    assert!(body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("internal_cost").is_none()));
    assert_eq!(body["owner_name"], "Alice Example");
    assert!(body.get("owner").is_none());
    assert_eq!(body["gateway"], true);
    assert_eq!(body["card_number"], "************1111");
    if let Some(length) = headers.get("content-length") {
        assert_eq!(
            length.to_str().unwrap().parse::<usize>().unwrap(),
            text.len()
        );
    }
}

#[tokio::test]
async fn request_headers_are_set_and_removed() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    // The route sets X-From-Gateway: a client's copy is replaced, never forwarded.
    let response = client()
        .get(gateway.url("/_test/echo"))
        .header("x-internal", "secret")
        .header("x-from-gateway", "spoofed")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["headers"].get("x-internal").is_none(), "{body}");
    assert_eq!(
        body["headers"]["x-from-gateway"],
        serde_json::json!(["yes GET"])
    );
}

#[tokio::test]
async fn request_json_is_transformed_with_length_fixed_and_path_query_rewritten() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let response = client()
        .post(gateway.url("/_test/v2/echo?debug=1&keep=2"))
        .header("content-type", "application/json")
        .body(r#"{"user":"bob","password":"hunter2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/_test/echo?keep=2&source=portcullis");
    let sent: serde_json::Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, serde_json::json!({"user": "bob", "via": "gateway"}));
    let length = echo["body_length"].as_u64().unwrap();
    assert_eq!(length as usize, echo["body"].as_str().unwrap().len());
}

#[tokio::test]
async fn non_json_invalid_json_and_oversize_bodies_pass_unchanged() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let http = client();
    // Non-JSON: byte-exact, including a large binary body.
    let direct = http
        .get(format!("http://{}/_test/bytes/300000", upstream.addr()))
        .send()
        .await
        .unwrap();
    let direct = direct.bytes().await.unwrap();
    let through = http
        .get(gateway.url("/_test/bytes/300000"))
        .send()
        .await
        .unwrap();
    assert_eq!(through.bytes().await.unwrap(), direct);
    // Chunked upstream JSON is transformed too.
    let doc: serde_json::Value = http
        .get(gateway.url("/_test/json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.is_object() || doc.is_array());
    // Larger than max_body: passes through unchanged (internal_cost still there).
    let response = http
        .get(gateway.url("/small/orders/1"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["internal_cost"], "71.20");
    // Larger than max_body with `oversize: reject`: 502.
    let response = http
        .get(gateway.url("/strict/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    // HEAD and 204 go through untouched.
    let head = http.head(gateway.url("/orders/1")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let no_content = http
        .get(gateway.url("/_test/status/204"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_content.status(), 204);
    let not_modified = http
        .get(gateway.url("/_test/status/304"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
}

#[tokio::test]
async fn transformed_bodies_over_http2() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    let h2c = common::h2c_client();
    let response = h2c.get(gateway.url("/orders/9")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["owner_name"], "Alice Example");
    assert!(body.get("internal_cost").is_none());
}

#[tokio::test]
async fn compressed_upstream_bodies_are_never_corrupted() {
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(upstream.addr()));
    // The transforming route asks for identity encoding; this upstream compresses anyway, so
    // the body passes through unchanged (still valid gzip) rather than being mangled.
    let raw = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = raw.get(gateway.url("/_test/gzip")).send().await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let bytes = response.bytes().await.unwrap();
    let mut decoder = flate2::read::GzDecoder::new(&bytes[..]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut decoder, &mut text).unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["internal_cost"], "71.20",
        "compressed body passed through untouched"
    );
    // The upstream was asked for identity encoding on the transforming route.
    let echo: serde_json::Value = raw
        .get(gateway.url("/_test/echo"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["headers"]["accept-encoding"][0], "identity");
}

#[tokio::test]
async fn body_transforms_are_conditioned_on_roles_and_groups() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let text = format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
identity_providers:
  acme: {{ issuer: "{issuer}", jwks_uri: "{jwks}", audiences: [orders-api] }}
upstreams:
  api: {{ targets: ["{upstream}"] }}
routes:
  - name: orders
    match: {{ path: "/orders/{{id}}" }}
    upstream: api
    auth: {{ providers: [acme] }}
    response:
      json:
        remove: [/internal_cost, /items/*/internal_cost]
        unless: {{ group: /finance }}
  - name: partner-view
    match: {{ path: "/partner/orders/{{id}}" }}
    upstream: api
    auth: {{ providers: [acme] }}
    request: {{ rewrite_path: {{ pattern: "^/partner", replacement: "" }} }}
    response:
      json:
        rename: {{ /owner: /customer }}
        set: {{ /viewer: "{{claims.azp}}" }}
        when: {{ realm_role: partner }}
"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
        upstream = upstream.addr(),
    );
    let gateway = GatewayProcess::start(&text);
    let http = client();
    let fetch = |path: &'static str, token: String| {
        let http = http.clone();
        let url = gateway.url(path);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let sales = idp.token("acme").groups(&["/sales"]).mint().unwrap();
    let auditor = idp
        .token("acme")
        .groups(&["/finance/audit"])
        .mint()
        .unwrap();
    assert!(fetch("/orders/1", sales)
        .await
        .get("internal_cost")
        .is_none());
    assert_eq!(
        fetch("/orders/1", auditor).await["internal_cost"],
        "71.20",
        "finance sees the body untouched"
    );
    let partner = idp
        .token("acme")
        .client("partner-portal")
        .realm_roles(&["partner"])
        .mint()
        .unwrap();
    let body = fetch("/partner/orders/1", partner).await;
    assert_eq!(body["customer"], "Alice Example");
    assert_eq!(body["viewer"], "partner-portal");
    let internal = idp.token("acme").realm_roles(&["staff"]).mint().unwrap();
    let body = fetch("/partner/orders/1", internal).await;
    assert_eq!(body["owner"], "Alice Example");
    assert!(body.get("viewer").is_none());
}
