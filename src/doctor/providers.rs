//! The identity-provider checks of `portcullis doctor`: discovery reachable over valid TLS,
//! the issuer equal to the configured (or implied) one with a hint for a near miss, signing
//! keys for the allowed algorithms (encryption keys skipped), the provider's clock against
//! ours and `clock_skew`, the endpoints the routes need, and the gateway's client credentials
//! ([`super::client_probe`]).

use super::client_probe;
use super::finding::{clock_finding, Finding};
use crate::compile::{CompiledConfig, RouteAuth};
use crate::oidc::endpoints::ProviderEndpoints;
use crate::oidc::fetch::{is_loopback, FetchError, Fetcher};
use crate::oidc::keys::KeySet;
use crate::oidc::settings::{KeySource, ProviderSettings};
use crate::oidc::verify::issuer_hint;
use serde_json::Value;
use std::time::{Instant, SystemTime};

const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// Checks every provider (concurrently), in configuration order.
pub async fn check_all(config: &CompiledConfig) -> Vec<Finding> {
    let checks = (0..config.provider_settings.len()).map(|index| check(config, index));
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What the routes ask of a provider.
#[derive(Default)]
struct Needs {
    sign_in: bool,
    introspection: bool,
}

fn needs(config: &CompiledConfig, index: usize) -> Needs {
    let mut needs = Needs::default();
    for route in &config.routes {
        if let RouteAuth::Verify {
            providers,
            sign_in,
            introspect,
            ..
        } = &route.auth
        {
            needs.sign_in |= *sign_in == Some(index);
            needs.introspection |= *introspect && providers.contains(&index);
        }
    }
    needs
}

/// What discovery told, for the later checks.
#[derive(Default)]
struct Discovered {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    endpoints: Option<ProviderEndpoints>,
    date: Option<SystemTime>,
}

async fn check(config: &CompiledConfig, index: usize) -> Vec<Finding> {
    let settings = &config.provider_settings[index];
    let subject = format!("provider {}", settings.name);
    let mut findings = Vec::new();
    let fetcher = match Fetcher::new(
        settings.fetch_timeout,
        settings.max_jwks_size,
        settings.ca_pem.as_deref(),
    ) {
        Ok(fetcher) => fetcher,
        Err(error) => {
            findings.push(Finding::fail(&subject, error.to_string(), "fix `ca_file`"));
            return findings;
        }
    };
    let mut discovered = Discovered {
        issuer: settings.issuer.clone(),
        ..Default::default()
    };
    match &settings.source {
        KeySource::Discovery(url) => {
            match discover(&fetcher, settings, url, &subject, &mut findings).await {
                Some(found) => discovered = found,
                None => return findings,
            }
        }
        KeySource::Remote(url) => discovered.jwks_uri = Some(url.clone()),
        KeySource::StaticJwks(_) | KeySource::StaticPem(_) => {}
    }
    let keys = check_keys(&fetcher, settings, &mut discovered, &subject, &mut findings).await;
    if let Some(date) = discovered.date {
        findings.push(clock_finding(
            &subject,
            date,
            settings.rules_template.clock_skew_seconds,
        ));
    }
    let needs = needs(config, index);
    check_endpoints(
        &subject,
        discovered.endpoints.as_ref(),
        &needs,
        &mut findings,
    );
    let client = config.provider_clients.get(index).and_then(Option::as_ref);
    let token_endpoint = discovered
        .endpoints
        .as_ref()
        .and_then(|e| e.token.as_deref());
    if let (Some(client), Some(token_endpoint), Some(keys), Some(issuer)) =
        (client, token_endpoint, &keys, &discovered.issuer)
    {
        let probe = client_probe::Probe {
            fetcher: &fetcher,
            settings,
            client,
            token_endpoint,
            keys,
            issuer,
        };
        let (finding, issued_at) = probe.run(&subject).await;
        findings.push(finding);
        discovered.date = discovered.date.or(issued_at);
    }
    let skew = settings.rules_template.clock_skew_seconds;
    findings.push(match discovered.date {
        Some(date) => clock_finding(&subject, date, skew),
        None => Finding::warn(
            &subject,
            "clocks not compared: the provider sends no `Date` header and gave no token to read `iat` from",
            "keep both hosts on NTP (a client with service accounts on lets doctor compare the clocks)",
        ),
    });
    findings
}

/// Fetches and reads the discovery document; `None` when nothing else can be checked.
async fn discover(
    fetcher: &Fetcher,
    settings: &ProviderSettings,
    url: &str,
    subject: &str,
    findings: &mut Vec<Finding>,
) -> Option<Discovered> {
    let started = Instant::now();
    let fetched = match fetcher.get(url).await {
        Ok(fetched) => fetched,
        Err(error) => {
            findings.push(Finding::fail(
                subject,
                format!("discovery: {error}"),
                fetch_fix(&error),
            ));
            return None;
        }
    };
    findings.push(Finding::ok(
        subject,
        format!(
            "discovery answered in {} ms ({url})",
            started.elapsed().as_millis()
        ),
    ));
    findings.push(transport_finding(subject, url));
    let Ok(document) = serde_json::from_slice::<Value>(&fetched.body) else {
        findings.push(Finding::fail(
            subject,
            "the discovery document is not JSON",
            "check the `discovery` URL: it must be the realm's /.well-known/openid-configuration",
        ));
        return None;
    };
    let field = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let issuer = field("issuer");
    let expected = settings
        .issuer
        .clone()
        .or_else(|| url.strip_suffix(DISCOVERY_SUFFIX).map(str::to_owned));
    match (&issuer, &expected) {
        (None, _) => findings.push(Finding::fail(
            subject,
            "the discovery document names no `issuer`",
            "point `discovery` at an OpenID Connect provider",
        )),
        (Some(issuer), Some(expected)) if issuer != expected => {
            let hint = issuer_hint(issuer, expected)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            let configured = if settings.issuer.is_some() {
                "configured"
            } else {
                "implied by the discovery URL"
            };
            findings.push(Finding::fail(
                subject,
                format!("the discovered issuer `{issuer}` is not the {configured} `{expected}`{hint}"),
                format!("tokens carry `iss: {issuer}`: set `issuer: {issuer}` (or fix Keycloak's `hostname` so that it builds the issuer you expect)"),
            ));
        }
        (Some(issuer), _) => findings.push(Finding::ok(subject, format!("issuer `{issuer}`"))),
    }
    Some(Discovered {
        issuer,
        jwks_uri: field("jwks_uri"),
        endpoints: Some(ProviderEndpoints::from_discovery(&document)),
        date: fetched.date,
    })
}

/// Plain http to a remote provider lets keys be forged in transit (https was verified).
fn transport_finding(subject: &str, url: &str) -> Finding {
    if url.starts_with("https://") {
        Finding::ok(subject, "TLS certificate verified")
    } else if is_loopback(url) {
        Finding::ok(subject, "plain http on loopback")
    } else {
        Finding::warn(
            subject,
            format!("plain http to a remote provider ({url}): its keys can be forged in transit"),
            "use the provider's https URL",
        )
    }
}

fn fetch_fix(error: &FetchError) -> String {
    let text = error.to_string().to_ascii_lowercase();
    if text.contains("certificate") || text.contains("tls") {
        "the provider's TLS certificate is not trusted: set `ca_file` to the CA that signed it"
            .into()
    } else if matches!(error, FetchError::Status { status, .. } if status.as_u16() == 404) {
        "the URL answers 404: check the realm name in the URL".into()
    } else {
        "check the URL, DNS and firewalls between the gateway and the provider (`fetch_timeout` bounds each call)".into()
    }
}

/// Fetches (or reads) the keys and checks that an allowed algorithm has one.
async fn check_keys(
    fetcher: &Fetcher,
    settings: &ProviderSettings,
    discovered: &mut Discovered,
    subject: &str,
    findings: &mut Vec<Finding>,
) -> Option<KeySet> {
    let parsed = match (&settings.source, &discovered.jwks_uri) {
        (KeySource::StaticJwks(text), _) => {
            KeySet::from_jwks(text.as_bytes()).map_err(|e| e.to_string())
        }
        (KeySource::StaticPem(pem), _) => KeySet::from_pem(pem)
            .map(|set| (set, Vec::new()))
            .map_err(|e| e.to_string()),
        (_, Some(uri)) => match fetcher.get(uri).await {
            Ok(fetched) => {
                discovered.date = discovered.date.or(fetched.date);
                KeySet::from_jwks(&fetched.body).map_err(|e| format!("{uri}: {e}"))
            }
            Err(error) => Err(format!("JWKS: {error}")),
        },
        (_, None) => Err("the discovery document names no `jwks_uri`".into()),
    };
    let (keys, skipped) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            findings.push(Finding::fail(
                subject,
                error,
                "check the JWKS URL and that it serves the realm's keys",
            ));
            return None;
        }
    };
    let usable: Vec<String> = settings
        .algorithms
        .iter()
        .filter(|alg| keys.keys.iter().any(|key| key.algorithms.contains(alg)))
        .map(|alg| format!("{alg:?}"))
        .collect();
    if usable.is_empty() {
        let mut published: Vec<String> = keys
            .keys
            .iter()
            .flat_map(|k| k.algorithms.iter().map(|a| format!("{a:?}")))
            .collect();
        published.sort();
        published.dedup();
        findings.push(Finding::fail(
            subject,
            format!("no signing key for the allowed algorithms {:?}; the provider's keys verify [{}]", settings.algorithms, published.join(", ")),
            "add the realm's algorithm to `algorithms`, or give the realm a key of an allowed one (Keycloak: Realm settings → Keys → Add provider)",
        ));
    } else {
        findings.push(Finding::ok(
            subject,
            format!(
                "{} signing key(s); allowed algorithms with a key: {}",
                keys.len(),
                usable.join(", ")
            ),
        ));
    }
    let (encryption, other): (Vec<&String>, Vec<&String>) =
        skipped.iter().partition(|entry| entry.contains("use: enc"));
    if !encryption.is_empty() {
        findings.push(Finding::ok(
            subject,
            format!(
                "{} encryption key(s) (`use: enc`) skipped, as they should be",
                encryption.len()
            ),
        ));
    }
    for entry in other {
        findings.push(Finding::warn(
            subject,
            format!("JWKS entry skipped: {entry}"),
            "nothing to do unless tokens are signed with that key",
        ));
    }
    Some(keys)
}

