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
        }
    }

    /// The reason code for logs: the refusal's, or what the answer did.
    pub fn reason(&self) -> &'static str {
        match self {
            Reply::Refusal(denial) => denial.reason(),
            Reply::Redirect { .. } => "redirect",
            Reply::Done => "done",
            Reply::Allowed { .. } => "allowed",
        }
    }
}

/// Writes `reply` to the client.
pub async fn send_reply(session: &mut Session, reply: &Reply, request_id: &str) -> Result<()> {
    let no_headers: &[(http::HeaderName, http::HeaderValue)] = &[];
    let (status, location, set_cookies, headers) = match reply {
        Reply::Refusal(denial) => return send(session, denial, request_id).await,
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
    };
    let capacity = 4 + set_cookies.len() + headers.len();
    let mut header = ResponseHeader::build(status, Some(capacity))?;
    if let Some(location) = location {
        header.insert_header("location", location)?;
    }
    for (name, value) in headers {
        header.append_header(name.clone(), value.clone())?;
    }
    for cookie in set_cookies {
        header.append_header("set-cookie", cookie.as_str())?;
    }
    header.insert_header("content-length", "0")?;
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

/// Writes `denial` to the client. The connection is kept alive unless the request still has an
/// unread body.
pub async fn send(session: &mut Session, denial: &Denial, request_id: &str) -> Result<()> {
    let body = denial.body(request_id);
    let header = denial.response_header(request_id, body.len())?;
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
