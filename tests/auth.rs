//! Integration: token verification against an in-process identity provider — algorithms,
//! time claims, issuer and audience diagnostics, algorithm confusion, key rotation and the
//! single-flight refetch, IdP outages (503 vs stale keys), token types, sizes and sources,
//! `crit` header extensions and non-numeric time claims.

mod common;

use common::mocks::{self, DemoUpstream, DevIdp};
use common::{client, problem, GatewayProcess};
use portcullis::dev::identity_provider::{Outage, Rotation, SigningAlg};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr, min_refetch: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
admin:
  listen: "127.0.0.1:{{admin_port}}"
identity_providers:
  acme:
    discovery: "{discovery}"
    audiences: ["orders-api"]
    token_types: ["Bearer"]
    clock_skew: 5s
    jwks: {{ refresh_interval: 5m, min_refetch_interval: {min_refetch} }}
  partners:
    issuer: "{partners_issuer}"
    jwks_uri: "{partners_jwks}"
    audiences: ["orders-api"]
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: acme-only
    match: {{ path_prefix: /acme/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
    request:
      set_headers: {{ X-User: "{{claims.sub}}", X-Client: "{{claims.azp}}" }}
  - name: both
    match: {{ path_prefix: /both/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme, partners] }}
"#,
        discovery = idp.discovery_url("acme"),
        partners_issuer = idp.issuer("partners"),
        partners_jwks = idp.jwks_uri("partners"),
    )
}

struct Setup {
    idp: DevIdp,
    _upstream: DemoUpstream,
    gateway: GatewayProcess,
}

fn setup(min_refetch: &str) -> Setup {
    let idp = mocks::idp(&["acme", "partners"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), min_refetch));
    Setup {
        idp,
        _upstream: upstream,
        gateway,
    }
}

async fn call(gateway: &GatewayProcess, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gateway.url(path))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

