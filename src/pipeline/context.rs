//! The state one request carries from hook to hook. A leaf: it imports no step, so every step
//! can read and write it without importing the others.
//!
//! The snapshot is taken when the request starts ([`Context::new`]) and never changes for that
//! request, however many reloads happen meanwhile. The decisions are typed; their log and metric
//! spellings live next to them.

use super::facts::RequestFacts;
use crate::compile::Route;
use crate::connection::body_pace::BodyPace;
use crate::policy::Identity;
use crate::reply::Denial;
use crate::request_id::RequestId;
use crate::snapshot::Snapshot;
use crate::transform::BodyBuffer;
use crate::upstream::ResolvedTarget;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests between [`Context::new`] and the drop of their context; SIGTERM waits for zero.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How many requests are being served right now.
pub fn requests_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// The outcome of the authentication step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// The route takes no token, or takes one optionally and none came.
    Anonymous,
    /// A verified token met every rule of the route.
    Allowed,
    /// No token, or one that failed verification (401), or no keys (503).
    Denied,
    /// A verified token that fails the route's rule (403).
    Forbidden,
}

impl AuthDecision {
    /// The access log's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthDecision::Anonymous => "anonymous",
            AuthDecision::Allowed => "allowed",
            AuthDecision::Denied => "denied",
            AuthDecision::Forbidden => "forbidden",
        }
    }
}

/// The outcome of the rate-limit step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitDecision {
    /// The route has no rate limit (or the request was refused before the step).
    NotLimited,
    /// Every policy of the route admitted the request.
    Allowed,
    /// A policy was exhausted (429).
    Limited,
}

impl RateLimitDecision {
    /// The access log's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitDecision::NotLimited => "none",
            RateLimitDecision::Allowed => "allowed",
            RateLimitDecision::Limited => "limited",
        }
    }
}

/// The upstream side of a request: which target, what was tried, how long it took.
#[derive(Default)]
pub struct UpstreamAttempt {
    /// The target chosen for the current attempt.
    pub target: Option<Arc<ResolvedTarget>>,
    /// Targets whose connection failed (retried elsewhere).
    pub tried: Vec<SocketAddr>,
    /// When the first target was chosen.
    pub started: Option<Instant>,
    /// How long the upstream took to send its response header.
    pub elapsed: Option<Duration>,
}

/// Per-request state carried across hooks.
pub struct Context {
    /// The configuration this request started with.
    pub snapshot: Arc<Snapshot>,
    pub request_id: RequestId,
    /// The W3C trace this request belongs to (continued or started here).
    pub trace: crate::trace_context::TraceContext,
    /// What was read off the client request once (host, client address, …).
    pub facts: RequestFacts,
    /// The matched route; set by the route step, so every later hook has one.
    pub route: Option<Arc<Route>>,
    /// The verified token's claims and indexed memberships, when the route verified one.
    pub identity: Option<Arc<Identity>>,
    pub auth: AuthDecision,
    pub rate_limit: RateLimitDecision,
    /// `RateLimit-Policy` / `RateLimit` for the response of an admitted request.
    pub rate_limit_headers: Vec<(&'static str, http::HeaderValue)>,
    /// The reason code of the response the gateway made itself, for logs.
    pub denial_reason: Option<&'static str>,
    /// A refusal decided in a hook that can only fail with a Pingora error (no healthy target,
    /// an oversize response); the error response is made from it, not from the error's type.
    pub pending_denial: Option<Denial>,
    pub upstream: UpstreamAttempt,
    /// Set while the request body is being transformed.
    pub request_body: Option<BodyBuffer>,
    /// Set while the response body is being transformed.
    pub response_body: Option<BodyBuffer>,
    /// `Set-Cookie` values for the response (a browser session that was refreshed or touched).
    pub response_cookies: Vec<String>,
    /// The access token of the request's browser session (for `pass_access_token`).
    pub session_access_token: Option<String>,
    /// Timed phases of a sampled request: (name, offset from `started`, duration).
    pub phases: Vec<(&'static str, std::time::Duration, std::time::Duration)>,
    /// The route's CORS headers for this request's response (also on the gateway's refusals).
    pub cors_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Slots of `concurrency` policies, held until the request ends (dropping the context
    /// releases them, whatever way the request ended).
    pub concurrency_slots: Vec<crate::ratelimit::Slot>,
    /// Whether a browser navigation without a session is redirected to sign in (off for an
    /// nginx `auth_request` check, which can only pass on 2xx, 401 and 403).
    pub sign_in_redirects: bool,
    /// The step-by-step decision, kept when asked for (`portcullis explain`, or debug logging
    /// of `portcullis::decision`); `None` on the ordinary request path.
    pub decision: Option<Box<crate::decision_trace::DecisionTrace>>,
    /// How fast the request body arrives, from its first chunk (HTTP/1 only).
    pub body_pace: Option<BodyPace>,
    pub started: Instant,
}

impl Context {
    /// A new request on `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Context {
            snapshot,
            request_id: RequestId::generate(),
            trace: Default::default(),
            facts: RequestFacts::default(),
            route: None,
            identity: None,
            auth: AuthDecision::Anonymous,
            rate_limit: RateLimitDecision::NotLimited,
            rate_limit_headers: Vec::new(),
            denial_reason: None,
            pending_denial: None,
            upstream: UpstreamAttempt::default(),
            request_body: None,
            response_body: None,
            response_cookies: Vec::new(),
            session_access_token: None,
            sign_in_redirects: true,
            concurrency_slots: Vec::new(),
            cors_headers: Vec::new(),
            phases: Vec::new(),
            body_pace: None,
            decision: None,
            started: Instant::now(),
        }
    }

    /// The verified claims, when the request carried a valid token.
    pub fn claims(&self) -> Option<&crate::policy::Claims> {
        self.identity.as_deref().map(Identity::claims)
    }

    /// The matched route, for hooks that only run after routing succeeded.
    pub fn routed(&self) -> pingora::Result<Arc<Route>> {
        match &self.route {
            Some(route) => Ok(Arc::clone(route)),
            None => pingora::Error::e_explain(
                pingora::ErrorType::InternalError,
                "request reached a proxy phase without a route",
            ),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}
