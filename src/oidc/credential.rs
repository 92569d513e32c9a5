//! The syntax of a credential as it arrives, before any JWT parsing: `Authorization: Bearer
//! <b64token>` (RFC 6750 §2.1: the scheme in any case, then one or more spaces), and the bare
//! token of the configured header, query parameter or cookie.
//!
//! A credential that is present but does not follow this syntax is refused
//! (`malformed_credential`), and an `Authorization` of another scheme (`Basic`, `Digest`, …) is
//! refused too (`unsupported_scheme`): never treated as absent, because an absent credential
//! lets an `auth: optional` route through and the upstream would receive a credential the
//! gateway never verified. Refusals name where the credential was, never its text.

use super::failure::{AuthFailure, AuthReason};

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Authorization,
    Header,
    Query,
    Cookie,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Authorization => "the Authorization header",
            Source::Header => "the token header",
            Source::Query => "the token query parameter",
            Source::Cookie => "the token cookie",
        }
    }
}

fn malformed(source: Source, why: &str) -> AuthFailure {
    AuthFailure::new(
        AuthReason::MalformedCredential,
        format!("{} {why}", source.describe()),
    )
}

/// Spaces and tabs (HTTP's optional whitespace) trimmed from both ends.
fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// RFC 9110 `tchar`: the characters of an authentication scheme.
fn is_scheme_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// Every request with a token pays this check, so it is written without a branch per byte:
/// blocks of 64 bytes are folded with `&`, which the compiler turns into vector compares.
pub fn is_b64token(token: &[u8]) -> bool {
    let body_len = token
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(0, |last| last + 1);
    body_len > 0
        && token[..body_len].chunks(64).all(|block| {
            block
                .iter()
                .fold(true, |all, byte| all & is_b64token_char(*byte))
        })
}

/// A character of a `b64token` before its trailing `=`.
fn is_b64token_char(byte: u8) -> bool {
    // `| 0x20` maps A-Z onto a-z and leaves a-z; no other byte lands in a-z.
    let letter = (byte | 0x20).wrapping_sub(b'a') < 26;
    let digit = byte.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (byte == b'-')
        | (byte == b'.')
        | (byte == b'_')
        | (byte == b'~')
        | (byte == b'+')
        | (byte == b'/')
}

/// The token part of one `Authorization` value: `Bearer`, one or more spaces, the rest. The
/// rest is checked by [`token_text`].
pub fn bearer_part(value: &[u8]) -> Result<&[u8], AuthFailure> {
    let value = trim_whitespace(value);
    if value.is_empty() {
        return Err(malformed(Source::Authorization, "is empty"));
    }
    let scheme_len = value
        .iter()
        .position(|b| !is_scheme_char(*b))
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_len);
    if scheme.is_empty() || rest.first().is_some_and(|b| *b != b' ') {
        return Err(malformed(
            Source::Authorization,
            "is not an authentication scheme followed by spaces and a credential (RFC 6750 §2.1)",
        ));
    }
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthFailure::new(
            AuthReason::UnsupportedScheme,
            "the Authorization header does not use the Bearer scheme; this route verifies bearer tokens and does not forward other credentials",
        ));
    }
    let token_start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
    Ok(&rest[token_start..])
}

/// The token as text: no larger than `max_size`, then exactly one RFC 6750 `b64token` (which
/// is what every JWT is).
pub fn token_text(token: &[u8], source: Source, max_size: usize) -> Result<&str, AuthFailure> {
    if token.len() > max_size {
        return Err(AuthFailure::new(
            AuthReason::TokenTooLarge,
            format!("the token is larger than {max_size} bytes"),
        ));
    }
    if token.is_empty() {
        return Err(malformed(source, "holds an empty token"));
    }
    if !is_b64token(token) {
        return Err(malformed(
            source,
            "holds characters a bearer token cannot contain (RFC 6750 b64token)",
        ));
    }
    std::str::from_utf8(token).map_err(|_| malformed(source, "is not ASCII"))
}

