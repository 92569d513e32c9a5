//! Unit tests of the pure verification steps: JOSE header rules in `split` and the registered
//! claim checks of `check_claims`, on hand-built tokens and a fixed clock.

use super::*;
use serde_json::{json, Value};

/// [`super::check_claims`] on claims given as a parsed value (read back from its text).
fn check_claims(payload: &Value, rules: &ClaimRules, now: u64) -> Result<(), AuthFailure> {
    super::check_claims(&Claims::from(payload.clone()), rules, now)
}

const NOW: u64 = 1_700_000_000;

fn encode(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A compact token with this header and payload and a placeholder signature.
fn token(header: Value, payload: Value) -> String {
    format!("{}.{}.c2ln", encode(&header), encode(&payload))
}

fn refusal(token: &str) -> AuthReason {
    match split(token) {
        Ok(_) => panic!("the token was accepted"),
        Err(failure) => failure.reason,
    }
}

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: "https://idp/realms/acme".into(),
        audiences: vec!["orders-api".into()],
        authorized_parties: Vec::new(),
        token_types: None,
        clock_skew_seconds: 5,
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://idp/realms/acme",
        "aud": "orders-api",
        "exp": NOW + 300,
        "iat": NOW,
    })
}

fn with(name: &str, value: Value) -> Value {
    let mut payload = claims();
    payload[name] = value;
    payload
}

#[test]
fn a_plain_header_splits() {
    let token = token(json!({"alg": "RS256", "kid": "k1"}), claims());
    let parts = split(&token).unwrap();
    assert_eq!(parts.header.alg, Algorithm::RS256);
    assert_eq!(parts.header.kid.as_deref(), Some("k1"));
}

#[test]
fn any_crit_extension_is_refused() {
    for crit in [json!(["exp"]), json!(["b64"]), json!(["x-private", "b64"])] {
        let header = json!({"alg": "RS256", "kid": "k1", "crit": crit, "b64": true, "exp": 1});
        assert_eq!(
            refusal(&token(header, claims())),
            AuthReason::UnsupportedCriticalHeader,
            "{crit}"
        );
    }
    // Not a list of names: the header does not decode.
    let header = json!({"alg": "RS256", "crit": "exp"});
    assert_eq!(refusal(&token(header, claims())), AuthReason::Malformed);
}

#[test]
fn alg_none_is_refused_at_split() {
    let header = json!({"alg": "none"});
    assert_eq!(
        refusal(&token(header, claims())),
        AuthReason::AlgorithmNotAllowed
    );
}

#[test]
fn valid_claims_pass() {
    check_claims(&claims(), &rules(), NOW).unwrap();
    let fractional = with("nbf", json!(NOW as f64 - 0.5));
    check_claims(&fractional, &rules(), NOW).unwrap();
}

#[test]
fn non_numeric_time_claims_are_refused_like_exp() {
    for name in ["exp", "nbf", "iat"] {
        for value in [json!("1700000000"), json!(null), json!(true), json!([NOW])] {
            let failure = check_claims(&with(name, value.clone()), &rules(), NOW).unwrap_err();
            assert_eq!(failure.reason, AuthReason::Malformed, "{name}: {value}");
            assert!(
                failure.description.contains(name),
                "{}",
                failure.description
            );
        }
    }
    let mut without_exp = claims();
    without_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check_claims(&without_exp, &rules(), NOW)
            .unwrap_err()
            .reason,
        AuthReason::Malformed
    );
}

#[test]
fn time_claims_respect_the_clock_skew() {
    let reason = |payload: Value| check_claims(&payload, &rules(), NOW).unwrap_err().reason;
    assert_eq!(reason(with("exp", json!(NOW - 5))), AuthReason::Expired);
    check_claims(&with("exp", json!(NOW - 4)), &rules(), NOW).unwrap();
    assert_eq!(reason(with("nbf", json!(NOW + 6))), AuthReason::NotYetValid);
    check_claims(&with("nbf", json!(NOW + 5)), &rules(), NOW).unwrap();
    assert_eq!(
        reason(with("iat", json!(NOW + 6))),
        AuthReason::IssuedInFuture
    );
}

#[test]
fn claims_are_read_from_the_payload_text_with_escapes_decoded() {
    let header = encode(&json!({"alg": "RS256", "kid": "k1"}));
    let payload = |text: &[u8]| {
        let token = format!(
            "{header}.{}.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
        );
        split(&token).map(|parts| check_claims_of(&parts.claims))
    };
    let issuer = rules().issuer.replace('/', "\\/");
    let escaped = format!(
        r#"{{"iss": "{issuer}", "aud": ["x", "orders\u002dapi"], "exp": {}, "typ": "Bearer"}}"#,
        NOW + 60
    );
    assert_eq!(payload(escaped.as_bytes()).ok(), Some(Ok(())), "{escaped}");
    let duplicated = format!(
        r#"{{"iss": "https://evil", "iss": "{issuer}", "exp": 1, "exp": {}, "aud": "orders-api", "typ": "Bearer"}}"#,
        NOW + 60
    );
    assert_eq!(
        payload(duplicated.as_bytes()).ok(),
        Some(Ok(())),
        "the last duplicate counts, as in serde_json"
    );
    for (text, why) in [
        (&b"[1]"[..], "its payload is not a JSON object"),
        (b"{\"exp\": 1", "its payload is not JSON"),
        (b"nope", "its payload is not JSON"),
        (b"{\"sub\": \"\xff\"}", "its payload is not JSON"),
    ] {
        let failure = payload(text).expect_err("refused");
        assert_eq!(failure.reason, AuthReason::Malformed);
        assert!(
            failure.description.ends_with(why),
            "{}",
            failure.description
        );
    }
}

fn check_claims_of(claims: &Claims) -> Result<(), AuthReason> {
    super::check_claims(claims, &rules(), NOW).map_err(|f| f.reason)
}
