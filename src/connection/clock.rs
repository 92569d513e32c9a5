//! The deadline of one client connection, as a pure state machine (no I/O, no timers): which
//! phase an HTTP/1 connection is in, and by when the client must have sent more.
//!
//! ```text
//!  accepted ──bytes──▶ reading head ──head read──▶ exchanging ──exchange done──▶ idle
//!  (header_timeout       (first request:             (no deadline here: the       (keepalive_timeout
//!   from accept)          from accept;                per-read read_timeout and    from the end of
//!                         later requests:             the body rate apply)         the exchange)
//!                         header_timeout from              ▲                          │
//!                         their first byte)                └───── head read ◀── bytes ┘
//! ```
//!
//! An HTTP/2 connection multiplexes requests, so it has no single phase: it becomes
//! [`Phase::Multiplexed`] for good and is left to HTTP/2's idle timeout.

use std::time::{Duration, Instant};

/// The timeouts one connection is held to, read from the configuration when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// A request head (request line and headers) must be complete this long after it started.
    pub header: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keepalive: Duration,
}

/// Where a connection stands, each phase with the deadline it runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing received yet: the first request head must be complete by the deadline.
    Accepted { deadline: Instant },
    /// Part of a request head has arrived.
    ReadingHead { deadline: Instant },
    /// The head was read; the body and the response are under way.
    Exchanging,
    /// Between two requests on a keep-alive connection.
    Idle { deadline: Instant },
    /// HTTP/2: no per-request phase on the connection.
    Multiplexed,
}

/// Why a deadline closed a connection (the label of the connection metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The client sent no (complete) request head in time.
    HeaderTimeout,
    /// A keep-alive connection stayed idle past `keepalive_timeout`.
    IdleTimeout,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::HeaderTimeout => "header_timeout",
            Expiry::IdleTimeout => "idle_timeout",
        }
    }
}

/// One connection's phase and the timeouts that set its deadlines.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionClock {
    timeouts: ConnectionTimeouts,
    phase: Phase,
}

impl ConnectionClock {
    /// A connection accepted at `now`.
    pub fn accepted(timeouts: ConnectionTimeouts, now: Instant) -> Self {
        ConnectionClock {
            timeouts,
            phase: Phase::Accepted {
                deadline: now + timeouts.header,
            },
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The instant by which more must happen, and what it means when it passes; `None` while a
    /// request is being exchanged and on HTTP/2.
    pub fn deadline(&self) -> Option<(Instant, Expiry)> {
        match self.phase {
            Phase::Accepted { deadline } | Phase::ReadingHead { deadline } => {
                Some((deadline, Expiry::HeaderTimeout))
            }
            Phase::Idle { deadline } => Some((deadline, Expiry::IdleTimeout)),
            Phase::Exchanging | Phase::Multiplexed => None,
        }
    }

    /// Whether arriving bytes can change the phase (so the caller need not read the time).
    pub fn waits_for_bytes(&self) -> bool {
        matches!(self.phase, Phase::Accepted { .. } | Phase::Idle { .. })
    }

    /// Request bytes arrived at `now`. The first request keeps the deadline set at accept; a
    /// later request gets `header_timeout` from its first byte.
    pub fn bytes_arrived(&mut self, now: Instant) {
        self.phase = match self.phase {
            Phase::Accepted { deadline } => Phase::ReadingHead { deadline },
            Phase::Idle { .. } => Phase::ReadingHead {
                deadline: now + self.timeouts.header,
            },
            other => other,
        };
    }

    /// The request head was read and parsed.
    pub fn head_read(&mut self) {
        if self.phase != Phase::Multiplexed {
            self.phase = Phase::Exchanging;
        }
    }

    /// The request and its response are over at `now`; the connection waits for the next one.
    pub fn exchange_done(&mut self, now: Instant) {
        if self.phase != Phase::Multiplexed {
            self.phase = Phase::Idle {
                deadline: now + self.timeouts.keepalive,
            };
        }
    }

    /// The connection speaks HTTP/2.
    pub fn multiplexed(&mut self) {
        self.phase = Phase::Multiplexed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(60),
    };

    #[test]
    fn the_first_head_must_be_complete_within_header_timeout_of_accept() {
        let start = Instant::now();
        let mut clock = ConnectionClock::accepted(TIMEOUTS, start);
        assert_eq!(
            clock.deadline(),
            Some((start + TIMEOUTS.header, Expiry::HeaderTimeout))
        );
        // A slow first byte does not buy more time.
        clock.bytes_arrived(start + Duration::from_secs(9));
        assert_eq!(
            clock.deadline(),
            Some((start + TIMEOUTS.header, Expiry::HeaderTimeout))
        );
        assert!(!clock.waits_for_bytes());
    }

    #[test]
    fn an_exchange_has_no_connection_deadline() {
        let start = Instant::now();
        let mut clock = ConnectionClock::accepted(TIMEOUTS, start);
        clock.bytes_arrived(start);
        clock.head_read();
        assert_eq!(clock.phase(), Phase::Exchanging);
        assert_eq!(clock.deadline(), None);
        // Body bytes do not start a new head.
        clock.bytes_arrived(start + Duration::from_secs(100));
        assert_eq!(clock.phase(), Phase::Exchanging);
    }

    #[test]
    fn idle_then_a_new_head_gets_header_timeout_from_its_first_byte() {
        let start = Instant::now();
        let mut clock = ConnectionClock::accepted(TIMEOUTS, start);
        clock.head_read();
        let done = start + Duration::from_secs(1);
        clock.exchange_done(done);
        assert_eq!(
            clock.deadline(),
            Some((done + TIMEOUTS.keepalive, Expiry::IdleTimeout))
        );
        assert!(clock.waits_for_bytes());
        let next = done + Duration::from_secs(30);
        clock.bytes_arrived(next);
        assert_eq!(
            clock.deadline(),
            Some((next + TIMEOUTS.header, Expiry::HeaderTimeout))
        );
    }

    #[test]
    fn http2_connections_leave_the_phases_for_good() {
        let start = Instant::now();
        let mut clock = ConnectionClock::accepted(TIMEOUTS, start);
        clock.multiplexed();
        clock.head_read();
        clock.exchange_done(start);
        clock.bytes_arrived(start);
        assert_eq!(clock.phase(), Phase::Multiplexed);
        assert_eq!(clock.deadline(), None);
        assert!(!clock.waits_for_bytes());
    }

    #[test]
    fn expiries_have_metric_labels() {
        assert_eq!(Expiry::HeaderTimeout.as_str(), "header_timeout");
        assert_eq!(Expiry::IdleTimeout.as_str(), "idle_timeout");
    }
}
