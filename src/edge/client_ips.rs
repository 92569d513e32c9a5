//! Client IP lists (`client_ips: { allow: [...], deny: [...] }` on a route or in `defaults`):
//! checked on the one client address the gateway trusts — the socket peer, or what a trusted
//! proxy forwarded (see `trusted_proxies`). A denied address is refused even when also allowed;
//! with an `allow` list, everything else is refused.

use crate::config::file::ClientIpsFile;
use crate::config::PathError;
use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a plain address (a /32 or /128).
pub fn parse_cidr(text: &str, path: &str, errors: &mut Vec<PathError>) -> Option<IpNet> {
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            errors.push(PathError::new(
                path,
                format!("`{text}` is not an IP address or CIDR"),
            ))
        })
        .ok()
}

/// The compiled lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIps {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Compiles `client_ips` at `path`.
pub fn compile_client_ips(
    file: &ClientIpsFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<ClientIps> {
    let before = errors.len();
    let parse = |list: &[String], key: &str, errors: &mut Vec<PathError>| -> Vec<IpNet> {
        list.iter()
            .enumerate()
            .filter_map(|(i, text)| parse_cidr(text.trim(), &format!("{path}.{key}[{i}]"), errors))
            .collect()
    };
    let allow = parse(&file.allow, "allow", errors);
    let deny = parse(&file.deny, "deny", errors);
    if file.allow.is_empty() && file.deny.is_empty() {
        errors.push(PathError::new(path, "give `allow`, `deny` or both"));
    }
    (errors.len() == before).then_some(ClientIps { allow, deny })
}

impl ClientIps {
    /// Whether `client` may use the route. An address the gateway could not learn (no peer
    /// address) is refused when any list is set.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        let Some(client) = client.map(canonical) else {
            return false;
        };
        if self.deny.iter().any(|net| net.contains(&client)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&client))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers)
/// as the IPv4 address it is, so that IPv4 lists apply to it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(allow: &[&str], deny: &[&str]) -> ClientIps {
        let file = ClientIpsFile {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        compile_client_ips(&file, "client_ips", &mut Vec::new()).unwrap()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn allow_and_deny_with_ipv4_and_ipv6() {
        let ips = lists(
            &["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"],
            &["10.9.0.0/16"],
        );
        assert!(ips.admits(ip("10.1.2.3")));
        assert!(ips.admits(ip("192.0.2.7")));
        assert!(!ips.admits(ip("192.0.2.8")));
        assert!(!ips.admits(ip("10.9.1.1")), "deny wins over allow");
        assert!(ips.admits(ip("2001:db8::1")));
        assert!(!ips.admits(ip("2001:db9::1")));
        assert!(
            ips.admits(ip("::ffff:10.1.2.3")),
            "IPv4-mapped IPv6 is IPv4"
        );
        assert!(!ips.admits(None));
        let deny_only = lists(&[], &["203.0.113.0/24"]);
        assert!(deny_only.admits(ip("198.51.100.1")));
        assert!(!deny_only.admits(ip("203.0.113.9")));
    }

    #[test]
    fn bad_entries_are_located() {
        let file = ClientIpsFile {
            allow: vec!["10.0.0.0/33".into(), "example.com".into()],
            deny: vec![],
        };
        let mut errors = Vec::new();
        assert!(compile_client_ips(&file, "routes[0].client_ips", &mut errors).is_none());
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1].path, "routes[0].client_ips.allow[1]");
    }
}
