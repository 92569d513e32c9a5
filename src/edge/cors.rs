//! CORS (`cors:` on a route or in `defaults`), per the Fetch standard. A preflight (`OPTIONS`
//! with `Origin` and `Access-Control-Request-Method`) is answered by the gateway before
//! authentication and rate limits: 204 with the allowed methods and headers, or 403 when the
//! origin, method or a requested header is not allowed. An actual request from an allowed
//! origin gets `Access-Control-Allow-Origin` (and the credentials and exposed headers), also on
//! the gateway's own 401/403/429, so that the script can read why; every response of a CORS
//! route carries `Vary: Origin`.
//!
//! Origins are `scheme://host[:port]`, compared case-insensitively; `scheme://*.example.com`
//! matches any subdomain (not `example.com` itself); `*` matches any origin and is refused with
//! `allow_credentials` (browsers reject that combination). `Origin: null` never matches a
//! pattern.

use crate::config::file::CorsFile;
use crate::config::PathError;
use http::{HeaderName, HeaderValue};
use std::time::Duration;

/// Methods a preflight may ask for when neither `allow_methods` nor the route's methods say.
const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Exact(String),
    /// `scheme://*.suffix` as `("scheme://", ".suffix")`.
    Subdomain {
        scheme: String,
        suffix: String,
    },
}

/// A compiled CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<OriginPattern>,
    any_origin: bool,
    methods: Vec<String>,
    methods_value: HeaderValue,
    /// Lowercase.
    allow_headers: Vec<String>,
    allow_headers_value: Option<HeaderValue>,
    expose_headers_value: Option<HeaderValue>,
    credentials: bool,
    max_age_value: Option<HeaderValue>,
}

/// Why a preflight is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightRefusal {
    Origin,
    Method,
    Header,
}

impl PreflightRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            PreflightRefusal::Origin => "the origin is not allowed",
            PreflightRefusal::Method => "the method is not allowed",
            PreflightRefusal::Header => "a requested header is not allowed",
        }
    }
}

fn origin_pattern(text: &str, path: &str, errors: &mut Vec<PathError>) -> Option<OriginPattern> {
    let lower = text.trim().to_ascii_lowercase();
    let (scheme, host) = lower
        .split_once("://")
        .filter(|(scheme, _)| *scheme == "http" || *scheme == "https")
        .or_else(|| {
            errors.push(PathError::new(
                path,
                format!("`{text}` is not an origin like `https://app.example.com`"),
            ));
            None
        })?;
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b));
    if !plain || host.contains('/') {
        errors.push(PathError::new(
            path,
            format!("`{text}` is not an origin: scheme://host[:port], no path"),
        ));
        return None;
    }
    match host.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') && !suffix.contains('*') && suffix.len() > 1 => {
            Some(OriginPattern::Subdomain {
                scheme: format!("{scheme}://"),
                suffix: suffix.to_owned(),
            })
        }
        Some(_) => {
            errors.push(PathError::new(
                path,
                format!(
                    "`{text}`: a wildcard must be a whole leading label (`https://*.example.com`)"
                ),
            ));
            None
        }
        None if host.contains('*') => {
            errors.push(PathError::new(
                path,
                format!("`{text}`: `*` only as the first label"),
            ));
            None
        }
        None => Some(OriginPattern::Exact(lower)),
    }
}

fn header_value(items: &[String], path: &str, errors: &mut Vec<PathError>) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    for item in items {
        if HeaderName::from_bytes(item.as_bytes()).is_err() {
            errors.push(PathError::new(
                path,
                format!("`{item}` is not a header name"),
            ));
        }
    }
    HeaderValue::from_str(&items.join(", ")).ok()
}

