//! One command on one connection: the [`Lease`] a command borrows, how its
//! errors are told apart (a slow answer, a broken connection, a demoted
//! master), and [`RedisStore::send`], which every command goes through.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind, Value};

use super::lua::Invocation;
use super::RedisStore;
use crate::store::StoreError;

/// A connection borrowed for one command: a clone of a pooled multiplexed
/// connection (the pool slot is released at once, so concurrent commands
/// pipeline on the same connection), or of the cluster connection.
pub(super) struct Lease {
    pub(super) conn: LeasedConn,
    /// Our own pool's connection: how to report it unusable.
    pub(super) health: Option<Health>,
    /// The caller's deadline, when it (not the connection's response
    /// timeout) bounds this lease's next command.
    pub(super) deadline: Option<Duration>,
}

/// What [`Lease::send`] sends.
#[derive(Clone, Copy)]
pub(super) enum Outgoing<'a> {
    Command(&'a Cmd),
    Script(&'a Invocation<'a>),
}

/// When a check must have its answer: its deadline, from `at` on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Due {
    pub(super) at: std::time::Instant,
    pub(super) deadline: Duration,
}

impl Due {
    /// `deadline` from now; `None` when that is too far to tell.
    pub(super) fn after(deadline: Duration) -> Option<Self> {
        let at = std::time::Instant::now().checked_add(deadline)?;
        Some(Self { at, deadline })
    }

    /// The time left, or the timeout when none is.
    pub(super) fn left(&self) -> Result<Duration, StoreError> {
        let left = self.at.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            Err(StoreError::Timeout(self.deadline))
        } else {
            Ok(left)
        }
    }
}

pub(super) struct Health {
    pub(super) broken: Arc<AtomicBool>,
    /// The manager's epoch, and the connection's.
    pub(super) epoch: Arc<AtomicU64>,
    pub(super) opened: u64,
}

pub(super) enum LeasedConn {
    Single(MultiplexedConnection),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Lease {
    /// A clone of `conn`, a connection of our own pool opened at epoch
    /// `opened`, that reports its failures to `broken` and `epoch`.
    pub(super) fn own(
        conn: &MultiplexedConnection,
        broken: &Arc<AtomicBool>,
        epoch: &Arc<AtomicU64>,
        opened: u64,
    ) -> Self {
        Self {
            conn: LeasedConn::Single(conn.clone()),
            health: Some(Health {
                broken: Arc::clone(broken),
                epoch: Arc::clone(epoch),
                opened,
            }),
            deadline: None,
        }
    }

    /// A clone of a connection from a pool handed in by the user.
    pub(super) fn external(conn: &MultiplexedConnection) -> Self {
        Self {
            conn: LeasedConn::Single(conn.clone()),
            health: None,
            deadline: None,
        }
    }

    /// Bounds the next command by `due` where that comes before the
    /// connection's own response timeout (`None`: unknown, a pool handed in
    /// by the user): one timer per command, the connection's. A cluster
    /// connection keeps its own timeouts (the layer then arms its timer).
    pub(super) fn keep_to(
        &mut self,
        due: &Due,
        response_timeout: Option<Duration>,
    ) -> Result<(), StoreError> {
        let left = due.left()?;
        match &mut self.conn {
            LeasedConn::Single(conn) if response_timeout.is_none_or(|t| left < t) => {
                conn.set_response_timeout(left);
                self.deadline = Some(due.deadline);
            }
            _ => {}
        }
        Ok(())
    }

    /// A clone of the cluster client.
    #[cfg(feature = "redis-cluster")]
    pub(super) fn cluster(conn: &redis::cluster_async::ClusterConnection) -> Self {
        Self {
            conn: LeasedConn::Cluster(conn.clone()),
            health: None,
            deadline: None,
        }
    }

    pub(super) async fn send(&mut self, what: Outgoing<'_>) -> Result<Value, RedisError> {
        match what {
            Outgoing::Command(cmd) => self.query(cmd).await,
            // Boxed: a script's future (with its `SCRIPT LOAD` fallback)
            // would make every command's future larger.
            Outgoing::Script(invocation) => Box::pin(self.eval(invocation)).await,
        }
    }

    pub(super) async fn query(&mut self, cmd: &Cmd) -> Result<Value, RedisError> {
        match &mut self.conn {
            LeasedConn::Single(conn) => cmd.query_async(conn).await,
            #[cfg(feature = "redis-cluster")]
            LeasedConn::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    /// `EVALSHA`; on `NOSCRIPT` (a flushed cache, a restarted or new node, a
    /// promoted replica):
    ///
    /// - one server: `SCRIPT LOAD` then `EVALSHA` again on the same
    ///   connection (what redis-rs's `ScriptInvocation` does);
    /// - a cluster: `EVAL` with the body, routed by the first key like the
    ///   `EVALSHA` was. redis-rs would send `SCRIPT LOAD` to *all* nodes and
    ///   fail unless all succeed, so one unreachable node (exactly the case
    ///   during a failover) would fail every script on every healthy shard;
    ///   `EVAL` needs only the key's node and also caches the script there.
    pub(super) async fn eval(&mut self, invocation: &Invocation<'_>) -> Result<Value, RedisError> {
        let evalsha = invocation.evalsha();
        match self.query(evalsha).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                match &mut self.conn {
                    LeasedConn::Single(conn) => {
                        redis::cmd("SCRIPT")
                            .arg("LOAD")
                            .arg(&invocation.lua.code)
                            .query_async::<()>(conn)
                            .await?;
                        evalsha.query_async(conn).await
                    }
                    #[cfg(feature = "redis-cluster")]
                    LeasedConn::Cluster(conn) => invocation.eval().query_async(conn).await,
                }
            }
            other => other,
        }
    }

    pub(super) fn settle<T>(&self, result: Result<T, RedisError>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if let (Some(deadline), true) = (self.deadline, err.is_timeout()) {
                // The caller's deadline passed: a slow answer, not a broken
                // connection (as when the layer's own timer fires).
                return StoreError::Timeout(deadline);
            }
            if let Some(health) = &self.health {
                if is_read_only(&err) {
                    // Every connection opened so far goes to the demoted server.
                    health.epoch.fetch_max(health.opened + 1, Ordering::Relaxed);
                }
                if is_connection_error(&err) {
                    health.broken.store(true, Ordering::Relaxed);
                }
            }
            map_redis_error(err)
        })
    }

    /// Whether `result` failed with `READONLY` on a connection of our own
    /// pool: then nothing was written, and after [`settle`](Self::settle) a
    /// new lease reaches the new master, so trying once more is safe.
    pub(super) fn worth_retrying<T>(&self, result: &Result<T, RedisError>) -> bool {
        self.health.is_some() && result.as_ref().is_err_and(is_read_only)
    }
}

