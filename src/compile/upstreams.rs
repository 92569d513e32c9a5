//! Compiles the `upstreams` section into target pools (no network activity).

use super::server::{millis, secs};
use crate::config::bounds::{count_within, duration_within};
use crate::config::file::{HealthCheckKind, UpstreamFile};
use crate::config::units::ConfigDuration;
use crate::config::PathError;
use crate::upstream::{HealthSettings, Target, Upstream, UpstreamSettings, UpstreamTls};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A duration setting of upstream `path` (`upstreams.NAME`), checked against `allowed`.
fn timeout(
    value: Option<ConfigDuration>,
    default: Duration,
    allowed: std::ops::RangeInclusive<Duration>,
    key: &str,
    (path, errors): (&str, &mut Vec<PathError>),
) -> Duration {
    duration_within(value, default, allowed, &format!("{path}.{key}"), errors)
}

/// Builds every upstream pool (no network activity), in name order.
pub fn compile_upstreams(
    upstreams: &BTreeMap<String, UpstreamFile>,
    errors: &mut Vec<PathError>,
) -> Vec<Arc<Upstream>> {
    let mut compiled = Vec::new();
    for (name, file) in upstreams {
        let path = format!("upstreams.{name}");
        let before = errors.len();
        if file.targets.is_empty() {
            errors.push(PathError::new(
                format!("{path}.targets"),
                "needs at least one target",
            ));
        }
        let targets: Vec<Target> = file
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                Target::parse(text)
                    .map_err(|e| {
                        errors.push(PathError::new(
                            format!("{path}.targets[{i}]"),
                            e.to_string(),
                        ))
                    })
                    .ok()
            })
            .collect();
        let tls = file.tls.as_ref().map(|tls| UpstreamTls {
            sni: tls
                .sni
                .clone()
                .or_else(|| targets.first().map(|t| t.host.clone()))
                .unwrap_or_default(),
            verify: tls.verify.unwrap_or(true),
            http2: tls.http2.unwrap_or(false),
        });
        let health = file.health_check.as_ref();
        let kind = health.and_then(|h| h.kind).unwrap_or(HealthCheckKind::Tcp);
        let http_path = match kind {
            HealthCheckKind::Tcp => None,
            HealthCheckKind::Http => {
                let health_path = health
                    .and_then(|h| h.path.clone())
                    .unwrap_or_else(|| "/".into());
                if !health_path.starts_with('/') {
                    errors.push(PathError::new(
                        format!("{path}.health_check.path"),
                        "must start with `/`",
                    ));
                }
                Some(health_path)
            }
        };
        let interval = duration_within(
            health.and_then(|h| h.interval),
            secs(5),
            millis(100)..=secs(3600),
            &format!("{path}.health_check.interval"),
            errors,
        );
        let attempts = |value: Option<usize>, key: &str, errors: &mut Vec<PathError>| {
            count_within(value, 1, 1..=100, &format!("{path}.{key}"), errors)
        };
        let healthy_after = attempts(
            health.and_then(|h| h.healthy_after),
            "health_check.healthy_after",
            errors,
        );
        let unhealthy_after = attempts(
            health.and_then(|h| h.unhealthy_after),
            "health_check.unhealthy_after",
            errors,
        );
        let max_failures = count_within(
            file.max_failures,
            1,
            1..=100,
            &format!("{path}.max_failures"),
            errors,
        );
        let settings = UpstreamSettings {
            name: name.clone(),
            targets,
            connect_timeout: timeout(
                file.connect_timeout,
                secs(5),
                millis(10)..=secs(60),
                "connect_timeout",
                (&path, errors),
            ),
            read_timeout: timeout(
                file.read_timeout,
                secs(60),
                millis(100)..=secs(3600),
                "read_timeout",
                (&path, errors),
            ),
            write_timeout: timeout(
                file.write_timeout,
                secs(60),
                millis(100)..=secs(3600),
                "write_timeout",
                (&path, errors),
            ),
            idle_timeout: timeout(
                file.idle_timeout,
                secs(60),
                secs(1)..=secs(3600),
                "idle_timeout",
                (&path, errors),
            ),
            tls,
            health: HealthSettings {
                http_path,
                interval,
                healthy_after,
                unhealthy_after,
            },
            max_failures,
            fail_timeout: timeout(
                file.fail_timeout,
                secs(10),
                secs(1)..=secs(3600),
                "fail_timeout",
                (&path, errors),
            ),
            host_header: file.host_header.clone(),
        };
        if errors.len() == before {
            compiled.push(Upstream::new(settings));
        }
    }
    compiled
}
