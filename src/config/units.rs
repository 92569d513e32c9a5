//! Human-friendly scalar units used across the configuration file: durations (`30s`, `5m`,
//! `250ms`), byte sizes (`8KiB`, `1MiB`) and rates (`100/s`, `10000/day`).
//!
//! Each type deserializes from a string (or a bare integer where that is unambiguous), so a bad
//! value is reported by the YAML parser with the file position of the offending scalar.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A duration written as `<number><unit>`: `ms`, `s`, `m`, `h`, `d`. A bare integer means seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigDuration(pub Duration);

/// A byte size written as `<number>[unit]`: `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB` (binary and
/// decimal prefixes are both accepted and both mean powers of 1024, as in nginx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteSize(pub u64);

/// Bytes per second written as `<size>/s` (`1KiB/s`); `0` switches the check off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRate(pub u64);

/// A rate written as `<count>/<period>`: `s`, `min`, `hour`, `day`, `month` (30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateSpec {
    /// How many requests are allowed per period.
    pub count: u64,
    /// The period the count refers to.
    pub period: Duration,
}

/// Why a duration (`30s`, `5m`, `250ms`) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration `{text}`: expected a number followed by a unit (ms, s, m, h, d), e.g. `30s`")]
    MissingNumber { text: String },
    #[error("invalid duration `{text}`: `{number}` is not a number")]
    InvalidNumber { text: String, number: String },
    #[error("invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit { text: String, unit: String },
    /// Longer than ten years, or not finite.
    #[error("invalid duration `{text}`: out of range")]
    OutOfRange { text: String },
}

/// Why a byte size (`8KiB`, `1MiB`) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{text}`: expected a whole number with an optional unit, e.g. `1MiB`")]
    InvalidNumber { text: String },
    #[error("invalid size `{text}`: unknown unit `{unit}` (use B, KiB, MiB or GiB)")]
    UnknownUnit { text: String, unit: String },
    /// The number of bytes does not fit in 64 bits.
    #[error("invalid size `{text}`: out of range")]
    OutOfRange { text: String },
    #[error("invalid byte rate `{text}`: expected a size per second, e.g. `1KiB/s`, or `0`")]
    NotPerSecond { text: String },
}

/// Why a rate (`100/s`, `10000/day`) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("invalid rate `{text}`: expected `<count>/<period>`, e.g. `100/s` or `10000/day`")]
    MissingPeriod { text: String },
    #[error("invalid rate `{text}`: `{count}` is not a whole number")]
    InvalidCount { text: String, count: String },
    #[error("invalid rate `{text}`: the count must be at least 1")]
    ZeroCount { text: String },
    #[error("invalid rate `{text}`: unknown period `{period}` (use s, min, hour, day or month)")]
    UnknownPeriod { text: String, period: String },
}

/// Parses `30s`, `5m`, `250ms`, `1h`, `2d`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(DurationError::MissingNumber { text: text.into() });
    }
    let value: f64 = number.parse().map_err(|_| DurationError::InvalidNumber {
        text: text.into(),
        number: number.into(),
    })?;
    let unit_seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(DurationError::UnknownUnit {
                text: text.into(),
                unit: other.into(),
            })
        }
    };
    let seconds = value * unit_seconds;
    if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86400.0 {
        return Err(DurationError::OutOfRange { text: text.into() });
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `512`, `8KiB`, `1MiB`, `2 MB`, `1GiB`.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| SizeError::InvalidNumber { text: text.into() })?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(SizeError::UnknownUnit {
                text: text.into(),
                unit: other.into(),
            })
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| SizeError::OutOfRange { text: text.into() })
}

/// Parses a byte rate: a size per second (`1KiB/s`), or `0` for none.
pub fn parse_byte_rate(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let Some(size) = text.strip_suffix("/s") else {
        return Err(SizeError::NotPerSecond { text: text.into() });
    };
    parse_size(size).map_err(|_| SizeError::NotPerSecond { text: text.into() })
}

