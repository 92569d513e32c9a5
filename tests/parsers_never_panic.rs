//! Property tests for the parsers an attacker (or a misbehaving IdP, or a broken config file)
//! feeds: token splitting and claim checks, credential syntax, JWKS documents, JSON bodies and
//! pointers, and configuration text. None may panic; each property runs a bounded number of
//! cases so the suite stays fast. (Path and host normalization have their own properties in
//! `src/routing/normalize_tests.rs`.)

use base64::Engine;
use portcullis::oidc::credential::{bearer_part, cookie_values, query_key_is, token_text, Source};
use portcullis::oidc::keys::KeySet;
use portcullis::oidc::verify::split;
use portcullis::transform::json::{parse_document, Pointer};
use proptest::prelude::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// JSON values of bounded size and depth.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_as_a_token_is_answered(token in "\\PC{0,200}") {
        let _ = split(&token);
    }

    #[test]
    fn tokens_of_arbitrary_json_parts_are_answered(
        header in json_value(),
        payload in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes()),
            b64(&signature)
        );
        let _ = split(&token);
    }

    #[test]
    fn credential_syntax_is_answered(value in prop::collection::vec(any::<u8>(), 0..120)) {
        let _ = bearer_part(&value);
        for source in [Source::Authorization, Source::Header, Source::Query, Source::Cookie] {
            let _ = token_text(&value, source, 64);
        }
        let text = String::from_utf8_lossy(&value);
        let _ = query_key_is(&text, "access_token");
        let _ = cookie_values(&value, "token").count();
    }

    #[test]
    fn any_bytes_as_a_jwks_are_answered(document in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = KeySet::from_jwks(&document);
    }

    #[test]
    fn jwks_of_arbitrary_keys_are_answered(
        keys in prop::collection::vec(
            prop::collection::btree_map(
                prop_oneof![
                    Just("kty".to_owned()), Just("alg".to_owned()), Just("use".to_owned()),
                    Just("crv".to_owned()), Just("n".to_owned()), Just("e".to_owned()),
                    Just("x".to_owned()), Just("y".to_owned()), Just("kid".to_owned()),
                ],
                prop_oneof![
                    Just(serde_json::json!("RSA")), Just(serde_json::json!("EC")),
                    Just(serde_json::json!("OKP")), Just(serde_json::json!("oct")),
                    Just(serde_json::json!("RS256")), Just(serde_json::json!("ES256")),
                    Just(serde_json::json!("P-256")), Just(serde_json::json!("Ed25519")),
                    Just(serde_json::json!("sig")), Just(serde_json::json!("AQAB")),
                    "[A-Za-z0-9_-]{0,40}".prop_map(serde_json::Value::from),
                    json_value(),
                ],
                0..8,
            ),
            0..4,
        )
    ) {
        let document = serde_json::json!({ "keys": keys });
        let _ = KeySet::from_jwks(document.to_string().as_bytes());
    }

    #[test]
    fn any_bytes_as_a_json_body_are_answered(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_document(&body);
    }

    #[test]
    fn valid_json_bodies_parse_to_the_same_document(value in json_value()) {
        let text = value.to_string();
        let parsed = parse_document(text.as_bytes()).expect("valid JSON within the depth bound");
        prop_assert_eq!(parsed, serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }

    #[test]
    fn any_text_as_a_pointer_is_answered(text in "\\PC{0,40}") {
        let _ = Pointer::parse(&text);
    }

    #[test]
    fn any_text_as_a_config_file_is_answered(text in "[a-z_:\\[\\]{}, \\n-]{0,200}") {
        let _ = portcullis::compile::compile_text("generated.yaml", &text);
    }
}
