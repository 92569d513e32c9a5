//! Builds and runs the Pingora server from a configuration snapshot: the control-plane runtime
//! (DNS, health checks, identity-provider fetches, reload), the proxy listeners (plain with h2c,
//! TLS with HTTP/2 by ALPN), the admin listener, and SIGHUP reload.

use crate::admin::AdminApp;
use crate::config::{self, RuntimeConfig};
use crate::proxy::Gateway;
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use std::sync::Arc;
use std::time::Duration;

/// How the process was started.
pub struct RunOptions {
    /// The file reloads read again; `None` for generated configurations (demo).
    pub config_path: Option<String>,
    /// Take over the listening sockets of a running instance (Pingora graceful upgrade).
    pub upgrade: bool,
}

/// The shared state of a running gateway.
pub struct GatewayHandle {
    pub config: Arc<ArcSwap<RuntimeConfig>>,
    pub control: tokio::runtime::Handle,
    pub config_path: Option<String>,
}

/// Starts the control-plane runtime that runs background work off the request path.
pub fn control_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-control")
        .enable_all()
        .build()
}

/// Brings a freshly compiled snapshot to life: resolves upstreams, starts health checks.
pub async fn activate(config: &RuntimeConfig, control: &tokio::runtime::Handle) {
    for upstream in &config.upstreams {
        upstream.start(control).await;
    }
}

/// Reads, compiles and activates the file again, then swaps it in. The old snapshot keeps
/// serving when anything fails.
pub async fn reload(handle: &GatewayHandle) -> Result<(), String> {
    let Some(path) = &handle.config_path else {
        return Err("this instance runs a generated configuration; nothing to reload".into());
    };
    let fresh = config::load_file(path).map_err(|errors| errors.to_string())?;
    let current = handle.config.load();
    if fresh.server != current.server || fresh.admin_listen != current.admin_listen {
        tracing::warn!(
            "listener, TLS or thread settings changed: they take effect after a restart"
        );
    }
    activate(&fresh, &handle.control).await;
    handle.config.store(Arc::new(fresh));
    Ok(())
}

/// Signal streams installed at the very start of the process.
pub struct Signals {
    hangups: Option<tokio::signal::unix::Signal>,
}

/// Replaces SIGHUP's default action (terminate) before anything else runs; hang-ups that arrive
/// before the gateway is up are queued and handled as reloads once it is.
pub fn install_signal_handlers(control: &tokio::runtime::Runtime) -> Signals {
    let registered = control
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) });
    match registered {
        Ok(stream) => Signals {
            hangups: Some(stream),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload by signal is off");
            Signals { hangups: None }
        }
    }
}

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(
    initial: RuntimeConfig,
    options: RunOptions,
    control: tokio::runtime::Runtime,
    signals: Signals,
) -> ! {
    let handle = Arc::new(GatewayHandle {
        config: Arc::new(ArcSwap::from_pointee(initial)),
        control: control.handle().clone(),
        config_path: options.config_path.clone(),
    });
    if let Some(hangups) = signals.hangups {
        reload_on_sighup(&handle, hangups);
    }
    control.block_on(activate(&handle.config.load(), &handle.control));

    let settings = handle.config.load().server.clone();
    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(settings.shutdown_timeout.as_secs()),
        upgrade_sock: format!("{}.upgrade.sock", settings.pid_file),
        pid_file: settings.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(handle.config.clone()),
        "portcullis",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut server_options = HttpServerOptions::default();
        server_options.h2c = settings.h2c;
        app.server_options = Some(server_options);
    }
    for address in &settings.listen {
        proxy.add_tcp(&address.to_string());
    }
    if let Some(tls) = &settings.tls {
        for address in &tls.listen {
            match TlsSettings::intermediate(&tls.certificate, &tls.private_key) {
                Ok(mut tls_settings) => {
                    if tls.http2 {
                        tls_settings.enable_h2();
                    }
                    proxy.add_tls_with_settings(&address.to_string(), None, tls_settings);
                }
                Err(e) => {
                    eprintln!("portcullis: cannot load the TLS certificate or key: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    server.add_service(proxy);

    if let Some(admin_address) = handle.config.load().admin_listen {
        let mut admin = Service::new("portcullis admin".to_owned(), AdminApp::new(handle.clone()));
        admin.add_tcp(&admin_address.to_string());
        server.add_service(admin);
    }
    // The control runtime must outlive the server; Pingora exits the process itself.
    std::mem::forget(control);
    server.run_forever()
}

/// Reloads on every SIGHUP, coalescing bursts.
fn reload_on_sighup(handle: &Arc<GatewayHandle>, mut hangups: tokio::signal::unix::Signal) {
    let handle = handle.clone();
    let control = handle.control.clone();
    control.spawn(async move {
        while hangups.recv().await.is_some() {
            match reload(&handle).await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(errors) => {
                    for line in errors.lines() {
                        tracing::error!(
                            "reload refused, the previous configuration keeps serving: {line}"
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}
