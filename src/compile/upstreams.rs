//! Compiles the `upstreams` section into target pools (no network activity).

use crate::config::file::{HealthCheckKind, UpstreamFile};
use crate::config::units::ConfigDuration;
use crate::config::PathError;
use crate::upstream::{HealthSettings, Target, Upstream, UpstreamSettings, UpstreamTls};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn or_default(value: Option<ConfigDuration>, default: Duration) -> Duration {
    value.map_or(default, |d| d.0)
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
        let settings = UpstreamSettings {
            name: name.clone(),
            targets,
            connect_timeout: or_default(file.connect_timeout, Duration::from_secs(5)),
            read_timeout: or_default(file.read_timeout, Duration::from_secs(60)),
            write_timeout: or_default(file.write_timeout, Duration::from_secs(60)),
            idle_timeout: or_default(file.idle_timeout, Duration::from_secs(60)),
            tls,
            health: HealthSettings {
                http_path,
                interval: or_default(health.and_then(|h| h.interval), Duration::from_secs(5)),
                healthy_after: health.and_then(|h| h.healthy_after).unwrap_or(1).max(1),
                unhealthy_after: health.and_then(|h| h.unhealthy_after).unwrap_or(1).max(1),
            },
            max_failures: file.max_failures.unwrap_or(1).max(1),
            fail_timeout: or_default(file.fail_timeout, Duration::from_secs(10)),
            host_header: file.host_header.clone(),
        };
        if settings.health.interval < Duration::from_millis(100) {
            errors.push(PathError::new(
                format!("{path}.health_check.interval"),
                "must be at least 100ms",
            ));
        }
        if errors.len() == before {
            compiled.push(Upstream::new(settings));
        }
    }
    compiled
}
