//! What `portcullis doctor` reports: each check's [`Finding`] (ok, warn or fail, with a fix),
//! the [`Report`] printed one line per finding, and the comparison of a provider's clock with
//! ours, which every provider check ends with.

use std::fmt::Write;
use std::time::SystemTime;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warn,
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub health: Health,
    /// What was checked: `provider acme`, `upstream orders 10.0.0.5:8080`, `redis`, `admin`.
    pub subject: String,
    pub message: String,
    /// What to change, for a warning or a failure.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(subject: &str, message: impl Into<String>) -> Finding {
        Finding {
            health: Health::Ok,
            subject: subject.to_owned(),
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(subject: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            health: Health::Warn,
            subject: subject.to_owned(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(subject: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            health: Health::Fail,
            subject: subject.to_owned(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every finding, in check order.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.health == Health::Fail)
    }

    /// One line per finding, its fix indented below it, then a count.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            let marker = match finding.health {
                Health::Ok => "ok  ",
                Health::Warn => "warn",
                Health::Fail => "FAIL",
            };
            let _ = writeln!(out, "[{marker}] {}: {}", finding.subject, finding.message);
            if let Some(fix) = &finding.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        let count = |health| self.findings.iter().filter(|f| f.health == health).count();
        let _ = writeln!(
            out,
            "{} ok, {} warning(s), {} failure(s)",
            count(Health::Ok),
            count(Health::Warn),
            count(Health::Fail)
        );
        out
    }
}

/// The provider's clock (its `Date`) against ours, with `clock_skew` as the tolerance.
pub fn clock_finding(subject: &str, provider_date: SystemTime, skew_seconds: u64) -> Finding {
    let ours = SystemTime::now();
    let (ahead, difference) = match provider_date.duration_since(ours) {
        Ok(ahead) => (true, ahead.as_secs()),
        Err(behind) => (false, behind.duration().as_secs()),
    };
    let direction = if ahead { "ahead of" } else { "behind" };
    // `Date` has one-second resolution: a difference of a second is no drift.
    if difference <= 1 {
        Finding::ok(subject, "clock agrees with ours")
    } else if difference > skew_seconds {
        Finding::fail(
            subject,
            format!("clock is {difference}s {direction} ours, beyond clock_skew ({skew_seconds}s): fresh tokens will be refused as not yet valid or issued in the future"),
            "synchronize both clocks (NTP); raise `clock_skew` only as a stopgap",
        )
    } else if difference * 2 > skew_seconds {
        Finding::warn(
            subject,
            format!("clock is {difference}s {direction} ours, over half of clock_skew ({skew_seconds}s)"),
            "synchronize both clocks (NTP)",
        )
    } else {
        Finding::ok(
            subject,
            format!("clock is {difference}s {direction} ours (clock_skew {skew_seconds}s)"),
        )
    }
}
