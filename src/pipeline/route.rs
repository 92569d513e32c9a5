//! Step 2, routing: the route of the request's host, path and method (404 when none matches,
//! 405 with `Allow` when only the method does not). The matched route is kept in the context for
//! every later step and hook.

use super::context::Context;
use crate::compile::Route;
use crate::reply::Denial;
use crate::routing::RouteLookup;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// The request's route (also kept in `ctx.route`), or why no route takes the request.
pub fn select(
    request: &RequestHeader,
    ctx: &mut Context,
    snapshot: &Snapshot,
) -> Result<Arc<Route>, Denial> {
    let config = &snapshot.config;
    // A CORS preflight is routed by the method it asks about, to the route with a `cors` policy
    // (a route without one sees the `OPTIONS` request as it is).
    if super::cors::is_preflight(request) {
        let asked = request
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let lookup = config
            .route_table
            .lookup(&ctx.facts.host, ctx.facts.path(request), asked);
        if let RouteLookup::Found { route, .. } = lookup {
            let route = Arc::clone(&config.routes[route]);
            if route.cors.is_some() {
                ctx.route = Some(Arc::clone(&route));
                return Ok(route);
            }
        }
    }
    match config.route_table.lookup(
        &ctx.facts.host,
        ctx.facts.path(request),
        request.method.as_str(),
    ) {
        RouteLookup::Found { route, .. } => {
            let route = Arc::clone(&config.routes[route]);
            ctx.route = Some(Arc::clone(&route));
            Ok(route)
        }
        RouteLookup::MethodNotAllowed { allow } => Err(Denial::MethodNotAllowed { allow }),
        RouteLookup::NotFound => Err(Denial::NoRoute),
    }
}
