//! The endpoints of [`super::upstream::DemoUpstream`]: the demo orders API and the `/_test/`
//! endpoints that integration tests and benches use.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub type Body = BoxBody<Bytes, Infallible>;

fn order(id: &str) -> String {
    let id = serde_json::Value::String(id.to_owned());
    format!(
        r#"{{"id":{id},"owner":"Alice Example","status":"shipped","total":"129.90","currency":"EUR","internal_cost":"71.20","card_number":"4111111111111111","items":[{{"sku":"A-1","qty":2,"price":"39.95","internal_cost":"21.00"}},{{"sku":"B-7","qty":1,"price":"50.00","internal_cost":"29.20"}}]}}"#
    )
}

/// About 10 KB of nested JSON, for transform tests and benches.
pub fn ten_kb_document() -> String {
    let items: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            serde_json::json!({
                "sku": format!("SKU-{i:04}"), "qty": i % 5 + 1, "price": format!("{}.99", i + 3),
                "internal_cost": format!("{}.10", i + 1), "tags": ["a", "b"],
                "supplier": { "name": "ACME", "contact": "orders@acme.example" }
            })
        })
        .collect();
    serde_json::json!({
        "id": "batch-1", "owner": "Alice Example", "internal_cost": "999.00",
        "card_number": "4111111111111111", "items": items
    })
    .to_string()
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn response(status: u16, name: &str, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-upstream", name)
        .body(body)
        .unwrap_or_else(|_| Response::new(full("")))
}

fn json(status: u16, name: &str, body: impl Into<Bytes>) -> Response<Body> {
    response(status, name, "application/json", full(body))
}

/// `length` bytes of the pattern 0, 1, … 255, 0, … produced 64 KiB at a time.
fn pattern_stream(length: u64) -> Body {
    let chunks = futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= length {
            return None;
        }
        let size = (length - offset).min(64 * 1024);
        let chunk: Vec<u8> = (0..size).map(|i| ((offset + i) % 256) as u8).collect();
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))),
            offset + size,
        ))
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

/// Answers one request.
pub async fn respond(
    request: Request<Incoming>,
    name: Arc<str>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let reply = match (method.as_str(), segments.as_slice()) {
        ("GET" | "HEAD", ["status"]) => json(
            200,
            &name,
            format!(r#"{{"status":"ok","upstream":"{name}"}}"#),
        ),
        ("GET" | "HEAD", ["orders", id]) => json(200, &name, order(id)),
        ("POST", ["orders"]) => {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(mut created) => {
                    if let Some(object) = created.as_object_mut() {
                        object.insert("id".into(), "1001".into());
                        object.insert("status".into(), "created".into());
                    }
                    json(201, &name, created.to_string())
                }
                Err(e) => json(
                    400,
                    &name,
                    serde_json::json!({"error": format!("invalid JSON: {e}")}).to_string(),
                ),
            }
        }
        ("GET", ["me"]) => json(
            200,
            &name,
            r#"{"profile":"the caller's identity arrives in headers set by the gateway"}"#,
        ),
        ("GET", ["reports", ..]) => json(200, &name, r#"{"report":"quarterly","rows":3}"#),
        (_, ["_test", "echo", ..]) => echo(request, &name).await,
        (_, ["_test", "bytes", n]) => match n.parse::<u64>() {
            Ok(length) => {
                let mut reply = response(
                    200,
                    &name,
                    "application/octet-stream",
                    pattern_stream(length),
                );
                reply
                    .headers_mut()
                    .insert(http::header::CONTENT_LENGTH, length.into());
                reply
            }
            Err(_) => json(400, &name, r#"{"error":"bad length"}"#),
        },
        (_, ["_test", "chunked", n]) => match n.parse::<u64>() {
            Ok(length) => response(
                200,
                &name,
                "application/octet-stream",
                pattern_stream(length),
            ),
            Err(_) => json(400, &name, r#"{"error":"bad length"}"#),
        },
        (_, ["_test", "upload"]) => {
            let mut body = request.into_body();
            let (mut received, mut checksum) = (0u64, 0u64);
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                    checksum = data
                        .iter()
                        .fold(checksum, |sum, b| sum.wrapping_add(u64::from(*b)));
                }
            }
            json(
                200,
                &name,
                format!(r#"{{"received":{received},"checksum":{checksum}}}"#),
            )
        }
        (_, ["_test", "status", code]) => {
            let code = code
                .parse::<u16>()
                .ok()
                .filter(|c| (200..600).contains(c))
                .unwrap_or(400);
            if code == 204 || code == 304 {
                response(code, &name, "application/json", full(""))
            } else {
                json(code, &name, format!(r#"{{"status":{code}}}"#))
            }
        }
        (_, ["_test", "slow", ms]) => {
            let millis = ms.parse::<u64>().unwrap_or(0).min(60_000);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            json(200, &name, r#"{"slow":true}"#)
        }
        (_, ["_test", "json"]) => {
            let document = ten_kb_document();
            // Sent as a stream of two chunks, without Content-Length.
            let (first, second) = document.split_at(document.len() / 2);
            let parts = vec![
                Bytes::from(first.to_owned()),
                Bytes::from(second.to_owned()),
            ];
            let stream =
                futures_util::stream::iter(parts).map(|b| Ok::<_, Infallible>(Frame::data(b)));
            response(
                200,
                &name,
                "application/json",
                BodyExt::boxed(StreamBody::new(stream)),
            )
        }
        (_, ["_test", "gzip"]) => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = encoder.write_all(order("gz").as_bytes());
            let compressed = encoder.finish().unwrap_or_default();
            let mut reply = json(200, &name, compressed);
            reply.headers_mut().insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
            reply
        }
        _ => json(404, &name, r#"{"error":"not found"}"#),
    };
    Ok(reply)
}

/// Describes the request back: method, raw path and query, headers in order, body.
async fn echo(request: Request<Incoming>, name: &str) -> Response<Body> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = serde_json::Map::new();
    for (header, value) in request.headers() {
        let entry = headers
            .entry(header.as_str().to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
    }
    let version = format!("{:?}", request.version());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = if body.len() < 64 * 1024 {
        serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
    } else {
        serde_json::Value::Null
    };
    let reply = serde_json::json!({
        "method": method, "path": path, "version": version, "headers": headers,
        "body_length": body.len(), "body": text,
    });
    json(200, name, reply.to_string())
}
