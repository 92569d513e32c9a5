//! Bounds checked on the raw text before any YAML parser sees it: the file size and how deeply
//! its collections nest.
//!
//! Both YAML parsers in the tree do work that grows with the square of the nesting depth:
//! serde_yaml's scanner (a port of libyaml) re-checks the pending "simple key" of every open flow
//! level (`[` / `{`) for each token it reads, and the position index
//! ([`super::PositionIndex`], on yaml-rust2) builds a path string as long as the depth for every
//! node. An 80 KB file of brackets took seconds, a 400 KB one minutes. A real configuration
//! nests less than ten levels, so [`check_nesting`] refuses anything deeper than
//! [`MAX_NESTING_DEPTH`] after one linear pass, and [`MAX_FILE_BYTES`] caps the text itself.

use super::ConfigError;

/// The largest configuration file accepted (4 MiB), before and after `${VAR}` expansion.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting of mappings and sequences accepted.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Refuses a text longer than [`MAX_FILE_BYTES`].
pub fn check_size(file: &str, bytes: usize) -> Result<(), ConfigError> {
    if bytes <= MAX_FILE_BYTES {
        return Ok(());
    }
    Err(ConfigError {
        file: file.to_owned(),
        line: 1,
        column: 1,
        message: format!(
            "the configuration is {bytes} bytes; the largest accepted is {MAX_FILE_BYTES} bytes (4 MiB)"
        ),
    })
}

/// Refuses a text whose collections nest deeper than [`MAX_NESTING_DEPTH`], located at the
/// first line and column past the limit.
///
/// One pass over the text, without parsing it: a level is an indentation step of block
/// collections, a `- ` sequence entry, or an open `[` / `{` flow collection. Quoted scalars,
/// comments and block scalars (`|`, `>`) are skipped, and brackets inside a plain scalar of a
/// block collection (`path: /a[1]`) are not collections. The count is an approximation that can
/// only be a level or two high, far below the limit for any real configuration.
pub fn check_nesting(file: &str, text: &str) -> Result<(), ConfigError> {
    let mut scan = NestingScan::default();
    for (index, line) in text.lines().enumerate() {
        if let Some((column, depth)) = scan.line(line) {
            return Err(ConfigError {
                file: file.to_owned(),
                line: index + 1,
                column: column + 1,
                message: format!(
                    "the configuration nests {depth} levels deep here; the deepest accepted is \
                     {MAX_NESTING_DEPTH}"
                ),
            });
        }
    }
    Ok(())
}

/// A quoted scalar that may continue on the next line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

/// What the scan knows at the end of a line.
#[derive(Debug, Default)]
struct NestingScan {
    /// Columns of the open block collections, innermost last.
    indents: Vec<usize>,
    /// Open `[` / `{` collections.
    flow_depth: usize,
    /// A quoted scalar that continues on the next line.
    quote: Option<Quote>,
    /// Inside a block scalar started on a line indented this much: more indented lines are text.
    block_scalar_parent: Option<usize>,
}

