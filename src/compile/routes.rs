//! Compiles the `routes` section: matchers into the routing index, and each route's upstream,
//! auth policy, rate-limit policies and header operations, with every cross-reference checked.

use super::route_auth::{compile_auth, RouteAuth};
use crate::config::diagnostics::suggest;
use crate::config::file::{FileConfig, RouteFile, StringOrList};
use crate::config::PathError;
use crate::ratelimit::{ConcurrencyPolicy, RateLimitPolicy};
use crate::routing::{MethodSet, PathPattern, RouteMatcher, RouteTable};
use crate::transform::{HeaderOps, JsonTransform};
use crate::upstream::Upstream;
use std::collections::HashSet;
use std::sync::Arc;

/// One compiled route.
pub struct Route {
    pub name: String,
    /// The route's host, path and methods (the table indexes them; `explain` reads them to
    /// say why a route did not match).
    pub matcher: RouteMatcher,
    /// Where the route forwards to.
    pub upstream: Arc<Upstream>,
    /// The prefix removed before forwarding, when `strip_prefix` is on.
    pub strip_prefix: Option<String>,
    pub auth: RouteAuth,
    /// Indexes into the snapshot's rate-limit policies.
    pub rate_limits: Vec<usize>,
    /// Indexes into the snapshot's concurrency policies (`concurrency: N`).
    pub concurrency_limits: Vec<usize>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub request_json: Option<JsonTransform>,
    pub response_json: Option<JsonTransform>,
    /// Upstream path rewrite by regex (applied after `strip_prefix`).
    pub rewrite_path: Option<(regex::Regex, String)>,
    /// Query parameters added (templates) and removed on the way upstream.
    pub add_query: Vec<(String, crate::transform::Template)>,
    pub remove_query: Vec<String>,
    /// Forward the verified claims as one base64url JSON header of this name.
    pub claims_header: Option<http::HeaderName>,
    /// Send a gateway-signed JWT about the caller in this header.
    pub identity_assertion: Option<http::HeaderName>,
    /// CORS (the route's or `defaults.cors`).
    pub cors: Option<Arc<crate::edge::CorsPolicy>>,
    /// Client IP lists (the route's or `defaults.client_ips`).
    pub client_ips: Option<Arc<crate::edge::ClientIps>>,
    /// The route's request metrics, their labels resolved once.
    pub metrics: crate::metrics::RouteMetrics,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("upstream", &self.upstream.settings.name)
            .field("auth", &self.auth)
            .field("rate_limits", &self.rate_limits)
            .field("concurrency_limits", &self.concurrency_limits)
            .finish_non_exhaustive()
    }
}

