//! Compiles an `identity_providers.<name>` entry into [`ProviderSettings`], offline: URLs parse,
//! algorithms are known, HMAC only with a shared secret, static keys load, durations are sane.

use super::keys::KeySet;
use super::verify::ClaimRules;
use crate::config::bounds::{count_within, duration_within, size_within};
use crate::config::file::ProviderFile;
use crate::config::PathError;
use jsonwebtoken::Algorithm;
use std::time::Duration;

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// OpenID Connect discovery: issuer and jwks_uri from the document.
    Discovery(String),
    /// A JWKS URL.
    Remote(String),
    /// A JWKS document (from a file or inline).
    StaticJwks(String),
    /// PEM public key(s).
    StaticPem(String),
}

/// Everything about a provider that comes from the file. Equal settings let a reload keep the
/// running provider (its keys and token cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    pub name: String,
    pub source: KeySource,
    /// Configured issuer (for discovery: checked against the discovered one).
    pub issuer: Option<String>,
    pub rules_template: ClaimRules,
    pub algorithms: Vec<Algorithm>,
    pub shared_secret: Option<String>,
    pub realm: String,
    pub refresh_interval: Duration,
    pub min_refetch_interval: Duration,
    pub fetch_timeout: Duration,
    pub max_jwks_size: usize,
    pub ca_pem: Option<Vec<u8>>,
    pub cache_entries: usize,
    pub cache_ttl: Duration,
    /// How long an introspection answer is reused, and how many are kept.
    pub introspection_ttl: Duration,
    pub introspection_entries: usize,
    /// Opaque (non-JWT) tokens are introspected instead of verified.
    pub opaque_tokens: bool,
}

const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn check_url(url: &str, path: String, errors: &mut Vec<PathError>) {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        _ => errors.push(PathError::new(
            path,
            format!("`{url}` is not an http(s) URL"),
        )),
    }
}

