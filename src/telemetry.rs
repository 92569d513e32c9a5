//! Span export (`telemetry.tracing`): a sampled request becomes a server span (the gateway's
//! hop of the W3C trace, see [`crate::trace_context`]) with child spans for authentication, rate
//! limiting and the upstream call, encoded with the official OTLP protobuf definitions
//! (`opentelemetry-proto`) and POSTed to `{otlp_endpoint}/v1/traces`.
//!
//! Off the request path: a finished request hands its record to a bounded queue (never waits;
//! a full queue drops the record and counts it) and a background task sends batches of up to
//! 512 spans every second. An exporter that fails or times out (5 s) loses that batch and never
//! affects requests. Sampling is parent-based: a request with a `traceparent` follows its
//! sampled flag; a new trace is sampled with probability `sample_ratio`, decided from its trace
//! id (so every service reaches the same decision for one trace id).

use crate::config::file::TracingFile;
use crate::config::PathError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

const QUEUE: usize = 4096;
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The validated `telemetry.tracing`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// `…/v1/traces`.
    pub traces_url: String,
    pub sample_ratio: f64,
    pub service_name: String,
}

/// Compiles `telemetry.tracing`.
pub fn compile_tracing(file: &TracingFile, errors: &mut Vec<PathError>) -> Option<TracingSettings> {
    let before = errors.len();
    let base = file.otlp_endpoint.trim().trim_end_matches('/');
    match reqwest::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => errors.push(PathError::new(
            "telemetry.tracing.otlp_endpoint",
            format!("`{base}` is not an http(s) URL like `http://127.0.0.1:4318`"),
        )),
    }
    let sample_ratio = file.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        errors.push(PathError::new(
            "telemetry.tracing.sample_ratio",
            "must be from 0.0 to 1.0",
        ));
    }
    (errors.len() == before).then(|| TracingSettings {
        traces_url: format!("{base}/v1/traces"),
        sample_ratio,
        service_name: file
            .service_name
            .clone()
            .unwrap_or_else(|| "portcullis".to_owned()),
    })
}

/// Whether a new trace with this id is sampled at `ratio` (from the id's last 8 bytes).
pub fn sampled_by_ratio(trace_id_hex: &str, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let tail = trace_id_hex
        .get(16..32)
        .and_then(|t| u64::from_str_radix(t, 16).ok());
    match tail {
        Some(value) => (value as f64) < ratio * (u64::MAX as f64),
        None => false,
    }
}

/// One phase of a request, as a child span.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub start: SystemTime,
    pub duration: Duration,
}

/// What a finished, sampled request hands to the exporter.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub status: u16,
    pub attributes: Vec<(&'static str, String)>,
    pub phases: Vec<Phase>,
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// The spans of one request: the server span, then one child per phase.
pub fn spans(record: &RequestRecord) -> Vec<Span> {
    let trace_id = hex_bytes(&record.trace_id);
    let span_id = hex_bytes(&record.span_id);
    let mut attributes: Vec<KeyValue> = record
        .attributes
        .iter()
        .map(|(key, value)| attribute(key, value.clone()))
        .collect();
    attributes.push(KeyValue {
        key: "http.response.status_code".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(i64::from(record.status))),
        }),
        ..Default::default()
    });
    let mut spans = vec![Span {
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        parent_span_id: record
            .parent_id
            .as_deref()
            .map(hex_bytes)
            .unwrap_or_default(),
        name: record.name.clone(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: nanos(record.start),
        end_time_unix_nano: nanos(record.end),
        attributes,
        ..Default::default()
    }];
    for (index, phase) in record.phases.iter().enumerate() {
        let mut child_id = span_id.clone();
        if let Some(last) = child_id.last_mut() {
            // Distinct, stable ids under the request span.
            *last = last.wrapping_add(index as u8 + 1);
        }
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: child_id,
            parent_span_id: span_id.clone(),
            name: phase.name.to_owned(),
            kind: if phase.name == "upstream" {
                SpanKind::Client as i32
            } else {
                SpanKind::Internal as i32
            },
            start_time_unix_nano: nanos(phase.start),
            end_time_unix_nano: nanos(phase.start + phase.duration),
            ..Default::default()
        });
    }
    spans
}

/// The queue to the background exporter of one configuration.
#[derive(Debug)]
pub struct SpanExporter {
    pub settings: TracingSettings,
    queue: mpsc::Sender<RequestRecord>,
}

impl SpanExporter {
    /// Starts the background task on `runtime`; it ends when the exporter is dropped (after
    /// sending what is queued).
    pub fn start(settings: TracingSettings, runtime: &tokio::runtime::Handle) -> SpanExporter {
        let (queue, receiver) = mpsc::channel(QUEUE);
        runtime.spawn(export_loop(settings.clone(), receiver));
        SpanExporter { settings, queue }
    }

    /// Hands a finished request over; never waits (a full queue drops it).
    pub fn submit(&self, record: RequestRecord) {
        if self.queue.try_send(record).is_err() {
            crate::metrics::metrics().spans_dropped.inc();
        }
    }
}

async fn export_loop(settings: TracingSettings, mut receiver: mpsc::Receiver<RequestRecord>) {
    let http = reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build();
    let Ok(http) = http else {
        tracing::warn!("span export disabled: no HTTP client");
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        let closed = loop {
            tokio::select! {
                record = receiver.recv() => match record {
                    Some(record) => {
                        batch.extend(spans(&record));
                        if batch.len() >= BATCH { break false; }
                    }
                    None => break true,
                },
                _ = &mut deadline => break false,
            }
        };
        if !batch.is_empty() {
            send(&http, &settings, std::mem::take(&mut batch)).await;
        }
        if closed {
            return;
        }
    }
}

async fn send(http: &reqwest::Client, settings: &TracingSettings, spans: Vec<Span>) {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", settings.service_name.clone())],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "portcullis".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let sent = http
        .post(&settings.traces_url)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::debug!(status = %response.status(), "span export refused"),
        Err(error) => tracing::debug!(%error, "span export failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_sampling_is_decided_by_the_trace_id() {
        let low = "0af7651916cd43dd0000000000000001";
        let high = "0af7651916cd43ddffffffffffffff00";
        assert!(sampled_by_ratio(low, 0.5));
        assert!(!sampled_by_ratio(high, 0.5));
        assert!(!sampled_by_ratio(low, 0.0));
        assert!(sampled_by_ratio(high, 1.0));
    }

    #[test]
    fn a_request_becomes_a_server_span_with_children() {
        let start = SystemTime::now();
        let record = RequestRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_id: Some("00f067aa0ba902b7".into()),
            name: "GET orders".into(),
            start,
            end: start + Duration::from_millis(5),
            status: 200,
            attributes: vec![("portcullis.route", "orders".into())],
            phases: vec![Phase {
                name: "authenticate",
                start,
                duration: Duration::from_millis(1),
            }],
        };
        let spans = spans(&record);
        assert_eq!(spans.len(), 2);
        assert_eq!(
            spans[0].trace_id,
            hex_bytes("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(spans[0].parent_span_id, hex_bytes("00f067aa0ba902b7"));
        assert_eq!(spans[1].parent_span_id, spans[0].span_id);
        assert_ne!(spans[1].span_id, spans[0].span_id);
        assert_eq!(spans[1].trace_id, spans[0].trace_id);
    }
}