impl NestingScan {
    /// Scans one line; returns the column and depth where the limit is first exceeded.
    fn line(&mut self, line: &str) -> Option<(usize, usize)> {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = self.block_scalar_parent {
            if blank || indent > parent {
                return None;
            }
            self.block_scalar_parent = None;
        }
        if blank {
            return None;
        }
        let mut at = 0;
        let mut node_start = false;
        if self.quote.is_none() && self.flow_depth == 0 {
            if bytes[indent] == b'#' {
                return None;
            }
            while self.indents.last().is_some_and(|open| *open > indent) {
                self.indents.pop();
            }
            if self.indents.last() != Some(&indent) {
                self.indents.push(indent);
            }
            at = indent;
            node_start = true;
        }
        while at < bytes.len() {
            if let Some(quote) = self.quote {
                at = self.skip_quoted(bytes, at, quote);
                continue;
            }
            let byte = bytes[at];
            let next = bytes.get(at + 1).copied();
            let ends_token = next.is_none_or(|n| n == b' ' || n == b'\t');
            match byte {
                b' ' | b'\t' => {}
                b'#' if at == 0 || matches!(bytes[at - 1], b' ' | b'\t') => return None,
                b'"' | b'\'' if node_start || self.flow_depth > 0 => {
                    self.quote = Some(if byte == b'"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    });
                    at += 1;
                    continue;
                }
                b'[' | b'{' if node_start || self.flow_depth > 0 => {
                    self.flow_depth += 1;
                    let depth = self.indents.len() + self.flow_depth;
                    if depth > MAX_NESTING_DEPTH {
                        return Some((at, depth));
                    }
                    node_start = true;
                }
                b']' | b'}' if self.flow_depth > 0 => {
                    self.flow_depth -= 1;
                    node_start = false;
                }
                b',' if self.flow_depth > 0 => node_start = true,
                b'-' | b'?' if node_start && self.flow_depth == 0 && ends_token => {
                    // A block sequence entry (or complex key): its content is one level deeper.
                    self.indents.push(at + 2);
                    if self.indents.len() > MAX_NESTING_DEPTH {
                        return Some((at, self.indents.len()));
                    }
                }
                b':' if ends_token || self.flow_depth > 0 => node_start = true,
                b'|' | b'>' if node_start && self.flow_depth == 0 => {
                    self.block_scalar_parent = Some(indent);
                    return None;
                }
                b'&' | b'!' | b'*' if node_start => {
                    // An anchor, tag or alias: the node (if any) starts after it.
                    while at < bytes.len() && !matches!(bytes[at], b' ' | b'\t') {
                        at += 1;
                    }
                    continue;
                }
                _ => node_start = false,
            }
            at += 1;
        }
        if self.indents.len() + self.flow_depth > MAX_NESTING_DEPTH {
            return Some((indent, self.indents.len() + self.flow_depth));
        }
        None
    }

    /// Skips to the end of a quoted scalar (or of the line); returns the next position.
    fn skip_quoted(&mut self, bytes: &[u8], mut at: usize, quote: Quote) -> usize {
        while at < bytes.len() {
            match (quote, bytes[at]) {
                (Quote::Double, b'\\') => at += 2,
                (Quote::Double, b'"') => {
                    self.quote = None;
                    return at + 1;
                }
                (Quote::Single, b'\'') if bytes.get(at + 1) == Some(&b'\'') => at += 2,
                (Quote::Single, b'\'') => {
                    self.quote = None;
                    return at + 1;
                }
                _ => at += 1,
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> Option<(usize, usize)> {
        check_nesting("t.yaml", text)
            .err()
            .map(|error| (error.line, error.column))
    }

    #[test]
    fn ordinary_configurations_pass() {
        let text = "server:\n  listen: [\"127.0.0.1:8080\"]\n# a [[[[ comment\nroutes:\n  - name: a\n    match: { path_prefix: \"/[[[\" }\n    auth: { providers: [a, b] }\n    note: |\n      [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n    path: /a[b]{c}\n";
        assert_eq!(depth_error(text), None);
        assert_eq!(
            depth_error(&format!("a: {}{}\n", "[".repeat(60), "]".repeat(60))),
            None
        );
    }

    #[test]
    fn deep_flow_collections_are_refused_where_they_pass_the_limit() {
        let text = format!("a:\n  b: {}{}\n", "[".repeat(100), "]".repeat(100));
        // Two block levels, then the 63rd bracket is level 65.
        assert_eq!(depth_error(&text), Some((2, 6 + 62)));
        let braces = format!("x: {}1{}\n", "{a: ".repeat(100), "}".repeat(100));
        assert!(depth_error(&braces).is_some());
        // Brackets spread over lines count too.
        let lines = format!("x:\n{}", "  [\n".repeat(100));
        assert!(depth_error(&lines).is_some());
    }

    #[test]
    fn deep_block_collections_are_refused() {
        let mapping: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert_eq!(depth_error(&mapping).map(|(line, _)| line), Some(65));
        let sequences = format!("x: 1\n{}1\n", "- ".repeat(100));
        assert!(depth_error(&sequences).is_some());
    }

    #[test]
    fn size_is_capped() {
        assert!(check_size("t.yaml", MAX_FILE_BYTES).is_ok());
        let error = check_size("t.yaml", MAX_FILE_BYTES + 1).unwrap_err();
        assert!(error.message.contains("4 MiB"), "{}", error.message);
    }
}
