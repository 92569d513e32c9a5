//! Tests of the development IdP through its HTTP endpoints and an independent verifier
//! (jsonwebtoken), so that its tokens and JWKS are what a real client would see.

use super::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

async fn get(url: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new().get(url).send().await
}

fn verify_with_jsonwebtoken(jwks: &JwkSet, token: &str, alg: Algorithm) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("published kid");
    let key = DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = Validation::new(alg);
    validation.set_audience(&[DEFAULT_AUDIENCE]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("valid token")
        .claims
}

#[tokio::test]
async fn serves_discovery_and_a_keycloak_shaped_jwks() {
    let idp = DevIdp::start(&["acme", "partners"]).expect("idp");
    let discovery: Value = get(&idp.discovery_url("acme"))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], idp.issuer("acme"));
    assert_eq!(discovery["jwks_uri"], idp.jwks_uri("acme"));
    let jwks: Value = get(&idp.jwks_uri("partners"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 5, "RS256, PS256, ES256, EdDSA and the enc key");
    assert!(keys
        .iter()
        .any(|k| k["use"] == "enc" && k["alg"] == "RSA-OAEP"));
    assert_eq!(idp.discovery_requests("acme"), 1);
    assert_eq!(idp.jwks_requests("partners"), 1);
    assert_eq!(idp.jwks_requests("acme"), 0);
}

#[tokio::test]
async fn tokens_of_every_algorithm_verify_with_an_independent_library() {
    let idp = DevIdp::start(&["acme"]).expect("idp");
    let jwks: JwkSet = serde_json::from_str(&idp.jwks_json("acme").expect("realm")).expect("jwks");
    for (alg, jwt_alg) in [
        (SigningAlg::RS256, Algorithm::RS256),
        (SigningAlg::PS256, Algorithm::PS256),
        (SigningAlg::ES256, Algorithm::ES256),
        (SigningAlg::EdDSA, Algorithm::EdDSA),
    ] {
        let token = idp
            .token("acme")
            .alg(alg)
            .client_roles("orders-api", &["orders:read"])
            .groups(&["/engineering"])
            .mint()
            .expect("mint");
        let claims = verify_with_jsonwebtoken(&jwks, &token, jwt_alg);
        assert_eq!(claims["iss"], idp.issuer("acme"));
        assert_eq!(claims["typ"], "Bearer");
        assert_eq!(claims["scope"], "openid profile email");
        assert_eq!(
            claims["resource_access"]["orders-api"]["roles"][0],
            "orders:read"
        );
    }
}

#[tokio::test]
async fn knobs_change_what_is_served() {
    let idp = DevIdp::start(&["acme"]).expect("idp");
    idp.set_outage(Some(Outage::Unavailable));
    let response = get(&idp.jwks_uri("acme")).await.expect("response");
    assert_eq!(response.status(), 503);
    idp.set_outage(Some(Outage::Refuse));
    assert!(get(&idp.jwks_uri("acme")).await.is_err());
    idp.set_outage(None);
    idp.set_garbage(true);
    let body = get(&idp.jwks_uri("acme"))
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    assert!(serde_json::from_str::<Value>(&body).is_err());
    idp.set_garbage(false);
    idp.set_max_age(Some(60));
    idp.set_junk_entries(true);
    let response = get(&idp.jwks_uri("acme")).await.expect("response");
    assert_eq!(response.headers()["cache-control"], "max-age=60");
    let jwks: Value = response.json().await.expect("json");
    assert!(jwks["keys"].as_array().expect("keys").len() > 5);
}

#[test]
fn rotation_publishes_a_new_key_and_can_retire_the_old_one() {
    let idp = DevIdp::start(&["acme"]).expect("idp");
    let old = idp.current_kid("acme", SigningAlg::ES256).expect("kid");
    let new = idp
        .rotate("acme", SigningAlg::ES256, Rotation::RemoveOld)
        .expect("rotate");
    assert_ne!(old, new);
    let jwks = idp.jwks_json("acme").expect("jwks");
    assert!(jwks.contains(&new) && !jwks.contains(&old));
    // A retired key still mints, so tests can check its tokens are refused.
    assert!(idp.token("acme").signed_by(&old).mint().is_ok());
    assert!(idp.token("nope").mint().is_err());
}

#[test]
fn presets_shape_the_claims() {
    let idp = DevIdp::start(&["acme"]).expect("idp");
    let refresh = idp.token("acme").refresh_token();
    assert_eq!(refresh.claims()["typ"], "Refresh");
    let token = refresh.mint().expect("mint");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::HS512);
    let id = idp.token("acme").id_token();
    assert_eq!(id.claims()["aud"], DEFAULT_CLIENT);
    let expired = idp.token("acme").expired();
    assert!(expired.claims()["exp"].as_i64() < expired.claims()["iat"].as_i64().map(|i| i + 700));
    let forged = idp
        .token("acme")
        .without_kid()
        .header_alg("none")
        .mint()
        .expect("mint");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            forged.split('.').next().expect("header"),
        )
        .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "none");
    assert!(header.get("kid").is_none());
}

#[test]
fn header_fields_are_signed_into_the_header() {
    let idp = DevIdp::start(&["acme"]).expect("idp");
    let token = idp
        .token("acme")
        .header_field("crit", serde_json::json!(["exp"]))
        .header_field("exp", 1)
        .mint()
        .expect("token");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.crit, Some(vec!["exp".to_owned()]));
    assert!(header.kid.is_some(), "the default fields stay");
}
