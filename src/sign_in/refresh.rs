//! One refresh per session at a time. Several requests of one browser often arrive together
//! with the same nearly expired session; the first runs the refresh grant and the others wait
//! for its result. The result is kept for a short while, so a request still carrying the old
//! cookie after the refresh reuses the new tokens instead of spending the refresh token again
//! (which fails when the provider rotates refresh tokens).

use super::session::Session;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long a finished refresh answers later requests of the same old session.
const KEEP_RESULT: Duration = Duration::from_secs(30);

/// Why a session could not be refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// The provider says the grant is no longer valid: the session ended there.
    SessionEnded,
    /// The provider could not be asked, or answered something unusable.
    Unavailable(String),
}

type Flight = Arc<OnceCell<Result<Session, RefreshFailure>>>;

/// Refreshes in flight and recently finished, by session.
#[derive(Debug, Default)]
pub struct RefreshFlights {
    flights: Mutex<HashMap<Vec<u8>, (Flight, Instant)>>,
}

impl RefreshFlights {
    /// The key of a session as sealed in one cookie: the digest of its access token (every
    /// refresh brings a new one; the token itself is not kept as a key).
    fn key(session: &Session) -> Vec<u8> {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session.access_token.as_bytes());
        digest.as_ref().to_vec()
    }

    /// Runs `refresh` for `session` unless a refresh of the same session runs or ran recently,
    /// in which case its result is returned.
    pub async fn run<F, Fut>(
        &self,
        session: &Session,
        refresh: F,
    ) -> Result<Session, RefreshFailure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, RefreshFailure>>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.retain(|_, (_, started)| started.elapsed() < KEEP_RESULT);
            flights
                .entry(Self::key(session))
                .or_insert_with(|| (Arc::new(OnceCell::new()), Instant::now()))
                .0
                .clone()
        };
        flight.get_or_init(refresh).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn session(access_expires_at: u64) -> Session {
        Session {
            provider: "acme".into(),
            access_token: format!("token-{access_expires_at}"),
            refresh_token: Some("r".into()),
            id_token: None,
            access_expires_at,
            sid: "s".into(),
            subject: "alice".into(),
            created_at: 1,
            last_seen: 1,
        }
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_session_run_once() {
        let flights = Arc::new(RefreshFlights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let flights = flights.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run(&session(100), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        let mut fresh = session(400);
                        fresh.access_token = "new".into();
                        Ok(fresh)
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().access_token, "new");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let other = flights
            .run(&session(400), || async {
                Err(RefreshFailure::SessionEnded)
            })
            .await;
        assert_eq!(
            other,
            Err(RefreshFailure::SessionEnded),
            "another session refreshes on its own"
        );
    }
}
