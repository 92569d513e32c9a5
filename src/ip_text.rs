//! IP addresses as text, IPv4 (nearly every request) without the formatting machinery: rate-limit
//! keys, `X-Forwarded-For` and the access log write addresses on every request.

use std::net::IpAddr;

/// An address as text; IPv4 (nearly every request) without the formatting machinery.
pub fn ip_text(ip: IpAddr) -> String {
    let mut text = String::with_capacity(15);
    push_ip(&mut text, ip);
    text
}

/// Appends `ip` as text to `out`, as [`ip_text`] writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = std::fmt::Write::write_fmt(out, format_args!("{ip}"));
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
