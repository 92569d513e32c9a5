//! The background side of `sync_interval` policies: every interval, the admissions each key
//! gathered are sent to Redis in one batched call ([`RedisStore::sync`]) and the budgets it
//! answers become the keys' next allowances ([`SyncedStore::answer`]). A failed sync keeps its
//! admissions for the next one. The task stops when its limiter is gone (a reload that dropped
//! the policy).

use super::metrics::{self, SyncCounters};
use super::redis_store::RedisStore;
use super::synced::SyncedStore;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// This process in the heartbeat of synced policies (random, fixed for its life).
fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut bytes = [0u8; 12];
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// How long an instance counts as live after its last sync: `max(1 s, 5 × interval)`.
pub fn heartbeat_window(interval: Duration) -> Duration {
    (interval * 5).max(Duration::from_secs(1))
}

/// With `on_error: deny`, every key is refused once no sync has succeeded for this long:
/// `max(1 s, 50 × interval)`.
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 50).max(Duration::from_secs(1))
}

/// What one synced policy needs to sync.
pub struct SyncJob {
    pub store: Arc<SyncedStore>,
    pub redis: Arc<RedisStore>,
    pub prefix: String,
    pub interval: Duration,
    pub counters: SyncCounters,
}

/// One sync: takes every key's admissions, sends them, applies the answer.
pub async fn sync_once(job: &SyncJob, last_success: &mut Option<Instant>) {
    let deltas = job.store.take();
    let heartbeat = heartbeat_window(job.interval);
    let since_success = last_success.map(|at| at.elapsed());
    // An idle instance still says it is alive, twice per heartbeat window.
    if deltas.is_empty() && since_success.is_some_and(|since| since < heartbeat / 2) {
        job.counters
            .lag_seconds
            .set(since_success.unwrap_or_default().as_secs_f64());
        return;
    }
    let deadline = job.interval.max(job.redis.settings().timeout);
    let answer = job
        .redis
        .sync(&job.prefix, &deltas, instance_id(), heartbeat, deadline)
        .await;
    match answer {
        Ok(answer) => {
            job.store.record_success();
            job.store.set_instances(answer.instances);
            job.counters.instances.set(answer.instances as i64);
            let mut debt: f64 = 0.0;
            for (delta, available) in deltas.iter().zip(&answer.available) {
                job.store.answer(&delta.key, *available);
                debt = debt.max(-available);
            }
            job.counters.over_admission.set(debt);
            job.counters.record(true, deltas.len());
            *last_success = Some(Instant::now());
        }
        Err(failure) => {
            job.store.failed(&deltas);
            metrics::redis_error(failure.as_str());
            job.counters.record(false, 0);
        }
    }
    if let Some(at) = last_success {
        job.counters.lag_seconds.set(at.elapsed().as_secs_f64());
    }
}

/// Runs `job` every interval on `runtime` while `owner` lives.
pub fn spawn<T: Send + Sync + 'static>(
    owner: Weak<T>,
    job: SyncJob,
    runtime: &tokio::runtime::Handle,
) {
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(job.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_success = None;
        loop {
            ticker.tick().await;
            if owner.strong_count() == 0 {
                return;
            }
            sync_once(&job, &mut last_success).await;
        }
    });
}
