//! Client connections, below HTTP: how many may be open at once, and the deadlines that close
//! idle and slow ones. [`ConnectionGuard`] wraps the proxy application: every accepted
//! connection takes a place under `server.max_connections` (or is closed at once) and is wrapped
//! in a [`GuardedStream`] that runs its [`ConnectionClock`].
//!
//! | file | what |
//! |---|---|
//! | [`clock`] | the phases of a connection and their deadlines (pure) |
//! | [`stream`] | the wrapped stream: timers, the HTTP/2 preface peek, the hooks' phase reports |
//!
//! The request body is held to `server.min_body_rate` in the pipeline's body hook (it sees the chunks); the
//! per-read `read_timeout` and `write_timeout` are Pingora's.

pub mod body_pace;
pub mod clock;
pub mod stream;

pub use clock::{ConnectionClock, ConnectionTimeouts};
pub use stream::{mark_exchange_done, mark_head_read, GuardedStream};

use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Wraps the application that serves client connections (the HTTP proxy) with the connection
/// limit and deadlines. The limit and timeouts are read from the live configuration for each
/// new connection, so a reload changes them for the connections that follow.
pub struct ConnectionGuard<A> {
    app: Arc<A>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    open: Arc<AtomicUsize>,
}

impl<A> ConnectionGuard<A> {
    pub fn new(app: A, snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        ConnectionGuard {
            app: Arc::new(app),
            snapshot,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One open connection's place under the limit, given back when dropped.
struct Place {
    open: Arc<AtomicUsize>,
}

impl Place {
    /// Takes a place if fewer than `max` connections are open.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Place> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            (count < max).then_some(count + 1)
        })
        .ok()?;
        metrics().connections_open.inc();
        Some(Place {
            open: Arc::clone(open),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        metrics().connections_open.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionGuard<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (max, timeouts) = {
            let snapshot = self.snapshot.load();
            let server = &snapshot.config.server;
            (
                server.max_connections,
                ConnectionTimeouts {
                    header: server.header_timeout,
                    keepalive: server.keepalive_timeout,
                },
            )
        };
        let Some(_place) = Place::take(&self.open, max) else {
            metrics()
                .connections_closed
                .with_label_values(&["max_connections"])
                .inc();
            warn_at_most_every_10s(max);
            return None;
        };
        let guarded =
            GuardedStream::new(stream, ConnectionClock::accepted(timeouts, Instant::now()));
        // The proxy serves the connection to its end (keep-alive included) and never hands it back.
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Logs that connections are being refused, at most once in 10 s (the metric counts each).
fn warn_at_most_every_10s(max: usize) {
    static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            max_connections = max,
            "closing new connections: server.max_connections are open"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_limited_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let first = Place::take(&open, 2).expect("first place");
        let second = Place::take(&open, 2).expect("second place");
        assert!(
            Place::take(&open, 2).is_none(),
            "a third connection is over the limit"
        );
        drop(first);
        let third = Place::take(&open, 2).expect("a place was given back");
        assert_eq!(open.load(Ordering::Acquire), 2);
        drop((second, third));
        assert_eq!(open.load(Ordering::Acquire), 0);
    }
}
