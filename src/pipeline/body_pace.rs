//! In `request_body_filter`: each chunk of an HTTP/1 request body is counted against
//! `server.min_body_rate` ([`BodyPace`]); a client that drips its body gets 408
//! `client_too_slow`. HTTP/2 bodies are paced by HTTP/2 flow control and not checked here.

use super::context::Context;
use crate::connection::body_pace::BodyPace;
use crate::reply::Denial;
use bytes::Bytes;
use pingora::protocols::Stream;

/// Counts `chunk` (of the client connection `stream`) against the minimum body rate.
pub fn check(stream: &Stream, chunk: Option<&Bytes>, ctx: &mut Context) -> Result<(), Denial> {
    let min_rate = ctx.snapshot.config.server.min_body_rate;
    let Some(chunk) = chunk.filter(|_| min_rate > 0) else {
        return Ok(());
    };
    let waited = stream.get_read_pending_time();
    let pace = ctx.body_pace.get_or_insert_with(|| BodyPace::start(waited));
    pace.chunk(chunk.len(), waited, min_rate)
        .map_err(|_| Denial::ClientTooSlow { min_rate })
}
