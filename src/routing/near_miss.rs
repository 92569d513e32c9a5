//! Why a route did not take a request, for `portcullis explain` and the decision trace: each
//! route's host, path and methods are checked one at a time against the request, the same way
//! the [`RouteTable`](super::RouteTable) matches them. Off the request path (it allocates).

use super::{PathPattern, RouteMatcher};

/// What did not match between one route and a request; empty when the route takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    pub reasons: Vec<String>,
}

impl RouteMatcher {
    /// Checks host, path and method in turn; the reasons name what each expected.
    pub fn mismatch(&self, host: &str, path: &str, method: &str) -> Mismatch {
        let mut reasons = Vec::new();
        if let Some(expected) = &self.host {
            let matches = match expected.strip_prefix('*') {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
                None => host == expected,
            };
            if !matches {
                let got = if host.is_empty() { "(none)" } else { host };
                reasons.push(format!("host `{got}` is not `{expected}`"));
            }
        }
        match &self.path {
            PathPattern::Prefix(prefix) if !path.starts_with(prefix.as_str()) => {
                reasons.push(format!("path does not start with `{prefix}`"))
            }
            PathPattern::Template(template) if !template_matches(template, path) => {
                reasons.push(format!("path does not match `{template}`"))
            }
            _ => {}
        }
        if !self.methods.contains(method) {
            reasons.push(format!(
                "method {method} is not one of {}",
                self.methods.allow_header()
            ));
        }
        Mismatch { reasons }
    }

    /// The path pattern as configured (`/orders/{id}`, or `/api/` + `*` for a prefix).
    pub fn describe_path(&self) -> String {
        match &self.path {
            PathPattern::Template(template) => template.clone(),
            PathPattern::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let mut router = matchit::Router::new();
    router.insert(template, ()).is_ok() && router.at(path).is_ok()
}

/// The routes nearest to matching (fewest mismatches first, file order among equals), at most
/// `limit`, with their reasons.
pub fn nearest<'a>(
    routes: impl Iterator<Item = (&'a str, &'a RouteMatcher)>,
    host: &str,
    path: &str,
    method: &str,
    limit: usize,
) -> Vec<(&'a str, Mismatch)> {
    let mut misses: Vec<(&str, Mismatch)> = routes
        .map(|(name, matcher)| (name, matcher.mismatch(host, path, method)))
        .filter(|(_, miss)| !miss.reasons.is_empty())
        .collect();
    misses.sort_by_key(|(_, miss)| miss.reasons.len());
    misses.truncate(limit);
    misses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::MethodSet;

    fn matcher(host: Option<&str>, path: PathPattern, methods: &[&str]) -> RouteMatcher {
        RouteMatcher {
            host: host.map(str::to_owned),
            path,
            methods: if methods.is_empty() {
                MethodSet::any()
            } else {
                MethodSet::from_names(methods.iter().copied())
            },
        }
    }

    #[test]
    fn names_each_part_that_does_not_match() {
        let orders = matcher(
            Some("api.example.com"),
            PathPattern::Template("/orders/{id}".into()),
            &["GET"],
        );
        assert!(orders
            .mismatch("api.example.com", "/orders/7", "GET")
            .reasons
            .is_empty());
        let miss = orders.mismatch("www.example.com", "/orders", "DELETE");
        assert_eq!(miss.reasons.len(), 3, "{miss:?}");
        assert!(miss.reasons[0].contains("host `www.example.com`"));
        assert!(miss.reasons[1].contains("`/orders/{id}`"));
        assert!(miss.reasons[2].contains("method DELETE is not one of GET, HEAD"));
        let wildcard = matcher(Some("*.example.com"), PathPattern::Prefix("/".into()), &[]);
        assert!(wildcard
            .mismatch("a.example.com", "/x", "PUT")
            .reasons
            .is_empty());
        assert_eq!(
            wildcard.mismatch("example.com", "/x", "PUT").reasons.len(),
            1
        );
    }

    #[test]
    fn nearest_routes_come_first() {
        let a = matcher(None, PathPattern::Prefix("/admin/".into()), &["GET"]);
        let b = matcher(None, PathPattern::Prefix("/api/".into()), &["GET"]);
        let c = matcher(Some("x.test"), PathPattern::Prefix("/b/".into()), &["GET"]);
        let routes = [("a", &a), ("b", &b), ("c", &c)];
        let near = nearest(routes.iter().copied(), "h", "/api/x", "POST", 2);
        assert_eq!(near[0].0, "b");
        assert_eq!(near.len(), 2);
    }
}
