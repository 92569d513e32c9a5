//! The request-path entry point: extract the token, choose its provider by the `iss` claim
//! (a lookup, never by trying keys), consult the verified-token cache, verify, and return the
//! verified claims or an [`AuthFailure`].

use super::failure::{AuthFailure, AuthReason};
use super::keys::KeySet;
use super::provider::{unix_now, Provider};
use super::settings::ProviderSettings;
use super::sources::TokenSources;
use super::verify::{check_claims, issuer_hint, split, verify_signature, TokenParts};
use super::SetupError;
use crate::metrics::metrics;
use crate::policy::Identity;
use pingora::http::RequestHeader;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Index of the provider (the snapshot's provider order).
    pub provider: usize,
    /// The verified claims, indexed for rule evaluation.
    pub identity: Arc<Identity>,
}

/// Every provider of one configuration snapshot.
pub struct Authenticator {
    pub providers: Vec<Arc<Provider>>,
    pub sources: TokenSources,
}

impl Authenticator {
    /// Builds the providers, reusing from `previous` those whose settings did not change (their
    /// keys, caches and refresh tasks carry over a reload).
    pub fn new(
        settings: Vec<ProviderSettings>,
        sources: TokenSources,
        runtime: tokio::runtime::Handle,
        previous: Option<&Authenticator>,
    ) -> Result<Authenticator, SetupError> {
        let providers = settings
            .into_iter()
            .map(|settings| {
                let reused =
                    previous.and_then(|p| p.providers.iter().find(|old| old.settings == settings));
                match reused {
                    Some(old) => Ok(old.clone()),
                    None => Provider::new(settings, runtime.clone()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticator { providers, sources })
    }

    /// Fetches the keys of every new provider (in parallel, each bounded by `timeout`).
    pub async fn start(&self, timeout: Duration, previous: Option<&Authenticator>) {
        let fresh = self.providers.iter().filter(|p| {
            !previous.is_some_and(|old| old.providers.iter().any(|o| Arc::ptr_eq(o, p)))
        });
        let starts: Vec<_> = fresh.map(|provider| provider.start(timeout)).collect();
        futures_util::future::join_all(starts).await;
    }

    /// Providers without keys (for `/readyz`).
    pub fn not_ready(&self) -> Vec<&str> {
        self.providers
            .iter()
            .filter(|p| !p.ready())
            .map(|p| p.settings.name.as_str())
            .collect()
    }

    /// Authenticates a request for a route accepting `allowed` providers. `Ok(None)`: no token
    /// and none required.
    pub async fn authenticate(
        &self,
        request: &RequestHeader,
        allowed: &[usize],
        token_required: bool,
    ) -> Result<Option<Verified>, AuthFailure> {
        let token = match self.sources.extract(request)? {
            Some(token) => token,
            None if token_required => {
                return Err(AuthFailure::new(
                    AuthReason::MissingToken,
                    "this route needs a bearer token",
                ));
            }
            None => return Ok(None),
        };
        self.authenticate_token(token, allowed).await.map(Some)
    }

    /// Verifies `token` for a route accepting `allowed` providers: the verified-token cache
    /// first, then the signature and claims. A browser session's access token takes this path
    /// too, so sessions and bearer tokens meet the same checks.
    pub async fn authenticate_token(
        &self,
        token: &str,
        allowed: &[usize],
    ) -> Result<Verified, AuthFailure> {
        let now = unix_now();
        for &index in allowed {
            let cache = &self.providers[index].cache;
            if let Some(identity) = cache.get(cache.hash(token), token, now) {
                metrics().token_cache.with_label_values(&["hit"]).inc();
                return Ok(Verified {
                    provider: index,
                    identity,
                });
            }
        }
        metrics().token_cache.with_label_values(&["miss"]).inc();
        self.verify(token, allowed, now).await
    }

    async fn verify(
        &self,
        token: &str,
        allowed: &[usize],
        now: u64,
    ) -> Result<Verified, AuthFailure> {
        let parts = split(token)?;
        let issuer = parts
            .payload
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(index) = self
            .providers
            .iter()
            .position(|p| p.rules().is_some_and(|rules| rules.issuer == issuer))
        else {
            return Err(self.unknown_issuer(issuer, allowed));
        };
        let provider = &self.providers[index];
        let name = provider.settings.name.as_str();
        if !allowed.contains(&index) {
            return Err(AuthFailure::new(
                AuthReason::ProviderNotAllowed,
                format!("tokens of `{name}` are not accepted on this route"),
            )
            .with_provider(name));
        }
        let hash = provider.cache.hash(token);
        if provider.cache.recently_rejected(hash, now) {
            return Err(AuthFailure::new(
                AuthReason::BadSignature,
                "the signature does not verify",
            )
            .with_provider(name));
        }
        if provider.keys().is_none() {
            provider.refetch_if_due().await;
        }
        let Some(keys) = provider.keys() else {
            return Err(unavailable(name));
        };
        let result = verify_signature_refetching(provider, &parts, keys).await;
        if let Err(failure) = result {
            if failure.reason == AuthReason::BadSignature {
                provider.cache.remember_rejected(hash, now);
            }
            return Err(failure.with_provider(name));
        }
        let rules = provider.rules().ok_or_else(|| unavailable(name))?;
        check_claims(&parts.payload, &rules, now).map_err(|f| f.with_provider(name))?;
        let exp = parts
            .payload
            .get("exp")
            .and_then(Value::as_f64)
            .unwrap_or(0.0) as u64;
        let identity = Arc::new(Identity::from_claims(parts.payload));
        provider.cache.insert(
            hash,
            token,
            identity.clone(),
            parts.header.kid.clone(),
            exp,
            now,
        );
        Ok(Verified {
            provider: index,
            identity,
        })
    }

    fn unknown_issuer(&self, issuer: &str, allowed: &[usize]) -> AuthFailure {
        let candidates: Vec<&Arc<Provider>> = allowed.iter().map(|i| &self.providers[*i]).collect();
        if let Some(pending) = candidates.iter().find(|p| p.rules().is_none()) {
            return unavailable(&pending.settings.name);
        }
        let hint = candidates.iter().find_map(|p| {
            let expected = p.rules()?.issuer.clone();
            issuer_hint(issuer, &expected).map(|hint| {
                format!(
                    "; provider `{}` expects `{expected}`: {hint}",
                    p.settings.name
                )
            })
        });
        let shown = if issuer.is_empty() {
            "(none)".to_owned()
        } else {
            format!("`{}`", issuer.chars().take(200).collect::<String>())
        };
        AuthFailure::new(
            AuthReason::UnknownIssuer,
            format!(
                "the token's issuer {shown} matches no identity provider of this route{}",
                hint.unwrap_or_default()
            ),
        )
    }
}

fn unavailable(name: &str) -> AuthFailure {
    AuthFailure::new(
        AuthReason::ProviderUnavailable,
        format!("identity provider `{name}` has no keys yet (its discovery or JWKS endpoint is unreachable); retry shortly"),
    )
    .with_provider(name)
}

/// Verifies the signature with `keys`; a `kid` the set does not know triggers one (rate-limited)
/// JWKS refetch and a second try, so that a key rotated in at the provider works at once.
pub async fn verify_signature_refetching(
    provider: &Arc<Provider>,
    parts: &TokenParts<'_>,
    keys: Arc<KeySet>,
) -> Result<(), AuthFailure> {
    let algorithms = &provider.settings.algorithms;
    let result = verify_signature(parts, &keys, algorithms);
    if let (Err(failure), Some(kid)) = (&result, &parts.header.kid) {
        if failure.reason == AuthReason::UnknownKid && provider.refetch_for_kid(kid).await {
            let keys = provider.keys().unwrap_or(keys);
            return verify_signature(parts, &keys, algorithms);
        }
    }
    result
}