/// Asserts a 401 with the given reason; returns the problem body.
async fn refused(response: reqwest::Response, reason: &str) -> serde_json::Value {
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = problem(response).await;
    assert_eq!(body["reason"], reason, "{body}");
    if reason != "missing_token" {
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    body
}

#[tokio::test]
async fn every_supported_algorithm_verifies_and_identity_reaches_the_upstream() {
    let s = setup("60s");
    for alg in [
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ] {
        let token = s
            .idp
            .token("acme")
            .alg(alg)
            .subject("user-42")
            .mint()
            .unwrap();
        let response = call(&s.gateway, "/acme/_test/echo", &token).await;
        assert_eq!(response.status(), 200, "{alg:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["headers"]["x-user"][0], "user-42");
        assert_eq!(body["headers"]["x-client"][0], "web-app");
    }
}

#[tokio::test]
async fn missing_and_malformed_tokens() {
    let s = setup("60s");
    let response = client()
        .get(s.gateway.url("/acme/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"acme\""
    );
    assert_eq!(problem(response).await["reason"], "missing_token");
    refused(call(&s.gateway, "/acme/x", "not-a-jwt").await, "malformed").await;
    let big = "a".repeat(9000);
    refused(call(&s.gateway, "/acme/x", &big).await, "token_too_large").await;
    let token = s.idp.token("acme").mint().unwrap();
    let response = client()
        .get(s.gateway.url("/acme/_test/echo"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    refused(response, "multiple_tokens").await;
}

#[tokio::test]
async fn time_claims_are_enforced_with_skew() {
    let s = setup("60s");
    let idp = &s.idp;
    refused(
        call(
            &s.gateway,
            "/acme/x",
            &idp.token("acme").expired().mint().unwrap(),
        )
        .await,
        "expired",
    )
    .await;
    refused(
        call(
            &s.gateway,
            "/acme/x",
            &idp.token("acme").not_before_in(60).mint().unwrap(),
        )
        .await,
        "not_yet_valid",
    )
    .await;
    refused(
        call(
            &s.gateway,
            "/acme/x",
            &idp.token("acme").issued_in_future(60).mint().unwrap(),
        )
        .await,
        "issued_in_future",
    )
    .await;
    // Within the 5 s clock skew: accepted.
    let token = idp.token("acme").issued_in_future(2).mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &token).await.status(),
        200
    );
}

#[tokio::test]
async fn crit_extensions_and_non_numeric_time_claims_are_refused() {
    let s = setup("60s");
    let idp = &s.idp;
    // RFC 7515 §4.1.11: the gateway understands no JWS extension, so any `crit` is refused,
    // even over a valid signature (the header is signed as written).
    for crit in [serde_json::json!(["exp"]), serde_json::json!(["b64"])] {
        let token = idp
            .token("acme")
            .header_field("crit", crit.clone())
            .header_field("exp", 0)
            .header_field("b64", true)
            .mint()
            .unwrap();
        refused(
            call(&s.gateway, "/acme/_test/echo", &token).await,
            "unsupported_critical_header",
        )
        .await;
    }
    // A NumericDate that is not a number is refused like a non-numeric `exp`, never skipped.
    for (name, value) in [("nbf", "tomorrow"), ("iat", "1700000000"), ("exp", "never")] {
        let token = idp.token("acme").claim(name, value).mint().unwrap();
        let body = refused(
            call(&s.gateway, "/acme/_test/echo", &token).await,
            "malformed",
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains(name), "{body}");
    }
}

#[tokio::test]
async fn issuer_and_audience_failures_explain_the_fix() {
    let s = setup("60s");
    let idp = &s.idp;
    let issuer = idp.issuer("acme");
    let slash = idp
        .token("acme")
        .issuer(&format!("{issuer}/"))
        .mint()
        .unwrap();
    let body = refused(call(&s.gateway, "/acme/x", &slash).await, "issuer_mismatch").await;
    assert!(
        body["detail"].as_str().unwrap().contains("trailing slash"),
        "{body}"
    );
    let host = idp
        .token("acme")
        .issuer(&issuer.replace("127.0.0.1", "localhost"))
        .mint()
        .unwrap();
    let body = refused(call(&s.gateway, "/acme/x", &host).await, "issuer_mismatch").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("differs only in the host"),
        "{body}"
    );
    let scheme = idp
        .token("acme")
        .issuer(&issuer.replace("http://", "https://"))
        .mint()
        .unwrap();
    let body = refused(
        call(&s.gateway, "/acme/x", &scheme).await,
        "issuer_mismatch",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("scheme"),
        "{body}"
    );

    let account_only = idp.token("acme").audience("account").mint().unwrap();
    let response = call(&s.gateway, "/acme/x", &account_only).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = refused(response, "audience_mismatch").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("add an Audience mapper for client `orders-api`"),
        "{body}"
    );
    assert!(challenge.contains("Audience mapper"), "{challenge}");
    let other = idp.token("acme").audience("billing-api").mint().unwrap();
    refused(
        call(&s.gateway, "/acme/x", &other).await,
        "audience_mismatch",
    )
    .await;
}

#[tokio::test]
async fn algorithm_confusion_and_non_access_tokens_are_refused() {
    let s = setup("60s");
    let idp = &s.idp;
    let forged = idp
        .token("acme")
        .hs256_with_rsa_public_key()
        .mint()
        .unwrap();
    refused(
        call(&s.gateway, "/acme/x", &forged).await,
        "algorithm_not_allowed",
    )
    .await;
    let none = idp.token("acme").header_alg("none").mint().unwrap();
    let response = call(&s.gateway, "/acme/x", &none).await;
    assert_eq!(response.status(), 401);
    // An RS256 key used for an ES256 header: alg/kty mismatch.
    let rsa_kid = idp.current_kid("acme", SigningAlg::RS256).unwrap();
    let mismatch = idp
        .token("acme")
        .alg(SigningAlg::ES256)
        .kid(&rsa_kid)
        .mint()
        .unwrap();
    refused(
        call(&s.gateway, "/acme/x", &mismatch).await,
        "algorithm_not_allowed",
    )
    .await;
    let id_token = idp
        .token("acme")
        .id_token()
        .audience("orders-api")
        .mint()
        .unwrap();
    refused(
        call(&s.gateway, "/acme/x", &id_token).await,
        "wrong_token_type",
    )
    .await;
    let refresh = idp.token("acme").refresh_token().mint().unwrap();
    assert_eq!(call(&s.gateway, "/acme/x", &refresh).await.status(), 401);
    // Without kid, a token verifies only when exactly one key can verify its algorithm.
    let without_kid = idp.token("acme").without_kid().mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &without_kid)
            .await
            .status(),
        200
    );
    idp.rotate("acme", SigningAlg::RS256, Rotation::KeepOld)
        .unwrap();
    let fresh_kid = idp.token("acme").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &fresh_kid)
            .await
            .status(),
        200
    );
    let ambiguous = idp
        .token("acme")
        .without_kid()
        .subject("someone-else")
        .mint()
        .unwrap();
    refused(call(&s.gateway, "/acme/x", &ambiguous).await, "unknown_kid").await;
}

