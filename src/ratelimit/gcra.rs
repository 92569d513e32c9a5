//! The GCRA (generic cell rate algorithm) arithmetic, pure and shared by both stores.
//!
//! GCRA is a token bucket stored as one number per key: the *theoretical arrival time* (TAT), the
//! instant at which the bucket will be full again. A request at `now` costs one emission interval
//! `T = period / count`; it is allowed when, after paying, the bucket would not be over-full:
//!
//! ```text
//! tat      = max(stored_tat, now)
//! new_tat  = tat + T
//! allowed  = new_tat - now <= capacity * T          (then store new_tat)
//! ```
//!
//! **Capacity (burst semantics).** `capacity = count + burst`: a client that has been idle for a
//! while may send `count + burst` requests at once, then `count` per `period` at the steady rate.
//! With `burst: 0` a quota such as `10000/day` can be spent at any pace within the day; `100/s`
//! with `burst: 50` admits 150 back to back, then one every 10 ms. In any window of length
//! `period` at most `2 * count + burst` requests pass (a full bucket plus one period of refill).
//!
//! Because the state is a time and not a count, a rate change (reload, or a client moving to
//! another tier) applies to existing state at once, and a key whose TAT is in the past is exactly
//! equivalent to an unknown key: forgetting it loses nothing (see [`super::local`]).

use crate::config::units::RateSpec;

/// One rate in bucket terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Nanoseconds one request costs: `period / count`, rounded down (at least 1 ns), so the
    /// steady rate is exact to within 1 ns per request.
    pub emission_ns: u64,
    /// Requests a full bucket holds: `count + burst` (at least 1).
    pub capacity: u64,
}

impl Limit {
    /// The bucket for `rate` with `burst` extra requests.
    pub fn new(rate: RateSpec, burst: u64) -> Self {
        let period_ns = u64::try_from(rate.period.as_nanos()).unwrap_or(u64::MAX);
        Limit {
            emission_ns: (period_ns / rate.count.max(1)).max(1),
            capacity: rate.count.saturating_add(burst).max(1),
        }
    }

    /// Nanoseconds a full bucket represents: `capacity * T`.
    pub fn window_ns(&self) -> u64 {
        self.emission_ns.saturating_mul(self.capacity)
    }
}

/// What one check decided, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// Requests that would still pass right now, after this one.
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset_after_ns: u64,
    /// Until the next request can pass (0 when allowed).
    pub retry_after_ns: u64,
}

/// Checks one request at `now` against the stored `tat` (0 for an unknown key) and returns the
/// outcome and the TAT to store (unchanged when the request is limited).
#[inline]
pub fn check(tat: u64, now: u64, limit: &Limit) -> (Outcome, u64) {
    let tat = tat.max(now);
    let window = limit.window_ns();
    let new_tat = tat.saturating_add(limit.emission_ns);
    let allow_at = new_tat.saturating_sub(window);
    if now < allow_at {
        let outcome = Outcome {
            allowed: false,
            remaining: 0,
            reset_after_ns: tat - now,
            retry_after_ns: allow_at - now,
        };
        return (outcome, tat);
    }
    let used = new_tat - now;
    let outcome = Outcome {
        allowed: true,
        remaining: (window - used) / limit.emission_ns,
        reset_after_ns: used,
        retry_after_ns: 0,
    };
    (outcome, new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(count: u64, secs: u64) -> RateSpec {
        RateSpec {
            count,
            period: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_fresh_key_has_a_full_bucket() {
        let limit = Limit::new(rate(10, 1), 5);
        assert_eq!(limit.emission_ns, 100_000_000);
        assert_eq!(limit.capacity, 15);
        let (outcome, tat) = check(0, 1_000, &limit);
        assert!(outcome.allowed);
        assert_eq!(outcome.remaining, 14);
        assert_eq!(outcome.reset_after_ns, 100_000_000);
        assert_eq!(tat, 1_000 + 100_000_000);
    }

    #[test]
    fn an_empty_bucket_says_when_to_retry() {
        let limit = Limit::new(rate(2, 1), 0);
        let now = 5;
        let (_, tat) = check(0, now, &limit);
        let (o, tat) = check(tat, now, &limit);
        assert!(o.allowed && o.remaining == 0);
        let (o, same) = check(tat, now, &limit);
        assert!(!o.allowed);
        assert_eq!(same, tat);
        assert_eq!(o.retry_after_ns, 500_000_000);
        assert_eq!(o.reset_after_ns, 1_000_000_000);
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let limit = Limit::new(rate(1, 30 * 86_400), u64::MAX);
        let (o, _) = check(u64::MAX - 1, u64::MAX - 2, &limit);
        assert!(o.allowed || o.retry_after_ns > 0);
    }
}
