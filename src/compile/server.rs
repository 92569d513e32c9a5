//! The `server` section: listeners, TLS, threads, timeouts and the process settings that take
//! effect at start (a reload that changes them logs that a restart is needed).

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
    let threads = file.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if threads == 0 || threads > 1024 {
        errors.push(PathError::new(
            "server.threads",
            "must be between 1 and 1024",
        ));
    }
    let duration = |value: Option<crate::config::units::ConfigDuration>, default: u64| {
        value.map_or(Duration::from_secs(default), |d| d.0)
    };
    ServerSettings {
        listen,
        tls,
        threads,
        work_stealing: file.work_stealing.unwrap_or(false),
        h2c: file.h2c.unwrap_or(true),
        keepalive_timeout: duration(file.keepalive_timeout, 60),
        read_timeout: duration(file.read_timeout, 60),
        write_timeout: duration(file.write_timeout, 60),
        max_header_size: file.max_header_size.map_or(64 * 1024, |s| s.0 as usize),
        shutdown_timeout: duration(file.shutdown_timeout, 10),
        pid_file: file
            .pid_file
            .clone()
            .unwrap_or_else(|| "/run/portcullis/portcullis.pid".into()),
        access_log: crate::access_log::AccessLogSettings::default(),
    }
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

pub(super) fn parse_cidr(
    text: &str,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            errors.push(PathError::new(
                path,
                format!("`{text}` is not an IP address or CIDR"),
            ))
        })
        .ok()
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
