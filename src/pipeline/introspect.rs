//! Part of step 5 for routes with `auth.introspect: true`: a token that passed local
//! verification — a bearer token or a session's access token — is checked at its provider's
//! introspection endpoint (RFC 7662, answers cached per token, one call per token in flight).
//! Inactive: 401 `token_revoked`; endpoint failing: 503 `introspection_unavailable` (fail
//! closed).

use super::context::Context;
use crate::metrics::metrics;
use crate::oidc::introspection::is_active;
use crate::oidc::Verified;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// Why introspection refuses the request: status, reason, description.
pub type Refusal = (u16, &'static str, String);

/// `Err` when the provider says the token is no longer active, or cannot say.
pub async fn check(
    request: &RequestHeader,
    ctx: &Context,
    snapshot: &Snapshot,
    verified: &Verified,
) -> Result<(), Refusal> {
    let token = match ctx.session_access_token.as_deref() {
        Some(token) => Some(token),
        None => snapshot
            .authenticator
            .sources
            .extract(request)
            .ok()
            .flatten(),
    };
    let provider = &snapshot.authenticator.providers[verified.provider];
    let client = snapshot
        .config
        .provider_clients
        .get(verified.provider)
        .and_then(Option::as_ref);
    let (Some(token), Some(client)) = (token, client) else {
        return Err((
            503,
            "introspection_unavailable",
            "no token or no client to introspect with".into(),
        ));
    };
    let exp = verified
        .identity
        .claims()
        .get("exp")
        .and_then(serde_json::Value::as_u64);
    let name = provider.settings.name.as_str();
    let (outcome, refusal) = match is_active(provider, client, token, exp).await {
        Ok(true) => ("active", None),
        Ok(false) => (
            "inactive",
            Some((
                401,
                "token_revoked",
                "the identity provider says this token is no longer active (revoked, or its session ended)".into(),
            )),
        ),
        Err(error) => {
            tracing::warn!(provider = name, %error, "token introspection failed");
            ("unavailable", Some((503, "introspection_unavailable", error.to_string())))
        }
    };
    metrics()
        .introspections
        .with_label_values(&[name, outcome])
        .inc();
    refusal.map_or(Ok(()), Err)
}
