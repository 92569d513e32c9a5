//! What is read off the client's request once, at the start of `request_filter`, and used by
//! every later step: the size of its head, its host, the socket peer, the **one** client address
//! (behind trusted proxies: the right-most `X-Forwarded-For` entry that is not one of them), and
//! the template context that header and body templates render with. The path and host are
//! normalized here ([`crate::routing::normalize`]); a path or host that cannot be is kept as a
//! rejection for the guard step to refuse.

use crate::ip_text::ip_text;
use crate::request_id::RequestId;
use crate::routing::{normalize_host, normalize_path, HostRejection, PathRejection};
use crate::transform::TemplateContext;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::net::IpAddr;

/// Facts of one request, computed once.
#[derive(Debug, Default)]
pub struct RequestFacts {
    /// The normalized host (lower case, no port, no trailing dot), from `:authority` or `Host`
    /// (empty when there is none).
    pub host: String,
    /// The `Host` to send upstream when normalizing changed the client's (case, trailing dot).
    pub upstream_host: Option<String>,
    /// Why the host is refused, if it is.
    pub host_rejection: Option<HostRejection>,
    /// The normalized path when it differs from the client's (`None`: the client's is normal).
    pub normalized_path: Option<String>,
    /// Why the path is refused, if it is.
    pub path_rejection: Option<PathRejection>,
    /// Request line plus headers, in bytes.
    pub head_size: usize,
    /// The socket peer.
    pub peer_ip: Option<IpAddr>,
    /// Whether the socket peer is one of `trusted_proxies`.
    pub peer_trusted: bool,
    /// The client: the peer, or the address a trusted proxy forwarded for. Rate-limit keys, the
    /// access log's `client_ip` and `{request.client_ip}` all read this one.
    pub client_ip: Option<IpAddr>,
    /// `client_ip` as text (empty when unknown).
    pub client_ip_text: String,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

impl RequestFacts {
    /// Reads the facts of the session's request.
    pub fn read(session: &Session, trusted_proxies: &[ipnet::IpNet]) -> Self {
        Self::read_as(session, session.req_header(), trusted_proxies)
    }

    /// The facts of `request` as if the session's peer had sent it (the original request of a
    /// forward-auth check, rebuilt from the proxy's headers).
    pub fn read_as(
        session: &Session,
        request: &RequestHeader,
        trusted_proxies: &[ipnet::IpNet],
    ) -> Self {
        Self::of(request, peer_ip(session), is_tls(session), trusted_proxies)
    }

    /// The facts of `request` from `peer_ip`, over TLS or not.
    pub fn of(
        request: &RequestHeader,
        peer_ip: Option<IpAddr>,
        tls: bool,
        trusted_proxies: &[ipnet::IpNet],
    ) -> Self {
        let peer_trusted =
            peer_ip.is_some_and(|ip| trusted_proxies.iter().any(|net| net.contains(&ip)));
        let client_ip = match peer_ip {
            Some(peer) if peer_trusted => Some(forwarded_client(request, peer, trusted_proxies)),
            other => other,
        };
        let (host, upstream_host, host_rejection) = match request_host(request) {
            Ok(Some((normalized, rewritten))) => (normalized, rewritten, None),
            Ok(None) => (String::new(), None, None),
            Err(rejection) => (String::new(), None, Some(rejection)),
        };
        let (normalized_path, path_rejection) = match normalize_path(request.uri.path()) {
            Ok(Cow::Borrowed(_)) => (None, None),
            Ok(Cow::Owned(normalized)) => (Some(normalized), None),
            Err(rejection) => (None, Some(rejection)),
        };
        RequestFacts {
            host,
            upstream_host,
            host_rejection,
            normalized_path,
            path_rejection,
            head_size: request_head_size(request),
            peer_ip,
            peer_trusted,
            client_ip,
            client_ip_text: client_ip.map(ip_text).unwrap_or_default(),
            tls,
        }
    }

    /// The path routes match and the upstream receives: the normalized one.
    pub fn path<'a>(&'a self, request: &'a RequestHeader) -> &'a str {
        self.normalized_path
            .as_deref()
            .unwrap_or_else(|| request.uri.path())
    }

    /// The context templates render with.
    pub fn template_context<'a>(
        &'a self,
        request: &'a RequestHeader,
        request_id: &'a RequestId,
        claims: Option<&'a crate::policy::Claims>,
    ) -> TemplateContext<'a> {
        TemplateContext {
            claims,
            request_id: request_id.as_str(),
            client_ip: &self.client_ip_text,
            method: request.method.as_str(),
            host: &self.host,
            path: self.path(request),
        }
    }
}

