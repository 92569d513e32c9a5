//! A running identity provider: its key set behind an `ArcSwap` (no lock on the request path),
//! the initial fetch, the background refresh, and the single-flight refetch on an unknown `kid`.
//!
//! Refresh: every `refresh_interval`, sooner when the JWKS says `Cache-Control: max-age` (never
//! below 30 s), and with backoff from 1 s after a failure. A failed fetch keeps the last good
//! keys; their age is `time() - portcullis_jwks_last_success_timestamp_seconds`.
//! Unknown kid: one fetch, shared by every waiting request, at most once per
//! `min_refetch_interval` — a flood of random kids costs the IdP one request per interval.

use super::cache::TokenCache;
use super::endpoints::ProviderEndpoints;
use super::fetch::{is_loopback, FetchError, Fetcher};
use super::keys::{KeySet, KeySetError};
use super::settings::{KeySource, ProviderSettings};
use super::verify::ClaimRules;
use super::SetupError;
use crate::metrics::metrics;
use arc_swap::ArcSwapOption;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The state of one provider.
pub struct Provider {
    pub settings: ProviderSettings,
    keys: ArcSwapOption<KeySet>,
    /// Claim rules with the effective issuer (known after discovery).
    rules: ArcSwapOption<ClaimRules>,
    jwks_uri: ArcSwapOption<String>,
    /// Sign-in, token and logout endpoints from discovery (absent without discovery).
    endpoints: ArcSwapOption<ProviderEndpoints>,
    fetcher: Fetcher,
    /// Held while a fetch runs (single flight); holds when the last on-demand fetch (unknown
    /// kid, no keys) started, which `min_refetch_interval` spaces out. Scheduled refreshes do
    /// not count against it.
    refetch: tokio::sync::Mutex<Option<Instant>>,
    last_success_unix: AtomicU64,
    pub cache: TokenCache,
    /// Introspection answers and flights (routes with `auth.introspect`).
    pub introspection: super::introspection_cache::IntrospectionCache,
    runtime: tokio::runtime::Handle,
    logged_skips: Mutex<HashSet<String>>,
    /// `portcullis_auth_decisions_total{provider, allowed, ok}`, looked up once.
    allowed_decisions: std::sync::OnceLock<prometheus::IntCounter>,
}

