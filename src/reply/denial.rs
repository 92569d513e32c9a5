//! The refusals: each [`Denial`] with its status, stable reason code, problem+json body and the
//! headers its status needs; and the mapping of a failed proxy attempt to one.

use crate::request_id::REQUEST_ID_HEADER;
use crate::routing::{HostRejection, PathRejection};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::borrow::Cow;

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No route matches the host and path.
    NoRoute,
    /// A route matches the path but not the method; `allow` lists the methods that would match.
    MethodNotAllowed { allow: String },
    /// The path cannot be normalized (dot segments, also encoded or before `;`, no leading
    /// slash, a broken `%`): refused so that a path like `/public/../admin` cannot reach an
    /// upstream under another route's rules.
    PathNotNormalized { why: PathRejection },
    /// `Host` / `:authority` is not a valid host, or they disagree.
    InvalidHost { why: HostRejection },
    /// `Connection` nominates an end-to-end header the request cannot do without.
    BadConnectionHeader { header: String },
    /// `Content-Length` is not one decimal number (lists, duplicates, signs).
    BadContentLength,
    /// The client stopped sending its request (body) for longer than `server.read_timeout`.
    ClientTimeout,
    /// The request body averaged less than `server.min_body_rate` bytes per second.
    ClientTooSlow { min_rate: u64 },
    /// The request head is larger than `server.max_header_size`.
    HeadersTooLarge { limit: usize },
    /// No token, or a token that failed verification (401), or the IdP has no keys yet (503).
    Unauthenticated {
        status: u16,
        reason: &'static str,
        description: String,
        realm: String,
        /// Whether a token was presented (RFC 6750: no `error` attribute when there was none).
        token_presented: bool,
    },
    /// An authenticated caller who fails the route's rule.
    Forbidden {
        reason: &'static str,
        description: String,
        missing_scope: Option<String>,
        realm: String,
    },
    /// A rate limit of the route is exhausted; the headers come from the rate limiter.
    RateLimited {
        policy: String,
        headers: Vec<(&'static str, http::HeaderValue)>,
    },
    /// The upstream refused, reset or closed the connection, or answered garbage.
    UpstreamUnavailable { detail: String },
    /// The upstream did not connect or answer in time.
    UpstreamTimeout { detail: String },
    /// No target of the upstream is usable.
    NoHealthyTarget { upstream: String },
    /// A request body the route transforms is larger than its `max_body` (413).
    RequestBodyTooLarge { limit: usize },
    /// A request body the route transforms is not valid JSON (400).
    RequestBodyInvalid,
    /// A JSON request body the route transforms arrived compressed (415).
    RequestBodyEncoded,
    /// An upstream body the route transforms could not be transformed (502 while the response
    /// head has not reached the client; once it has, the response is cut off instead).
    ResponseBodyRefused { detail: String },
    /// A browser sign-in could not start or finish (bad or expired state, the provider refused,
    /// the code exchange failed, a token from it was refused): 400, 502 or 503.
    SignInFailed {
        status: u16,
        reason: &'static str,
        detail: String,
    },
    /// A back-channel logout request whose logout token was refused (400).
    InvalidLogoutToken { detail: String },
    /// The client address is not allowed on this route (403).
    IpNotAllowed,
    /// A CORS preflight the route's policy does not allow (403).
    CorsPreflightRefused { why: &'static str },
}

impl Denial {
    pub fn status(&self) -> u16 {
        match self {
            Denial::NoRoute => 404,
            Denial::MethodNotAllowed { .. } => 405,
            Denial::PathNotNormalized { .. }
            | Denial::InvalidHost { .. }
            | Denial::BadConnectionHeader { .. }
            | Denial::BadContentLength => 400,
            Denial::ClientTimeout | Denial::ClientTooSlow { .. } => 408,
            Denial::HeadersTooLarge { .. } => 431,
            Denial::Unauthenticated { status, .. } => *status,
            Denial::Forbidden { .. } => 403,
            Denial::RateLimited { .. } => 429,
            Denial::UpstreamUnavailable { .. } => 502,
            Denial::UpstreamTimeout { .. } => 504,
            Denial::NoHealthyTarget { .. } => 502,
            Denial::RequestBodyTooLarge { .. } => 413,
            Denial::RequestBodyInvalid => 400,
            Denial::RequestBodyEncoded => 415,
            Denial::ResponseBodyRefused { .. } => 502,
            Denial::SignInFailed { status, .. } => *status,
            Denial::InvalidLogoutToken { .. } => 400,
            Denial::IpNotAllowed | Denial::CorsPreflightRefused { .. } => 403,
        }
    }

    /// The stable machine-readable reason code (also used in logs and metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::NoRoute => "no_route",
            Denial::MethodNotAllowed { .. } => "method_not_allowed",
            Denial::PathNotNormalized { .. } => "path_not_normalized",
            Denial::InvalidHost { .. } => "invalid_host",
            Denial::BadConnectionHeader { .. } => "bad_connection_header",
            Denial::BadContentLength => "bad_content_length",
            Denial::ClientTimeout => "client_timeout",
            Denial::ClientTooSlow { .. } => "client_too_slow",
            Denial::HeadersTooLarge { .. } => "headers_too_large",
            Denial::Unauthenticated { reason, .. } | Denial::Forbidden { reason, .. } => reason,
            Denial::RateLimited { .. } => "rate_limited",
            Denial::UpstreamUnavailable { .. } => "upstream_unavailable",
            Denial::UpstreamTimeout { .. } => "upstream_timeout",
            Denial::NoHealthyTarget { .. } => "no_healthy_target",
            Denial::RequestBodyTooLarge { .. } => "request_body_too_large",
            Denial::RequestBodyInvalid => "request_body_invalid",
            Denial::RequestBodyEncoded => "request_body_encoded",
            Denial::ResponseBodyRefused { .. } => "response_body_refused",
            Denial::SignInFailed { reason, .. } => reason,
            Denial::InvalidLogoutToken { .. } => "invalid_logout_token",
            Denial::IpNotAllowed => "ip_not_allowed",
            Denial::CorsPreflightRefused { .. } => "cors_preflight_refused",
        }
    }

    fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Error",
        }
    }

    /// The human explanation of the problem body.
    pub fn detail(&self) -> Cow<'_, str> {
        match self {
            Denial::NoRoute => "no route matches this host and path".into(),
            Denial::MethodNotAllowed { allow } => format!("this path accepts only: {allow}").into(),
            Denial::PathNotNormalized { why } => why.to_string().into(),
            Denial::InvalidHost { why } => why.to_string().into(),
            Denial::BadConnectionHeader { header } => {
                format!("`Connection` may not nominate `{header}`").into()
            }
            Denial::BadContentLength => {
                "`Content-Length` must be one decimal number of bytes".into()
            }
            Denial::ClientTimeout => "the request was not received within the read timeout".into(),
            Denial::ClientTooSlow { min_rate } => {
                format!("the request body arrived slower than {min_rate} bytes per second").into()
            }
            Denial::HeadersTooLarge { limit } => {
                format!("the request head exceeds {limit} bytes").into()
            }
            Denial::Unauthenticated { description, .. } | Denial::Forbidden { description, .. } => {
                description.as_str().into()
            }
            Denial::UpstreamUnavailable { detail } | Denial::UpstreamTimeout { detail } => {
                detail.as_str().into()
            }
            Denial::RateLimited { policy, .. } => {
                format!("rate limit `{policy}` exceeded; retry after the Retry-After delay").into()
            }
            Denial::NoHealthyTarget { upstream } => {
                format!("upstream `{upstream}` has no healthy target").into()
            }
            Denial::RequestBodyTooLarge { limit } => {
                format!("the JSON request body exceeds this route's limit of {limit} bytes").into()
            }
            Denial::RequestBodyInvalid => "the request body is not valid JSON".into(),
            Denial::RequestBodyEncoded => {
                "this route transforms JSON request bodies and accepts them uncompressed only"
                    .into()
            }
            Denial::ResponseBodyRefused { detail }
            | Denial::SignInFailed { detail, .. }
            | Denial::InvalidLogoutToken { detail } => detail.as_str().into(),
            Denial::IpNotAllowed => "this route does not accept requests from your address".into(),
            Denial::CorsPreflightRefused { why } => format!("CORS preflight refused: {why}").into(),
        }
    }

    /// The problem+json body.
    pub fn body(&self, request_id: &str, trace_id: &str) -> Bytes {
        let body = serde_json::json!({
            "type": format!("urn:portcullis:problem:{}", self.reason()),
            "title": self.title(),
            "status": self.status(),
            "detail": self.detail(),
            "reason": self.reason(),
            "request_id": request_id,
            "trace_id": trace_id,
        });
        Bytes::from(body.to_string())
    }

    /// The full response header: status, content type, request id and status-specific headers.
    pub fn response_header(&self, request_id: &str, body_len: usize) -> Result<ResponseHeader> {
        let mut header = ResponseHeader::build(self.status(), Some(6))?;
        header.insert_header("content-type", "application/problem+json")?;
        header.insert_header("content-length", body_len.to_string())?;
        header.insert_header("cache-control", "no-store")?;
        header.insert_header(REQUEST_ID_HEADER, request_id)?;
        match self {
            Denial::MethodNotAllowed { allow } => header.insert_header("allow", allow.as_str())?,
            Denial::Unauthenticated {
                status: 401,
                reason,
                description,
                realm,
                token_presented,
            } => {
                let value = if *token_presented {
                    format!(
                        "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
                        quote_safe(realm),
                        quote_safe(&format!("{reason}: {description}"))
                    )
                } else {
                    format!("Bearer realm=\"{}\"", quote_safe(realm))
                };
                header.insert_header("www-authenticate", value)?;
            }
            Denial::Unauthenticated { status: 503, .. }
            | Denial::SignInFailed { status: 503, .. } => {
                header.insert_header("retry-after", "5")?;
            }
            Denial::Forbidden {
                missing_scope,
                realm,
                ..
            } => {
                let mut value = format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\"",
                    quote_safe(realm)
                );
                if let Some(scope) = missing_scope {
                    value.push_str(&format!(", scope=\"{}\"", quote_safe(scope)));
                }
                header.insert_header("www-authenticate", value)?;
            }
            Denial::RateLimited { headers, .. } => {
                for (name, value) in headers {
                    header.insert_header(*name, value.clone())?;
                }
            }
            _ => {}
        }
        Ok(header)
    }
}

