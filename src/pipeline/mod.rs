//! The request path: the one `ProxyHttp` implementation, whose hooks hold no policy of their own
//! and call the file that owns each decision. The files read in the order a request meets them:
//!
//! | file | when |
//! |---|---|
//! | [`context`] | the state a request carries from hook to hook (a leaf: imports no step) |
//! | [`facts`] | what is read off the client request once: host, head size, the one client address |
//! | [`steps`] | the ordered list of request steps run by `request_filter` |
//! | [`guard`] → [`route`] → [`client_ips`] → [`cors`] → [`authenticate`] → [`rate_limit`] → [`body`] | the steps, one file each |
//! | [`browser_session`] | authentication by session cookie, and the redirect to sign in |
//! | [`introspect`] | RFC 7662 introspection of a verified token, for `auth.introspect` routes |
//! | [`sign_in_paths`] | the callback, logout and back-channel logout paths, answered before routing |
//! | [`forward_auth`] | the verdict for another proxy's auth subrequest, on the same steps |
//! | [`decision`] | the step-by-step decision trace of a request that asks for one (explain, debug log) |
//! | [`spans`] | a sampled request's spans, timed by the steps and handed to the exporter |
//! | [`upstream_peer`] | target selection and connection outcomes |
//! | [`forward`], [`strip`], [`rewrite`] | the upstream request (headers, path and query) and the response headers |
//! | [`body`] | JSON body transformation in the body hooks |
//! | [`finish`] | metrics and the access log line |
//!
//! Every response the gateway makes itself comes from [`crate::reply`], from one [`Denial`].

pub mod authenticate;
pub mod body;
pub mod body_pace;
pub mod browser_session;
pub mod client_ips;
pub mod context;
pub mod cors;
pub mod decision;
pub mod facts;
pub mod finish;
pub mod forward;
pub mod forward_auth;
pub mod guard;
pub mod introspect;
pub mod rate_limit;
pub mod rewrite;
pub mod route;
pub mod sign_in_paths;
pub mod spans;
pub mod steps;
pub mod strip;
pub mod upstream_peer;

pub use context::{requests_in_flight, Context};

use crate::access_log::AccessLog;
use crate::connection;
use crate::reply::{self, Denial};
use crate::request_id::{RequestId, REQUEST_ID_HEADER};
use crate::snapshot::Snapshot;
use crate::transform::Direction;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use facts::RequestFacts;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use std::sync::Arc;

/// The gateway service: the current snapshot, swapped atomically on reload, and the access log.
pub struct Gateway {
    snapshot: Arc<ArcSwap<Snapshot>>,
    access_log: Arc<AccessLog>,
}

impl Gateway {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, access_log: Arc<AccessLog>) -> Self {
        Gateway {
            snapshot,
            access_log,
        }
    }
}