/// Compiles every route and builds the routing index.
pub fn compile_routes(
    file: &FileConfig,
    upstreams: &[Arc<Upstream>],
    provider_names: &[String],
    rate_limits: &[RateLimitPolicy],
    concurrency: &[ConcurrencyPolicy],
    errors: &mut Vec<PathError>,
) -> (Vec<Arc<Route>>, RouteTable) {
    super::route_edge::check_default_edge(&file.defaults, errors);
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    let mut matchers = Vec::new();
    let mut route_paths = Vec::new();
    for (index, route) in file.routes.iter().enumerate() {
        let path = format!("routes[{index}]");
        if !names.insert(route.name.as_str()) {
            errors.push(PathError::new(
                format!("{path}.name"),
                format!("duplicate route name `{}`", route.name),
            ));
        }
        let Some(matcher) = compile_matcher(route, &path, errors) else {
            continue;
        };
        let upstream = upstreams
            .iter()
            .find(|u| u.settings.name == route.upstream)
            .cloned();
        if upstream.is_none() {
            let known: Vec<&str> = upstreams.iter().map(|u| u.settings.name.as_str()).collect();
            errors.push(PathError::new(
                format!("{path}.upstream"),
                format!(
                    "unknown upstream `{}`{}",
                    route.upstream,
                    suggest(&route.upstream, &known)
                ),
            ));
        }
        let auth_file = route.auth.as_ref().or(file.defaults.auth.as_ref());
        let auth = match auth_file {
            Some(auth) => compile_auth(auth, provider_names, &format!("{path}.auth"), errors),
            None => {
                errors.push(PathError::new(
                    path.clone(),
                    "route has no `auth`: say `auth: none` for an anonymous route, or set `defaults.auth` (routes are denied by default)",
                ));
                RouteAuth::Anonymous
            }
        };
        let rate_limit_names = route
            .rate_limit
            .as_ref()
            .map(|r| r.to_vec())
            .unwrap_or_default();
        let mut rate_limit_indexes = Vec::new();
        let mut concurrency_indexes = Vec::new();
        for (i, name) in rate_limit_names.iter().enumerate() {
            if let Some(found) = rate_limits.iter().position(|p| &p.name == name) {
                rate_limit_indexes.push(found);
            } else if let Some(found) = concurrency.iter().position(|p| &p.name == name) {
                concurrency_indexes.push(found);
            } else {
                let known: Vec<&str> = rate_limits
                    .iter()
                    .map(|p| p.name.as_str())
                    .chain(concurrency.iter().map(|p| p.name.as_str()))
                    .collect();
                let item = if route
                    .rate_limit
                    .as_ref()
                    .is_some_and(|r| matches!(r, StringOrList::One(_)))
                {
                    format!("{path}.rate_limit")
                } else {
                    format!("{path}.rate_limit[{i}]")
                };
                errors.push(PathError::new(
                    item,
                    format!(
                        "unknown rate-limit policy `{name}`{}",
                        suggest(name, &known)
                    ),
                ));
            }
        }
        let request_headers = route.request.as_ref().map_or_else(HeaderOps::default, |r| {
            HeaderOps::compile(
                &r.set_headers,
                &r.append_headers,
                &r.remove_headers,
                &format!("{path}.request"),
                errors,
            )
        });
        let response_headers = route
            .response
            .as_ref()
            .map_or_else(HeaderOps::default, |r| {
                HeaderOps::compile(
                    &r.set_headers,
                    &r.append_headers,
                    &r.remove_headers,
                    &format!("{path}.response"),
                    errors,
                )
            });
        let request_json = route
            .request
            .as_ref()
            .and_then(|r| r.json.as_ref())
            .map(|json| compile_json(json, &format!("{path}.request.json"), errors));
        let response_json = route
            .response
            .as_ref()
            .and_then(|r| r.json.as_ref())
            .map(|json| compile_json(json, &format!("{path}.response.json"), errors));
        let (cors, client_ips) =
            super::route_edge::compile_route_edge(route, &file.defaults, &path, errors);
        let identity_assertion = route
            .request
            .as_ref()
            .and_then(|r| r.identity_assertion.as_ref())
            .and_then(|name| {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| {
                        errors.push(PathError::new(
                            format!("{path}.request.identity_assertion"),
                            format!("`{name}` is not a header name"),
                        ))
                    })
                    .ok()
            });
        let request_file = route.request.as_ref();
        let rewrite_path = request_file
            .and_then(|r| r.rewrite_path.as_ref())
            .and_then(|rewrite| {
                regex::Regex::new(&rewrite.pattern)
                    .map(|regex| (regex, rewrite.replacement.clone()))
                    .map_err(|e| {
                        errors.push(PathError::new(
                            format!("{path}.request.rewrite_path.pattern"),
                            format!("invalid regex: {e}"),
                        ))
                    })
                    .ok()
            });
        let add_query = request_file
            .map(|r| {
                r.add_query
                    .iter()
                    .filter_map(
                        |(name, value)| match crate::transform::Template::parse(value) {
                            Ok(template) => Some((name.clone(), template)),
                            Err(e) => {
                                errors.push(PathError::new(
                                    format!("{path}.request.add_query.{name}"),
                                    e.to_string(),
                                ));
                                None
                            }
                        },
                    )
                    .collect()
            })
            .unwrap_or_default();
        let remove_query = request_file
            .map(|r| r.remove_query.clone())
            .unwrap_or_default();
        let claims_header = request_file
            .and_then(|r| r.claims_header.as_ref())
            .and_then(|name| {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| {
                        errors.push(PathError::new(
                            format!("{path}.request.claims_header"),
                            format!("`{name}` is not a valid header name"),
                        ))
                    })
                    .ok()
            });
        let strip_prefix = match (&matcher.path, route.strip_prefix) {
            (PathPattern::Prefix(prefix), Some(true)) => {
                Some(prefix.trim_end_matches('/').to_owned())
            }
            (_, Some(true)) => {
                errors.push(PathError::new(
                    format!("{path}.strip_prefix"),
                    "`strip_prefix: true` needs `match.path_prefix`",
                ));
                None
            }
            _ => None,
        };
        let Some(upstream) = upstream else {
            continue;
        };
        matchers.push(matcher.clone());
        route_paths.push(path);
        routes.push(Arc::new(Route {
            metrics: crate::metrics::RouteMetrics::new(&route.name),
            name: route.name.clone(),
            matcher,
            upstream,
            strip_prefix,
            auth,
            rate_limits: rate_limit_indexes,
            concurrency_limits: concurrency_indexes,
            request_headers,
            response_headers,
            request_json,
            response_json,
            rewrite_path,
            add_query,
            remove_query,
            claims_header,
            cors,
            client_ips,
            identity_assertion,
        }));
    }
    let table = RouteTable::build(&matchers).unwrap_or_else(|conflicts| {
        for (index, message) in conflicts {
            errors.push(PathError::new(
                format!("{}.match.path", route_paths[index]),
                message,
            ));
        }
        RouteTable::default()
    });
    (routes, table)
}

