//! HTTP helpers of the development identity provider's browser-facing endpoints: HTML pages with
//! every reflected value escaped, JSON answers that must not be cached, redirects with
//! parameters, form and query parsing, HTTP Basic client credentials and the SSO cookie.

use super::accounts::SESSION_COOKIE;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use std::collections::HashMap;

/// What every handler answers.
pub type HttpResponse = Response<Full<Bytes>>;

/// The largest request body read (a form post).
const BODY_LIMIT: usize = 64 * 1024;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An HTML page; `title` is escaped here, `body` must already be safe HTML.
pub fn html_page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let title = escape_html(title);
    response(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
             <body><h1>{title}</h1>\n{body}\n</body></html>\n"
        ),
    )
}

/// Keycloak's error page: an HTML page with the escaped message (`id="kc-error-message"`).
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    html_page(
        status,
        "We are sorry...",
        &format!(
            "<p id=\"kc-error-message\" class=\"instruction\">{}</p>",
            escape_html(message)
        ),
    )
}

/// A JSON answer with `Cache-Control: no-store`, as the token endpoint gives.
pub fn json(status: StatusCode, body: &Value) -> HttpResponse {
    response(status, "application/json", body.to_string())
}

/// An OAuth error answer: `{"error": …, "error_description": …}`.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

/// A `302 Found` to `location`.
pub fn redirect(location: &str) -> HttpResponse {
    let mut response = response(StatusCode::FOUND, "text/plain", String::new());
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid redirect uri"),
    }
}

/// Adds a `Set-Cookie` header.
pub fn with_cookie(mut response: HttpResponse, cookie: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `base` with the parameters added to its query (`?` or `&`), form-urlencoded; `None` values
/// are left out.
pub fn with_params(base: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() {
        return base.to_owned();
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

/// Form (or query) parameters; the first of repeated names wins.
pub fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        params
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

/// A request body, at most 64 KiB; `None` if it is larger or broken.
pub async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, BODY_LIMIT)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

/// Decodes one `application/x-www-form-urlencoded` value (`%XX`, `+` for space).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
}

/// `client_secret_basic` credentials: `Authorization: Basic base64(urlenc(id) ":" urlenc(secret))`.
/// `None` without such a header; `Some(None)` when it is there but malformed.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok();
    let text = decoded.and_then(|d| String::from_utf8(d).ok());
    Some(text.and_then(|text| {
        let (id, secret) = text.split_once(':')?;
        Some((form_decode(id)?, form_decode(secret)?))
    }))
}

/// The value of a request cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// The SSO cookie of `realm` carrying `sid`.
pub fn session_cookie(realm: &str, sid: &str) -> String {
    format!("{SESSION_COOKIE}={sid}; Path=/realms/{realm}/; HttpOnly; SameSite=Lax")
}

/// A `Set-Cookie` that deletes the SSO cookie of `realm`.
pub fn expired_session_cookie(realm: &str) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/realms/{realm}/; Max-Age=0; \
         Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            with_params(
                "https://a/cb?x=1",
                &[("code", Some("a b")), ("state", None)]
            ),
            "https://a/cb?x=1&code=a+b"
        );
        assert_eq!(with_params("https://a/cb", &[]), "https://a/cb");
    }

    #[test]
    fn reads_basic_credentials_and_cookies() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%3Aclient:s%25cret+x");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(Some(("my:client".to_owned(), "s%cret x".to_owned())))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic_credentials(&headers), Some(None));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; DEVIDP_SESSION=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
