//! Builds and runs the Pingora server from a configuration snapshot: the control-plane runtime
//! (DNS, health checks, identity-provider fetches, reload), the proxy listeners (plain with h2c,
//! TLS with HTTP/2 by ALPN), the admin listener, and SIGHUP reload.

use crate::admin::AdminApp;
use crate::config::{self, RuntimeConfig};
use crate::proxy::Gateway;
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
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
    /// Serializes reloads (SIGHUP and `POST /reload` may race).
    pub reload_lock: tokio::sync::Mutex<()>,
}

/// Starts the control-plane runtime that runs background work off the request path.
pub fn control_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-control")
        .enable_all()
        .build()
}

/// How long start-up and reload wait for identity providers' first key fetch.
const INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Brings a freshly compiled snapshot to life: resolves upstreams, starts health checks, starts
/// the identity providers (reusing unchanged ones of `previous` with their keys and caches).
pub async fn activate(
    config: &mut RuntimeConfig,
    previous: Option<&RuntimeConfig>,
    control: &tokio::runtime::Handle,
) -> Result<(), String> {
    let previous_authenticator = previous.and_then(|p| p.authenticator.as_deref());
    let authenticator = crate::oidc::Authenticator::new(
        config.provider_settings.clone(),
        config.token_sources.clone(),
        control.clone(),
        previous_authenticator,
    )?;
    authenticator
        .start(INITIAL_FETCH_TIMEOUT, previous_authenticator)
        .await;
    config.authenticator = Some(Arc::new(authenticator));
    let limiter = Arc::new(crate::ratelimit::RateLimiter::new(
        &config.rate_limits,
        config.redis.clone(),
        previous.and_then(|p| p.rate_limiter.as_deref()),
    ));
    sweep_idle_keys(&limiter, control);
    config.rate_limiter = Some(limiter);
    for upstream in &config.upstreams {
        upstream.start(control).await;
    }
    Ok(())
}

/// Drops idle rate-limit keys every few seconds, until the limiter is replaced and dropped.
fn sweep_idle_keys(limiter: &Arc<crate::ratelimit::RateLimiter>, control: &tokio::runtime::Handle) {
    let weak = Arc::downgrade(limiter);
    control.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match weak.upgrade() {
                Some(limiter) => limiter.sweep(),
                None => return,
            }
        }
    });
}

/// Reads, compiles and activates the file again, then swaps it in. The old snapshot keeps
/// serving when anything fails.
pub async fn reload(handle: &GatewayHandle) -> Result<(), String> {
    let Some(path) = &handle.config_path else {
        return Err("this instance runs a generated configuration; nothing to reload".into());
    };
    let _one_at_a_time = handle.reload_lock.lock().await;
    let reloads = &crate::metrics::metrics().config_reloads;
    let mut fresh = match config::load_file(path) {
        Ok(fresh) => fresh,
        Err(errors) => {
            reloads.with_label_values(&["invalid"]).inc();
            return Err(errors.to_string());
        }
    };
    let current = handle.config.load();
    if fresh.server != current.server || fresh.admin_listen != current.admin_listen {
        tracing::warn!(
            "listener, TLS or thread settings changed: they take effect after a restart"
        );
    }
    if let Err(e) = activate(&mut fresh, Some(&current), &handle.control).await {
        reloads.with_label_values(&["invalid"]).inc();
        return Err(e);
    }
    crate::metrics::record_active_config(fresh.content_hash, fresh.loaded_at);
    handle.config.store(Arc::new(fresh));
    reloads.with_label_values(&["success"]).inc();
    Ok(())
}

