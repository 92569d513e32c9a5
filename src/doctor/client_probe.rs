//! Whether the provider accepts the gateway's client credentials (`identity_providers.<name>
//! .client`), by asking its token endpoint for a `client_credentials` token. When the client may
//! use that grant, the token it gets goes through the gateway's own signature and claim checks,
//! which catches a missing Audience mapper or a wrong `token_types` before a user does. The
//! token and the secret are never printed.

use super::finding::Finding;
use crate::oidc::client::ClientCredentials;
use crate::oidc::fetch::Fetcher;
use crate::oidc::keys::KeySet;
use crate::oidc::provider::unix_now;
use crate::oidc::settings::ProviderSettings;
use crate::oidc::verify::{check_claims, split, verify_signature, ClaimRules};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Keycloak's description for a wrong client id or secret (it answers `unauthorized_client`
/// or `invalid_client`, 401, depending on the version).
const BAD_CREDENTIALS: &str = "Invalid client or Invalid client credentials";

/// One token-endpoint probe.
pub struct Probe<'a> {
    pub fetcher: &'a Fetcher,
    pub settings: &'a ProviderSettings,
    pub client: &'a ClientCredentials,
    pub token_endpoint: &'a str,
    pub keys: &'a KeySet,
    pub issuer: &'a str,
}

impl Probe<'_> {
    /// Asks for a token and judges the answer; with a token, also the provider's clock as its
    /// `iat` says (Keycloak sends no `Date` header).
    pub async fn run(&self, subject: &str) -> (Finding, Option<SystemTime>) {
        let mut issued_at = None;
        let finding = self.ask(subject, &mut issued_at).await;
        (finding, issued_at)
    }

    async fn ask(&self, subject: &str, issued_at: &mut Option<SystemTime>) -> Finding {
        let id = &self.client.id;
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        let authorization = self.client.authenticate(&mut form);
        let answer = self
            .fetcher
            .post_form(self.token_endpoint, &form, authorization.as_deref())
            .await;
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return Finding::fail(
                    subject,
                    format!("token endpoint: {error}"),
                    "check that the gateway can reach the provider's token endpoint",
                )
            }
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        if status.is_success() {
            return match body.get("access_token").and_then(Value::as_str) {
                Some(token) => {
                    *issued_at = issued_at_of(token);
                    self.judge_token(subject, token)
                }
                None => Finding::warn(
                    subject,
                    format!("client `{id}` authenticated, but the answer holds no access token"),
                    "check the provider's token endpoint",
                ),
            };
        }
        if error == "invalid_client" || description == BAD_CREDENTIALS {
            return Finding::fail(
                subject,
                format!("the provider refuses client `{id}`'s credentials ({error})"),
                "check `client.id` and `client.secret` (or `secret_file`) against the provider (Keycloak: Clients → the client → Credentials), and that Client authentication is on",
            );
        }
        if error == "unauthorized_client" || error == "unsupported_grant_type" {
            return Finding::ok(
                subject,
                format!("client `{id}` authenticated (it may not use client_credentials, so no token to check: {description})"),
            );
        }
        Finding::warn(
            subject,
            format!(
                "token endpoint answered HTTP {} `{error}` for client `{id}`",
                status.as_u16()
            ),
            "check the client's settings at the provider",
        )
    }

    /// Runs the gateway's checks on the client's own token.
    fn judge_token(&self, subject: &str, token: &str) -> Finding {
        let id = &self.client.id;
        let rules = ClaimRules {
            issuer: self.issuer.to_owned(),
            ..self.settings.rules_template.clone()
        };
        let verdict = split(token).and_then(|parts| {
            verify_signature(&parts, self.keys, &self.settings.algorithms)?;
            check_claims(&parts.claims, &rules, unix_now())
        });
        match verdict {
            Ok(()) => Finding::ok(
                subject,
                format!("client `{id}` authenticated; its client_credentials token passes every check of the gateway"),
            ),
            Err(failure) => Finding::warn(
                subject,
                format!(
                    "client `{id}` authenticated, but its own client_credentials token would be refused: {} ({})",
                    failure.description,
                    failure.reason.as_str()
                ),
                "user tokens from the same realm usually fail the same way: fix the claim at the provider (e.g. an Audience mapper in the client's dedicated scope) or the provider's `audiences`/`token_types`",
            ),
        }
    }
}

/// A token's `iat` (read, not trusted: only the clock comparison uses it).
fn issued_at_of(token: &str) -> Option<SystemTime> {
    let parts = split(token).ok()?;
    let iat = parts.claims.document().get("iat")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(iat))
}
