//! The snapshot that requests read: a [`CompiledConfig`] together with the services it needs
//! running — the identity providers (keys fetched, refresh scheduled), the rate limiter and the
//! upstream health checks. A request can only ever see a fully activated snapshot: there is no
//! `Option` for a service a route needs, so a missing limiter cannot let a request through.
//!
//! [`Snapshot::activate`] is the one way to build one. On a reload it is given the previous
//! snapshot, whose unchanged providers (with their keys and token caches), rate-limit counters
//! and Redis connections carry over.

use crate::compile::CompiledConfig;
use crate::oidc::Authenticator;
use crate::ratelimit::RateLimiter;
use crate::sign_in::service::SignIn;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up and reloads wait for a new provider's first keys before serving anyway
/// (requests for it answer 503 until its keys arrive).
const INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle rate-limit keys are dropped from the in-process stores.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A compiled configuration with its services running.
pub struct Snapshot {
    pub config: CompiledConfig,
    /// Every identity provider of the configuration.
    pub authenticator: Arc<Authenticator>,
    /// Every rate-limit policy of the configuration.
    pub rate_limiter: Arc<RateLimiter>,
    /// The `concurrency` policies' slots (kept across reloads for unchanged policies).
    pub concurrency: Arc<crate::ratelimit::ConcurrencyLimiter>,
    /// Browser sign-in, when `browser_sign_in` is configured (the compiler refuses a route
    /// with `auth.sign_in` without it).
    pub sign_in: Option<Arc<SignIn>>,
    /// The span exporter, when `telemetry.tracing` is configured (kept across reloads while
    /// its settings do not change).
    pub spans: Option<Arc<crate::telemetry::SpanExporter>>,
    /// The gateway's identity-assertion keys (kept across reloads).
    pub assertions: Arc<crate::identity_assertion::AssertionSigner>,
}

/// Why a compiled configuration could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("cannot start the identity providers: {0}")]
    Providers(#[from] crate::oidc::SetupError),
    #[error("cannot generate the identity-assertion signing key")]
    AssertionKey,
}

impl Snapshot {
    /// Starts the services of `config` on the control runtime: fetches the keys of new identity
    /// providers (bounded by a timeout), builds the rate limiter and starts health checks.
    /// `previous` is the snapshot being replaced, whose unchanged parts are reused.
    pub async fn activate(
        config: CompiledConfig,
        previous: Option<&Snapshot>,
        control: &tokio::runtime::Handle,
    ) -> Result<Snapshot, ActivationError> {
        let previous_authenticator = previous.map(|p| p.authenticator.as_ref());
        let authenticator = Authenticator::new(
            config.provider_settings.clone(),
            config.token_sources.clone(),
            control.clone(),
            previous_authenticator,
        )?;
        authenticator
            .start(INITIAL_FETCH_TIMEOUT, previous_authenticator)
            .await;
        let rate_limiter = Arc::new(RateLimiter::new(
            &config.rate_limits,
            config.redis.clone(),
            previous.map(|p| p.rate_limiter.as_ref()),
        ));
        sweep_idle_keys(&rate_limiter, control);
        rate_limiter.start_sync(control);
        let concurrency = Arc::new(crate::ratelimit::ConcurrencyLimiter::new(
            &config.concurrency_limits,
            previous.map(|p| p.concurrency.as_ref()),
        ));
        for upstream in &config.upstreams {
            upstream.start(control).await;
        }
        let sign_in = sign_in_of(
            &config,
            config.redis.as_ref(),
            previous.and_then(|p| p.sign_in.as_deref()),
        );
        let assertions = assertion_signer(&config, previous)?;
        let spans = config.tracing.clone().map(|settings| {
            let kept = previous
                .and_then(|p| p.spans.clone())
                .filter(|exporter| exporter.settings == settings);
            kept.unwrap_or_else(|| {
                Arc::new(crate::telemetry::SpanExporter::start(settings, control))
            })
        });
        Ok(Snapshot {
            spans,
            assertions,
            config,
            authenticator: Arc::new(authenticator),
            rate_limiter,
            concurrency,
            sign_in,
        })
    }

