//! The rate-limit step of `request_filter`: checks every policy of the route (all must allow),
//! answers 429 with `Retry-After` when one is exhausted, and keeps the `RateLimit-Policy` /
//! `RateLimit` headers for the response of an allowed request.

use crate::config::runtime::Route;
use crate::config::RuntimeConfig;
use crate::denial::Denial;
use crate::forwarding;
use crate::proxy::RequestContext;
use crate::ratelimit::{decision, rate_limit_headers, Decision};
use pingora::proxy::Session;
use std::net::{IpAddr, Ipv4Addr};

/// `None` when the request may proceed.
pub async fn check(
    session: &Session,
    ctx: &mut RequestContext,
    config: &RuntimeConfig,
    route: &Route,
) -> Option<Denial> {
    if route.rate_limits.is_empty() {
        return None;
    }
    let limiter = config.rate_limiter.as_ref()?;
    let client_ip = forwarding::client_ip(session, &config.trusted_proxies)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut key = String::with_capacity(64);
    let mut decisions: Vec<Decision<'_>> = Vec::with_capacity(route.rate_limits.len());
    for &index in &route.rate_limits {
        let decision = limiter
            .check_request(
                index,
                ctx.identity.as_deref(),
                &session.req_header().headers,
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
            ctx.rate_limit_decision = "limited";
            if let Some(value) = headers.retry_after {
                pairs.push(("retry-after", value));
            }
            Some(Denial::RateLimited {
                policy: limited.policy.to_owned(),
                headers: pairs,
            })
        }
        None => {
            ctx.rate_limit_decision = "allowed";
            ctx.rate_limit_headers = pairs;
            None
        }
    }
}
