//! Where a request's token comes from: `Authorization: Bearer` (scheme case-insensitive), and
//! optionally one configured header, query parameter or cookie. A request carrying more than
//! one token is refused (RFC 6750 §2), and a token larger than `tokens.max_size` is refused
//! before any parsing.

use super::failure::{AuthFailure, AuthReason};
use crate::config::file::TokensFile;
use crate::config::PathError;
use pingora::http::RequestHeader;

/// Compiled token sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSources {
    pub header: Option<http::HeaderName>,
    pub query: Option<String>,
    pub cookie: Option<String>,
    pub max_size: usize,
}

impl Default for TokenSources {
    fn default() -> Self {
        TokenSources {
            header: None,
            query: None,
            cookie: None,
            max_size: 8 * 1024,
        }
    }
}

/// Compiles the `tokens` section.
pub fn compile_token_sources(file: &TokensFile, errors: &mut Vec<PathError>) -> TokenSources {
    let header =
        file.header
            .as_ref()
            .and_then(|name| match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if header == http::header::AUTHORIZATION => {
                    errors.push(PathError::new(
                        "tokens.header",
                        "Authorization is always read; name another header",
                    ));
                    None
                }
                Ok(header) => Some(header),
                Err(_) => {
                    errors.push(PathError::new(
                        "tokens.header",
                        format!("`{name}` is not a valid header name"),
                    ));
                    None
                }
            });
    let max_size = file.max_size.map_or(8 * 1024, |s| s.0 as usize);
    if !(256..=64 * 1024).contains(&max_size) {
        errors.push(PathError::new("tokens.max_size", "between 256B and 64KiB"));
    }
    TokenSources {
        header,
        query: file.query.clone(),
        cookie: file.cookie.clone(),
        max_size,
    }
}

impl TokenSources {
    /// The request's token, `None` when there is none.
    pub fn extract<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, AuthFailure> {
        let mut found: Option<&'r str> = None;
        let mut count = 0;
        let mut take = |token: &'r str| {
            count += 1;
            found = Some(token);
        };
        for value in request.headers.get_all(http::header::AUTHORIZATION) {
            let Ok(value) = value.to_str() else { continue };
            let value = value.trim();
            if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
                take(value[7..].trim());
            }
        }
        if let Some(header) = &self.header {
            for value in request.headers.get_all(header) {
                if let Ok(value) = value.to_str() {
                    take(value.trim());
                }
            }
        }
        if let (Some(name), Some(query)) = (&self.query, request.uri.query()) {
            for pair in query.split('&') {
                if let Some((key, value)) = pair.split_once('=') {
                    if key == name {
                        take(value);
                    }
                }
            }
        }
        if let Some(name) = &self.cookie {
            for value in request.headers.get_all(http::header::COOKIE) {
                let Ok(value) = value.to_str() else { continue };
                for cookie in value.split(';') {
                    if let Some((key, token)) = cookie.trim().split_once('=') {
                        if key == name {
                            take(token.trim_matches('"'));
                        }
                    }
                }
            }
        }
        if count > 1 {
            return Err(AuthFailure::new(
                AuthReason::MultipleTokens,
                "the request carries more than one token (RFC 6750 §2 allows one method per request)",
            ));
        }
        match found {
            Some(token) if token.len() > self.max_size => Err(AuthFailure::new(
                AuthReason::TokenTooLarge,
                format!("the token is larger than {} bytes", self.max_size),
            )),
            Some("") => Err(AuthFailure::new(
                AuthReason::Malformed,
                "the bearer token is empty",
            )),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], path: &str) -> RequestHeader {
        let mut request = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    fn sources() -> TokenSources {
        TokenSources {
            header: Some(http::HeaderName::from_static("x-access-token")),
            query: Some("access_token".into()),
            cookie: Some("at".into()),
            max_size: 64,
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let req = request(&[("authorization", "bEaReR abc.def.ghi")], "/");
        assert_eq!(sources().extract(&req).unwrap(), Some("abc.def.ghi"));
        let req = request(&[("authorization", "Basic dXNlcjpwYXNz")], "/");
        assert_eq!(sources().extract(&req).unwrap(), None);
    }

    #[test]
    fn other_sources() {
        assert_eq!(
            sources()
                .extract(&request(&[("x-access-token", "t1")], "/"))
                .unwrap(),
            Some("t1")
        );
        assert_eq!(
            sources()
                .extract(&request(&[], "/x?a=1&access_token=t2"))
                .unwrap(),
            Some("t2")
        );
        assert_eq!(
            sources()
                .extract(&request(&[("cookie", "a=b; at=t3")], "/"))
                .unwrap(),
            Some("t3")
        );
        assert_eq!(
            TokenSources::default()
                .extract(&request(&[("x-access-token", "t1")], "/"))
                .unwrap(),
            None
        );
    }

    #[test]
    fn two_tokens_are_refused() {
        let req = request(
            &[("authorization", "Bearer a"), ("x-access-token", "b")],
            "/",
        );
        assert_eq!(
            sources().extract(&req).unwrap_err().reason,
            AuthReason::MultipleTokens
        );
        let req = request(
            &[("authorization", "Bearer a"), ("authorization", "Bearer a")],
            "/",
        );
        assert_eq!(
            sources().extract(&req).unwrap_err().reason,
            AuthReason::MultipleTokens
        );
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let big = format!("Bearer {}", "a".repeat(65));
        let req = request(&[("authorization", big.as_str())], "/");
        assert_eq!(
            sources().extract(&req).unwrap_err().reason,
            AuthReason::TokenTooLarge
        );
    }
}
