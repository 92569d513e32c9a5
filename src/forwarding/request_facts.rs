//! Facts read off the client's request: the size of its head, its host, the peer's address
//! and the client's address behind trusted proxies.

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::net::IpAddr;

/// Request line plus headers, in bytes, as the client sent them (approximately: separators
/// counted as in HTTP/1.1).
pub fn request_head_size(request: &RequestHeader) -> usize {
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
pub fn request_host(request: &RequestHeader) -> Cow<'_, str> {
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

/// The client's IP address as seen on the socket.
pub fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The client's address for rate limiting: the socket peer, or — only when the peer is a
/// trusted proxy — the right-most address of `X-Forwarded-For` that is not itself trusted.
pub fn client_ip(session: &Session, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer_ip(session)?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

pub fn is_tls(session: &Session) -> bool {
    session
        .digest()
        .is_some_and(|digest| digest.ssl_digest.is_some())
}
