//! JSON body transformation in the body hooks: step 5 decides whether the request body is
//! transformed; when the upstream request and response heads are known, their framing is fixed;
//! the body hooks feed chunks to a [`BodyBuffer`]. Bodies not selected stream through untouched
//! with no buffering at all.
//!
//! Framing: a transformed body changes length, so `Content-Length` is removed and the body is
//! sent chunked (HTTP/1.1) or as DATA frames (HTTP/2). Transforming routes ask the upstream for
//! `Accept-Encoding: identity`; a response that still arrives compressed passes unchanged.
//!
//! Whether a request has a body, and how it is framed, is read off the *client* request: by the
//! time `upstream_request_filter` runs, Pingora has stripped `Transfer-Encoding` from the
//! upstream request (it re-frames the body itself afterwards), and an HTTP/2 body needs neither
//! header. Every framing of a JSON request body is therefore transformed, or refused.

use super::context::Context;
use crate::compile::Route;
use crate::config::file::{InvalidBodyAction, OversizeAction};
use crate::reply::Denial;
use crate::snapshot::Snapshot;
use crate::transform::body::count;
use crate::transform::json::is_json_content_type;
use crate::transform::{BodyBuffer, BodyOutcome, BodyRefusal, Direction, JsonTransform};
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

/// In `upstream_request_filter`: keeps the request transform only for a JSON body (fixing its
/// framing), refuses one the route cannot transform (too large, compressed) unless the route
/// lets it pass, and asks the upstream for an uncompressed response when the response will be
/// transformed. `client_has_body` comes from the client session, not from headers.
pub fn prepare_upstream_request(
    client_request: &RequestHeader,
    client_has_body: bool,
    ctx: &mut Context,
    route: &Route,
    upstream_request: &mut RequestHeader,
) -> Result<(), Denial> {
    if ctx.request_body.is_some() {
        if let Some(transform) = &route.request_json {
            let selected =
                select_request(transform, client_request, client_has_body, upstream_request)?;
            if !selected {
                ctx.request_body = None;
            }
        }
    }
    if let Some(transform) = &route.response_json {
        if transform.applies(ctx.identity.as_deref()) {
            let _ = upstream_request.insert_header(http::header::ACCEPT_ENCODING, "identity");
        }
    }
    Ok(())
}

/// The reply for a refused body: the client's own body (400/413), or the upstream's (502, sent
/// when the response head has not reached the client yet; otherwise the response is cut off).
fn refusal_denial(direction: Direction, refusal: BodyRefusal) -> Denial {
    match (direction, refusal) {
        (Direction::Request, BodyRefusal::TooLarge { limit }) => {
            Denial::RequestBodyTooLarge { limit }
        }
        (Direction::Request, BodyRefusal::InvalidJson) => Denial::RequestBodyInvalid,
        (Direction::Response, refusal) => Denial::ResponseBodyRefused {
            detail: format!("the upstream response was refused: {refusal}"),
        },
    }
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

/// Feeds one chunk of a body being transformed; `chunk` is replaced by what to send on now. An
/// error means the body is refused and nothing more of it may be sent.
pub fn transform_chunk(
    request: &RequestHeader,
    ctx: &mut Context,
    direction: Direction,
    chunk: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<(), Denial> {
    let Some(route) = ctx.route.as_deref() else {
        return Ok(());
    };
    let (transform, buffer) = match direction {
        Direction::Request => (&route.request_json, &mut ctx.request_body),
        Direction::Response => (&route.response_json, &mut ctx.response_body),
    };
    let (Some(transform), Some(buffer)) = (transform, buffer.as_mut()) else {
        return Ok(());
    };
    let context = ctx.facts.template_context(
        request,
        &ctx.request_id,
        ctx.identity.as_deref().map(crate::policy::Identity::claims),
    );
    if let Err(refusal) = buffer.push(direction, transform, chunk, end_of_stream, &context) {
        if direction == Direction::Response {
            // The upstream's fault, not the client's: worth an operator's attention.
            tracing::warn!(route = route.name.as_str(), %refusal, "response body refused");
        }
        return Err(refusal_denial(direction, refusal));
    }
    if direction == Direction::Request && chunk.is_none() && !end_of_stream {
        // Pingora reads a `None` request chunk as the end of the body and would finish the
        // upstream body early; an empty chunk means "nothing to send yet".
        *chunk = Some(Bytes::new());
    }
    Ok(())
}

fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| is_json_content_type(v.as_bytes()))
}

fn is_identity_encoded(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

fn is_plain_json(headers: &http::HeaderMap) -> bool {
    is_json(headers) && is_identity_encoded(headers)
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
        return match transform.oversize_action(Direction::Response) {
            OversizeAction::Passthrough => ResponseSelection::PassThrough,
            OversizeAction::Reject => ResponseSelection::RejectOversize,
        };
    }
    response.remove_header(&http::header::CONTENT_LENGTH);
    let _ = response.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    ResponseSelection::Transform
}

/// Whether to transform this request body; if so, fixes the upstream request's framing. The
/// body is JSON when the client says so or the route makes the upstream request say so. A JSON
/// body the gateway cannot transform (compressed, or declared larger than `max_body`) is
/// refused unless the route lets it pass.
fn select_request(
    transform: &JsonTransform,
    client_request: &RequestHeader,
    client_has_body: bool,
    upstream_request: &mut RequestHeader,
) -> Result<bool, Denial> {
    if !client_has_body || !(is_json(&client_request.headers) || is_json(&upstream_request.headers))
    {
        return Ok(false);
    }
    if !is_identity_encoded(&client_request.headers) {
        count(Direction::Request, BodyOutcome::InvalidJson);
        return match transform.invalid_action(Direction::Request) {
            InvalidBodyAction::Reject => Err(Denial::RequestBodyEncoded),
            InvalidBodyAction::Pass => Ok(false),
        };
    }
    if declared_length(&client_request.headers).is_some_and(|len| len > transform.max_body) {
        count(Direction::Request, BodyOutcome::Oversize);
        return match transform.oversize_action(Direction::Request) {
            OversizeAction::Reject => Err(Denial::RequestBodyTooLarge {
                limit: transform.max_body,
            }),
            OversizeAction::Passthrough => Ok(false),
        };
    }
    upstream_request.remove_header(&http::header::CONTENT_LENGTH);
    let _ = upstream_request.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    Ok(true)
}