    /// A snapshot for explaining requests without serving them (`portcullis explain`): no
    /// health checks, no Redis, no span export, no sync tasks. With `fetch`, providers fetch
    /// their discovery and keys (bounded by a timeout); without, a discovery provider is
    /// assumed to have the issuer its discovery URL names, and its keys stay unknown.
    pub async fn inspect(
        config: CompiledConfig,
        fetch: bool,
        control: &tokio::runtime::Handle,
    ) -> Result<Snapshot, ActivationError> {
        let authenticator = Authenticator::new(
            config.provider_settings.clone(),
            config.token_sources.clone(),
            control.clone(),
            None,
        )?;
        if fetch {
            authenticator.start(INITIAL_FETCH_TIMEOUT, None).await;
        }
        for provider in &authenticator.providers {
            if let crate::oidc::settings::KeySource::Discovery(url) = &provider.settings.source {
                if let Some(issuer) = url.strip_suffix("/.well-known/openid-configuration") {
                    provider.assume_issuer(issuer);
                }
            }
        }
        let rate_limiter = Arc::new(RateLimiter::new(&config.rate_limits, None, None));
        let concurrency = Arc::new(crate::ratelimit::ConcurrencyLimiter::new(
            &config.concurrency_limits,
            None,
        ));
        let sign_in = sign_in_of(&config, None, None);
        let assertions = assertion_signer(&config, None)?;
        Ok(Snapshot {
            spans: None,
            assertions,
            config,
            authenticator: Arc::new(authenticator),
            rate_limiter,
            concurrency,
            sign_in,
        })
    }

    /// Why the snapshot cannot serve every route yet, or `None` when it can (`/readyz`).
    pub fn not_ready_reason(&self) -> Option<String> {
        let pending = self.authenticator.not_ready();
        if !pending.is_empty() {
            return Some(format!(
                "identity provider(s) without keys: {}",
                pending.join(", ")
            ));
        }
        self.config
            .upstreams
            .iter()
            .find(|upstream| upstream.healthy_targets() == 0)
            .map(|upstream| {
                format!(
                    "upstream `{}` has no healthy target",
                    upstream.settings.name
                )
            })
    }
}

/// Browser sign-in, when configured: sessions in `redis` when given (and its store asks for
/// it), revocations and refreshes carried over from `previous`.
fn sign_in_of(
    config: &CompiledConfig,
    redis: Option<&crate::ratelimit::RedisSettings>,
    previous: Option<&SignIn>,
) -> Option<Arc<SignIn>> {
    let settings = config.sign_in.clone()?;
    Some(Arc::new(SignIn::new(
        settings,
        config.provider_clients.clone(),
        config.provider_names.clone(),
        redis,
        previous,
    )))
}

/// Drops idle rate-limit keys every few seconds, until the limiter is replaced and dropped.
fn sweep_idle_keys(limiter: &Arc<RateLimiter>, control: &tokio::runtime::Handle) {
    let weak = Arc::downgrade(limiter);
    control.spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            match weak.upgrade() {
                Some(limiter) => limiter.sweep(),
                None => return,
            }
        }
    });
}

/// The identity-assertion signer: the key file's (the previous signer kept while the key is
/// the same, and published as the previous key when it changed), else the previous snapshot's
/// generated key, else a new one.
fn assertion_signer(
    config: &CompiledConfig,
    previous: Option<&Snapshot>,
) -> Result<Arc<crate::identity_assertion::AssertionSigner>, ActivationError> {
    use crate::identity_assertion::AssertionSigner;
    let previous = previous.map(|p| &p.assertions);
    match (&config.assertion_key, previous) {
        (Some(der), previous) => {
            let signer = AssertionSigner::with_key(der, previous.map(|p| p.as_ref()))
                .ok_or(ActivationError::AssertionKey)?;
            Ok(match previous {
                Some(kept) if kept.current_kid() == signer.current_kid() => kept.clone(),
                _ => Arc::new(signer),
            })
        }
        (None, Some(kept)) => Ok(kept.clone()),
        (None, None) => AssertionSigner::new()
            .map(Arc::new)
            .ok_or(ActivationError::AssertionKey),
    }
}
