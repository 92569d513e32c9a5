//! The validated runtime snapshot: what requests read, compiled once per load from the file
//! structs. It is immutable; a reload builds a new one and swaps it in (`ArcSwap`).
//!
//! [`compile`] is offline (no DNS, no IdP) so that `portcullis validate` can run anywhere, and it
//! reports every problem it finds, each located by its config path.

use super::file::{ErrorDetail, FileConfig, ServerFile};
use super::route_compile::compile_routes;
use super::upstream_compile::{compile_rate_limits, compile_upstreams};
use super::PathError;
use crate::routing::RouteTable;
use crate::upstream::Upstream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use super::route_compile::{Route, RouteAuth};
pub use super::upstream_compile::RateLimitPolicy;

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

#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub listen: Vec<SocketAddr>,
    pub certificate: String,
    pub private_key: String,
    pub http2: bool,
}

/// One immutable configuration snapshot.
pub struct RuntimeConfig {
    pub server: ServerSettings,
    pub admin_listen: Option<SocketAddr>,
    pub routes: Vec<Route>,
    pub route_table: RouteTable,
    pub upstreams: Vec<Arc<Upstream>>,
    /// Provider names, in the order route provider sets refer to them.
    pub provider_names: Vec<String>,
    pub provider_settings: Vec<crate::oidc::ProviderSettings>,
    pub token_sources: crate::oidc::TokenSources,
    /// The running providers; set when the snapshot is activated (never by `validate`).
    pub authenticator: Option<Arc<crate::oidc::Authenticator>>,
    pub rate_limits: Vec<RateLimitPolicy>,
    pub redis: Option<crate::ratelimit::RedisSettings>,
    /// The running limiter; set when the snapshot is activated.
    pub rate_limiter: Option<Arc<crate::ratelimit::RateLimiter>>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub error_detail: ErrorDetail,
    /// Hash of the expanded file text.
    pub content_hash: u64,
    pub loaded_at: SystemTime,
}

impl RuntimeConfig {
    /// A one-line summary, as printed by `validate`.
    pub fn summary(&self) -> String {
        format!(
            "{} routes, {} upstreams, {} identity providers, {} rate-limit policies",
            self.routes.len(),
            self.upstreams.len(),
            self.provider_names.len(),
            self.rate_limits.len()
        )
    }
}

/// Compiles and validates a parsed file.
pub fn compile(file: FileConfig, content_hash: u64) -> Result<RuntimeConfig, Vec<PathError>> {
    let mut errors = Vec::new();
    let mut server = compile_server(&file.server, &mut errors);
    if let Some(access_log) = &file.access_log {
        use crate::access_log::{AccessLogSettings, AccessLogTarget};
        server.access_log = AccessLogSettings {
            target: match access_log.path.as_deref() {
                None | Some("stdout") => AccessLogTarget::Stdout,
                Some("off") => AccessLogTarget::Off,
                Some(path) => AccessLogTarget::File(path.to_owned()),
            },
            redact_subject: access_log.redact_subject.unwrap_or(false),
            buffer_lines: access_log.buffer_lines.unwrap_or(16_384),
        };
    }
    let admin_listen = file
        .admin
        .as_ref()
        .and_then(|admin| parse_listen(&admin.listen, "admin.listen", &mut errors));
    let upstreams = compile_upstreams(&file.upstreams, &mut errors);
    let provider_names: Vec<String> = file.identity_providers.keys().cloned().collect();
    let provider_settings: Vec<_> = file
        .identity_providers
        .iter()
        .filter_map(|(name, provider)| {
            crate::oidc::compile_provider(name, provider, &format!("identity_providers.{name}"))
                .map_err(|problems| errors.extend(problems))
                .ok()
        })
        .collect();
    let token_sources = crate::oidc::compile_token_sources(&file.tokens, &mut errors);
    let rate_limits = compile_rate_limits(&file.rate_limits, &mut errors);
    let redis = file
        .redis
        .as_ref()
        .and_then(|redis| crate::ratelimit::compile_redis(redis, &mut errors));
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| parse_cidr(text, &format!("trusted_proxies[{i}]"), &mut errors))
        .collect();
    let (routes, route_table) = compile_routes(
        &file,
        &upstreams,
        &provider_names,
        &rate_limits,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(RuntimeConfig {
            server,
            admin_listen,
            routes,
            route_table,
            upstreams,
            provider_names,
            provider_settings,
            token_sources,
            authenticator: None,
            rate_limits,
            redis,
            rate_limiter: None,
            trusted_proxies,
            error_detail: file.defaults.error_detail.unwrap_or(ErrorDetail::Full),
            content_hash,
            loaded_at: SystemTime::now(),
        })
    } else {
        Err(errors)
    }
}

fn compile_server(file: &ServerFile, errors: &mut Vec<PathError>) -> ServerSettings {
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
    let duration = |value: Option<super::units::ConfigDuration>, default: u64| {
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

fn parse_cidr(text: &str, path: &str, errors: &mut Vec<PathError>) -> Option<ipnet::IpNet> {
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

#[cfg(test)]
mod tests {
    use crate::config::compile_text;

    fn config(server_extra: &str) -> String {
        format!(
            "server: {{ listen: [\"127.0.0.1:0\"]{server_extra} }}\n\
             upstreams: {{ app: {{ targets: [\"127.0.0.1:9\"] }} }}\n\
             routes:\n  - {{ name: r, match: {{ path_prefix: / }}, upstream: app, auth: none }}\n"
        )
    }

    #[test]
    fn work_stealing_defaults_off_and_can_be_turned_on() {
        let default = compile_text("t.yaml", &config("")).expect("valid config");
        assert!(!default.server.work_stealing);
        let on = compile_text("t.yaml", &config(", work_stealing: true")).expect("valid config");
        assert!(on.server.work_stealing);
        let error = compile_text("t.yaml", &config(", work_stealing: sometimes"))
            .err()
            .expect("a non-boolean is refused")
            .to_string();
        assert!(error.contains("work_stealing"), "{error}");
    }
}