/// Whether a raw query key, once percent-decoded (and `+` read as a space, as HTML forms write
/// it), is `name`: `access%5Ftoken` is the same parameter to the upstream, so it is to the
/// gateway too.
pub fn query_key_is(raw: &str, name: &str) -> bool {
    let mut raw = raw.as_bytes();
    let mut expected = name.as_bytes().iter();
    loop {
        let (byte, rest) = match raw {
            [] => return expected.next().is_none(),
            [b'%', high, low, rest @ ..] => match (hex_value(*high), hex_value(*low)) {
                (Some(high), Some(low)) => (high << 4 | low, rest),
                _ => (b'%', &raw[1..]),
            },
            [b'+', rest @ ..] => (b' ', rest),
            [byte, rest @ ..] => (*byte, rest),
        };
        if expected.next() != Some(&byte) {
            return false;
        }
        raw = rest;
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The values of cookie `name` in one `Cookie` header value, read as bytes (other cookies may
/// hold any octet; only the token cookie's value has to be a token), one pair of double quotes
/// removed.
pub fn cookie_values<'h, 'n>(
    header: &'h [u8],
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    header.split(|b| *b == b';').filter_map(move |pair| {
        let at = pair.iter().position(|b| *b == b'=')?;
        let (key, value) = (
            trim_whitespace(&pair[..at]),
            trim_whitespace(&pair[at + 1..]),
        );
        if key != name.as_bytes() {
            return None;
        }
        match value {
            [b'"', inner @ .., b'"'] => Some(inner),
            _ => Some(value),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<&[u8], AuthFailure>) -> AuthReason {
        result.expect_err("refused").reason
    }

    #[test]
    fn bearer_needs_spaces_after_the_scheme() {
        assert_eq!(bearer_part(b"Bearer abc").unwrap(), b"abc");
        assert_eq!(bearer_part(b"bEaReR   abc ").unwrap(), b"abc");
        assert_eq!(bearer_part(b"Bearer").unwrap(), b"");
        assert_eq!(
            reason(bearer_part(b"Bearer\tabc")),
            AuthReason::MalformedCredential
        );
        assert_eq!(
            reason(bearer_part(b"Bearer,abc")),
            AuthReason::MalformedCredential
        );
        assert_eq!(reason(bearer_part(b"  ")), AuthReason::MalformedCredential);
        assert_eq!(
            reason(bearer_part("Bëarer abc".as_bytes())),
            AuthReason::MalformedCredential
        );
    }

    #[test]
    fn other_schemes_are_unsupported() {
        for value in ["Basic dXNlcjpwYXNz", "Digest username=\"u\"", "Bearertoken"] {
            assert_eq!(
                reason(bearer_part(value.as_bytes())),
                AuthReason::UnsupportedScheme,
                "{value}"
            );
        }
    }

    #[test]
    fn tokens_are_b64tokens_within_the_size_limit() {
        assert_eq!(
            token_text(b"a.b-c_d~e+f/g==", Source::Query, 64).unwrap(),
            "a.b-c_d~e+f/g=="
        );
        for bad in [
            &b""[..],
            b"=",
            b"a b",
            b"a\tb",
            b"a%2Eb",
            b"a=b",
            "tökén".as_bytes(),
        ] {
            assert_eq!(
                token_text(bad, Source::Header, 64).unwrap_err().reason,
                AuthReason::MalformedCredential,
                "{bad:?}"
            );
        }
        assert_eq!(
            token_text(&[b'a'; 65], Source::Cookie, 64)
                .unwrap_err()
                .reason,
            AuthReason::TokenTooLarge
        );
    }

    #[test]
    fn the_branch_free_check_is_the_rfc_6750_alphabet_for_every_byte() {
        for byte in 0..=u8::MAX {
            let rfc = byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte);
            assert_eq!(is_b64token_char(byte), rfc, "byte {byte:#04x}");
        }
        // A bad byte is found in any position of a long token (across 64-byte blocks).
        let long = vec![b'a'; 200];
        assert!(is_b64token(&long));
        for position in [0, 63, 64, 130, 199] {
            let mut bad = long.clone();
            bad[position] = b' ';
            assert!(!is_b64token(&bad), "{position}");
        }
    }

    #[test]
    fn refusals_never_contain_the_credential() {
        let failure = bearer_part(b"Basic c2VjcmV0LXBhc3N3b3Jk").unwrap_err();
        assert!(!failure.description.contains("c2VjcmV0"));
        let failure = token_text(b"secret value", Source::Cookie, 64).unwrap_err();
        assert!(!failure.description.contains("secret"));
    }

    #[test]
    fn query_keys_are_compared_percent_decoded() {
        assert!(query_key_is("access_token", "access_token"));
        assert!(query_key_is("access%5Ftoken", "access_token"));
        assert!(query_key_is("%61ccess_token", "access_token"));
        assert!(query_key_is("my+token", "my token"));
        assert!(!query_key_is("access_token2", "access_token"));
        assert!(!query_key_is("access", "access_token"));
        assert!(!query_key_is("access%5", "access%5F"));
        assert!(query_key_is("100%", "100%"));
    }

    #[test]
    fn cookies_are_read_as_bytes() {
        let header = "a=b; at=t1;x=\u{e9}; at = \"t2\" ;noequals".as_bytes();
        let values: Vec<&[u8]> = cookie_values(header, "at").collect();
        assert_eq!(values, [&b"t1"[..], b"t2"]);
        assert_eq!(cookie_values(b"a=b", "at").count(), 0);
    }
}
