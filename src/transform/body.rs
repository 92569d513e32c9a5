//! Buffering and transforming one JSON body: collects the chunks of one direction of one request
//! up to `max_body`, parses once, applies the route's operations, serializes once. A body that
//! grows past `max_body` is released as it is and the rest streams through untouched.

use super::{JsonTransform, TemplateContext};
use bytes::{Bytes, BytesMut};
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

/// Which way a body travels, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Counts one body outcome in `portcullis_body_transforms_total`.
pub fn count(direction: Direction, outcome: BodyOutcome) {
    let outcome = match outcome {
        BodyOutcome::Transformed => "transformed",
        BodyOutcome::Oversize => "oversize",
        BodyOutcome::InvalidJson => "invalid_json",
    };
    outcome_counter()
        .with_label_values(&[direction.as_str(), outcome])
        .inc();
}

impl BodyBuffer {
    /// Takes one chunk; returns what to send on now (nothing while buffering).
    pub fn push(
        &mut self,
        direction: Direction,
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
