//! Integration: route authorization from Keycloak roles, groups, scopes and claims — a table of
//! tokens × routes × methods — and the verified identity passed upstream (spoofed identity
//! headers stripped, missing claims omitted, claims header, Authorization removal).

mod common;

use base64::Engine;
use common::mocks::{self, DevIdp};
use common::{client, problem, GatewayProcess};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
identity_providers:
  acme:
    issuer: "{issuer}"
    jwks_uri: "{jwks}"
    audiences: ["orders-api"]
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    upstream: api
    auth:
      providers: [acme]
      require:
        any:
          - realm_role: reader
          - client_role: {{ client: orders-api, role: "orders:read" }}
          - scope: orders.read
      methods:
        POST: {{ all: [ {{ realm_role: writer }}, {{ group: /engineering }}, {{ not: {{ claim: {{ path: email_verified, equals: false }} }} }} ] }}
        DELETE: {{ scope: orders.admin }}
    request:
      set_headers:
        X-User-Id: "{{claims.sub}}"
        X-User-Groups: "{{claims.groups}}"
        X-Roles: "{{claims.realm_access.roles}}"
        X-Tenant: "{{claims.tenant.id}}"
      remove_headers: [Authorization]
      claims_header: X-Claims
  - name: echo
    match: {{ path_prefix: /echo/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme], require: {{ realm_role: reader }} }}
    request:
      set_headers:
        X-User-Id: "{{claims.sub}}"
        X-User-Groups: "{{claims.groups}}"
        X-Roles: "{{claims.realm_access.roles}}"
        X-Tenant: "{{claims.tenant.id}}"
      remove_headers: [Authorization]
      claims_header: X-Claims
  - name: nested-claims
    match: {{ path_prefix: /tiers/ }}
    strip_prefix: true
    upstream: api
    auth:
      providers: [acme]
      require: {{ claim: {{ path: subscriptions.plan, in: [gold, platinum] }} }}
  - name: public-or-personal
    match: {{ path_prefix: /maybe/ }}
    strip_prefix: true
    upstream: api
    auth: optional
    request:
      set_headers: {{ X-User-Id: "{{claims.sub}}" }}
"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
    )
}

