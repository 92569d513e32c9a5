//! The request `portcullis explain` asks about, built from its command line: a method, a URL
//! (absolute, or a path with `-H 'Host: …'`), extra headers, and the token as a bearer token.

use pingora::http::RequestHeader;

/// A request to explain.
pub struct ExplainRequest {
    pub header: RequestHeader,
    /// The URL said `https`: the request is explained as if it came over TLS.
    pub tls: bool,
}

/// Why the command line does not make a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("`{0}` is not a URL (give `https://host/path` or `/path` with -H 'Host: host')")]
    Url(String),
    #[error("`{0}` is not a header (give -H 'Name: value')")]
    Header(String),
    #[error("the token is given twice (--token or --token-file, and an Authorization header)")]
    TwoTokens,
}

/// Builds the request; `token`, when given, becomes `Authorization: Bearer <token>`.
pub fn build(
    method: &str,
    url: &str,
    headers: &[String],
    token: Option<&str>,
) -> Result<ExplainRequest, RequestError> {
    let method = method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(RequestError::Method(method));
    }
    let uri: http::Uri = url.parse().map_err(|_| RequestError::Url(url.to_owned()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(_) => return Err(RequestError::Url(url.to_owned())),
    };
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if !target.starts_with('/') {
        return Err(RequestError::Url(url.to_owned()));
    }
    let mut header = RequestHeader::build(method.as_str(), target.as_bytes(), None)
        .map_err(|_| RequestError::Method(method.clone()))?;
    let mut has_host = false;
    let mut has_authorization = false;
    for line in headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| RequestError::Header(line.clone()))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| RequestError::Header(line.clone()))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|_| RequestError::Header(name.to_string()))?;
        has_host |= name == http::header::HOST;
        has_authorization |= name == http::header::AUTHORIZATION;
        header
            .append_header(name.clone(), value)
            .map_err(|_| RequestError::Header(name.to_string()))?;
    }
    if let (Some(authority), false) = (uri.authority(), has_host) {
        let _ = header.insert_header(http::header::HOST, authority.as_str());
    }
    if let Some(token) = token {
        if has_authorization {
            return Err(RequestError::TwoTokens);
        }
        let value = http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| RequestError::Header("Authorization".into()))?;
        let _ = header.insert_header(http::header::AUTHORIZATION, value);
    }
    Ok(ExplainRequest { header, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_url_gives_host_path_scheme_and_token() {
        let request = build(
            "delete",
            "https://api.example.com/orders/7?x=1",
            &["Origin: https://app.example.com".into()],
            Some("abc.def.ghi"),
        )
        .unwrap();
        assert!(request.tls);
        assert_eq!(request.header.method, "DELETE");
        assert_eq!(request.header.uri.to_string(), "/orders/7?x=1");
        assert_eq!(request.header.headers["host"], "api.example.com");
        assert_eq!(
            request.header.headers["authorization"],
            "Bearer abc.def.ghi"
        );
        assert_eq!(request.header.headers["origin"], "https://app.example.com");
    }

    #[test]
    fn a_path_takes_its_host_from_a_header_and_mistakes_are_named() {
        let request = build("GET", "/health", &["Host: a.test".into()], None).unwrap();
        assert!(!request.tls);
        assert_eq!(request.header.headers["host"], "a.test");
        assert_eq!(
            build("GET", "/x", &["nocolon".into()], None).err(),
            Some(RequestError::Header("nocolon".into()))
        );
        assert_eq!(
            build("GET", "/x", &["Authorization: Bearer a".into()], Some("b")).err(),
            Some(RequestError::TwoTokens)
        );
        assert!(matches!(
            build("GE T", "/x", &[], None),
            Err(RequestError::Method(_))
        ));
        assert!(matches!(
            build("GET", "ftp://x/y", &[], None),
            Err(RequestError::Url(_))
        ));
    }
}
