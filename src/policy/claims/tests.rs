//! Unit tests of the claims index and its raw JSON views.

use super::*;
use serde_json::json;

fn claims(text: &str) -> Claims {
    Claims::parse(text.to_owned()).unwrap()
}

#[test]
fn reads_members_without_parsing_the_document() {
    let claims = claims(
        r#" { "sub" : "u1", "exp": 1700000000, "aud": ["a", 7, "b"], "n": null,
              "realm_access": {"roles": ["reader", "writer"]}, "q": "x\"y" } "#,
    );
    assert_eq!(
        claims.get("sub").and_then(RawJson::as_str).as_deref(),
        Some("u1")
    );
    assert_eq!(claims.get("exp").and_then(RawJson::as_f64), Some(1.7e9));
    assert_eq!(claims.get("sub").and_then(RawJson::as_f64), None);
    assert_eq!(claims.get("exp").and_then(RawJson::as_str), None);
    let mut audiences = Vec::new();
    claims
        .get("aud")
        .unwrap()
        .for_each_str(|a| audiences.push(a.into_owned()));
    assert_eq!(audiences, ["a", "b"], "non-strings are skipped");
    assert_eq!(claims.get("n").map(RawJson::text), Some("null"));
    assert_eq!(
        claims.get("q").and_then(RawJson::as_str).as_deref(),
        Some("x\"y")
    );
    let roles = claims.pointer(&["realm_access", "roles"]).unwrap();
    assert_eq!(roles.text(), r#"["reader", "writer"]"#);
    assert_eq!(claims.pointer(&["realm_access", "missing"]), None);
    assert_eq!(claims.pointer(&["sub", "deeper"]), None);
    assert!(claims.get("missing").is_none());
    assert!(
        claims.document.get().is_none(),
        "nothing parsed the whole document"
    );
    assert_eq!(claims.document()["realm_access"]["roles"][1], "writer");
}

