//! Client headers the gateway does not pass on to the upstream:
//! - hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it lists, `Keep-Alive`,
//!   `Proxy-Connection`, `TE` other than `trailers`, `Trailer`, `Proxy-Authorization`);
//! - underscore spellings of a header the gateway or the route sets (`X_User_Id` next to the
//!   route's `X-User-Id`: CGI, WSGI, Rack and PHP upstreams read both as `HTTP_X_USER_ID`);
//! - `X-Real-IP` and `Forwarded` from a peer that is not a trusted proxy (the gateway's own
//!   account of the client is `X-Forwarded-For`).
//!
//! One pass over the few header names a request has decides whether anything is to be done, so
//! the common request removes nothing and parses no name.

use super::facts::RequestFacts;
use crate::compile::Route;
use http::HeaderName;
use pingora::http::RequestHeader;

/// Headers the gateway itself sets on every forwarded request.
const GATEWAY_SET: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-real-ip",
    "forwarded",
];

/// What one pass over the header names found.
#[derive(Default)]
struct Found {
    hop_by_hop: bool,
    underscore: bool,
    proxy_identity: bool,
}

/// Removes from `upstream_request` what the upstream must not receive from the client.
pub fn client_headers(upstream_request: &mut RequestHeader, facts: &RequestFacts, route: &Route) {
    let mut found = Found::default();
    for name in upstream_request.headers.keys() {
        found.hop_by_hop |= is_hop_by_hop(name);
        found.underscore |= name.as_str().contains('_');
        found.proxy_identity |= name.as_str() == "x-real-ip" || name.as_str() == "forwarded";
    }
    if found.hop_by_hop {
        let connection_tokens: Vec<String> = upstream_request
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive")
            .collect();
        let upgrade = connection_tokens.iter().any(|t| t == "upgrade");
        remove_hop_by_hop(connection_tokens, upstream_request);
        if !upgrade {
            upstream_request.remove_header(&http::header::CONNECTION);
        }
    }
    if found.underscore {
        remove_underscore_spellings(upstream_request, route);
    }
    if found.proxy_identity && !facts.peer_trusted {
        upstream_request.remove_header("x-real-ip");
        upstream_request.remove_header("forwarded");
    }
}

/// Removes headers whose name, with `_` read as `-`, is one the gateway or the route sets.
fn remove_underscore_spellings(upstream_request: &mut RequestHeader, route: &Route) {
    let ops = &route.request_headers;
    let protected = |dashed: &str| {
        GATEWAY_SET.contains(&dashed)
            || ops.set.iter().any(|(name, _)| name.as_str() == dashed)
            || ops.append.iter().any(|(name, _)| name.as_str() == dashed)
            || ops.remove.iter().any(|name| name.as_str() == dashed)
            || route
                .claims_header
                .as_ref()
                .is_some_and(|name| name.as_str() == dashed)
    };
    let spoofed: Vec<HeaderName> = upstream_request
        .headers
        .keys()
        .filter(|name| name.as_str().contains('_') && protected(&name.as_str().replace('_', "-")))
        .cloned()
        .collect();
    for name in spoofed {
        upstream_request.remove_header(&name);
    }
}

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 5] = [
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == http::header::CONNECTION
        || name == http::header::TE
        || name == http::header::TRAILER
        || name == http::header::PROXY_AUTHORIZATION
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

fn remove_hop_by_hop(headers_names_in_connection: Vec<String>, request: &mut RequestHeader) {
    for name in headers_names_in_connection {
        if name != "upgrade" {
            request.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        if name == "te" {
            let trailers_only = request
                .headers
                .get("te")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
            if trailers_only {
                continue;
            }
        }
        request.remove_header(name);
    }
}
