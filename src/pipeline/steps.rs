//! The request steps, in the order a request meets them. Each step owns one decision and either
//! lets the request go on (`Ok`) or answers it with a [`Reply`] (a refusal, or the redirect that
//! starts a sign-in) that `request_filter` sends.
//! Adding a step is one file in this folder and one line below.
//!
//! | step | file | refuses with |
//! |---|---|---|
//! | guard | [`guard`](super::guard) | 431 head too large, 400 path not in normal form |
//! | route | [`route`](super::route) | 404 no route, 405 method not allowed (a CORS preflight is routed by its requested method) |
//! | client IPs | [`client_ips`](super::client_ips) | 403 `ip_not_allowed` |
//! | CORS | [`cors`](super::cors) | answers a preflight (204, or 403 `cors_preflight_refused`); keeps the response's CORS headers |
//! | authenticate | [`authenticate`](super::authenticate) | 401, 403, 503 (no provider keys yet); a browser without a session is redirected to sign in |
//! | rate limit | [`rate_limit`](super::rate_limit) | 429 |
//! | request body | [`body`](super::body) | never (marks the body for transformation) |

use super::context::Context;
use super::{authenticate, body, client_ips, cors, decision, guard, rate_limit, route, spans};
use crate::reply::Reply;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// Runs every step on the request's head; the first refusal ends the request. A request with a
/// decision trace ([`Context::decision`]) has each step's outcome recorded; a request being
/// explained (`portcullis explain`) counts no rate limit.
pub async fn run(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
) -> Result<(), Reply> {
    let guarded = guard::check(request, ctx, snapshot);
    decision::guard(ctx, &guarded);
    guarded?;
    let routed = route::select(request, ctx, snapshot);
    decision::route(request, ctx, snapshot, &routed);
    let route = routed?;
    let admitted = client_ips::check(ctx, &route);
    decision::client_ips(ctx, &route, &admitted);
    admitted?;
    let cors_checked = cors::apply(request, ctx, &route);
    decision::cors(request, ctx, &route, &cors_checked);
    cors_checked?;
    let started = spans::phase_start(ctx);
    let authenticated = authenticate::check(request, ctx, snapshot, &route).await;
    spans::record_phase(ctx, "authenticate", started);
    authenticated?;
    if ctx.decision.as_ref().is_some_and(|trace| trace.explaining) {
        decision::rate_limits(request, ctx, snapshot, &route, None);
    } else {
        let started = spans::phase_start(ctx);
        let limited = rate_limit::check(request, ctx, snapshot, &route).await;
        spans::record_phase(ctx, "rate_limit", started);
        decision::rate_limits(request, ctx, snapshot, &route, Some(&limited));
        limited?;
    }
    body::prepare_request(request, ctx, snapshot, &route)?;
    decision::request_body(ctx, &route);
    Ok(())
}

#[cfg(test)]
mod tests;
