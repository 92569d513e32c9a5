//! Integration: token introspection (RFC 7662) on routes with `auth.introspect: true`, against
//! the development identity provider: an active token passes and its answer is cached, a revoked
//! token or one whose session ended is refused (401 `token_revoked`) while a plain route still
//! accepts it, concurrent requests with one token make one call, and an endpoint that fails
//! answers 503 `introspection_unavailable`.

mod common;

use common::mocks::{self, DevIdp};
use common::{client, problem, GatewayProcess};
use futures_util::future::join_all;
use portcullis::dev::identity_provider::{Outage, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET};
use std::time::{Duration, Instant};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
identity_providers:
  acme:
    discovery: "{discovery}"
    audiences: ["orders-api"]
    client: {{ id: {GATEWAY_CLIENT_ID}, secret: "{GATEWAY_CLIENT_SECRET}" }}
    introspection: {{ cache_ttl: 2s }}
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: checked
    match: {{ path_prefix: /checked/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme], introspect: true }}
  - name: plain
    match: {{ path_prefix: /plain/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
"#,
        discovery = idp.discovery_url("acme"),
    )
}

async fn status(gateway: &GatewayProcess, path: &str, token: &str) -> u16 {
    let response = client()
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Polls until `path` answers `expected` for `token` (the cache's TTL is 2 s).
async fn until_status(gateway: &GatewayProcess, path: &str, token: &str, expected: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(gateway, path, token).await != expected {
        assert!(
            Instant::now() < deadline,
            "{path} never answered {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user token from the realm's password grant: it carries a live SSO session's `sid`.
async fn password_grant_token(idp: &DevIdp) -> (String, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "password"),
            ("client_id", GATEWAY_CLIENT_ID),
            ("client_secret", GATEWAY_CLIENT_SECRET),
            ("username", "alice"),
            ("password", "alice"),
        ])
        .finish();
    let answer: serde_json::Value = client()
        .post(format!(
            "{}/protocol/openid-connect/token",
            idp.issuer("acme")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let sid = answer["session_state"].as_str().unwrap().to_owned();
    (token, sid)
}

#[tokio::test]
async fn active_tokens_pass_revoked_ones_stop_and_answers_are_cached() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let builder = idp.token("acme");
    let jti = builder.claims()["jti"].as_str().unwrap().to_owned();
    let token = builder.mint().unwrap();

    assert_eq!(status(&gateway, "/checked/_test/echo", &token).await, 200);
    assert_eq!(idp.introspection_requests("acme"), 1);
    assert_eq!(status(&gateway, "/checked/_test/echo", &token).await, 200);
    assert_eq!(
        idp.introspection_requests("acme"),
        1,
        "the answer is cached"
    );

    idp.revoke_token("acme", &jti);
    until_status(&gateway, "/checked/_test/echo", &token, 401).await;
    let refused = client()
        .get(gateway.url("/checked/_test/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await["reason"], "token_revoked");
    assert_eq!(
        status(&gateway, "/plain/_test/echo", &token).await,
        200,
        "no introspection there"
    );

    // A user's session ends at the provider: its token stops on the introspecting route.
    let (user_token, sid) = password_grant_token(&idp).await;
    assert_eq!(
        status(&gateway, "/checked/_test/echo", &user_token).await,
        200
    );
    idp.end_session("acme", &sid).await;
    until_status(&gateway, "/checked/_test/echo", &user_token, 401).await;
    assert_eq!(
        status(&gateway, "/plain/_test/echo", &user_token).await,
        200
    );
}

#[tokio::test]
async fn one_call_per_token_in_flight_and_a_failing_endpoint_fails_closed() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let warm = idp.token("acme").mint().unwrap();
    assert_eq!(status(&gateway, "/checked/_test/echo", &warm).await, 200);

    idp.set_latency(Duration::from_millis(200));
    let token = idp.token("acme").mint().unwrap();
    let before = idp.introspection_requests("acme");
    let statuses = join_all((0..10).map(|_| status(&gateway, "/checked/_test/echo", &token))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        idp.introspection_requests("acme") - before,
        1,
        "one call for ten requests"
    );
    idp.set_latency(Duration::ZERO);

    idp.set_outage(Some(Outage::Unavailable));
    let fresh = idp.token("acme").mint().unwrap();
    let unavailable = client()
        .get(gateway.url("/checked/_test/echo"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    assert!(unavailable.headers().get("retry-after").is_some());
    assert_eq!(
        problem(unavailable).await["reason"],
        "introspection_unavailable"
    );
    assert_eq!(
        status(&gateway, "/plain/_test/echo", &fresh).await,
        200,
        "keys are cached"
    );
    idp.set_outage(None);
    assert_eq!(status(&gateway, "/checked/_test/echo", &fresh).await, 200);
}

#[tokio::test]
async fn opaque_tokens_are_introspected_instead_of_verified() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let text = config(&idp, upstream.addr())
        .replace(
            "    introspection: { cache_ttl: 2s }",
            "    introspection: { cache_ttl: 2s }\n    opaque_tokens: true",
        )
        .replace(
            "    auth: { providers: [acme], introspect: true }",
            "    auth: { providers: [acme], introspect: true, require: { realm_role: reader } }\n    request: { set_headers: { X-User: \"{claims.sub}\" } }",
        );
    let gateway = GatewayProcess::start(&text);
    let reader = idp
        .token("acme")
        .subject("opaque-reader")
        .realm_roles(&["reader"]);
    let jti = reader.claims()["jti"].as_str().unwrap().to_owned();
    let opaque = idp.opaque_token("acme", &reader);
    assert!(!opaque.contains('.'), "not a JWT");
    let response = client()
        .get(gateway.url("/checked/_test/echo"))
        .bearer_auth(&opaque)
        .send()
        .await
        .unwrap();
    assert_eq!(mocks::echoed(response).await["x-user"][0], "opaque-reader");
    // The rule reads the identity the introspection answered.
    let outsider = idp.opaque_token("acme", &idp.token("acme").realm_roles(&["guest"]));
    assert_eq!(
        status(&gateway, "/checked/_test/echo", &outsider).await,
        403
    );
    // Unknown to the provider, or revoked: inactive.
    assert_eq!(
        status(&gateway, "/checked/_test/echo", "not-a-token-anyone-issued").await,
        401
    );
    idp.revoke_token("acme", &jti);
    until_status(&gateway, "/checked/_test/echo", &opaque, 401).await;
    // A route without introspection cannot read an opaque token.
    let plain = client()
        .get(gateway.url("/plain/_test/echo"))
        .bearer_auth(&opaque)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(problem(plain).await["reason"], "malformed");
}
