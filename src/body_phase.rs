//! JSON body transformation in the body phases: decides per request whether a body is
//! transformed, buffers it up to `max_body`, parses once, applies the route's operations,
//! serializes once. Bodies not selected stream through untouched with no buffering at all.
//!
//! Framing: a transformed body changes length, so `Content-Length` is removed and the body is
//! sent chunked (HTTP/1.1) or as DATA frames (HTTP/2). Transforming routes ask the upstream for
//! `Accept-Encoding: identity`; a response that still arrives compressed passes unchanged.

use crate::transform::json::is_json_content_type;
use crate::transform::{JsonTransform, TemplateContext};
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::OnceLock;

/// Buffering state of one direction of one request.
#[derive(Debug, Default)]
pub struct BodyBuffer {
    buffer: BytesMut,
    /// Gave up transforming (too large): everything from now on passes through.
    passthrough: bool,
}

/// What happened to one body, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOutcome {
    Transformed,
    Oversize,
    InvalidJson,
}

fn outcome_counter() -> &'static prometheus::IntCounterVec {
    static COUNTER: OnceLock<prometheus::IntCounterVec> = OnceLock::new();
    COUNTER.get_or_init(|| {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "portcullis_body_transforms_total",
                "JSON body transformations by direction and outcome",
            ),
            &["direction", "outcome"],
        )
        .expect("valid metric");
        let _ = prometheus::register(Box::new(counter.clone()));
        counter
    })
}

fn count(direction: &str, outcome: BodyOutcome) {
    let outcome = match outcome {
        BodyOutcome::Transformed => "transformed",
        BodyOutcome::Oversize => "oversize",
        BodyOutcome::InvalidJson => "invalid_json",
    };
    outcome_counter()
        .with_label_values(&[direction, outcome])
        .inc();
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
pub enum ResponseSelection {
    /// Buffer and transform (framing already fixed).
    Transform,
    /// Stream through untouched.
    PassThrough,
    /// Known to exceed `max_body` on a route with `oversize: reject`: answer 502.
    RejectOversize,
}

/// Whether to transform this response; if so, fixes its framing.
pub fn select_response(
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
        count("response", BodyOutcome::Oversize);
        return match transform.oversize {
            crate::config::file::OversizeAction::Passthrough => ResponseSelection::PassThrough,
            crate::config::file::OversizeAction::Reject => ResponseSelection::RejectOversize,
        };
    }
    response.remove_header(&http::header::CONTENT_LENGTH);
    let _ = response.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    ResponseSelection::Transform
}

/// Whether to transform this request body; if so, fixes the upstream request's framing.
pub fn select_request(transform: &JsonTransform, upstream_request: &mut RequestHeader) -> bool {
    let has_body = declared_length(&upstream_request.headers).is_some_and(|len| len > 0)
        || upstream_request
            .headers
            .contains_key(http::header::TRANSFER_ENCODING);
    if !has_body || !is_plain_json(&upstream_request.headers) {
        return false;
    }
    if declared_length(&upstream_request.headers).is_some_and(|len| len > transform.max_body) {
        count("request", BodyOutcome::Oversize);
        return false;
    }
    upstream_request.remove_header(&http::header::CONTENT_LENGTH);
    let _ = upstream_request.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    true
}

impl BodyBuffer {
    /// Takes one chunk; returns what to send on now (nothing while buffering).
    pub fn push(
        &mut self,
        direction: &str,
        transform: &JsonTransform,
        chunk: &mut Option<Bytes>,
        end_of_stream: bool,
        context: &TemplateContext<'_>,
    ) {
        if self.passthrough {
            return;
        }
        if let Some(bytes) = chunk.take() {
            self.buffer.extend_from_slice(&bytes);
        }
        if self.buffer.len() > transform.max_body {
            // Too large to transform: release what was held and stream the rest untouched.
            count(direction, BodyOutcome::Oversize);
            self.passthrough = true;
            *chunk = Some(std::mem::take(&mut self.buffer).freeze());
            return;
        }
        if !end_of_stream {
            return;
        }
        let raw = std::mem::take(&mut self.buffer).freeze();
        if raw.is_empty() {
            return;
        }
        match serde_json::from_slice::<serde_json::Value>(&raw) {
            Ok(mut document) => {
                transform.apply(&mut document, context);
                match serde_json::to_vec(&document) {
                    Ok(bytes) => {
                        count(direction, BodyOutcome::Transformed);
                        *chunk = Some(Bytes::from(bytes));
                    }
                    Err(_) => *chunk = Some(raw),
                }
            }
            Err(_) => {
                count(direction, BodyOutcome::InvalidJson);
                *chunk = Some(raw);
            }
        }
    }
}
