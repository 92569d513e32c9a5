//! What the gateway changes on the way through. To the upstream (`upstream_request_filter`):
//! client headers it does not pass on ([`strip`]), the normalized path, the target ([`rewrite`]), `X-Forwarded-*`, `Host`, the request id, the
//! claims header, the identity assertion, the session (gateway cookies out, access token in when
//! asked) and the route's request header operations. Back to the client (`response_filter`): the request id, the
//! `RateLimit` headers of an admitted request, a refreshed session's cookies, the route's CORS
//! headers, hop-by-hop headers out, and the route's response header operations.

use super::context::Context;
use super::facts::RequestFacts;
use super::rewrite;
use super::strip;
use crate::compile::{Route, RouteAuth};
use crate::ip_text::ip_text;
use crate::request_id::REQUEST_ID_HEADER;
use crate::sign_in::cookie_jar;
use crate::transform::headers::HeaderSink;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::borrow::Cow;

/// Rewrites the upstream request of a routed request: hop-by-hop headers out, the target path
/// and query, `X-Forwarded-*`, `Host`, the request id, the claims header and the route's header
/// operations.
pub fn prepare_upstream_request(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &Context,
    route: &Route,
) -> Result<()> {
    strip::client_headers(upstream_request, &ctx.facts, route);
    if let Some(path) = &ctx.facts.normalized_path {
        // The upstream sees the path the route was chosen by.
        set_path(upstream_request, path)?;
    }
    rewrite::rewrite_target(session, upstream_request, ctx, route)?;
    set_forwarded_headers(upstream_request, &ctx.facts)?;

    let client_request = session.req_header();
    if let Some(host_header) = &route.upstream.settings.host_header {
        upstream_request.insert_header(http::header::HOST, host_header.as_str())?;
    } else if let Some(normalized) = &ctx.facts.upstream_host {
        upstream_request.insert_header(http::header::HOST, normalized.as_str())?;
    } else if client_request.headers.get(http::header::HOST).is_none() {
        // HTTP/2 clients send :authority only; HTTP/1.1 upstreams need Host.
        if let Some(authority) = client_request.uri.authority() {
            upstream_request.insert_header(http::header::HOST, authority.as_str())?;
        }
    }
    upstream_request.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    upstream_request.insert_header("traceparent", &ctx.trace.upstream_traceparent()[..])?;
    forward_session(upstream_request, ctx, route)?;
    if let Some(name) = &route.identity_assertion {
        // Never the client's own: only a freshly minted one goes upstream.
        upstream_request.remove_header(name);
        let minted = ctx.identity.as_deref().and_then(|identity| {
            ctx.snapshot
                .assertions
                .assertion(identity, &route.upstream.settings.name)
        });
        if let Some(assertion) = minted {
            upstream_request.insert_header(name.clone(), assertion.as_ref())?;
        }
    }

    if let Some(name) = &route.claims_header {
        match claims_header_value(ctx) {
            Some(encoded) => upstream_request.insert_header(name.clone(), encoded)?,
            None => {
                upstream_request.remove_header(name);
            }
        }
    }

    if !route.request_headers.is_empty() {
        let context = ctx
            .facts
            .template_context(client_request, &ctx.request_id, ctx.claims());
        route
            .request_headers
            .apply(&context, &mut RequestSink(upstream_request));
    }
    Ok(())
}

/// The browser-session part of the upstream request: the gateway's cookies never reach an
/// upstream (on every route, since the browser sends them to the whole host), and a route with
/// `pass_access_token` gets the session's access token as a bearer token.
fn forward_session(
    upstream_request: &mut RequestHeader,
    ctx: &Context,
    route: &Route,
) -> Result<()> {
    let has_cookies = upstream_request.headers.contains_key(http::header::COOKIE);
    if let (Some(sign_in), true) = (ctx.snapshot.sign_in.as_deref(), has_cookies) {
        let cookies: Vec<String> = upstream_request
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|header| {
                cookie_jar::without_cookies(header, |name| sign_in.settings.is_gateway_cookie(name))
            })
            .collect();
        upstream_request.remove_header(&http::header::COOKIE);
        if !cookies.is_empty() {
            upstream_request.insert_header(http::header::COOKIE, cookies.join("; "))?;
        }
    }
    if let Some(bearer) = session_bearer(ctx, route) {
        upstream_request.insert_header(http::header::AUTHORIZATION, bearer)?;
    }
    Ok(())
}

