//! The last step of an explanation: what an admitted request would carry upstream — the
//! target pool, the identity headers the route sets (rendered by the route's own header
//! operations), the claims header and identity assertion, and which JSON transforms apply.
//! Templates read claims and request fields, never a header, so no value shown holds a token.

use crate::compile::{Route, RouteAuth};
use crate::decision_trace::{shown, DecisionTrace, Verdict};
use crate::pipeline::Context;
use crate::transform::headers::HeaderSink;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// Records the upstream side of an admitted request.
pub fn record(trace: &mut DecisionTrace, request: &RequestHeader, ctx: &Context, route: &Route) {
    let upstream = &route.upstream.settings;
    let targets: Vec<String> = upstream
        .targets
        .iter()
        .map(|t| format!("{}:{}", t.host, t.port))
        .collect();
    let step = trace.step(
        "forward",
        Verdict::Pass,
        format!("to upstream `{}`", upstream.name),
    );
    step.check("targets", Verdict::Note, shown(&targets.join(", ")));
    let mut sink = RecordingSink::default();
    if !route.request_headers.is_empty() {
        let context = ctx
            .facts
            .template_context(request, &ctx.request_id, ctx.claims());
        route.request_headers.apply(&context, &mut sink);
    }
    for (operation, name, value) in sink.operations {
        let unrendered = operation == "remove"
            && route
                .request_headers
                .set
                .iter()
                .any(|(set, _)| *set == name);
        let value = match value {
            Some(value) => format!(": {}", shown(&value)),
            None if unrendered => {
                " (the route sets it, but a claim its template reads is missing)".to_owned()
            }
            None => String::new(),
        };
        step.check(
            "header",
            Verdict::Note,
            format!("{operation} {name}{value}"),
        );
    }
    if let Some(name) = &route.claims_header {
        let detail = match ctx.claims() {
            Some(_) => format!("set {name}: the verified claims as base64url JSON"),
            None => format!("remove {name} (no verified claims)"),
        };
        step.check("header", Verdict::Note, detail);
    }
    if let (Some(name), Some(_)) = (&route.identity_assertion, &ctx.identity) {
        step.check(
            "header",
            Verdict::Note,
            format!(
                "set {name}: a JWT the gateway signs about the caller (audience `{}`)",
                upstream.name
            ),
        );
    }
    if let RouteAuth::Verify {
        pass_access_token: true,
        ..
    } = route.auth
    {
        step.check(
            "header",
            Verdict::Note,
            "a browser session's access token goes upstream as Authorization: Bearer",
        );
    }
    for (direction, transform) in [
        ("request", &route.request_json),
        ("response", &route.response_json),
    ] {
        if let Some(transform) = transform {
            let applies = transform.applies(ctx.identity.as_deref());
            let detail = if applies {
                format!("the {direction} JSON body is transformed")
            } else {
                format!("the {direction} JSON transform does not apply to this caller (its when/unless rule)")
            };
            step.check("json", Verdict::Note, detail);
        }
    }
}

/// Header operations as they would be made, in order.
#[derive(Default)]
struct RecordingSink {
    operations: Vec<(&'static str, HeaderName, Option<String>)>,
}

impl HeaderSink for RecordingSink {
    fn remove(&mut self, name: &HeaderName) {
        self.operations.push(("remove", name.clone(), None));
    }
    fn insert(&mut self, name: &HeaderName, value: HeaderValue) {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        self.operations.push(("set", name.clone(), Some(text)));
    }
    fn append(&mut self, name: &HeaderName, value: HeaderValue) {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        self.operations.push(("append", name.clone(), Some(text)));
    }
}
