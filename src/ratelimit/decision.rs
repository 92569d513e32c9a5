//! A rate-limit decision and the response headers it produces (pure).
//!
//! Headers follow draft-ietf-httpapi-ratelimit-headers (-08/-09), as structured-field lists with
//! one item per policy that checked the request:
//!
//! ```text
//! RateLimit-Policy: "per_client";q=100;w=1
//! RateLimit: "per_client";r=42;t=1
//! Retry-After: 3                      (429 responses only)
//! ```
//!
//! `q` is the configured count and `w` its period in seconds. `r` is what the bucket would still
//! admit right now, so with a `burst` it can exceed `q` by up to `burst`. `t` is the seconds
//! (rounded up) until the bucket is full again. `Retry-After` is the seconds (rounded up, at
//! least 1) until one more request would pass; with several limited policies, the longest.

use http::HeaderValue;
use std::time::Duration;

/// What one policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    /// The quota `q`: requests per `window` at the steady rate (the tier's count).
    pub limit: u64,
    /// The quota's period `w`.
    pub window: Duration,
    /// Requests the bucket would still admit now.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// Set when limited: until the next request can pass.
    pub retry_after: Option<Duration>,
    /// The policy's name.
    pub policy: &'a str,
    /// The tier whose rate applied (index into the policy's `tiers`); `None` for the base rate.
    pub tier: Option<usize>,
    /// Whether the policy sends `RateLimit*` headers (`headers: false` turns them off).
    pub send_headers: bool,
    /// True when the shared store failed and `on_error` decided instead of a counter; the
    /// counts in this decision are then nominal.
    pub store_error: bool,
}

/// The header values for a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Policy`; `None` when no policy sends headers.
    pub policy: Option<HeaderValue>,
    /// `RateLimit`; `None` when no policy sends headers.
    pub state: Option<HeaderValue>,
    /// `Retry-After`, set when any decision was a denial (sent whatever `send_headers` says).
    pub retry_after: Option<HeaderValue>,
}

/// The header names, lowercase as HTTP/2 wants them.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
pub const RATELIMIT: &str = "ratelimit";

/// Builds the headers for every decision taken on one request.
pub fn rate_limit_headers(decisions: &[Decision<'_>]) -> RateLimitHeaders {
    let mut policy = String::with_capacity(48);
    let mut state = String::with_capacity(48);
    for decision in decisions.iter().filter(|d| d.send_headers) {
        if !policy.is_empty() {
            policy.push_str(", ");
            state.push_str(", ");
        }
        write_policy_item(decision, &mut policy);
        write_state_item(decision, &mut state);
    }
    let retry_after = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| retry_after_secs(d.retry_after.unwrap_or(Duration::ZERO)))
        .max();
    let value = |text: String| (!text.is_empty()).then(|| HeaderValue::try_from(text).ok())?;
    RateLimitHeaders {
        policy: value(policy),
        state: value(state),
        retry_after: retry_after.map(HeaderValue::from),
    }
}

/// Appends `"<name>";q=<quota>;w=<window secs>`.
pub fn write_policy_item(decision: &Decision<'_>, out: &mut String) {
    write_sf_string(decision.policy, out);
    out.push_str(";q=");
    push_number(out, decision.limit);
    out.push_str(";w=");
    push_number(out, decision.window.as_secs().max(1));
}

/// Appends `"<name>";r=<remaining>;t=<secs to reset>`.
pub fn write_state_item(decision: &Decision<'_>, out: &mut String) {
    write_sf_string(decision.policy, out);
    out.push_str(";r=");
    push_number(out, decision.remaining);
    out.push_str(";t=");
    push_number(out, ceil_secs(decision.reset_after));
}

/// Appends a number in decimal without the formatting machinery (these headers go out on
/// every rate-limited response).
fn push_number(out: &mut String, number: u64) {
    out.push_str(itoa::Buffer::new().format(number));
}

/// Whole seconds, rounded up.
pub fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// `Retry-After` seconds: rounded up, at least 1.
pub fn retry_after_secs(duration: Duration) -> u64 {
    ceil_secs(duration).max(1)
}

/// An RFC 8941 sf-string: quoted, `"` and `\` escaped, non-printable characters replaced.
fn write_sf_string(text: &str, out: &mut String) {
    out.push('"');
    if text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}
