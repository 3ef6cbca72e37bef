//! Our own pool: its bb8 manager (which reports broken connections), the
//! kept connection of a one-connection pool, and how a command gets a
//! connection ([`RedisStore::checkout`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, ErrorKind, ProtocolVersion, PushInfo, PushKind,
    RedisError,
};

use super::conn::{is_connection_error, map_run_error, Due, Lease};
#[cfg(feature = "redis-sentinel")]
use super::sentinel::{ensure_master, SentinelLookup};
use super::RedisStore;
use crate::store::StoreError;

/// A pooled multiplexed connection with a flag that goes up when the
/// connection is known to be dead (the driver reported a disconnect, or a
/// command failed with a connection-level error).
pub(super) struct PoolConn {
    pub(super) conn: MultiplexedConnection,
    pub(super) broken: Arc<AtomicBool>,
    /// The manager's epoch when it was opened: older than the current one
    /// means its server was demoted, so it is stale too.
    pub(super) epoch: u64,
}

/// Where the pool's connections go.
pub(super) enum Dial {
    /// One server, from its URL.
    Fixed(Box<ConnectionInfo>),
    /// Whatever master the sentinels name at connect time.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Arc<SentinelLookup>),
}

/// bb8 manager that, unlike bb8-redis's, reports broken connections, so the
/// pool replaces them by itself (after a Redis restart, a failover, a reset).
/// With Sentinel, every new connection asks the sentinels for the current
/// master first, so replacing broken connections is also what follows a
/// failover.
pub(super) struct Manager {
    pub(super) dial: Dial,
    pub(super) resp2_only: AtomicBool,
    pub(super) config: AsyncConnectionConfig,
    /// Raised when a connection meets `READONLY`: every connection opened
    /// before is to the demoted server, so all of them are replaced at once.
    pub(super) epoch: Arc<AtomicU64>,
}

impl Manager {
    pub(super) fn new(dial: Dial, config: AsyncConnectionConfig, epoch: Arc<AtomicU64>) -> Self {
        Self {
            dial,
            resp2_only: AtomicBool::new(false),
            config,
            epoch,
        }
    }

