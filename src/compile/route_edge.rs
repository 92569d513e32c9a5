//! The edge policies of one route: its own `cors` and `client_ips`, or those of `defaults`
//! (validated once at `defaults.*`; a route's own are validated at its path).

use crate::config::file::{DefaultsFile, RouteFile};
use crate::config::PathError;
use crate::edge::{compile_client_ips, compile_cors, ClientIps, CorsPolicy};
use std::sync::Arc;

/// Validates the `defaults` edge policies (their errors are reported once, here).
pub fn check_default_edge(defaults: &DefaultsFile, errors: &mut Vec<PathError>) {
    if let Some(cors) = &defaults.cors {
        compile_cors(cors, None, "defaults.cors", errors);
    }
    if let Some(ips) = &defaults.client_ips {
        compile_client_ips(ips, "defaults.client_ips", errors);
    }
}

/// The route's CORS policy and client IP lists.
pub fn compile_route_edge(
    route: &RouteFile,
    defaults: &DefaultsFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> (Option<Arc<CorsPolicy>>, Option<Arc<ClientIps>>) {
    let methods = route.matcher.methods.as_deref();
    let cors = match (&route.cors, &defaults.cors) {
        (Some(cors), _) => compile_cors(cors, methods, &format!("{path}.cors"), errors),
        // Already reported at `defaults.cors` when invalid.
        (None, Some(cors)) => compile_cors(cors, methods, "defaults.cors", &mut Vec::new()),
        (None, None) => None,
    };
    let client_ips = match (&route.client_ips, &defaults.client_ips) {
        (Some(ips), _) => compile_client_ips(ips, &format!("{path}.client_ips"), errors),
        (None, Some(ips)) => compile_client_ips(ips, "defaults.client_ips", &mut Vec::new()),
        (None, None) => None,
    };
    (cors.map(Arc::new), client_ips.map(Arc::new))
}
