//! W3C Trace Context (`traceparent`): every request belongs to a trace. An incoming valid
//! `traceparent` gives the trace id and the sampling flag; otherwise the gateway starts a trace.
//! The gateway is a hop of its own: the upstream receives the same trace id with the gateway's
//! span id as parent. `tracestate` passes through untouched. The trace id is written to the
//! access log and to every problem body, so that a refusal can be found in the traces.

/// The trace of one request (empty until the request's head is read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The gateway's span: 16 lowercase hex digits.
    pub span_id: String,
    /// The caller's span, when the request came with a `traceparent`.
    pub parent_id: Option<String>,
    /// `01` when sampled.
    pub flags: String,
    /// Whether this request's spans are exported.
    pub sampled: bool,
}

/// `words` × 16 lowercase hex digits from the process's id generator (distinct values, so
/// an id is never all zeros: at most one word of the process's life is zero, and a span id of
/// zero is replaced).
fn random_hex(words: usize) -> String {
    use crate::request_id::{hex_u64, unique_u64};
    let mut hex = String::with_capacity(words * 16);
    for _ in 0..words {
        hex.extend(hex_u64(unique_u64().max(1)).map(char::from));
    }
    hex
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

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
                let valid = is_lower_hex(version, 2)
                    && version != "ff"
                    && (version != "00" || parts.next().is_none())
                    && is_lower_hex(trace, 32)
                    && trace.bytes().any(|b| b != b'0')
                    && is_lower_hex(parent, 16)
                    && parent.bytes().any(|b| b != b'0')
                    && is_lower_hex(flags, 2);
                valid.then(|| (trace.to_owned(), parent.to_owned(), flags.to_owned()))
            });
        match parsed {
            Some((trace_id, parent, flags)) => TraceContext {
                sampled: u8::from_str_radix(&flags, 16).is_ok_and(|f| f & 1 == 1),
                trace_id,
                span_id: random_hex(1),
                parent_id: Some(parent),
                flags,
            },
            None => {
                let trace_id = random_hex(2);
                let sampled = crate::telemetry::sampled_by_ratio(&trace_id, new_trace_ratio);
                TraceContext {
                    trace_id,
                    span_id: random_hex(1),
                    parent_id: None,
                    flags: if sampled { "01" } else { "00" }.into(),
                    sampled,
                }
            }
        }
    }

    /// The `traceparent` the upstream receives: this trace, the gateway's span as parent.
    pub fn upstream_traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued() {
        let incoming = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let trace = TraceContext::from_traceparent(Some(incoming), 0.0);
        assert_eq!(trace.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace.parent_id.as_deref(), Some("b7ad6b7169203331"));
        let upstream = trace.upstream_traceparent();
        assert!(upstream.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(upstream.ends_with("-01"));
        assert!(trace.sampled, "the caller's decision is followed");
        assert_ne!(
            trace.span_id, "b7ad6b7169203331",
            "the gateway is a hop of its own"
        );
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
            assert!(is_lower_hex(&trace.trace_id, 32));
        }
        let fresh = TraceContext::from_traceparent(None, 1.0);
        assert!(fresh.sampled && fresh.flags == "01");
        assert_ne!(
            fresh.trace_id,
            TraceContext::from_traceparent(None, 0.0).trace_id
        );
    }
}
