//! Bodies for the demo upstream, chosen so the hot path neither boxes nor copies: a prebuilt
//! buffer, a byte pattern served from one static 64 KiB block, or a few prebuilt pieces sent
//! without a length. Also [`consume_request_body`], which reads a request body as a stream.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The size of each frame of a pattern body.
const PATTERN_CHUNK: usize = 64 * 1024;

/// 0, 1, … 255 repeated. The block size is a multiple of 256, so every frame of a pattern body
/// starts at 0 and is a prefix of this block: byte `i` of any pattern body is `i % 256`.
static PATTERN_BLOCK: [u8; PATTERN_CHUNK] = pattern_block();

const fn pattern_block() -> [u8; PATTERN_CHUNK] {
    let mut block = [0u8; PATTERN_CHUNK];
    let mut index = 0;
    while index < PATTERN_CHUNK {
        block[index] = (index % 256) as u8;
        index += 1;
    }
    block
}

/// The body of every response the demo upstream sends.
pub(crate) enum ResponseBody {
    /// A complete body, sent with its length (`None` once sent, or for an empty body).
    Complete(Option<Bytes>),
    /// `remaining` bytes of the 0..=255 pattern, 64 KiB per frame. With `announce_length` the
    /// length is sent up front (`Content-Length`); without it HTTP/1.1 sends it chunked.
    Pattern {
        remaining: u64,
        announce_length: bool,
    },
    /// Prebuilt pieces, one frame each, length not announced (chunked on HTTP/1.1).
    Pieces(VecDeque<Bytes>),
}

impl ResponseBody {
    pub(crate) fn complete(data: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Complete(Some(data.into()))
    }

    pub(crate) fn empty() -> ResponseBody {
        ResponseBody::Complete(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match self.get_mut() {
            ResponseBody::Complete(data) => data.take(),
            ResponseBody::Pattern { remaining, .. } if *remaining > 0 => {
                let size = (*remaining).min(PATTERN_CHUNK as u64);
                *remaining -= size;
                // `size` is at most PATTERN_CHUNK, so the cast and the slice are in range.
                Some(Bytes::from_static(&PATTERN_BLOCK[..size as usize]))
            }
            ResponseBody::Pattern { .. } => None,
            ResponseBody::Pieces(pieces) => pieces.pop_front(),
        };
        Poll::Ready(next.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Complete(data) => data.as_ref().is_none_or(Bytes::is_empty),
            ResponseBody::Pattern { remaining, .. } => *remaining == 0,
            ResponseBody::Pieces(pieces) => pieces.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Complete(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            ResponseBody::Pattern {
                remaining,
                announce_length: true,
            } => SizeHint::with_exact(*remaining),
            ResponseBody::Pattern { .. } | ResponseBody::Pieces(_) => SizeHint::default(),
        }
    }
}

/// What a request body amounted to, read frame by frame.
pub(crate) struct ConsumedBody {
    /// Bytes received in total.
    pub length: u64,
    /// The wrapping sum of every byte received (cheap, and easy for a test to recompute).
    pub checksum: u64,
    /// The first bytes of the body, up to the `keep` the caller asked for.
    pub kept: Vec<u8>,
    /// False when the client broke off before the end of the body.
    pub complete: bool,
}

impl ConsumedBody {
    /// True when the whole body fits in [`ConsumedBody::kept`].
    pub(crate) fn fully_kept(&self) -> bool {
        self.kept.len() as u64 == self.length
    }
}

/// Reads `body` to its end without holding more than `keep` bytes of it.
pub(crate) async fn consume_request_body(mut body: Incoming, keep: usize) -> ConsumedBody {
    let mut consumed = ConsumedBody {
        length: 0,
        checksum: 0,
        kept: Vec::new(),
        complete: true,
    };
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            consumed.complete = false;
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        consumed.length += data.len() as u64;
        let sum: u64 = data.iter().map(|byte| u64::from(*byte)).sum();
        consumed.checksum = consumed.checksum.wrapping_add(sum);
        let room = keep.saturating_sub(consumed.kept.len());
        consumed
            .kept
            .extend_from_slice(&data[..room.min(data.len())]);
    }
    consumed
}