    /// A multiplexed connection to `info`: RESP3 (so the driver reports its
    /// own death at once) unless the server only speaks RESP2.
    /// `epoch` is the manager's epoch read before `info` was chosen.
    pub(super) async fn open(
        &self,
        info: ConnectionInfo,
        epoch: u64,
    ) -> Result<PoolConn, RedisError> {
        let broken = Arc::new(AtomicBool::new(false));
        let settings = info.redis_settings().clone();
        if !self.resp2_only.load(Ordering::Relaxed) {
            let flag = Arc::clone(&broken);
            // With RESP3 the connection's driver reports its own death at once,
            // before any command fails on it.
            let config = self.config.clone().set_push_sender(move |info: PushInfo| {
                if info.kind == PushKind::Disconnection {
                    flag.store(true, Ordering::Relaxed);
                }
                Ok::<(), std::convert::Infallible>(())
            });
            let resp3 = Client::open(
                info.clone()
                    .set_redis_settings(settings.clone().set_protocol(ProtocolVersion::RESP3)),
            )?;
            match resp3
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(conn) => {
                    return Ok(PoolConn {
                        conn,
                        broken,
                        epoch,
                    })
                }
                Err(err) if err.kind() == ErrorKind::RESP3NotSupported => {
                    self.resp2_only.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        let resp2 =
            Client::open(info.set_redis_settings(settings.set_protocol(ProtocolVersion::RESP2)))?;
        let conn = resp2
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(PoolConn {
            conn,
            broken,
            epoch,
        })
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = PoolConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<PoolConn, RedisError> {
        // Read before asking where to connect: if the sentinels name a new
        // master meanwhile, this connection is already stale.
        let epoch = self.epoch.load(Ordering::Relaxed);
        match &self.dial {
            Dial::Fixed(info) => self.open((**info).clone(), epoch).await,
            #[cfg(feature = "redis-sentinel")]
            Dial::Sentinel(lookup) => {
                let info = lookup.master().await?;
                let mut conn = self.open(info, epoch).await?;
                // A sentinel may still name a master that has just been
                // demoted: never keep a connection to a replica.
                ensure_master(&mut conn.conn).await?;
                Ok(conn)
            }
        }
    }

    async fn is_valid(&self, conn: &mut PoolConn) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.conn)
            .await
            .inspect_err(|err| {
                if is_connection_error(err) {
                    conn.broken.store(true, Ordering::Relaxed);
                }
            })
    }

    fn has_broken(&self, conn: &mut PoolConn) -> bool {
        conn.broken.load(Ordering::Relaxed) || conn.epoch < self.epoch.load(Ordering::Relaxed)
    }
}

/// Connection-management errors that belong to no caller go to the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogSink;

impl bb8::ErrorSink<RedisError> for LogSink {
    fn sink(&self, error: RedisError) {
        tracing::debug!(error = %error, "redis connection attempt failed");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<RedisError>> {
        Box::new(*self)
    }
}

/// How the store reaches Redis.
pub(super) enum Backend {
    /// Our own pool (one server, or Sentinel's master), its manager's epoch,
    /// and, for a pool of one connection, that connection at hand.
    Own(bb8::Pool<Manager>, Arc<AtomicU64>, Option<HotSlot>),
    /// A pool handed in by the user.
    External(bb8::Pool<bb8_redis::RedisConnectionManager>),
    /// A Redis Cluster: one multiplexed connection per node, routed by key
    /// slot; MOVED/ASK, retries and topology refreshes are the client's.
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Backend {
    /// Connections open and idle, for `Debug` (a cluster shows none: its
    /// client keeps one per node out of sight).
    pub(super) fn state(&self) -> (u32, u32) {
        let state = match self {
            Self::Own(pool, ..) => pool.state(),
            Self::External(pool) => pool.state(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => return (0, 0),
        };
        (state.connections, state.idle_connections)
    }

    pub(super) fn max_size(&self) -> u32 {
        match self {
            Self::Own(pool, ..) => pool.config().max_size,
            Self::External(pool) => pool.config().max_size,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => 1,
        }
    }
}

/// The one connection of a one-connection pool (the default), kept at hand
/// so that a command clones it without a pool checkout (a lock, a timer and
/// a check-in per command). The pool still opens and replaces it: a
/// connection found broken or stale is taken through the pool again.
#[derive(Default)]
pub(super) struct HotSlot(std::sync::Mutex<Option<HotConn>>);

pub(super) struct HotConn {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
    opened: u64,
}

impl HotSlot {
    /// A lease of the kept connection, if it is still healthy.
    pub(super) fn lease(&self, epoch: &Arc<AtomicU64>) -> Option<Lease> {
        let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hot = slot.as_ref()?;
        if hot.broken.load(Ordering::Relaxed) || hot.opened < epoch.load(Ordering::Relaxed) {
            return None;
        }
        Some(Lease::own(&hot.conn, &hot.broken, epoch, hot.opened))
    }

    /// Keep `conn` (just checked out of the pool, healthy) at hand.
    pub(super) fn keep(&self, conn: &PoolConn) {
        let hot = HotConn {
            conn: conn.conn.clone(),
            broken: Arc::clone(&conn.broken),
            opened: conn.epoch,
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(hot);
    }
}

impl RedisStore {
    /// The kept connection or the cluster client, which need no checkout.
    pub(super) fn ready_lease(&self) -> Option<Lease> {
        match &self.inner.backend {
            Backend::Own(_, epoch, Some(hot)) => hot.lease(epoch),
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(conn) => Some(Lease::cluster(conn)),
            _ => None,
        }
    }

    /// A connection from the pool.
    async fn checkout(&self) -> Result<Lease, StoreError> {
        let timeout = self.inner.connection_timeout;
        match &self.inner.backend {
            Backend::Own(pool, epoch, hot) => {
                // A connection flagged broken (or stale) is dropped (bb8 then
                // discards it and opens a new one); the bound only guards
                // against a loop.
                for _ in 0..=self.inner.backend.max_size() {
                    let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                    if pooled.broken.load(Ordering::Relaxed)
                        || pooled.epoch < epoch.load(Ordering::Relaxed)
                    {
                        continue;
                    }
                    if let Some(hot) = hot {
                        hot.keep(&pooled);
                    }
                    return Ok(Lease::own(
                        &pooled.conn,
                        &pooled.broken,
                        epoch,
                        pooled.epoch,
                    ));
                }
                Err(StoreError::unavailable(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no healthy Redis connection",
                )))
            }
            Backend::External(pool) => {
                let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                Ok(Lease::external(&pooled))
            }
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(conn) => Ok(Lease::cluster(conn)),
        }
    }

    /// [`checkout`](Self::checkout), by `due`.
    pub(super) async fn checkout_by(&self, due: Option<Due>) -> Result<Lease, StoreError> {
        match due {
            Some(due) => tokio::time::timeout(due.left()?, self.checkout())
                .await
                .map_err(|_| StoreError::Timeout(due.deadline))?,
            None => self.checkout().await,
        }
    }
}
