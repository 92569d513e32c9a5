//! Header operations (`set_headers`, `append_headers`, `remove_headers`) and the value
//! templates they use: `{claims.sub}`, `{claims.realm_access.roles}` (arrays joined with `,`),
//! `{request.id}`, `{request.client_ip}`, `{request.method}`, `{request.host}`,
//! `{request.path}`; `{{` and `}}` write literal braces. A template whose claim is missing
//! yields no value, and the header is then omitted rather than sent as "null".

use crate::config::PathError;
use crate::policy::{ClaimValue, Claims};
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Claim(Vec<String>),
    RequestId,
    ClientIp,
    Method,
    Host,
    Path,
}

/// A compiled header value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What templates may read while rendering.
pub struct TemplateContext<'a> {
    pub claims: Option<&'a Claims>,
    pub request_id: &'a str,
    pub client_ip: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
}

/// Why a header value template (`set_headers`, `append_headers`, `add_query`, JSON `set`) does
/// not compile: unbalanced braces or an unknown variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unmatched `}}` in `{text}` (write `}}}}` for a literal brace)")]
    UnmatchedClosingBrace { text: String },
    #[error("unclosed `{{` in `{text}`")]
    UnclosedBrace { text: String },
    #[error("unknown variable `{{{variable}}}`: use `{{claims.<path>}}` or `{{request.id|client_ip|method|host|path}}`")]
    UnknownVariable { variable: String },
}

impl Template {
    /// Parses `text`; unknown variables and unbalanced braces are errors.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(position) = rest.find(['{', '}']) {
            literal.push_str(&rest[..position]);
            let after = &rest[position..];
            if after.starts_with("{{") || after.starts_with("}}") {
                literal.push_str(&after[..1]);
                rest = &after[2..];
                continue;
            }
            if after.starts_with('}') {
                return Err(TemplateError::UnmatchedClosingBrace { text: text.into() });
            }
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::UnclosedBrace { text: text.into() })?;
            let variable = &after[1..end];
            let piece = match variable {
                "request.id" => Piece::RequestId,
                "request.client_ip" => Piece::ClientIp,
                "request.method" => Piece::Method,
                "request.host" => Piece::Host,
                "request.path" => Piece::Path,
                _ => match variable.strip_prefix("claims.") {
                    Some(path) if !path.split('.').any(str::is_empty) => {
                        Piece::Claim(path.split('.').map(str::to_owned).collect())
                    }
                    _ => {
                        return Err(TemplateError::UnknownVariable {
                            variable: variable.into(),
                        })
                    }
                },
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// Whether rendering needs verified claims.
    pub fn uses_claims(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Claim(_)))
    }

    /// Renders the value, or `None` when a claim it names is missing or null.
    pub fn render(&self, context: &TemplateContext<'_>) -> Option<String> {
        let mut output = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => output.push_str(text),
                Piece::RequestId => output.push_str(context.request_id),
                Piece::ClientIp => output.push_str(context.client_ip),
                Piece::Method => output.push_str(context.method),
                Piece::Host => output.push_str(context.host),
                Piece::Path => output.push_str(context.path),
                Piece::Claim(path) => match context.claims?.lookup(path)? {
                    ClaimValue::Text(text) => output.push_str(&text),
                    ClaimValue::Parsed(value) => append_claim(&mut output, value)?,
                },
            }
        }
        Some(output)
    }
}

/// Writes a claim: a string as its text, an array as its items joined with `,`, anything
/// else as JSON; `None` for null.
fn append_claim(output: &mut String, value: &serde_json::Value) -> Option<()> {
    use serde_json::Value;
    match value {
        Value::Null => return None,
        Value::String(text) => output.push_str(text),
        Value::Array(items) => {
            let mut first = true;
            for item in items {
                if !first {
                    output.push(',');
                }
                first = false;
                match item {
                    Value::String(text) => output.push_str(text),
                    other => output.push_str(&other.to_string()),
                }
            }
        }
        other => output.push_str(&other.to_string()),
    }
    Some(())
}

/// Compiled header operations of one direction of one route.
#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, Template)>,
    pub append: Vec<(HeaderName, Template)>,
}