/// Signal streams installed at the very start of the process.
pub struct Signals {
    hangups: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

/// Replaces SIGHUP's default action (terminate) before anything else runs; hang-ups that arrive
/// before the gateway is up are queued and handled as reloads once it is.
pub fn install_signal_handlers(control: &tokio::runtime::Runtime) -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    let (hangups, terminate) = control.block_on(async {
        (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        )
    });
    if let Err(e) = &hangups {
        tracing::error!(error = %e, "cannot install the SIGHUP handler; reload by signal is off");
    }
    Signals {
        hangups: hangups.ok(),
        terminate: terminate.ok(),
    }
}

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(
    mut initial: RuntimeConfig,
    options: RunOptions,
    control: tokio::runtime::Runtime,
    signals: Signals,
) -> ! {
    if let Err(e) = control.block_on(activate(&mut initial, None, control.handle())) {
        eprintln!("portcullis: {e}");
        std::process::exit(1);
    }
    let handle = Arc::new(GatewayHandle {
        config: Arc::new(ArcSwap::from_pointee(initial)),
        control: control.handle().clone(),
        config_path: options.config_path.clone(),
        reload_lock: tokio::sync::Mutex::new(()),
    });
    if let Some(hangups) = signals.hangups {
        reload_on_sighup(&handle, hangups);
    }
    if let Some(terminate) = signals.terminate {
        exit_when_drained(&handle.control, terminate);
    }
    {
        let active = handle.config.load();
        crate::metrics::record_active_config(active.content_hash, active.loaded_at);
        write_pid_file(&active.server.pid_file);
    }

    let settings = handle.config.load().server.clone();
    let access_log = match crate::access_log::AccessLog::start(&settings.access_log) {
        Ok(log) => Arc::new(log),
        Err(e) => {
            eprintln!("portcullis: cannot open the access log: {e}");
            std::process::exit(1);
        }
    };
    let conf = ServerConf {
        threads: settings.threads,
        // Pingora keeps serving in-flight requests for this long after SIGTERM; the drain watcher
        // below exits as soon as none is left.
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

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(handle.config.clone(), access_log),
        "portcullis",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut server_options = HttpServerOptions::default();
        server_options.h2c = settings.h2c;
        app.server_options = Some(server_options);
    }
    for address in &settings.listen {
        // Plain listeners read straight into the HTTP parser's own buffer: Pingora's default
        // 64 KiB socket read buffer per connection made 1,000 idle keep-alive connections cost
        // 107 KiB each (42 KiB without it) for no measurable throughput gain on HTTP/1.1. TLS
        // listeners keep it: TLS reads records of up to 16 KiB.
        let listener =
            ListenerConfig::tcp(address.to_string()).l4_buffer(L4BufferSettings::default().read(0));
        proxy.add_listener(listener);
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

/// After SIGTERM (Pingora stops accepting and keeps serving for `shutdown_timeout`), exits as
/// soon as no request is in flight, so an idle gateway stops at once and a busy one drains.
fn exit_when_drained(control: &tokio::runtime::Handle, mut terminate: tokio::signal::unix::Signal) {
    control.spawn(async move {
        if terminate.recv().await.is_none() {
            return;
        }
        tracing::info!("SIGTERM: draining in-flight requests");
        let mut idle_checks = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if crate::proxy::IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                idle_checks += 1;
                if idle_checks >= 3 {
                    tracing::info!("drained; exiting");
                    std::process::exit(0);
                }
            } else {
                idle_checks = 0;
            }
        }
    });
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

/// Writes the pid file that `portcullis reload` reads; a failure is logged, not fatal.
fn write_pid_file(path: &str) {
    let path = std::path::Path::new(path);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!(pid_file = %path.display(), error = %e, "cannot write the pid file; `portcullis reload` will not find this instance");
    }
}

/// `portcullis reload`: signals the instance whose pid file the configuration names.
pub fn signal_reload(pid_file: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("cannot read the pid file {pid_file}: {e}"))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("the pid file {pid_file} does not hold a process id"))?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if status.success() {
        Ok(pid)
    } else {
        Err(format!(
            "no running instance with pid {pid} (from {pid_file})"
        ))
    }
}
