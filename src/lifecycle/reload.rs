//! The live configuration and its reload: read the file again, compile, activate against the
//! current snapshot (which keeps keys, caches and counters), swap. SIGHUP and `POST /reload`
//! both come here; one reload runs at a time and a failed one leaves the current snapshot
//! serving.
//!
//! A reload never queues without bound: `POST /reload` during a reload is refused at once
//! ([`ReloadError::InProgress`]), and SIGHUPs wait for the running reload, coalesced into one
//! more reload that reads the file as it is then (the latest file wins). Reading and compiling
//! run on the blocking pool, bounded by [`COMPILE_TIME_LIMIT`], so they never hold up the control
//! runtime's async workers (key refreshes, health checks, signals).

use crate::compile::{self, CompiledConfig};
use crate::config::ConfigErrors;
use crate::snapshot::{ActivationError, Snapshot};
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// How long reading and compiling a file may take before the reload is refused. A 4 MiB file
/// compiles in well under a second; a reload that takes longer is refused rather than waited on.
pub const COMPILE_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Why a reload was refused; the previous configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this instance runs a generated configuration; nothing to reload")]
    GeneratedConfig,
    #[error("a reload is in progress; try again when it has finished")]
    InProgress,
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("reading and compiling the file took longer than {} s", COMPILE_TIME_LIMIT.as_secs())]
    CompileTimedOut,
    #[error("compiling the file stopped unexpectedly: {0}")]
    CompileAborted(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
}

/// The snapshot requests read, and what a reload needs to replace it.
pub struct LiveConfig {
    /// Swapped whole on reload; each request keeps the one it started with.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The runtime of background work (key refreshes, health checks, reloads).
    pub control: tokio::runtime::Handle,
    /// The file reloads read again; `None` for generated configurations (demo).
    config_path: Option<String>,
    /// Serializes reloads (SIGHUP and `POST /reload` may race).
    reload_lock: tokio::sync::Mutex<()>,
}

impl LiveConfig {
    /// Activates the first configuration of the process.
    pub async fn start(
        compiled: CompiledConfig,
        config_path: Option<String>,
        control: tokio::runtime::Handle,
    ) -> Result<LiveConfig, ActivationError> {
        let snapshot = Snapshot::activate(compiled, None, &control).await?;
        crate::metrics::record_active_config(
            snapshot.config.content_hash,
            snapshot.config.loaded_at,
        );
        Ok(LiveConfig {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            control,
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Reloads unless a reload is already running, in which case it answers
    /// [`ReloadError::InProgress`] at once (`POST /reload`).
    pub async fn reload_unless_busy(&self) -> Result<(), ReloadError> {
        let Ok(one_at_a_time) = self.reload_lock.try_lock() else {
            return Err(ReloadError::InProgress);
        };
        self.reload_holding(one_at_a_time).await
    }

    /// Reloads after the running reload, if any, has finished (SIGHUP): the file is read when
    /// this reload starts, so the latest file wins.
    pub async fn reload_after_current(&self) -> Result<(), ReloadError> {
        let one_at_a_time = self.reload_lock.lock().await;
        self.reload_holding(one_at_a_time).await
    }

    /// Reads, compiles and activates the file again, then swaps it in; counts the outcome.
    async fn reload_holding(
        &self,
        _one_at_a_time: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<(), ReloadError> {
        let Some(path) = &self.config_path else {
            return Err(ReloadError::GeneratedConfig);
        };
        tracing::info!(file = %path, "reloading the configuration");
        let reloads = &crate::metrics::metrics().config_reloads;
        let result = self.replace_from(path).await;
        let outcome = if result.is_ok() { "success" } else { "invalid" };
        reloads.with_label_values(&[outcome]).inc();
        result
    }

    async fn replace_from(&self, path: &str) -> Result<(), ReloadError> {
        let owned_path = path.to_owned();
        let compiling = self
            .control
            .spawn_blocking(move || compile::load_file(&owned_path));
        let fresh = tokio::time::timeout(COMPILE_TIME_LIMIT, compiling)
            .await
            .map_err(|_elapsed| ReloadError::CompileTimedOut)??
            .map_err(ReloadError::Invalid)?;
        let current = self.snapshot.load_full();
        if fresh.server != current.config.server
            || fresh.admin_listen != current.config.admin_listen
        {
            tracing::warn!(
                "listener, TLS or thread settings changed: they take effect after a restart"
            );
        }
        let fresh = Snapshot::activate(fresh, Some(&current), &self.control).await?;
        crate::metrics::record_active_config(fresh.config.content_hash, fresh.config.loaded_at);
        self.snapshot.store(Arc::new(fresh));
        Ok(())
    }
}