fn compile_matcher(
    route: &RouteFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<RouteMatcher> {
    let matcher = &route.matcher;
    let pattern = match (&matcher.path, &matcher.path_prefix) {
        (Some(exact), None) => PathPattern::Template(exact.clone()),
        (None, Some(prefix)) => PathPattern::Prefix(prefix.clone()),
        _ => {
            errors.push(PathError::new(
                format!("{path}.match"),
                "give exactly one of `path` (exact or template like `/orders/{id}`) or `path_prefix`",
            ));
            return None;
        }
    };
    let (PathPattern::Template(text) | PathPattern::Prefix(text)) = &pattern;
    if !text.starts_with('/') {
        errors.push(PathError::new(
            format!("{path}.match"),
            format!("path `{text}` must start with `/`"),
        ));
    }
    let methods = match &matcher.methods {
        None => MethodSet::any(),
        Some(methods) => {
            for (i, method) in methods.iter().enumerate() {
                let valid = !method.is_empty()
                    && method
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                if !valid {
                    errors.push(PathError::new(
                        format!("{path}.match.methods[{i}]"),
                        format!("`{method}` is not an upper-case HTTP method such as GET"),
                    ));
                }
            }
            MethodSet::from_names(methods.iter().map(String::as_str))
        }
    };
    let host = matcher.host.as_ref().map(|h| h.to_ascii_lowercase());
    if let Some(host) = &host {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.is_empty() || bare.contains(['*', '/', ':', ' ']) {
            errors.push(PathError::new(
                format!("{path}.match.host"),
                format!("`{host}` is not a host name or `*.suffix` (no port)"),
            ));
        }
    }
    Some(RouteMatcher {
        host,
        path: pattern,
        methods,
    })
}

/// The largest body a JSON transform buffers: 1 byte to 64 MiB (default 1 MiB).
const MAX_BODY_RANGE: std::ops::RangeInclusive<u64> = 1..=64 * 1024 * 1024;

/// Compiles a JSON transform after checking its `max_body` against [`MAX_BODY_RANGE`].
fn compile_json(
    json: &crate::config::route_file::JsonTransformFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> JsonTransform {
    crate::config::bounds::size_within(
        json.max_body,
        1 << 20,
        MAX_BODY_RANGE,
        &format!("{path}.max_body"),
        errors,
    );
    JsonTransform::compile(json, path, errors)
}
