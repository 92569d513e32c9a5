//! W3C Trace Context (`traceparent`): every request belongs to a trace. An incoming valid
//! `traceparent` gives the trace id and the sampling flag; otherwise the gateway starts a trace.
//! The gateway is a hop of its own: the upstream receives the same trace id with the gateway's
//! span id as parent. `tracestate` passes through untouched. The trace id is written to the
//! access log and to every problem body, so that a refusal can be found in the traces.
//!
//! Every request carries one, so the ids are held inline ([`HexId`]) and the upstream's
//! `traceparent` is written into a fixed buffer: no allocation and no formatting per request.

use crate::request_id::{hex_u64, unique_u64};

/// `N` lowercase hex digits, held inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// `text` when it is exactly `N` lowercase hex digits, not all zeros (W3C: an all-zero
    /// trace or span id is invalid).
    fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; N] = text.as_bytes().try_into().ok()?;
        (is_lower_hex(text, N) && bytes.iter().any(|b| *b != b'0')).then_some(HexId(bytes))
    }

    /// `N / 16` words from the process's id generator (distinct values, so an id is never all
    /// zeros: at most one word of the process's life is zero, and it is replaced by 1).
    fn random() -> Self {
        let mut bytes = [b'0'; N];
        for word in bytes.chunks_exact_mut(16) {
            word.copy_from_slice(&hex_u64(unique_u64().max(1)));
        }
        HexId(bytes)
    }

    pub fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever stored (parsed or generated).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl<const N: usize> Default for HexId<N> {
    fn default() -> Self {
        HexId([b'0'; N])
    }
}

impl<const N: usize> std::fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> std::fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The trace of one request (all zeros until the request's head is read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: HexId<32>,
    /// The gateway's span.
    pub span_id: HexId<16>,
    /// The caller's span, when the request came with a `traceparent`.
    pub parent_id: Option<HexId<16>>,
    /// The trace flags; bit 0 is "sampled".
    pub flags: u8,
    /// Whether this request's spans are exported.
    pub sampled: bool,
}

/// `00-` + 32 + `-` + 16 + `-` + 2.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceContext {
    /// The context of a request with this `traceparent` header value (if any); an invalid one
    /// starts a new trace, sampled with probability `new_trace_ratio` (decided from the id).
    pub fn from_traceparent(header: Option<&[u8]>, new_trace_ratio: f64) -> TraceContext {
        let parsed = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| {
                let mut parts = h.trim().split('-');
                let (version, trace, parent, flags) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                // Version 00 has exactly four fields; later versions may add more.
                let version_ok = is_lower_hex(version, 2)
                    && version != "ff"
                    && (version != "00" || parts.next().is_none());
                if !version_ok || !is_lower_hex(flags, 2) {
                    return None;
                }
                let flags = u8::from_str_radix(flags, 16).ok()?;
                Some((HexId::parse(trace)?, HexId::parse(parent)?, flags))
            });
        match parsed {
            Some((trace_id, parent, flags)) => TraceContext {
                sampled: flags & 1 == 1,
                trace_id,
                span_id: HexId::random(),
                parent_id: Some(parent),
                flags,
            },
            None => {
                let trace_id = HexId::random();
                let sampled =
                    crate::telemetry::sampled_by_ratio(trace_id.as_str(), new_trace_ratio);
                TraceContext {
                    trace_id,
                    span_id: HexId::random(),
                    parent_id: None,
                    flags: u8::from(sampled),
                    sampled,
                }
            }
        }
    }

    /// The `traceparent` the upstream receives: this trace, the gateway's span as parent.
    pub fn upstream_traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; TRACEPARENT_LEN];
        text[..2].copy_from_slice(b"00");
        text[3..35].copy_from_slice(&self.trace_id.0);
        text[36..52].copy_from_slice(&self.span_id.0);
        text[53] = HEX[usize::from(self.flags >> 4)];
        text[54] = HEX[usize::from(self.flags & 0xf)];
        text
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued() {
        let incoming = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let trace = TraceContext::from_traceparent(Some(incoming), 0.0);
        assert_eq!(trace.trace_id.as_str(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            trace.parent_id.as_ref().map(HexId::as_str),
            Some("b7ad6b7169203331")
        );
        let upstream = trace.upstream_traceparent();
        let upstream = std::str::from_utf8(&upstream).unwrap();
        assert_eq!(
            upstream,
            format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", trace.span_id)
        );
        assert!(trace.sampled, "the caller's decision is followed");
        assert_ne!(
            trace.span_id.as_str(),
            "b7ad6b7169203331",
            "the gateway is a hop of its own"
        );
        assert!(is_lower_hex(trace.span_id.as_str(), 16));
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        for bad in [
            &b"00-00000000000000000000000000000000-b7ad6b7169203331-01"[..],
            b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            b"garbage",
            b"\xff\xfe",
        ] {
            let trace = TraceContext::from_traceparent(Some(bad), 0.0);
            assert_eq!(trace.parent_id, None, "{}", String::from_utf8_lossy(bad));
            assert!(is_lower_hex(trace.trace_id.as_str(), 32));
            assert_ne!(trace.trace_id, HexId::default());
        }
        let fresh = TraceContext::from_traceparent(None, 1.0);
        assert!(fresh.sampled && fresh.flags == 1);
        let upstream = fresh.upstream_traceparent();
        assert!(std::str::from_utf8(&upstream).unwrap().ends_with("-01"));
        let unsampled = TraceContext::from_traceparent(None, 0.0).upstream_traceparent();
        assert!(std::str::from_utf8(&unsampled).unwrap().ends_with("-00"));
        assert_ne!(
            fresh.trace_id,
            TraceContext::from_traceparent(None, 0.0).trace_id
        );
    }

    #[test]
    fn flags_other_than_sampled_are_passed_on() {
        let incoming = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0a";
        let trace = TraceContext::from_traceparent(Some(incoming), 1.0);
        assert_eq!(trace.flags, 0x0a);
        assert!(!trace.sampled, "bit 0 is clear");
        let upstream = trace.upstream_traceparent();
        assert!(std::str::from_utf8(&upstream).unwrap().ends_with("-0a"));
    }
}
