//! Connections: the pool, its manager, Sentinel lookups, one lease per command.

use super::*;

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

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

/// Finds the current master of a Sentinel-monitored group.
#[cfg(feature = "redis-sentinel")]
pub(super) struct SentinelLookup {
    pub(super) sentinels: Vec<ConnectionInfo>,
    pub(super) master_name: String,
    /// Database, credentials of the master (the protocol is set per connection).
    pub(super) settings: redis::RedisConnectionInfo,
    pub(super) timeout: Duration,
    /// The sentinel that answered last: asked first next time.
    pub(super) preferred: std::sync::atomic::AtomicUsize,
    /// The master's address as last named by a sentinel.
    pub(super) current: std::sync::Mutex<Option<(String, u16)>>,
    /// The pool's epoch: raised when the sentinels name another master, so
    /// that every connection to the old one is replaced, even if the old
    /// master is still up and still a master (a `SENTINEL FAILOVER` leaves it
    /// so for several seconds, and writes sent to it then would be lost).
    pub(super) pool_epoch: Arc<AtomicU64>,
    /// Counts master changes; the near-cache subscription follows them.
    pub(super) changes: tokio::sync::watch::Sender<u64>,
}

#[cfg(feature = "redis-sentinel")]
impl SentinelLookup {
    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`, asking each sentinel in turn
    /// (the one that answered last first) until one knows the master.
    pub(super) async fn master(&self) -> Result<ConnectionInfo, RedisError> {
        let count = self.sentinels.len();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..count {
            let index = (start + i) % count;
            match self.ask(&self.sentinels[index]).await {
                Ok(Some((host, port))) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    self.observe(&host, port);
                    return Ok(ConnectionAddr::Tcp(host, port)
                        .into_connection_info()?
                        .set_redis_settings(self.settings.clone()));
                }
                Ok(None) => {
                    last_error = Some(RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "the sentinel does not monitor this master name",
                        self.master_name.clone(),
                    )))
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no sentinel addresses"))
        }))
    }

    /// Note the master's address; on a change, retire the pool's connections
    /// and tell the near-cache subscription.
    pub(super) fn observe(&self, host: &str, port: u16) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match current.as_ref() {
            Some((h, p)) => (h.as_str(), *p) != (host, port),
            None => false,
        };
        if changed || current.is_none() {
            *current = Some((host.to_owned(), port));
        }
        drop(current);
        if changed {
            tracing::warn!(
                target: "tower_jwt_auth::redis",
                master = %format!("{host}:{port}"),
                "the sentinels name a new master: moving every connection to it"
            );
            self.pool_epoch.fetch_add(1, Ordering::Relaxed);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    pub(super) async fn ask(
        &self,
        sentinel: &ConnectionInfo,
    ) -> Result<Option<(String, u16)>, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = Client::open(sentinel.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await
    }
}

/// `ROLE` must say `master`.
#[cfg(feature = "redis-sentinel")]
pub(super) async fn ensure_master(conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
    let role: Value = redis::cmd("ROLE").query_async(conn).await?;
    let first = value_array(role.clone()).and_then(|items| items.into_iter().next());
    match first.and_then(value_text).as_deref() {
        Some("master") => Ok(()),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the server the sentinels named is not a master (yet)",
            format!("{role:?}"),
        ))),
    }
}

/// Follow the sentinels' `+switch-master` announcements (subscribed on one
/// sentinel at a time, the next one when it is lost), so that the store moves
/// to a new master as soon as it is named, not only when the old one fails.
/// After each (re)subscription the master is looked up once, in case a
/// switch was announced while no subscription was alive. Ends with the store.
#[cfg(feature = "redis-sentinel")]
pub(super) async fn watch_master(lookup: Weak<SentinelLookup>) {
    use futures_util::StreamExt;
    let mut next = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = lookup.upgrade() else {
            return;
        };
        let sentinel = strong.sentinels[next % strong.sentinels.len()].clone();
        next += 1;
        let timeout = strong.timeout;
        drop(strong);
        let subscribe = async {
            let mut pubsub = Client::open(sentinel)?.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, RedisError>(pubsub)
        };
        if let Ok(Ok(mut pubsub)) = tokio::time::timeout(timeout, subscribe).await {
            backoff = Duration::from_millis(50);
            let Some(strong) = lookup.upgrade() else {
                return;
            };
            let _ = strong.master().await;
            drop(strong);
            let mut stream = pubsub.on_message();
            loop {
                match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                    Ok(Some(msg)) => {
                        let Some(strong) = lookup.upgrade() else {
                            return;
                        };
                        // `<name> <old ip> <old port> <new ip> <new port>`
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        let parts: Vec<&str> = payload.split_whitespace().collect();
                        if let [name, _, _, host, port] = parts[..] {
                            if name == strong.master_name {
                                if let Ok(port) = port.parse() {
                                    strong.observe(host, port);
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_idle) if lookup.strong_count() == 0 => return,
                    Err(_idle) => {}
                }
            }
            continue;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
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
