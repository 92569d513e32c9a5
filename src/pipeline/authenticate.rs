//! Step 3, authentication and authorization: verifies the token the route asks for, evaluates
//! the route's rule (and the rule of the request method), and turns the outcome into verified
//! claims on the request context or a [`Denial`]. 401 is for authentication failures only; an
//! authenticated caller who fails the rule gets 403. On a route with `auth.sign_in`, a request
//! without a bearer token is authenticated by its session cookie ([`browser_session`]); both
//! then meet the same rules.

use super::browser_session;
use super::context::{AuthDecision, Context};
use crate::compile::{CompiledConfig, Route, RouteAuth};
use crate::config::file::ErrorDetail;
use crate::metrics::metrics;
use crate::oidc::AuthReason;
use crate::policy::evaluate;
use crate::reply::{Denial, Reply};
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// `Err` when the request is refused (401, 403, or 503 while a provider has no keys) or sent to
/// sign in (a redirect).
pub async fn check(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
) -> Result<(), Reply> {
    let config = &snapshot.config;
    let RouteAuth::Verify {
        providers,
        token_required,
        require,
        per_method,
        sign_in,
        introspect,
        ..
    } = &route.auth
    else {
        return Ok(());
    };
    let minimal = config.error_detail == ErrorDetail::Minimal;
    // Only a sign-in route needs to know before verifying (the token is read once otherwise).
    let without_credential =
        sign_in.is_some() && matches!(snapshot.authenticator.sources.extract(request), Ok(None));
    let opaque = if *introspect {
        super::introspect::opaque_provider(request, snapshot, providers)
    } else {
        None
    };
    let refused = |(status, reason, description): super::introspect::Refusal, provider: usize| {
        Denial::Unauthenticated {
            status,
            reason,
            description,
            realm: realm_of(
                config,
                providers,
                Some(config.provider_names[provider].as_str()),
            ),
            token_presented: true,
        }
    };
    let verified = match sign_in {
        _ if opaque.is_some() => {
            let (index, token) = opaque.unwrap_or_default();
            match super::introspect::verify_opaque(snapshot, index, token).await {
                Ok(verified) => verified,
                Err(refusal) => {
                    ctx.auth = AuthDecision::Denied;
                    return Err(refused(refusal, index).into());
                }
            }
        }
        Some(provider) if without_credential => {
            let missing = || Denial::Unauthenticated {
                status: 401,
                reason: crate::oidc::AuthReason::MissingToken.as_str(),
                description:
                    "this route needs a session (sign in with a browser) or a bearer token".into(),
                realm: realm_of(config, providers, None),
                token_presented: false,
            };
            match browser_session::authenticate(
                request, ctx, snapshot, providers, *provider, missing,
            )
            .await
            {
                Ok(verified) => verified,
                Err(reply) => {
                    ctx.auth = AuthDecision::Denied;
                    return Err(reply);
                }
            }
        }
        _ => match snapshot
            .authenticator
            .authenticate(request, providers, *token_required)
            .await
        {
            Ok(Some(verified)) => verified,
            Ok(None) => {
                ctx.auth = AuthDecision::Anonymous;
                return Ok(());
            }
            Err(failure) => {
                let provider = failure.provider.as_deref().unwrap_or("");
                metrics()
                    .auth_decisions
                    .with_label_values(&[provider, "denied", failure.reason.as_str()])
                    .inc();
                ctx.auth = AuthDecision::Denied;
                let status = if failure.is_unavailable() { 503 } else { 401 };
                let description = if minimal && status == 401 {
                    "the access token is missing or invalid".to_owned()
                } else {
                    failure.description
                };
                return Err(Denial::Unauthenticated {
                    status,
                    reason: failure.reason.as_str(),
                    description,
                    realm: realm_of(config, providers, failure.provider.as_deref()),
                    token_presented: failure.reason != AuthReason::MissingToken,
                }
                .into());
            }
        },
    };
    let provider_name = config.provider_names[verified.provider].as_str();
    // An opaque token was introspected already; a verified JWT is asked about now.
    if *introspect && opaque.is_none() {
        if let Err(refusal) = super::introspect::check(request, ctx, snapshot, &verified).await {
            ctx.auth = AuthDecision::Denied;
            return Err(refused(refusal, verified.provider).into());
        }
    }
    let method = request.method.as_str();
    let rules = require.iter().chain(
        per_method
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, rule)| rule),
    );
    for rule in rules {
        if let Err(unmet) = evaluate(rule, &verified.identity) {
            metrics()
                .auth_decisions
                .with_label_values(&[provider_name, "forbidden", "insufficient_scope"])
                .inc();
            ctx.auth = AuthDecision::Forbidden;
            let description = if minimal {
                "the access token does not grant access to this resource".to_owned()
            } else {
                format!("this route requires {}", unmet.requirement)
            };
            return Err(Denial::Forbidden {
                reason: "insufficient_scope",
                description,
                missing_scope: unmet.missing_scope,
                realm: realm_of(config, providers, Some(provider_name)),
            }
            .into());
        }
    }
    metrics()
        .auth_decisions
        .with_label_values(&[provider_name, "allowed", "ok"])
        .inc();
    ctx.auth = AuthDecision::Allowed;
    ctx.identity = Some(verified.identity);
    Ok(())
}

/// The `realm` of WWW-Authenticate: the token's provider, else the route's first provider.
fn realm_of(config: &CompiledConfig, providers: &[usize], provider: Option<&str>) -> String {
    let by_name =
        provider.and_then(|name| config.provider_settings.iter().find(|p| p.name == name));
    by_name
        .or_else(|| {
            providers
                .first()
                .and_then(|i| config.provider_settings.get(*i))
        })
        .map(|p| p.realm.clone())
        .unwrap_or_else(|| "portcullis".into())
}