/// Keeps `denial` for `fail_to_proxy` and returns the error that makes Pingora call it.
fn fail_with(ctx: &mut Context, denial: Denial) -> Box<Error> {
    let error = Error::explain(ErrorType::InternalError, denial.reason());
    ctx.pending_denial = Some(denial);
    error
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Context;

    /// Called when a request starts: the request takes the current snapshot for its whole life.
    fn new_ctx(&self) -> Context {
        Context::new(self.snapshot.load_full())
    }

    /// The first hook of every request, once its head is read. Sets the connection timeouts,
    /// reads the request facts and runs the [`steps`]. `Ok(true)` means the gateway answered (a
    /// refusal was sent) and the request ends; `Ok(false)` means it goes on to the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Context) -> Result<bool> {
        if let Some(stream) = session.stream() {
            connection::mark_head_read(stream);
        }
        let snapshot = Arc::clone(&ctx.snapshot);
        let server = &snapshot.config.server;
        // Keep-alive (HTTP/1.1, or 1.0 with `keep-alive`) is left as Pingora reads it from the
        // request, with no timer of Pingora's: the connection guard closes a connection idle for
        // `keepalive_timeout` (from the end of the exchange), with one timer per connection.
        session.set_read_timeout(Some(server.read_timeout));
        session.set_write_timeout(Some(server.write_timeout));
        let request = session.req_header();
        ctx.request_id = RequestId::from_incoming_or_new(
            request.headers.get(REQUEST_ID_HEADER).map(|v| v.as_bytes()),
        );
        ctx.facts = RequestFacts::read(session, &snapshot.config.trusted_proxies);
        let ratio = snapshot
            .config
            .tracing
            .as_ref()
            .map_or(0.0, |tracing| tracing.sample_ratio);
        ctx.trace = crate::trace_context::TraceContext::from_traceparent(
            request.headers.get("traceparent").map(|v| v.as_bytes()),
            ratio,
        );
        if crate::decision_trace::live_tracing_enabled() {
            ctx.decision = Some(Box::default());
        }
        let path = session.req_header().uri.path();
        let outcome = if path == crate::identity_assertion::JWKS_PATH {
            Err(reply::Reply::Document {
                content_type: "application/json",
                body: snapshot.assertions.jwks(),
            })
        } else if forward_auth::is_forward_auth(&snapshot, path) {
            Err(forward_auth::serve(session, ctx, &snapshot).await)
        } else if let Some(which) = sign_in_paths::reserved(&snapshot, path) {
            Err(sign_in_paths::serve(which, session, ctx, &snapshot).await)
        } else {
            steps::run(session.req_header(), ctx, &snapshot).await
        };
        match outcome {
            Ok(()) => Ok(false),
            Err(answer) => {
                ctx.denial_reason = Some(answer.reason());
                if let (Some(trace), reply::Reply::Refusal(_)) = (ctx.decision.as_deref(), &answer)
                {
                    trace.log_refusal(ctx.request_id.as_str());
                }
                let cors = std::mem::take(&mut ctx.cors_headers);
                let ids = (ctx.request_id.as_str(), ctx.trace.trace_id.as_str());
                reply::send_reply(session, &answer, ids.0, ids.1, &cors).await?;
                Ok(true)
            }
        }
    }

    /// Called for each chunk of the request body on its way upstream; a body being transformed
    /// is held back until its end and sent as one transformed chunk.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        chunk: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Context,
    ) -> Result<()> {
        if let Some(stream) = session.stream() {
            body_pace::check(stream, chunk.as_ref(), ctx)
                .map_err(|denial| fail_with(ctx, denial))?;
        }
        if ctx.request_body.is_some() {
            body::transform_chunk(
                session.req_header(),
                ctx,
                Direction::Request,
                chunk,
                end_of_stream,
            )
            .map_err(|denial| fail_with(ctx, denial))?;
        }
        Ok(())
    }

    /// Called before each connection attempt: the target to connect to. An error ends the
    /// request in `fail_to_proxy` (502 when no target is healthy).
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Context,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.routed()?;
        upstream_peer::select(ctx, &route).map_err(|denial| fail_with(ctx, denial))
    }

    /// Called once the connection to the target is up (new or reused).
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Context,
    ) -> Result<()> {
        upstream_peer::connected(ctx);
        Ok(())
    }

    /// Called when connecting failed; the returned error says whether to retry (on another
    /// target, chosen by `upstream_peer` again).
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Context,
        error: Box<Error>,
    ) -> Box<Error> {
        upstream_peer::connection_failed(ctx, error)
    }

    /// Called with the request head about to be sent upstream: forwarding headers, the target,
    /// identity headers, and the framing of a body being transformed. An error ends the request.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Context,
    ) -> Result<()> {
        let route = ctx.routed()?;
        forward::prepare_upstream_request(session, upstream_request, ctx, &route)?;
        let client_has_body = !session.is_body_empty();
        body::prepare_upstream_request(
            session.req_header(),
            client_has_body,
            ctx,
            &route,
            upstream_request,
        )
        .map_err(|denial| fail_with(ctx, denial))
    }

    /// Called with the upstream's response head before it goes to the client: response headers
    /// and the decision to transform the body. An error ends the request in `fail_to_proxy`.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Context,
    ) -> Result<()> {
        ctx.upstream.elapsed = ctx.upstream.started.map(|started| started.elapsed());
        let route = ctx.routed()?;
        forward::prepare_response(session, upstream_response, ctx, &route)?;
        body::prepare_response(session.req_header(), ctx, &route, upstream_response)
            .map_err(|denial| fail_with(ctx, denial))
    }

    /// Called for each chunk of the response body on its way to the client; a body being
    /// transformed is held back until its end. Returns no delay (no download throttling). A
    /// refused body (unparsable or too large on a route that rejects it) is an error that ends
    /// in `fail_to_proxy`: a 502 when the response head has not reached the client yet, else
    /// the response ends unfinished; never a complete body carrying what the route removes.
    fn response_body_filter(
        &self,
        session: &mut Session,
        chunk: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Context,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.response_body.is_some() {
            body::transform_chunk(
                session.req_header(),
                ctx,
                Direction::Response,
                chunk,
                end_of_stream,
            )
            .map_err(|denial| fail_with(ctx, denial))?;
        }
        Ok(None)
    }

    /// Called once per request after the response (or the failure): metrics and the access log.
    /// What Pingora's own error lines say about a request: method, path without its query (a
    /// query may carry `access_token=`), host and request id, never a credential.
    fn request_summary(&self, session: &Session, ctx: &Context) -> String {
        let request = session.req_header();
        let host = request
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        format!(
            "{} {}, Host: {host}, request id {}",
            request.method,
            request.uri.path(),
            ctx.request_id.as_str()
        )
    }

    async fn logging(&self, session: &mut Session, _error: Option<&Error>, ctx: &mut Context) {
        finish::record(session, ctx, &self.access_log);
        if let Some(stream) = session.stream() {
            connection::mark_exchange_done(stream);
        }
    }

    /// Called when proxying failed after `request_filter`: answers with the denial a hook kept,
    /// else the upstream failure as problem+json (504 for timeouts, 502 otherwise). Nothing is
    /// sent when the client is gone or the response has already started.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut Context,
    ) -> FailToProxy {
        let upstream = ctx
            .route
            .as_deref()
            .map_or("", |route| route.upstream.settings.name.as_str());
        let denial = match ctx.pending_denial.take() {
            Some(denial) => denial,
            None => match reply::classify_proxy_error(error, upstream) {
                Some(denial) => denial,
                None => {
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    }
                }
            },
        };
        let status = denial.status();
        ctx.denial_reason = Some(denial.reason());
        if session.response_written().is_none() {
            session.set_keepalive(None);
            let ids = (ctx.request_id.as_str(), ctx.trace.trace_id.as_str());
            let sent = reply::send(session, &denial, ids.0, ids.1, &ctx.cors_headers).await;
            if let Err(write_error) = sent {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}
