//! A named rate-limit policy as compiled from `rate_limits.<name>`: what it is keyed on, its
//! base rate and burst, its tiers and where it counts.

use crate::config::file::{RateLimitFile, RateLimitStore};
use crate::config::units::RateSpec;
use crate::config::PathError;
use crate::policy::{compile_rule, Rule};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a rate limit is keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKeyPart {
    ClientId,
    Subject,
    ClientIp,
    Claim(Vec<String>),
    Header(http::HeaderName),
}

/// A named rate-limit policy.
#[derive(Debug, Clone)]
pub struct RateLimitPolicy {
    pub name: String,
    pub key: Vec<RateKeyPart>,
    pub rate: RateSpec,
    pub burst: u64,
    pub tiers: Vec<(Rule, RateSpec, u64)>,
    pub store: RateLimitStore,
    pub headers: bool,
    /// `sync_interval`: counted locally, reconciled with Redis this often (see
    /// [`super::synced`]); `None` for the exact one-round-trip mode.
    pub sync_interval: Option<Duration>,
}

/// Compiles every `rate` policy, in name order (`concurrency` policies are compiled by
/// [`super::concurrency`]).
pub fn compile_rate_limits(
    policies: &BTreeMap<String, RateLimitFile>,
    errors: &mut Vec<PathError>,
) -> Vec<RateLimitPolicy> {
    policies
        .iter()
        .filter_map(|(name, file)| {
            let path = format!("rate_limits.{name}");
            let rate = match (file.rate, file.concurrency) {
                (Some(rate), None) => rate,
                (None, Some(_)) => return None,
                (Some(_), Some(_)) => {
                    errors.push(PathError::new(
                        &path,
                        "give `rate` or `concurrency`, not both (two policies can share a route)",
                    ));
                    return None;
                }
                (None, None) => {
                    errors.push(PathError::new(
                        &path,
                        "needs `rate` (e.g. `100/s`) or `concurrency` (e.g. `4`)",
                    ));
                    return None;
                }
            };
            let key = compile_key(file, &path, errors);
            let tiers = file
                .tiers
                .iter()
                .enumerate()
                .map(|(i, tier)| {
                    let rule = compile_rule(&tier.when, &format!("{path}.tiers[{i}].when"), errors);
                    let tier_path = format!("{path}.tiers[{i}]");
                    check_rate(tier.rate, &format!("{tier_path}.rate"), errors);
                    let burst = check_burst(tier.burst, &format!("{tier_path}.burst"), errors);
                    (rule, tier.rate, burst)
                })
                .collect();
            check_rate(rate, &format!("{path}.rate"), errors);
            let store = file.store.unwrap_or(RateLimitStore::Local);
            let sync_interval = file.sync_interval.map(|d| d.0).filter(|d| !d.is_zero());
            if let Some(interval) = sync_interval {
                if !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&interval) {
                    errors.push(PathError::new(
                        format!("{path}.sync_interval"),
                        "must be 0 (exact) or 1ms to 10s (20ms is typical)",
                    ));
                }
                if store != RateLimitStore::Redis {
                    errors.push(PathError::new(
                        format!("{path}.sync_interval"),
                        "reconciles a `store: redis` limit; a local limit is exact already",
                    ));
                }
            }
            Some(RateLimitPolicy {
                name: name.clone(),
                key,
                rate,
                burst: check_burst(file.burst, &format!("{path}.burst"), errors),
                tiers,
                store,
                headers: file.headers.unwrap_or(true),
                sync_interval,
            })
        })
        .collect()
}

/// The key parts of the policy at `path`.
pub fn compile_key(
    file: &RateLimitFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Vec<RateKeyPart> {
    file.key
        .to_vec()
        .iter()
        .enumerate()
        .filter_map(|(i, part)| {
            parse_key_part(part)
                .map_err(|e| errors.push(PathError::new(format!("{path}.key[{i}]"), e.to_string())))
                .ok()
        })
        .collect()
}

/// The most requests a rate or a burst may allow (per period, or at once).
const MAX_REQUESTS: u64 = 1_000_000_000;

/// A rate allows 1 to [`MAX_REQUESTS`] requests per period (`0/s` would refuse every request).
fn check_rate(rate: RateSpec, path: &str, errors: &mut Vec<PathError>) {
    crate::config::bounds::count_within(Some(rate.count), 1, 1..=MAX_REQUESTS, path, errors);
}

/// A burst holds 0 to [`MAX_REQUESTS`] extra requests (default 0).
fn check_burst(burst: Option<u64>, path: &str, errors: &mut Vec<PathError>) -> u64 {
    crate::config::bounds::count_within(burst, 0, 0..=MAX_REQUESTS, path, errors)
}

/// Why a `key` entry of a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPartError {
    #[error("`{0}`: `claim:` needs a dotted claim path")]
    EmptyClaimPath(String),
    #[error("`{text}`: `{name}` is not a valid header name")]
    BadHeaderName { text: String, name: String },
    #[error("unknown key `{0}`: use client_id, subject, client_ip, claim:<path> or header:<name>")]
    Unknown(String),
}

/// One part of a policy's key, from its configuration text.
pub fn parse_key_part(text: &str) -> Result<RateKeyPart, KeyPartError> {
    match text {
        "client_id" => Ok(RateKeyPart::ClientId),
        "subject" => Ok(RateKeyPart::Subject),
        "client_ip" => Ok(RateKeyPart::ClientIp),
        _ => {
            if let Some(path) = text.strip_prefix("claim:") {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(KeyPartError::EmptyClaimPath(text.to_owned()));
                }
                return Ok(RateKeyPart::Claim(
                    path.split('.').map(str::to_owned).collect(),
                ));
            }
            if let Some(name) = text.strip_prefix("header:") {
                return http::HeaderName::from_bytes(name.as_bytes())
                    .map(RateKeyPart::Header)
                    .map_err(|_| KeyPartError::BadHeaderName {
                        text: text.to_owned(),
                        name: name.to_owned(),
                    });
            }
            Err(KeyPartError::Unknown(text.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_parse_or_say_why_not() {
        assert_eq!(parse_key_part("client_ip"), Ok(RateKeyPart::ClientIp));
        assert_eq!(
            parse_key_part("claim:tenant.id"),
            Ok(RateKeyPart::Claim(vec!["tenant".into(), "id".into()]))
        );
        assert_eq!(
            parse_key_part("claim:a..b"),
            Err(KeyPartError::EmptyClaimPath("claim:a..b".into()))
        );
        assert!(matches!(
            parse_key_part("header:bad name"),
            Err(KeyPartError::BadHeaderName { .. })
        ));
        assert!(parse_key_part("ip")
            .unwrap_err()
            .to_string()
            .contains("unknown key `ip`"));
    }
}
