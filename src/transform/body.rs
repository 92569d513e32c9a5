//! Buffering and transforming one JSON body: collects the chunks of one direction of one request
//! up to `max_body`, parses once, applies the route's operations, serializes once.
//!
//! A body the transform cannot change is either released unchanged or refused, as the route
//! says ([`JsonTransform::oversize_action`], [`JsonTransform::invalid_action`]): a body that grows
//! past `max_body` streams on untouched or is refused; an unparsable one (see
//! [`super::json::parse_document`]) passes as it is or is refused. A refused body sends nothing
//! on: what was buffered is dropped.

use super::json::{parse_document, Direction};
use super::{JsonTransform, TemplateContext};
use crate::config::file::{InvalidBodyAction, OversizeAction};
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

/// Why a body was refused instead of being forwarded (nothing of it was sent on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    #[error("the body exceeds this route's max_body of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body is not valid JSON and this route does not pass invalid bodies")]
    InvalidJson,
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
    /// Takes one chunk; `chunk` is replaced by what to send on now (nothing while buffering).
    /// An error means the body is refused: `chunk` is left empty and nothing more may be sent.
    pub fn push(
        &mut self,
        direction: Direction,
        transform: &JsonTransform,
        chunk: &mut Option<Bytes>,
        end_of_stream: bool,
        context: &TemplateContext<'_>,
    ) -> Result<(), BodyRefusal> {
        if self.passthrough {
            return Ok(());
        }
        if let Some(bytes) = chunk.take() {
            self.buffer.extend_from_slice(&bytes);
        }
        if self.buffer.len() > transform.max_body {
            count(direction, BodyOutcome::Oversize);
            let held = std::mem::take(&mut self.buffer);
            return match transform.oversize_action(direction) {
                OversizeAction::Reject => Err(BodyRefusal::TooLarge {
                    limit: transform.max_body,
                }),
                OversizeAction::Passthrough => {
                    // Release what was held and stream the rest untouched.
                    self.passthrough = true;
                    *chunk = Some(held.freeze());
                    Ok(())
                }
            };
        }
        if !end_of_stream {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.buffer).freeze();
        if raw.is_empty() {
            return Ok(());
        }
        let transformed = parse_document(&raw).ok().and_then(|mut document| {
            transform.apply(&mut document, context);
            serde_json::to_vec(&document).ok()
        });
        match transformed {
            Some(bytes) => {
                count(direction, BodyOutcome::Transformed);
                *chunk = Some(Bytes::from(bytes));
                Ok(())
            }
            None => {
                count(direction, BodyOutcome::InvalidJson);
                match transform.invalid_action(direction) {
                    InvalidBodyAction::Reject => Err(BodyRefusal::InvalidJson),
                    InvalidBodyAction::Pass => {
                        *chunk = Some(raw);
                        Ok(())
                    }
                }
            }
        }
    }
}
