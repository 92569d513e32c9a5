//! The JOSE header of a JWS token (RFC 7515 §4), read the way the gateway needs it: `alg`,
//! `kid` and `typ`, and whether `crit` is present. The header is base64url-decoded onto the
//! stack and its strings borrowed from there, so reading it allocates only for a `kid` or
//! `typ` the caller keeps. Parameters the gateway does not use (`jku`, `x5c`, `cty`, …) are
//! ignored, as RFC 7515 §4 asks for parameters not listed in `crit`; `crit` itself is refused by
//! the caller, since the gateway understands no JWS extension.

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::borrow::Cow;
use std::str::FromStr;

/// Decoded headers up to this size stay on the stack; a larger one (legal, rare) is decoded
/// into a heap buffer instead.
const STACK_HEADER_BYTES: usize = 512;

/// What the gateway reads from a token's JOSE header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Whether the header lists critical extensions (`crit`).
    pub has_crit: bool,
}

/// Why a header was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// `alg: none` (in any letter case): an unsigned token.
    Unsigned,
    /// Not base64url, not a JSON object, a parameter of the wrong type, a duplicate
    /// parameter, no `alg`, or an `alg` no verifier knows.
    Malformed(&'static str),
}

/// The wire form: strings are borrowed from the decoded bytes unless they hold escapes.
#[derive(Deserialize)]
struct WireHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    crit: Option<Vec<Cow<'a, str>>>,
}

/// Reads the header from its base64url part (the text before the token's first dot).
pub fn read(encoded: &str) -> Result<JoseHeader, HeaderError> {
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encoded = encoded.trim_end_matches('=');
    let mut stack = [0u8; STACK_HEADER_BYTES];
    let heap;
    let decoded: &[u8] = match engine.decode_slice(encoded, &mut stack) {
        Ok(len) => &stack[..len],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = engine
                .decode(encoded)
                .map_err(|_| HeaderError::Malformed("its header is not base64url"))?;
            &heap
        }
        Err(_) => return Err(HeaderError::Malformed("its header is not base64url")),
    };
    // A derived struct would also accept a JSON array in field order; a header is an object.
    if decoded.trim_ascii_start().first() != Some(&b'{') {
        return Err(HeaderError::Malformed("its header is not a JSON object"));
    }
    let wire: WireHeader<'_> = serde_json::from_slice(decoded)
        .map_err(|_| HeaderError::Malformed("its header cannot be decoded"))?;
    if wire.alg.eq_ignore_ascii_case("none") {
        return Err(HeaderError::Unsigned);
    }
    let alg = Algorithm::from_str(&wire.alg)
        .map_err(|_| HeaderError::Malformed("its header names an unknown algorithm"))?;
    Ok(JoseHeader {
        alg,
        kid: wire.kid.map(Cow::into_owned),
        typ: wire.typ.map(Cow::into_owned),
        has_crit: wire.crit.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(header: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string())
    }

    #[test]
    fn reads_alg_kid_and_typ_and_ignores_other_parameters() {
        let header = read(&encoded(json!({
            "alg": "PS256", "kid": "k\\u00e9y", "typ": "at+jwt", "cty": "x", "x5c": ["…"], "jku": 7
        })))
        .unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.kid.as_deref(), Some("k\\u00e9y"));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert!(!header.has_crit);
        let escaped = read(&encoded(json!({"alg": "RS256", "kid": "a\"b"}))).unwrap();
        assert_eq!(escaped.kid.as_deref(), Some("a\"b"));
        assert_eq!(escaped.typ, None);
    }

    #[test]
    fn alg_none_in_any_case_is_unsigned() {
        for alg in ["none", "None", "NONE"] {
            assert_eq!(
                read(&encoded(json!({ "alg": alg }))),
                Err(HeaderError::Unsigned)
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            json!({}),
            json!({"alg": "XS256"}),
            json!({"alg": 256}),
            json!({"alg": "RS256", "kid": 5}),
            json!({"alg": "RS256", "crit": "exp"}),
            json!(["RS256"]),
        ] {
            assert!(
                matches!(
                    read(&encoded(header.clone())),
                    Err(HeaderError::Malformed(_))
                ),
                "{header}"
            );
        }
        assert!(read("not*base64").is_err());
        let duplicate = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"RS256","alg":"HS256"}"#);
        assert!(read(&duplicate).is_err(), "a duplicate alg is ambiguous");
    }

    #[test]
    fn crit_is_reported_and_large_headers_are_read() {
        let crit = read(&encoded(
            json!({"alg": "ES256", "crit": ["b64"], "b64": false}),
        ))
        .unwrap();
        assert!(crit.has_crit);
        let padding = "x".repeat(STACK_HEADER_BYTES * 2);
        let large = read(&encoded(
            json!({"alg": "EdDSA", "kid": "big", "note": padding}),
        ))
        .unwrap();
        assert_eq!(large.alg, Algorithm::EdDSA);
        assert_eq!(large.kid.as_deref(), Some("big"));
    }
}