/// The verified claims as one base64url JSON value (the route's `claims_header`).
pub fn claims_header_value(ctx: &Context) -> Option<String> {
    use base64::Engine;
    let claims = ctx.claims()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.text()))
}

/// `Bearer <the session's access token>` for a route with `pass_access_token`.
pub fn session_bearer(ctx: &Context, route: &Route) -> Option<String> {
    let passes_token = matches!(
        route.auth,
        RouteAuth::Verify {
            pass_access_token: true,
            ..
        }
    );
    let token = ctx
        .session_access_token
        .as_deref()
        .filter(|_| passes_token)?;
    Some(format!("Bearer {token}"))
}

/// Replaces the path of the upstream request, keeping its query.
fn set_path(upstream_request: &mut RequestHeader, path: &str) -> Result<()> {
    let target = match upstream_request.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let uri = target.parse::<http::Uri>().or_err(
        ErrorType::InternalError,
        "normalized path is not a valid URI",
    )?;
    upstream_request.set_uri(uri);
    Ok(())
}

/// `X-Forwarded-For` (the socket peer appended to a trusted proxy's list, else the peer alone),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (a trusted proxy's values are kept).
fn set_forwarded_headers(upstream_request: &mut RequestHeader, facts: &RequestFacts) -> Result<()> {
    let peer_text = if facts.peer_ip == facts.client_ip {
        Cow::Borrowed(facts.client_ip_text.as_str())
    } else {
        Cow::Owned(facts.peer_ip.map(ip_text).unwrap_or_default())
    };
    let forwarded_for = match upstream_request
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) if facts.peer_trusted => format!("{previous}, {peer_text}"),
        _ => peer_text.into_owned(),
    };
    if !forwarded_for.is_empty() {
        upstream_request.insert_header("x-forwarded-for", forwarded_for)?;
    }
    let keep_client_proto =
        facts.peer_trusted && upstream_request.headers.contains_key("x-forwarded-proto");
    if !keep_client_proto {
        upstream_request.insert_header(
            "x-forwarded-proto",
            if facts.tls { "https" } else { "http" },
        )?;
    }
    let keep_client_host =
        facts.peer_trusted && upstream_request.headers.contains_key("x-forwarded-host");
    if !keep_client_host && !facts.host.is_empty() {
        upstream_request.insert_header("x-forwarded-host", facts.host.as_str())?;
    }
    Ok(())
}

/// Adds the request id and applies the route's response header operations.
pub fn prepare_response(
    session: &Session,
    response: &mut ResponseHeader,
    ctx: &Context,
    route: &Route,
) -> Result<()> {
    response.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    for (name, value) in &ctx.rate_limit_headers {
        response.insert_header(*name, value.clone())?;
    }
    for cookie in &ctx.response_cookies {
        response.append_header(http::header::SET_COOKIE, cookie.as_str())?;
    }
    // The route's CORS policy speaks for the upstream (its own CORS headers are replaced);
    // `Vary` is added to, never replaced.
    for (name, value) in &ctx.cors_headers {
        if *name == http::header::VARY {
            response.append_header(name.clone(), value.clone())?;
        } else {
            response.insert_header(name.clone(), value.clone())?;
        }
    }
    if response
        .headers
        .keys()
        .any(|name| name.as_str() == "keep-alive" || name.as_str() == "proxy-connection")
    {
        response.remove_header("keep-alive");
        response.remove_header("proxy-connection");
    }
    if !route.response_headers.is_empty() {
        let context =
            ctx.facts
                .template_context(session.req_header(), &ctx.request_id, ctx.claims());
        route
            .response_headers
            .apply(&context, &mut ResponseSink(response));
    }
    Ok(())
}

/// The upstream request and the response as targets of header operations.
macro_rules! header_sink {
    ($sink:ident, $header:ty) => {
        struct $sink<'a>(&'a mut $header);

        impl HeaderSink for $sink<'_> {
            fn remove(&mut self, name: &HeaderName) {
                self.0.remove_header(name);
            }
            fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
                let _ = self.0.insert_header(name.clone(), value);
            }
            fn append(&mut self, name: &HeaderName, value: HeaderValue) {
                let _ = self.0.append_header(name.clone(), value);
            }
        }
    };
}

header_sink!(RequestSink, RequestHeader);
header_sink!(ResponseSink, ResponseHeader);