impl HeaderOps {
    /// Compiles the three maps found under `path` (e.g. `routes[1].request`).
    pub fn compile(
        set: &BTreeMap<String, String>,
        append: &BTreeMap<String, String>,
        remove: &[String],
        path: &str,
        errors: &mut Vec<PathError>,
    ) -> HeaderOps {
        let mut compile_map = |map: &BTreeMap<String, String>, key: &str| {
            map.iter()
                .filter_map(|(name, value)| {
                    let item_path = format!("{path}.{key}.{name}");
                    let header = parse_name(name, &item_path, errors)?;
                    match Template::parse(value) {
                        Ok(template) => Some((header, template)),
                        Err(e) => {
                            errors.push(PathError::new(item_path, e.to_string()));
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        };
        let set = compile_map(set, "set_headers");
        let append = compile_map(append, "append_headers");
        let remove = remove
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                parse_name(name, &format!("{path}.remove_headers[{i}]"), errors)
            })
            .collect();
        HeaderOps {
            remove,
            set,
            append,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.append.is_empty()
    }

    /// Applies the operations through `apply`: remove, then set (which first removes every
    /// client-sent copy, so a client cannot spoof a header the route sets), then append.
    pub fn apply(&self, context: &TemplateContext<'_>, headers: &mut dyn HeaderSink) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, template) in &self.set {
            // Inserting replaces every client-sent copy; a value that cannot be rendered
            // still removes them.
            match template.render(context).and_then(valid_value) {
                Some(value) => headers.insert(name, value),
                None => headers.remove(name),
            }
        }
        for (name, template) in &self.append {
            if let Some(value) = template.render(context).and_then(valid_value) {
                headers.append(name, value);
            }
        }
    }
}

/// Header maps of Pingora's request and response types, seen through one interface.
pub trait HeaderSink {
    fn remove(&mut self, name: &HeaderName);
    fn insert(&mut self, name: &HeaderName, value: HeaderValue);
    fn append(&mut self, name: &HeaderName, value: HeaderValue);
}

fn valid_value(text: String) -> Option<HeaderValue> {
    HeaderValue::try_from(text).ok()
}

fn parse_name(name: &str, path: &str, errors: &mut Vec<PathError>) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(header) => Some(header),
        Err(_) => {
            errors.push(PathError::new(
                path,
                format!("`{name}` is not a valid header name"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(claims: &Claims) -> TemplateContext<'_> {
        TemplateContext {
            claims: Some(claims),
            request_id: "rid",
            client_ip: "10.0.0.1",
            method: "GET",
            host: "api",
            path: "/x",
        }
    }

    #[test]
    fn renders_claims_arrays_and_request_attributes() {
        let claims = Claims::from(
            serde_json::json!({"sub": "u1", "realm_access": {"roles": ["a", "b"]}, "n": 3}),
        );
        let render = |t: &str| Template::parse(t).unwrap().render(&context(&claims));
        assert_eq!(render("{claims.sub}").as_deref(), Some("u1"));
        assert_eq!(
            render("{claims.realm_access.roles}").as_deref(),
            Some("a,b")
        );
        assert_eq!(
            render("n={claims.n};id={request.id}").as_deref(),
            Some("n=3;id=rid")
        );
        assert_eq!(render("{{literal}}").as_deref(), Some("{literal}"));
        assert_eq!(render("{claims.missing}"), None);
        assert_eq!(render("x-{claims.sub.deeper}"), None);
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{claims.}").is_err());
        assert!(Template::parse("{nope}")
            .unwrap_err()
            .to_string()
            .contains("unknown variable"));
        assert!(Template::parse("{claims.sub")
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
        assert!(Template::parse("a}b")
            .unwrap_err()
            .to_string()
            .contains("unmatched"));
    }

    #[test]
    fn template_error_shows_the_unknown_variable_with_its_braces() {
        assert_eq!(
            Template::parse("x-{nope}").unwrap_err().to_string(),
            "unknown variable `{nope}`: use `{claims.<path>}` or `{request.id|client_ip|method|host|path}`"
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err().to_string(),
            "unmatched `}` in `a}b` (write `}}` for a literal brace)"
        );
    }

    #[test]
    fn without_claims_claim_templates_are_omitted() {
        let template = Template::parse("{claims.sub}").unwrap();
        let ctx = TemplateContext {
            claims: None,
            request_id: "r",
            client_ip: "",
            method: "GET",
            host: "",
            path: "/",
        };
        assert_eq!(template.render(&ctx), None);
        assert!(template.uses_claims());
    }
}
