//! OpenID Connect access-token verification at the edge.
//!
//! | module | role |
//! |---|---|
//! | [`sources`] | where a token comes from (Authorization, header, query, cookie); size limit |
//! | [`credential`] | the syntax a present credential must have (Bearer, RFC 6750 b64token) |
//! | [`client`] | the gateway's own client at a provider (id, secret) |
//! | [`settings`] | `identity_providers.<name>` compiled offline |
//! | [`keys`] | immutable key sets from JWKS or PEM (`enc` and unusable entries skipped) |
//! | [`parsed_keys`] | each key parsed once for aws-lc-rs: a verification is the signature alone |
//! | [`endpoints`] | authorization, token, end-session and introspection endpoints from discovery |
//! | [`fetch`] | discovery and JWKS over HTTP with timeouts and size limits |
//! | [`provider`] | a running provider: keys behind an ArcSwap, refresh, single-flight refetch |
//! | [`jose_header`] | a token's JOSE header (`alg`, `kid`, `typ`, `crit`), decoded on the stack |
//! | [`verify`] | pure signature and claim checks with a clock parameter |
//! | [`cache`] | the verified-token cache and negative cache |
//! | [`introspection`] | RFC 7662: is a verified token still active at the provider |
//! | [`introspection_cache`] | introspection answers by token hash, bounded, and one flight per token |
//! | [`authenticator`] | the request-path entry point |
//! | [`failure`] | reason codes and descriptions |
//! | [`token_trace`] | a token's checks with the values they read, for a decision trace |

pub mod authenticator;
pub mod cache;
pub mod client;
pub mod credential;
pub mod endpoints;
pub mod failure;
pub mod fetch;
pub mod introspection;
pub mod introspection_cache;
pub mod jose_header;
pub mod keys;
pub mod parsed_keys;
pub mod provider;
pub mod settings;
pub mod sources;
pub mod token_trace;
pub mod verify;

pub use authenticator::{Authenticator, Verified};
pub use failure::{AuthFailure, AuthReason};
pub use settings::{compile_provider, ProviderSettings};
pub use sources::{compile_token_sources, TokenSources};

/// Why the identity providers of a configuration cannot be set up (by [`Authenticator::new`]
/// and [`provider::Provider::new`]): the CA certificate is invalid, the HTTP client cannot be
/// built, or a static JWKS or PEM key does not parse. Network failures are not setup errors:
/// remote keys are fetched later and retried.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `ca_file` holds no usable certificate.
    #[error("invalid CA certificate: {0}")]
    InvalidCaCertificate(reqwest::Error),
    /// The TLS backend or the client configuration was refused.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    /// A static JWKS (`jwks_file`, `jwks_inline`) or `public_key_pem` does not parse.
    #[error(transparent)]
    StaticKeys(#[from] keys::KeySetError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_error_shows_the_key_problem_as_is() {
        let error = SetupError::from(keys::KeySetError::JwksWithoutKeys);
        assert_eq!(error.to_string(), "the JWKS has no `keys` array");
    }
}
