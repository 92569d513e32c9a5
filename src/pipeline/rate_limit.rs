//! Step 4, rate limits: checks every policy of the route (all must allow), answers 429 with
//! `Retry-After` when one is exhausted, and keeps the `RateLimit-Policy` / `RateLimit` headers
//! for the response of an admitted request. Then the route's `concurrency` policies each give
//! the request a slot, held in the context until the request ends, or refuse it (429,
//! `Retry-After: 1`). The limiters are part of the snapshot, so a route with a limit is always
//! checked: there is no state in which a limit is skipped.

use super::context::{Context, RateLimitDecision};
use crate::compile::Route;
use crate::ratelimit::{decision, rate_limit_headers, Decision};
use crate::reply::Denial;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::net::{IpAddr, Ipv4Addr};

/// `Err` when a policy of the route is exhausted (429).
pub async fn check(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
) -> Result<(), Denial> {
    if route.rate_limits.is_empty() && route.concurrency_limits.is_empty() {
        return Ok(());
    }
    let client_ip = ctx
        .facts
        .client_ip
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut key = String::with_capacity(64);
    let mut decisions: Vec<Decision<'_>> = Vec::with_capacity(route.rate_limits.len());
    for &index in &route.rate_limits {
        let decision = snapshot
            .rate_limiter
            .check_request(
                index,
                ctx.identity.as_deref(),
                &request.headers,
                client_ip,
                &mut key,
            )
            .await;
        decisions.push(decision);
    }
    let headers = rate_limit_headers(&decisions);
    let mut pairs = Vec::with_capacity(3);
    if let Some(value) = headers.policy {
        pairs.push((decision::RATELIMIT_POLICY, value));
    }
    if let Some(value) = headers.state {
        pairs.push((decision::RATELIMIT, value));
    }
    match decisions.iter().find(|d| !d.allowed) {
        Some(limited) => {
            ctx.rate_limit = RateLimitDecision::Limited;
            if let Some(value) = headers.retry_after {
                pairs.push(("retry-after", value));
            }
            Err(Denial::RateLimited {
                policy: limited.policy.to_owned(),
                headers: pairs,
            })
        }
        None => {
            ctx.rate_limit = RateLimitDecision::Allowed;
            ctx.rate_limit_headers = pairs;
            take_slots(request, ctx, snapshot, route, client_ip, &mut key)
        }
    }
}

/// A slot of every `concurrency` policy of the route, or 429 for the first that is full (the
/// slots already taken are given back at once).
fn take_slots(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
    route: &Route,
    client_ip: IpAddr,
    key: &mut String,
) -> Result<(), Denial> {
    for &index in &route.concurrency_limits {
        let acquired = snapshot.concurrency.acquire(
            index,
            ctx.identity.as_deref(),
            &request.headers,
            client_ip,
            key,
        );
        match acquired {
            Ok(slot) => ctx.concurrency_slots.push(slot),
            Err(full) => {
                ctx.concurrency_slots.clear();
                ctx.rate_limit = RateLimitDecision::Limited;
                return Err(Denial::RateLimited {
                    policy: full.policy.to_owned(),
                    headers: vec![("retry-after", http::HeaderValue::from_static("1"))],
                });
            }
        }
    }
    Ok(())
}
