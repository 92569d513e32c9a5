//! The upstream target of a routed request: `strip_prefix`, `rewrite_path` (regex),
//! `add_query` (templates) and `remove_query`. Untouched routes cost one check.

use super::context::Context;
use crate::compile::Route;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Applies `strip_prefix`, `rewrite_path`, `add_query` and `remove_query` to the upstream URI.
pub fn rewrite_target(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &Context,
    route: &Route,
) -> Result<()> {
    let untouched = route.strip_prefix.is_none()
        && route.rewrite_path.is_none()
        && route.add_query.is_empty()
        && route.remove_query.is_empty();
    if untouched {
        return Ok(());
    }
    let mut path = upstream_request.uri.path().to_owned();
    let mut query: Vec<String> = upstream_request
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(prefix) = &route.strip_prefix {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            path = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            };
        }
    }
    if let Some((regex, replacement)) = &route.rewrite_path {
        path = regex.replace(&path, replacement.as_str()).into_owned();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
    }
    if !route.remove_query.is_empty() || !route.add_query.is_empty() {
        query.retain(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !route.remove_query.iter().any(|r| r == name)
                && !route.add_query.iter().any(|(a, _)| a == name)
        });
        let context =
            ctx.facts
                .template_context(session.req_header(), &ctx.request_id, ctx.claims());
        for (name, template) in &route.add_query {
            if let Some(value) = template.render(&context) {
                query.push(format!("{}={}", encode_query(name), encode_query(&value)));
            }
        }
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let uri = target.parse::<http::Uri>().or_err(
        ErrorType::InternalError,
        "rewritten path is not a valid URI",
    )?;
    upstream_request.set_uri(uri);
    Ok(())
}

/// Percent-encodes a query name or value (RFC 3986 unreserved characters pass).
fn encode_query(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::encode_query;

    #[test]
    fn query_values_keep_only_unreserved_characters() {
        assert_eq!(encode_query("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_query("x y&z=1/é"), "x%20y%26z%3D1%2F%C3%A9");
    }
}
