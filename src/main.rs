//! `portcullis`: the command line. Each subcommand reads as a short script of start-up steps;
//! the work lives in the library.

use clap::{Parser, Subcommand};
use portcullis::compile;
use portcullis::config::ConfigPathArg;
use portcullis::lifecycle::{self, Signals, Stopped};
use std::process::ExitCode;

/// mimalloc: measured faster than glibc malloc on the proxy path (see benches/results).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Identity-aware edge API gateway (Keycloak / OIDC) on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[command(flatten)]
        file: ConfigPathArg,
        /// Take over the listening sockets of the running instance (after SIGQUIT to it).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Check a configuration file without starting anything (offline, like `nginx -t`).
    Validate {
        #[command(flatten)]
        file: ConfigPathArg,
    },
    /// Ask the running instance to reload its configuration (SIGHUP through its pid file).
    Reload {
        #[command(flatten)]
        file: ConfigPathArg,
    },
    /// Explain what the gateway would decide about one request, step by step (offline unless
    /// --fetch). Exit status 0 allowed, 1 refused, 2 error.
    Explain(portcullis::explain::ExplainArgs),
    /// Check, online, everything the configuration depends on: identity providers (discovery,
    /// TLS, issuer, keys, clock, client credentials), upstream targets, Redis, the admin
    /// listener. Exit status 1 when a check fails.
    Doctor {
        #[command(flatten)]
        file: ConfigPathArg,
    },
    /// Print the JSON Schema of the configuration file (conf/portcullis.schema.json).
    Schema,
    /// Run a self-contained demo on 127.0.0.1: gateway, demo API and development identity provider.
    Demo {
        /// Gateway port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The people's commands print their own findings; only errors go to the log by default.
    let quiet = matches!(cli.command, Command::Explain(_) | Command::Doctor { .. });
    init_logging(if quiet { "error" } else { "info" });
    match cli.command {
        Command::Validate { file } => validate(&file.config),
        Command::Reload { file } => reload(&file.config),
        Command::Run { file, upgrade } => {
            let Some((control, signals)) = start_control_plane() else {
                return ExitCode::FAILURE;
            };
            run(&file.config, upgrade, control, signals)
        }
        Command::Explain(args) => ExitCode::from(portcullis::explain::run(args)),
        Command::Doctor { file } => ExitCode::from(portcullis::doctor::run(&file.config)),
        Command::Schema => {
            print!("{}", portcullis::config::schema::config_schema_json());
            ExitCode::SUCCESS
        }
        Command::Demo { port } => {
            let Some((control, signals)) = start_control_plane() else {
                return ExitCode::FAILURE;
            };
            portcullis::dev::demo::run(port, control, signals)
        }
    }
}

/// The control-plane runtime and the signal handlers, first thing in the process.
fn start_control_plane() -> Option<(tokio::runtime::Runtime, Signals)> {
    match lifecycle::control_runtime() {
        Ok(control) => {
            let signals = lifecycle::signals::install(&control);
            Some((control, signals))
        }
        Err(e) => {
            eprintln!("portcullis: cannot start the control runtime: {e}");
            None
        }
    }
}

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn validate(path: &str) -> ExitCode {
    match compile::load_file(path) {
        Ok(runtime) => {
            println!("{path}: ok ({})", runtime.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{path}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn reload(path: &str) -> ExitCode {
    let compiled = match compile::load_file(path) {
        Ok(compiled) => compiled,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("not reloading: fix the file first");
            return ExitCode::FAILURE;
        }
    };
    match lifecycle::pid_file::signal_reload(&compiled.server.pid_file) {
        Ok(pid) => {
            println!("sent SIGHUP to portcullis (pid {pid})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis reload: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str, upgrade: bool, control: tokio::runtime::Runtime, signals: Signals) -> ExitCode {
    let compiled = match compile::load_file(path) {
        Ok(compiled) => compiled,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = path, summary = %compiled.summary(), "starting");
    let options = lifecycle::RunOptions {
        config_path: Some(path.to_owned()),
        upgrade,
    };
    match lifecycle::run(compiled, options, control, signals) {
        Ok(Stopped::Drained) | Ok(Stopped::ServerExited) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}
