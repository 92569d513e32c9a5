//! Table-driven tests of rule evaluation against Keycloak-shaped claims.

use super::*;
use crate::config::policy_file::RuleFile;
use crate::policy::compile_rule;
use serde_json::json;

/// Indexes claims as the authenticator does once per verified token.
fn id(claims: &Value) -> Identity {
    Identity::from_claims(claims.clone())
}

fn rule(yaml: &str) -> Rule {
    let file: RuleFile = serde_yaml::from_str(yaml).unwrap();
    let mut errors = Vec::new();
    let rule = compile_rule(&file, "test", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    rule
}

fn alice() -> Value {
    json!({
        "sub": "alice", "azp": "web-app",
        "scope": "  openid   profile\torders.read  ",
        "realm_access": { "roles": ["reader", "offline_access"] },
        "resource_access": {
            "orders-api": { "roles": ["orders:read"] },
            "billing": { "roles": ["orders:write"] }
        },
        "groups": ["/engineering/backend", "/finance-team"],
        "email_verified": true,
        "address": { "country": "FR" },
        "accounts": [ { "tier": "gold" }, { "tier": "basic" } ],
    })
}

#[test]
fn rule_matrix() {
    let claims = alice();
    let bare_groups = json!({ "groups": ["engineering", "backend"] });
    let service_account = json!({ "client_id": "batch", "scope": "orders.read" });
    let cases: &[(&str, &Value, bool)] = &[
        ("realm_role: reader", &claims, true),
        ("realm_role: writer", &claims, false),
        ("client_role: { client: orders-api, role: 'orders:read' }", &claims, true),
        // A role of another client must not count.
        ("client_role: { client: orders-api, role: 'orders:write' }", &claims, false),
        ("group: /engineering", &claims, true),
        ("group: /engineering/backend", &claims, true),
        ("group: /engineering/frontend", &claims, false),
        ("group: /finance", &claims, false), // "/finance-team" is not a subgroup of "/finance"
        ("group: /engineering", &bare_groups, true),
        ("group: /engineering/backend", &bare_groups, false),
        ("scope: orders.read", &claims, true),
        ("scope: profile", &claims, true),
        ("scope: orders", &claims, false),
        ("client: web-app", &claims, true),
        ("client: batch", &service_account, true),
        ("client: web-app", &service_account, false),
        ("claim: { path: email_verified, equals: true }", &claims, true),
        ("claim: { path: address.country, in: [DE, FR] }", &claims, true),
        ("claim: { path: accounts.tier, equals: gold }", &claims, true),
        ("claim: { path: accounts.tier, matches: '^plat' }", &claims, false),
        ("claim: { path: realm_access.roles, equals: reader }", &claims, true),
        ("claim: { path: address.city, exists: true }", &claims, false),
        ("claim: { path: address.city, exists: false }", &claims, true),
        ("any: [ { realm_role: writer }, { scope: orders.read } ]", &claims, true),
        ("all: [ { realm_role: reader }, { not: { group: /finance-team } } ]", &claims, false),
        ("not: { claim: { path: email_verified, equals: false } }", &claims, true),
        ("all: [ { any: [ { realm_role: x }, { client: web-app } ] }, { not: { realm_role: banned } } ]", &claims, true),
    ];
    for (text, claims, expected) in cases {
        assert_eq!(holds(&rule(text), &id(claims)), *expected, "{text}");
    }
}

#[test]
fn failure_names_the_requirement_and_missing_scope() {
    let unmet = evaluate(
        &rule("all: [ { realm_role: reader }, { scope: orders.write } ]"),
        &id(&alice()),
    )
    .unwrap_err();
    assert_eq!(unmet.requirement, "scope \"orders.write\"");
    assert_eq!(unmet.missing_scope.as_deref(), Some("orders.write"));
    let unmet = evaluate(
        &rule("any: [ { realm_role: admin }, { group: /ops } ]"),
        &id(&alice()),
    )
    .unwrap_err();
    assert_eq!(
        unmet.requirement,
        "any of [realm role \"admin\", membership of group \"/ops\"]"
    );
    assert_eq!(unmet.missing_scope, None);
}

#[test]
fn missing_claims_never_match() {
    let empty = json!({});
    for text in [
        "realm_role: reader",
        "group: /x",
        "scope: a",
        "client: a",
        "client_role: { client: a, role: b }",
    ] {
        assert!(!holds(&rule(text), &id(&empty)), "{text}");
    }
}