/// Why fetching a provider's keys (discovery document, then JWKS) failed, at start, on
/// refresh or on an unknown `kid`; the last good keys stay in use.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    /// The HTTP request for the discovery document or the JWKS failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url}: the discovery document is not JSON: {error}")]
    DiscoveryNotJson {
        url: String,
        error: serde_json::Error,
    },
    #[error("{url}: no `issuer`")]
    DiscoveryWithoutIssuer { url: String },
    #[error("{url}: no `jwks_uri`")]
    DiscoveryWithoutJwksUri { url: String },
    /// The discovery document names another issuer than the configured one.
    #[error("the discovered issuer `{discovered}` differs from the configured `{configured}` (they must be equal exactly)")]
    IssuerMismatch {
        discovered: String,
        configured: String,
    },
    /// The JWKS document is malformed.
    #[error("{uri}: {error}")]
    Jwks { uri: String, error: KeySetError },
    /// Every entry of the JWKS was skipped.
    #[error("{uri}: the JWKS holds no usable signing key")]
    NoSigningKey { uri: String },
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Provider {
    /// Builds the provider; static keys are loaded at once, remote ones by [`Provider::start`].
    pub fn new(
        settings: ProviderSettings,
        runtime: tokio::runtime::Handle,
    ) -> Result<Arc<Provider>, SetupError> {
        let fetcher = Fetcher::new(
            settings.fetch_timeout,
            settings.max_jwks_size,
            settings.ca_pem.as_deref(),
        )?;
        let provider = Arc::new(Provider {
            cache: TokenCache::new(settings.cache_entries, settings.cache_ttl.as_secs()),
            introspection: Default::default(),
            keys: ArcSwapOption::empty(),
            rules: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            endpoints: ArcSwapOption::empty(),
            fetcher,
            refetch: tokio::sync::Mutex::new(None),
            last_success_unix: AtomicU64::new(0),
            runtime,
            logged_skips: Mutex::new(HashSet::new()),
            allowed_decisions: std::sync::OnceLock::new(),
            settings,
        });
        if let Some(issuer) = &provider.settings.issuer {
            provider.set_issuer(issuer);
        }
        match &provider.settings.source {
            KeySource::StaticJwks(text) => {
                let (set, skipped) = KeySet::from_jwks(text.as_bytes())?;
                provider.install(set, skipped);
            }
            KeySource::StaticPem(pem) => provider.install(KeySet::from_pem(pem)?, Vec::new()),
            KeySource::Remote(uri) => provider.jwks_uri.store(Some(Arc::new(uri.clone()))),
            KeySource::Discovery(_) => {}
        }
        for url in [
            provider.settings.source_url(),
            provider.settings.issuer.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if url.starts_with("http://") && !is_loopback(url) {
                tracing::warn!(provider = %provider.settings.name, %url, "identity provider over plain http: tokens' keys can be forged in transit");
            }
        }
        Ok(provider)
    }

    /// Takes `issuer` as the provider's issuer without discovery: `portcullis explain` offline
    /// assumes the issuer its discovery URL names (OIDC Discovery §4: the URL is the issuer plus
    /// `/.well-known/openid-configuration`).
    pub fn assume_issuer(&self, issuer: &str) {
        if self.rules.load().is_none() {
            self.set_issuer(issuer);
        }
    }

    fn set_issuer(&self, issuer: &str) {
        let mut rules = self.settings.rules_template.clone();
        rules.issuer = issuer.to_owned();
        self.rules.store(Some(Arc::new(rules)));
    }

    /// The counter of requests this provider's tokens were allowed on.
    pub fn allowed_decisions(&self) -> &prometheus::IntCounter {
        self.allowed_decisions.get_or_init(|| {
            metrics().auth_decisions.with_label_values(&[
                self.settings.name.as_str(),
                "allowed",
                "ok",
            ])
        })
    }

    /// The claim rules, once the issuer is known.
    pub fn rules(&self) -> Option<Arc<ClaimRules>> {
        self.rules.load_full()
    }

    /// The endpoints from discovery, once it was fetched.
    pub fn endpoints(&self) -> Option<Arc<ProviderEndpoints>> {
        self.endpoints.load_full()
    }

    /// The HTTP client of this provider (timeouts, CA), for calls to its endpoints.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Whether the provider has keys to verify with.
    pub fn ready(&self) -> bool {
        self.keys.load().is_some() && self.rules.load().is_some()
    }

    fn install(&self, mut set: KeySet, skipped: Vec<String>) {
        if let Some(secret) = &self.settings.shared_secret {
            set.add_shared_secret(secret.as_bytes());
        }
        let mut logged = self.logged_skips.lock().unwrap_or_else(|p| p.into_inner());
        for entry in skipped {
            if logged.insert(entry.clone()) {
                tracing::info!(provider = %self.settings.name, "JWKS entry skipped: {entry}");
            }
        }
        drop(logged);
        let name = self.settings.name.as_str();
        metrics()
            .jwks_keys
            .with_label_values(&[name])
            .set(set.len() as i64);
        self.cache
            .retain_kids(|kid| kid.is_none_or(|kid| set.contains_kid(kid)));
        self.keys.store(Some(Arc::new(set)));
        let now = unix_now();
        self.last_success_unix.store(now, Ordering::Relaxed);
        metrics()
            .jwks_last_success
            .with_label_values(&[name])
            .set(now as f64);
    }

    /// Fetches discovery (if needed) and the JWKS once; returns the max-age the JWKS asked for.
    async fn fetch(&self) -> Result<Option<Duration>, KeyFetchError> {
        if self.jwks_uri.load().is_none() {
            let KeySource::Discovery(url) = &self.settings.source else {
                return Ok(None);
            };
            let document = self.fetcher.get(url).await?;
            let discovery: serde_json::Value =
                serde_json::from_slice(&document.body).map_err(|error| {
                    KeyFetchError::DiscoveryNotJson {
                        url: url.clone(),
                        error,
                    }
                })?;
            let issuer = discovery
                .get("issuer")
                .and_then(|v| v.as_str())
                .ok_or_else(|| KeyFetchError::DiscoveryWithoutIssuer { url: url.clone() })?;
            let jwks_uri = discovery
                .get("jwks_uri")
                .and_then(|v| v.as_str())
                .ok_or_else(|| KeyFetchError::DiscoveryWithoutJwksUri { url: url.clone() })?;
            if let Some(configured) = &self.settings.issuer {
                if configured != issuer {
                    return Err(KeyFetchError::IssuerMismatch {
                        discovered: issuer.to_owned(),
                        configured: configured.clone(),
                    });
                }
            }
            self.set_issuer(issuer);
            self.jwks_uri.store(Some(Arc::new(jwks_uri.to_owned())));
            self.endpoints
                .store(Some(Arc::new(ProviderEndpoints::from_discovery(
                    &discovery,
                ))));
        }
        let Some(uri) = self.jwks_uri.load_full() else {
            return Ok(None);
        };
        let fetched = self.fetcher.get(&uri).await?;
        let (set, skipped) =
            KeySet::from_jwks(&fetched.body).map_err(|error| KeyFetchError::Jwks {
                uri: uri.to_string(),
                error,
            })?;
        if set.is_empty() {
            return Err(KeyFetchError::NoSigningKey {
                uri: uri.to_string(),
            });
        }
        self.install(set, skipped);
        Ok(fetched.max_age)
    }

    /// One fetch with metrics and logging; keeps the last good keys on failure.
    async fn fetch_and_record(&self) -> Result<Option<Duration>, KeyFetchError> {
        let result = self.fetch().await;
        let name = self.settings.name.as_str();
        let label = if result.is_ok() { "success" } else { "failure" };
        metrics()
            .jwks_fetches
            .with_label_values(&[name, label])
            .inc();
        if let Err(e) = &result {
            let age =
                self.keys.load().is_some().then(|| {
                    unix_now().saturating_sub(self.last_success_unix.load(Ordering::Relaxed))
                });
            match age {
                Some(age) => {
                    tracing::warn!(provider = name, error = %e, key_age_seconds = age, "key refresh failed; the last good keys stay in use")
                }
                None => {
                    tracing::error!(provider = name, error = %e, "cannot fetch keys; tokens of this provider are answered 503 until it succeeds")
                }
            }
        }
        result
    }

    /// Starts the provider: the first fetch (bounded by `timeout`), then the background refresh.
    pub async fn start(self: &Arc<Self>, timeout: Duration) {
        if matches!(
            self.settings.source,
            KeySource::Discovery(_) | KeySource::Remote(_)
        ) {
            let this = self.clone();
            let first = self.runtime.spawn(async move {
                let _guard = this.refetch.lock().await;
                this.fetch_and_record().await
            });
            let max_age = tokio::time::timeout(timeout, first)
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|r| r.ok())
                .flatten();
            self.spawn_refresh(max_age);
        }
    }

    fn spawn_refresh(self: &Arc<Self>, first_max_age: Option<Duration>) {
        let weak: Weak<Provider> = Arc::downgrade(self);
        let mut delay = self.next_refresh(first_max_age, self.ready());
        self.runtime.spawn(async move {
            let mut failures = 0u32;
            loop {
                tokio::time::sleep(delay).await;
                let Some(provider) = weak.upgrade() else {
                    return;
                };
                let result = {
                    let _guard = provider.refetch.lock().await;
                    provider.fetch_and_record().await
                };
                delay = match result {
                    Ok(max_age) => {
                        failures = 0;
                        provider.next_refresh(max_age, true)
                    }
                    Err(_) => {
                        failures = failures.saturating_add(1);
                        Duration::from_secs(1 << failures.min(6))
                            .min(provider.settings.refresh_interval)
                    }
                };
            }
        });
    }

    fn next_refresh(&self, max_age: Option<Duration>, succeeded: bool) -> Duration {
        if !succeeded {
            return Duration::from_secs(1).min(self.settings.refresh_interval);
        }
        let interval = self.settings.refresh_interval;
        max_age.map_or(interval, |age| {
            age.clamp(Duration::from_secs(30).min(interval), interval)
        })
    }

    /// Called for a token whose kid is unknown: fetches once for everybody waiting, at most once
    /// per `min_refetch_interval`. Returns whether the kid is known afterwards.
    pub async fn refetch_for_kid(self: &Arc<Self>, kid: &str) -> bool {
        let this = self.clone();
        let kid = kid.to_owned();
        let task = self.runtime.spawn(async move {
            let mut last_attempt = this.refetch.lock().await;
            if this.keys().is_some_and(|keys| keys.contains_kid(&kid)) {
                return true;
            }
            if last_attempt.is_some_and(|at| at.elapsed() < this.settings.min_refetch_interval) {
                return false;
            }
            *last_attempt = Some(Instant::now());
            let _ = this.fetch_and_record().await;
            this.keys().is_some_and(|keys| keys.contains_kid(&kid))
        });
        task.await.unwrap_or(false)
    }

    /// Fetches now unless a fetch ran within `min_refetch_interval` (for a provider without keys).
    pub async fn refetch_if_due(self: &Arc<Self>) {
        let this = self.clone();
        let task = self.runtime.spawn(async move {
            let mut last_attempt = this.refetch.lock().await;
            if this.ready()
                || last_attempt.is_some_and(|at| at.elapsed() < this.settings.min_refetch_interval)
            {
                return;
            }
            *last_attempt = Some(Instant::now());
            let _ = this.fetch_and_record().await;
        });
        let _ = task.await;
    }
}

impl ProviderSettings {
    fn source_url(&self) -> Option<&str> {
        match &self.source {
            KeySource::Discovery(url) | KeySource::Remote(url) => Some(url),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_fetch_error_explains_an_issuer_mismatch() {
        let error = KeyFetchError::IssuerMismatch {
            discovered: "https://idp/realms/a".into(),
            configured: "https://idp/realms/b".into(),
        };
        assert_eq!(
            error.to_string(),
            "the discovered issuer `https://idp/realms/a` differs from the configured `https://idp/realms/b` (they must be equal exactly)"
        );
    }
}
