//! The endpoints of [`DemoUpstream`](super::upstream::DemoUpstream), behind one dispatch point,
//! [`respond`]: the demo orders API (`/status`, `/orders`, `/me`, `/reports/…`) and the
//! `/_test/…` endpoints the integration tests and benches use. Bodies that do not depend on the
//! request are built once; a request for an order copies one prebuilt prefix and suffix.

pub(super) mod bodies;

use bodies::{consume_request_body, ResponseBody};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, LOCATION};
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Echo returns the request body as text only below this size.
const ECHO_TEXT_LIMIT: usize = 64 * 1024;
/// The largest order `POST /orders` accepts.
const ORDER_SIZE_LIMIT: usize = 1024 * 1024;
/// The longest wait `/_test/slow/{ms}` grants.
const SLOW_LIMIT_MS: u64 = 60_000;

/// Everything about one upstream that its responses need, shared by all its connections.
pub(crate) struct UpstreamState {
    /// The `x-upstream` header value every response carries (checked once, at start).
    name: HeaderValue,
    /// The prebuilt `GET /status` body, which names this upstream.
    status_body: Bytes,
    /// Requests answered so far, for [`DemoUpstream::requests`](super::upstream::DemoUpstream::requests).
    pub(crate) served: AtomicU64,
    /// The id of the next order `POST /orders` creates.
    next_order_id: AtomicU64,
}

