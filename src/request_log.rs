//! The end of every request: request metrics and the access log line. Runs in the `logging`
//! phase, after the response is sent, so nothing here delays the client.

use crate::access_log::{rfc3339_now, AccessLog};
use crate::metrics::{method_label, metrics, status_class};
use crate::proxy::RequestContext;
use pingora::proxy::Session;

/// Records one finished request.
pub fn record(session: &Session, ctx: &RequestContext, access_log: &AccessLog) {
    let status = session
        .response_written()
        .map_or(0, |response| response.status.as_u16());
    let request = session.req_header();
    let route = match (&ctx.config, ctx.route) {
        (Some(config), Some(index)) => config.routes[index].name.as_str(),
        _ => "",
    };
    let route_label = if route.is_empty() { "(none)" } else { route };
    let m = metrics();
    m.requests
        .with_label_values(&[
            route_label,
            method_label(&request.method),
            status_class(status),
        ])
        .inc();
    let total = ctx.started.elapsed();
    m.request_duration
        .with_label_values(&[route_label])
        .observe(total.as_secs_f64());
    if let Some(upstream) = ctx.upstream_elapsed {
        m.upstream_duration
            .with_label_values(&[route_label])
            .observe(upstream.as_secs_f64());
    }
    if !access_log.enabled() {
        return;
    }
    let claims = ctx.claims();
    let claim = |name: &str| claims.and_then(|c| c.get(name)).and_then(|v| v.as_str());
    let subject = if access_log.redact_subject {
        claim("sub").map(|_| "-")
    } else {
        claim("sub")
    };
    let line = serde_json::json!({
        "time": rfc3339_now(),
        "request_id": ctx.request_id.as_str(),
        "route": route,
        "method": request.method.as_str(),
        "path": request.uri.path(),
        "status": status,
        "bytes": session.body_bytes_sent(),
        "duration_ms": total.as_secs_f64() * 1000.0,
        "upstream_ms": ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
        "client_ip": crate::forwarding::peer_ip(session).map(|ip| ip.to_string()),
        "client_id": ctx.identity.as_deref().and_then(crate::policy::Identity::client_id),
        "subject": subject,
        "auth": ctx.auth_decision,
        "reason": ctx.denial_reason,
        "rate_limit": ctx.rate_limit_decision,
    });
    access_log.write(line.to_string());
}
