//! The forward-auth endpoint (`forward_auth.path`, default `/.portcullis/auth`): another proxy
//! — nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth` — asks whether the request
//! it holds may pass. The original request is rebuilt from the proxy's headers
//! (`X-Forwarded-Method` / `X-Original-Method`, `X-Forwarded-Uri` / `X-Original-URI`,
//! `X-Forwarded-Host` or `Host`, and the client's own headers: `Cookie`, `Authorization`,
//! `Accept`…) and runs through the same steps as a proxied request: route, authentication (bearer
//! token or browser session), rules and rate limits.
//!
//! Allowed: `200` with the route's identity headers (`request.set_headers` and the like,
//! rendered as for the upstream) and a renewed session's `Set-Cookie`. Refused: the usual
//! 401/403/429 problem. A browser without a session gets the `302` to sign in, unless the query
//! says `redirect=false` (nginx's `auth_request` turns anything but 2xx, 401 and 403 into a 500:
//! there the 401 sends the browser on with `error_page 401`).

use super::context::Context;
use super::facts::RequestFacts;
use super::forward::{claims_header_value, session_bearer};
use super::steps;
use crate::reply::{Denial, Reply};
use crate::routing::PathRejection;
use crate::sign_in::redirect::{form_pairs, form_value};
use crate::snapshot::Snapshot;
use crate::transform::headers::HeaderSink;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Headers of the check itself, not of the original request.
const CHECK_HEADERS: [&str; 4] = [
    "x-forwarded-method",
    "x-original-method",
    "x-forwarded-uri",
    "x-original-uri",
];

/// Whether `path` is the forward-auth endpoint.
pub fn is_forward_auth(snapshot: &Snapshot, path: &str) -> bool {
    snapshot.config.forward_auth_path.as_deref() == Some(path)
}

/// Answers a forward-auth check.
pub async fn serve(session: &Session, ctx: &mut Context, snapshot: &Snapshot) -> Reply {
    let check = session.req_header();
    let query = check.uri.query().unwrap_or_default();
    ctx.sign_in_redirects = form_value(&form_pairs(query), "redirect") != Some("false");
    let original = match original_request(check) {
        Ok(original) => original,
        Err(denial) => return denial.into(),
    };
    ctx.facts = RequestFacts::read_as(session, &original, &snapshot.config.trusted_proxies);
    if let Err(reply) = steps::run(&original, ctx, snapshot).await {
        return reply;
    }
    Reply::Allowed {
        headers: identity_headers(&original, ctx),
        set_cookies: std::mem::take(&mut ctx.response_cookies),
    }
}

/// The request the proxy asks about.
fn original_request(check: &RequestHeader) -> Result<RequestHeader, Denial> {
    let first = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| check.headers.get(*name))
            .and_then(|value| value.to_str().ok())
    };
    let method = first(["x-forwarded-method", "x-original-method"]).unwrap_or("GET");
    let uri = first(["x-forwarded-uri", "x-original-uri"]).unwrap_or("/");
    if !uri.starts_with('/') {
        return Err(Denial::PathNotNormalized {
            why: PathRejection::NotAbsolute,
        });
    }
    let bad_uri = |_| Denial::PathNotNormalized {
        why: PathRejection::NotAbsolute,
    };
    let mut original =
        RequestHeader::build(method, uri.as_bytes(), Some(check.headers.len())).map_err(bad_uri)?;
    for (name, value) in &check.headers {
        if !CHECK_HEADERS.contains(&name.as_str()) && name != http::header::HOST {
            original
                .append_header(name.clone(), value.clone())
                .map_err(bad_uri)?;
        }
    }
    let host = check
        .headers
        .get("x-forwarded-host")
        .or_else(|| check.headers.get(http::header::HOST));
    if let Some(host) = host {
        original
            .insert_header(http::header::HOST, host.clone())
            .map_err(bad_uri)?;
    }
    Ok(original)
}

/// What the route would have sent the upstream about the caller: its request header
/// operations, its claims header and, with `pass_access_token`, the session's access token.
fn identity_headers(original: &RequestHeader, ctx: &Context) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = CollectedHeaders(Vec::new());
    let Some(route) = ctx.route.as_deref() else {
        return headers.0;
    };
    if !route.request_headers.is_empty() {
        let context = ctx
            .facts
            .template_context(original, &ctx.request_id, ctx.claims());
        route.request_headers.apply(&context, &mut headers);
    }
    let claims = route.claims_header.as_ref().zip(claims_header_value(ctx));
    let bearer = session_bearer(ctx, route).map(|b| (&http::header::AUTHORIZATION, b));
    for (name, value) in claims.into_iter().chain(bearer) {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
    headers.0
}

/// Header operations collected as a list of response headers.
struct CollectedHeaders(Vec<(HeaderName, HeaderValue)>);

impl HeaderSink for CollectedHeaders {
    fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|(existing, _)| existing != name);
    }

    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        self.remove(name);
        self.0.push((name.clone(), value));
    }

    fn append(&mut self, name: &HeaderName, value: HeaderValue) {
        self.0.push((name.clone(), value));
    }
}
