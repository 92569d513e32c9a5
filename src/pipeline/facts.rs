//! What is read off the client's request once, at the start of `request_filter`, and used by
//! every later step: the size of its head, its host, the socket peer, the **one** client address
//! (behind trusted proxies: the right-most `X-Forwarded-For` entry that is not one of them), and
//! the template context that header and body templates render with.

use crate::ip_text::ip_text;
use crate::request_id::RequestId;
use crate::transform::TemplateContext;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::net::IpAddr;

/// Facts of one request, computed once.
#[derive(Debug, Default)]
pub struct RequestFacts {
    /// Lower-case host without port, from `:authority` or `Host` (empty when there is none).
    pub host: String,
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
        let request = session.req_header();
        let peer_ip = peer_ip(session);
        let peer_trusted =
            peer_ip.is_some_and(|ip| trusted_proxies.iter().any(|net| net.contains(&ip)));
        let client_ip = match peer_ip {
            Some(peer) if peer_trusted => Some(forwarded_client(request, peer, trusted_proxies)),
            other => other,
        };
        RequestFacts {
            host: request_host(request).into_owned(),
            head_size: request_head_size(request),
            peer_ip,
            peer_trusted,
            client_ip,
            client_ip_text: client_ip.map(ip_text).unwrap_or_default(),
            tls: is_tls(session),
        }
    }

    /// The context templates render with.
    pub fn template_context<'a>(
        &'a self,
        request: &'a RequestHeader,
        request_id: &'a RequestId,
        claims: Option<&'a serde_json::Value>,
    ) -> TemplateContext<'a> {
        TemplateContext {
            claims,
            request_id: request_id.as_str(),
            client_ip: &self.client_ip_text,
            method: request.method.as_str(),
            host: &self.host,
            path: request.uri.path(),
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

/// The request's host, lower-case, without port: `:authority` for HTTP/2, else `Host`.
fn request_host(request: &RequestHeader) -> Cow<'_, str> {
    let raw = request.uri.host().or_else(|| {
        request
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
    });
    let Some(raw) = raw else {
        return Cow::Borrowed("");
    };
    let host = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map_or(raw, |(host, _)| host)
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The client's IP address as seen on the socket.
fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Behind a trusted `peer`: the right-most address of `X-Forwarded-For` that is not itself a
/// trusted proxy (the peer when every entry is trusted or none parses).
fn forwarded_client(request: &RequestHeader, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let entries: Vec<IpAddr> = request
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect();
    entries
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
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
    fn host_is_lower_case_without_port() {
        assert_eq!(
            request_host(&request(&[("host", "API.Example.com:8443")])),
            "api.example.com"
        );
        assert_eq!(request_host(&request(&[("host", "[::1]:80")])), "[::1]");
        assert_eq!(request_host(&request(&[])), "");
    }
}