#[tokio::test]
async fn rule_matrix_of_tokens_routes_and_methods() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let reader = idp.token("acme").realm_roles(&["reader"]).mint().unwrap();
    let client_role = idp
        .token("acme")
        .client_roles("orders-api", &["orders:read"])
        .mint()
        .unwrap();
    let other_client_role = idp
        .token("acme")
        .client_roles("billing", &["orders:read"])
        .mint()
        .unwrap();
    let odd_scope = idp
        .token("acme")
        .scope("  openid\torders.read   profile ")
        .mint()
        .unwrap();
    let writer_engineer = idp
        .token("acme")
        .realm_roles(&["reader", "writer"])
        .groups(&["/engineering/backend"])
        .mint()
        .unwrap();
    let writer_bare_group = idp
        .token("acme")
        .realm_roles(&["reader", "writer"])
        .groups(&["engineering"])
        .mint()
        .unwrap();
    let writer_unverified = idp
        .token("acme")
        .realm_roles(&["reader", "writer"])
        .groups(&["/engineering"])
        .claim("email_verified", false)
        .mint()
        .unwrap();
    let writer_wrong_group = idp
        .token("acme")
        .realm_roles(&["reader", "writer"])
        .groups(&["/engineering-ops"])
        .mint()
        .unwrap();
    let gold = idp
        .token("acme")
        .claim(
            "subscriptions",
            serde_json::json!([{"plan": "basic"}, {"plan": "gold"}]),
        )
        .mint()
        .unwrap();
    let basic = idp
        .token("acme")
        .claim("subscriptions", serde_json::json!([{"plan": "basic"}]))
        .mint()
        .unwrap();
    let nobody = idp.token("acme").mint().unwrap();

    let cases: Vec<(&str, &str, &str, u16)> = vec![
        ("reader", "GET", "/orders/1", 200),
        ("client_role", "GET", "/orders/1", 200),
        ("other_client_role", "GET", "/orders/1", 403),
        ("odd_scope", "GET", "/orders/1", 200),
        ("nobody", "GET", "/orders/1", 403),
        ("reader", "POST", "/orders", 403),
        ("writer_engineer", "POST", "/orders", 201),
        ("writer_bare_group", "POST", "/orders", 201),
        ("writer_unverified", "POST", "/orders", 403),
        ("writer_wrong_group", "POST", "/orders", 403),
        ("writer_engineer", "DELETE", "/orders/1", 403),
        ("gold", "GET", "/tiers/_test/echo", 200),
        ("basic", "GET", "/tiers/_test/echo", 403),
    ];
    let tokens = [
        ("reader", &reader),
        ("client_role", &client_role),
        ("other_client_role", &other_client_role),
        ("odd_scope", &odd_scope),
        ("writer_engineer", &writer_engineer),
        ("writer_bare_group", &writer_bare_group),
        ("writer_unverified", &writer_unverified),
        ("writer_wrong_group", &writer_wrong_group),
        ("gold", &gold),
        ("basic", &basic),
        ("nobody", &nobody),
    ];
    let http = client();
    for (who, method, path, expected) in cases {
        let token = tokens.iter().find(|(name, _)| *name == who).unwrap().1;
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = http
            .request(method.clone(), gateway.url(path))
            .bearer_auth(token);
        if method == reqwest::Method::POST {
            request = request
                .header("content-type", "application/json")
                .body("{\"item\":1}");
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            expected,
            "{who} {method} {path}"
        );
        if expected == 403 {
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                challenge.contains("error=\"insufficient_scope\""),
                "{challenge}"
            );
            let body = problem(response).await;
            assert_eq!(body["reason"], "insufficient_scope");
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("this route requires"),
                "{body}"
            );
        }
    }
    // A missing scope is named in the challenge.
    let response = http
        .delete(gateway.url("/orders/1"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("scope=\"orders.admin\""));
    // 401 stays for authentication failures: no token, or a bad one.
    assert_eq!(
        http.get(gateway.url("/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let expired = idp
        .token("acme")
        .realm_roles(&["reader"])
        .expired()
        .mint()
        .unwrap();
    assert_eq!(
        http.get(gateway.url("/orders/1"))
            .bearer_auth(&expired)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn identity_headers_are_set_from_claims_and_never_spoofed() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let token = idp
        .token("acme")
        .subject("user-7")
        .realm_roles(&["reader", "auditor"])
        .groups(&["/engineering", "/finance/audit"])
        .mint()
        .unwrap();
    let response = client()
        .get(gateway.url("/echo/_test/echo"))
        .bearer_auth(&token)
        .header("x-user-id", "admin")
        .header("x-tenant", "spoofed")
        .header("x-claims", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let headers = &body["headers"];
    assert_eq!(headers["x-user-id"], serde_json::json!(["user-7"]));
    assert_eq!(headers["x-user-groups"][0], "/engineering,/finance/audit");
    assert_eq!(headers["x-roles"][0], "reader,auditor");
    assert!(
        headers.get("x-tenant").is_none(),
        "a missing claim omits the header: {headers}"
    );
    assert!(
        headers.get("authorization").is_none(),
        "Authorization removed"
    );
    let encoded = headers["x-claims"][0].as_str().unwrap();
    assert_eq!(headers["x-claims"].as_array().unwrap().len(), 1);
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "user-7");
}

#[tokio::test]
async fn optional_auth_with_and_without_a_token() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let http = client();
    let anonymous = http
        .get(gateway.url("/maybe/_test/echo"))
        .header("x-user-id", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert!(body["headers"].get("x-user-id").is_none(), "{body}");
    let token = idp.token("acme").subject("u-1").mint().unwrap();
    let body: serde_json::Value = http
        .get(gateway.url("/maybe/_test/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["headers"]["x-user-id"][0], "u-1");
    let bad = idp.token("acme").expired().mint().unwrap();
    let response = http
        .get(gateway.url("/maybe/_test/echo"))
        .bearer_auth(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a bad token is refused even where none is needed"
    );
}