#[tokio::test]
async fn realms_are_chosen_by_issuer_and_routes_list_the_ones_they_accept() {
    let s = setup("60s");
    let partner = s.idp.token("partners").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/both/_test/echo", &partner)
            .await
            .status(),
        200
    );
    refused(
        call(&s.gateway, "/acme/_test/echo", &partner).await,
        "provider_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn rotation_refetches_once_and_removed_keys_stop_working() {
    let s = setup("60s");
    let idp = &s.idp;
    let old = idp.token("acme").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &old).await.status(),
        200
    );
    let fetches = idp.jwks_requests("acme");
    idp.rotate("acme", SigningAlg::RS256, Rotation::RemoveOld)
        .unwrap();
    let new = idp.token("acme").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &new).await.status(),
        200
    );
    assert_eq!(
        idp.jwks_requests("acme"),
        fetches + 1,
        "exactly one refetch for the new kid"
    );
    // The old key left the JWKS: its token is refused although it was cached.
    refused(call(&s.gateway, "/acme/x", &old).await, "unknown_kid").await;
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_the_idp_at_most_one_fetch_per_interval() {
    let s = setup("60s");
    let before = s.idp.jwks_requests("acme");
    let mut calls = Vec::new();
    for i in 0..40 {
        let token = s
            .idp
            .token("acme")
            .kid(&format!("random-{i}"))
            .mint()
            .unwrap();
        let url = s.gateway.url("/acme/x");
        calls.push(tokio::spawn(async move {
            client()
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 401);
    }
    assert!(
        s.idp.jwks_requests("acme") - before <= 1,
        "{} fetches",
        s.idp.jwks_requests("acme") - before
    );
}

#[tokio::test]
async fn idp_down_during_the_run_keeps_the_last_good_keys() {
    let s = setup("1s");
    let token = s.idp.token("acme").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &token).await.status(),
        200
    );
    s.idp.set_outage(Some(Outage::Refuse));
    let fresh = s.idp.token("acme").subject("other").mint().unwrap();
    assert_eq!(
        call(&s.gateway, "/acme/_test/echo", &fresh).await.status(),
        200
    );
    let ready = client()
        .get(s.gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "keys are still there");
}

#[tokio::test]
async fn idp_down_at_start_answers_503_then_recovers() {
    let idp = mocks::idp(&["acme", "partners"]);
    let upstream = mocks::upstream("api");
    idp.set_outage(Some(Outage::Unavailable));
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), "1s"));
    let token = idp.token("acme").mint().unwrap();
    let response = call(&gateway, "/acme/_test/echo", &token).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(problem(response).await["reason"], "provider_unavailable");
    let ready = client()
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status();
    let ready_body = ready.text().await.unwrap();
    assert_eq!(ready_status, 503, "{ready_body}");
    assert!(ready_body.contains("acme"), "{ready_body}");
    idp.set_outage(None);
    let http = client();
    let mut status = 0;
    for _ in 0..100 {
        let response = http
            .get(gateway.url("/acme/_test/echo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        status = response.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the provider recovered");
}

#[tokio::test]
async fn garbage_and_junk_jwks_do_not_break_the_gateway() {
    let idp = mocks::idp(&["acme", "partners"]);
    let upstream = mocks::upstream("api");
    idp.set_junk_entries(true);
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), "60s"));
    let token = idp.token("acme").mint().unwrap();
    assert_eq!(
        call(&gateway, "/acme/_test/echo", &token).await.status(),
        200
    );

    let broken = mocks::idp(&["acme", "partners"]);
    broken.set_garbage(true);
    let gateway = GatewayProcess::start(&config(&broken, upstream.addr(), "60s"));
    let token = broken.token("acme").mint().unwrap();
    assert_eq!(
        call(&gateway, "/acme/_test/echo", &token).await.status(),
        503
    );
}
