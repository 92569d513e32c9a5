//! Which bucket a request counts against: the key built from the policy's key parts, and the rate
//! picked by its tiers.
//!
//! **Key format.** Parts are written in the policy's order, separated by `|`; inside a value `\`
//! and `|` are escaped as `\\` and `\|`, and bytes that are not UTF-8 (header values) as `\xHH`,
//! so two different part lists never produce the same key. Claim values may be strings, numbers
//! or booleans.
//!
//! **Fallback.** When a part's source is missing — no verified token (anonymous route), a
//! missing or empty claim or header, a claim that is an object or array — the *whole* key falls
//! back to the client address, written `|ip:<address>`. A leading `|` never starts a regular key,
//! so a fallback key cannot collide with one. (Counting such requests together under one shared
//! "unknown" key instead would let one client exhaust every anonymous caller's budget.)
//! `client_ip` is the address the caller resolved: the socket peer, or X-Forwarded-For /
//! Forwarded when the peer is in `trusted_proxies` (see [`crate::pipeline::facts`]).

use super::policy::{RateKeyPart, RateLimitPolicy};
use crate::config::units::RateSpec;
use crate::ip_text::push_ip;
use crate::policy::{holds, ClaimValue, Identity, RawJson};
use serde_json::Value;
use std::fmt::Write;
use std::net::IpAddr;

/// Where the key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Every configured part was present.
    Configured,
    /// Part number `missing_part` was missing, so the key is the client address.
    ClientIpFallback { missing_part: usize },
}

/// Writes the key made of `parts` (a policy's `key`) for this request into `out` (cleared
/// first; reuse the buffer); `identity` is the verified token's, `None` for an anonymous request.
pub fn rate_key(
    parts: &[RateKeyPart],
    identity: Option<&Identity>,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
    out: &mut String,
) -> KeySource {
    out.clear();
    let claims = identity.map(Identity::claims);
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            out.push('|');
        }
        let present = match part {
            RateKeyPart::ClientIp => {
                push_ip(out, client_ip);
                true
            }
            RateKeyPart::ClientId => push_str(out, identity.and_then(Identity::client_id)),
            RateKeyPart::Subject => push_str(
                out,
                claims
                    .and_then(|c| c.get("sub"))
                    .and_then(RawJson::as_str)
                    .as_deref(),
            ),
            RateKeyPart::Claim(path) => match claims.and_then(|c| c.lookup(path)) {
                Some(ClaimValue::Text(text)) => push_str(out, Some(&text)),
                Some(ClaimValue::Parsed(value)) => push_claim(out, value),
                None => false,
            },
            RateKeyPart::Header(name) => push_bytes(out, headers.get(name).map(|v| v.as_bytes())),
        };
        if !present {
            out.clear();
            out.push_str("|ip:");
            push_ip(out, client_ip);
            return KeySource::ClientIpFallback {
                missing_part: index,
            };
        }
    }
    KeySource::Configured
}

/// The rate a request gets: a tier's, or the policy's base rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierChoice {
    /// Index into `policy.tiers`; `None` for the base rate.
    pub index: Option<usize>,
    pub rate: RateSpec,
    pub burst: u64,
}

/// The first tier whose rule holds on the verified claims, else the base rate (always the base
/// rate without a token).
pub fn choose_tier(policy: &RateLimitPolicy, identity: Option<&Identity>) -> TierChoice {
    if let Some(identity) = identity {
        for (index, (rule, rate, burst)) in policy.tiers.iter().enumerate() {
            if holds(rule, identity) {
                return TierChoice {
                    index: Some(index),
                    rate: *rate,
                    burst: *burst,
                };
            }
        }
    }
    TierChoice {
        index: None,
        rate: policy.rate,
        burst: policy.burst,
    }
}

/// The rate of tier `index` (`None` or out of range: the base rate).
pub fn tier_rate(policy: &RateLimitPolicy, index: Option<usize>) -> TierChoice {
    match index.and_then(|i| policy.tiers.get(i).map(|t| (i, t))) {
        Some((i, (_, rate, burst))) => TierChoice {
            index: Some(i),
            rate: *rate,
            burst: *burst,
        },
        None => TierChoice {
            index: None,
            rate: policy.rate,
            burst: policy.burst,
        },
    }
}

fn push_str(out: &mut String, value: Option<&str>) -> bool {
    match value {
        Some(text) if !text.is_empty() => {
            push_escaped(out, text);
            true
        }
        _ => false,
    }
}

/// A string claim as its text, a number with the digits the token carried, a boolean as
/// `true`/`false`; anything else (null, an array, an object) is missing.
fn push_claim(out: &mut String, value: &Value) -> bool {
    match value {
        Value::String(text) => push_str(out, Some(text)),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
            true
        }
        Value::Bool(flag) => {
            out.push_str(if *flag { "true" } else { "false" });
            true
        }
        _ => false,
    }
}

fn push_bytes(out: &mut String, value: Option<&[u8]>) -> bool {
    match value {
        Some(bytes) if !bytes.is_empty() => {
            match std::str::from_utf8(bytes) {
                Ok(text) => push_escaped(out, text),
                Err(_) => {
                    for &byte in bytes {
                        if byte.is_ascii() {
                            push_escaped_char(out, byte as char);
                        } else {
                            let _ = write!(out, "\\x{byte:02x}");
                        }
                    }
                }
            }
            true
        }
        _ => false,
    }
}

fn push_escaped(out: &mut String, text: &str) {
    if !text.contains(['\\', '|']) {
        out.push_str(text);
        return;
    }
    text.chars().for_each(|c| push_escaped_char(out, c));
}

fn push_escaped_char(out: &mut String, c: char) {
    if c == '\\' || c == '|' {
        out.push('\\');
    }
    out.push(c);
}
