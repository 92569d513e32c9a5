//! Calls to a provider's token endpoint: the authorization code exchange (with the PKCE
//! verifier) and the refresh grant, authenticated as the gateway's client. Answers are read
//! within the provider's timeout and size limit; an OAuth error comes back as its `error` code,
//! never with the code, tokens or secret that were sent.

use crate::oidc::client::ClientCredentials;
use crate::oidc::fetch::FetchError;
use crate::oidc::provider::Provider;
use serde::Deserialize;

/// What a token endpoint returned.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    /// Seconds the access token lives.
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// Why a token endpoint call produced no tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// Discovery has not named a token endpoint (yet).
    #[error("provider `{0}` has no token endpoint (discovery not fetched yet, or none offered)")]
    NoEndpoint(String),
    /// The request failed or the answer was too slow or too large.
    #[error(transparent)]
    Transport(#[from] FetchError),
    /// The provider refused: an OAuth error such as `invalid_grant` (code used or expired,
    /// session ended) or `invalid_client` (wrong secret).
    #[error("the token endpoint answered HTTP {status}: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// A 200 whose body is not a token response.
    #[error("the token endpoint's answer is not a token response: {0}")]
    Malformed(String),
}

impl TokenEndpointError {
    /// Whether the provider said the grant is no longer valid (the session ended there).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenEndpointError::Refused { error, .. } if error == "invalid_grant")
    }
}

/// Exchanges an authorization code (RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636).
pub async fn exchange_code(
    provider: &Provider,
    client: &ClientCredentials,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenSet, TokenEndpointError> {
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.to_owned()),
    ];
    call(provider, client, form).await
}

/// Uses a refresh token (RFC 6749 §6).
pub async fn refresh(
    provider: &Provider,
    client: &ClientCredentials,
    refresh_token: &str,
) -> Result<TokenSet, TokenEndpointError> {
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
    ];
    call(provider, client, form).await
}

async fn call(
    provider: &Provider,
    client: &ClientCredentials,
    mut form: Vec<(&'static str, String)>,
) -> Result<TokenSet, TokenEndpointError> {
    let endpoint = provider
        .endpoints()
        .and_then(|endpoints| endpoints.token.clone())
        .ok_or_else(|| TokenEndpointError::NoEndpoint(provider.settings.name.clone()))?;
    let authorization = client.authenticate(&mut form);
    let (status, body) = provider
        .fetcher()
        .post_form(&endpoint, &form, authorization.as_deref())
        .await?;
    read_answer(status.as_u16(), &body)
}

/// Turns a token endpoint's status and body into tokens or a typed refusal.
fn read_answer(status: u16, body: &[u8]) -> Result<TokenSet, TokenEndpointError> {
    if status == 200 {
        let tokens: TokenSet = serde_json::from_slice(body)
            .map_err(|error| TokenEndpointError::Malformed(error.to_string()))?;
        if tokens.access_token.is_empty() {
            return Err(TokenEndpointError::Malformed("empty `access_token`".into()));
        }
        if let Some(kind) = &tokens.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(TokenEndpointError::Malformed(format!(
                    "token_type `{}` is not Bearer",
                    printable(kind)
                )));
            }
        }
        return Ok(tokens);
    }
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    let refusal = serde_json::from_slice::<OAuthError>(body).ok();
    Err(TokenEndpointError::Refused {
        status,
        error: refusal.as_ref().map_or_else(
            || "(no OAuth error code)".to_owned(),
            |r| printable(&r.error),
        ),
        description: refusal
            .and_then(|r| r.error_description)
            .map(|d| printable(&d)),
    })
}

/// At most 200 printable ASCII characters of a provider-supplied text, for logs and errors.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_keycloak_token_response() {
        let body = br#"{"access_token":"a","expires_in":300,"refresh_expires_in":1800,"refresh_token":"r","token_type":"Bearer","id_token":"i","not-before-policy":0,"session_state":"s","scope":"openid"}"#;
        let tokens = read_answer(200, body).unwrap();
        assert_eq!(tokens.access_token, "a");
        assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
        assert_eq!(tokens.id_token.as_deref(), Some("i"));
        assert_eq!(tokens.expires_in, Some(300));
    }

    #[test]
    fn refusals_keep_the_oauth_error_and_nothing_else() {
        let error = read_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Session not active"}"#,
        )
        .unwrap_err();
        assert!(error.is_invalid_grant());
        assert_eq!(
            error.to_string(),
            "the token endpoint answered HTTP 400: invalid_grant (Session not active)"
        );
        let html = read_answer(502, b"<html>bad gateway</html>").unwrap_err();
        assert!(!html.is_invalid_grant());
        assert!(html.to_string().contains("no OAuth error code"));
    }

    #[test]
    fn a_200_without_tokens_is_malformed() {
        for body in [
            &b"{}"[..],
            b"not json",
            br#"{"access_token":""}"#,
            br#"{"access_token":"a","token_type":"MAC"}"#,
        ] {
            assert!(matches!(
                read_answer(200, body),
                Err(TokenEndpointError::Malformed(_))
            ));
        }
    }
}
