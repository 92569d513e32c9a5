//! Unit tests of the pure helpers of the forwarding phase.

use super::request_facts::{ip_text, push_ip};
use std::net::IpAddr;

#[test]
fn ipv4_text_matches_the_standard_formatting() {
    for text in [
        "0.0.0.0",
        "127.0.0.1",
        "10.20.30.40",
        "255.255.255.255",
        "1.100.9.99",
        "192.168.0.10",
    ] {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(ip_text(ip), text);
        assert_eq!(ip_text(ip), ip.to_string());
    }
}

#[test]
fn ipv6_text_uses_the_canonical_form() {
    let ip: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(ip_text(ip), "2001:db8::1");
}

#[test]
fn push_ip_appends_to_what_is_there() {
    let mut key = String::from("tenant|");
    push_ip(&mut key, "10.0.0.7".parse().unwrap());
    push_ip(&mut key, "::1".parse().unwrap());
    assert_eq!(key, "tenant|10.0.0.7::1");
}
