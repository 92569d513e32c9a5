//! What the gateway changes on the way through: the upstream request (path rewrite, hop-by-hop
//! headers, `X-Forwarded-*`, request id, route header operations) and the response (request id,
//! route header operations), plus the classification of upstream errors.

use crate::config::RuntimeConfig;
use crate::denial::Denial;
use crate::proxy::RequestContext;
use crate::request_id::REQUEST_ID_HEADER;
use crate::transform::headers::HeaderSink;
use crate::transform::TemplateContext;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;

mod request_facts;
pub use request_facts::{
    client_ip, ip_text, is_tls, peer_ip, push_ip, request_head_size, request_host,
};

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

/// Rewrites the upstream request of a routed request.
pub fn prepare_upstream_request(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &RequestContext,
    config: &RuntimeConfig,
    route_index: usize,
) -> Result<()> {
    let route = &config.routes[route_index];
    let upstream = &config.upstreams[route.upstream];

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

    rewrite_target(upstream_request, ctx, route, session)?;

    let peer_ip = peer_ip(session);
    let peer_trusted =
        peer_ip.is_some_and(|ip| config.trusted_proxies.iter().any(|net| net.contains(&ip)));
    let client_ip = peer_ip.map(ip_text).unwrap_or_default();
    let forwarded_for = match upstream_request
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) if peer_trusted => format!("{previous}, {client_ip}"),
        _ => client_ip.clone(),
    };
    if !forwarded_for.is_empty() {
        upstream_request.insert_header("x-forwarded-for", forwarded_for)?;
    }
    let keep_client_proto =
        peer_trusted && upstream_request.headers.contains_key("x-forwarded-proto");
    if !keep_client_proto {
        upstream_request.insert_header(
            "x-forwarded-proto",
            if is_tls(session) { "https" } else { "http" },
        )?;
    }
    let host = request_host(session.req_header()).into_owned();
    let keep_client_host =
        peer_trusted && upstream_request.headers.contains_key("x-forwarded-host");
    if !keep_client_host && !host.is_empty() {
        upstream_request.insert_header("x-forwarded-host", host.as_str())?;
    }
    if let Some(host_header) = &upstream.settings.host_header {
        upstream_request.insert_header(http::header::HOST, host_header.as_str())?;
    } else if session
        .req_header()
        .headers
        .get(http::header::HOST)
        .is_none()
    {
        // HTTP/2 clients send :authority only; HTTP/1.1 upstreams need Host.
        if let Some(authority) = session.req_header().uri.authority() {
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
        let context = TemplateContext {
            claims: ctx.claims(),
            request_id: ctx.request_id.as_str(),
            client_ip: &client_ip,
            method: session.req_header().method.as_str(),
            host: &host,
            path: session.req_header().uri.path(),
        };
        route
            .request_headers
            .apply(&context, &mut RequestSink(upstream_request));
    }
    Ok(())
}

/// Applies `strip_prefix`, `rewrite_path`, `add_query` and `remove_query` to the upstream URI.
fn rewrite_target(
    upstream_request: &mut RequestHeader,
    ctx: &RequestContext,
    route: &crate::config::runtime::Route,
    session: &Session,
) -> Result<()> {
    let untouched = route.strip_prefix.is_none()
        && route.rewrite_path.is_none()
        && route.add_query.is_empty()
        && route.remove_query.is_empty();
    if untouched {
        return Ok(());
    }
    let mut path = upstream_request.uri.path().to_owned();
    let mut query: Vec<String> = upstream_request
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(prefix) = &route.strip_prefix {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            path = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            };
        }
    }
    if let Some((regex, replacement)) = &route.rewrite_path {
        path = regex.replace(&path, replacement.as_str()).into_owned();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
    }
    if !route.remove_query.is_empty() || !route.add_query.is_empty() {
        query.retain(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !route.remove_query.iter().any(|r| r == name)
                && !route.add_query.iter().any(|(a, _)| a == name)
        });
        let context = template_context(session, &ctx.request_id, ctx.claims());
        for (name, template) in &route.add_query {
            if let Some(value) = template.render(&context.as_context()) {
                query.push(format!("{}={}", encode_query(name), encode_query(&value)));
            }
        }
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let uri = target.parse::<http::Uri>().or_err(
        ErrorType::InternalError,
        "rewritten path is not a valid URI",
    )?;
    upstream_request.set_uri(uri);
    Ok(())
}

