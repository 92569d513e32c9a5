//! The URL pieces of the sign-in flow: random URL-safe tokens (state, nonce, PKCE verifier), the
//! PKCE S256 challenge, query strings built and read with form encoding, and the one check that
//! keeps every redirect the gateway makes on its own host: [`safe_return_path`].

use aws_lc_rs::{digest, rand};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The longest return path the gateway keeps (longer ones return to `/`).
pub const MAX_RETURN_PATH: usize = 2048;

/// `bytes` random bytes from the system generator, base64url without padding; `None` when the
/// generator fails (a broken host: the sign-in is refused rather than run on weak tokens).
pub fn random_url_token(bytes: usize) -> Option<String> {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer).ok()?;
    Some(URL_SAFE_NO_PAD.encode(buffer))
}

/// RFC 7636 `code_challenge` for method S256: `BASE64URL(SHA256(verifier))`.
pub fn pkce_s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// `wanted` if it is a path on this host: it starts with one `/`, is not scheme- or
/// authority-relative (`//host`, `/\host`, which browsers read as another host), holds no
/// backslash, whitespace or control character, and is at most [`MAX_RETURN_PATH`] long.
pub fn safe_return_path(wanted: &str) -> Option<&str> {
    let bytes = wanted.as_bytes();
    let on_this_host = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && wanted.len() <= MAX_RETURN_PATH
        && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\');
    on_this_host.then_some(wanted)
}

/// `base` with the parameters appended to its query, form-encoded.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", query.finish())
}

/// The decoded `(name, value)` pairs of a query string or form body.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The value of `name` if it occurs exactly once (a repeated parameter is a smuggling attempt,
/// RFC 6749 §3.1).
pub fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut matching = pairs.iter().filter(|(n, _)| n == name);
    let first = matching.next()?;
    matching.next().is_none().then_some(first.1.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let (a, b) = (random_url_token(32).unwrap(), random_url_token(32).unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_same_host_paths_are_return_targets() {
        for good in ["/", "/console?tab=1&x=%2F", "/a/b#frag"] {
            assert_eq!(safe_return_path(good), Some(good), "{good}");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_PATH));
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/ok\\..\\",
            "\\\\evil",
            "/a b",
            "/a\r\nSet-Cookie: x=y",
            "/tab\t",
            "javascript:alert(1)",
            "console",
            long.as_str(),
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn queries_are_encoded_and_read_back() {
        let url = with_query("https://idp/auth", &[("a", "1 2"), ("rd", "/x?y=&z")]);
        assert_eq!(url, "https://idp/auth?a=1+2&rd=%2Fx%3Fy%3D%26z");
        assert!(with_query("https://idp/auth?k=v", &[("a", "b")]).ends_with("?k=v&a=b"));
        let pairs = form_pairs("a=1+2&rd=%2Fx%3Fy%3D%26z&dup=1&dup=2");
        assert_eq!(form_value(&pairs, "a"), Some("1 2"));
        assert_eq!(form_value(&pairs, "rd"), Some("/x?y=&z"));
        assert_eq!(form_value(&pairs, "dup"), None);
        assert_eq!(form_value(&pairs, "absent"), None);
    }
}
