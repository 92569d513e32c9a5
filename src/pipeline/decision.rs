//! The decision trace of the request steps: what each step decided and why, recorded only for
//! a request that carries a trace ([`Context::decision`]: `portcullis explain`, or debug logging
//! of `portcullis::decision`). The steps decide; this file only writes their outcome down, so
//! the trace and the gateway cannot disagree. Authentication records its own checks
//! ([`super::authenticate`]), since they happen inside it.

use super::context::Context;
use crate::compile::Route;
use crate::decision_trace::Verdict;
use crate::ratelimit::key::{choose_tier, rate_key, KeySource};
use crate::ratelimit::policy::RateKeyPart;
use crate::reply::{Denial, Reply};
use crate::routing::near_miss::nearest;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// How many non-matching routes a 404/405 trace lists.
const NEAR_MISSES: usize = 3;

/// The verdict and summary of a step that either passed or refused with `result`.
fn outcome<T, E: Clone + Into<Reply>>(result: &Result<T, E>, passed: String) -> (Verdict, String) {
    match result {
        Ok(_) => (Verdict::Pass, passed),
        Err(refusal) => (Verdict::Fail, refusal.clone().into().summary()),
    }
}

/// The guard step: head size, host and path form.
pub fn guard(ctx: &mut Context, result: &Result<(), Denial>) {
    if let Some(trace) = ctx.decision.as_deref_mut() {
        let (verdict, summary) =
            outcome(result, "request head, host and path are well formed".into());
        trace.step("guard", verdict, summary);
    }
}

/// The route step: the route chosen, or the nearest routes and why each did not match.
pub fn route(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    result: &Result<Arc<Route>, Denial>,
) {
    let Some(trace) = ctx.decision.as_deref_mut() else {
        return;
    };
    let host = ctx.facts.host.as_str();
    let path = ctx.facts.path(request);
    let method = request.method.as_str();
    let passed = match result {
        Ok(route) => format!(
            "route `{}` ({}{}, upstream `{}`)",
            route.name,
            route.matcher.host.as_deref().unwrap_or(""),
            route.matcher.describe_path(),
            route.upstream.settings.name
        ),
        Err(_) => String::new(),
    };
    let (verdict, summary) = outcome(result, passed);
    let step = trace.step("route", verdict, summary);
    step.check(
        "request",
        Verdict::Note,
        format!("{method} host `{host}` path `{path}`"),
    );
    if result.is_err() {
        let routes = snapshot.config.routes.iter();
        let named = routes.map(|r| (r.name.as_str(), &r.matcher));
        for (name, miss) in nearest(named, host, path, method, NEAR_MISSES) {
            step.check(
                format!("route `{name}`"),
                Verdict::Fail,
                miss.reasons.join("; "),
            );
        }
    }
}

/// The client IP step.
pub fn client_ips(ctx: &mut Context, route: &Route, result: &Result<(), Denial>) {
    let Some(trace) = ctx.decision.as_deref_mut() else {
        return;
    };
    let client = &ctx.facts.client_ip_text;
    if route.client_ips.is_none() {
        trace.step(
            "client_ips",
            Verdict::Skip,
            "the route has no client IP list",
        );
        return;
    }
    let (verdict, summary) = outcome(result, format!("client address {client} is allowed"));
    trace.step("client_ips", verdict, summary);
}

/// The CORS step.
pub fn cors(request: &RequestHeader, ctx: &mut Context, route: &Route, result: &Result<(), Reply>) {
    let Some(trace) = ctx.decision.as_deref_mut() else {
        return;
    };
    if route.cors.is_none() {
        trace.step("cors", Verdict::Skip, "the route has no CORS policy");
        return;
    }
    let origin = request
        .headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let (verdict, summary) = match (result, origin) {
        (Err(Reply::Preflight { .. }), _) => {
            (Verdict::Pass, "preflight answered (204) by the gateway".to_owned())
        }
        (Err(reply), _) => (Verdict::Fail, reply.summary()),
        (Ok(()), None) => (Verdict::Skip, "no Origin: not a cross-origin request".into()),
        (Ok(()), Some(origin)) if ctx.cors_headers.iter().any(|(n, _)| n == http::header::ACCESS_CONTROL_ALLOW_ORIGIN) => {
            (Verdict::Pass, format!("origin `{origin}` is allowed"))
        }
        (Ok(()), Some(origin)) => (
            Verdict::Note,
            format!("origin `{origin}` is not allowed: the response carries no Access-Control-Allow-Origin"),
        ),
    };
    trace.step("cors", verdict, summary);
}

