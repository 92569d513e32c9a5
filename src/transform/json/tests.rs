//! Unit tests of the JSON body operations.

use super::*;
use serde_json::json;

fn transform(yaml: &str) -> JsonTransform {
    let file: JsonTransformFile = serde_yaml::from_str(yaml).unwrap();
    let mut errors = Vec::new();
    let compiled = JsonTransform::compile(&file, "routes[0].response.json", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    compiled
}

fn context(claims: &crate::policy::Claims) -> TemplateContext<'_> {
    TemplateContext {
        claims: Some(claims),
        request_id: "rid",
        client_ip: "127.0.0.1",
        method: "GET",
        host: "api",
        path: "/orders/1",
    }
}

fn order() -> Value {
    json!({
        "id": "1", "owner": "Alice", "internal_cost": "71.20", "card_number": "4111111111111111",
        "items": [ { "sku": "A", "internal_cost": "1" }, { "sku": "B", "internal_cost": "2" } ],
        "meta": { "a/b": 1, "nested": { "secret": "x", "keep": true } }
    })
}

#[test]
fn remove_with_wildcards_nested_and_escaped_pointers() {
    let t = transform("remove: [/internal_cost, /items/*/internal_cost, /meta/nested/secret, /meta/a~1b, /missing/x]");
    let mut doc = order();
    t.apply(&mut doc, &context(&Default::default()));
    assert_eq!(
        doc,
        json!({
            "id": "1", "owner": "Alice", "card_number": "4111111111111111",
            "items": [ { "sku": "A" }, { "sku": "B" } ],
            "meta": { "nested": { "keep": true } }
        })
    );
}

#[test]
fn rename_set_and_mask() {
    let t = transform(
        "rename: { /owner: /owner_name, /items/*/sku: /items/*/product }\nset: { /served_by: gateway, /viewer: '{claims.sub}', /flags: [1, 2], /items/*/checked: true }\nmask: { /card_number: 4 }",
    );
    let mut doc = order();
    let claims = json!({"sub": "u-9"}).into();
    t.apply(&mut doc, &context(&claims));
    assert_eq!(doc["owner_name"], "Alice");
    assert!(doc.get("owner").is_none());
    assert_eq!(doc["items"][1]["product"], "B");
    assert_eq!(doc["items"][0]["checked"], true);
    assert_eq!(doc["served_by"], "gateway");
    assert_eq!(doc["viewer"], "u-9");
    assert_eq!(doc["flags"], json!([1, 2]));
    assert_eq!(doc["card_number"], "************1111");
}

#[test]
fn set_from_a_missing_claim_is_skipped() {
    let t = transform("set: { /viewer: '{claims.sub}' }");
    let mut doc = json!({});
    t.apply(&mut doc, &context(&json!({}).into()));
    assert_eq!(doc, json!({}));
}

#[test]
fn conditions_select_callers() {
    let t = transform("remove: [/internal_cost]\nunless: { group: /finance }");
    assert!(t.applies(Some(&Identity::from_claims(
        json!({"groups": ["/engineering"]})
    ))));
    assert!(!t.applies(Some(&Identity::from_claims(
        json!({"groups": ["/finance/audit"]})
    ))));
    assert!(t.applies(None));
    let t = transform("remove: [/x]\nwhen: { realm_role: partner }");
    assert!(t.applies(Some(&Identity::from_claims(
        json!({"realm_access": {"roles": ["partner"]}})
    ))));
    assert!(!t.applies(None));
}

#[test]
fn bad_pointers_and_renames_are_config_errors() {
    let file: JsonTransformFile =
        serde_yaml::from_str("remove: [internal]\nrename: { /a/b: /c }").unwrap();
    let mut errors = Vec::new();
    JsonTransform::compile(&file, "p", &mut errors);
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["p.remove[0]", "p.rename./a/b"]);
}

#[test]
fn json_content_types() {
    assert!(is_json_content_type(b"application/json"));
    assert!(is_json_content_type(b"Application/JSON; charset=utf-8"));
    assert!(is_json_content_type(b"application/problem+json"));
    assert!(!is_json_content_type(b"text/html"));
    assert!(!is_json_content_type(b"application/jsonp"));
}

#[test]
fn unchangeable_bodies_are_refused_by_default_where_fields_are_protected() {
    let protecting = transform("remove: [/secret]");
    let renaming = transform("rename: { /a: /b }");
    let lenient = transform("{ mask: { /card: 4 }, on_invalid: pass, oversize: passthrough }");
    use Direction::{Request, Response};
    use InvalidBodyAction::{Pass, Reject};
    use OversizeAction::{Passthrough, Reject as RejectOversize};
    let expected = [
        (&protecting, Request, Reject, RejectOversize),
        (&protecting, Response, Reject, Passthrough),
        (&renaming, Request, Reject, Passthrough),
        (&renaming, Response, Pass, Passthrough),
        (&lenient, Request, Pass, Passthrough),
        (&lenient, Response, Pass, Passthrough),
    ];
    for (index, (transform, direction, invalid, oversize)) in expected.into_iter().enumerate() {
        assert_eq!(transform.invalid_action(direction), invalid, "case {index}");
        assert_eq!(
            transform.oversize_action(direction),
            oversize,
            "case {index}"
        );
    }
}
