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

/// Asserts each `(rule, claims, holds)` row of a table.
fn assert_table(cases: &[(&str, &Value, bool)]) {
    for (text, claims, expected) in cases {
        let outcome = holds(&rule(text), &id(claims));
        assert_eq!(outcome, *expected, "{text} for {claims}");
    }
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
    assert_table(cases);
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

#[test]
fn group_subtrees_ancestors_and_bare_names() {
    let deep = json!({ "groups": ["/org/engineering/backend/api"] });
    let bare = json!({ "groups": ["backend"] });
    let root_only = json!({ "groups": ["/"] });
    let cases: &[(&str, &Value, bool)] = &[
        // Every ancestor of a full-path membership matches, down to the group itself.
        ("group: /org", &deep, true),
        ("group: /org/engineering", &deep, true),
        ("group: /org/engineering/backend", &deep, true),
        ("group: /org/engineering/backend/api", &deep, true),
        ("group: /org/engineering/backend/api/v2", &deep, false),
        ("group: /org/engineering/back", &deep, false),
        ("group: /engineering", &deep, false),
        ("group: /api", &deep, false),
        ("group: /", &deep, true),
        // A bare name is a top-level group only, never a subgroup or under the root.
        ("group: /backend", &bare, true),
        ("group: backend", &bare, true),
        ("group: /org/backend", &bare, false),
        ("group: /", &bare, false),
        ("group: /", &root_only, true),
        ("group: /org", &root_only, false),
    ];
    assert_table(cases);
}

#[test]
fn group_matching_keeps_the_claim_walking_semantics() {
    // The evaluator before the identity index, kept as the oracle.
    fn reference(rule: &str, member: &str) -> bool {
        let rule_path = rule.strip_prefix('/').unwrap_or(rule);
        match member.strip_prefix('/') {
            Some(path) => {
                path == rule_path
                    || (path.len() > rule_path.len()
                        && path.starts_with(rule_path)
                        && path.as_bytes()[rule_path.len()] == b'/')
                    || rule_path.is_empty()
            }
            None => rule_path == member,
        }
    }
    let rules = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/b", "a", "a/b"];
    let members = [
        "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a/bc", "a", "b", "a/b",
    ];
    for text in rules {
        let compiled = rule(&format!("group: '{text}'"));
        for first in members {
            for second in members {
                let claims = json!({ "groups": [first, second] });
                let expected = reference(text, first) || reference(text, second);
                assert_eq!(
                    holds(&compiled, &id(&claims)),
                    expected,
                    "{text} for {claims}"
                );
            }
        }
    }
}

#[test]
fn roles_scopes_and_clients_are_exact() {
    let claims = json!({
        "azp": "web-app",
        "scope": "\topenid  orders.read\n",
        "realm_access": { "roles": ["orders:write-all"] },
        "resource_access": { "billing": { "roles": ["orders:write"] } },
    });
    let cases: &[(&str, &Value, bool)] = &[
        ("scope: openid", &claims, true),
        ("scope: orders.read", &claims, true),
        ("scope: orders", &claims, false),
        // The role exists, but on another client: it must not count.
        (
            "client_role: { client: orders-api, role: 'orders:write' }",
            &claims,
            false,
        ),
        (
            "client_role: { client: billing, role: 'orders:write' }",
            &claims,
            true,
        ),
        // A client role is not a realm role, nor the other way round.
        ("realm_role: 'orders:write'", &claims, false),
        (
            "client_role: { client: web-app, role: 'orders:write-all' }",
            &claims,
            false,
        ),
    ];
    assert_table(cases);
    assert!(holds_for(&rule("not: { scope: openid }"), None));
    assert!(
        !holds_for(&rule("scope: openid"), None),
        "an anonymous caller has no scope"
    );
}
