//! Request paths and hosts in normal form, computed before routing so that the route that
//! authorizes a request is the route of the path and host the upstream sees.
//!
//! Paths follow RFC 3986 §6.2.2 the way Envoy's `normalize_path` + `merge_slashes` do:
//! percent-encoded unreserved characters are decoded (`/%61dmin` is `/admin`), other encodings
//! get upper-case hex, runs of `/` are merged, and dot segments are refused — also when encoded
//! (`%2e`) or followed by `;` parameters (`/x/..;/admin`, which Java servlet containers resolve as
//! `..`). An encoded `/` (`%2F`) stays encoded: it is data, not a separator.
//!
//! Hosts are lower-cased, lose one trailing dot and their port, and must be a DNS-style name,
//! an IPv4 address or a bracketed IPv6 address.
//!
//! Both return the input borrowed when it is already in normal form, so the common request
//! allocates nothing here.

use std::borrow::Cow;

/// Why a request path is refused (400 `path_not_normalized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("the path contains a `.` or `..` segment (also encoded, or before `;`)")]
    DotSegment,
    #[error("the path contains a `%` not followed by two hex digits")]
    BadPercentEncoding,
}

/// Why a request host is refused (400 `invalid_host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostRejection {
    #[error("the host is not a valid name, IPv4 address or bracketed IPv6 address")]
    Malformed,
    #[error("the port of the host is not a number from 0 to 65535")]
    BadPort,
    #[error("`Host` and `:authority` name different hosts")]
    Conflicting,
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Decodes unreserved percent-encodings and upper-cases the hex of the others.
fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, PathRejection> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let next = path[i..].find('%').map_or(bytes.len(), |n| i + n);
            out.push_str(&path[i..next]);
            i = next;
            continue;
        }
        let (Some(high), Some(low)) = (
            bytes.get(i + 1).copied().and_then(hex_value),
            bytes.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(PathRejection::BadPercentEncoding);
        };
        let byte = high * 16 + low;
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(high)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(low)]));
        }
        i += 3;
    }
    Ok(if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    })
}

/// Whether a segment is `.` or `..`, with or without `;` parameters.
fn is_dot_segment(segment: &str) -> bool {
    let name = segment.split(';').next().unwrap_or(segment);
    name == "." || name == ".."
}

/// The normal form of a request path (without its query).
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathRejection> {
    if !path.starts_with('/') {
        return Err(PathRejection::NotAbsolute);
    }
    let decoded = decode_unreserved(path)?;
    if decoded.split('/').any(is_dot_segment) {
        return Err(PathRejection::DotSegment);
    }
    if !decoded.contains("//") {
        return Ok(match decoded {
            Cow::Borrowed(_) => Cow::Borrowed(path),
            Cow::Owned(owned) => Cow::Owned(owned),
        });
    }
    let mut merged = String::with_capacity(decoded.len());
    let mut previous_slash = false;
    for c in decoded.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        merged.push(c);
    }
    Ok(Cow::Owned(merged))
}

/// The normal form of a `Host` or `:authority` value: the host name without port.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostRejection> {
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or(HostRejection::Malformed)?;
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| HostRejection::Malformed)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(HostRejection::Malformed)?),
        };
        (&raw[..address.len() + 2], port)
    } else {
        match raw.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        }
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65_535);
        if !valid {
            return Err(HostRejection::BadPort);
        }
    }
    if name.starts_with('[') {
        return Ok(lowercase(name));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(HostRejection::Malformed);
    }
    Ok(lowercase(name))
}

fn lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