/// Parses `100/s`, `60/min`, `1000/hour`, `10000/day`, `1000000/month`.
pub fn parse_rate(text: &str) -> Result<RateSpec, RateError> {
    let text = text.trim();
    let Some((count, period)) = text.split_once('/') else {
        return Err(RateError::MissingPeriod { text: text.into() });
    };
    let count: u64 = count.trim().parse().map_err(|_| RateError::InvalidCount {
        text: text.into(),
        count: count.into(),
    })?;
    if count == 0 {
        return Err(RateError::ZeroCount { text: text.into() });
    }
    let seconds = match period.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "month" => 30 * 86_400,
        other => {
            return Err(RateError::UnknownPeriod {
                text: text.into(),
                period: other.into(),
            })
        }
    };
    Ok(RateSpec {
        count,
        period: Duration::from_secs(seconds),
    })
}

/// Accepts a YAML string or an unsigned integer and hands its text to `parse`.
struct TextOrNumber<F>(&'static str, F);

impl<'de, T, Reason: fmt::Display, F: Fn(&str) -> Result<T, Reason>> Visitor<'de>
    for TextOrNumber<F>
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.1)(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.1)(&v.to_string()).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber("a duration such as `30s`", parse_duration))
            .map(ConfigDuration)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber("a size such as `1MiB`", parse_size))
            .map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber(
            "a byte rate such as `1KiB/s`",
            parse_byte_rate,
        ))
        .map(ByteRate)
    }
}

impl<'de> Deserialize<'de> for RateSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrNumber("a rate such as `100/s`", parse_rate))
    }
}

/// One string or a list of strings (`rate_limit: a` or `rate_limit: [a, b]`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::One(one) => vec![one.clone()],
            StringOrList::Many(many) => many.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
    }

    #[test]
    fn bad_durations_explain_themselves() {
        assert!(parse_duration("5 fortnights")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_duration("s")
            .unwrap_err()
            .to_string()
            .contains("expected a number"));
        assert!(parse_duration("1e99d").is_err());
    }

    #[test]
    fn sizes_use_binary_multiples() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("8KiB").unwrap(), 8192);
        assert_eq!(parse_size("8 kb").unwrap(), 8192);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn byte_rates_are_sizes_per_second() {
        assert_eq!(parse_byte_rate("1KiB/s").unwrap(), 1024);
        assert_eq!(parse_byte_rate("240/s").unwrap(), 240);
        assert_eq!(parse_byte_rate("0").unwrap(), 0);
        let error = parse_byte_rate("1KiB").unwrap_err().to_string();
        assert!(error.contains("`1KiB/s`"), "{error}");
        assert!(parse_byte_rate("fast/s").is_err());
    }

    #[test]
    fn rates_parse_every_period() {
        let r = parse_rate("100/s").unwrap();
        assert_eq!((r.count, r.period), (100, Duration::from_secs(1)));
        assert_eq!(parse_rate("10000/day").unwrap().period.as_secs(), 86_400);
        assert_eq!(parse_rate("5/min").unwrap().period.as_secs(), 60);
        assert_eq!(parse_rate("5/hour").unwrap().period.as_secs(), 3600);
        assert_eq!(parse_rate("5/month").unwrap().period.as_secs(), 2_592_000);
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("100/fortnight").is_err());
    }

    #[test]
    fn duration_error_names_the_value_and_the_unit() {
        assert_eq!(
            parse_duration("5 fortnights").unwrap_err().to_string(),
            "invalid duration `5 fortnights`: unknown unit `fortnights` (use ms, s, m, h or d)"
        );
    }

    #[test]
    fn size_error_names_the_value() {
        assert_eq!(
            parse_size("99999999999999GiB").unwrap_err().to_string(),
            "invalid size `99999999999999GiB`: out of range"
        );
    }

    #[test]
    fn rate_error_names_the_value_and_the_period() {
        assert_eq!(
            parse_rate("100/fortnight").unwrap_err().to_string(),
            "invalid rate `100/fortnight`: unknown period `fortnight` (use s, min, hour, day or month)"
        );
    }
}
