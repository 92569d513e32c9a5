//! Request → route: host, path and method matching over an index built at config load.
//!
//! Precedence, most specific first (and documented in the README):
//! 1. Routes whose `host` equals the request host, then `*.suffix` wildcard hosts (longest
//!    suffix first), then routes without a host.
//! 2. Within one host group: exact and templated paths (matchit: a static segment beats a
//!    `{param}`, which beats a `{*catch_all}`), then `path_prefix` routes, longest prefix first.
//! 3. Routes with the same pattern are tried in file order; the first whose methods include the
//!    request method wins.
//!
//! If some route matched the path but none the method, the answer is 405 with the union of the
//! methods that would have matched. Lookups allocate nothing but matchit's parameter list.

pub mod near_miss;
pub mod normalize;

pub use normalize::{normalize_host, normalize_path, HostRejection, PathRejection};

use std::collections::HashMap;

/// A compact set of HTTP methods (GET implies HEAD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodSet {
    standard: u16,
    extension: Vec<String>,
}

const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

impl MethodSet {
    /// Every method.
    pub fn any() -> Self {
        MethodSet {
            standard: u16::MAX,
            extension: Vec::new(),
        }
    }

    /// From configured names; names must be upper-case tokens (checked by the caller).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = MethodSet::default();
        for name in names {
            match STANDARD_METHODS.iter().position(|m| *m == name) {
                Some(bit) => set.standard |= 1 << bit,
                None => set.extension.push(name.to_owned()),
            }
        }
        if set.standard & 1 != 0 {
            set.standard |= 1 << 1; // GET implies HEAD
        }
        set
    }

    pub fn contains(&self, method: &str) -> bool {
        match STANDARD_METHODS.iter().position(|m| *m == method) {
            Some(bit) => self.standard & (1 << bit) != 0,
            None => self.standard == u16::MAX || self.extension.iter().any(|m| m == method),
        }
    }

    fn union_with(&mut self, other: &MethodSet) {
        self.standard |= other.standard;
        for method in &other.extension {
            if !self.extension.contains(method) {
                self.extension.push(method.clone());
            }
        }
    }

    /// The `Allow` header value.
    pub fn allow_header(&self) -> String {
        let mut names: Vec<&str> = STANDARD_METHODS
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.standard & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        names.extend(self.extension.iter().map(String::as_str));
        names.join(", ")
    }
}

/// How a route matches paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exact (`/status`) or templated (`/orders/{id}`, `/files/{*rest}`), matchit syntax.
    Template(String),
    /// Any path starting with this string.
    Prefix(String),
}

/// What the table needs to know about one route.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    pub host: Option<String>,
    pub path: PathPattern,
    pub methods: MethodSet,
}