/// Percent-encodes a query name or value (RFC 3986 unreserved characters pass).
fn encode_query(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Adds the request id and applies the route's response header operations.
pub fn prepare_response(
    session: &Session,
    response: &mut ResponseHeader,
    ctx: &RequestContext,
    config: &RuntimeConfig,
    route_index: usize,
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
    let route = &config.routes[route_index];
    if !route.response_headers.is_empty() {
        let client_ip = peer_ip(session).map(ip_text).unwrap_or_default();
        let host = request_host(session.req_header());
        let context = TemplateContext {
            claims: ctx.claims(),
            request_id: ctx.request_id.as_str(),
            client_ip: &client_ip,
            method: session.req_header().method.as_str(),
            host: &host,
            path: session.req_header().uri.path(),
        };
        route
            .response_headers
            .apply(&context, &mut ResponseSink(response));
    }
    Ok(())
}

/// Owned request attributes for rendering templates outside the header phases.
pub struct OwnedTemplateContext<'a> {
    claims: Option<&'a serde_json::Value>,
    request_id: &'a str,
    client_ip: String,
    method: &'a str,
    host: String,
    path: &'a str,
}

impl OwnedTemplateContext<'_> {
    pub fn as_context(&self) -> TemplateContext<'_> {
        TemplateContext {
            claims: self.claims,
            request_id: self.request_id,
            client_ip: &self.client_ip,
            method: self.method,
            host: &self.host,
            path: self.path,
        }
    }
}

/// The template context of a request.
pub fn template_context<'a>(
    session: &'a Session,
    request_id: &'a crate::request_id::RequestId,
    claims: Option<&'a serde_json::Value>,
) -> OwnedTemplateContext<'a> {
    let request = session.req_header();
    OwnedTemplateContext {
        claims,
        request_id: request_id.as_str(),
        client_ip: peer_ip(session).map(ip_text).unwrap_or_default(),
        method: request.method.as_str(),
        host: request_host(request).into_owned(),
        path: request.uri.path(),
    }
}

/// The response for a failed proxy attempt, or `None` when the client is gone.
pub fn classify_proxy_error(error: &Error, ctx: &RequestContext) -> Option<Denial> {
    let upstream_name = || {
        ctx.config
            .as_ref()
            .zip(ctx.route)
            .map(|(config, route)| {
                config.upstreams[config.routes[route].upstream]
                    .settings
                    .name
                    .clone()
            })
            .unwrap_or_default()
    };
    match error.etype() {
        ErrorType::Custom("body_too_large") => {
            return Some(Denial::UpstreamUnavailable {
                detail: "the upstream response body exceeds this route's max_body".into(),
            })
        }
        ErrorType::Custom("no_healthy_target") => {
            return Some(Denial::NoHealthyTarget {
                upstream: upstream_name(),
            })
        }
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            return Some(Denial::UpstreamTimeout {
                detail: format!("upstream `{}` did not answer in time", upstream_name()),
            })
        }
        _ => {}
    }
    match error.esource() {
        ErrorSource::Downstream => None,
        _ => Some(Denial::UpstreamUnavailable {
            detail: format!(
                "upstream `{}` failed: {}",
                upstream_name(),
                error.etype().as_str()
            ),
        }),
    }
}

struct RequestSink<'a>(&'a mut RequestHeader);
struct ResponseSink<'a>(&'a mut ResponseHeader);

impl HeaderSink for RequestSink<'_> {
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

impl HeaderSink for ResponseSink<'_> {
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

#[cfg(test)]
mod tests;
