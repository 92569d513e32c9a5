//! What a decision trace says about a token: its header, the key source its key came from, and
//! each registered-claim check with the value it read. The checks are [`verify`]'s own
//! ([`CLAIM_CHECKS`]), run one by one so the trace shows every failing claim, not only the
//! first. Nothing here prints the token itself.

use super::failure::AuthFailure;
use super::settings::{KeySource, ProviderSettings};
use super::verify::{ClaimRules, TokenParts, CLAIM_CHECKS};
use crate::decision_trace::{shown, Step, Verdict};
use crate::policy::Claims;
use serde_json::Value;

/// Where the trace of one token verification goes, and whether the explanation is offline
/// (a provider without keys is then explained without its signature instead of refused).
pub struct TokenTrace<'a> {
    pub step: &'a mut Step,
    pub offline: bool,
}

/// `alg RS256, kid "k1", typ JWT`.
pub fn describe_header(parts: &TokenParts<'_>) -> String {
    let header = &parts.header;
    let mut text = format!("alg {:?}", header.alg);
    match &header.kid {
        Some(kid) => text.push_str(&format!(", kid `{}`", shown(kid))),
        None => text.push_str(", no kid"),
    }
    if let Some(typ) = &header.typ {
        text.push_str(&format!(", typ {}", shown(typ)));
    }
    text
}

/// Where a provider's keys come from, as an operator configured it.
pub fn describe_key_source(settings: &ProviderSettings) -> String {
    match &settings.source {
        KeySource::Discovery(url) => format!("JWKS from discovery at {url}"),
        KeySource::Remote(url) => format!("JWKS from {url}"),
        KeySource::StaticJwks(_) => "the configured JWKS (jwks_file or jwks_inline)".into(),
        KeySource::StaticPem(_) => "the configured public_key_pem".into(),
    }
}

/// Runs every claim check, records each with the value it read, and returns the first failure.
pub fn record_claim_checks(
    step: &mut Step,
    claims: &Claims,
    rules: &ClaimRules,
    now: u64,
) -> Result<(), AuthFailure> {
    let mut first_failure = None;
    for (claim, check) in CLAIM_CHECKS {
        let result = check(claims, rules, now as f64);
        let read = claim_read(claims.document(), claim, rules, now);
        match result {
            Ok(()) => {
                let skipped = read.is_none();
                let verdict = if skipped {
                    Verdict::Skip
                } else {
                    Verdict::Pass
                };
                step.check(
                    claim,
                    verdict,
                    read.unwrap_or_else(|| "absent: nothing to check".into()),
                );
            }
            Err(failure) => {
                let detail = match read {
                    Some(read) => format!("{read}: {}", failure.description),
                    None => failure.description.clone(),
                };
                step.check(claim, Verdict::Fail, detail);
                first_failure.get_or_insert(failure);
            }
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// The value a claim check read and what it compared it with; `None` when the check has
/// nothing to compare (no such rule configured, and the claim is absent).
fn claim_read(payload: &Value, claim: &str, rules: &ClaimRules, now: u64) -> Option<String> {
    let value = payload.get(claim);
    let skew = rules.clock_skew_seconds;
    match claim {
        "exp" | "nbf" | "iat" => {
            let Some(time) = value.and_then(Value::as_f64) else {
                return value.map(|v| format!("{} (not a number)", shown(&v.to_string())));
            };
            let delta = time as i64 - now as i64;
            let relative = if delta >= 0 {
                format!("in {delta}s")
            } else {
                format!("{}s ago", -delta)
            };
            Some(format!("{claim} {time} ({relative}; clock skew {skew}s)"))
        }
        "iss" => Some(format!(
            "{} (expected `{}`)",
            quoted(value),
            shown(&rules.issuer)
        )),
        "aud" => {
            if rules.audiences.is_empty() {
                return None;
            }
            Some(format!(
                "{} (expected one of [{}])",
                quoted(value),
                rules.audiences.join(", ")
            ))
        }
        "azp" => {
            if rules.authorized_parties.is_empty() {
                return value.map(|v| format!("{} (any party accepted)", quoted(Some(v))));
            }
            Some(format!(
                "{} (authorized: [{}])",
                quoted(value),
                rules.authorized_parties.join(", ")
            ))
        }
        "typ" => {
            let types = rules.token_types.as_ref()?;
            Some(format!(
                "{} (expected {})",
                quoted(value),
                types.join(" or ")
            ))
        }
        _ => None,
    }
}

fn quoted(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(Value::String(text)) => format!("`{}`", shown(text)),
        Some(other) => shown(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision_trace::DecisionTrace;
    use crate::oidc::AuthReason;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://idp/realms/acme".into(),
            audiences: vec!["orders-api".into()],
            authorized_parties: vec![],
            token_types: Some(vec!["Bearer".into()]),
            clock_skew_seconds: 30,
        }
    }

    #[test]
    fn every_claim_is_recorded_and_the_first_failure_returned() {
        let mut trace = DecisionTrace::default();
        let step = trace.step("authenticate", Verdict::Note, "");
        let payload = json!({
            "iss": "https://idp/realms/acme", "aud": "account", "exp": 1000, "typ": "Bearer"
        });
        let failure =
            record_claim_checks(step, &Claims::from(payload), &rules(), 2000).unwrap_err();
        assert_eq!(failure.reason, AuthReason::Expired);
        let checks = &trace.steps[0].checks;
        let exp = checks.iter().find(|c| c.name == "exp").unwrap();
        assert_eq!(exp.verdict, Verdict::Fail);
        assert!(exp.detail.contains("1000s ago"), "{}", exp.detail);
        let aud = checks.iter().find(|c| c.name == "aud").unwrap();
        assert_eq!(aud.verdict, Verdict::Fail);
        assert!(aud.detail.contains("Audience mapper"), "{}", aud.detail);
        let iss = checks.iter().find(|c| c.name == "iss").unwrap();
        assert_eq!(iss.verdict, Verdict::Pass);
        let nbf = checks.iter().find(|c| c.name == "nbf").unwrap();
        assert_eq!(nbf.verdict, Verdict::Skip);
    }

    #[test]
    fn a_good_token_passes_every_check() {
        let mut trace = DecisionTrace::default();
        let step = trace.step("authenticate", Verdict::Note, "");
        let payload = json!({
            "iss": "https://idp/realms/acme", "aud": ["orders-api"], "exp": 3000, "iat": 1900,
            "typ": "Bearer"
        });
        assert!(record_claim_checks(step, &Claims::from(payload), &rules(), 2000).is_ok());
        assert!(trace.steps[0]
            .checks
            .iter()
            .all(|c| c.verdict != Verdict::Fail));
    }
}
