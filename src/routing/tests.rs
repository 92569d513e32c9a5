//! Unit tests of the routing index: precedence, methods, hosts and path normal form.

use super::*;

fn matcher(host: Option<&str>, path: PathPattern, methods: Option<&[&str]>) -> RouteMatcher {
    RouteMatcher {
        host: host.map(str::to_owned),
        path,
        methods: methods.map_or_else(MethodSet::any, |m| MethodSet::from_names(m.iter().copied())),
    }
}

fn template(path: &str) -> PathPattern {
    PathPattern::Template(path.to_owned())
}

fn prefix(path: &str) -> PathPattern {
    PathPattern::Prefix(path.to_owned())
}

fn found(table: &RouteTable, host: &str, path: &str, method: &str) -> Option<usize> {
    match table.lookup(host, path, method) {
        RouteLookup::Found { route, .. } => Some(route),
        _ => None,
    }
}

#[test]
fn exact_beats_template_beats_prefix() {
    let table = RouteTable::build(&[
        matcher(None, prefix("/orders"), None),
        matcher(None, template("/orders/{id}"), None),
        matcher(None, template("/orders/summary"), None),
        matcher(None, prefix("/orders/archive/"), None),
    ])
    .unwrap();
    assert_eq!(found(&table, "", "/orders/summary", "GET"), Some(2));
    assert_eq!(found(&table, "", "/orders/42", "GET"), Some(1));
    assert_eq!(found(&table, "", "/orders/42/items", "GET"), Some(0));
    assert_eq!(found(&table, "", "/orders/archive/2020", "GET"), Some(3));
    assert_eq!(found(&table, "", "/ordersXYZ", "GET"), Some(0));
    assert_eq!(found(&table, "", "/other", "GET"), None);
}

#[test]
fn template_params_are_captured() {
    let table = RouteTable::build(&[matcher(None, template("/orders/{id}"), None)]).unwrap();
    match table.lookup("", "/orders/42", "GET") {
        RouteLookup::Found { params, .. } => assert_eq!(params.get("id"), Some("42")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn methods_select_among_routes_of_one_path_in_file_order() {
    let table = RouteTable::build(&[
        matcher(None, template("/orders"), Some(&["GET"])),
        matcher(None, template("/orders"), Some(&["POST", "PUT"])),
        matcher(None, template("/orders"), Some(&["POST"])),
    ])
    .unwrap();
    assert_eq!(found(&table, "", "/orders", "GET"), Some(0));
    assert_eq!(
        found(&table, "", "/orders", "HEAD"),
        Some(0),
        "GET implies HEAD"
    );
    assert_eq!(found(&table, "", "/orders", "POST"), Some(1), "file order");
    match table.lookup("", "/orders", "DELETE") {
        RouteLookup::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, POST, PUT"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn wrong_method_falls_through_to_a_less_specific_route() {
    let table = RouteTable::build(&[
        matcher(None, template("/orders"), Some(&["POST"])),
        matcher(None, prefix("/"), Some(&["GET"])),
    ])
    .unwrap();
    assert_eq!(found(&table, "", "/orders", "GET"), Some(1));
    assert!(matches!(
        table.lookup("", "/orders", "PATCH"),
        RouteLookup::MethodNotAllowed { allow } if allow == "GET, HEAD, POST"
    ));
}

#[test]
fn host_specific_routes_win_over_any_host() {
    let table = RouteTable::build(&[
        matcher(None, template("/status"), None),
        matcher(Some("api.example.com"), template("/status"), None),
        matcher(Some("*.example.com"), template("/status"), None),
        matcher(Some("*.eu.example.com"), template("/status"), None),
    ])
    .unwrap();
    assert_eq!(found(&table, "api.example.com", "/status", "GET"), Some(1));
    assert_eq!(found(&table, "www.example.com", "/status", "GET"), Some(2));
    assert_eq!(found(&table, "a.eu.example.com", "/status", "GET"), Some(3));
    assert_eq!(found(&table, "example.com", "/status", "GET"), Some(0));
    assert_eq!(found(&table, "", "/status", "GET"), Some(0));
}

#[test]
fn host_route_falls_back_to_any_host_for_other_paths() {
    let table = RouteTable::build(&[
        matcher(Some("api.example.com"), template("/orders/{id}"), None),
        matcher(None, prefix("/"), None),
    ])
    .unwrap();
    assert_eq!(
        found(&table, "api.example.com", "/orders/1", "GET"),
        Some(0)
    );
    assert_eq!(found(&table, "api.example.com", "/else", "GET"), Some(1));
    assert_eq!(found(&table, "other", "/orders/1", "GET"), Some(1));
}

#[test]
fn conflicting_templates_are_reported() {
    let errors = RouteTable::build(&[
        matcher(None, template("/orders/{id}"), None),
        matcher(None, template("/orders/{name}"), None),
    ])
    .err()
    .expect("conflict");
    assert_eq!(errors[0].0, 1);
    assert!(errors[0].1.contains("/orders/{name}"));
}

#[test]
fn extension_methods_are_supported() {
    let table = RouteTable::build(&[matcher(None, template("/dav"), Some(&["PROPFIND"]))]).unwrap();
    assert_eq!(found(&table, "", "/dav", "PROPFIND"), Some(0));
    assert!(found(&table, "", "/dav", "GET").is_none());
}

#[test]
fn dot_segments_are_not_normal() {
    assert!(normalize_path("/orders/42").is_ok());
    assert!(normalize_path("/a.b/..c/.d").is_ok());
    assert!(normalize_path("/public/../admin").is_err());
    assert!(normalize_path("/public/%2e%2E/admin").is_err());
    assert!(normalize_path("/./x").is_err());
    assert!(normalize_path("/x/..").is_err());
    assert!(normalize_path("x").is_err());
}