#[test]
fn unicode_escapes_are_decoded_and_lone_surrogates_refused() {
    let claims = claims(r#"{"esc\u0061ped": "caf\u00e9", "pair": "\ud83d\ude00"}"#);
    assert_eq!(
        claims.get("escaped").and_then(RawJson::as_str).as_deref(),
        Some("café")
    );
    assert_eq!(
        claims.get("pair").and_then(RawJson::as_str).as_deref(),
        Some("😀")
    );
    assert_eq!(claims.document()["escaped"], "café");
    assert_eq!(
        Claims::parse(r#"{"sub": "\ud800"}"#.into()).unwrap_err(),
        ClaimsError::NotJson,
        "refused as serde_json refuses it"
    );
}

#[test]
fn opening_brackets_are_counted_exactly() {
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(256 * 3).collect();
    assert_eq!(opening_brackets(&every_byte), 6);
    assert_eq!(opening_brackets(&[b'['; 1000]), 1000);
    assert_eq!(opening_brackets(b""), 0);
}

#[test]
fn nesting_is_limited_as_a_full_parse_limits_it() {
    let nested = |depth: usize| format!(r#"{{"a": {}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
    let shallow = claims(&nested(100));
    assert!(shallow.document().is_object());
    assert_eq!(
        Claims::parse(nested(200)).unwrap_err(),
        ClaimsError::NotJson
    );
    let many = format!(r#"{{"a": [{}]}}"#, vec!["[1]"; 300].join(","));
    assert_eq!(claims(&many).document()["a"][299][0], 1);
}

#[test]
fn the_last_of_duplicate_names_wins_as_in_a_parsed_value() {
    let claims = claims(r#"{"iss": "first", "iss": "second", "o": {"k": 1, "k": 2}}"#);
    assert_eq!(
        claims.get("iss").and_then(RawJson::as_str).as_deref(),
        Some("second")
    );
    assert_eq!(claims.document()["iss"], "second");
    assert_eq!(
        claims.pointer(&["o", "k"]).and_then(RawJson::as_f64),
        Some(2.0)
    );
}

#[test]
fn well_known_and_other_names_resolve_alike() {
    let many: Vec<String> = (0..300).map(|i| format!(r#""c{i}": {i}"#)).collect();
    let text = format!(
        r#"{{{}, "exp": 5, "x-custom": "v", "exp": 6}}"#,
        many.join(", ")
    );
    let claims = claims(&text);
    assert_eq!(claims.get("exp").and_then(RawJson::as_f64), Some(6.0));
    assert_eq!(claims.get("c299").and_then(RawJson::as_f64), Some(299.0));
    assert_eq!(
        claims.get("x-custom").and_then(RawJson::as_str).as_deref(),
        Some("v")
    );
    assert!(claims.get("nbf").is_none() && claims.get("c300").is_none());
}

#[test]
fn numbers_are_finite_json_numbers_only() {
    let claims = claims(r#"{"a": -1.5e3, "b": 1e400, "c": "12", "d": true, "e": [1]}"#);
    assert_eq!(claims.get("a").and_then(RawJson::as_f64), Some(-1500.0));
    for name in ["b", "c", "d", "e"] {
        assert_eq!(claims.get(name).and_then(RawJson::as_f64), None, "{name}");
    }
}

#[test]
fn refuses_what_is_not_one_json_object() {
    for (text, error) in [
        ("[1, 2]", ClaimsError::NotObject),
        ("\"x\"", ClaimsError::NotObject),
        ("", ClaimsError::NotJson),
        ("nope", ClaimsError::NotJson),
        ("{\"a\": 1", ClaimsError::NotJson),
        ("{\"a\": 1} {}", ClaimsError::NotJson),
        ("{\"a\": tru}", ClaimsError::NotJson),
        ("{\"a\": \"\\ud800\"}", ClaimsError::NotJson),
    ] {
        assert_eq!(Claims::parse(text.into()).unwrap_err(), error, "{text}");
    }
}

#[test]
fn a_parsed_value_converts_with_its_document_kept() {
    let claims = Claims::from(json!({"sub": "u1", "groups": ["/a"]}));
    assert!(claims.document.get().is_some());
    assert_eq!(
        claims.get("sub").and_then(RawJson::as_str).as_deref(),
        Some("u1")
    );
    let empty = Claims::from(json!(["not", "an", "object"]));
    assert!(empty.get("not").is_none());
    assert_eq!(empty.text(), "{}");
    let default = Claims::default();
    assert_eq!(
        (default.text(), default.document()),
        (empty.text(), empty.document())
    );
    assert!(default.get("sub").is_none());
}

#[test]
fn members_of_nested_objects() {
    let claims = claims(r#"{"resource_access": {"api": {"roles": ["r"]}, "w\u0065b": {}}}"#);
    let mut names = Vec::new();
    let clients = claims.get("resource_access").unwrap();
    clients.for_each_member(|name, _| names.push(name.into_owned()));
    assert_eq!(names, ["api", "web"]);
    assert_eq!(clients.get("api").unwrap().text(), r#"{"roles": ["r"]}"#);
    assert!(claims.get("sub").is_none());
    RawJson("[1]").for_each_member(|_, _| panic!("an array has no members"));
}

#[test]
fn lookup_reads_top_level_strings_from_the_text_and_the_rest_from_the_document() {
    let claims = claims(r#"{"sub": "u1", "n": 7, "realm_access": {"roles": ["a"]}}"#);
    assert_eq!(claims.lookup(&["sub"]), Some(ClaimValue::Text("u1".into())));
    assert_eq!(claims.lookup(&["missing"]), None);
    assert!(
        claims.document.get().is_none(),
        "no parse for a string or a missing name"
    );
    assert_eq!(claims.lookup(&["n"]), Some(ClaimValue::Parsed(&json!(7))));
    assert_eq!(
        claims.lookup(&["realm_access", "roles"]),
        Some(ClaimValue::Parsed(&json!(["a"])))
    );
    assert_eq!(claims.lookup(&["sub", "deeper"]), None);
    assert!(
        claims.document.get().is_some(),
        "parsed once, kept for later requests"
    );
}