/// Characters allowed inside a quoted WWW-Authenticate parameter (RFC 6750 §3: printable ASCII
/// except `"` and `\`); anything else is replaced.
fn quote_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// The response for a failed proxy attempt on `upstream`, or `None` when the client is gone
/// (nothing to answer).
pub fn classify_proxy_error(error: &Error, upstream: &str) -> Option<Denial> {
    if error.esource() == &ErrorSource::Downstream {
        // The client, not the upstream: a stalled request is the client's timeout (408); any
        // other client-side failure has no one left to answer.
        return matches!(error.etype(), ErrorType::ReadTimedout).then_some(Denial::ClientTimeout);
    }
    match error.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            return Some(Denial::UpstreamTimeout {
                detail: format!("upstream `{upstream}` did not answer in time"),
            })
        }
        _ => {}
    }
    match error.esource() {
        ErrorSource::Downstream => None,
        _ => Some(Denial::UpstreamUnavailable {
            detail: format!("upstream `{upstream}` failed: {}", error.etype().as_str()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_carries_reason_and_request_id() {
        let denial = Denial::NoRoute;
        let body: serde_json::Value =
            serde_json::from_slice(&denial.body("req-1", "0af7651916cd43dd8448eb211c80319c"))
                .unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["reason"], "no_route");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["type"], "urn:portcullis:problem:no_route");
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let denial = Denial::MethodNotAllowed {
            allow: "GET, HEAD".into(),
        };
        let header = denial.response_header("r", 10).unwrap();
        assert_eq!(header.status.as_u16(), 405);
        assert_eq!(header.headers["allow"], "GET, HEAD");
        assert_eq!(header.headers["content-type"], "application/problem+json");
    }

    #[test]
    fn unauthenticated_follows_rfc_6750() {
        let missing = Denial::Unauthenticated {
            status: 401,
            reason: "missing_token",
            description: "no bearer token".into(),
            realm: "acme".into(),
            token_presented: false,
        };
        let header = missing.response_header("r", 1).unwrap();
        assert_eq!(header.headers["www-authenticate"], "Bearer realm=\"acme\"");
        let invalid = Denial::Unauthenticated {
            status: 401,
            reason: "expired",
            description: "token \"expired\" 5s ago".into(),
            realm: "acme".into(),
            token_presented: true,
        };
        let value = invalid.response_header("r", 1).unwrap().headers["www-authenticate"].clone();
        assert_eq!(
            value,
            "Bearer realm=\"acme\", error=\"invalid_token\", error_description=\"expired: token 'expired' 5s ago\""
        );
    }

    #[test]
    fn forbidden_names_missing_scope() {
        let denial = Denial::Forbidden {
            reason: "insufficient_scope",
            description: "requires scope orders.read".into(),
            missing_scope: Some("orders.read".into()),
            realm: "acme".into(),
        };
        let header = denial.response_header("r", 1).unwrap();
        assert_eq!(
            header.headers["www-authenticate"],
            "Bearer realm=\"acme\", error=\"insufficient_scope\", scope=\"orders.read\""
        );
    }
}
