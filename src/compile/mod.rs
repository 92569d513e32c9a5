//! The compiler: turns a parsed configuration file into a [`CompiledConfig`], the validated,
//! immutable description of routes, upstreams, providers and limits. It is offline (no DNS, no
//! IdP) so that `portcullis validate` can run anywhere, and it reports every problem it finds,
//! each located by its config path. Domain modules compile their own sections
//! ([`crate::oidc::compile_provider`], [`crate::ratelimit::compile_rate_limits`], …); this module
//! calls them and checks the references between sections.
//!
//! A compiled config serves no request by itself: [`crate::snapshot::Snapshot::activate`] starts
//! its services and yields the snapshot that requests read.

mod route_auth;
mod route_edge;
mod routes;
mod server;
mod upstreams;

pub use route_auth::RouteAuth;
pub use routes::Route;
pub use server::{ServerSettings, TlsListener};

use crate::config::file::{ErrorDetail, FileConfig};
use crate::config::{self, ConfigErrors, PathError};
use crate::ratelimit::RateLimitPolicy;
use crate::routing::RouteTable;
use crate::upstream::Upstream;
use routes::compile_routes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use upstreams::compile_upstreams;

/// One validated configuration, before its services run.
pub struct CompiledConfig {
    pub server: ServerSettings,
    pub admin_listen: Option<SocketAddr>,
    /// Every route, in file order; the route table refers to them by position.
    pub routes: Vec<Arc<Route>>,
    pub route_table: RouteTable,
    pub upstreams: Vec<Arc<Upstream>>,
    /// Provider names, in the order route provider sets refer to them.
    pub provider_names: Vec<String>,
    pub provider_settings: Vec<crate::oidc::ProviderSettings>,
    pub token_sources: crate::oidc::TokenSources,
    /// The gateway's client at each provider (provider order), for sign-in.
    pub provider_clients: Vec<Option<crate::oidc::client::ClientCredentials>>,
    /// `browser_sign_in`, when configured.
    pub sign_in: Option<Arc<crate::sign_in::settings::SignInSettings>>,
    /// The identity-assertion key (PKCS#8) from `assertion_signing.key_file`, when given.
    pub assertion_key: Option<Arc<Vec<u8>>>,
    /// `telemetry.tracing`, when configured.
    pub tracing: Option<crate::telemetry::TracingSettings>,
    /// The path of the forward-auth endpoint, when `forward_auth` is configured.
    pub forward_auth_path: Option<String>,
    pub rate_limits: Vec<RateLimitPolicy>,
    /// `concurrency: N` policies (routes refer to them by position).
    pub concurrency_limits: Vec<crate::ratelimit::ConcurrencyPolicy>,
    pub redis: Option<crate::ratelimit::RedisSettings>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub error_detail: ErrorDetail,
    /// Hash of the expanded file text.
    pub content_hash: u64,
    pub loaded_at: SystemTime,
}

impl CompiledConfig {
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

/// Reads, parses and compiles a configuration file.
pub fn load_file(path: &str) -> Result<CompiledConfig, ConfigErrors> {
    let text = config::read_file(path)?;
    compile_text(path, &text)
}

/// Parses and compiles configuration text; `file_name` is used in error messages.
pub fn compile_text(file_name: &str, text: &str) -> Result<CompiledConfig, ConfigErrors> {
    let parsed = config::parse_text(file_name, text)?;
    compile(parsed.config, parsed.content_hash)
        .map_err(|errors| parsed.positions.locate_all(file_name, errors))
}

/// Compiles and validates a parsed file.
pub fn compile(file: FileConfig, content_hash: u64) -> Result<CompiledConfig, Vec<PathError>> {
    let mut errors = Vec::new();
    let mut server = server::compile_server(&file.server, &mut errors);
    if let Some(access_log) = &file.access_log {
        use crate::access_log::{AccessLogSettings, AccessLogTarget};
        server.access_log = AccessLogSettings {
            target: match access_log.path.as_deref() {
                None | Some("stdout") => AccessLogTarget::Stdout,
                Some("off") => AccessLogTarget::Off,
                Some(path) => AccessLogTarget::File(path.to_owned()),
            },
            redact_subject: access_log.redact_subject.unwrap_or(false),
            buffer_lines: crate::config::bounds::count_within(
                access_log.buffer_lines,
                16_384,
                1..=1_048_576,
                "access_log.buffer_lines",
                &mut errors,
            ),
        };
    }
    let admin_listen = file
        .admin
        .as_ref()
        .and_then(|admin| server::parse_listen(&admin.listen, "admin.listen", &mut errors));
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
    let provider_clients: Vec<_> = file
        .identity_providers
        .iter()
        .map(|(name, provider)| {
            provider.client.as_ref().and_then(|client| {
                crate::oidc::client::compile_client(
                    client,
                    &format!("identity_providers.{name}.client"),
                    &mut errors,
                )
            })
        })
        .collect();
    let sign_in = file
        .browser_sign_in
        .as_ref()
        .and_then(|section| crate::sign_in::settings::compile_sign_in(section, &mut errors))
        .map(Arc::new);
    let forward_auth_path = file
        .forward_auth
        .as_ref()
        .and_then(|section| compile_forward_auth(section, sign_in.as_deref(), &mut errors));
    let assertion_key = file.assertion_signing.as_ref().and_then(|signing| {
        let read = std::fs::read_to_string(&signing.key_file)
            .map_err(|error| format!("cannot read `{}`: {error}", signing.key_file))
            .and_then(|pem| crate::identity_assertion::pkcs8_from_pem(&pem));
        read.map(Arc::new)
            .map_err(|error| errors.push(PathError::new("assertion_signing.key_file", error)))
            .ok()
    });
    let tracing = file
        .telemetry
        .as_ref()
        .and_then(|telemetry| telemetry.tracing.as_ref())
        .and_then(|tracing| crate::telemetry::compile_tracing(tracing, &mut errors));
    let rate_limits = crate::ratelimit::compile_rate_limits(&file.rate_limits, &mut errors);
    let concurrency_limits =
        crate::ratelimit::compile_concurrency_limits(&file.rate_limits, &mut errors);
    let redis = file
        .redis
        .as_ref()
        .and_then(|redis| crate::ratelimit::compile_redis(redis, &mut errors));
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            crate::edge::parse_cidr(text, &format!("trusted_proxies[{i}]"), &mut errors)
        })
        .collect();
    let (routes, route_table) = compile_routes(
        &file,
        &upstreams,
        &provider_names,
        &rate_limits,
        &concurrency_limits,
        &mut errors,
    );
    let redis_sessions = file
        .browser_sign_in
        .as_ref()
        .and_then(|section| section.session.store)
        == Some(crate::config::file::SessionStoreKind::Redis);
    if redis_sessions && file.redis.is_none() {
        errors.push(PathError::new(
            "browser_sign_in.session.store",
            "`redis` keeps sessions in the Redis of the `redis` section, which is missing",
        ));
    }
    check_sign_in_routes(
        &file,
        &routes,
        &provider_settings,
        &provider_clients,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(CompiledConfig {
            server,
            admin_listen,
            routes,
            route_table,
            upstreams,
            provider_names,
            provider_settings,
            token_sources,
            provider_clients,
            sign_in,
            forward_auth_path,
            tracing,
            assertion_key,
            rate_limits,
            concurrency_limits,
            redis,
            trusted_proxies,
            error_detail: file.defaults.error_detail.unwrap_or(ErrorDetail::Full),
            content_hash,
            loaded_at: SystemTime::now(),
        })
    } else {
        Err(errors)
    }
}

