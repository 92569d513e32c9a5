//! OpenID Connect access-token verification at the edge.
//!
//! | module | role |
//! |---|---|
//! | [`sources`] | where a token comes from (Authorization, header, query, cookie); size limit |
//! | [`settings`] | `identity_providers.<name>` compiled offline |
//! | [`keys`] | immutable key sets from JWKS or PEM (`enc` and unusable entries skipped) |
//! | [`fetch`] | discovery and JWKS over HTTP with timeouts and size limits |
//! | [`provider`] | a running provider: keys behind an ArcSwap, refresh, single-flight refetch |
//! | [`verify`] | pure signature and claim checks with a clock parameter |
//! | [`cache`] | the verified-token cache and negative cache |
//! | [`authenticator`] | the request-path entry point |
//! | [`failure`] | reason codes and descriptions |

pub mod authenticator;
pub mod cache;
pub mod failure;
pub mod fetch;
pub mod keys;
pub mod provider;
pub mod settings;
pub mod sources;
pub mod verify;

pub use authenticator::{Authenticator, Verified};
pub use failure::{AuthFailure, AuthReason};
pub use settings::{compile_provider, ProviderSettings};
pub use sources::{compile_token_sources, TokenSources};
