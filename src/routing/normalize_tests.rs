//! Path and host normalization: the confusions it closes, and properties over generated input
//! (normalizing twice changes nothing; a normal path has no `//`, no dot segment and no encoded
//! unreserved character; nothing panics).

use super::*;
use proptest::prelude::*;

#[test]
fn paths_that_reach_another_route_are_normalized_or_refused() {
    assert_eq!(normalize_path("//admin/x").unwrap(), "/admin/x");
    assert_eq!(normalize_path("/%61dmin/x").unwrap(), "/admin/x");
    assert_eq!(normalize_path("/a//b///c/").unwrap(), "/a/b/c/");
    assert_eq!(normalize_path("/a%2fb").unwrap(), "/a%2Fb");
    assert_eq!(normalize_path("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    for refused in [
        "/x/..;/admin/x",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/./x",
        "/x/.;a=b",
        "/x/%2E",
    ] {
        assert_eq!(
            normalize_path(refused),
            Err(PathRejection::DotSegment),
            "{refused}"
        );
    }
    assert_eq!(normalize_path("x/y"), Err(PathRejection::NotAbsolute));
    assert_eq!(
        normalize_path("/a%2"),
        Err(PathRejection::BadPercentEncoding)
    );
    assert_eq!(
        normalize_path("/a%zz"),
        Err(PathRejection::BadPercentEncoding)
    );
}

#[test]
fn normal_paths_are_borrowed() {
    for path in [
        "/",
        "/orders/42",
        "/a/b/",
        "/x/..a/.b/a..",
        "/a%2Fb",
        "/a;b=c/d",
    ] {
        assert!(
            matches!(normalize_path(path), Ok(Cow::Borrowed(p)) if p == path),
            "{path}"
        );
    }
}

#[test]
fn hosts_are_lower_case_without_port_or_trailing_dot() {
    assert_eq!(
        normalize_host("Secure.Example.com.").unwrap(),
        "secure.example.com"
    );
    assert_eq!(
        normalize_host("api.example.com:8443").unwrap(),
        "api.example.com"
    );
    assert_eq!(normalize_host("10.0.0.1:80").unwrap(), "10.0.0.1");
    assert_eq!(normalize_host("[::1]:8080").unwrap(), "[::1]");
    assert_eq!(normalize_host("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
    assert!(matches!(
        normalize_host("api.example.com"),
        Ok(Cow::Borrowed(_))
    ));
    for refused in [
        "a b.com",
        "a,b.com",
        "",
        ".",
        "a..b",
        "[::1",
        "[zz]",
        "a.com:x",
        "a.com:99999",
        "a:b:c",
        "a.com..",
        "é.com",
    ] {
        assert!(normalize_host(refused).is_err(), "{refused:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalizing_a_path_twice_changes_nothing(path in "/[a-zA-Z0-9%./;_~-]{0,40}") {
        if let Ok(once) = normalize_path(&path) {
            let twice = normalize_path(&once).expect("a normal path stays valid");
            prop_assert_eq!(&twice, &once);
            prop_assert!(!once.contains("//"));
            prop_assert!(!once.split('/').any(is_dot_segment));
            let bytes = once.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'%' {
                    let byte = hex_value(bytes[i + 1]).unwrap() * 16 + hex_value(bytes[i + 2]).unwrap();
                    prop_assert!(!is_unreserved(byte), "{} keeps an encoded unreserved byte", once);
                }
            }
        }
    }

    #[test]
    fn any_path_or_host_is_answered_without_panic(text in "\\PC{0,60}") {
        let _ = normalize_path(&text);
        let _ = normalize_host(&text);
    }

    #[test]
    fn normalizing_a_host_twice_changes_nothing(host in "[a-zA-Z0-9.:_\\[\\]-]{0,30}") {
        if let Ok(once) = normalize_host(&host) {
            prop_assert_eq!(normalize_host(&once).expect("a normal host stays valid"), once.clone());
        }
    }
}
