//! Step 4, CORS: on a route with a `cors` policy, a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`; the route step chose the route by the requested method) is
//! answered here, before authentication and rate limits — 204 with the policy's headers, or 403
//! `cors_preflight_refused`. Any other request gets the headers of its origin kept in the context
//! for its response, whoever answers it (the upstream, or the gateway with a 401/403/429).

use super::context::Context;
use crate::compile::Route;
use crate::reply::{Denial, Reply};
use pingora::http::RequestHeader;

/// Whether `request` is a CORS preflight.
pub fn is_preflight(request: &RequestHeader) -> bool {
    request.method == http::Method::OPTIONS
        && request.headers.contains_key(http::header::ORIGIN)
        && request
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn header(request: &RequestHeader, name: http::HeaderName) -> Option<&str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Err` with the preflight's answer; `Ok` (CORS headers kept) for every other request.
pub fn apply(request: &RequestHeader, ctx: &mut Context, route: &Route) -> Result<(), Reply> {
    let Some(cors) = &route.cors else {
        return Ok(());
    };
    let origin = header(request, http::header::ORIGIN);
    if is_preflight(request) {
        let method = header(request, http::header::ACCESS_CONTROL_REQUEST_METHOD).unwrap_or("");
        let requested = header(request, http::header::ACCESS_CONTROL_REQUEST_HEADERS);
        return Err(
            match cors.preflight(origin.unwrap_or(""), method, requested) {
                Ok(headers) => Reply::Preflight { headers },
                Err(refusal) => {
                    ctx.cors_headers = cors.actual(None);
                    Denial::CorsPreflightRefused {
                        why: refusal.as_str(),
                    }
                    .into()
                }
            },
        );
    }
    ctx.cors_headers = cors.actual(origin);
    Ok(())
}
