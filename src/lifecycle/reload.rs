//! The live configuration and its reload: read the file again, compile, activate against the
//! current snapshot (which keeps keys, caches and counters), swap. SIGHUP and `POST /reload`
//! both come here; one reload runs at a time and a failed one leaves the current snapshot
//! serving.

use crate::compile::{self, CompiledConfig};
use crate::config::ConfigErrors;
use crate::snapshot::{ActivationError, Snapshot};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Why a reload was refused; the previous configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this instance runs a generated configuration; nothing to reload")]
    GeneratedConfig,
    #[error("{0}")]
    Invalid(ConfigErrors),
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

    /// Reads, compiles and activates the file again, then swaps it in.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let Some(path) = &self.config_path else {
            return Err(ReloadError::GeneratedConfig);
        };
        let _one_at_a_time = self.reload_lock.lock().await;
        let reloads = &crate::metrics::metrics().config_reloads;
        let result = self.replace_from(path).await;
        let outcome = if result.is_ok() { "success" } else { "invalid" };
        reloads.with_label_values(&[outcome]).inc();
        result
    }

    async fn replace_from(&self, path: &str) -> Result<(), ReloadError> {
        let fresh = compile::load_file(path).map_err(ReloadError::Invalid)?;
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
