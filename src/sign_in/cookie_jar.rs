//! Reading and writing the gateway's cookies: one value per name across the request's `Cookie`
//! headers, values too large for one cookie split into numbered chunks and put back together,
//! `Set-Cookie` values with the attributes a session cookie needs (`Path=/; HttpOnly; Secure;
//! SameSite=Lax`), and a `Cookie` header with the gateway's cookies taken out for the upstream.
//!
//! A value of at most [`CHUNK_LIMIT`] bytes is stored as is under `name`. A larger one is cut into
//! `N` parts: `name` holds `N.` and the first part, `name_1` … `name_{N-1}` the rest. Sealed
//! values are base64url, so the `.` cannot be part of an unchunked value.

/// The largest value put into one cookie: browsers keep at least 4096 bytes per cookie,
/// name and attributes included.
pub const CHUNK_LIMIT: usize = 3800;
/// The most chunks one value may take (browsers keep at least 50 cookies per domain).
pub const MAX_CHUNKS: usize = 16;

/// How the gateway's cookies are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSettings {
    /// Add `Secure` (off only for a plain-HTTP development listener).
    pub secure: bool,
}

/// A value needs more than [`MAX_CHUNKS`] cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieTooLarge;

impl std::fmt::Display for CookieTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the value needs more than {MAX_CHUNKS} cookies of {CHUNK_LIMIT} bytes"
        )
    }
}

impl std::error::Error for CookieTooLarge {}

/// `(name, value)` of every cookie in the headers, in order; one pair of quotes removed.
fn pairs<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
}

