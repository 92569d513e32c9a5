//! The `server` section: listeners, TLS, threads, timeouts and the process settings that take
//! effect at start (a reload that changes them logs that a restart is needed).

use crate::config::bounds::{count_within, duration_within, size_within};
use crate::config::file::ServerFile;
use crate::config::PathError;
use std::net::SocketAddr;
use std::time::Duration;

/// Listener and process settings; changing these needs a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub tls: Option<TlsListener>,
    pub threads: usize,
    pub work_stealing: bool,
    pub h2c: bool,
    pub keepalive_timeout: Duration,
    pub header_timeout: Duration,
    /// Bytes per second a request body must average after its grace period; 0 = no check.
    pub min_body_rate: u64,
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_header_size: usize,
    pub shutdown_timeout: Duration,
    pub pid_file: String,
    pub access_log: crate::access_log::AccessLogSettings,
}

/// The TLS listeners and their certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub listen: Vec<SocketAddr>,
    pub certificate: String,
    pub private_key: String,
    pub http2: bool,
}

pub(super) fn compile_server(file: &ServerFile, errors: &mut Vec<PathError>) -> ServerSettings {
    let listen: Vec<SocketAddr> = file
        .listen
        .iter()
        .enumerate()
        .filter_map(|(i, text)| parse_listen(text, &format!("server.listen[{i}]"), errors))
        .collect();
    let tls = file.tls.as_ref().map(|tls| {
        let listen = tls
            .listen
            .to_vec()
            .iter()
            .enumerate()
            .filter_map(|(i, text)| parse_listen(text, &format!("server.tls.listen[{i}]"), errors))
            .collect();
        for (key, file_path) in [
            ("certificate", &tls.certificate),
            ("private_key", &tls.private_key),
        ] {
            check_pem_file(file_path, &format!("server.tls.{key}"), errors);
        }
        TlsListener {
            listen,
            certificate: tls.certificate.clone(),
            private_key: tls.private_key.clone(),
            http2: tls.http2.unwrap_or(true),
        }
    });
    if listen.is_empty() && tls.as_ref().is_none_or(|t| t.listen.is_empty()) {
        errors.push(PathError::new(
            "server.listen",
            "at least one listener is needed (`server.listen` or `server.tls.listen`)",
        ));
    }
    let available = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = count_within(file.threads, available, 1..=1024, "server.threads", errors);
    let timeout = |value, default, allowed, key: &str, errors: &mut Vec<PathError>| {
        duration_within(value, default, allowed, &format!("server.{key}"), errors)
    };
    ServerSettings {
        listen,
        tls,
        threads,
        work_stealing: file.work_stealing.unwrap_or(false),
        h2c: file.h2c.unwrap_or(true),
        keepalive_timeout: timeout(
            file.keepalive_timeout,
            secs(60),
            secs(1)..=secs(3600),
            "keepalive_timeout",
            errors,
        ),
        header_timeout: timeout(
            file.header_timeout,
            secs(10),
            millis(100)..=secs(3600),
            "header_timeout",
            errors,
        ),
        min_body_rate: file.min_body_rate.map_or(1024, |rate| rate.0),
        max_connections: count_within(
            file.max_connections,
            10_000,
            1..=1_000_000,
            "server.max_connections",
            errors,
        ),
        read_timeout: timeout(
            file.read_timeout,
            secs(60),
            millis(100)..=secs(3600),
            "read_timeout",
            errors,
        ),
        write_timeout: timeout(
            file.write_timeout,
            secs(60),
            millis(100)..=secs(3600),
            "write_timeout",
            errors,
        ),
        max_header_size: size_within(
            file.max_header_size,
            64 * 1024,
            1024..=1024 * 1024,
            "server.max_header_size",
            errors,
        ) as usize,
        shutdown_timeout: timeout(
            file.shutdown_timeout,
            secs(10),
            secs(0)..=secs(3600),
            "shutdown_timeout",
            errors,
        ),
        pid_file: file
            .pid_file
            .clone()
            .unwrap_or_else(|| "/run/portcullis/portcullis.pid".into()),
        access_log: crate::access_log::AccessLogSettings::default(),
    }
}

pub(super) const fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

pub(super) const fn millis(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}

pub(super) fn parse_listen(
    text: &str,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<SocketAddr> {
    match text.parse() {
        Ok(address) => Some(address),
        Err(_) => {
            errors.push(PathError::new(
                path,
                format!("`{text}` is not an `ip:port` listen address (e.g. `0.0.0.0:8080`)"),
            ));
            None
        }
    }
}

/// `validate` checks that TLS files exist and hold PEM data.
fn check_pem_file(file_path: &str, path: &str, errors: &mut Vec<PathError>) {
    match std::fs::read_to_string(file_path) {
        Ok(text) if text.contains("-----BEGIN ") => {}
        Ok(_) => errors.push(PathError::new(
            path,
            format!("`{file_path}` holds no PEM data"),
        )),
        Err(e) => errors.push(PathError::new(
            path,
            format!("cannot read `{file_path}`: {e}"),
        )),
    }
}
