//! Step 3, client IP lists: a route (or `defaults`) with `client_ips` refuses a client address
//! it does not allow, before authentication — 403 `ip_not_allowed`. The address is the one the
//! gateway trusts: the socket peer, or what a trusted proxy forwarded.

use super::context::Context;
use crate::compile::Route;
use crate::reply::Denial;

/// `Err` when the route does not take requests from the client's address.
pub fn check(ctx: &Context, route: &Route) -> Result<(), Denial> {
    match &route.client_ips {
        Some(lists) if !lists.admits(ctx.facts.client_ip) => Err(Denial::IpNotAllowed),
        _ => Ok(()),
    }
}
