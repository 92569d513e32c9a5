//! Runs the gateway: activates the first snapshot on the control-plane runtime (DNS, health
//! checks, identity-provider fetches, reloads), builds the Pingora server with the proxy and
//! admin services, and serves until SIGTERM has drained or Pingora's loop ends. It returns to
//! `main`, which ends the process; nothing here exits the process itself.

use super::admin::AdminApp;
use super::listeners::{self, ListenerError, Reservations};
use super::reload::LiveConfig;
use super::signals::{Signals, Stopped};
use crate::access_log::AccessLog;
use crate::compile::CompiledConfig;
use crate::connection::ConnectionGuard;
use crate::pipeline::Gateway;
use crate::snapshot::ActivationError;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;
use std::sync::Arc;

/// How the process was started.
pub struct RunOptions {
    /// The file reloads read again; `None` for generated configurations (demo).
    pub config_path: Option<String>,
    /// Take over the listening sockets of a running instance (Pingora graceful upgrade).
    pub upgrade: bool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error(transparent)]
    Listener(#[from] ListenerError),
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the control-plane runtime that runs background work off the request path.
pub fn control_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-control")
        .enable_all()
        .build()
}

/// Serves `compiled` until the gateway is told to stop; returns how it stopped.
pub fn run(
    compiled: CompiledConfig,
    options: RunOptions,
    control: tokio::runtime::Runtime,
    signals: Signals,
) -> Result<Stopped, StartError> {
    let live = Arc::new(control.block_on(LiveConfig::start(
        compiled,
        options.config_path.clone(),
        control.handle().clone(),
    ))?);
    let (stopped_sender, stopped) = std::sync::mpsc::channel();
    signals.serve(&live, stopped_sender.clone());

    let active = live.snapshot.load_full();
    let settings = &active.config.server;
    super::pid_file::write(&settings.pid_file);
    let access_log = AccessLog::start(&settings.access_log).map_err(StartError::AccessLog)?;
    let conf = ServerConf {
        threads: settings.threads,
        // Pingora keeps serving in-flight requests for this long after SIGTERM; the drain
        // watcher stops the process as soon as none is left.
        grace_period_seconds: Some(settings.shutdown_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: format!("{}.upgrade.sock", settings.pid_file),
        work_stealing: settings.work_stealing,
        pid_file: settings.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut reservations = Reservations::new();
    let mut proxy_app = pingora::proxy::http_proxy(
        &server.configuration,
        Gateway::new(Arc::clone(&live.snapshot), Arc::new(access_log)),
    );
    let mut server_options = HttpServerOptions::default();
    server_options.h2c = settings.h2c;
    // HTTP/2 connections have no per-request phase; they close after this long without a stream.
    server_options.h2_idle_timeout = Some(settings.keepalive_timeout);
    proxy_app.server_options = Some(server_options);
    warn_if_descriptors_are_short(settings.max_connections);
    let mut proxy = Service::new(
        "portcullis".to_owned(),
        ConnectionGuard::new(proxy_app, Arc::clone(&live.snapshot)),
    );
    listeners::add_proxy_listeners(&mut proxy, settings, &mut reservations, options.upgrade)?;
    server.add_service(proxy);
    if let Some(admin_address) = active.config.admin_listen {
        let mut admin = Service::new(
            "portcullis admin".to_owned(),
            AdminApp::new(Arc::clone(&live)),
        );
        listeners::add_admin_listener(
            &mut admin,
            admin_address,
            &mut reservations,
            options.upgrade,
        )?;
        server.add_service(admin);
    }
    drop(active);

    std::thread::Builder::new()
        .name("portcullis-server".into())
        .spawn(move || {
            server.run(RunArgs::default());
            let _ = stopped_sender.send(Stopped::ServerExited);
        })
        .map_err(StartError::Thread)?;
    // The control runtime, the reserved ports and the live configuration stay alive until the
    // gateway has stopped; then `main` returns and the process ends.
    let how = stopped.recv().unwrap_or(Stopped::ServerExited);
    drop(reservations);
    control.shutdown_background();
    Ok(how)
}

/// Each proxied connection can hold two descriptors (client and upstream): warns when the
/// process may run out of them before `server.max_connections` is reached.
fn warn_if_descriptors_are_short(max_connections: usize) {
    if let Ok((soft, _hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let needed = (max_connections as u64)
            .saturating_mul(2)
            .saturating_add(64);
        if soft < needed {
            tracing::warn!(
                max_connections,
                open_files_limit = soft,
                "the open-files limit (ulimit -n) is below 2 x server.max_connections: raise LimitNOFILE or lower max_connections"
            );
        }
    }
}
