//! The `redis` section compiled offline: one Redis (`url`) or a Redis Cluster (`cluster`, seed
//! URLs), the per-call timeout, what a request gets when Redis fails, and the pool size.
//! Passwords in URLs never reach a log: [`RedisSettings`]' `Debug` masks them.

use crate::config::file::{RedisFile, RedisOnError};
use crate::config::PathError;
use std::fmt;
use std::time::Duration;

/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5);

/// Where the shared store is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://[user:password@]host[:port][/db]`.
    Single(String),
    /// Seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

/// The validated `redis` section.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// Bound on every call, connection included (default 5 ms).
    pub timeout: Duration,
    /// What a request gets when Redis fails: allowed (fail open) or denied (fail closed).
    pub on_error: RedisOnError,
    /// Multiplexed connections (default 1; each carries many concurrent calls).
    pub pool_size: usize,
}

impl RedisSettings {
    /// Settings for one Redis at `url` (tests, tools).
    pub fn single(url: impl Into<String>, timeout: Duration, on_error: RedisOnError) -> Self {
        RedisSettings {
            target: RedisTarget::Single(url.into()),
            timeout,
            on_error,
            pool_size: 1,
        }
    }
}

/// `url` with the password replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url_password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Single(url) => f.debug_tuple("Single").field(&redacted(url)).finish(),
            RedisTarget::Cluster(seeds) => {
                let seeds: Vec<String> = seeds.iter().map(|url| redacted(url)).collect();
                f.debug_tuple("Cluster").field(&seeds).finish()
            }
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The byte range of the password in `scheme://user:password@host`, to redact it.
fn url_password_span(url: &str) -> Option<(usize, usize)> {
    let rest_start = url.find("://")? + 3;
    let at = rest_start + url[rest_start..].find('@')?;
    let colon = rest_start + url[rest_start..at].find(':')?;
    Some((colon + 1, at))
}

/// One URL, checked; problems are reported at `path`.
fn check_url(url: &str, path: &str, errors: &mut Vec<PathError>) {
    if url.starts_with("rediss://") {
        errors.push(PathError::new(
            path,
            "rediss:// (TLS) is not supported by this build; use redis:// (e.g. over a local TLS tunnel)",
        ));
    } else if !url.starts_with("redis://") {
        errors.push(PathError::new(
            path,
            format!("`{}` is not a redis:// URL", redacted(url)),
        ));
    } else if let Err(e) = redis::Client::open(url) {
        errors.push(PathError::new(path, format!("invalid Redis URL: {e}")));
    }
}

/// Validates the `redis` section; problems are reported under `redis.*`.
pub fn compile_redis(file: &RedisFile, errors: &mut Vec<PathError>) -> Option<RedisSettings> {
    let before = errors.len();
    let target = match (&file.url, &file.cluster) {
        (Some(url), None) => {
            let url = url.trim();
            check_url(url, "redis.url", errors);
            RedisTarget::Single(url.to_owned())
        }
        (None, Some(seeds)) if !seeds.is_empty() => {
            let seeds: Vec<String> = seeds.iter().map(|s| s.trim().to_owned()).collect();
            for (i, seed) in seeds.iter().enumerate() {
                check_url(seed, &format!("redis.cluster[{i}]"), errors);
            }
            RedisTarget::Cluster(seeds)
        }
        _ => {
            errors.push(PathError::new(
                "redis",
                "give `url` (one Redis) or `cluster` (a list of seed node URLs), exactly one",
            ));
            return None;
        }
    };
    let timeout = file.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    if timeout.is_zero() || timeout > Duration::from_secs(1) {
        errors.push(PathError::new(
            "redis.timeout",
            "must be more than 0 and at most 1s (a few ms is typical)",
        ));
    }
    let pool_size = file.pool_size.unwrap_or(1);
    if !(1..=64).contains(&pool_size) {
        errors.push(PathError::new("redis.pool_size", "must be 1 to 64"));
    }
    (errors.len() == before).then_some(RedisSettings {
        target,
        timeout,
        on_error: file.on_error.unwrap_or(RedisOnError::Allow),
        pool_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let settings = RedisSettings::single(
            "redis://user:s3cret@10.0.0.1:6379/0",
            DEFAULT_TIMEOUT,
            RedisOnError::Deny,
        );
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("user:***@10.0.0.1"),
            "{shown}"
        );
        let cluster = RedisTarget::Cluster(vec!["redis://:pw@a:1".into(), "redis://b:2".into()]);
        assert!(!format!("{cluster:?}").contains("pw"));
    }
}