/// The forward-auth path: absolute, without query, and none of the sign-in paths.
fn compile_forward_auth(
    section: &crate::config::file::ForwardAuthFile,
    sign_in: Option<&crate::sign_in::settings::SignInSettings>,
    errors: &mut Vec<PathError>,
) -> Option<String> {
    let path = section
        .path
        .clone()
        .unwrap_or_else(|| "/.portcullis/auth".to_owned());
    if !crate::sign_in::settings::is_plain_absolute_path(&path) {
        errors.push(PathError::new(
            "forward_auth.path",
            format!("`{path}` is not an absolute path without query (e.g. `/.portcullis/auth`)"),
        ));
        return None;
    }
    if sign_in.is_some_and(|settings| settings.is_reserved_path(&path)) {
        errors.push(PathError::new(
            "forward_auth.path",
            format!("`{path}` is already a `browser_sign_in` path"),
        ));
        return None;
    }
    Some(path)
}

/// A route with `auth.sign_in` needs the `browser_sign_in` section, and its provider needs a
/// `client` and `discovery` (where the authorization and token endpoints come from); a route
/// with `auth.introspect` needs both for each of its providers (the introspection endpoint).
fn check_sign_in_routes(
    file: &FileConfig,
    routes: &[Arc<Route>],
    providers: &[crate::oidc::ProviderSettings],
    clients: &[Option<crate::oidc::client::ClientCredentials>],
    errors: &mut Vec<PathError>,
) {
    let names: Vec<&String> = file.identity_providers.keys().collect();
    let needs_client = |provider: usize, path: &str, uses: &str, errors: &mut Vec<PathError>| {
        let name = names.get(provider).map_or("", |n| n.as_str());
        if clients.get(provider).is_some_and(Option::is_none) {
            errors.push(PathError::new(path, format!("identity provider `{name}` needs a `client` block (the gateway's client id and secret at the provider)")));
        }
        if providers
            .get(provider)
            .is_some_and(|p| !matches!(p.source, crate::oidc::settings::KeySource::Discovery(_)))
        {
            errors.push(PathError::new(
                path,
                format!("identity provider `{name}` needs `discovery`: {uses}"),
            ));
        }
    };
    for (index, route) in routes.iter().enumerate() {
        let RouteAuth::Verify {
            sign_in,
            introspect,
            providers: route_providers,
            ..
        } = &route.auth
        else {
            continue;
        };
        let index = file
            .routes
            .iter()
            .position(|r| r.name == route.name)
            .unwrap_or(index);
        if let Some(provider) = *sign_in {
            let path = format!("routes[{index}].auth.sign_in");
            if file.browser_sign_in.is_none() {
                errors.push(PathError::new(
                    &path,
                    "needs the `browser_sign_in` section (callback path, session keys)",
                ));
            }
            needs_client(
                provider,
                &path,
                "sign-in uses its authorization and token endpoints",
                errors,
            );
        }
        if *introspect {
            let path = format!("routes[{index}].auth.introspect");
            for provider in route_providers {
                needs_client(
                    *provider,
                    &path,
                    "introspection uses its introspection endpoint",
                    errors,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compile_text;

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
