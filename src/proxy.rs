//! The one `ProxyHttp` implementation. Each phase calls the module that owns the decision and
//! holds no policy itself; every request reads the configuration snapshot it started with.
//!
//! Phases: `request_filter` (request id, limits, routing, authentication) → `upstream_peer`
//! (target selection) → `upstream_request_filter` (path rewrite, forwarding and identity
//! headers) → `response_filter` (response headers) → `fail_to_proxy` (upstream errors as
//! problem+json).

use crate::access_log::AccessLog;
use crate::body_phase::{self, BodyBuffer};
use crate::config::RuntimeConfig;
use crate::denial::{self, Denial};
use crate::forwarding;
use crate::request_id::{RequestId, REQUEST_ID_HEADER};
use crate::routing::{is_normalized_path, RouteLookup};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway service: the current configuration snapshot, swapped atomically on reload.
pub struct Gateway {
    pub config: Arc<ArcSwap<RuntimeConfig>>,
    pub access_log: Arc<AccessLog>,
}

/// Per-request state carried across phases.
pub struct RequestContext {
    pub request_id: RequestId,
    /// The snapshot this request started with; reloads never change it mid-request.
    pub config: Option<Arc<RuntimeConfig>>,
    pub route: Option<usize>,
    /// The verified token's claims and indexed memberships, when the route verified one.
    pub identity: Option<Arc<crate::policy::Identity>>,
    /// Targets already tried for this request (connection failures are retried elsewhere).
    pub tried: Vec<SocketAddr>,
    pub backend: Option<Backend>,
    /// The refusal this request ended with, for logs.
    pub denial_reason: Option<&'static str>,
    /// Set when the request body is being transformed.
    pub request_body: Option<BodyBuffer>,
    /// Set when the response body is being transformed.
    pub response_body: Option<BodyBuffer>,
    pub started: Instant,
    /// When the upstream target was chosen, and how long its response header took.
    pub upstream_started: Option<Instant>,
    pub upstream_elapsed: Option<Duration>,
    /// `anonymous`, `allowed`, `denied`; with the reason code of a refusal.
    pub auth_decision: &'static str,
    /// `none`, `allowed`, `limited`.
    pub rate_limit_decision: &'static str,
    /// `RateLimit-Policy` / `RateLimit` for the response of an allowed request.
    pub rate_limit_headers: Vec<(&'static str, http::HeaderValue)>,
}

/// Requests between `new_ctx` and the end of their logging phase; SIGTERM waits for zero.
impl RequestContext {
    /// The verified claims, when the request carried a valid token.
    pub fn claims(&self) -> Option<&serde_json::Value> {
        self.identity
            .as_deref()
            .map(crate::policy::Identity::claims)
    }
}

pub static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for RequestContext {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Gateway {
    pub fn new(config: Arc<ArcSwap<RuntimeConfig>>, access_log: Arc<AccessLog>) -> Self {
        Gateway { config, access_log }
    }

    async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        denial: Denial,
    ) -> Result<bool> {
        ctx.denial_reason = Some(denial.reason());
        denial::respond(session, &denial, ctx.request_id.as_str()).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RequestContext {
            request_id: RequestId::generate(),
            config: None,
            route: None,
            identity: None,
            tried: Vec::new(),
            backend: None,
            denial_reason: None,
            request_body: None,
            response_body: None,
            started: Instant::now(),
            upstream_started: None,
            upstream_elapsed: None,
            auth_decision: "anonymous",
            rate_limit_decision: "none",
            rate_limit_headers: Vec::new(),
        }
    }

    /// Runs first for every request: returns `Ok(true)` when the gateway answered itself.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let config = self.config.load_full();
        let request = session.req_header();
        ctx.request_id = RequestId::from_incoming_or_new(
            request.headers.get(REQUEST_ID_HEADER).map(|v| v.as_bytes()),
        );
        let server = &config.server;
        session.set_keepalive(Some(server.keepalive_timeout.as_secs()));
        session.set_read_timeout(Some(server.read_timeout));
        session.set_write_timeout(Some(server.write_timeout));
        ctx.config = Some(config.clone());

        let request = session.req_header();
        let head_size = forwarding::request_head_size(request);
        if head_size > server.max_header_size {
            let limit = server.max_header_size;
            return self
                .deny(session, ctx, Denial::HeadersTooLarge { limit })
                .await;
        }
        let path = request.uri.path();
        if !is_normalized_path(path) {
            return self.deny(session, ctx, Denial::PathNotNormalized).await;
        }
        let host = forwarding::request_host(request);
        let lookup = config
            .route_table
            .lookup(&host, path, request.method.as_str());
        match lookup {
            RouteLookup::Found { route, .. } => ctx.route = Some(route),
            RouteLookup::MethodNotAllowed { allow } => {
                return self
                    .deny(session, ctx, Denial::MethodNotAllowed { allow })
                    .await;
            }
            RouteLookup::NotFound => return self.deny(session, ctx, Denial::NoRoute).await,
        }
        let route = &config.routes[ctx.route.unwrap_or_default()];
        if let Some(denial) = crate::auth_phase::authenticate(session, ctx, &config, route).await {
            return self.deny(session, ctx, denial).await;
        }
        if let Some(denial) = crate::ratelimit_phase::check(session, ctx, &config, route).await {
            return self.deny(session, ctx, denial).await;
        }
        if let Some(transform) = &route.request_json {
            if transform.applies(ctx.identity.as_deref()) {
                ctx.request_body = Some(BodyBuffer::default());
            }
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        if ctx.request_body.is_none() {
            return Ok(());
        }
        let (config, route) = snapshot_route(ctx)?;
        if let (Some(transform), Some(buffer)) = (
            &config.routes[route].request_json,
            ctx.request_body.as_mut(),
        ) {
            let context = forwarding::template_context(
                session,
                &ctx.request_id,
                ctx.identity.as_deref().map(crate::policy::Identity::claims),
            );
            buffer.push(
                "request",
                transform,
                body,
                end_of_stream,
                &context.as_context(),
            );
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestContext,
    ) -> Result<Box<HttpPeer>> {
        let (config, route) = snapshot_route(ctx)?;
        let upstream = &config.upstreams[config.routes[route].upstream];
        let Some(backend) = upstream.select(&ctx.tried) else {
            return Error::e_explain(
                ErrorType::Custom("no_healthy_target"),
                format!(
                    "upstream `{}` has no healthy target",
                    upstream.settings.name
                ),
            );
        };
        let peer = upstream.peer(&backend);
        ctx.backend = Some(backend);
        ctx.upstream_started.get_or_insert_with(Instant::now);
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        if let (Ok((config, route)), Some(backend)) = (snapshot_route(ctx), &ctx.backend) {
            config.upstreams[config.routes[route].upstream].report_success(backend);
        }
        Ok(())
    }

    /// A failed connection counts against the target and is retried on another one.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestContext,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Ok((config, route)), Some(backend)) = (snapshot_route(ctx), ctx.backend.take()) {
            let upstream = &config.upstreams[config.routes[route].upstream];
            upstream.report_failure(&backend);
            if let Some(address) = backend.addr.as_inet() {
                ctx.tried.push(*address);
            }
            e.set_retry(
                ctx.tried.len() < upstream.settings.targets.len().max(1) * 2
                    && upstream.select(&ctx.tried).is_some(),
            );
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        let (config, route) = snapshot_route(ctx)?;
        forwarding::prepare_upstream_request(session, upstream_request, ctx, &config, route)?;
        let route = &config.routes[route];
        if ctx.request_body.is_some() {
            if let Some(transform) = &route.request_json {
                if !body_phase::select_request(transform, upstream_request) {
                    ctx.request_body = None;
                }
            }
        }
        if let Some(transform) = &route.response_json {
            if transform.applies(ctx.identity.as_deref()) {
                // Ask for a body the gateway can read and rewrite.
                upstream_request.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        ctx.upstream_elapsed = ctx.upstream_started.map(|started| started.elapsed());
        let (config, route) = snapshot_route(ctx)?;
        forwarding::prepare_response(session, upstream_response, ctx, &config, route)?;
        if let Some(transform) = &config.routes[route].response_json {
            if transform.applies(ctx.identity.as_deref()) {
                match body_phase::select_response(
                    transform,
                    session.req_header(),
                    upstream_response,
                ) {
                    body_phase::ResponseSelection::Transform => {
                        ctx.response_body = Some(BodyBuffer::default())
                    }
                    body_phase::ResponseSelection::PassThrough => {}
                    body_phase::ResponseSelection::RejectOversize => {
                        return Error::e_explain(
                            ErrorType::Custom("body_too_large"),
                            "the upstream response body exceeds max_body",
                        )
                    }
                }
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.response_body.is_none() {
            return Ok(None);
        }
        let (config, route) = snapshot_route(ctx)?;
        if let (Some(transform), Some(buffer)) = (
            &config.routes[route].response_json,
            ctx.response_body.as_mut(),
        ) {
            let context = forwarding::template_context(
                session,
                &ctx.request_id,
                ctx.identity.as_deref().map(crate::policy::Identity::claims),
            );
            buffer.push(
                "response",
                transform,
                body,
                end_of_stream,
                &context.as_context(),
            );
        }
        Ok(None)
    }

    /// Runs once per request, after the response: metrics and the access log line.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestContext) {
        crate::request_log::record(session, ctx, &self.access_log);
    }

    /// Upstream failures become problem+json: 504 for timeouts, 502 otherwise.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestContext,
    ) -> FailToProxy {
        let denial = match forwarding::classify_proxy_error(e, ctx) {
            Some(denial) => denial,
            None => {
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                }
            }
        };
        let status = denial.status();
        ctx.denial_reason = Some(denial.reason());
        if session.response_written().is_none() {
            session.set_keepalive(None);
            if let Err(write_error) =
                denial::respond(session, &denial, ctx.request_id.as_str()).await
            {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}

/// The snapshot and route index of a routed request.
fn snapshot_route(ctx: &RequestContext) -> Result<(Arc<RuntimeConfig>, usize)> {
    match (&ctx.config, ctx.route) {
        (Some(config), Some(route)) => Ok((config.clone(), route)),
        _ => Error::e_explain(
            ErrorType::InternalError,
            "request reached a proxy phase without a route",
        ),
    }
}
