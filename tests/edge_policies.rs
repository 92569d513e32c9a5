//! Integration: CORS and client IP lists. Preflights are answered before authentication (no
//! token: 204 for an allowed origin, 403 for another origin, method or header); actual responses
//! and the gateway's own 401/429 carry the CORS headers; `client_ips` allow and deny IPv4 and IPv6
//! addresses, from trusted `X-Forwarded-For` only, and follow a reload.

mod common;

use common::mocks::{self, DevIdp};
use common::{client, problem, GatewayProcess};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr, internal_allow: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
admin:
  listen: "127.0.0.1:{{admin_port}}"
trusted_proxies: ["127.0.0.1/32"]
identity_providers:
  acme:
    discovery: "{discovery}"
    audiences: ["orders-api"]
upstreams:
  api:
    targets: ["{upstream}"]
rate_limits:
  two:
    key: client_ip
    rate: 2/min
defaults:
  cors:
    allow_origins: ["https://defaults.example.com"]
routes:
  - name: api
    match: {{ path_prefix: /api/, methods: [GET, DELETE] }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
    rate_limit: two
    cors:
      allow_origins: ["https://app.example.com", "https://*.partners.example.com"]
      allow_headers: [Authorization, Content-Type]
      expose_headers: [X-Request-Id, RateLimit]
      allow_credentials: true
      max_age: 10m
  - name: internal
    match: {{ path_prefix: /internal/ }}
    strip_prefix: true
    upstream: api
    auth: none
    client_ips: {{ allow: [{internal_allow}], deny: ["10.66.0.0/16"] }}
  - name: inherits
    match: {{ path_prefix: /inherits/ }}
    strip_prefix: true
    upstream: api
    auth: none
"#,
        discovery = idp.discovery_url("acme"),
    )
}

/// A GET of `path` from a script on `origin`, with a bearer token or none.
async fn from_origin(
    gateway: &GatewayProcess,
    path: &str,
    origin: &str,
    token: Option<&String>,
) -> reqwest::Response {
    let mut request = client().get(gateway.url(path)).header("origin", origin);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Asserts the value of header `name` (`None`: absent).
fn expect_header(response: &reqwest::Response, name: &str, expected: Option<&str>) {
    assert_eq!(header(response, name).as_deref(), expected, "{name}");
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn preflights_are_answered_before_auth_and_every_answer_carries_cors_headers() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), "\"10.0.0.0/8\""));
    let http = client();
    let preflight = |origin: &str, method: &str, headers: &str| {
        http.request(reqwest::Method::OPTIONS, gateway.url("/api/orders/1"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };

    // No token, and still 204: the preflight never reaches authentication.
    let ok = preflight("https://app.example.com", "DELETE", "authorization")
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    expect_header(
        &ok,
        "access-control-allow-origin",
        Some("https://app.example.com"),
    );
    expect_header(&ok, "access-control-allow-credentials", Some("true"));
    expect_header(&ok, "access-control-allow-methods", Some("GET, DELETE"));
    expect_header(&ok, "access-control-max-age", Some("600"));
    let partner = preflight("https://shop.partners.example.com", "GET", "content-type")
        .await
        .unwrap();
    assert_eq!(partner.status(), 204);
    // A method the route does not serve at all is the route's 405, as for any request.
    let put = preflight("https://app.example.com", "PUT", "")
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        ("https://app.example.com", "GET", "x-secret"),
    ] {
        let refused = preflight(origin, method, headers).await.unwrap();
        assert_eq!(refused.status(), 403, "{origin} {method} {headers}");
        expect_header(&refused, "access-control-allow-origin", None);
        assert_eq!(problem(refused).await["reason"], "cors_preflight_refused");
    }

    // Actual requests: a 401 from the gateway is readable by the script, and so is the upstream's
    // answer and the 429.
    let anonymous = from_origin(&gateway, "/api/orders/1", "https://app.example.com", None).await;
    assert_eq!(anonymous.status(), 401);
    expect_header(
        &anonymous,
        "access-control-allow-origin",
        Some("https://app.example.com"),
    );
    expect_header(&anonymous, "vary", Some("Origin"));
    let token = idp.token("acme").mint().unwrap();
    let allowed = from_origin(
        &gateway,
        "/api/_test/echo",
        "https://app.example.com",
        Some(&token),
    )
    .await;
    assert_eq!(allowed.status(), 200);
    expect_header(
        &allowed,
        "access-control-allow-origin",
        Some("https://app.example.com"),
    );
    expect_header(
        &allowed,
        "access-control-expose-headers",
        Some("X-Request-Id, RateLimit"),
    );
    let other_origin = from_origin(
        &gateway,
        "/api/_test/echo",
        "https://evil.example",
        Some(&token),
    )
    .await;
    expect_header(&other_origin, "access-control-allow-origin", None);
    assert!(header(&other_origin, "vary")
        .unwrap_or_default()
        .contains("Origin"));
    let limited = from_origin(
        &gateway,
        "/api/_test/echo",
        "https://app.example.com",
        Some(&token),
    )
    .await;
    assert_eq!(limited.status(), 429);
    expect_header(
        &limited,
        "access-control-allow-origin",
        Some("https://app.example.com"),
    );

    // `defaults.cors` applies to a route without its own.
    let inherited = from_origin(
        &gateway,
        "/inherits/_test/echo",
        "https://defaults.example.com",
        None,
    )
    .await;
    expect_header(
        &inherited,
        "access-control-allow-origin",
        Some("https://defaults.example.com"),
    );
}

#[tokio::test]
async fn client_ip_lists_use_the_trusted_address_and_follow_a_reload() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let allow = "\"10.0.0.0/8\", \"2001:db8::/32\"";
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), allow));
    let http = client();
    let from = |address: &str| {
        http.get(gateway.url("/internal/_test/echo"))
            .header("x-forwarded-for", address)
            .send()
    };
    assert_eq!(from("10.1.2.3").await.unwrap().status(), 200);
    assert_eq!(from("2001:db8::5").await.unwrap().status(), 200);
    let outside = from("192.0.2.1").await.unwrap();
    assert_eq!(outside.status(), 403);
    assert_eq!(problem(outside).await["reason"], "ip_not_allowed");
    assert_eq!(from("10.66.1.1").await.unwrap().status(), 403, "deny wins");
    assert_eq!(from("2001:db9::5").await.unwrap().status(), 403);
    // The right-most untrusted address counts: a spoofed left-most entry changes nothing.
    assert_eq!(from("10.1.2.3, 192.0.2.1").await.unwrap().status(), 403);

    gateway.write_config(&config(&idp, upstream.addr(), "\"192.0.2.0/24\""));
    let reloaded = http
        .post(gateway.admin_url("/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    assert_eq!(from("192.0.2.1").await.unwrap().status(), 200);
    assert_eq!(from("10.1.2.3").await.unwrap().status(), 403);
}
