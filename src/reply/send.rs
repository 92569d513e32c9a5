//! Writing the gateway's own answers: a refusal as problem+json, a redirect with its cookies,
//! or an empty acknowledgement. The connection is kept alive unless the request still has an
//! unread body.

use super::denial::Denial;
use crate::request_id::REQUEST_ID_HEADER;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Every answer the gateway makes itself: a refusal, a redirect, or a bare acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Refusal(Denial),
    /// `302 Found` to `location` with `Set-Cookie` values (sign-in, callback, logout).
    Redirect {
        location: String,
        set_cookies: Vec<String>,
    },
    /// `200` with an empty body (a back-channel logout was done).
    Done,
    /// `200` with an empty body and the identity headers of an allowed request (the answer to
    /// a forward-auth check), with `Set-Cookie` values when its session was renewed.
    Allowed {
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        set_cookies: Vec<String>,
    },
    /// `204` answering a CORS preflight, with its headers.
    Preflight {
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
    },
    /// `200` with a document the gateway publishes (its assertion JWKS).
    Document {
        content_type: &'static str,
        body: String,
    },
}

impl From<Denial> for Reply {
    fn from(denial: Denial) -> Self {
        Reply::Refusal(denial)
    }
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::Refusal(denial) => denial.status(),
            Reply::Redirect { .. } => 302,
            Reply::Done | Reply::Allowed { .. } => 200,
            Reply::Preflight { .. } => 204,
            Reply::Document { .. } => 200,
        }
    }

    /// The reason code for logs: the refusal's, or what the answer did.
    pub fn reason(&self) -> &'static str {
        match self {
            Reply::Refusal(denial) => denial.reason(),
            Reply::Redirect { .. } => "redirect",
            Reply::Done => "done",
            Reply::Allowed { .. } => "allowed",
            Reply::Preflight { .. } => "preflight",
            Reply::Document { .. } => "document",
        }
    }

    /// One line for a decision trace: status, reason and the refusal's detail (never a
    /// cookie or a redirect target's query, which may carry sign-in state).
    pub fn summary(&self) -> String {
        match self {
            Reply::Refusal(denial) => format!(
                "{} {}: {}",
                denial.status(),
                denial.reason(),
                denial.detail()
            ),
            Reply::Redirect { location, .. } => {
                let target = location.split('?').next().unwrap_or_default();
                format!("302 redirect to {target}")
            }
            other => format!("{} {}", other.status(), other.reason()),
        }
    }
}

/// Headers added to a gateway-made response (the route's CORS headers, so that a script can
/// read a refusal).
pub type ExtraHeaders<'a> = &'a [(http::HeaderName, http::HeaderValue)];

/// Writes `reply` to the client, with `extra` headers.
pub async fn send_reply(
    session: &mut Session,
    reply: &Reply,
    request_id: &str,
    trace_id: &str,
    extra: ExtraHeaders<'_>,
) -> Result<()> {
    let no_headers: &[(http::HeaderName, http::HeaderValue)] = &[];
    let (status, location, set_cookies, headers) = match reply {
        Reply::Refusal(denial) => return send(session, denial, request_id, trace_id, extra).await,
        Reply::Document { content_type, body } => {
            return send_document(session, content_type, body, request_id).await
        }
        Reply::Redirect {
            location,
            set_cookies,
        } => (
            302,
            Some(location.as_str()),
            set_cookies.as_slice(),
            no_headers,
        ),
        Reply::Done => (200, None, &[][..], no_headers),
        Reply::Allowed {
            headers,
            set_cookies,
        } => (200, None, set_cookies.as_slice(), headers.as_slice()),
        Reply::Preflight { headers } => (204, None, &[][..], headers.as_slice()),
    };
    let capacity = 4 + set_cookies.len() + headers.len() + extra.len();
    let mut header = ResponseHeader::build(status, Some(capacity))?;
    if let Some(location) = location {
        header.insert_header("location", location)?;
    }
    for (name, value) in headers.iter().chain(extra) {
        header.append_header(name.clone(), value.clone())?;
    }
    for cookie in set_cookies {
        header.append_header("set-cookie", cookie.as_str())?;
    }
    if status != 204 {
        header.insert_header("content-length", "0")?;
    }
    header.insert_header("cache-control", "no-store")?;
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    if request_has_unread_body(session) {
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(None, true).await?;
    Ok(())
}

/// Writes a published document (`200`, cacheable for five minutes).
async fn send_document(
    session: &mut Session,
    content_type: &'static str,
    body: &str,
    request_id: &str,
) -> Result<()> {
    let mut header = ResponseHeader::build(200, Some(4))?;
    header.insert_header("content-type", content_type)?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "public, max-age=300")?;
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let body = (session.req_header().method != http::Method::HEAD)
        .then(|| bytes::Bytes::from(body.to_owned()));
    session.write_response_body(body, true).await?;
    Ok(())
}

/// Writes `denial` to the client, with `extra` headers. The connection is kept alive unless the
/// request still has an unread body.
pub async fn send(
    session: &mut Session,
    denial: &Denial,
    request_id: &str,
    trace_id: &str,
    extra: ExtraHeaders<'_>,
) -> Result<()> {
    let body = denial.body(request_id, trace_id);
    let mut header = denial.response_header(request_id, body.len())?;
    for (name, value) in extra {
        header.append_header(name.clone(), value.clone())?;
    }
    if request_has_unread_body(session) {
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let body = if session.req_header().method == http::Method::HEAD {
        None
    } else {
        Some(body)
    };
    session.write_response_body(body, true).await?;
    Ok(())
}

fn request_has_unread_body(session: &Session) -> bool {
    let headers = &session.req_header().headers;
    // Any length but a plain `0`: a malformed one leaves the body's end unknown.
    let declared = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .any(|v| v.as_bytes() != b"0");
    declared || headers.contains_key(http::header::TRANSFER_ENCODING)
}
