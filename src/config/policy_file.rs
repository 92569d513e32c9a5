//! File schema of route authorization: the `auth` value of a route and the rule expression
//! language (`all`, `any`, `not`, `realm_role`, `client_role`, `group`, `scope`, `client`,
//! `claim`) shared by route auth, rate-limit tiers and transform conditions.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A route's `auth`: `none`, `optional`, or a policy map.
#[derive(Debug, Clone)]
pub enum AuthFile {
    /// Explicitly anonymous: no token is looked at.
    None,
    /// Verify a token when one is present (any provider), refuse a bad one, allow none.
    Optional,
    /// A token from one of `providers` is required and must satisfy the rules.
    Policy(AuthPolicyFile),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicyFile {
    /// Identity providers whose tokens this route accepts (default: all of them).
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Rule every request must satisfy (absent: any valid token).
    #[serde(default)]
    pub require: Option<RuleFile>,
    /// Extra rule per HTTP method, checked after `require` (e.g. `DELETE: { realm_role: admin }`).
    #[serde(default)]
    pub methods: BTreeMap<String, RuleFile>,
    /// Allow requests without a token (a present token must still be valid).
    #[serde(default)]
    pub optional: bool,
    /// A browser without a session is sent to this provider's login page (and back); API
    /// clients still get 401, and a bearer token works too.
    #[serde(default)]
    pub sign_in: Option<String>,
    /// Send the session's access token upstream as `Authorization: Bearer` (default false).
    #[serde(default)]
    pub pass_access_token: bool,
    /// Ask the provider's introspection endpoint (RFC 7662) whether the token is still active,
    /// after local verification (default false).
    #[serde(default)]
    pub introspect: bool,
}

impl<'de> Deserialize<'de> for AuthFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = AuthFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`none`, `optional`, or a map with `providers` and `require`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthFile, E> {
                match v {
                    "none" => Ok(AuthFile::None),
                    "optional" => Ok(AuthFile::Optional),
                    other => Err(E::custom(format!(
                        "unknown auth mode `{other}`: expected `none`, `optional`, or a map with `providers` and `require`"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthFile, A::Error> {
                AuthPolicyFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(AuthFile::Policy)
            }
        }
        deserializer.deserialize_any(AuthVisitor)
    }
}

/// One node of a rule expression. Written as a one-key map: `{ realm_role: reader }`,
/// `{ any: [ ... ] }`, `{ not: { group: /contractors } }`.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum RuleFile {
    /// Every rule must hold.
    All(Vec<RuleFile>),
    /// At least one rule must hold.
    Any(Vec<RuleFile>),
    /// The rule must not hold.
    Not(Box<RuleFile>),
    /// Keycloak `realm_access.roles` contains this role.
    RealmRole(String),
    /// Keycloak `resource_access.<client>.roles` contains `role`.
    ClientRole(ClientRoleFile),
    /// Member of this group or any of its subgroups (`/engineering` matches `/engineering/backend`).
    Group(String),
    /// The space-separated `scope` claim contains this scope.
    Scope(String),
    /// The token was issued to this client (`azp`, or `client_id`).
    Client(String),
    /// A claim at a dotted path satisfies a matcher.
    Claim(ClaimMatchFile),
}

const RULE_KINDS: &[&str] = &[
    "all",
    "any",
    "not",
    "realm_role",
    "client_role",
    "group",
    "scope",
    "client",
    "claim",
];

/// serde_yaml 0.9 reads externally tagged enums only from YAML tags; rules are written as
/// one-key maps, so they are read by hand.
impl<'de> Deserialize<'de> for RuleFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;
        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = RuleFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a one-key map such as `{ realm_role: reader }` or `{ any: [...] }`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleFile, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty rule: expected one of {}",
                        RULE_KINDS.join(", ")
                    )));
                };
                let rule = match kind.as_str() {
                    "all" => RuleFile::All(map.next_value()?),
                    "any" => RuleFile::Any(map.next_value()?),
                    "not" => RuleFile::Not(Box::new(map.next_value()?)),
                    "realm_role" => RuleFile::RealmRole(map.next_value()?),
                    "client_role" => RuleFile::ClientRole(map.next_value()?),
                    "group" => RuleFile::Group(map.next_value()?),
                    "scope" => RuleFile::Scope(map.next_value()?),
                    "client" => RuleFile::Client(map.next_value()?),
                    "claim" => RuleFile::Claim(map.next_value()?),
                    other => return Err(de::Error::unknown_variant(other, RULE_KINDS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a rule has exactly one key; combine `{kind}` and `{extra}` with `all` or `any`"
                    )));
                }
                Ok(rule)
            }
        }
        deserializer.deserialize_map(RuleVisitor)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRoleFile {
    pub client: String,
    pub role: String,
}

/// `{ path: "a.b", equals: v }`, `{ path, in: [..] }`, `{ path, matches: "regex" }`, `{ path, exists: true }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimMatchFile {
    pub path: String,
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub matches: Option<String>,
    #[serde(default)]
    pub exists: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_accepts_modes_and_policies() {
        assert!(matches!(
            serde_yaml::from_str::<AuthFile>("none").unwrap(),
            AuthFile::None
        ));
        assert!(matches!(
            serde_yaml::from_str::<AuthFile>("optional").unwrap(),
            AuthFile::Optional
        ));
        let policy: AuthFile = serde_yaml::from_str(
            "providers: [acme]\nrequire: { any: [ { realm_role: reader }, { scope: orders.read } ] }",
        )
        .unwrap();
        let AuthFile::Policy(policy) = policy else {
            panic!("expected a policy")
        };
        assert_eq!(policy.providers.unwrap(), vec!["acme"]);
        assert!(matches!(policy.require, Some(RuleFile::Any(ref rules)) if rules.len() == 2));
    }

    #[test]
    fn auth_rejects_unknown_mode_and_keys() {
        let err = serde_yaml::from_str::<AuthFile>("anonymous").unwrap_err();
        assert!(err.to_string().contains("unknown auth mode `anonymous`"));
        let err = serde_yaml::from_str::<AuthFile>("providrs: [acme]").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `providrs`"),
            "{err}"
        );
    }

    #[test]
    fn rules_nest_every_leaf() {
        let rule: RuleFile = serde_yaml::from_str(
            r#"
all:
  - realm_role: writer
  - client_role: { client: orders-api, role: "orders:read" }
  - group: /engineering
  - not: { claim: { path: "email_verified", equals: false } }
  - any: [ { scope: a }, { client: web }, { claim: { path: "x.y", in: [1, 2] } } ]
"#,
        )
        .unwrap();
        let RuleFile::All(rules) = rule else {
            panic!("expected all")
        };
        assert_eq!(rules.len(), 5);
        assert!(matches!(rules[3], RuleFile::Not(_)));
    }

    #[test]
    fn rule_with_unknown_leaf_names_the_choices() {
        let err = serde_yaml::from_str::<RuleFile>("realm_rol: x").unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `realm_rol`"),
            "{err}"
        );
    }
}