impl UpstreamState {
    /// Fails when `name` cannot be a header value.
    pub(crate) fn new(name: &str) -> std::io::Result<UpstreamState> {
        let header = HeaderValue::from_str(name).map_err(|_| {
            let message = format!("demo upstream name {name:?} is not a valid header value");
            std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
        })?;
        let status_body = format!(r#"{{"status":"ok","upstream":{}}}"#, json_string(name));
        Ok(UpstreamState {
            name: header,
            status_body: Bytes::from(status_body),
            served: AtomicU64::new(0),
            next_order_id: AtomicU64::new(1001),
        })
    }
}

/// What a request asks for, borrowed from its path.
enum Endpoint<'a> {
    Status,
    Order(&'a str),
    CreateOrder,
    Me,
    Report,
    Echo,
    PatternBytes(&'a str),
    PatternChunked(&'a str),
    Upload,
    StatusCode(&'a str),
    Slow(&'a str),
    Gzip,
    Json,
    NotFound,
}

impl<'a> Endpoint<'a> {
    fn of(method: &Method, path: &'a str) -> Endpoint<'a> {
        if let Some(test_path) = path.strip_prefix("/_test/") {
            return Endpoint::of_test(test_path);
        }
        let read = method == Method::GET || method == Method::HEAD;
        let order_id = path
            .strip_prefix("/orders/")
            .filter(|id| !id.is_empty() && !id.contains('/'));
        match (path, order_id) {
            ("/status", _) if read => Endpoint::Status,
            ("/orders", _) if method == Method::POST => Endpoint::CreateOrder,
            ("/me", _) if read => Endpoint::Me,
            (_, Some(id)) if read => Endpoint::Order(id),
            ("/reports", _) if read => Endpoint::Report,
            (_, _) if read && path.starts_with("/reports/") => Endpoint::Report,
            _ => Endpoint::NotFound,
        }
    }

    /// `/_test/…` endpoints answer any method.
    fn of_test(test_path: &'a str) -> Endpoint<'a> {
        match test_path.split_once('/') {
            None if test_path == "echo" => Endpoint::Echo,
            None if test_path == "upload" => Endpoint::Upload,
            None if test_path == "gzip" => Endpoint::Gzip,
            None if test_path == "json" => Endpoint::Json,
            Some(("echo", _)) => Endpoint::Echo,
            Some(("bytes", length)) => Endpoint::PatternBytes(length),
            Some(("chunked", length)) => Endpoint::PatternChunked(length),
            Some(("status", code)) => Endpoint::StatusCode(code),
            Some(("slow", millis)) => Endpoint::Slow(millis),
            _ => Endpoint::NotFound,
        }
    }
}

/// Answers one request.
pub(crate) async fn respond(
    request: Request<Incoming>,
    state: Arc<UpstreamState>,
) -> Result<Response<ResponseBody>, Infallible> {
    state.served.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let json =
        |status: StatusCode, body: Bytes| reply(&state, status, JSON, ResponseBody::complete(body));
    let bad_request =
        |what: &'static str| json(StatusCode::BAD_REQUEST, Bytes::from_static(what.as_bytes()));
    let response = match Endpoint::of(&parts.method, parts.uri.path()) {
        Endpoint::Status => json(StatusCode::OK, state.status_body.clone()),
        Endpoint::Order(id) => json(StatusCode::OK, order_document(id)),
        Endpoint::CreateOrder => create_order(&state, body).await,
        Endpoint::Me => json(StatusCode::OK, Bytes::from_static(ME_DOCUMENT.as_bytes())),
        Endpoint::Report => json(
            StatusCode::OK,
            Bytes::from_static(REPORT_DOCUMENT.as_bytes()),
        ),
        Endpoint::Echo => {
            let consumed = consume_request_body(body, ECHO_TEXT_LIMIT).await;
            json(
                StatusCode::OK,
                Bytes::from(echo_document(&parts, &consumed)),
            )
        }
        Endpoint::PatternBytes(length) => pattern(&state, length, true),
        Endpoint::PatternChunked(length) => pattern(&state, length, false),
        Endpoint::Upload => {
            let consumed = consume_request_body(body, 0).await;
            if !consumed.complete {
                return Ok(bad_request(r#"{"error":"the request body was cut short"}"#));
            }
            let (received, checksum) = (consumed.length, consumed.checksum);
            let document = format!(r#"{{"received":{received},"checksum":{checksum}}}"#);
            json(StatusCode::OK, Bytes::from(document))
        }
        Endpoint::StatusCode(code) => match code.parse::<u16>().ok().filter(|code| *code >= 200) {
            Some(code) => match StatusCode::from_u16(code) {
                Ok(status)
                    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED =>
                {
                    reply(&state, status, JSON, ResponseBody::empty())
                }
                Ok(status) => json(status, Bytes::from(format!(r#"{{"status":{code}}}"#))),
                Err(_) => bad_request(r#"{"error":"the status must be 200..=999"}"#),
            },
            None => bad_request(r#"{"error":"the status must be 200..=999"}"#),
        },
        Endpoint::Slow(millis) => match millis.parse::<u64>() {
            Ok(millis) => {
                tokio::time::sleep(Duration::from_millis(millis.min(SLOW_LIMIT_MS))).await;
                json(StatusCode::OK, Bytes::from_static(br#"{"slow":true}"#))
            }
            Err(_) => bad_request(r#"{"error":"the delay must be a number of milliseconds"}"#),
        },
        Endpoint::Gzip => {
            let mut response = json(StatusCode::OK, gzip_document().clone());
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
        Endpoint::Json => {
            // Two pieces, without Content-Length: the gateway must gather a chunked body.
            let document = Bytes::from_static(ten_kb_document().as_bytes());
            let middle = document.len() / 2;
            let pieces = VecDeque::from([document.slice(..middle), document.slice(middle..)]);
            reply(&state, StatusCode::OK, JSON, ResponseBody::Pieces(pieces))
        }
        Endpoint::NotFound => json(
            StatusCode::NOT_FOUND,
            Bytes::from_static(br#"{"error":"not found"}"#),
        ),
    };
    Ok(response)
}

const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

fn reply(
    state: &UpstreamState,
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-upstream", state.name.clone());
    response
}

/// `/_test/bytes/{n}` (`announce_length`) and `/_test/chunked/{n}`: `n` pattern bytes, streamed.
fn pattern(state: &UpstreamState, length: &str, announce_length: bool) -> Response<ResponseBody> {
    match length.parse::<u64>() {
        Ok(remaining) => {
            let body = ResponseBody::Pattern {
                remaining,
                announce_length,
            };
            reply(state, StatusCode::OK, OCTET_STREAM, body)
        }
        Err(_) => {
            let body =
                ResponseBody::complete(&br#"{"error":"the length must be a number of bytes"}"#[..]);
            reply(state, StatusCode::BAD_REQUEST, JSON, body)
        }
    }
}

/// `POST /orders`: any JSON is accepted and answered as the created order.
async fn create_order(state: &UpstreamState, body: Incoming) -> Response<ResponseBody> {
    let consumed = consume_request_body(body, ORDER_SIZE_LIMIT).await;
    let error = |status: StatusCode, message: String| {
        let document = format!(r#"{{"error":{}}}"#, json_string(&message));
        reply(state, status, JSON, ResponseBody::complete(document))
    };
    if !consumed.fully_kept() {
        let message = format!("an order may not exceed {ORDER_SIZE_LIMIT} bytes");
        return error(StatusCode::PAYLOAD_TOO_LARGE, message);
    }
    let submitted = match serde_json::from_slice::<serde_json::Value>(&consumed.kept) {
        Ok(submitted) => submitted,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {invalid}")),
    };
    let id = state
        .next_order_id
        .fetch_add(1, Ordering::Relaxed)
        .to_string();
    let created = match submitted {
        serde_json::Value::Object(mut order) => {
            order.insert("id".into(), id.clone().into());
            order.insert("status".into(), "created".into());
            serde_json::Value::Object(order)
        }
        other => serde_json::json!({ "id": id, "status": "created", "order": other }),
    };
    let mut response = reply(
        state,
        StatusCode::CREATED,
        JSON,
        ResponseBody::complete(created.to_string()),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

const ORDER_PREFIX: &str = r#"{"id":"#;
const ORDER_SUFFIX: &str = concat!(
    r#","owner":"Alice Example","status":"shipped","total":"129.90","currency":"EUR","#,
    r#""internal_cost":"71.20","card_number":"4111111111111111","items":["#,
    r#"{"sku":"A-1","qty":2,"price":"39.95","internal_cost":"21.00"},"#,
    r#"{"sku":"B-7","qty":1,"price":"50.00","internal_cost":"29.20"}]}"#
);
const ME_DOCUMENT: &str = r#"{"subject":"demo-user","note":"the gateway forwards the caller's identity in request headers"}"#;
const REPORT_DOCUMENT: &str = r#"{"report":"quarterly","currency":"EUR","rows":[{"quarter":"Q1","revenue":"10400.00"},{"quarter":"Q2","revenue":"11950.00"},{"quarter":"Q3","revenue":"12875.50"}]}"#;

/// The order `GET /orders/{id}` returns: the id (as sent, a JSON string) between two constants.
fn order_document(id: &str) -> Bytes {
    let plain = id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    let quoted_id = if plain {
        format!("\"{id}\"")
    } else {
        json_string(id)
    };
    let mut document =
        BytesMut::with_capacity(ORDER_PREFIX.len() + quoted_id.len() + ORDER_SUFFIX.len());
    document.extend_from_slice(ORDER_PREFIX.as_bytes());
    document.extend_from_slice(quoted_id.as_bytes());
    document.extend_from_slice(ORDER_SUFFIX.as_bytes());
    document.freeze()
}

/// `/_test/echo`: the request described back — method, raw path and query, version, headers
/// (name → values, in the order received), body length, and the body as text when it is
/// shorter than 64 KiB (otherwise `null`).
fn echo_document(parts: &Parts, consumed: &bodies::ConsumedBody) -> String {
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut document = String::with_capacity(256 + consumed.kept.len());
    document.push_str(r#"{"method":"#);
    document.push_str(&json_string(parts.method.as_str()));
    document.push_str(r#","path":"#);
    document.push_str(&json_string(path));
    document.push_str(&format!(r#","version":"{:?}","headers":{{"#, parts.version));
    for (index, name) in parts.headers.keys().enumerate() {
        if index > 0 {
            document.push(',');
        }
        document.push_str(&json_string(name.as_str()));
        document.push_str(":[");
        for (position, value) in parts.headers.get_all(name).iter().enumerate() {
            if position > 0 {
                document.push(',');
            }
            document.push_str(&json_string(&String::from_utf8_lossy(value.as_bytes())));
        }
        document.push(']');
    }
    document.push_str(&format!(r#"}},"body_length":{},"body":"#, consumed.length));
    if consumed.fully_kept() && consumed.kept.len() < ECHO_TEXT_LIMIT {
        document.push_str(&json_string(&String::from_utf8_lossy(&consumed.kept)));
    } else {
        document.push_str("null");
    }
    document.push('}');
    document
}

/// `text` as a quoted, escaped JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// About 10 KB of nested JSON (arrays of objects holding arrays), built once; `/_test/json`
/// serves it and transform tests and benches use it as input.
pub fn ten_kb_document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let items: Vec<serde_json::Value> = (0..58)
            .map(|i| {
                serde_json::json!({
                    "sku": format!("SKU-{i:04}"), "qty": i % 5 + 1, "price": format!("{}.99", i + 3),
                    "internal_cost": format!("{}.10", i + 1), "tags": ["demo", "bench", format!("t{}", i % 7)],
                    "supplier": { "name": "ACME", "contact": "orders@acme.example", "ratings": [4, 5, 3] }
                })
            })
            .collect();
        serde_json::json!({
            "id": "batch-1", "owner": "Alice Example", "internal_cost": "999.00",
            "card_number": "4111111111111111", "items": items
        })
        .to_string()
    })
}

/// The order document, gzip-compressed once, for `/_test/gzip`.
fn gzip_document() -> &'static Bytes {
    static COMPRESSED: OnceLock<Bytes> = OnceLock::new();
    COMPRESSED.get_or_init(|| {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let compressed = encoder
            .write_all(&order_document("gzip"))
            .and_then(|()| encoder.finish());
        Bytes::from(compressed.unwrap_or_default())
    })
}