/// Request line plus headers, in bytes, as the client sent them (approximately: separators
/// counted as in HTTP/1.1).
fn request_head_size(request: &RequestHeader) -> usize {
    let target = request
        .uri
        .path_and_query()
        .map_or(1, |pq| pq.as_str().len());
    let line = request.method.as_str().len() + target + 12;
    request.headers.iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + 4
    })
}

/// The request's normalized host and, when normalizing changed it, the `Host` value to send
/// upstream; `None` when the request names no host. `:authority` (HTTP/2) and `Host` must agree.
fn request_host(
    request: &RequestHeader,
) -> Result<Option<(String, Option<String>)>, HostRejection> {
    let mut host_headers = request.headers.get_all(http::header::HOST).iter();
    let host_header = match (host_headers.next(), host_headers.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value.to_str().map_err(|_| HostRejection::Malformed)?),
        (Some(_), Some(_)) => return Err(HostRejection::Malformed),
    };
    let authority = request.uri.authority().map(|a| a.as_str());
    let Some(raw) = authority.or(host_header) else {
        return Ok(None);
    };
    let normalized = normalize_host(raw)?;
    if let (Some(_), Some(header)) = (authority, host_header) {
        if normalize_host(header)? != normalized {
            return Err(HostRejection::Conflicting);
        }
    }
    let rewritten = match &normalized {
        Cow::Borrowed(_) => None,
        Cow::Owned(name) => Some(format!("{name}{}", port_suffix(raw))),
    };
    Ok(Some((normalized.into_owned(), rewritten)))
}

/// `:PORT` of a host value, or empty.
fn port_suffix(raw: &str) -> &str {
    let after_name = match raw.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(raw.len(), |end| end + 2),
        None => raw.find(':').unwrap_or(raw.len()),
    };
    &raw[after_name.min(raw.len())..]
}

/// The client's IP address as seen on the socket.
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Behind a trusted `peer`: the right-most address of `X-Forwarded-For` that is not itself a
/// trusted proxy. Entries may carry a port (`203.0.113.9:4711`, `[2001:db8::1]:80`). Walking
/// from the right, an entry that is not an address ends the walk with the peer as the client,
/// never an entry left of the garbage that a client could have written; so does a list of
/// trusted proxies only.
fn forwarded_client(request: &RequestHeader, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let entries: Vec<&str> = request
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.into_iter().rev() {
        match forwarded_address(entry) {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

/// An `X-Forwarded-For` entry as an address: `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

fn is_tls(session: &Session) -> bool {
    session
        .digest()
        .is_some_and(|digest| digest.ssl_digest.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", b"/orders/1", None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_entry() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let spoofed_then_real = request(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(
            forwarded_client(&spoofed_then_real, peer, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let split_over_headers = request(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            forwarded_client(&split_over_headers, peer, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn without_a_usable_entry_the_client_is_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        for headers in [
            vec![],
            vec![("x-forwarded-for", "not-an-address, also bad")],
            vec![("x-forwarded-for", "10.1.1.1, 10.2.2.2")],
        ] {
            assert_eq!(forwarded_client(&request(&headers), peer, &trusted), peer);
        }
    }

    #[test]
    fn host_is_normalized_and_rewritten_only_when_it_changed() {
        let host = |headers: &[(&str, &str)]| request_host(&request(headers));
        assert_eq!(
            host(&[("host", "API.Example.com.:8443")]),
            Ok(Some((
                "api.example.com".into(),
                Some("api.example.com:8443".into())
            )))
        );
        assert_eq!(
            host(&[("host", "[::1]:80")]),
            Ok(Some(("[::1]".into(), None)))
        );
        assert_eq!(host(&[]), Ok(None));
        assert_eq!(host(&[("host", "a b")]), Err(HostRejection::Malformed));
        assert_eq!(
            host(&[("host", "a.com"), ("host", "b.com")]),
            Err(HostRejection::Malformed)
        );
    }

    #[test]
    fn forwarded_entries_with_ports_are_addresses_and_garbage_ends_the_walk() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let with_port = request(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9:4711, 10.0.0.7")]);
        assert_eq!(
            forwarded_client(&with_port, peer, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let v6 = request(&[("x-forwarded-for", "[2001:db8::1]:80")]);
        assert_eq!(
            forwarded_client(&v6, peer, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let spoof_left_of_garbage = request(&[("x-forwarded-for", "1.2.3.4, junk, 10.0.0.7")]);
        assert_eq!(
            forwarded_client(&spoof_left_of_garbage, peer, &trusted),
            peer
        );
    }

    #[test]
    fn the_port_suffix_is_kept_for_the_upstream_host() {
        assert_eq!(port_suffix("a.com:8080"), ":8080");
        assert_eq!(port_suffix("a.com"), "");
        assert_eq!(port_suffix("[::1]:80"), ":80");
        assert_eq!(port_suffix("[::1]"), "");
    }
}