/// The first value of cookie `name` in the headers.
pub fn cookie_values<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<&'a str> {
    pairs(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

/// The value stored under `name`, reassembled from its chunks; `None` if absent or if a chunk
/// is missing.
pub fn read_chunked(headers: &[&str], name: &str) -> Option<String> {
    let first = cookie_values(headers.iter().copied(), name)?;
    let Some((count, part)) = first.split_once('.') else {
        return Some(first.to_owned());
    };
    let count: usize = count
        .parse()
        .ok()
        .filter(|c| (2..=MAX_CHUNKS).contains(c))?;
    let mut value = String::with_capacity(count * CHUNK_LIMIT);
    value.push_str(part);
    for index in 1..count {
        value.push_str(cookie_values(
            headers.iter().copied(),
            &chunk_name(name, index),
        )?);
    }
    Some(value)
}

/// How many cookies the request holds for `name`: 0 without it, else one more than the highest
/// chunk index present (stale chunks included, so that they can be expired).
pub fn count_chunks(headers: &[&str], name: &str) -> usize {
    pairs(headers.iter().copied())
        .filter_map(|(n, _)| match n.strip_prefix(name)? {
            "" => Some(1),
            rest => rest
                .strip_prefix('_')?
                .parse::<usize>()
                .ok()
                .filter(|i| (1..MAX_CHUNKS).contains(i))
                .map(|i| i + 1),
        })
        .max()
        .unwrap_or(0)
}

fn attributes(max_age: u64, settings: &CookieSettings) -> String {
    let secure = if settings.secure { "; Secure" } else { "" };
    format!("Path=/; Max-Age={max_age}; HttpOnly{secure}; SameSite=Lax")
}

/// `Set-Cookie` values storing `value` under `name` for `max_age` seconds, chunked when large;
/// chunks the request held beyond the new count (`chunks_in_request`) are expired.
pub fn set_cookie_values(
    name: &str,
    value: &str,
    max_age: u64,
    settings: &CookieSettings,
    chunks_in_request: usize,
) -> Result<Vec<String>, CookieTooLarge> {
    let attributes = attributes(max_age, settings);
    let mut values = Vec::new();
    if value.len() <= CHUNK_LIMIT {
        values.push(format!("{name}={value}; {attributes}"));
    } else {
        // Sealed values are ASCII, so byte offsets are character boundaries.
        let parts: Vec<&str> = value
            .as_bytes()
            .chunks(CHUNK_LIMIT)
            .map(|part| std::str::from_utf8(part).unwrap_or_default())
            .collect();
        if parts.len() > MAX_CHUNKS || !value.is_ascii() {
            return Err(CookieTooLarge);
        }
        values.push(format!("{name}={}.{}; {attributes}", parts.len(), parts[0]));
        for (index, part) in parts.iter().enumerate().skip(1) {
            values.push(format!("{}={part}; {attributes}", chunk_name(name, index)));
        }
    }
    let written = values.len();
    for index in written.max(1)..chunks_in_request {
        values.push(expired(&chunk_name(name, index), settings));
    }
    Ok(values)
}

fn expired(name: &str, settings: &CookieSettings) -> String {
    let secure = if settings.secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; Max-Age=0; HttpOnly{secure}; SameSite=Lax")
}

/// `Set-Cookie` values removing `name` and its chunks (`chunks` as [`count_chunks`] says).
pub fn expire_cookie_values(name: &str, settings: &CookieSettings, chunks: usize) -> Vec<String> {
    let mut values = vec![expired(name, settings)];
    values.extend((1..chunks).map(|index| expired(&chunk_name(name, index), settings)));
    values
}

/// The `Cookie` header without the cookies `is_removed` names; `None` when nothing is left.
pub fn without_cookies(header: &str, is_removed: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name).trim();
            !is_removed(name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECURE: CookieSettings = CookieSettings { secure: true };

    /// The `name=value` of each `Set-Cookie`, joined like a browser's `Cookie` header.
    fn as_request(set_cookies: &[String]) -> String {
        set_cookies
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn small_values_take_one_cookie_with_session_attributes() {
        let set = set_cookie_values("s", "abc", 60, &SECURE, 0).unwrap();
        assert_eq!(
            set,
            ["s=abc; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"]
        );
        let insecure = set_cookie_values("s", "abc", 60, &CookieSettings { secure: false }, 0);
        assert!(!insecure.unwrap()[0].contains("Secure"));
        assert_eq!(read_chunked(&["a=1; s=abc"], "s").as_deref(), Some("abc"));
    }

    #[test]
    fn large_values_round_trip_through_chunks() {
        let value: String = (0..9000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let set = set_cookie_values("s", &value, 60, &SECURE, 0).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set[0].starts_with("s=3."));
        assert!(set[2].starts_with("s_2="));
        assert!(set.iter().all(|c| c.len() < 4096));
        let request = as_request(&set);
        assert_eq!(
            read_chunked(&[&request], "s").as_deref(),
            Some(value.as_str())
        );
        assert_eq!(count_chunks(&[&request], "s"), 3);
        // A missing chunk is no value at all, never a truncated one.
        let without_last = request.rsplit_once("; ").unwrap().0;
        assert_eq!(read_chunked(&[without_last], "s"), None);
        // Chunks may arrive split over several Cookie headers.
        let (head, tail) = request.split_once("; ").unwrap();
        assert_eq!(
            read_chunked(&[head, tail], "s").as_deref(),
            Some(value.as_str())
        );
    }

    #[test]
    fn shrinking_expires_stale_chunks_and_limits_hold() {
        let set = set_cookie_values("s", "small", 60, &SECURE, 3).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set[1].starts_with("s_1=; ") && set[1].contains("Max-Age=0"));
        assert!(set[2].starts_with("s_2=; "));
        let huge = "x".repeat(CHUNK_LIMIT * MAX_CHUNKS + 1);
        assert_eq!(
            set_cookie_values("s", &huge, 60, &SECURE, 0),
            Err(CookieTooLarge)
        );
        assert_eq!(expire_cookie_values("s", &SECURE, 2).len(), 2);
        assert_eq!(read_chunked(&["s=99.abc"], "s"), None);
        assert_eq!(count_chunks(&["other=1; s_x=2"], "s"), 0);
    }

    #[test]
    fn gateway_cookies_are_taken_out_of_the_upstream_header() {
        let is_ours = |name: &str| name == "s" || name.starts_with("s_");
        assert_eq!(
            without_cookies("a=1; s=2;s_1=3 ; b=\"4\"", is_ours).as_deref(),
            Some("a=1; b=\"4\"")
        );
        assert_eq!(without_cookies("s=1; s_1=2", is_ours), None);
        assert_eq!(cookie_values(["a=1", "b=\"q\""], "b"), Some("q"));
    }
}
