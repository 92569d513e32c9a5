//! Integration: the gateway-signed identity assertion. The upstream receives a short-lived ES256
//! JWT about the caller that a standard JWT library verifies with the keys at
//! `/.portcullis/jwks.json`; a client cannot send its own; a warm path reuses the assertion; the
//! keys survive a reload.

mod common;

use common::mocks::{self, echoed, DevIdp};
use common::{client, GatewayProcess};
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr) -> String {
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
upstreams:
  orders:
    targets: ["{upstream}"]
routes:
  - name: api
    match: {{ path_prefix: /api/ }}
    strip_prefix: true
    upstream: orders
    auth: {{ providers: [acme] }}
    request: {{ identity_assertion: X-Portcullis-Assertion }}
  - name: open
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: orders
    auth: none
    request: {{ identity_assertion: X-Portcullis-Assertion }}
"#,
        discovery = idp.discovery_url("acme"),
    )
}

/// The gateway's published assertion keys.
async fn jwks_of(gateway: &GatewayProcess) -> JwkSet {
    let response = client()
        .get(gateway.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

#[tokio::test]
async fn upstreams_verify_the_assertion_with_the_gateway_keys() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("orders");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    let http = client();
    let token = idp
        .token("acme")
        .subject("user-7")
        .realm_roles(&["reader"])
        .groups(&["/engineering"])
        .mint()
        .unwrap();
    let get = |path: &str| {
        http.get(gateway.url(path))
            .bearer_auth(&token)
            .header("x-portcullis-assertion", "forged")
            .send()
    };
    let first = echoed(get("/api/_test/echo").await.unwrap()).await;
    let assertion = first["x-portcullis-assertion"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(assertion, "forged");
    assert_eq!(first["x-portcullis-assertion"].as_array().unwrap().len(), 1);

    let jwks = jwks_of(&gateway).await;
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["orders"]);
    validation.set_issuer(&["portcullis"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "user-7");
    assert!(claims["realm_roles"]
        .as_array()
        .unwrap()
        .contains(&"reader".into()));
    assert_eq!(claims["groups"], serde_json::json!(["/engineering"]));
    assert_eq!(claims["idp"], idp.issuer("acme"));
    assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 60);

    // Warm: the same assertion, no new signature.
    let second = echoed(get("/api/_test/echo").await.unwrap()).await;
    assert_eq!(second["x-portcullis-assertion"][0], assertion.as_str());
    // Anonymous: nothing to assert, and the client's header never passes.
    let open = echoed(get("/open/_test/echo").await.unwrap()).await;
    assert!(open.get("x-portcullis-assertion").is_none(), "{open}");

    // The keys survive a reload.
    gateway.write_config(&config(&idp, upstream.addr()));
    assert_eq!(
        http.post(gateway.admin_url("/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let after = jwks_of(&gateway).await;
    assert!(after.find(header.kid.as_deref().unwrap()).is_some());
}

#[tokio::test]
async fn a_fleet_sharing_a_key_file_verifies_with_any_instances_jwks() {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::Engine as _;
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("orders");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("assertion.pem");
    let document = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
    std::fs::write(
        &key_file,
        format!("-----BEGIN PRIVATE KEY-----\n{encoded}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let text = format!(
        "{}assertion_signing: {{ key_file: \"{}\" }}\n",
        config(&idp, upstream.addr()),
        key_file.display()
    );
    let first = GatewayProcess::start(&text);
    let second = GatewayProcess::start(&text);
    let http = client();
    let token = idp.token("acme").mint().unwrap();
    let echo = echoed(
        http.get(first.url("/api/_test/echo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let assertion = echo["x-portcullis-assertion"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = jwks_of(&second).await;
    let kid = jsonwebtoken::decode_header(&assertion)
        .unwrap()
        .kid
        .unwrap();
    let jwk = jwks
        .find(&kid)
        .expect("the other instance publishes the same key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["orders"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation
    )
    .is_ok());
}
