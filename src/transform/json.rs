//! JSON body operations compiled at config load: `remove`, `rename`, `set` and `mask` by JSON
//! pointer, with `*` matching every element of an array (or every member of an object), and
//! `when` / `unless` conditions in the rule language.
//!
//! Operations run in this order: remove, rename, set, mask. A body is parsed once and
//! serialized once per request (see the proxy's body phases); pointers are never re-parsed.

use super::headers::{Template, TemplateContext};
use crate::config::file::{InvalidBodyAction, JsonTransformFile, OversizeAction};
use crate::config::PathError;
use crate::policy::{compile_rule, holds_for, Identity, Rule};
use serde_json::Value;

/// Which way a body travels: it decides the defaults of `oversize` and `on_invalid`, and labels
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// One step of a compiled pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Any,
}

/// A compiled JSON pointer (`/items/*/internal_cost`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    steps: Vec<Step>,
}

/// Why a JSON pointer of a body operation does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("`{text}` is not a JSON pointer: it must start with `/`")]
    MissingLeadingSlash { text: String },
}

impl Pointer {
    /// Parses an RFC 6901 pointer, where a `*` segment matches every element.
    pub fn parse(text: &str) -> Result<Pointer, PointerError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::MissingLeadingSlash { text: text.into() });
        };
        let steps = rest
            .split('/')
            .map(|segment| match segment {
                "*" => Step::Any,
                _ => Step::Key(segment.replace("~1", "/").replace("~0", "~")),
            })
            .collect();
        Ok(Pointer { steps })
    }

    fn split_last(&self) -> Option<(&[Step], &Step)> {
        self.steps
            .split_last()
            .map(|(last, parents)| (parents, last))
    }
}

/// Calls `visit` on every container reached by `steps` from `value`.
fn for_each_at(value: &mut Value, steps: &[Step], visit: &mut dyn FnMut(&mut Value)) {
    let Some((step, rest)) = steps.split_first() else {
        visit(value);
        return;
    };
    match (step, value) {
        (Step::Any, Value::Array(items)) => {
            items.iter_mut().for_each(|v| for_each_at(v, rest, visit))
        }
        (Step::Any, Value::Object(map)) => {
            map.values_mut().for_each(|v| for_each_at(v, rest, visit))
        }
        (Step::Key(key), Value::Object(map)) => {
            if let Some(child) = map.get_mut(key.as_str()) {
                for_each_at(child, rest, visit);
            }
        }
        (Step::Key(key), Value::Array(items)) => {
            if let Some(child) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                for_each_at(child, rest, visit);
            }
        }
        _ => {}
    }
}

/// The value written by `set`.
#[derive(Debug, Clone)]
pub enum SetValue {
    Literal(Value),
    /// A string with `{claims...}` / `{request...}` placeholders; skipped when a claim is missing.
    Template(Template),
}

/// Compiled body operations of one route and direction.
#[derive(Debug, Clone)]
pub struct JsonTransform {
    pub max_body: usize,
    /// As configured; [`JsonTransform::oversize_action`] resolves the default.
    oversize: Option<OversizeAction>,
    /// As configured; [`JsonTransform::invalid_action`] resolves the default.
    on_invalid: Option<InvalidBodyAction>,
    remove: Vec<Pointer>,
    /// (parent steps, old key, new key)
    rename: Vec<(Vec<Step>, Step, String)>,
    set: Vec<(Pointer, SetValue)>,
    mask: Vec<(Pointer, usize)>,
    when: Option<Rule>,
    unless: Option<Rule>,
}

impl JsonTransform {
    pub fn compile(
        file: &JsonTransformFile,
        path: &str,
        errors: &mut Vec<PathError>,
    ) -> JsonTransform {
        let pointer = |text: &str, item: String, errors: &mut Vec<PathError>| {
            Pointer::parse(text)
                .map_err(|e| errors.push(PathError::new(item, e.to_string())))
                .ok()
        };
        let remove = file
            .remove
            .iter()
            .enumerate()
            .filter_map(|(i, p)| pointer(p, format!("{path}.remove[{i}]"), errors))
            .collect();
        let mut rename = Vec::new();
        for (from, to) in &file.rename {
            let item = format!("{path}.rename.{from}");
            let (Some(from_pointer), Some(to_pointer)) = (
                pointer(from, item.clone(), errors),
                pointer(to, item.clone(), errors),
            ) else {
                continue;
            };
            match (from_pointer.split_last(), to_pointer.split_last()) {
                (Some((from_parent, old)), Some((to_parent, Step::Key(new)))) if from_parent == to_parent => {
                    rename.push((from_parent.to_vec(), old.clone(), new.clone()));
                }
                _ => errors.push(PathError::new(
                    item,
                    format!("`{from}` → `{to}`: a rename stays within one object and names a key (no `*` last)"),
                )),
            }
        }
        let set = file
            .set
            .iter()
            .filter_map(|(target, value)| {
                let item = format!("{path}.set.{target}");
                let target = pointer(target, item.clone(), errors)?;
                let value = match value {
                    Value::String(text) if text.contains('{') => match Template::parse(text) {
                        Ok(template) => SetValue::Template(template),
                        Err(e) => {
                            errors.push(PathError::new(item, e.to_string()));
                            return None;
                        }
                    },
                    other => SetValue::Literal(other.clone()),
                };
                Some((target, value))
            })
            .collect();
        let mask = file
            .mask
            .iter()
            .filter_map(|(target, keep)| {
                Some((
                    pointer(target, format!("{path}.mask.{target}"), errors)?,
                    *keep,
                ))
            })
            .collect();
        JsonTransform {
            max_body: file.max_body.map_or(1 << 20, |s| s.0 as usize),
            oversize: file.oversize,
            on_invalid: file.on_invalid,
            remove,
            rename,
            set,
            mask,
            when: file
                .when
                .as_ref()
                .map(|r| compile_rule(r, &format!("{path}.when"), errors)),
            unless: file
                .unless
                .as_ref()
                .map(|r| compile_rule(r, &format!("{path}.unless"), errors)),
        }
    }

