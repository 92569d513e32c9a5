//! Parsing one buffered body into a document, with a nesting bound checked before the parser
//! runs: serde_json's own recursion limit (128) refuses valid documents a few hundred bytes long,
//! and without a limit a deep document could exhaust the worker thread's stack. An iterative
//! scan counts the nesting first; documents within [`MAX_DEPTH`] are parsed with serde_json's
//! limit switched off (feature `unbounded_depth`), deeper ones are refused as invalid.
//!
//! Anything serde_json refuses is invalid too: a byte order mark, trailing bytes after the
//! document, lone UTF-16 surrogates in escapes, invalid UTF-8.

use serde::Deserialize;
use serde_json::Value;

/// The deepest nesting of arrays and objects a transformed body may have (4x serde_json's
/// default). Measured stack for parse + serialize + drop: about 0.5 KiB per level in a release
/// build and 2 KiB in a debug build, so a document this deep needs about 256 KiB (release) or
/// 1 MiB (debug) of a worker thread's 2 MiB stack; 1,000 levels would not fit a debug build.
pub const MAX_DEPTH: usize = 512;

/// Why a body could not be parsed as one JSON document.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJson {
    #[error("the document nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("not one JSON document: {0}")]
    Syntax(#[from] serde_json::Error),
}

/// Parses `raw` as exactly one JSON document (whitespace around it allowed).
pub fn parse_document(raw: &[u8]) -> Result<Value, InvalidJson> {
    if nesting_depth(raw) > MAX_DEPTH {
        return Err(InvalidJson::TooDeep);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    deserializer.disable_recursion_limit();
    let document = Value::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(document)
}

/// The deepest nesting of `[` / `{` outside strings (an upper bound for malformed input).
fn nesting_depth(raw: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in raw {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(nesting_depth(br#"{"a":[1,{"b":"[[[\"{{"}]}"#), 3);
        assert_eq!(nesting_depth(b"1"), 0);
    }

    #[test]
    fn documents_deeper_than_serde_jsons_default_limit_parse() {
        assert!(serde_json::from_str::<Value>(&nested(200)).is_err());
        assert!(parse_document(nested(200).as_bytes()).is_ok());
        assert!(parse_document(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert!(matches!(
            parse_document(nested(MAX_DEPTH + 1).as_bytes()),
            Err(InvalidJson::TooDeep)
        ));
    }

    #[test]
    fn bom_trailing_bytes_and_lone_surrogates_are_invalid() {
        assert!(parse_document(b"\xEF\xBB\xBF{\"a\":1}").is_err());
        assert!(parse_document(b"{\"a\":1} x").is_err());
        assert!(parse_document(b"{\"a\":1}{}").is_err());
        assert!(parse_document(br#"{"a":"\ud800"}"#).is_err());
        assert!(parse_document(br#"{"a":"\udc00x"}"#).is_err());
        assert!(parse_document(b" {\"a\":1}\n").is_ok());
    }

    #[test]
    fn numbers_keep_their_digits() {
        // serde_json's `arbitrary_precision`: no trip through f64.
        let text = r#"{"id":123456789012345678901234567890,"price":0.1000000000000000055511}"#;
        let document = parse_document(text.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&document).unwrap(), text);
    }

    #[test]
    fn the_deepest_document_fits_a_small_thread_stack() {
        // Parse, serialize and drop at MAX_DEPTH on 3/4 of a tokio worker's 2 MiB stack.
        let text = nested(MAX_DEPTH);
        let serialized = std::thread::Builder::new()
            .stack_size(1536 * 1024)
            .spawn(move || {
                let document = parse_document(text.as_bytes()).expect("parses");
                serde_json::to_vec(&document).expect("serializes").len()
            })
            .expect("spawns")
            .join()
            .expect("did not overflow its stack");
        assert_eq!(serialized, 2 * MAX_DEPTH + 1);
    }
}
