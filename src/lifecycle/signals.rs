//! Signals: SIGHUP reloads the configuration; SIGTERM drains (Pingora stops accepting, in-flight
//! requests finish, and the process stops as soon as none is left, at the latest after
//! `shutdown_timeout`). SIGQUIT (graceful upgrade) and SIGINT are Pingora's own.
//!
//! The handlers are installed first thing in the process, so a SIGHUP that arrives while the
//! gateway is still starting is queued and handled as a reload, never the default "terminate".

use super::reload::LiveConfig;
use crate::pipeline::requests_in_flight;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How often a draining gateway looks at the number of requests in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Consecutive idle polls before a draining gateway stops (a request may be between accept and
/// its first hook for an instant).
const IDLE_POLLS_TO_STOP: u32 = 3;

/// Signal streams installed at the very start of the process.
pub struct Signals {
    hangups: Option<Signal>,
    terminate: Option<Signal>,
}

/// Why the serving loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM, and every in-flight request finished.
    Drained,
    /// Pingora's server loop returned (SIGINT, SIGQUIT upgrade, grace period over).
    ServerExited,
}

/// Replaces SIGHUP's and SIGTERM's default actions before anything else runs.
pub fn install(control: &tokio::runtime::Runtime) -> Signals {
    let (hangups, terminate) = control.block_on(async {
        (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        )
    });
    if let Err(e) = &hangups {
        tracing::error!(error = %e, "cannot install the SIGHUP handler; reload by signal is off");
    }
    Signals {
        hangups: hangups.ok(),
        terminate: terminate.ok(),
    }
}

impl Signals {
    /// Starts reloading on SIGHUP and draining on SIGTERM; `stopped` hears when drained.
    pub fn serve(self, live: &Arc<LiveConfig>, stopped: Sender<Stopped>) {
        if let Some(hangups) = self.hangups {
            reload_on_hangup(live, hangups);
        }
        if let Some(terminate) = self.terminate {
            live.control.spawn(drain_on_terminate(terminate, stopped));
        }
    }
}

/// Reloads on SIGHUP. Hangups that arrive during a reload are coalesced (the signal stream
/// keeps one pending delivery): they cause exactly one more reload, of the file as it is when
/// that reload starts.
fn reload_on_hangup(live: &Arc<LiveConfig>, mut hangups: Signal) {
    let live = Arc::clone(live);
    live.control.clone().spawn(async move {
        while hangups.recv().await.is_some() {
            match live.reload_after_current().await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(error) => {
                    for line in error.to_string().lines() {
                        tracing::error!(
                            "reload refused, the previous configuration keeps serving: {line}"
                        );
                    }
                }
            }
        }
    });
}

/// After SIGTERM (Pingora stops accepting and keeps serving for `shutdown_timeout`), reports
/// [`Stopped::Drained`] as soon as no request is in flight, so an idle gateway stops at once and
/// a busy one drains.
async fn drain_on_terminate(mut terminate: Signal, stopped: Sender<Stopped>) {
    if terminate.recv().await.is_none() {
        return;
    }
    tracing::info!("SIGTERM: draining in-flight requests");
    let mut idle_polls = 0;
    loop {
        tokio::time::sleep(DRAIN_POLL).await;
        if requests_in_flight() == 0 {
            idle_polls += 1;
            if idle_polls >= IDLE_POLLS_TO_STOP {
                tracing::info!("drained; exiting");
                let _ = stopped.send(Stopped::Drained);
                return;
            }
        } else {
            idle_polls = 0;
        }
    }
}
