//! Evaluates a compiled [`Rule`] against verified token claims, Keycloak-style:
//! `realm_access.roles`, `resource_access.<client>.roles`, `groups` (full paths such as
//! `/engineering/backend`, or bare names), the space-separated `scope` string, `azp` /
//! `client_id`, and arbitrary claims by dotted path (arrays are searched element-wise).
//!
//! The success path allocates nothing; a failure returns an [`Unmet`] naming the requirement
//! that failed (and the missing scope, for `WWW-Authenticate: ... scope="..."`).

use super::rule::{ClaimMatcher, Rule};
use serde_json::Value;

/// The requirement a caller did not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// A human description such as `realm role "writer"` or `any of [...]`.
    pub requirement: String,
    /// Set when the failed requirement was a single scope.
    pub missing_scope: Option<String>,
}

/// `Ok(())` when `claims` satisfy `rule`.
pub fn evaluate(rule: &Rule, claims: &Value) -> Result<(), Unmet> {
    if holds(rule, claims) {
        Ok(())
    } else {
        Err(unmet(rule, claims))
    }
}

/// Whether the rule holds; the hot path.
pub fn holds(rule: &Rule, claims: &Value) -> bool {
    match rule {
        Rule::All(rules) => rules.iter().all(|r| holds(r, claims)),
        Rule::Any(rules) => rules.iter().any(|r| holds(r, claims)),
        Rule::Not(rule) => !holds(rule, claims),
        Rule::RealmRole(role) => string_array_contains(
            claims.get("realm_access").and_then(|r| r.get("roles")),
            role,
        ),
        Rule::ClientRole { client, role } => string_array_contains(
            claims
                .get("resource_access")
                .and_then(|r| r.get(client.as_str()))
                .and_then(|c| c.get("roles")),
            role,
        ),
        Rule::Group(group) => {
            claims
                .get("groups")
                .and_then(Value::as_array)
                .is_some_and(|groups| {
                    groups
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|member| group_matches(group, member))
                })
        }
        Rule::Scope(scope) => claims
            .get("scope")
            .and_then(Value::as_str)
            .is_some_and(|scopes| scopes.split_whitespace().any(|s| s == scope)),
        Rule::Client(client) => client_id(claims) == Some(client.as_str()),
        Rule::Claim { path, matcher } => claim_holds(claims, path, matcher),
    }
}

/// The verified client: `azp`, else `client_id` (Keycloak service accounts since 26.1).
pub fn client_id(claims: &Value) -> Option<&str> {
    claims
        .get("azp")
        .and_then(Value::as_str)
        .or_else(|| claims.get("client_id").and_then(Value::as_str))
}

fn string_array_contains(array: Option<&Value>, wanted: &str) -> bool {
    array
        .and_then(Value::as_array)
        .is_some_and(|items| items.iter().any(|item| item.as_str() == Some(wanted)))
}

/// `rule` is a full path without trailing slash (`/engineering`). A full-path membership
/// matches the group itself and its subgroups; a bare name (Keycloak's group mapper with
/// `full.path` off) matches only a top-level group of that name.
fn group_matches(rule: &str, member: &str) -> bool {
    if let Some(bare) = member.strip_prefix('/') {
        let rule = rule.strip_prefix('/').unwrap_or(rule);
        bare == rule
            || (bare.len() > rule.len()
                && bare.starts_with(rule)
                && bare.as_bytes()[rule.len()] == b'/')
            || rule.is_empty()
    } else {
        rule.strip_prefix('/').unwrap_or(rule) == member
    }
}

fn claim_holds(claims: &Value, path: &[String], matcher: &ClaimMatcher) -> bool {
    let mut found = false;
    let mut any_match = false;
    visit_path(claims, path, &mut |value| {
        if value.is_null() {
            return;
        }
        found = true;
        if !any_match {
            any_match = value_matches(value, matcher);
        }
    });
    match matcher {
        ClaimMatcher::Exists(expected) => found == *expected,
        _ => any_match,
    }
}

/// Calls `visit` with every value at `path`, descending into arrays element by element.
fn visit_path(value: &Value, path: &[String], visit: &mut dyn FnMut(&Value)) {
    match (value, path.split_first()) {
        (_, None) => visit(value),
        (Value::Object(map), Some((key, rest))) => {
            if let Some(child) = map.get(key.as_str()) {
                visit_path(child, rest, visit);
            }
        }
        (Value::Array(items), Some(_)) => {
            for item in items {
                visit_path(item, path, visit);
            }
        }
        _ => {}
    }
}

fn value_matches(value: &Value, matcher: &ClaimMatcher) -> bool {
    if let Value::Array(items) = value {
        if !matches!(matcher, ClaimMatcher::Equals(Value::Array(_))) {
            return items.iter().any(|item| value_matches(item, matcher));
        }
    }
    match matcher {
        ClaimMatcher::Equals(expected) => value == expected,
        ClaimMatcher::OneOf(options) => options.iter().any(|o| o == value),
        ClaimMatcher::Matches(regex) => value.as_str().is_some_and(|s| regex.is_match(s)),
        ClaimMatcher::Exists(_) => true,
    }
}

/// Describes the part of `rule` that failed (only called on the deny path).
fn unmet(rule: &Rule, claims: &Value) -> Unmet {
    match rule {
        Rule::All(rules) => rules
            .iter()
            .find(|r| !holds(r, claims))
            .map(|r| unmet(r, claims))
            .unwrap_or_else(|| plain(describe(rule))),
        Rule::Scope(scope) => Unmet {
            requirement: describe(rule),
            missing_scope: Some(scope.clone()),
        },
        _ => plain(describe(rule)),
    }
}

fn plain(requirement: String) -> Unmet {
    Unmet {
        requirement,
        missing_scope: None,
    }
}

/// A short human description of a rule.
pub fn describe(rule: &Rule) -> String {
    let list = |rules: &[Rule]| rules.iter().map(describe).collect::<Vec<_>>().join(", ");
    match rule {
        Rule::All(rules) => format!("all of [{}]", list(rules)),
        Rule::Any(rules) => format!("any of [{}]", list(rules)),
        Rule::Not(rule) => format!("not {}", describe(rule)),
        Rule::RealmRole(role) => format!("realm role \"{role}\""),
        Rule::ClientRole { client, role } => {
            format!("client role \"{role}\" of client \"{client}\"")
        }
        Rule::Group(group) => format!("membership of group \"{group}\""),
        Rule::Scope(scope) => format!("scope \"{scope}\""),
        Rule::Client(client) => format!("client \"{client}\""),
        Rule::Claim { path, matcher } => {
            let path = path.join(".");
            match matcher {
                ClaimMatcher::Equals(v) => format!("claim {path} = {v}"),
                ClaimMatcher::OneOf(vs) => format!("claim {path} in {}", Value::Array(vs.clone())),
                ClaimMatcher::Matches(r) => format!("claim {path} matching /{}/", r.as_str()),
                ClaimMatcher::Exists(true) => format!("claim {path} present"),
                ClaimMatcher::Exists(false) => format!("claim {path} absent"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
