//! The request-path entry point: extract the token, choose its provider by the `iss` claim
//! (a lookup, never by trying keys), consult the verified-token cache, verify, and return the
//! verified claims or an [`AuthFailure`].

use super::failure::{AuthFailure, AuthReason};
use super::keys::KeySet;
use super::provider::{unix_now, Provider};
use super::settings::ProviderSettings;
use super::sources::TokenSources;
use super::token_trace::{describe_header, describe_key_source, record_claim_checks, TokenTrace};
use super::verify::{check_claims, issuer_hint, split, verify_signature, TokenParts};
use super::SetupError;
use crate::decision_trace::Verdict;
use crate::metrics::token_cache_lookups;
use crate::policy::{Identity, RawJson};
use pingora::http::RequestHeader;
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
        self.authenticate_traced(request, allowed, token_required, None)
            .await
    }

    /// [`Authenticator::authenticate`], recording each check into `trace` when given.
    pub async fn authenticate_traced(
        &self,
        request: &RequestHeader,
        allowed: &[usize],
        token_required: bool,
        mut trace: Option<TokenTrace<'_>>,
    ) -> Result<Option<Verified>, AuthFailure> {
        let extracted = self.sources.extract(request);
        if let Some(trace) = trace.as_mut() {
            let (verdict, detail) = match &extracted {
                Ok(Some(token)) => (
                    Verdict::Pass,
                    format!("a bearer token ({} bytes)", token.len()),
                ),
                Ok(None) if token_required => {
                    (Verdict::Fail, "none, and the route requires one".into())
                }
                Ok(None) => (
                    Verdict::Skip,
                    "none (the route takes requests without one)".into(),
                ),
                Err(failure) => (Verdict::Fail, failure.description.clone()),
            };
            trace.step.check("token", verdict, detail);
        }
        let token = match extracted? {
            Some(token) => token,
            None if token_required => {
                return Err(AuthFailure::new(
                    AuthReason::MissingToken,
                    "this route needs a bearer token",
                ));
            }
            None => return Ok(None),
        };
        self.authenticate_token_traced(token, allowed, trace)
            .await
            .map(Some)
    }

    /// Verifies `token` for a route accepting `allowed` providers: the verified-token cache
    /// first, then the signature and claims. A browser session's access token takes this path
    /// too, so sessions and bearer tokens meet the same checks.
    pub async fn authenticate_token(
        &self,
        token: &str,
        allowed: &[usize],
    ) -> Result<Verified, AuthFailure> {
        self.authenticate_token_traced(token, allowed, None).await
    }

    /// [`Authenticator::authenticate_token`], recording each check into `trace` when given.
    pub async fn authenticate_token_traced(
        &self,
        token: &str,
        allowed: &[usize],
        mut trace: Option<TokenTrace<'_>>,
    ) -> Result<Verified, AuthFailure> {
        let now = unix_now();
        for &index in allowed {
            let cache = &self.providers[index].cache;
            if !cache.is_enabled() {
                continue;
            }
            if let Some(identity) = cache.get(cache.hash(token), token, now) {
                token_cache_lookups(true).inc();
                if let Some(trace) = trace.as_mut() {
                    let name = &self.providers[index].settings.name;
                    trace.step.check(
                        "token cache",
                        Verdict::Pass,
                        format!("verified earlier for provider `{name}` and still valid"),
                    );
                }
                return Ok(Verified {
                    provider: index,
                    identity,
                });
            }
        }
        token_cache_lookups(false).inc();
        let result = self.verify(token, allowed, now, trace.as_mut()).await;
        if let (Some(trace), Err(failure)) = (trace.as_mut(), &result) {
            let already = trace.step.checks.iter().any(|c| c.verdict == Verdict::Fail);
            if !already {
                trace.step.check(
                    failure.reason.as_str(),
                    Verdict::Fail,
                    failure.description.clone(),
                );
            }
        }
        result
    }

    async fn verify(
        &self,
        token: &str,
        allowed: &[usize],
        now: u64,
        mut trace: Option<&mut TokenTrace<'_>>,
    ) -> Result<Verified, AuthFailure> {
        let parts = split(token)?;
        if let Some(trace) = trace.as_mut() {
            trace
                .step
                .check("header", Verdict::Note, describe_header(&parts));
        }
        let issuer = parts
            .claims
            .get("iss")
            .and_then(RawJson::as_str)
            .unwrap_or_default();
        let Some(index) = self
            .providers
            .iter()
            .position(|p| p.rules().is_some_and(|rules| rules.issuer == issuer))
        else {
            return Err(self.unknown_issuer(&issuer, allowed));
        };
        let provider = &self.providers[index];
        let name = provider.settings.name.as_str();
        if let Some(trace) = trace.as_mut() {
            trace.step.check(
                "provider",
                Verdict::of(allowed.contains(&index)),
                format!("`{name}`, chosen by the token's `iss`"),
            );
        }
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
        let offline = trace.as_ref().is_some_and(|t| t.offline);
        if provider.keys().is_none() && !offline {
            provider.refetch_if_due().await;
        }
        match provider.keys() {
            Some(keys) => {
                let result = verify_signature_refetching(provider, &parts, keys).await;
                if let Some(trace) = trace.as_mut() {
                    let source = describe_key_source(&provider.settings);
                    let detail = match &result {
                        Ok(()) => format!("verified with a key from {source}"),
                        Err(failure) => format!("{} (keys: {source})", failure.description),
                    };
                    trace
                        .step
                        .check("signature", Verdict::of(result.is_ok()), detail);
                }
                if let Err(failure) = result {
                    if failure.reason == AuthReason::BadSignature {
                        provider.cache.remember_rejected(hash, now);
                    }
                    return Err(failure.with_provider(name));
                }
            }
            None if offline => {
                if let Some(trace) = trace.as_mut() {
                    let source = describe_key_source(&provider.settings);
                    trace.step.check(
                        "signature",
                        Verdict::Skip,
                        format!("keys unknown offline ({source}); run with --fetch to verify it"),
                    );
                }
            }
            None => return Err(unavailable(name)),
        }
        let rules = provider.rules().ok_or_else(|| unavailable(name))?;
        match trace.as_mut() {
            Some(trace) => record_claim_checks(trace.step, &parts.claims, &rules, now),
            None => check_claims(&parts.claims, &rules, now),
        }
        .map_err(|f| f.with_provider(name))?;
        let exp = parts
            .claims
            .get("exp")
            .and_then(RawJson::as_f64)
            .unwrap_or(0.0) as u64;
        let identity = Arc::new(Identity::from_claims(parts.claims));
        if !offline {
            provider.cache.insert(
                hash,
                token,
                identity.clone(),
                parts.header.kid.clone(),
                exp,
                now,
            );
        }
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
