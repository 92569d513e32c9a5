//! Configuration errors as users read them: `FILE:LINE:COLUMN: message`, with a
//! "did you mean" hint for misspelled keys.
//!
//! Parse errors carry their position from serde_yaml. Errors found later, while compiling the
//! snapshot, name a config path such as `routes[2].upstream`; [`PositionIndex`] maps such a path
//! back to the line and column where it stands in the file.

use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file; `validate` prints each on its own line.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A semantic problem found while compiling, located by its config path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub message: String,
}

impl PathError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PathError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Turns a serde_yaml error into a located message with a hint for unknown keys and variants.
pub fn from_yaml_error(file: &str, error: &serde_yaml::Error) -> ConfigError {
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut message = error.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    if let Some(hint) = did_you_mean(&message) {
        message.push_str(&format!(", did you mean `{hint}`?"));
    }
    ConfigError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// For "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the closest choice.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))?
        .1;
    let (unknown, choices) = rest.split_once('`')?;
    choices
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|choice| (edit_distance(unknown, choice), choice))
        .filter(|(distance, choice)| *distance <= 2.max(choice.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, choice)| choice.to_owned())
}

/// Levenshtein distance, for short identifiers only.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Positions of every node of a YAML document, by config path (`routes[0].auth.providers[1]`).
#[derive(Debug, Default)]
pub struct PositionIndex {
    positions: HashMap<String, (usize, usize)>,
}

impl PositionIndex {
    /// Indexes `text`; a document that does not parse yields an empty index.
    pub fn build(text: &str) -> Self {
        let mut builder = IndexBuilder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return PositionIndex::default();
        }
        PositionIndex {
            positions: builder.positions,
        }
    }

    /// The position of `path`, or of its nearest ancestor present in the file.
    pub fn locate(&self, path: &str) -> (usize, usize) {
        let mut path = path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return *position;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return (1, 1),
            }
        }
    }

    /// Locates each path error in `file`.
    pub fn locate_all(&self, file: &str, errors: Vec<PathError>) -> ConfigErrors {
        ConfigErrors(
            errors
                .into_iter()
                .map(|e| {
                    let (line, column) = self.locate(&e.path);
                    ConfigError {
                        file: file.to_owned(),
                        line,
                        column,
                        message: format!("{}: {}", e.path, e.message),
                    }
                })
                .collect(),
        )
    }
}

/// Where the builder is inside the document.
enum Frame {
    /// In a mapping: the path of the mapping, and the key whose value comes next (if any).
    Mapping { path: String, key: Option<String> },
    /// In a sequence: the path of the sequence and the index of the next item.
    Sequence { path: String, next: usize },
}

#[derive(Default)]
struct IndexBuilder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
    /// A mapping that just started: it is located at its first key, which is where a reader
    /// sees it begin (the parser's own mark for a block mapping lies elsewhere).
    mapping_awaiting_first_key: Option<String>,
}

impl IndexBuilder {
    /// The path of the node that starts now, advancing the parent's cursor. `None` means this
    /// node is a mapping key.
    fn next_node_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next }) => {
                let node = format!("{path}[{next}]");
                *next += 1;
                Some(node)
            }
            Some(Frame::Mapping { path, key }) => key.take().map(|key| {
                if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                }
            }),
        }
    }
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let position = (mark.line(), mark.col() + 1);
        match event {
            Event::Scalar(value, ..) => {
                if let Some(mapping) = self.mapping_awaiting_first_key.take() {
                    self.positions.insert(mapping, position);
                }
                self.on_scalar(value, position)
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                self.mapping_awaiting_first_key = None;
                let path = self.next_node_path().unwrap_or_default();
                self.positions.entry(path.clone()).or_insert(position);
                if matches!(event, Event::MappingStart(..)) {
                    self.mapping_awaiting_first_key = Some(path.clone());
                }
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Mapping { path, key: None }
                    } else {
                        Frame::Sequence { path, next: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.mapping_awaiting_first_key = None;
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.next_node_path();
            }
            _ => {}
        }
    }
}

impl IndexBuilder {
    fn on_scalar(&mut self, value: String, position: (usize, usize)) {
        match self.next_node_path() {
            Some(path) => {
                // A scalar value is located at the value itself, not at its key.
                self.positions.insert(path, position);
            }
            None => {
                if let Some(Frame::Mapping { path, key }) = self.stack.last_mut() {
                    let full = if path.is_empty() {
                        value.clone()
                    } else {
                        format!("{path}.{value}")
                    };
                    self.positions.insert(full, position);
                    *key = Some(value);
                }
            }
        }
    }
}

/// `, did you mean `x`?` when one known name is close to `name`.
pub fn suggest(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_else(|| {
            if known.is_empty() {
                String::new()
            } else {
                format!(" (defined: {})", known.join(", "))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_the_closest_key() {
        let message = "routes[0]: unknown field `upstrem`, expected one of `name`, `match`, `upstream`, `auth`";
        assert_eq!(did_you_mean(message).as_deref(), Some("upstream"));
        let message = "unknown field `zzzzzz`, expected one of `name`, `match`";
        assert_eq!(did_you_mean(message), None);
    }

    #[test]
    fn locates_nested_paths() {
        let text = "server:\n  listen: [\"a\"]\nroutes:\n  - name: one\n    upstream: x\n  - name: two\n    upstream: y\n";
        let index = PositionIndex::build(text);
        assert_eq!(index.locate("routes[1].upstream"), (7, 15));
        assert_eq!(index.locate("routes[0].name"), (4, 11));
        assert_eq!(index.locate("server.listen[0]"), (2, 12));
        // A path that is not in the file falls back to its nearest ancestor.
        assert_eq!(
            index.locate("routes[1].auth.providers"),
            index.locate("routes[1]")
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("upstrem", "upstream"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
