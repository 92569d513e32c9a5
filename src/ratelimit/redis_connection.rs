//! Connections to the shared store: one Redis through multiplexed [`ConnectionManager`]s, or a
//! Redis Cluster through the `redis` crate's async [`ClusterConnection`], which routes each
//! command by its key's slot, follows `MOVED`/`ASK` redirections and refreshes its slot map when
//! a master fails over. Both kinds are created without waiting — they connect in the background
//! — so a Redis that is down at start never stops the gateway, and both are used through one
//! [`RedisConnection`] type.

use super::redis_settings::{RedisSettings, RedisTarget};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// A connection to one Redis or to a cluster; cheap to clone (both multiplex).
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

enum Clients {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// `pool_size` lazily created connections, handed out round robin.
pub struct ConnectionPool {
    clients: Clients,
    pool: Vec<OnceLock<RedisConnection>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl ConnectionPool {
    /// Prepares the clients; connects nothing yet (no runtime is needed).
    pub fn new(settings: &RedisSettings) -> redis::RedisResult<ConnectionPool> {
        let clients = match &settings.target {
            RedisTarget::Single(url) => Clients::Single(redis::Client::open(url.as_str())?),
            RedisTarget::Cluster(seeds) => Clients::Cluster(Box::new(
                ClusterClient::builder(seeds.iter().map(String::as_str))
                    .retries(2)
                    .build()?,
            )),
        };
        Ok(ConnectionPool {
            clients,
            pool: (0..settings.pool_size.max(1))
                .map(|_| OnceLock::new())
                .collect(),
            next: AtomicUsize::new(0),
            timeout: settings.timeout,
        })
    }

    /// A connection of the pool, created on first use (it connects in the background);
    /// `warm` runs once on a new connection, off the caller's path (e.g. to load a script).
    /// Must be called inside a tokio runtime.
    pub fn get(
        &self,
        warm: impl FnOnce(RedisConnection) -> Option<tokio::task::JoinHandle<()>>,
    ) -> Option<RedisConnection> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        if let Some(connection) = slot.get() {
            return Some(connection.clone());
        }
        let made = match &self.clients {
            Clients::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200))
                    .set_connection_timeout(Some(Duration::from_secs(1)));
                ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map(RedisConnection::Single)
            }
            Clients::Cluster(client) => {
                // A response timeout well above the per-call bound (calls are cut at `timeout`
                // by the caller), so that a slot-map refresh after a failover can finish.
                let config = ClusterConfig::new()
                    .set_connection_timeout(Duration::from_secs(1))
                    .set_response_timeout(self.timeout.max(Duration::from_millis(250)));
                Ok(RedisConnection::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        };
        match made {
            Ok(connection) => {
                let connection = slot.get_or_init(|| connection).clone();
                let _ = warm(connection.clone());
                Some(connection)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot create the Redis connection");
                None
            }
        }
    }
}