/// The endpoints the routes need from this provider.
fn check_endpoints(
    subject: &str,
    endpoints: Option<&ProviderEndpoints>,
    needs: &Needs,
    findings: &mut Vec<Finding>,
) {
    let missing = |name: &str, why: &str| {
        Finding::fail(
            subject,
            format!("no {name} in the discovery document, which {why} need"),
            "configure the provider with `discovery` (a jwks_uri or static keys name no endpoints), or take the feature off the routes",
        )
    };
    let empty = ProviderEndpoints::default();
    let endpoints = endpoints.unwrap_or(&empty);
    if needs.sign_in {
        match (&endpoints.authorization, &endpoints.token) {
            (Some(_), Some(_)) => findings.push(Finding::ok(
                subject,
                "authorization and token endpoints present (browser sign-in)",
            )),
            _ => findings.push(missing(
                "authorization_endpoint/token_endpoint",
                "routes with `auth.sign_in`",
            )),
        }
        if endpoints.end_session.is_none() {
            findings.push(Finding::warn(
                subject,
                "no end_session_endpoint: logout ends the gateway session only",
                "enable RP-initiated logout at the provider",
            ));
        }
    }
    if needs.introspection {
        match &endpoints.introspection {
            Some(_) => findings.push(Finding::ok(subject, "introspection endpoint present")),
            None => findings.push(missing(
                "introspection_endpoint",
                "routes with `auth.introspect`",
            )),
        }
    }
}
