//! The request id every gateway response and log line carries.
//!
//! A well-formed incoming `X-Request-Id` (1-128 characters of `[A-Za-z0-9._:+=/-]`) is kept, so
//! one id follows a request across tiers; otherwise a 16-hex-digit id is generated from a
//! per-process random seed and a counter. Ids live inline in a fixed buffer: no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The header name used both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const MAX_LEN: usize = 128;

/// A request id stored inline.
#[derive(Clone)]
pub struct RequestId {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl RequestId {
    /// Keeps `incoming` when it is well formed, otherwise generates a fresh id.
    pub fn from_incoming_or_new(incoming: Option<&[u8]>) -> Self {
        match incoming {
            Some(value) if is_well_formed(value) => {
                let mut bytes = [0u8; MAX_LEN];
                bytes[..value.len()].copy_from_slice(value);
                RequestId {
                    bytes,
                    len: value.len() as u8,
                }
            }
            _ => Self::generate(),
        }
    }

    /// A new id: 16 lowercase hex digits, unique within the process and unlikely to repeat across.
    pub fn generate() -> Self {
        let mut bytes = [0u8; MAX_LEN];
        bytes[..16].copy_from_slice(&hex_u64(unique_u64()));
        RequestId { bytes, len: 16 }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked or generated), so this cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("invalid")
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_well_formed(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:+=/-".contains(b))
}

/// `value` as 16 lowercase hex digits (ids are written without `fmt`).
pub fn hex_u64(value: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (index, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((value >> (60 - index * 4)) & 0xf) as usize];
    }
    digits
}

/// A 64-bit value no other call in this process returns, unpredictable without the process's
/// random seed (SplitMix64 over a counter from a random start): request ids, trace and span
/// ids. Not for secrets: it is fast (a few ns), not cryptographic.
pub fn unique_u64() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(random_seed);
    mix(seed ^ COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut seed).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        return nanos ^ u64::from(std::process::id()) << 32;
    }
    u64::from_le_bytes(seed)
}

/// SplitMix64 finalizer: a bijection, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_incoming_ids() {
        let id = RequestId::from_incoming_or_new(Some(b"abc-123_x.y:z"));
        assert_eq!(id.as_str(), "abc-123_x.y:z");
    }

    #[test]
    fn replaces_malformed_incoming_ids() {
        for bad in [
            &b""[..],
            b"has space",
            b"quote\"",
            &[b'a'; 129][..],
            b"new\nline",
        ] {
            let id = RequestId::from_incoming_or_new(Some(bad));
            assert_eq!(id.as_str().len(), 16, "{bad:?}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn generated_ids_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a.as_str(), b.as_str());
    }
}
