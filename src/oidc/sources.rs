//! Where a request's token comes from: `Authorization: Bearer` (scheme case-insensitive), and
//! optionally one configured header, query parameter or cookie. A request carrying more than
//! one token is refused (RFC 6750 §2), a token larger than `tokens.max_size` is refused before
//! any parsing, and a credential present in any of these sources but not a well-formed bearer
//! token (or an `Authorization` of another scheme) is refused rather than ignored.

use super::credential::{bearer_part, cookie_values, query_key_is, token_text, Source};
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
    /// The request's token, `None` when no configured source holds one. A credential that is
    /// present but not a well-formed bearer token (see [`super::credential`]) is refused, not
    /// skipped: skipping it would let an optional route forward it unverified.
    pub fn extract<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, AuthFailure> {
        let mut found: Option<&'r str> = None;
        let mut count = 0;
        let max_size = self.max_size;
        let mut take = |token: &'r [u8], source: Source| -> Result<(), AuthFailure> {
            found = Some(token_text(token, source, max_size)?);
            count += 1;
            Ok(())
        };
        for value in request.headers.get_all(http::header::AUTHORIZATION) {
            take(bearer_part(value.as_bytes())?, Source::Authorization)?;
        }
        if let Some(header) = &self.header {
            for value in request.headers.get_all(header) {
                take(value.as_bytes().trim_ascii(), Source::Header)?;
            }
        }
        if let (Some(name), Some(query)) = (&self.query, request.uri.query()) {
            // `;` separates parameters too for some upstream frameworks.
            for pair in query.split(['&', ';']) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if query_key_is(key, name) {
                    take(value.as_bytes(), Source::Query)?;
                }
            }
        }
        if let Some(name) = &self.cookie {
            for value in request.headers.get_all(http::header::COOKIE) {
                for token in cookie_values(value.as_bytes(), name) {
                    take(token, Source::Cookie)?;
                }
            }
        }
        if count > 1 {
            return Err(AuthFailure::new(
                AuthReason::MultipleTokens,
                "the request carries more than one token (RFC 6750 §2 allows one method per request)",
            ));
        }
        Ok(found)
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
        assert_eq!(
            sources().extract(&req).unwrap_err().reason,
            AuthReason::UnsupportedScheme
        );
    }

    #[test]
    fn a_malformed_credential_in_any_source_is_refused_not_ignored() {
        let refused = |req: RequestHeader| sources().extract(&req).unwrap_err().reason;
        let malformed = AuthReason::MalformedCredential;
        for value in ["Bearer\tabc", "Bearer", "Bearer a b", ""] {
            assert_eq!(
                refused(request(&[("authorization", value)], "/")),
                malformed
            );
        }
        for path in [
            "/x?access_token=",
            "/x?access_token",
            "/x?access%5Ftoken=a%20b",
        ] {
            assert_eq!(refused(request(&[], path)), malformed, "{path}");
        }
        assert_eq!(
            refused(request(&[("x-access-token", "a b")], "/")),
            malformed
        );
        assert_eq!(refused(request(&[("cookie", "a=b; at=")], "/")), malformed);
        let mut non_ascii = request(&[], "/");
        non_ascii
            .append_header(
                "authorization",
                http::HeaderValue::from_bytes(b"Bearer t\xc3\xb6ken").unwrap(),
            )
            .unwrap();
        assert_eq!(refused(non_ascii), malformed);
        let mut non_ascii = request(&[], "/");
        non_ascii
            .append_header(
                "cookie",
                http::HeaderValue::from_bytes(b"at=t\xf6ken").unwrap(),
            )
            .unwrap();
        assert_eq!(refused(non_ascii), malformed);
        // Other cookies may hold any octet: only the token cookie has to be a token.
        let mut other_cookie = request(&[], "/");
        other_cookie
            .append_header(
                "cookie",
                http::HeaderValue::from_bytes(b"name=J\xc3\xb6rg; at=t3").unwrap(),
            )
            .unwrap();
        assert_eq!(sources().extract(&other_cookie).unwrap(), Some("t3"));
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
