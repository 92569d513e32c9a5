//! `portcullis demo`: everything on 127.0.0.1 in one process, no external service — the
//! gateway, the demo orders API and the development identity provider — then ready-to-paste
//! curl commands that show each feature.

use super::upstream::DemoUpstream;
use crate::{config, server};
use std::process::ExitCode;
use std::time::Duration;

/// The generated demo configuration.
fn demo_config(port: u16, admin_port: u16, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{port}"]
  threads: 2
admin:
  listen: "127.0.0.1:{admin_port}"
upstreams:
  orders:
    targets: ["{upstream}"]
routes:
  - name: status
    match: {{ path: /status, methods: [GET] }}
    upstream: orders
    auth: none
  - name: orders-read
    match: {{ path: "/orders/{{id}}", methods: [GET] }}
    upstream: orders
    auth: none
    response:
      remove_headers: [Server]
      set_headers: {{ Cache-Control: no-store }}
"#
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the demo until interrupted.
pub fn run(port: u16, control: tokio::runtime::Runtime, signals: server::Signals) -> ExitCode {
    let upstream = match DemoUpstream::start_in_background_thread("127.0.0.1:0", "demo-orders") {
        Ok(upstream) => upstream,
        Err(e) => {
            eprintln!("portcullis demo: cannot start the demo upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin_port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portcullis demo: no free port for the admin listener: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = demo_config(port, admin_port, upstream.addr());
    let runtime_config = match config::compile_text("<demo>", &text) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("portcullis demo: internal configuration error:\n{errors}");
            return ExitCode::FAILURE;
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    std::thread::spawn(move || {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..500 {
            if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(50)).is_ok() {
                print_walkthrough(&base, admin_port);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("portcullis demo: the gateway did not start listening on {address}");
    });
    // Keep the demo upstream alive for the life of the process.
    std::mem::forget(upstream);
    let options = server::RunOptions {
        config_path: None,
        upgrade: false,
    };
    server::run(runtime_config, options, control, signals)
}

fn print_walkthrough(base: &str, admin_port: u16) {
    println!(
        r#"
Portcullis demo is running: gateway {base}, admin http://127.0.0.1:{admin_port}

  # An anonymous route (auth: none):
  curl -i {base}/status

  # An order through the gateway (the response loses its Server header):
  curl -i {base}/orders/42

  # No route: a problem+json 404 with a request id
  curl -i {base}/nowhere

  # Health of the gateway:
  curl -i http://127.0.0.1:{admin_port}/readyz

Press Ctrl-C to stop.
"#
    );
}
