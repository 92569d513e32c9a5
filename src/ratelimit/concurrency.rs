//! Concurrency limits (`rate_limits.<name>.concurrency: N`): at most N requests of one key in
//! flight at once, per gateway instance. A request takes a [`Slot`] after its rate limits pass
//! and holds it in its context until the request ends — response sent, client gone, upstream
//! error or timeout alike: the slot is released when the context is dropped, so no path can
//! leak one.
//!
//! Counting uses `pingora_limits::inflight::Inflight`: a count-min sketch of 4 × 8192 counters
//! (256 KiB per policy, whatever the number of keys), so a flood of distinct keys cannot grow
//! memory. Its estimate never undercounts; a hash collision can only overcount, i.e. refuse
//! early, with a probability of about (in-flight keys / 8192)^4 per request.

use super::key::rate_key;
use super::metrics::{in_flight, PolicyCounters};
use super::policy::{compile_key, RateKeyPart};
use crate::config::file::{RateLimitFile, RateLimitStore};
use crate::config::PathError;
use crate::policy::Identity;
use pingora_limits::inflight::{Guard, Inflight};
use prometheus::IntGauge;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The most requests a concurrency policy may admit at once.
const MAX_CONCURRENCY: u64 = 1_000_000;

/// A compiled `concurrency` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyPolicy {
    pub name: String,
    pub key: Vec<RateKeyPart>,
    /// Requests of one key in flight at most.
    pub limit: u64,
}

/// Compiles every `concurrency` policy, in name order; they take no `burst`, `tiers` or
/// `store: redis` (the count is per instance).
pub fn compile_concurrency_limits(
    policies: &BTreeMap<String, RateLimitFile>,
    errors: &mut Vec<PathError>,
) -> Vec<ConcurrencyPolicy> {
    policies
        .iter()
        .filter(|(_, file)| file.rate.is_none())
        .filter_map(|(name, file)| {
            let path = format!("rate_limits.{name}");
            let limit = file.concurrency?;
            let limit = crate::config::bounds::count_within(
                Some(limit),
                1,
                1..=MAX_CONCURRENCY,
                &format!("{path}.concurrency"),
                errors,
            );
            if file.burst.is_some() || !file.tiers.is_empty() {
                errors.push(PathError::new(
                    &path,
                    "`burst` and `tiers` belong to `rate` policies, not to `concurrency`",
                ));
            }
            if file.store == Some(RateLimitStore::Redis) {
                errors.push(PathError::new(
                    format!("{path}.store"),
                    "`concurrency` counts per instance; `store: redis` is for `rate` policies",
                ));
            }
            Some(ConcurrencyPolicy {
                name: name.clone(),
                key: compile_key(file, &path, errors),
                limit,
            })
        })
        .collect()
}

/// A slot of a concurrency policy held by one request; dropping it releases the slot.
#[derive(Debug)]
pub struct Slot {
    _guard: Guard,
    gauge: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Every slot of the policy's key is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Full<'a> {
    pub policy: &'a str,
    pub limit: u64,
}

struct PolicySlots {
    policy: ConcurrencyPolicy,
    inflight: Arc<Inflight>,
    gauge: IntGauge,
    counters: PolicyCounters,
}

impl std::fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .policies
            .iter()
            .map(|p| p.policy.name.as_str())
            .collect();
        f.debug_struct("ConcurrencyLimiter")
            .field("policies", &names)
            .finish()
    }
}

/// The concurrency limits of one snapshot.
pub struct ConcurrencyLimiter {
    policies: Vec<PolicySlots>,
}

impl ConcurrencyLimiter {
    /// With `previous` (a reload), a policy of the same name and key keeps its counters, so the
    /// requests in flight across the reload still count.
    pub fn new(policies: &[ConcurrencyPolicy], previous: Option<&ConcurrencyLimiter>) -> Self {
        let policies = policies
            .iter()
            .map(|policy| {
                let kept = previous.and_then(|p| {
                    p.policies
                        .iter()
                        .find(|old| old.policy.name == policy.name && old.policy.key == policy.key)
                });
                PolicySlots {
                    inflight: kept
                        .map_or_else(|| Arc::new(Inflight::new()), |k| k.inflight.clone()),
                    gauge: in_flight(&policy.name),
                    counters: PolicyCounters::new(&policy.name, 0),
                    policy: policy.clone(),
                }
            })
            .collect();
        ConcurrencyLimiter { policies }
    }

    /// Takes a slot of policy `index` for this request, or says that the key is full.
    /// Panics when `index` is out of range.
    pub fn acquire(
        &self,
        index: usize,
        identity: Option<&Identity>,
        headers: &http::HeaderMap,
        client_ip: IpAddr,
        key_buf: &mut String,
    ) -> Result<Slot, Full<'_>> {
        let slots = &self.policies[index];
        rate_key(&slots.policy.key, identity, headers, client_ip, key_buf);
        let (guard, count) = slots.inflight.incr(key_buf.as_str(), 1);
        let allowed = u64::try_from(count).is_ok_and(|count| count <= slots.policy.limit);
        slots.counters.record(None, allowed);
        if !allowed {
            // Dropping the guard gives the count back at once.
            return Err(Full {
                policy: &slots.policy.name,
                limit: slots.policy.limit,
            });
        }
        slots.gauge.inc();
        Ok(Slot {
            _guard: guard,
            gauge: slots.gauge.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limiter of one policy; each test names its own (the gauges are process-wide).
    fn limiter(name: &str, limit: u64) -> ConcurrencyLimiter {
        let policy = ConcurrencyPolicy {
            name: name.into(),
            key: vec![RateKeyPart::ClientIp],
            limit,
        };
        ConcurrencyLimiter::new(&[policy], None)
    }

    #[test]
    fn slots_are_taken_up_to_the_limit_and_given_back_on_drop() {
        let limiter = limiter("jobs", 2);
        let headers = http::HeaderMap::new();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let mut key = String::new();
        let first = limiter.acquire(0, None, &headers, a, &mut key).unwrap();
        let second = limiter.acquire(0, None, &headers, a, &mut key).unwrap();
        let full = limiter.acquire(0, None, &headers, a, &mut key).unwrap_err();
        assert_eq!(
            full,
            Full {
                policy: "jobs",
                limit: 2
            }
        );
        // Another key has its own slots; a refusal took none.
        let other = limiter.acquire(0, None, &headers, b, &mut key);
        assert!(other.is_ok());
        drop(first);
        let again = limiter.acquire(0, None, &headers, a, &mut key);
        assert!(again.is_ok(), "a released slot is free again");
        drop((second, again, other));
        assert_eq!(
            limiter.policies[0].gauge.get(),
            0,
            "every slot was given back"
        );
    }

    #[test]
    fn a_reload_keeps_the_requests_in_flight() {
        let before = limiter("reloaded", 1);
        let headers = http::HeaderMap::new();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut key = String::new();
        let held = before.acquire(0, None, &headers, ip, &mut key).unwrap();
        let policies = [before.policies[0].policy.clone()];
        let after = ConcurrencyLimiter::new(&policies, Some(&before));
        assert!(after.acquire(0, None, &headers, ip, &mut key).is_err());
        drop(held);
        assert!(after.acquire(0, None, &headers, ip, &mut key).is_ok());
    }
}