/// The outcome of a lookup: an index into the snapshot's route list.
#[derive(Debug)]
pub enum RouteLookup<'k, 'v> {
    Found {
        route: usize,
        params: matchit::Params<'k, 'v>,
    },
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// The routes of one host group.
#[derive(Default)]
struct PathTable {
    templates: matchit::Router<Vec<usize>>,
    template_slots: HashMap<String, usize>,
    /// Route lists, indexed by the slot stored in `templates`.
    slots: Vec<Vec<usize>>,
    prefixes: HashMap<String, Vec<usize>>,
    /// Distinct prefix lengths, longest first.
    prefix_lengths: Vec<usize>,
}

/// The compiled routing index of one configuration snapshot.
#[derive(Default)]
pub struct RouteTable {
    exact_hosts: HashMap<String, PathTable>,
    /// `(".example.com", table)`, longest suffix first.
    wildcard_hosts: Vec<(String, PathTable)>,
    any_host: PathTable,
    methods: Vec<MethodSet>,
}

impl RouteTable {
    /// Builds the index; errors are `(route index, message)`.
    pub fn build(matchers: &[RouteMatcher]) -> Result<Self, Vec<(usize, String)>> {
        let mut table = RouteTable::default();
        let mut errors = Vec::new();
        for (index, matcher) in matchers.iter().enumerate() {
            table.methods.push(matcher.methods.clone());
            let group = match matcher.host.as_deref() {
                None => &mut table.any_host,
                Some(host) => match host.strip_prefix('*') {
                    Some(suffix) => {
                        let position = table.wildcard_hosts.iter().position(|(s, _)| s == suffix);
                        let position = position.unwrap_or_else(|| {
                            table
                                .wildcard_hosts
                                .push((suffix.to_owned(), PathTable::default()));
                            table.wildcard_hosts.len() - 1
                        });
                        &mut table.wildcard_hosts[position].1
                    }
                    None => table.exact_hosts.entry(host.to_owned()).or_default(),
                },
            };
            if let Err(error) = group.insert(index, &matcher.path) {
                errors.push((index, error.to_string()));
            }
        }
        table
            .wildcard_hosts
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        for group in table.groups_mut() {
            group.finish();
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    fn groups_mut(&mut self) -> impl Iterator<Item = &mut PathTable> {
        self.exact_hosts
            .values_mut()
            .chain(self.wildcard_hosts.iter_mut().map(|(_, t)| t))
            .chain(std::iter::once(&mut self.any_host))
    }

    /// Finds the route for a request. `host` is lower-case without port (may be empty).
    pub fn lookup<'k, 'v>(
        &'k self,
        host: &str,
        path: &'v str,
        method: &str,
    ) -> RouteLookup<'k, 'v> {
        let mut allow: Option<MethodSet> = None;
        let exact = self.exact_hosts.get(host);
        let wildcards = self
            .wildcard_hosts
            .iter()
            .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, table)| table);
        for group in exact
            .into_iter()
            .chain(wildcards)
            .chain(Some(&self.any_host))
        {
            if let Ok(found) = group.templates.at(path) {
                for &route in found.value {
                    if self.methods[route].contains(method) {
                        return RouteLookup::Found {
                            route,
                            params: found.params,
                        };
                    }
                    allow
                        .get_or_insert_with(MethodSet::default)
                        .union_with(&self.methods[route]);
                }
            }
            for &length in &group.prefix_lengths {
                let Some(candidate) = path.get(..length) else {
                    continue;
                };
                if let Some(routes) = group.prefixes.get(candidate) {
                    for &route in routes {
                        if self.methods[route].contains(method) {
                            return RouteLookup::Found {
                                route,
                                params: matchit::Params::new(),
                            };
                        }
                        allow
                            .get_or_insert_with(MethodSet::default)
                            .union_with(&self.methods[route]);
                    }
                }
            }
        }
        match allow {
            Some(methods) => RouteLookup::MethodNotAllowed {
                allow: methods.allow_header(),
            },
            None => RouteLookup::NotFound,
        }
    }
}

/// Why a route's path cannot join the index: matchit refuses the template (it conflicts with
/// another route's template, or its syntax is invalid).
#[derive(Debug, thiserror::Error)]
enum PathInsertError {
    #[error("path `{template}` cannot be routed: {error}")]
    Unroutable {
        template: String,
        error: matchit::InsertError,
    },
}

impl PathTable {
    fn insert(&mut self, route: usize, path: &PathPattern) -> Result<(), PathInsertError> {
        match path {
            PathPattern::Prefix(prefix) => {
                self.prefixes.entry(prefix.clone()).or_default().push(route);
                Ok(())
            }
            PathPattern::Template(template) => {
                if let Some(&slot) = self.template_slots.get(template) {
                    self.slots[slot].push(route);
                    return Ok(());
                }
                // matchit stores a placeholder; the real lists are patched in by `finish`.
                self.templates
                    .insert(template.as_str(), vec![self.slots.len()])
                    .map_err(|error| PathInsertError::Unroutable {
                        template: template.clone(),
                        error,
                    })?;
                self.template_slots
                    .insert(template.clone(), self.slots.len());
                self.slots.push(vec![route]);
                Ok(())
            }
        }
    }

    /// Replaces slot placeholders with route lists and orders prefix lengths.
    fn finish(&mut self) {
        let mut router = matchit::Router::new();
        for (template, slot) in &self.template_slots {
            // Re-inserting the same set of templates cannot conflict.
            let _ = router.insert(template.as_str(), self.slots[*slot].clone());
        }
        self.templates = router;
        let mut lengths: Vec<usize> = self.prefixes.keys().map(String::len).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        self.prefix_lengths = lengths;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod path_insert_error_tests {
    use super::*;

    #[test]
    fn path_insert_error_names_the_template() {
        let mut table = PathTable::default();
        table
            .insert(0, &PathPattern::Template("/orders/{id}".into()))
            .unwrap();
        let error = table
            .insert(1, &PathPattern::Template("/orders/{name}".into()))
            .unwrap_err();
        let mut router = matchit::Router::new();
        router.insert("/orders/{id}", ()).unwrap();
        let matchit_reason = router.insert("/orders/{name}", ()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("path `/orders/{{name}}` cannot be routed: {matchit_reason}")
        );
    }
}