    /// Whether this request's body is transformed (conditions over the verified claims; an
    /// anonymous request fails `when` and passes `unless`).
    pub fn applies(&self, identity: Option<&Identity>) -> bool {
        self.when
            .as_ref()
            .is_none_or(|rule| holds_for(rule, identity))
            && !self
                .unless
                .as_ref()
                .is_some_and(|rule| holds_for(rule, identity))
    }

    /// Whether this transform exists to keep something from the other side (it removes or
    /// masks fields): then a body it cannot change must not pass unchanged by default.
    pub fn protects_fields(&self) -> bool {
        !self.remove.is_empty() || !self.mask.is_empty()
    }

    /// What to do with a body larger than `max_body`: as configured, else `reject` for a
    /// request whose transform protects fields, `passthrough` otherwise.
    pub fn oversize_action(&self, direction: Direction) -> OversizeAction {
        self.oversize.unwrap_or(match direction {
            Direction::Request if self.protects_fields() => OversizeAction::Reject,
            _ => OversizeAction::Passthrough,
        })
    }

    /// What to do with a body that is not valid JSON: as configured, else `reject` for
    /// requests and for responses whose transform protects fields, `pass` otherwise.
    pub fn invalid_action(&self, direction: Direction) -> InvalidBodyAction {
        self.on_invalid.unwrap_or(match direction {
            Direction::Request => InvalidBodyAction::Reject,
            Direction::Response if self.protects_fields() => InvalidBodyAction::Reject,
            Direction::Response => InvalidBodyAction::Pass,
        })
    }

    /// Applies every operation to a parsed document.
    pub fn apply(&self, document: &mut Value, context: &TemplateContext<'_>) {
        for pointer in &self.remove {
            if let Some((parents, last)) = pointer.split_last() {
                for_each_at(document, parents, &mut |container| {
                    remove_child(container, last)
                });
            }
        }
        for (parents, old, new) in &self.rename {
            for_each_at(document, parents, &mut |container| {
                if let (Value::Object(map), Step::Key(old)) = (container, old) {
                    if let Some(value) = map.remove(old.as_str()) {
                        map.insert(new.clone(), value);
                    }
                }
            });
        }
        for (pointer, value) in &self.set {
            let value = match value {
                SetValue::Literal(v) => v.clone(),
                SetValue::Template(t) => match t.render(context) {
                    Some(text) => Value::String(text),
                    None => continue,
                },
            };
            if let Some((parents, Step::Key(key))) = pointer.split_last() {
                for_each_at(document, parents, &mut |container| {
                    if let Value::Object(map) = container {
                        map.insert(key.clone(), value.clone());
                    }
                });
            }
        }
        for (pointer, keep) in &self.mask {
            for_each_at(document, &pointer.steps, &mut |value| {
                mask_value(value, *keep)
            });
        }
    }
}

fn remove_child(container: &mut Value, step: &Step) {
    match (container, step) {
        (Value::Object(map), Step::Key(key)) => {
            map.remove(key.as_str());
        }
        (Value::Object(map), Step::Any) => map.clear(),
        (Value::Array(items), Step::Key(key)) => {
            if let Some(index) = key.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(index);
            }
        }
        (Value::Array(items), Step::Any) => items.clear(),
        _ => {}
    }
}

/// Replaces all but the last `keep` characters of a string (or number) with `*`.
fn mask_value(value: &mut Value, keep: usize) {
    let text = match value {
        Value::String(text) => std::mem::take(text),
        Value::Number(number) => number.to_string(),
        _ => return,
    };
    let count = text.chars().count();
    let masked: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep < count { '*' } else { c })
        .collect();
    *value = Value::String(masked);
}

/// Whether a content type is JSON (`application/json`, `application/*+json`).
pub fn is_json_content_type(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default();
    let essence = essence.trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].starts_with(b"application/")
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

mod parse;
pub use parse::{parse_document, InvalidJson, MAX_DEPTH};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod pointer_error_tests {
    use super::*;

    #[test]
    fn pointer_error_asks_for_the_leading_slash() {
        assert_eq!(
            Pointer::parse("items/*").unwrap_err().to_string(),
            "`items/*` is not a JSON pointer: it must start with `/`"
        );
    }
}
