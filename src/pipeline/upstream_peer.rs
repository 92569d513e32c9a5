//! Choosing the upstream target (`upstream_peer`) and accounting for the outcome of connecting
//! to it: a connection counts for the target's passive health, and a failed connection is
//! retried on another target while untried healthy ones remain.

use super::context::Context;
use crate::compile::Route;
use crate::reply::Denial;
use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;
use std::time::Instant;

/// The peer for the next attempt, or [`Denial::NoHealthyTarget`].
pub fn select(ctx: &mut Context, route: &Route) -> Result<Box<HttpPeer>, Denial> {
    let upstream = &route.upstream;
    let Some(target) = upstream.select(&ctx.upstream.tried) else {
        return Err(Denial::NoHealthyTarget {
            upstream: upstream.settings.name.clone(),
        });
    };
    let peer = upstream.peer(&target);
    ctx.upstream.target = Some(target);
    ctx.upstream.started.get_or_insert_with(Instant::now);
    Ok(Box::new(peer))
}

/// The connection to the chosen target is up: it counts as a success for its health.
pub fn connected(ctx: &Context) {
    if let (Some(route), Some(target)) = (&ctx.route, &ctx.upstream.target) {
        route.upstream.report_success(target);
    }
}

/// The connection failed: it counts against the target, and the error is marked for retry when
/// another target can still be tried (at most twice the number of targets in all).
pub fn connection_failed(ctx: &mut Context, mut error: Box<Error>) -> Box<Error> {
    let (Some(route), Some(target)) = (&ctx.route, ctx.upstream.target.take()) else {
        return error;
    };
    let upstream = &route.upstream;
    upstream.report_failure(&target);
    ctx.upstream.tried.push(target.address);
    let attempts_left = ctx.upstream.tried.len() < upstream.settings.targets.len().max(1) * 2;
    error.set_retry(attempts_left && upstream.select(&ctx.upstream.tried).is_some());
    error
}
