//! A rule as a tree of checks for a decision trace: every node's result comes from [`holds`],
//! the same evaluation the gateway makes, and every leaf names the claim values it read (the
//! roles, groups, scopes or claim the token carries), so a 403 shows which leaf failed and why.

use super::{describe, holds, visit_path};
use crate::decision_trace::{shown, Step, Verdict};
use crate::policy::identity::Identity;
use crate::policy::rule::Rule;
use serde_json::Value;

/// Records `rule` under a check named `label` (e.g. `require`, `require for DELETE`), its
/// branches nested below it. Returns whether the rule holds.
pub fn record_rule(step: &mut Step, label: &str, rule: &Rule, identity: &Identity) -> bool {
    let held = holds(rule, identity);
    step.check(label, Verdict::of(held), headline(rule));
    record_children(step, 1, rule, identity);
    held
}

fn record_children(step: &mut Step, depth: u8, rule: &Rule, identity: &Identity) {
    match rule {
        Rule::All(rules) | Rule::Any(rules) => {
            for child in rules {
                record_node(step, depth, child, identity);
            }
        }
        Rule::Not(inner) => record_node(step, depth, inner, identity),
        _ => {
            step.check_at(depth, "read", Verdict::Note, values_read(rule, identity));
        }
    }
}

fn record_node(step: &mut Step, depth: u8, rule: &Rule, identity: &Identity) {
    let held = holds(rule, identity);
    match rule {
        Rule::All(_) | Rule::Any(_) | Rule::Not(_) => {
            step.check_at(depth, headline(rule), Verdict::of(held), "");
            record_children(step, depth.saturating_add(1), rule, identity);
        }
        _ => step.check_at(
            depth,
            describe(rule),
            Verdict::of(held),
            values_read(rule, identity),
        ),
    }
}

/// A composite rule's own line (its children follow), or a leaf's description.
fn headline(rule: &Rule) -> String {
    match rule {
        Rule::All(rules) => format!("all of {} rules", rules.len()),
        Rule::Any(rules) => format!("any of {} rules", rules.len()),
        Rule::Not(_) => "not".into(),
        leaf => describe(leaf),
    }
}

/// What the token carries for the leaf's question.
fn values_read(rule: &Rule, identity: &Identity) -> String {
    let claims = identity.claims().document();
    match rule {
        Rule::RealmRole(_) => format!(
            "realm roles: {}",
            list(claims.pointer("/realm_access/roles"))
        ),
        Rule::ClientRole { client, .. } => {
            let roles = claims
                .get("resource_access")
                .and_then(|access| access.get(client.as_str()))
                .and_then(|access| access.get("roles"));
            format!("roles of client `{client}`: {}", list(roles))
        }
        Rule::Group(_) => format!("groups: {}", list(claims.get("groups"))),
        Rule::Scope(_) => format!(
            "scope: {}",
            claims
                .get("scope")
                .and_then(Value::as_str)
                .map_or("(none)".into(), |scope| format!("`{}`", shown(scope)))
        ),
        Rule::Client(_) => format!(
            "client (azp or client_id): {}",
            identity
                .client_id()
                .map_or("(none)".into(), |c| format!("`{}`", shown(c)))
        ),
        Rule::Claim { path, .. } => {
            let mut found = Vec::new();
            visit_path(claims, path, &mut |value| found.push(value.to_string()));
            let name = path.join(".");
            if found.is_empty() {
                format!("{name}: (absent)")
            } else {
                format!("{name}: {}", shown(&found.join(", ")))
            }
        }
        Rule::All(_) | Rule::Any(_) | Rule::Not(_) => String::new(),
    }
}

fn list(value: Option<&Value>) -> String {
    match value.and_then(Value::as_array) {
        Some(items) if !items.is_empty() => {
            let names: Vec<String> = items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect();
            format!("[{}]", shown(&names.join(", ")))
        }
        _ => "(none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision_trace::DecisionTrace;
    use crate::policy::compile_rule;
    use serde_json::json;

    #[test]
    fn the_tree_shows_which_leaf_failed_and_what_it_read() {
        let file: crate::config::policy_file::RuleFile = serde_yaml::from_str(
            "all: [{realm_role: reader}, {any: [{group: /admins}, {scope: orders:write}]}]",
        )
        .unwrap();
        let mut errors = Vec::new();
        let rule = compile_rule(&file, "rule", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let identity = Identity::from_claims(json!({
            "realm_access": {"roles": ["reader"]},
            "groups": ["/engineering"],
            "scope": "openid profile"
        }));
        let mut trace = DecisionTrace::default();
        let step = trace.step("authenticate", Verdict::Note, "");
        assert!(!record_rule(step, "require", &rule, &identity));
        let text = trace.render_text();
        assert!(text.contains("FAIL require"), "{text}");
        assert!(
            text.contains("ok   realm role \"reader\": realm roles: [reader]"),
            "{text}"
        );
        assert!(
            text.contains("FAIL membership of group \"/admins\": groups: [/engineering]"),
            "{text}"
        );
        assert!(
            text.contains("FAIL scope \"orders:write\": scope: `openid profile`"),
            "{text}"
        );
    }
}
