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
use crate::decision_trace::{shown, Step, Verdict};
use crate::metrics::metrics;
use crate::oidc::token_trace::TokenTrace;
use crate::oidc::AuthReason;
use crate::policy::evaluate;
use crate::policy::evaluate::explain::record_rule;
use crate::reply::{Denial, Reply};
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// `Err` when the request is refused (401, 403, or 503 while a provider has no keys) or sent to
/// sign in (a redirect). A request with a decision trace gets the step's checks recorded.
pub async fn check(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
) -> Result<(), Reply> {
    let Some(offline) = ctx.decision.as_ref().map(|trace| trace.offline) else {
        return decide(request, ctx, snapshot, route, None).await;
    };
    let mut step = Step {
        step: "authenticate",
        verdict: Verdict::Pass,
        summary: String::new(),
        checks: Vec::new(),
    };
    let traced = TokenTrace {
        step: &mut step,
        offline,
    };
    let result = decide(request, ctx, snapshot, route, Some(traced)).await;
    (step.verdict, step.summary) = match (&result, ctx.auth) {
        (Err(reply), _) => (Verdict::Fail, reply.summary()),
        (Ok(()), AuthDecision::Anonymous) if matches!(route.auth, RouteAuth::Anonymous) => (
            Verdict::Skip,
            "the route takes anonymous requests (`auth: none`)".into(),
        ),
        (Ok(()), AuthDecision::Anonymous) => {
            (Verdict::Pass, "anonymous (the token is optional)".into())
        }
        (Ok(()), _) => {
            let subject = ctx
                .claims()
                .and_then(|claims| claims.get("sub"))
                .and_then(crate::policy::RawJson::as_str);
            (
                Verdict::Pass,
                format!(
                    "allowed: subject `{}`",
                    shown(subject.as_deref().unwrap_or("(no sub)"))
                ),
            )
        }
    };
    if let Some(trace) = ctx.decision.as_mut() {
        trace.steps.push(step);
    }
    result
}

async fn decide(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
    mut trace: Option<TokenTrace<'_>>,
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
            if let Some(trace) = trace.as_mut() {
                let name = &config.provider_names[index];
                if trace.offline {
                    trace.step.check("opaque token", Verdict::Fail, format!("only `{name}`'s introspection endpoint knows it; not asked offline (run with --fetch)"));
                    ctx.auth = AuthDecision::Denied;
                    return Err(refused(
                        (503, "introspection_unavailable", "not asked offline".into()),
                        index,
                    )
                    .into());
                }
                trace.step.check(
                    "opaque token",
                    Verdict::Note,
                    format!("introspected at `{name}`"),
                );
            }
            match super::introspect::verify_opaque(snapshot, index, token).await {
                Ok(verified) => verified,
                Err(refusal) => {
                    ctx.auth = AuthDecision::Denied;
                    return Err(refused(refusal, index).into());
                }
            }
        }
        Some(provider) if without_credential => {
            if let Some(trace) = trace.as_mut() {
                trace.step.check(
                    "token",
                    Verdict::Note,
                    "no bearer token: the browser session cookie is checked instead",
                );
                let endpoints = snapshot.authenticator.providers[*provider].endpoints();
                if trace.offline && endpoints.is_none() {
                    let name = &config.provider_names[*provider];
                    trace.step.check("sign-in", Verdict::Skip, format!("a browser would be sent to `{name}`'s login page, whose address comes from discovery: run with --fetch"));
                }
            }
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
            .authenticate_traced(
                request,
                providers,
                *token_required,
                trace.as_mut().map(|t| TokenTrace {
                    step: t.step,
                    offline: t.offline,
                }),
            )
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
    let skip_introspection = trace.as_ref().is_some_and(|t| t.offline);
    if let (Some(trace), true) = (trace.as_mut(), *introspect && opaque.is_none()) {
        let (verdict, detail) = if skip_introspection {
            (Verdict::Skip, "the provider would be asked whether the token is active (RFC 7662); not asked offline")
        } else {
            (
                Verdict::Note,
                "asked the provider whether the token is active (RFC 7662)",
            )
        };
        trace.step.check("introspection", verdict, detail);
    }
    if *introspect && opaque.is_none() && !skip_introspection {
        if let Err(refusal) = super::introspect::check(request, ctx, snapshot, &verified).await {
            ctx.auth = AuthDecision::Denied;
            return Err(refused(refusal, verified.provider).into());
        }
    }
    let method = request.method.as_str();
    let rules = require.iter().map(|rule| (None, rule)).chain(
        per_method
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(m, rule)| (Some(m), rule)),
    );
    if require.is_none() && !per_method.iter().any(|(m, _)| m == method) {
        if let Some(trace) = trace.as_mut() {
            trace.step.check(
                "rule",
                Verdict::Skip,
                "the route has no rule for this method: any valid token passes",
            );
        }
    }
    for (for_method, rule) in rules {
        if let Some(trace) = trace.as_mut() {
            let label =
                for_method.map_or_else(|| "require".to_owned(), |m| format!("require for {m}"));
            record_rule(trace.step, &label, rule, &verified.identity);
        }
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
    snapshot.authenticator.providers[verified.provider]
        .allowed_decisions()
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
