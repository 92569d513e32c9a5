//! The endpoints a provider's discovery document names besides its keys: where browsers sign in
//! and out, where codes and refresh tokens are exchanged, where tokens are introspected. Read
//! from the same document as `issuer` and `jwks_uri`, on every key refresh.

use serde_json::Value;

/// The OAuth/OIDC endpoints of one provider (absent ones stay `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub authorization: Option<String>,
    pub token: Option<String>,
    pub end_session: Option<String>,
    pub introspection: Option<String>,
}

impl ProviderEndpoints {
    /// Reads the endpoints from a discovery document; a value that is not an http(s) URL is
    /// ignored (and the feature needing it answers that the provider does not offer it).
    pub fn from_discovery(document: &Value) -> ProviderEndpoints {
        let url = |name: &str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
                .map(str::to_owned)
        };
        ProviderEndpoints {
            authorization: url("authorization_endpoint"),
            token: url("token_endpoint"),
            end_session: url("end_session_endpoint"),
            introspection: url("introspection_endpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_keycloak_endpoints_and_ignores_non_urls() {
        let document = json!({
            "authorization_endpoint": "https://kc/realms/a/protocol/openid-connect/auth",
            "token_endpoint": "https://kc/realms/a/protocol/openid-connect/token",
            "end_session_endpoint": "javascript:alert(1)",
            "introspection_endpoint": 42,
        });
        let endpoints = ProviderEndpoints::from_discovery(&document);
        assert_eq!(
            endpoints.authorization.as_deref(),
            Some("https://kc/realms/a/protocol/openid-connect/auth")
        );
        assert!(endpoints.token.is_some());
        assert_eq!(endpoints.end_session, None);
        assert_eq!(endpoints.introspection, None);
    }
}
