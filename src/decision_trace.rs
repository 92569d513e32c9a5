//! A request's decision, step by step: what `portcullis explain` prints and what a refused
//! request logs under the `portcullis::decision` target at debug level. The checks themselves
//! live with the steps that make them (routing, token verification, rules, limits); they write
//! here only when a request carries a trace, so a request without one pays one `Option` test per
//! step.
//!
//! A trace never holds a token, a cookie or a secret: token checks record the header and the
//! claims they read, and values from credential-bearing headers are shown as `(hidden)`.

use serde::Serialize;
use std::fmt::Write;

/// The outcome of one step or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The check failed; on a step, the step refused the request.
    Fail,
    /// The check was not made (nothing to check, or not possible offline).
    Skip,
    /// Information: what was found or what would be done.
    Note,
}

impl Verdict {
    /// The marker printed in front of a line.
    pub fn marker(self) -> &'static str {
        match self {
            Verdict::Pass => "ok  ",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
            Verdict::Note => "  - ",
        }
    }

    /// `Pass` when `holds`, else `Fail`.
    pub fn of(holds: bool) -> Verdict {
        if holds {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// One check inside a step; `depth` nests a rule's branches under the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub depth: u8,
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// One pipeline step: its verdict, a one-line summary and its checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    pub checks: Vec<Check>,
}

impl Step {
    /// Adds a top-level check.
    pub fn check(&mut self, name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) {
        self.check_at(0, name, verdict, detail);
    }

    /// Adds a check nested `depth` levels deep.
    pub fn check_at(
        &mut self,
        depth: u8,
        name: impl Into<String>,
        verdict: Verdict,
        detail: impl Into<String>,
    ) {
        self.checks.push(Check {
            depth,
            name: name.into(),
            verdict,
            detail: detail.into(),
        });
    }
}

/// Every step a request went through, in pipeline order.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DecisionTrace {
    pub steps: Vec<Step>,
    /// Explaining without the network (`portcullis explain` without `--fetch`): checks that
    /// need a provider's keys or an answer from a service are reported as skipped instead of
    /// refusing the request.
    #[serde(skip)]
    pub offline: bool,
    /// The request is explained, not served (`portcullis explain`): rate limits are described,
    /// never counted.
    #[serde(skip)]
    pub explaining: bool,
}

impl DecisionTrace {
    /// Starts a step and returns it for its checks.
    pub fn step(
        &mut self,
        step: &'static str,
        verdict: Verdict,
        summary: impl Into<String>,
    ) -> &mut Step {
        self.steps.push(Step {
            step,
            verdict,
            summary: summary.into(),
            checks: Vec::new(),
        });
        let last = self.steps.len() - 1;
        &mut self.steps[last]
    }

    /// The step that refused the request, if one did.
    pub fn failed_step(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.verdict == Verdict::Fail)
    }

    /// The trace as indented text, one line per step and check.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let _ = writeln!(
                out,
                "[{}] {:<14} {}",
                step.verdict.marker(),
                step.step,
                step.summary
            );
            for check in &step.checks {
                let indent = "  ".repeat(usize::from(check.depth) + 1);
                let _ = write!(
                    out,
                    "       {indent}{} {}",
                    check.verdict.marker(),
                    check.name
                );
                if !check.detail.is_empty() {
                    let _ = write!(out, ": {}", check.detail);
                }
                out.push('\n');
            }
        }
        out
    }

    /// Logs the trace of a refused request, one line per step and check, each under its
    /// request id (target `portcullis::decision`, level debug).
    pub fn log_refusal(&self, request_id: &str) {
        for line in self.render_text().lines() {
            tracing::debug!(target: "portcullis::decision", request_id, "{line}");
        }
    }
}

/// Whether refused requests should carry a trace (debug enabled for `portcullis::decision`).
pub fn live_tracing_enabled() -> bool {
    tracing::enabled!(target: "portcullis::decision", tracing::Level::DEBUG)
}

/// Shortens a claim or header value for display (at most 120 characters).
pub fn shown(value: &str) -> String {
    if value.chars().count() <= 120 {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(117).collect();
        cut.push_str("...");
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_steps_and_nested_checks_and_finds_the_failing_step() {
        let mut trace = DecisionTrace::default();
        trace.step("route", Verdict::Pass, "route `orders`");
        let auth = trace.step("authenticate", Verdict::Fail, "403 insufficient_scope");
        auth.check("rule", Verdict::Fail, "all of [...]");
        auth.check_at(
            1,
            "realm role \"writer\"",
            Verdict::Fail,
            "realm roles: [reader]",
        );
        let text = trace.render_text();
        assert!(text.contains("[ok  ] route"), "{text}");
        assert!(text.contains("[FAIL] authenticate"), "{text}");
        assert!(
            text.contains("    FAIL realm role \"writer\": realm roles: [reader]"),
            "{text}"
        );
        assert_eq!(trace.failed_step().map(|s| s.step), Some("authenticate"));
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["steps"][1]["checks"][1]["depth"], 1);
        assert_eq!(json["steps"][1]["verdict"], "fail");
    }

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(shown("abc"), "abc");
        let long = "x".repeat(500);
        assert_eq!(shown(&long).chars().count(), 120);
    }
}
