//! `${VAR}` and `${VAR:-default}` expansion over the configuration text, before YAML parsing.
//!
//! Expansion happens in values only: comments are left alone, so a commented-out example that
//! names an unset variable is not an error. `$${` writes a literal `${`. A value that would
//! contain a line break is refused, which keeps every line number of the file unchanged so that
//! later errors still point at the right line.

/// A variable that could not be expanded, with its 1-based position in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpansionError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Expands variables in `text`, looking them up with `lookup` (normally `std::env::var`).
pub fn expand_variables(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<ExpansionError>> {
    let mut output = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (line_index, line) in text.split_inclusive('\n').enumerate() {
        let comment_start = comment_start(line);
        let (content, comment) = line.split_at(comment_start);
        expand_line(content, line_index + 1, &lookup, &mut output, &mut errors);
        output.push_str(comment);
    }
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(errors)
    }
}

fn expand_line(
    content: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    output: &mut String,
    errors: &mut Vec<ExpansionError>,
) {
    let mut rest = content;
    let mut consumed = 0;
    while let Some(position) = rest.find('$') {
        output.push_str(&rest[..position]);
        let after = &rest[position..];
        let column = consumed + position + 1;
        if let Some(stripped) = after.strip_prefix("$${") {
            output.push_str("${");
            let advance = position + 3;
            consumed += advance;
            rest = &rest[advance..];
            let _ = stripped;
            continue;
        }
        if !after.starts_with("${") {
            output.push('$');
            consumed += position + 1;
            rest = &rest[position + 1..];
            continue;
        }
        let Some(end) = after.find('}') else {
            errors.push(ExpansionError {
                line,
                column,
                message: "unterminated `${`: expected `${NAME}` or `${NAME:-default}`".into(),
            });
            output.push_str(after);
            return;
        };
        let inner = &after[2..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            errors.push(ExpansionError {
                line,
                column,
                message: format!("`${{{inner}}}` is not a valid variable reference"),
            });
        } else {
            match lookup(name).filter(|v| !v.is_empty()).or(default.map(str::to_owned)) {
                Some(value) if value.contains(['\n', '\r']) => errors.push(ExpansionError {
                    line,
                    column,
                    message: format!("environment variable `{name}` contains a line break"),
                }),
                Some(value) => output.push_str(&value),
                None => errors.push(ExpansionError {
                    line,
                    column,
                    message: format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
                    ),
                }),
            }
        }
        consumed += position + end + 1;
        rest = &rest[position + end + 1..];
    }
    output.push_str(rest);
}

/// Byte offset where a YAML comment starts on this line (or the line's length): a `#` at the
/// start of the line or after white space, outside single or double quotes.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (index, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return index,
            None => {}
        }
        previous = c;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEYCLOAK_URL" => Some("http://127.0.0.1:18080".into()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let text =
            "a: \"${KEYCLOAK_URL}/realms/acme\"\nb: ${MISSING:-fallback}\nc: ${EMPTY:-used}\n";
        assert_eq!(
            expand_variables(text, env).unwrap(),
            "a: \"http://127.0.0.1:18080/realms/acme\"\nb: fallback\nc: used\n"
        );
    }

    #[test]
    fn leaves_comments_and_plain_dollars_alone() {
        let text = "a: ${KEYCLOAK_URL} # uses ${UNSET}\n# ${ALSO_UNSET}\nprice: $5\nlit: $${X}\n";
        assert_eq!(
            expand_variables(text, env).unwrap(),
            "a: http://127.0.0.1:18080 # uses ${UNSET}\n# ${ALSO_UNSET}\nprice: $5\nlit: ${X}\n"
        );
    }

    #[test]
    fn reports_every_unset_variable_with_position() {
        let errors = expand_variables("a: ${ONE}\nb: x ${TWO}\nc: ${MULTI}\n", env).unwrap_err();
        let positions: Vec<_> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(positions, vec![(1, 4), (2, 6), (3, 4)]);
        assert!(errors[0].message.contains("`ONE` is not set"));
        assert!(errors[2].message.contains("line break"));
    }

    #[test]
    fn hash_inside_quotes_is_not_a_comment() {
        let text = "a: \"x # ${KEYCLOAK_URL}\"\n";
        assert_eq!(
            expand_variables(text, env).unwrap(),
            "a: \"x # http://127.0.0.1:18080\"\n"
        );
    }
}
