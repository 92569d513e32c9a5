//! The span side of the end of a request: a sampled request (see [`crate::trace_context`]) is
//! handed to the snapshot's span exporter with its phases — authentication and rate limiting
//! timed by the steps, the upstream call from its attempt — never waiting on the exporter.

use super::context::Context;
use crate::telemetry::{Phase, RequestRecord};
use pingora::proxy::Session;
use std::time::{Duration, Instant, SystemTime};

/// Times `phase` of a sampled request into the context (a no-op for an unsampled one).
pub fn record_phase(ctx: &mut Context, name: &'static str, started: Option<Instant>) {
    if let Some(started) = started {
        let offset = started.saturating_duration_since(ctx.started);
        ctx.phases.push((name, offset, started.elapsed()));
    }
}

/// The start of a phase to time: only a sampled request reads the clock.
pub fn phase_start(ctx: &Context) -> Option<Instant> {
    ctx.trace.sampled.then(Instant::now)
}

/// Hands a finished, sampled request to the exporter, if tracing is configured.
pub fn export(session: &Session, ctx: &Context, status: u16) {
    let Some(exporter) = ctx.snapshot.spans.as_deref() else {
        return;
    };
    if !ctx.trace.sampled {
        return;
    }
    let request = session.req_header();
    let total = ctx.started.elapsed();
    let end = SystemTime::now();
    let start = end.checked_sub(total).unwrap_or(end);
    let route = ctx.route.as_deref().map_or("", |route| route.name.as_str());
    let mut phases: Vec<Phase> = ctx
        .phases
        .iter()
        .map(|(name, offset, duration)| Phase {
            name,
            start: start + *offset,
            duration: *duration,
        })
        .collect();
    if let (Some(began), Some(duration)) = (ctx.upstream.started, ctx.upstream.elapsed) {
        let offset = began.saturating_duration_since(ctx.started);
        phases.push(Phase {
            name: "upstream",
            start: start + offset,
            duration: duration.max(Duration::from_nanos(1)),
        });
    }
    let mut attributes = vec![
        ("http.request.method", request.method.as_str().to_owned()),
        ("url.path", ctx.facts.path(request).to_owned()),
        ("portcullis.route", route.to_owned()),
        ("portcullis.request_id", ctx.request_id.as_str().to_owned()),
    ];
    if let Some(reason) = ctx.denial_reason {
        attributes.push(("portcullis.reason", reason.to_owned()));
    }
    exporter.submit(RequestRecord {
        trace_id: ctx.trace.trace_id.to_string(),
        span_id: ctx.trace.span_id.to_string(),
        parent_id: ctx.trace.parent_id.map(|parent| parent.to_string()),
        name: format!(
            "{} {}",
            request.method,
            if route.is_empty() { "(none)" } else { route }
        ),
        start,
        end,
        status,
        attributes,
        phases,
    });
}
