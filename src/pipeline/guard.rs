//! Step 1, the guard: refuses requests no route should ever see — a head larger than
//! `server.max_header_size` (431) and a path that is not in normal form (400), so that a path
//! like `/public/../admin` cannot reach an upstream under another route's rules.

use super::context::Context;
use crate::reply::Denial;
use crate::routing::is_normalized_path;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;

/// `Err` when the request is refused before routing.
pub fn check(request: &RequestHeader, ctx: &Context, snapshot: &Snapshot) -> Result<(), Denial> {
    let limit = snapshot.config.server.max_header_size;
    if ctx.facts.head_size > limit {
        return Err(Denial::HeadersTooLarge { limit });
    }
    if !is_normalized_path(request.uri.path()) {
        return Err(Denial::PathNotNormalized);
    }
    Ok(())
}
