//! The authentication step of `request_filter`: runs the route's auth policy and turns its
//! outcome into either verified claims on the request context or a [`Denial`].

use crate::config::runtime::{Route, RouteAuth};
use crate::config::RuntimeConfig;
use crate::denial::Denial;
use crate::proxy::RequestContext;
use pingora::proxy::Session;

/// `None` when the request may proceed.
pub async fn authenticate(
    _session: &mut Session,
    _ctx: &mut RequestContext,
    config: &RuntimeConfig,
    route: &Route,
) -> Option<Denial> {
    match &route.auth {
        RouteAuth::Anonymous => None,
        RouteAuth::Verify { providers, .. } => Some(Denial::Unauthenticated {
            status: 503,
            reason: "provider_unavailable",
            description: "token verification is not available in this build".into(),
            realm: providers
                .first()
                .and_then(|i| config.provider_names.get(*i))
                .cloned()
                .unwrap_or_default(),
            token_presented: false,
        }),
    }
}
