//! The batched call of a `sync_interval` policy: every changed key's admissions added to its
//! global TAT by one script each (by `EVALSHA`: the text is sent once per sync to a single Redis
//! with `SCRIPT LOAD`, and to a cluster node only after it answers `NOSCRIPT`), and this
//! instance's heartbeat, which counts the live instances. One Redis gets one pipeline; a
//! cluster refuses pipelines across slots, so there each script is its own command, all sent at
//! once on the multiplexed connection.

use super::super::gcra::Limit;
use super::super::synced::Delta;
use super::{metrics, redis_key, RedisConnection, RedisFailure, RedisStore};
use redis::ServerErrorKind::NoScript;
use std::time::{Duration, Instant};

/// Sync script: adds `n` admissions (already made) to the key's TAT and returns the backlog
/// `tat - now` in µs. `{emission µs, n}`; the key expires when its bucket is full again.
pub(super) const SYNC_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
if n > 0 then
  tat = tat + n * emission
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
return math.ceil(tat - now)
"#;

/// What one sync of a policy learnt.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncAnswer {
    /// The budget left for each delta's key, in requests (negative: the fleet is in debt).
    pub available: Vec<f64>,
    /// Instances that synced this policy within the heartbeat window.
    pub instances: u64,
}

impl RedisStore {
    /// One batched call for a synced policy: every key's admissions since the last sync, and
    /// this instance's heartbeat (`instance`, seen within `heartbeat`). Bounded by `deadline`.
    pub async fn sync(
        &self,
        prefix: &str,
        deltas: &[Delta],
        instance: &str,
        heartbeat: Duration,
        deadline: Duration,
    ) -> Result<SyncAnswer, RedisFailure> {
        let Some(mut connection) = self.connection() else {
            return Err(RedisFailure::Connection);
        };
        let emission_us = |limit: &Limit| limit.emission_ns as f64 / 1000.0;
        // `EVALSHA sha` normally; `EVAL text` once a node answers NOSCRIPT.
        let script = |delta: &Delta, by_text: bool| {
            let mut command = if by_text {
                let mut command = redis::cmd("EVAL");
                command.arg(SYNC_SCRIPT);
                command
            } else {
                let mut command = redis::cmd("EVALSHA");
                command.arg(&self.sync_sha);
                command
            };
            command
                .arg(1)
                .arg(redis_key(prefix, &delta.key))
                .arg(emission_us(&delta.limit))
                .arg(delta.admitted);
            command
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let members = format!("{prefix}|instances");
        let window_ms = heartbeat.as_millis() as u64;
        // ZADD, ZREMRANGEBYSCORE, ZCARD (the one answer), PEXPIRE.
        let heartbeat_into = |pipeline: &mut redis::Pipeline| {
            pipeline
                .zadd(&members, instance, now_ms)
                .ignore()
                .zrembyscore(&members, 0, now_ms.saturating_sub(window_ms))
                .ignore()
                .zcard(&members)
                .pexpire(&members, (window_ms * 2) as i64)
                .ignore();
        };
        let mut beat = redis::pipe();
        heartbeat_into(&mut beat);
        // One Redis: one pipeline. A cluster refuses pipelines across slots, so there every
        // key's script is its own command, all sent at once on the multiplexed connection.
        let call = async {
            if let RedisConnection::Single(_) = connection {
                // SCRIPT LOAD first, so no EVALSHA after it can meet NOSCRIPT (a pipeline is not
                // atomic: retrying one whose first scripts ran would count them twice).
                let mut pipeline = redis::pipe();
                pipeline.cmd("SCRIPT").arg("LOAD").arg(SYNC_SCRIPT).ignore();
                for delta in deltas {
                    pipeline.add_command(script(delta, false));
                }
                heartbeat_into(&mut pipeline);
                return pipeline.query_async::<Vec<i64>>(&mut connection).await;
            }
            let script = &script;
            let scripts = deltas.iter().map(|delta| {
                let mut connection = connection.clone();
                async move {
                    match script(delta, false)
                        .query_async::<i64>(&mut connection)
                        .await
                    {
                        // NOSCRIPT: the script did not run; the text runs it (and caches it).
                        Err(e) if e.kind() == redis::ErrorKind::Server(NoScript) => {
                            script(delta, true)
                                .query_async::<i64>(&mut connection)
                                .await
                        }
                        other => other,
                    }
                }
            });
            let mut beat_connection = connection.clone();
            let (backlogs, instances) = futures_util::future::join(
                futures_util::future::join_all(scripts),
                beat.query_async::<Vec<i64>>(&mut beat_connection),
            )
            .await;
            let mut values = backlogs
                .into_iter()
                .collect::<redis::RedisResult<Vec<i64>>>()?;
            values.extend(instances?);
            Ok(values)
        };
        let started = Instant::now();
        let reply = tokio::time::timeout(deadline, call).await;
        metrics::redis_call(started.elapsed().as_secs_f64());
        let values = match reply {
            Ok(Ok(values)) if values.len() == deltas.len() + 1 => values,
            Ok(Ok(_)) => Err(RedisFailure::Reply)?,
            Ok(Err(error)) => {
                tracing::debug!(%error, "rate-limit sync failed");
                Err(RedisFailure::Connection)?
            }
            Err(_) => Err(RedisFailure::Timeout)?,
        };
        let available = values[..deltas.len()]
            .iter()
            .zip(deltas)
            .map(|(&backlog_us, delta)| {
                let emission = emission_us(&delta.limit);
                delta.limit.capacity as f64 - backlog_us as f64 / emission
            })
            .collect();
        Ok(SyncAnswer {
            available,
            instances: values[deltas.len()].max(1) as u64,
        })
    }
}
