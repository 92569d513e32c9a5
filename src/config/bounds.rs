//! Allowed ranges for sizes, durations and counts, checked by the compiler with one located
//! error per setting that names the range: `max_header_size: 0` or `read_timeout: 0s` parse
//! fine but would break every request, so they never get past `validate`.

use super::units::{ByteSize, ConfigDuration};
use super::PathError;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

/// `value` (or `default` when absent); outside `allowed`, an error at `path` naming the range.
pub fn duration_within(
    value: Option<ConfigDuration>,
    default: Duration,
    allowed: RangeInclusive<Duration>,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Duration {
    let duration = value.map_or(default, |d| d.0);
    if !allowed.contains(&duration) {
        errors.push(out_of_range(
            path,
            describe_duration(duration),
            describe_duration(*allowed.start()),
            describe_duration(*allowed.end()),
        ));
    }
    duration
}

/// `value` in bytes (or `default` when absent); outside `allowed`, a located error.
pub fn size_within(
    value: Option<ByteSize>,
    default: u64,
    allowed: RangeInclusive<u64>,
    path: &str,
    errors: &mut Vec<PathError>,
) -> u64 {
    let size = value.map_or(default, |s| s.0);
    if !allowed.contains(&size) {
        errors.push(out_of_range(
            path,
            describe_size(size),
            describe_size(*allowed.start()),
            describe_size(*allowed.end()),
        ));
    }
    size
}

/// A count (threads, entries, attempts…) or `default`; outside `allowed`, a located error.
pub fn count_within<T: PartialOrd + Display + Copy>(
    value: Option<T>,
    default: T,
    allowed: RangeInclusive<T>,
    path: &str,
    errors: &mut Vec<PathError>,
) -> T {
    let count = value.unwrap_or(default);
    if !allowed.contains(&count) {
        errors.push(out_of_range(
            path,
            count.to_string(),
            allowed.start().to_string(),
            allowed.end().to_string(),
        ));
    }
    count
}

fn out_of_range(path: &str, value: String, min: String, max: String) -> PathError {
    PathError::new(
        path,
        format!("`{value}` is out of range: allowed {min} to {max}"),
    )
}

/// A duration in the largest unit that writes it exactly (`250ms`, `30s`, `5m`, `1h`, `2d`).
pub fn describe_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if millis % 1000 != 0 || duration.subsec_nanos() % 1_000_000 != 0 {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .into_iter()
        .find(|(unit, _)| seconds % unit == 0)
        .map_or_else(
            || format!("{seconds}s"),
            |(unit, name)| format!("{}{name}", seconds / unit),
        )
}

/// A size in the largest binary unit that writes it exactly (`512B`, `8KiB`, `1MiB`).
pub fn describe_size(bytes: u64) -> String {
    [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(unit, _)| bytes != 0 && bytes % unit == 0)
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, name)| format!("{}{name}", bytes / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_inside_the_range_pass_and_defaults_apply() {
        let mut errors = Vec::new();
        let second = Duration::from_secs(1);
        let range = Duration::from_millis(100)..=Duration::from_secs(3600);
        assert_eq!(
            duration_within(None, second, range.clone(), "a", &mut errors),
            second
        );
        let given = Some(ConfigDuration(Duration::from_secs(3600)));
        assert_eq!(
            duration_within(given, second, range, "a", &mut errors),
            Duration::from_secs(3600)
        );
        assert_eq!(
            size_within(Some(ByteSize(1024)), 1, 1..=1024, "b", &mut errors),
            1024
        );
        assert_eq!(count_within(None, 4usize, 1..=8, "c", &mut errors), 4);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn values_outside_the_range_name_the_range() {
        let mut errors = Vec::new();
        let zero = Some(ConfigDuration(Duration::ZERO));
        let range = Duration::from_millis(100)..=Duration::from_secs(3600);
        duration_within(
            zero,
            Duration::from_secs(1),
            range,
            "server.read_timeout",
            &mut errors,
        );
        size_within(
            Some(ByteSize(0)),
            1,
            1024..=(1 << 20),
            "server.max_header_size",
            &mut errors,
        );
        count_within(Some(0usize), 1, 1..=1024, "server.threads", &mut errors);
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        assert_eq!(
            messages,
            [
                "server.read_timeout: `0s` is out of range: allowed 100ms to 1h",
                "server.max_header_size: `0B` is out of range: allowed 1KiB to 1MiB",
                "server.threads: `0` is out of range: allowed 1 to 1024",
            ]
        );
    }

    #[test]
    fn descriptions_use_the_largest_exact_unit() {
        assert_eq!(describe_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(describe_duration(Duration::from_secs(90)), "90s");
        assert_eq!(describe_duration(Duration::from_secs(172_800)), "2d");
        assert_eq!(describe_size(8 * 1024), "8KiB");
        assert_eq!(describe_size(1000), "1000B");
    }
}