/// The rate-limit step: each policy's key, tier and rate; with `result`, what was decided
/// (`None`: explained offline, nothing counted).
pub fn rate_limits(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
    result: Option<&Result<(), Denial>>,
) {
    let Some(trace) = ctx.decision.as_deref_mut() else {
        return;
    };
    let client_ip = ctx
        .facts
        .client_ip
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let identity = ctx.identity.as_deref();
    if route.rate_limits.is_empty() && route.concurrency_limits.is_empty() {
        trace.step(
            "rate_limit",
            Verdict::Skip,
            "the route has no rate or concurrency limit",
        );
        return;
    }
    let (verdict, summary) = match result {
        Some(result) => outcome(result, "admitted by every policy".into()),
        None => (
            Verdict::Skip,
            "not counted offline: the request is admitted while its key has budget left".into(),
        ),
    };
    let step = trace.step("rate_limit", verdict, summary);
    let mut key = String::new();
    let mut key_of = |parts: &[RateKeyPart]| {
        let source = rate_key(parts, identity, &request.headers, client_ip, &mut key);
        shown_key(parts, &key, source)
    };
    for &index in &route.rate_limits {
        let policy = snapshot.rate_limiter.policy(index);
        let key = key_of(&policy.key);
        let tier = choose_tier(policy, identity);
        let tier_name = tier
            .index
            .map_or("base rate".to_owned(), |i| format!("tier {}", i + 1));
        step.check(
            format!("policy `{}`", policy.name),
            Verdict::Note,
            format!(
                "key {}; {tier_name}: {}, burst {}; store {}",
                key,
                rate_text(tier.rate),
                tier.burst,
                format!("{:?}", policy.store).to_ascii_lowercase()
            ),
        );
    }
    for &index in &route.concurrency_limits {
        let policy = &snapshot.config.concurrency_limits[index];
        let key = key_of(&policy.key);
        step.check(
            format!("concurrency `{}`", policy.name),
            Verdict::Note,
            format!("key {}; at most {} in flight", key, policy.limit),
        );
    }
}

/// `100/s`, `10000/day`, or `7 per 90s` for a period without a unit name.
fn rate_text(rate: crate::config::units::RateSpec) -> String {
    let seconds = rate.period.as_secs();
    let unit = match seconds {
        1 => "s",
        60 => "min",
        3600 => "hour",
        86_400 => "day",
        2_592_000 => "month",
        _ => return format!("{} per {:?}", rate.count, rate.period),
    };
    format!("{}/{unit}", rate.count)
}

/// A rate-limit key for a trace; a key made from a header (often an API key) is not shown.
fn shown_key(parts: &[RateKeyPart], key: &str, source: KeySource) -> String {
    let from_header = parts.iter().any(|p| matches!(p, RateKeyPart::Header(_)));
    match source {
        KeySource::ClientIpFallback { missing_part } => {
            format!(
                "`{key}` (part {} missing: the client address instead)",
                missing_part + 1
            )
        }
        KeySource::Configured if from_header => "(hidden: made from a request header)".into(),
        KeySource::Configured => format!("`{}`", crate::decision_trace::shown(key)),
    }
}

/// The request-body step (it refuses nothing; a body to transform is marked).
pub fn request_body(ctx: &mut Context, route: &Route) {
    let Some(trace) = ctx.decision.as_deref_mut() else {
        return;
    };
    match &route.request_json {
        Some(_) => trace.step(
            "request_body",
            Verdict::Note,
            "a JSON request body is transformed on its way upstream",
        ),
        None => trace.step("request_body", Verdict::Skip, "no request body transform"),
    };
}
