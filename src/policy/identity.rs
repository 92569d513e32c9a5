//! The verified identity: a token's claims plus the Keycloak memberships rules ask about —
//! realm roles, client roles, groups (with every ancestor of a full-path group), scopes and
//! the client id — indexed once when the token is verified, so that evaluating a rule is a
//! few hash lookups that allocate nothing, however many roles and groups the token carries.
//! The index holds spans of the claims text, not copies of the names (`names.rs`).
//!
//! The identity is what the verified-token cache stores, so a cache hit pays nothing for it.

use super::claims::{Claims, RawJson};
use super::names::{locate, NameSet, PairSet, Texts};
use std::borrow::Cow;

/// Verified claims and their memberships, indexed for rule evaluation. The names are spans of
/// the claims text (`names.rs`): indexing copies none of them.
#[derive(Debug, Default)]
pub struct Identity {
    claims: Claims,
    /// Names that had JSON escapes, decoded (nearly always empty).
    decoded: String,
    realm_roles: NameSet,
    client_roles: PairSet,
    /// Group paths without the leading `/`: each full-path membership and all its ancestors
    /// (`/engineering/backend` gives `engineering/backend` and `engineering`); a bare name
    /// (Keycloak's group mapper with `full.path` off) counts as a top-level group only.
    groups: NameSet,
    /// Whether any membership is a full path: only those match the root group `/`.
    any_full_path_group: bool,
    scopes: NameSet,
    client_id: Option<Box<str>>,
}

impl Identity {
    /// Indexes `claims` (`realm_access.roles`, `resource_access.<client>.roles`, `groups`,
    /// the space-separated `scope`, `azp` / `client_id`). Malformed parts index as empty.
    pub fn from_claims(claims: impl Into<Claims>) -> Identity {
        let claims = claims.into();
        let text = claims.text();
        let mut decoded = String::new();
        let mut realm_roles = NameSet::default();
        if let Some(roles) = claims.pointer(&["realm_access", "roles"]) {
            roles.for_each_str(|role| {
                let span = locate(text, &mut decoded, &role);
                realm_roles.insert(texts(text, &decoded), span);
            });
        }
        let mut client_roles = PairSet::default();
        if let Some(clients) = claims.get("resource_access") {
            clients.for_each_member(|client, access| {
                let client = locate(text, &mut decoded, &client);
                if let Some(roles) = access.get("roles") {
                    roles.for_each_str(|role| {
                        let role = locate(text, &mut decoded, &role);
                        client_roles.insert(texts(text, &decoded), client, role);
                    });
                }
            });
        }
        let mut groups = NameSet::default();
        let mut any_full_path_group = false;
        if let Some(memberships) = claims.get("groups") {
            memberships.for_each_str(|member| {
                let span = locate(text, &mut decoded, &member);
                match member.strip_prefix('/') {
                    Some(path) => {
                        any_full_path_group = true;
                        let path = path.trim_end_matches('/');
                        let mut end = path.len();
                        while end > 0 {
                            groups.insert(texts(text, &decoded), span.part(1, end));
                            end = path[..end].rfind('/').unwrap_or(0);
                        }
                    }
                    None => groups.insert(texts(text, &decoded), span),
                }
            });
        }
        let mut scopes = NameSet::default();
        if let Some(scope) = claims.get("scope").and_then(RawJson::as_str) {
            let span = locate(text, &mut decoded, &scope);
            for name in scope.split_whitespace() {
                let offset = name.as_ptr() as usize - scope.as_ptr() as usize;
                scopes.insert(texts(text, &decoded), span.part(offset, name.len()));
            }
        }
        let client_id = client_id_of(&claims).map(Box::from);
        Identity {
            claims,
            decoded,
            realm_roles,
            client_roles,
            groups,
            any_full_path_group,
            scopes,
            client_id,
        }
    }

    /// The verified claims as the token carried them.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    fn texts(&self) -> Texts<'_> {
        texts(self.claims.text(), &self.decoded)
    }

    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles.contains(self.texts(), role)
    }

    /// A role of `client` (`resource_access.<client>.roles`); another client's role does not
    /// count.
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.client_roles.contains(self.texts(), client, role)
    }

    /// Membership of `group` (a path such as `/engineering`) or of one of its subgroups.
    pub fn in_group(&self, group: &str) -> bool {
        let path = group.trim_matches('/');
        if path.is_empty() {
            return self.any_full_path_group;
        }
        self.groups.contains(self.texts(), path)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(self.texts(), scope)
    }

    /// The verified client: `azp`, else `client_id` (Keycloak service accounts since 26.1).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
}

fn texts<'a>(claims: &'a str, decoded: &'a str) -> Texts<'a> {
    Texts { claims, decoded }
}

/// `azp`, else `client_id`, of raw claims.
fn client_id_of(claims: &Claims) -> Option<Cow<'_, str>> {
    claims
        .get("azp")
        .and_then(RawJson::as_str)
        .or_else(|| claims.get("client_id").and_then(RawJson::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexes_keycloak_memberships() {
        let identity = Identity::from_claims(json!({
            "azp": "web-app",
            "scope": " openid\tprofile  orders.read ",
            "realm_access": { "roles": ["reader"] },
            "resource_access": { "orders-api": { "roles": ["orders:read"] } },
            "groups": ["/engineering/backend/api", "finance", "/ops/"],
        }));
        assert!(identity.has_realm_role("reader"));
        assert!(!identity.has_realm_role("orders:read"));
        assert!(identity.has_client_role("orders-api", "orders:read"));
        assert!(!identity.has_client_role("billing", "orders:read"));
        for group in [
            "/engineering",
            "/engineering/backend",
            "/engineering/backend/api",
            "/ops",
        ] {
            assert!(identity.in_group(group), "{group}");
        }
        assert!(
            identity.in_group("/finance"),
            "a bare name is a top-level group"
        );
        assert!(!identity.in_group("/engineering/back"));
        assert!(!identity.in_group("/backend"));
        assert!(
            identity.in_group("/"),
            "full-path memberships are under the root"
        );
        for scope in ["openid", "profile", "orders.read"] {
            assert!(identity.has_scope(scope), "{scope}");
        }
        assert!(!identity.has_scope("orders"));
        assert_eq!(identity.client_id(), Some("web-app"));
    }

    #[test]
    fn malformed_or_missing_claims_index_as_empty() {
        let identity = Identity::from_claims(json!({
            "realm_access": { "roles": "reader" },
            "resource_access": ["orders-api"],
            "groups": [1, null, "bare"],
            "scope": 7,
            "client_id": "batch",
        }));
        assert!(!identity.has_realm_role("reader"));
        assert!(!identity.has_client_role("orders-api", "x"));
        assert!(identity.in_group("bare"));
        assert!(!identity.in_group("/"), "bare names are not under the root");
        assert!(!identity.has_scope("7"));
        assert_eq!(identity.client_id(), Some("batch"));
        assert!(Identity::from_claims(json!({})).client_id().is_none());
    }
}
