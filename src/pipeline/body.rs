//! JSON body transformation in the body hooks: step 5 decides whether the request body is
//! transformed; when the upstream request and response heads are known, their framing is fixed;
//! the body hooks feed chunks to a [`BodyBuffer`]. Bodies not selected stream through untouched
//! with no buffering at all.
//!
//! Framing: a transformed body changes length, so `Content-Length` is removed and the body is
//! sent chunked (HTTP/1.1) or as DATA frames (HTTP/2). Transforming routes ask the upstream for
//! `Accept-Encoding: identity`; a response that still arrives compressed passes unchanged.

use super::context::Context;
use crate::compile::Route;
use crate::config::file::OversizeAction;
use crate::reply::Denial;
use crate::snapshot::Snapshot;
use crate::transform::body::count;
use crate::transform::json::is_json_content_type;
use crate::transform::{BodyBuffer, BodyOutcome, Direction, JsonTransform};
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

/// Step 5: marks the request body for transformation when the route's request transform
/// applies to this caller. Never refuses.
pub fn prepare_request(
    _request: &RequestHeader,
    ctx: &mut Context,
    _snapshot: &Snapshot,
    route: &Route,
) -> Result<(), Denial> {
    if let Some(transform) = &route.request_json {
        if transform.applies(ctx.identity.as_deref()) {
            ctx.request_body = Some(BodyBuffer::default());
        }
    }
    Ok(())
}

/// In `upstream_request_filter`: keeps the request transform only for a JSON body within
/// `max_body` (fixing its framing), and asks the upstream for an uncompressed response when the
/// response will be transformed.
pub fn prepare_upstream_request(
    ctx: &mut Context,
    route: &Route,
    upstream_request: &mut RequestHeader,
) -> pingora::Result<()> {
    if ctx.request_body.is_some() {
        if let Some(transform) = &route.request_json {
            if !select_request(transform, upstream_request) {
                ctx.request_body = None;
            }
        }
    }
    if let Some(transform) = &route.response_json {
        if transform.applies(ctx.identity.as_deref()) {
            upstream_request.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
        }
    }
    Ok(())
}

/// In `response_filter`: starts buffering a response the route transforms, or refuses one
/// known to exceed `max_body` on a route with `oversize: reject` (502).
pub fn prepare_response(
    request: &RequestHeader,
    ctx: &mut Context,
    route: &Route,
    response: &mut ResponseHeader,
) -> Result<(), Denial> {
    let Some(transform) = &route.response_json else {
        return Ok(());
    };
    if !transform.applies(ctx.identity.as_deref()) {
        return Ok(());
    }
    match select_response(transform, request, response) {
        ResponseSelection::Transform => ctx.response_body = Some(BodyBuffer::default()),
        ResponseSelection::PassThrough => {}
        ResponseSelection::RejectOversize => {
            return Err(Denial::UpstreamUnavailable {
                detail: "the upstream response body exceeds this route's max_body".into(),
            })
        }
    }
    Ok(())
}

/// Feeds one chunk of a body being transformed; `chunk` is replaced by what to send on now.
pub fn transform_chunk(
    request: &RequestHeader,
    ctx: &mut Context,
    direction: Direction,
    chunk: &mut Option<Bytes>,
    end_of_stream: bool,
) {
    let Some(route) = ctx.route.as_deref() else {
        return;
    };
    let (transform, buffer) = match direction {
        Direction::Request => (&route.request_json, &mut ctx.request_body),
        Direction::Response => (&route.response_json, &mut ctx.response_body),
    };
    let (Some(transform), Some(buffer)) = (transform, buffer.as_mut()) else {
        return;
    };
    let context = ctx.facts.template_context(
        request,
        &ctx.request_id,
        ctx.identity.as_deref().map(crate::policy::Identity::claims),
    );
    buffer.push(direction, transform, chunk, end_of_stream, &context);
}

fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn is_plain_json(headers: &http::HeaderMap) -> bool {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| is_json_content_type(v.as_bytes()));
    let identity = headers
        .get(http::header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    json && identity
}

/// The decision for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseSelection {
    /// Buffer and transform (framing already fixed).
    Transform,
    /// Stream through untouched.
    PassThrough,
    /// Known to exceed `max_body` on a route with `oversize: reject`: answer 502.
    RejectOversize,
}

/// Whether to transform this response; if so, fixes its framing.
fn select_response(
    transform: &JsonTransform,
    request: &RequestHeader,
    response: &mut ResponseHeader,
) -> ResponseSelection {
    let status = response.status.as_u16();
    let bodyless =
        request.method == http::Method::HEAD || status == 204 || status == 304 || status < 200;
    if bodyless || !is_plain_json(&response.headers) {
        return ResponseSelection::PassThrough;
    }
    if declared_length(&response.headers).is_some_and(|len| len > transform.max_body) {
        count(Direction::Response, BodyOutcome::Oversize);
        return match transform.oversize {
            OversizeAction::Passthrough => ResponseSelection::PassThrough,
            OversizeAction::Reject => ResponseSelection::RejectOversize,
        };
    }
    response.remove_header(&http::header::CONTENT_LENGTH);
    let _ = response.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    ResponseSelection::Transform
}

/// Whether to transform this request body; if so, fixes the upstream request's framing.
fn select_request(transform: &JsonTransform, upstream_request: &mut RequestHeader) -> bool {
    let has_body = declared_length(&upstream_request.headers).is_some_and(|len| len > 0)
        || upstream_request
            .headers
            .contains_key(http::header::TRANSFER_ENCODING);
    if !has_body || !is_plain_json(&upstream_request.headers) {
        return false;
    }
    if declared_length(&upstream_request.headers).is_some_and(|len| len > transform.max_body) {
        count(Direction::Request, BodyOutcome::Oversize);
        return false;
    }
    upstream_request.remove_header(&http::header::CONTENT_LENGTH);
    let _ = upstream_request.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    true
}
