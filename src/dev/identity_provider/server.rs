//! The HTTP/1.1 side of the development identity provider: a hyper server on its own thread and
//! current-thread tokio runtime (so it serves sync tests, async tests and the demo alike, and
//! outlives any caller's runtime), answering a Keycloak realm's discovery, JWKS, authorization,
//! token and end-session endpoints under the fault-injection knobs of [`Shared`].

use super::state::{Endpoint, Outage, Shared};
use super::web::{error_page, oauth_error, read_body, HttpResponse};
use super::{grants, introspect, login, logout};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the server on `listener` until `stop` changes or its sender is dropped.
pub fn spawn_server_thread(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("devidp".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => accept_loop(listener, shared, stop).await,
                    Err(error) => tracing::error!(%error, "development IdP cannot listen"),
                }
            });
        })?;
    Ok(())
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if shared.knobs().outage == Some(Outage::Refuse) {
                    drop(stream);
                    continue;
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(shared.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

/// Why a connection is dropped without an answer.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the outage knob")
    }
}

impl std::error::Error for Refused {}

/// Answers one request; a clock-offset knob shifts the `Date` header (a provider whose clock
/// is off).
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refused> {
    let offset = shared.knobs().clock_offset_seconds;
    let mut response = answer(shared, request).await?;
    if offset != 0 {
        let now = std::time::SystemTime::now();
        let shifted = if offset > 0 {
            now + std::time::Duration::from_secs(offset.unsigned_abs())
        } else {
            now - std::time::Duration::from_secs(offset.unsigned_abs())
        };
        if let Ok(value) = header::HeaderValue::from_str(&httpdate::fmt_http_date(shifted)) {
            response.headers_mut().insert(header::DATE, value);
        }
    }
    Ok(response)
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refused> {
    let knobs = shared.knobs().clone();
    if knobs.outage == Some(Outage::Refuse) {
        // An error from the service makes hyper close the connection.
        return Err(Refused);
    }
    let Some((realm, endpoint)) = route(request.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    };
    if !shared.count(realm, endpoint) {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"Realm does not exist"}"#.into(),
            None,
        ));
    }
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }
    if knobs.outage == Some(Outage::Unavailable) {
        return Ok(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
        ));
    }
    if knobs.garbage {
        return Ok(json_response(
            StatusCode::OK,
            "<html>this is not JSON {".into(),
            knobs.max_age,
        ));
    }
    let document = match endpoint {
        Endpoint::Discovery => Some(shared.discovery_document(realm)),
        Endpoint::Jwks => shared.jwks_document(realm, knobs.junk_entries),
        Endpoint::Authorization
        | Endpoint::Token
        | Endpoint::EndSession
        | Endpoint::Introspection => {
            let realm = realm.to_owned();
            return Ok(browser_endpoint(shared, realm, endpoint, request).await);
        }
    };
    Ok(match document {
        Some(document) => json_response(
            StatusCode::OK,
            document.to_string(),
            knobs.max_age.filter(|_| endpoint == Endpoint::Jwks),
        ),
        None => plain(StatusCode::NOT_FOUND, "not found"),
    })
}

/// The endpoints a browser or a client's back end calls, with their methods and form bodies.
async fn browser_endpoint(
    shared: Arc<Shared>,
    realm: String,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let body = match parts.method {
        Method::GET => Bytes::new(),
        Method::POST => match read_body(body).await {
            Some(body) => body,
            None => return error_page(StatusCode::BAD_REQUEST, "Invalid request body"),
        },
        _ => return error_page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    };
    let is_post = parts.method == Method::POST;
    match endpoint {
        Endpoint::Authorization => {
            let form = is_post.then_some(&body[..]);
            login::authorize(&shared, &realm, &query, &parts.headers, form)
        }
        Endpoint::Token if is_post => grants::token(&shared, &realm, &parts.headers, &body),
        Endpoint::Introspection if is_post => {
            introspect::introspect(&shared, &realm, &parts.headers, &body)
        }
        Endpoint::Token | Endpoint::Introspection => oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "HTTP method not allowed",
        ),
        _ => logout::end_session(shared, realm, query, parts.headers, body).await,
    }
}

/// `/realms/{realm}/…` → the realm and the endpoint.
fn route(path: &str) -> Option<(&str, Endpoint)> {
    let rest = path.strip_prefix("/realms/")?;
    let (realm, endpoint) = rest.split_once('/')?;
    match endpoint {
        ".well-known/openid-configuration" => Some((realm, Endpoint::Discovery)),
        "protocol/openid-connect/certs" => Some((realm, Endpoint::Jwks)),
        "protocol/openid-connect/auth" => Some((realm, Endpoint::Authorization)),
        "protocol/openid-connect/token" => Some((realm, Endpoint::Token)),
        "protocol/openid-connect/token/introspect" => Some((realm, Endpoint::Introspection)),
        "protocol/openid-connect/logout" => Some((realm, Endpoint::EndSession)),
        _ => None,
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn json_response(status: StatusCode, body: String, max_age: Option<u64>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let cache_control = match max_age {
        Some(seconds) => format!("max-age={seconds}"),
        None => "no-cache".to_owned(),
    };
    if let Ok(value) = header::HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_realm_endpoints() {
        assert_eq!(
            route("/realms/acme/.well-known/openid-configuration"),
            Some(("acme", Endpoint::Discovery))
        );
        assert_eq!(
            route("/realms/partners/protocol/openid-connect/certs"),
            Some(("partners", Endpoint::Jwks))
        );
        assert_eq!(route("/realms/acme/other"), None);
        assert_eq!(route("/"), None);
    }
}
