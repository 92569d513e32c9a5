//! What the gateway changes on the way through. To the upstream (`upstream_request_filter`):
//! hop-by-hop headers, the target ([`rewrite`]), `X-Forwarded-*`, `Host`, the request id, the
//! claims header and the route's request header operations. Back to the client
//! (`response_filter`): the request id, the `RateLimit` headers of an admitted request,
//! hop-by-hop headers out, and the route's response header operations.

use super::context::Context;
use super::facts::RequestFacts;
use super::rewrite;
use crate::compile::Route;
use crate::ip_text::ip_text;
use crate::request_id::REQUEST_ID_HEADER;
use crate::transform::headers::HeaderSink;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::borrow::Cow;

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 5] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
];

/// Whether the request carries `Connection` or any hop-by-hop header: one pass over the few
/// headers a request has, so the common case (none) removes nothing and parses no name.
fn has_hop_by_hop(request: &RequestHeader) -> bool {
    request.headers.keys().any(|name| {
        name == http::header::CONNECTION
            || name == http::header::TE
            || name == http::header::TRAILER
            || name == http::header::PROXY_AUTHORIZATION
            || name.as_str() == "keep-alive"
            || name.as_str() == "proxy-connection"
    })
}

fn remove_hop_by_hop(headers_names_in_connection: Vec<String>, request: &mut RequestHeader) {
    for name in headers_names_in_connection {
        if name != "upgrade" {
            request.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        if name == "te" {
            let trailers_only = request
                .headers
                .get("te")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
            if trailers_only {
                continue;
            }
        }
        request.remove_header(name);
    }
}

/// Rewrites the upstream request of a routed request: hop-by-hop headers out, the target path
/// and query, `X-Forwarded-*`, `Host`, the request id, the claims header and the route's header
/// operations.
pub fn prepare_upstream_request(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &Context,
    route: &Route,
) -> Result<()> {
    if has_hop_by_hop(upstream_request) {
        let connection_tokens: Vec<String> = upstream_request
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive")
            .collect();
        let upgrade = connection_tokens.iter().any(|t| t == "upgrade");
        remove_hop_by_hop(connection_tokens, upstream_request);
        if !upgrade {
            upstream_request.remove_header(&http::header::CONNECTION);
        }
    }

    rewrite::rewrite_target(session, upstream_request, ctx, route)?;
    set_forwarded_headers(upstream_request, &ctx.facts)?;

    let client_request = session.req_header();
    if let Some(host_header) = &route.upstream.settings.host_header {
        upstream_request.insert_header(http::header::HOST, host_header.as_str())?;
    } else if client_request.headers.get(http::header::HOST).is_none() {
        // HTTP/2 clients send :authority only; HTTP/1.1 upstreams need Host.
        if let Some(authority) = client_request.uri.authority() {
            upstream_request.insert_header(http::header::HOST, authority.as_str())?;
        }
    }
    upstream_request.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;

    if let (Some(name), Some(claims)) = (&route.claims_header, ctx.claims()) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        upstream_request.insert_header(name.clone(), encoded)?;
    } else if let Some(name) = &route.claims_header {
        upstream_request.remove_header(name);
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