/// Compiles `cors` at `path`; `route_methods` are the route's methods (`None`: any).
pub fn compile_cors(
    file: &CorsFile,
    route_methods: Option<&[String]>,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<CorsPolicy> {
    let before = errors.len();
    let any_origin = file.allow_origins.iter().any(|o| o.trim() == "*");
    let origins: Vec<OriginPattern> = file
        .allow_origins
        .iter()
        .enumerate()
        .filter(|(_, o)| o.trim() != "*")
        .filter_map(|(i, o)| origin_pattern(o, &format!("{path}.allow_origins[{i}]"), errors))
        .collect();
    if file.allow_origins.is_empty() {
        errors.push(PathError::new(
            format!("{path}.allow_origins"),
            "name at least one origin",
        ));
    }
    let credentials = file.allow_credentials.unwrap_or(false);
    if any_origin && credentials {
        errors.push(PathError::new(
            path,
            "`allow_origins: [\"*\"]` with `allow_credentials: true` is refused by browsers; list the origins",
        ));
    }
    let methods: Vec<String> = match (&file.allow_methods, route_methods) {
        (Some(methods), _) => methods
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect(),
        (None, Some(methods)) => methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        (None, None) => DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
    };
    if methods
        .iter()
        .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        errors.push(PathError::new(
            format!("{path}.allow_methods"),
            "methods are words like `GET`",
        ));
    }
    let allow_headers: Vec<String> = file
        .allow_headers
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let allow_headers_value = header_value(
        &file.allow_headers,
        &format!("{path}.allow_headers"),
        errors,
    );
    let expose_headers_value = header_value(
        &file.expose_headers,
        &format!("{path}.expose_headers"),
        errors,
    );
    let max_age = file.max_age.map(|d| d.0);
    if max_age.is_some_and(|d| d > Duration::from_secs(86_400)) {
        errors.push(PathError::new(
            format!("{path}.max_age"),
            "at most 1d (browsers cap it lower)",
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(CorsPolicy {
        origins,
        any_origin,
        methods_value: HeaderValue::from_str(&methods.join(", ")).ok()?,
        methods,
        allow_headers,
        allow_headers_value,
        expose_headers_value,
        credentials,
        max_age_value: max_age.map(|d| HeaderValue::from(d.as_secs())),
    })
}

type Headers = Vec<(HeaderName, HeaderValue)>;

impl CorsPolicy {
    /// Whether a request from `origin` may read responses.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if origin == "null" {
            return false;
        }
        if self.any_origin {
            return true;
        }
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|pattern| match pattern {
            OriginPattern::Exact(exact) => *exact == origin,
            OriginPattern::Subdomain { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|host| {
                    host.strip_suffix(suffix.as_str())
                        .map(|label| (host, label))
                })
                .is_some_and(|(host, label)| {
                    !label.is_empty() && !label.contains('/') && host.len() > suffix.len()
                }),
        })
    }

    fn origin_headers(&self, origin: &str, headers: &mut Headers) {
        let value = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(value) => value,
                Err(_) => return,
            }
        };
        headers.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value));
        if self.credentials {
            headers.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
    }

    /// The answer to a preflight: the headers of the 204, or why it is refused.
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        requested_headers: Option<&str>,
    ) -> Result<Headers, PreflightRefusal> {
        if !self.allows_origin(origin) {
            return Err(PreflightRefusal::Origin);
        }
        let method = method.trim().to_ascii_uppercase();
        let simple = matches!(method.as_str(), "GET" | "HEAD" | "POST");
        if !simple && !self.methods.contains(&method) {
            return Err(PreflightRefusal::Method);
        }
        let requested = requested_headers
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        for header in requested {
            if !self.allow_headers.contains(&header) {
                return Err(PreflightRefusal::Header);
            }
        }
        let mut headers = Vec::with_capacity(7);
        self.origin_headers(origin, &mut headers);
        headers.push((
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods_value.clone(),
        ));
        if let Some(value) = &self.allow_headers_value {
            headers.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, value.clone()));
        }
        if let Some(value) = &self.max_age_value {
            headers.push((http::header::ACCESS_CONTROL_MAX_AGE, value.clone()));
        }
        headers.push((
            http::header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        ));
        Ok(headers)
    }

    /// The CORS headers of an actual response to a request with `origin` (`Vary: Origin`
    /// always; the rest for an allowed origin).
    pub fn actual(&self, origin: Option<&str>) -> Headers {
        let mut headers = Vec::with_capacity(4);
        if let Some(origin) = origin.filter(|o| self.allows_origin(o)) {
            self.origin_headers(origin, &mut headers);
            if let Some(value) = &self.expose_headers_value {
                headers.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, value.clone()));
            }
        }
        headers.push((http::header::VARY, HeaderValue::from_static("Origin")));
        headers
    }
}

#[cfg(test)]
mod tests;