/// Validates and compiles one provider.
pub fn compile_provider(
    name: &str,
    file: &ProviderFile,
    path: &str,
) -> Result<ProviderSettings, Vec<PathError>> {
    let mut errors = Vec::new();
    let source = match (
        &file.discovery,
        &file.jwks_uri,
        &file.jwks_file,
        &file.jwks_inline,
        &file.public_key_pem,
    ) {
        (Some(url), None, None, None, None) => {
            check_url(url, format!("{path}.discovery"), &mut errors);
            KeySource::Discovery(url.clone())
        }
        (None, Some(url), None, None, None) => {
            check_url(url, format!("{path}.jwks_uri"), &mut errors);
            KeySource::Remote(url.clone())
        }
        (None, None, Some(file_path), None, None) => match std::fs::read_to_string(file_path) {
            Ok(text) => KeySource::StaticJwks(text),
            Err(e) => {
                errors.push(PathError::new(
                    format!("{path}.jwks_file"),
                    format!("cannot read `{file_path}`: {e}"),
                ));
                KeySource::StaticJwks(String::new())
            }
        },
        (None, None, None, Some(inline), None) => KeySource::StaticJwks(inline.clone()),
        (None, None, None, None, Some(pem)) => KeySource::StaticPem(pem.clone()),
        _ => {
            errors.push(PathError::new(
                path,
                "give exactly one key source: `discovery`, `jwks_uri`, `jwks_file`, `jwks_inline` or `public_key_pem`",
            ));
            KeySource::StaticJwks(String::new())
        }
    };
    match &source {
        KeySource::StaticJwks(text) if !text.is_empty() => match KeySet::from_jwks(text.as_bytes())
        {
            Ok((set, _)) if set.is_empty() && file.shared_secret.is_none() => errors.push(
                PathError::new(path, "the static JWKS holds no usable signing key"),
            ),
            Ok(_) => {}
            Err(e) => errors.push(PathError::new(path, e.to_string())),
        },
        KeySource::StaticPem(pem) => {
            if let Err(e) = KeySet::from_pem(pem) {
                errors.push(PathError::new(
                    format!("{path}.public_key_pem"),
                    e.to_string(),
                ));
            }
        }
        _ => {}
    }
    if !matches!(source, KeySource::Discovery(_)) && file.issuer.is_none() {
        errors.push(PathError::new(
            path,
            "`issuer` is required unless `discovery` provides it",
        ));
    }
    if let Some(issuer) = &file.issuer {
        check_url(issuer, format!("{path}.issuer"), &mut errors);
    }
    if file.audiences.is_empty() {
        errors.push(PathError::new(
            format!("{path}.audiences"),
            "at least one audience is required: Keycloak puts `account` in every token's `aud`, so without an audience check any client of the realm gets in (add an Audience mapper for your API's client and list it here)",
        ));
    }
    let algorithms = match &file.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| match name.parse::<Algorithm>() {
                Ok(alg) if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac && file.shared_secret.is_none() => {
                    errors.push(PathError::new(
                        format!("{path}.algorithms[{i}]"),
                        format!("`{name}` needs `shared_secret`: HMAC is never used with public keys"),
                    ));
                    None
                }
                Ok(alg) => Some(alg),
                Err(_) => {
                    errors.push(PathError::new(
                        format!("{path}.algorithms[{i}]"),
                        format!("unknown algorithm `{name}` (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512)"),
                    ));
                    None
                }
            })
            .collect(),
    };
    let mut algorithms = algorithms;
    if file.shared_secret.is_some() && file.algorithms.is_none() {
        algorithms.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
    }
    let seconds = Duration::from_secs;
    let duration = |value, default, allowed, key: &str, errors: &mut Vec<PathError>| {
        duration_within(value, default, allowed, &format!("{path}.{key}"), errors)
    };
    let clock_skew = duration(
        file.clock_skew,
        seconds(30),
        seconds(0)..=seconds(300),
        "clock_skew",
        &mut errors,
    );
    let refresh_interval = duration(
        file.jwks.refresh_interval,
        seconds(300),
        seconds(1)..=seconds(86_400),
        "jwks.refresh_interval",
        &mut errors,
    );
    let min_refetch_interval = duration(
        file.jwks.min_refetch_interval,
        seconds(10),
        seconds(1)..=seconds(3600),
        "jwks.min_refetch_interval",
        &mut errors,
    );
    let fetch_timeout = duration(
        file.jwks.timeout,
        seconds(5),
        Duration::from_millis(100)..=seconds(60),
        "jwks.timeout",
        &mut errors,
    );
    let max_jwks_size = size_within(
        file.jwks.max_size,
        256 * 1024,
        1024..=16 * 1024 * 1024,
        &format!("{path}.jwks.max_size"),
        &mut errors,
    ) as usize;
    let cache_entries = count_within(
        file.token_cache.max_entries,
        10_000,
        0..=10_000_000,
        &format!("{path}.token_cache.max_entries"),
        &mut errors,
    );
    let cache_ttl = duration(
        file.token_cache.ttl,
        seconds(300),
        seconds(0)..=seconds(86_400),
        "token_cache.ttl",
        &mut errors,
    );
    let ca_pem = file.ca_file.as_ref().and_then(|ca| {
        std::fs::read(ca)
            .map_err(|e| {
                errors.push(PathError::new(
                    format!("{path}.ca_file"),
                    format!("cannot read `{ca}`: {e}"),
                ))
            })
            .ok()
    });
    let introspection = file.introspection.as_ref();
    let introspection_ttl = crate::config::bounds::duration_within(
        introspection.and_then(|i| i.cache_ttl),
        Duration::from_secs(30),
        Duration::ZERO..=Duration::from_secs(3600),
        &format!("{path}.introspection.cache_ttl"),
        &mut errors,
    );
    let introspection_entries = crate::config::bounds::count_within(
        introspection.and_then(|i| i.max_entries).map(|n| n as u64),
        100_000,
        1..=10_000_000,
        &format!("{path}.introspection.max_entries"),
        &mut errors,
    ) as usize;
    if file.opaque_tokens == Some(true) && file.client.is_none() {
        errors.push(PathError::new(
            format!("{path}.opaque_tokens"),
            "opaque tokens are introspected: give the provider a `client` block",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ProviderSettings {
        name: name.to_owned(),
        issuer: file.issuer.clone(),
        rules_template: ClaimRules {
            issuer: file.issuer.clone().unwrap_or_default(),
            audiences: file.audiences.clone(),
            authorized_parties: file.authorized_parties.clone(),
            token_types: file.token_types.clone(),
            clock_skew_seconds: clock_skew.as_secs(),
        },
        source,
        algorithms,
        shared_secret: file.shared_secret.clone(),
        realm: file.realm.clone().unwrap_or_else(|| name.to_owned()),
        refresh_interval,
        min_refetch_interval,
        fetch_timeout,
        max_jwks_size,
        ca_pem,
        cache_entries,
        cache_ttl,
        introspection_ttl,
        introspection_entries,
        opaque_tokens: file.opaque_tokens.unwrap_or(false),
    })
}
