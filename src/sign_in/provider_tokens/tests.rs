//! The claim checks of ID tokens and logout tokens, on claim sets built by hand (signatures are
//! the key set's business and are tested end to end in `tests/sign_in.rs`).

use super::*;
use serde_json::json;

const NOW: u64 = 1_700_000_000;

fn expected() -> Expected {
    Expected {
        issuer: "https://idp/realms/acme".into(),
        skew: 30,
    }
}

fn id_claims() -> Value {
    json!({
        "iss": "https://idp/realms/acme", "aud": "gateway", "azp": "gateway", "typ": "ID",
        "exp": NOW + 300, "iat": NOW, "nonce": "n-1", "sub": "alice-id", "sid": "sid-1",
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().map(|map| map.remove(name));
    claims
}

#[test]
fn a_good_id_token_names_subject_and_session() {
    let facts = check_id_claims(&id_claims(), &expected(), "gateway", "n-1", NOW).unwrap();
    assert_eq!(
        facts,
        IdTokenFacts {
            subject: "alice-id".into(),
            sid: "sid-1".into()
        }
    );
}

#[test]
fn id_token_refusals() {
    let cases = [
        (with(id_claims(), "nonce", json!("other")), "nonce"),
        (without(id_claims(), "nonce"), "nonce"),
        (
            with(id_claims(), "aud", json!("someone-else")),
            "not for client",
        ),
        (
            with(id_claims(), "aud", json!(["gateway", "api"])).clone(),
            "",
        ),
        (
            with(
                with(id_claims(), "aud", json!(["gateway", "api"])),
                "azp",
                json!("api"),
            ),
            "azp",
        ),
        (
            with(id_claims(), "iss", json!("https://evil/realms/acme")),
            "issuer",
        ),
        (with(id_claims(), "exp", json!(NOW - 31)), "expired"),
        (with(id_claims(), "typ", json!("Bearer")), "Bearer"),
        (without(id_claims(), "sub"), "sub"),
        (without(id_claims(), "exp"), "exp"),
    ];
    for (claims, expected_text) in cases {
        let result = check_id_claims(&claims, &expected(), "gateway", "n-1", NOW);
        if expected_text.is_empty() {
            assert!(result.is_ok(), "{claims}: {result:?}");
        } else {
            let failure = result.expect_err(expected_text);
            assert!(
                failure.description.contains(expected_text),
                "{}",
                failure.description
            );
        }
    }
}

fn logout_claims() -> Value {
    json!({
        "iss": "https://idp/realms/acme", "aud": "gateway", "iat": NOW, "exp": NOW + 120,
        "jti": "j-1", "typ": "Logout", "sid": "sid-1", "sub": "alice-id",
        "events": { LOGOUT_EVENT: {} },
    })
}

#[test]
fn a_good_logout_token_names_its_target() {
    let target = check_logout_claims(&logout_claims(), &expected(), "gateway", NOW).unwrap();
    assert_eq!(target.sid.as_deref(), Some("sid-1"));
    assert_eq!(target.subject.as_deref(), Some("alice-id"));
    let sub_only = without(logout_claims(), "sid");
    let target = check_logout_claims(&sub_only, &expected(), "gateway", NOW).unwrap();
    assert_eq!(target.sid, None);
    let no_exp = without(logout_claims(), "exp");
    assert!(check_logout_claims(&no_exp, &expected(), "gateway", NOW + 60).is_ok());
}

#[test]
fn logout_token_refusals() {
    let cases = [
        (with(logout_claims(), "nonce", json!("n")), "nonce"),
        (with(logout_claims(), "events", json!({})), "event"),
        (without(logout_claims(), "events"), "event"),
        (without(without(logout_claims(), "sid"), "sub"), "neither"),
        (
            with(logout_claims(), "aud", json!("other")),
            "not for client",
        ),
        (
            with(logout_claims(), "iss", json!("https://idp/realms/other")),
            "issuer",
        ),
        (without(logout_claims(), "iat"), "iat"),
        (with(logout_claims(), "iat", json!(NOW + 3600)), "future"),
        (with(logout_claims(), "exp", json!(NOW - 100)), "expired"),
        (with(logout_claims(), "exp", json!("soon")), "not a number"),
        (
            without(with(logout_claims(), "iat", json!(NOW - 3600)), "exp"),
            "too old",
        ),
    ];
    for (claims, expected_text) in cases {
        let failure =
            check_logout_claims(&claims, &expected(), "gateway", NOW).expect_err(expected_text);
        assert!(
            failure.description.contains(expected_text),
            "{expected_text}: {}",
            failure.description
        );
    }
}
