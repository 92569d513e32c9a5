//! The JSON Schema of the configuration file, generated from the file structs and their doc
//! comments (schemars), committed as `conf/portcullis.schema.json` for editors (the example
//! configs name it in a `# yaml-language-server: $schema=…` line). `portcullis schema` prints
//! it; a test fails when the committed file is not what the structs generate.
//!
//! The types that read themselves by hand — units (`30s`, `1MiB`, `100/s`), `auth`, and the
//! rule expressions — describe their written forms here. A value may also be a `${VAR}`
//! reference, expanded before parsing, so the patterns accept one.

use super::policy_file::{AuthFile, AuthPolicyFile};
use super::units::{ByteRate, ByteSize, ConfigDuration, RateSpec};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// A `${VAR}` reference (expanded before the file is parsed).
const VARIABLE: &str = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}";

/// A unit type written as text (or, where the parser takes one, a bare number).
fn text_unit(pattern: &str, description: &str, examples: &[&str], numbers: bool) -> Schema {
    let pattern = format!("^(\\s*{pattern}\\s*|{VARIABLE})$");
    let text = json_schema!({ "type": "string", "pattern": pattern });
    let mut schema = if numbers {
        json_schema!({ "anyOf": [text, { "type": "integer", "minimum": 0 }] })
    } else {
        text
    };
    schema.insert("description".into(), description.into());
    schema.insert("examples".into(), examples.to_vec().into());
    schema
}

impl JsonSchema for ConfigDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text_unit(
            r"[0-9]+(\.[0-9]+)?\s*(ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours|d|day|days)?",
            "A duration: a number with a unit (ms, s, m, h, d); a bare number is seconds.",
            &["250ms", "30s", "5m", "1h"],
            true,
        )
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text_unit(
            r"[0-9]+\s*([bB]|[kKmMgG]([iI]?[bB])?)?",
            "A size in bytes: a number with an optional unit (KiB, MiB, GiB; KB = KiB).",
            &["512", "8KiB", "1MiB"],
            true,
        )
    }
}

impl JsonSchema for ByteRate {
    fn schema_name() -> Cow<'static, str> {
        "ByteRate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text_unit(
            r"(0|[0-9]+\s*([bB]|[kKmMgG]([iI]?[bB])?)?/s)",
            "Bytes per second, written `<size>/s`; `0` switches the check off.",
            &["1KiB/s", "0"],
            true,
        )
    }
}

impl JsonSchema for RateSpec {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text_unit(
            r"[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day|month)",
            "Requests per period: `<count>/<s|min|hour|day|month>` (a month is 30 days).",
            &["100/s", "60/min", "10000/day"],
            false,
        )
    }
}

impl JsonSchema for AuthFile {
    fn schema_name() -> Cow<'static, str> {
        "Auth".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let policy = generator.subschema_for::<AuthPolicyFile>();
        json_schema!({
            "description": "`none` (anonymous, said explicitly), `optional` (a present token must be valid), or a policy.",
            "anyOf": [
                { "type": "string", "enum": ["none", "optional"] },
                policy
            ]
        })
    }
}

/// The schema of the configuration file, as pretty JSON with a trailing newline.
pub fn config_schema_json() -> String {
    let mut schema = schemars::schema_for!(super::file::FileConfig);
    schema.insert("title".into(), "Portcullis configuration".into());
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_patterns_accept_what_the_parsers_accept_and_variables() {
        let schema: serde_json::Value =
            serde_json::from_str(&config_schema_json()).expect("the schema is JSON");
        let duration = &schema["$defs"]["Duration"]["anyOf"][0]["pattern"];
        let regex = regex::Regex::new(duration.as_str().unwrap()).unwrap();
        for ok in ["30s", "250ms", "5m", "1.5h", "${TIMEOUT}", "10"] {
            assert!(regex.is_match(ok), "{ok}");
        }
        assert!(!regex.is_match("30 fortnights"));
        let rate = schema["$defs"]["Rate"]["pattern"].as_str().unwrap();
        let regex = regex::Regex::new(rate).unwrap();
        assert!(regex.is_match("100/s") && regex.is_match("10000/day"));
        assert!(!regex.is_match("0/s") && !regex.is_match("100"));
    }
}
