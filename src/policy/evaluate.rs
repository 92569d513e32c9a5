//! Evaluates a compiled [`Rule`] against a verified [`Identity`], Keycloak-style: realm roles,
//! client roles, groups (full paths such as `/engineering/backend`, or bare names), scopes and
//! the client id by hash lookups into the identity's index, and arbitrary claims by dotted path
//! (arrays are searched element-wise).
//!
//! Evaluation allocates nothing; a failure returns an [`Unmet`] naming the requirement that
//! failed (and the missing scope, for `WWW-Authenticate: ... scope="..."`).

pub mod explain;

use super::identity::Identity;
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

/// `Ok(())` when `identity` satisfies `rule`.
pub fn evaluate(rule: &Rule, identity: &Identity) -> Result<(), Unmet> {
    if holds(rule, identity) {
        Ok(())
    } else {
        Err(unmet(rule, identity))
    }
}

/// Whether the rule holds; the hot path.
pub fn holds(rule: &Rule, identity: &Identity) -> bool {
    match rule {
        Rule::All(rules) => rules.iter().all(|r| holds(r, identity)),
        Rule::Any(rules) => rules.iter().any(|r| holds(r, identity)),
        Rule::Not(rule) => !holds(rule, identity),
        Rule::RealmRole(role) => identity.has_realm_role(role),
        Rule::ClientRole { client, role } => identity.has_client_role(client, role),
        Rule::Group(group) => identity.in_group(group),
        Rule::Scope(scope) => identity.has_scope(scope),
        Rule::Client(client) => identity.client_id() == Some(client.as_str()),
        Rule::Claim { path, matcher } => claim_holds(identity.claims().document(), path, matcher),
    }
}

/// Whether the rule holds for a request that may be anonymous: an anonymous caller fails
/// every membership and claim test (so `not` of one holds).
pub fn holds_for(rule: &Rule, identity: Option<&Identity>) -> bool {
    static ANONYMOUS: std::sync::LazyLock<Identity> = std::sync::LazyLock::new(Identity::default);
    holds(rule, identity.unwrap_or(&ANONYMOUS))
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
fn unmet(rule: &Rule, identity: &Identity) -> Unmet {
    match rule {
        Rule::All(rules) => rules
            .iter()
            .find(|r| !holds(r, identity))
            .map(|r| unmet(r, identity))
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
