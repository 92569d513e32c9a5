//! Rule expressions compiled from [`RuleFile`]: regexes built, claim paths split, group paths
//! normalized — all at config load, so that evaluation re-parses nothing.

use crate::config::policy_file::{ClaimMatchFile, RuleFile};
use crate::config::PathError;

/// A compiled rule.
#[derive(Debug, Clone)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    RealmRole(String),
    ClientRole {
        client: String,
        role: String,
    },
    /// A group path without trailing slash; matches itself and its subgroups.
    Group(String),
    Scope(String),
    Client(String),
    Claim {
        path: Vec<String>,
        matcher: ClaimMatcher,
    },
}

/// How a claim value is tested.
#[derive(Debug, Clone)]
pub enum ClaimMatcher {
    Equals(serde_json::Value),
    OneOf(Vec<serde_json::Value>),
    Matches(regex::Regex),
    Exists(bool),
}

/// Compiles `file`, reporting problems under config path `path`.
pub fn compile_rule(file: &RuleFile, path: &str, errors: &mut Vec<PathError>) -> Rule {
    let non_empty = |value: &str, key: &str, errors: &mut Vec<PathError>| {
        if value.trim().is_empty() {
            errors.push(PathError::new(format!("{path}.{key}"), "must not be empty"));
        }
        value.to_owned()
    };
    match file {
        RuleFile::All(rules) | RuleFile::Any(rules) => {
            let key = if matches!(file, RuleFile::All(_)) {
                "all"
            } else {
                "any"
            };
            if rules.is_empty() {
                errors.push(PathError::new(
                    format!("{path}.{key}"),
                    "needs at least one rule",
                ));
            }
            let compiled = rules
                .iter()
                .enumerate()
                .map(|(i, rule)| compile_rule(rule, &format!("{path}.{key}[{i}]"), errors))
                .collect();
            if key == "all" {
                Rule::All(compiled)
            } else {
                Rule::Any(compiled)
            }
        }
        RuleFile::Not(rule) => {
            Rule::Not(Box::new(compile_rule(rule, &format!("{path}.not"), errors)))
        }
        RuleFile::RealmRole(role) => Rule::RealmRole(non_empty(role, "realm_role", errors)),
        RuleFile::ClientRole(client_role) => Rule::ClientRole {
            client: non_empty(&client_role.client, "client_role.client", errors),
            role: non_empty(&client_role.role, "client_role.role", errors),
        },
        RuleFile::Group(group) => {
            let group = non_empty(group, "group", errors);
            let trimmed = group.trim_end_matches('/');
            Rule::Group(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.to_owned()
            })
        }
        RuleFile::Scope(scope) => {
            if scope.contains(char::is_whitespace) {
                errors.push(PathError::new(
                    format!("{path}.scope"),
                    "one scope per rule; combine several with `all` or `any`",
                ));
            }
            Rule::Scope(non_empty(scope, "scope", errors))
        }
        RuleFile::Client(client) => Rule::Client(non_empty(client, "client", errors)),
        RuleFile::Claim(claim) => compile_claim(claim, &format!("{path}.claim"), errors),
    }
}

fn compile_claim(claim: &ClaimMatchFile, path: &str, errors: &mut Vec<PathError>) -> Rule {
    let segments: Vec<String> = claim.path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        errors.push(PathError::new(
            format!("{path}.path"),
            format!(
                "`{}` is not a dotted claim path such as `realm_access.roles`",
                claim.path
            ),
        ));
    }
    let given = [
        claim.equals.is_some(),
        claim.one_of.is_some(),
        claim.matches.is_some(),
        claim.exists.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        errors.push(PathError::new(
            path,
            "give exactly one of `equals`, `in`, `matches` or `exists`",
        ));
    }
    let matcher = if let Some(value) = &claim.equals {
        ClaimMatcher::Equals(value.clone())
    } else if let Some(values) = &claim.one_of {
        ClaimMatcher::OneOf(values.clone())
    } else if let Some(pattern) = &claim.matches {
        match regex::Regex::new(pattern) {
            Ok(regex) => ClaimMatcher::Matches(regex),
            Err(e) => {
                errors.push(PathError::new(
                    format!("{path}.matches"),
                    format!("invalid regex: {e}"),
                ));
                ClaimMatcher::Exists(false)
            }
        }
    } else {
        ClaimMatcher::Exists(claim.exists.unwrap_or(true))
    };
    Rule::Claim {
        path: segments,
        matcher,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> (Rule, Vec<PathError>) {
        let file: RuleFile = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let rule = compile_rule(&file, "routes[0].auth.require", &mut errors);
        (rule, errors)
    }

    #[test]
    fn compiles_nested_rules() {
        let (rule, errors) =
            compile("any: [ { group: /engineering/ }, { claim: { path: a.b, matches: '^x' } } ]");
        assert!(errors.is_empty(), "{errors:?}");
        let Rule::Any(rules) = rule else { panic!() };
        assert!(matches!(&rules[0], Rule::Group(g) if g == "/engineering"));
        assert!(matches!(&rules[1], Rule::Claim { path, .. } if path == &["a", "b"]));
    }

    #[test]
    fn reports_bad_rules_with_paths() {
        let (_, errors) =
            compile("all: [ { claim: { path: x, matches: '(' } }, { scope: 'a b' }, { any: [] } ]");
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].auth.require.all[0].claim.matches",
                "routes[0].auth.require.all[1].scope",
                "routes[0].auth.require.all[2].any"
            ]
        );
        let (_, errors) = compile("claim: { path: x, equals: 1, exists: true }");
        assert!(errors[0].message.contains("exactly one"));
    }
}
