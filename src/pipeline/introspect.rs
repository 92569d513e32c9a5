//! Part of step 5 for routes with `auth.introspect: true`: a token that passed local
//! verification — a bearer token or a session's access token — is checked at its provider's
//! introspection endpoint (RFC 7662, answers cached per token, one call per token in flight);
//! an opaque (non-JWT) bearer token, on a route with a provider that declares
//! `opaque_tokens: true`, is introspected instead of verified and its identity comes from the
//! answer. Inactive: 401 `token_revoked`; endpoint failing: 503 `introspection_unavailable`
//! (fail closed).

use super::context::Context;
use crate::metrics::metrics;
use crate::oidc::introspection::introspect;
use crate::oidc::Verified;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// Why introspection refuses the request: status, reason, description.
pub type Refusal = (u16, &'static str, String);

/// Asks provider `index` about `token`; the identity from the answer when active.
async fn ask(
    snapshot: &Snapshot,
    index: usize,
    token: &str,
    exp: Option<u64>,
) -> Result<Verified, Refusal> {
    let provider = &snapshot.authenticator.providers[index];
    let Some(client) = snapshot
        .config
        .provider_clients
        .get(index)
        .and_then(Option::as_ref)
    else {
        return Err((
            503,
            "introspection_unavailable",
            "the provider has no client".into(),
        ));
    };
    let name = provider.settings.name.as_str();
    let answer = introspect(provider, client, token, exp).await;
    let outcome = match &answer {
        Ok(Some(_)) => "active",
        Ok(None) => "inactive",
        Err(_) => "unavailable",
    };
    metrics()
        .introspections
        .with_label_values(&[name, outcome])
        .inc();
    match answer {
        Ok(Some(identity)) => Ok(Verified {
            provider: index,
            identity,
        }),
        Ok(None) => Err((
            401,
            "token_revoked",
            "the identity provider says this token is not active (revoked, expired, or its session ended)".into(),
        )),
        Err(error) => {
            tracing::warn!(provider = name, %error, "token introspection failed");
            Err((503, "introspection_unavailable", error.to_string()))
        }
    }
}

/// `Err` when the provider says the verified token is no longer active, or cannot say.
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
    let Some(token) = token else {
        return Err((
            503,
            "introspection_unavailable",
            "no token to introspect".into(),
        ));
    };
    let exp = verified
        .identity
        .claims()
        .get("exp")
        .and_then(crate::policy::RawJson::as_u64);
    ask(snapshot, verified.provider, token, exp)
        .await
        .map(|_| ())
}

/// The provider of `providers` that takes opaque tokens, when the request's bearer token is
/// not a JWT (three dot-separated parts).
pub fn opaque_provider<'r>(
    request: &'r RequestHeader,
    snapshot: &Snapshot,
    providers: &[usize],
) -> Option<(usize, &'r str)> {
    let token = snapshot
        .authenticator
        .sources
        .extract(request)
        .ok()
        .flatten()?;
    if token.split('.').count() == 3 {
        return None;
    }
    let index = providers
        .iter()
        .copied()
        .find(|i| snapshot.authenticator.providers[*i].settings.opaque_tokens)?;
    Some((index, token))
}

/// An opaque token introspected at provider `index`: the caller's identity from the answer.
pub async fn verify_opaque(
    snapshot: &Snapshot,
    index: usize,
    token: &str,
) -> Result<Verified, Refusal> {
    ask(snapshot, index, token, None).await
}
