//! The pace of a request body: `server.min_body_rate` against a client that drips its body
//! (one byte every `read_timeout - 1` seconds would otherwise hold a connection, and the
//! upstream connection behind it, for days).
//!
//! Only the time the gateway spent *waiting for the client* counts (the stream's read-pending
//! time), so an upstream that reads the body slowly, and so holds the gateway back, never makes
//! the client look slow. The first [`GRACE`] of waiting is free, as in Kestrel's
//! `MinRequestBodyDataRate`, so a slow start (TCP slow start, a phone waking its radio) passes.

use std::time::Duration;

/// Waiting time allowed before the rate is checked.
pub const GRACE: Duration = Duration::from_secs(5);

/// How much of one request body has arrived, and how long the gateway has waited for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// The connection's read-pending time when the body started.
    waited_before: Duration,
    received: u64,
}

/// The body is arriving slower than the minimum rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow;

impl BodyPace {
    /// A body whose first chunk arrived when the connection had waited `read_pending` in all.
    pub fn start(read_pending: Duration) -> Self {
        BodyPace {
            waited_before: read_pending,
            received: 0,
        }
    }

    /// Counts a chunk of `bytes`, the connection's read-pending time now being `read_pending`;
    /// refuses once the wait is past [`GRACE`] and the body averages less than `min_rate`
    /// bytes per second of waiting. A `min_rate` of 0 never refuses.
    pub fn chunk(
        &mut self,
        bytes: usize,
        read_pending: Duration,
        min_rate: u64,
    ) -> Result<(), TooSlow> {
        self.received = self.received.saturating_add(bytes as u64);
        let waited = read_pending.saturating_sub(self.waited_before);
        if min_rate == 0 || waited <= GRACE {
            return Ok(());
        }
        let expected = (min_rate as f64 * waited.as_secs_f64()) as u64;
        if self.received < expected {
            Err(TooSlow)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u64 = 1024;

    #[test]
    fn a_slow_start_within_the_grace_passes() {
        let mut pace = BodyPace::start(Duration::from_secs(100));
        assert_eq!(pace.chunk(1, Duration::from_secs(104), RATE), Ok(()));
    }

    #[test]
    fn a_dripping_body_is_refused_after_the_grace() {
        let mut pace = BodyPace::start(Duration::ZERO);
        assert_eq!(pace.chunk(1, Duration::from_secs(1), RATE), Ok(()));
        assert_eq!(
            pace.chunk(1, Duration::from_secs(59), RATE),
            Err(TooSlow),
            "2 bytes in 59 s is far below 1 KiB/s"
        );
    }

    #[test]
    fn a_body_at_the_rate_passes_however_long_it_takes() {
        let mut pace = BodyPace::start(Duration::ZERO);
        for second in 1..=600u64 {
            let waited = Duration::from_secs(second);
            assert_eq!(
                pace.chunk(RATE as usize, waited, RATE),
                Ok(()),
                "at {second}s"
            );
        }
    }

    #[test]
    fn time_spent_not_waiting_for_the_client_does_not_count() {
        // The upstream held the gateway back for minutes; the client was never waited on.
        let mut pace = BodyPace::start(Duration::from_secs(3));
        assert_eq!(pace.chunk(10, Duration::from_secs(3), RATE), Ok(()));
    }

    #[test]
    fn a_rate_of_zero_switches_the_check_off() {
        let mut pace = BodyPace::start(Duration::ZERO);
        assert_eq!(pace.chunk(1, Duration::from_secs(3600), 0), Ok(()));
    }
}