/// Whether the connection the error came from should be replaced.
///
/// `READONLY` counts: the server was demoted to a replica (a Sentinel
/// failover); a new connection asks the sentinels for the new master.
pub(super) fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
        || is_read_only(err)
}

pub(super) fn is_read_only(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

pub(super) fn map_redis_error(err: RedisError) -> StoreError {
    let protocol = match err.kind() {
        ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType
        | ErrorKind::Server(ServerErrorKind::ResponseError)
        | ErrorKind::Server(ServerErrorKind::NoScript)
        | ErrorKind::Server(ServerErrorKind::CrossSlot) => true,
        ErrorKind::Extension => err.code() == Some("WRONGTYPE"),
        _ => false,
    };
    if protocol {
        StoreError::Protocol(err.to_string())
    } else {
        StoreError::unavailable(err)
    }
}

pub(super) fn map_run_error(err: bb8::RunError<RedisError>, timeout: Duration) -> StoreError {
    match err {
        bb8::RunError::User(err) => map_redis_error(err),
        bb8::RunError::TimedOut => StoreError::unavailable(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no Redis connection within {timeout:?}"),
        )),
    }
}

/// A configuration mistake, reported as [`StoreError::Unavailable`].
#[derive(Debug)]
pub(super) struct InvalidConfig(pub(super) String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RedisStore configuration: {}", self.0)
    }
}

impl std::error::Error for InvalidConfig {}

impl RedisStore {
    pub(super) async fn eval(&self, invocation: Invocation<'_>) -> Result<Value, StoreError> {
        self.send(Outgoing::Script(&invocation), None).await
    }

    pub(super) async fn query(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        self.send(Outgoing::Command(cmd), None).await
    }

    /// Sends a command or a script; once more on a new connection after
    /// `READONLY` (a demoted master: nothing was written). With `due`, the
    /// answer must come by then ([`StoreError::Timeout`] otherwise).
    pub(super) async fn send(
        &self,
        what: Outgoing<'_>,
        due: Option<Due>,
    ) -> Result<Value, StoreError> {
        let mut attempt = 0;
        loop {
            // A pool checkout runs in a boxed future of its own, so that
            // the futures of the commands (a check is one) stay small:
            // bb8's `get` alone would make a check's future several times
            // larger, past what the allocator serves fastest.
            let mut lease = match self.ready_lease() {
                Some(lease) => lease,
                None => Box::pin(self.checkout_by(due)).await?,
            };
            if let Some(due) = &due {
                lease.keep_to(due, self.inner.response_timeout)?;
            }
            let sent = lease.send(what).await;
            attempt += 1;
            if attempt == 2 || !lease.worth_retrying(&sent) {
                return lease.settle(sent);
            }
            let _ = lease.settle(sent);
        }
    }
}
