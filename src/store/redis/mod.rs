//! The Redis store: many processes share one Redis; every check is one round trip.

mod conn;
mod findings;
mod keys;
mod reply;
mod scripts;

use self::conn::*;
use self::findings::*;
use self::keys::*;
use self::reply::*;
use self::scripts::*;

pub use self::findings::StartupFinding;
pub use self::keys::encode_key_part;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Script, ServerErrorKind,
    ToRedisArgs, Value,
};

use super::near_cache::{NearCache, NearCacheConfig, NearCacheStats, Ticket};
use super::hints::CheckHints;
use super::{
    CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationReason, RevocationStore,
    RotateOutcome, Rotation, SessionEnd, SessionInfo, SessionStore, StoreError, StoreFuture,
    Verdict,
};

const DEFAULT_PREFIX: &str = "jwt";
const DEFAULT_POOL_SIZE: u32 = 1;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Durations are clamped to a hundred years of milliseconds
/// ([`MAX_KEEP`](crate::store::MAX_KEEP)), so every number a script sees
/// (even a marker's score, 16 times a deadline) stays an exact integer far
/// below 2^53.
const MAX_MS: u64 = crate::store::MAX_KEEP.as_millis() as u64;

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/// A [`RevocationStore`] in Redis, shared by every instance of a service.
///
/// Every [`check`](RevocationStore::check) is one plain command round trip
/// (`EXISTS` for a session's token, `MGET` for a token without a session; a
/// session's sliding touch, due once per touch interval, adds one script);
/// every write is one script (or one command). All keys of a subject share
/// the hash tag `{<subject>}`, so each command touches one cluster slot:
///
/// ```text
/// <prefix>:{<subject>}:deny:<token id>   "1", PX = remaining token life + leeway
/// <prefix>:{<subject>}:nbf               unix seconds (log out everywhere)
/// <prefix>:{<subject>}:ban               end of the ban in unix seconds, -1 = until lifted
/// <prefix>:{<subject>}:sessions          ZSET session id -> absolute end (ms), PX >= lifetime
/// <prefix>:{<subject>}:session:<sid>     HASH device, created, last, abs, idle, gen, rt, p<gen>...
/// <prefix>:{<subject>}:fresh:<sid>       "1" while the session is live and no touch is due
/// <prefix>:{<subject>}:ended             ZSET session id -> marker end (ms) * 16 + reason, <= 64
/// <prefix>:once:<purpose>:<token hash>   subject of a one-time token
/// ```
///
/// A subject's keys are bounded by its live sessions (two keys each, with
/// the `p<gen>` hashes of up to 16 earlier refresh generations in the
/// session hash), its deny entries, and four keys of its own: however many
/// sessions end, their markers share the one `ended` ZSET, capped at
/// [`ENDED_MARKERS_PER_SUBJECT`](crate::store::ENDED_MARKERS_PER_SUBJECT)
/// (64) members, 2.6 KB. A token of a session that is neither live nor
/// marked is refused (`session_ended`).
///
/// Subjects and ids are percent-encoded, so no two different ones share a key.
/// Sessions lapse by Redis's own clock (`TIME` and key expiry), so
/// application clock skew cannot keep one alive; this process's clock only
/// decides when a session's touch is due (a clock far behind Redis's would
/// touch late, by as much as it lags).
///
/// Every revoking write publishes `<kind>\n<subject>` on `<prefix>:events`
/// ([`events_channel`](Self::events_channel)), with `kind` one of `deny`,
/// `revoke`, `ban`, `unban`, `session`, so that other instances can drop
/// cached verdicts of that subject.
///
/// # Deployments
///
/// The same store, and so the same application code, runs against:
///
/// - one Redis ([`connect`](Self::connect), [`builder`](Self::builder)): a
///   pool of multiplexed connections (one by default: concurrent commands
///   pipeline on it); a connection that dies (Redis restart) is replaced by
///   itself;
/// - a Redis Cluster ([`cluster`](Self::cluster), feature `redis-cluster`):
///   each script goes to the node that serves its subject's slot; MOVED/ASK
///   redirections, retries and topology refreshes after a failover are the
///   cluster client's;
/// - a Sentinel group ([`sentinel`](Self::sentinel), feature
///   `redis-sentinel`): every new connection asks the sentinels for the
///   current master, and a connection to a master that died or was demoted
///   (`READONLY`) is replaced, so the store follows a failover by itself.
///
/// Cloning is cheap and clones share the connections.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), tower_jwt_auth::store::StoreError> {
/// use std::time::Duration;
/// use tower_jwt_auth::store::RedisStore;
///
/// let store = RedisStore::builder("redis://:secret@10.0.0.5:6379/2")
///     .connection_timeout(Duration::from_millis(500))
///     .response_timeout(Duration::from_millis(200))
///     .prefix("auth")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    channel: String,
    mode: Mode,
    /// The servers named in the configuration (for `Debug` and the startup
    /// checks); empty for a pool handed in by the user.
    targets: Vec<Target>,
    connection_timeout: Duration,
    /// Our own connections' per-command timeout; `None` for a pool handed
    /// in by the user (its connections' setting is unknown).
    response_timeout: Option<Duration>,
    near: Option<Arc<NearCache>>,
}

/// How the store was configured, for `Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    ExternalPool,
    #[cfg(feature = "redis-cluster")]
    Cluster,
    #[cfg(feature = "redis-sentinel")]
    Sentinel,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connections, idle) = self.inner.backend.state();
        f.debug_struct("RedisStore")
            .field("mode", &self.inner.mode)
            .field("targets", &self.inner.targets)
            .field("prefix", &self.inner.prefix)
            .field("connections", &connections)
            .field("idle_connections", &idle)
            .finish()
    }
}

/// What a [`RedisStoreBuilder`] connects to.
#[derive(Clone)]
enum Endpoint {
    Url(String),
    #[cfg(feature = "redis-cluster")]
    Cluster(Vec<String>),
    #[cfg(feature = "redis-sentinel")]
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// Builder for [`RedisStore`], from [`RedisStore::builder`],
/// [`RedisStoreBuilder::cluster`] or [`RedisStoreBuilder::sentinel`].
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisStoreBuilder {
    endpoint: Endpoint,
    pool_size: u32,
    connection_timeout: Duration,
    response_timeout: Duration,
    prefix: String,
    startup_checks: bool,
    near_cache: Option<NearCacheConfig>,
    #[cfg(feature = "redis-sentinel")]
    master: redis::RedisConnectionInfo,
}

/// Targets for `Debug`, without passwords; unparsable URLs are left out.
fn targets_of<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<Target> {
    urls.into_iter()
        .filter_map(|url| url.into_connection_info().ok())
        .map(|info| Target::from_info(&info))
        .collect()
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RedisStoreBuilder");
        match &self.endpoint {
            Endpoint::Url(url) => out.field("target", &targets_of([url.as_str()]).pop()),
            #[cfg(feature = "redis-cluster")]
            Endpoint::Cluster(nodes) => out.field(
                "cluster_nodes",
                &targets_of(nodes.iter().map(String::as_str)),
            ),
            #[cfg(feature = "redis-sentinel")]
            Endpoint::Sentinel {
                sentinels,
                master_name,
            } => {
                let urls: Vec<String> = sentinels.iter().map(|s| sentinel_url(s)).collect();
                out.field("sentinels", &targets_of(urls.iter().map(String::as_str)))
                    .field("master_name", master_name)
            }
        };
        out.field("pool_size", &self.pool_size)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("prefix", &self.prefix)
            .field("startup_checks", &self.startup_checks)
            .field("near_cache", &self.near_cache)
            .finish()
    }
}

impl RedisStoreBuilder {
    fn with_endpoint(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            pool_size: DEFAULT_POOL_SIZE,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_owned(),
            startup_checks: true,
            near_cache: None,
            #[cfg(feature = "redis-sentinel")]
            master: redis::RedisConnectionInfo::default(),
        }
    }

    /// A builder for one Redis server (same as [`RedisStore::builder`]).
    pub fn new(url: &str) -> Self {
        Self::with_endpoint(Endpoint::Url(url.to_owned()))
    }

    /// A builder for a Redis Cluster, from the `redis://` (or `rediss://`)
    /// URLs of some of its nodes (any role; the client discovers the rest).
    /// All URLs must carry the same credentials.
    ///
    /// The near-cache subscribes to the events channel on one of these nodes
    /// (a plain `PUBLISH` reaches every node of a cluster) and moves to the
    /// next one when the subscription is lost, so list several. A node that
    /// is up but cut off from the other nodes delivers no events while its
    /// connection looks healthy: then a cached verdict can outlive a
    /// revocation by up to the near-cache's maximum age.
    ///
    /// Every key of one subject shares a hash tag, so each check and each
    /// session operation stays one script on one node. The client follows
    /// MOVED/ASK, refreshes the topology after a failover and retries a
    /// failed attempt a few times (short backoff, all within
    /// [`response_timeout`](Self::response_timeout)).
    /// [`pool_size`](Self::pool_size) does not apply: the client keeps one
    /// multiplexed connection per node.
    #[cfg(feature = "redis-cluster")]
    pub fn cluster(nodes: &[&str]) -> Self {
        Self::with_endpoint(Endpoint::Cluster(
            nodes.iter().map(|n| (*n).to_owned()).collect(),
        ))
    }

    /// A builder for a master watched by Redis Sentinel: the sentinels'
    /// addresses (`host:port`, or `redis://[:password@]host:port` when the
    /// sentinels require a password) and the monitored master's name.
    ///
    /// Every new connection asks the sentinels (`SENTINEL
    /// GET-MASTER-ADDR-BY-NAME`) for the current master and checks its
    /// `ROLE`; a connection that breaks or meets `READONLY` (its server was
    /// demoted) is replaced, so after a failover the store finds the new
    /// master by itself. The master's credentials and database are set with
    /// [`master_auth`](Self::master_auth) and [`master_db`](Self::master_db).
    #[cfg(feature = "redis-sentinel")]
    pub fn sentinel(sentinels: &[&str], master_name: &str) -> Self {
        Self::with_endpoint(Endpoint::Sentinel {
            sentinels: sentinels.iter().map(|s| (*s).to_owned()).collect(),
            master_name: master_name.to_owned(),
        })
    }

    /// Sentinel only: the credentials of the master (and replicas), for
    /// `AUTH [username] password`.
    #[cfg(feature = "redis-sentinel")]
    pub fn master_auth(mut self, username: Option<&str>, password: &str) -> Self {
        let mut settings = self.master.set_password(password);
        if let Some(username) = username {
            settings = settings.set_username(username);
        }
        self.master = settings;
        self
    }

    /// Sentinel only: the database number on the master (default 0).
    #[cfg(feature = "redis-sentinel")]
    pub fn master_db(mut self, db: i64) -> Self {
        self.master = self.master.set_db(db);
        self
    }

    /// Number of multiplexed connections kept open (default 1; at least 1).
    /// Each one pipelines any number of concurrent commands, so one is
    /// usually best: concurrent checks share its writes and reads (one
    /// syscall for many commands, on both sides). The load test measured 4
    /// connections 20–25% slower than 1 at 64 concurrent requests
    /// (`BENCHMARKS.md`). More help only when one connection's socket is the
    /// bottleneck, e.g. TLS on a fast link. Not used with a cluster (one
    /// connection per node).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long connecting, or waiting for a pooled connection, may take
    /// (default 2 s). Past it, calls fail with [`StoreError::Unavailable`].
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one command may wait for its reply (default 1 s); on a
    /// cluster, the whole command including its retries and redirections.
    /// Past it, the call fails with [`StoreError::Unavailable`] and the
    /// connection is replaced. A request's check is bounded by the layer's
    /// [`store_deadline`](crate::JwtAuth::store_deadline) when that is
    /// shorter: then [`StoreError::Timeout`], and the connection is kept.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The key prefix (default `jwt`); it must not contain `{` or `}`.
    /// Events go to `<prefix>:events`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Whether [`build`](Self::build) runs
    /// [`log_startup_findings`](RedisStore::log_startup_findings) (default on).
    pub fn startup_checks(mut self, enabled: bool) -> Self {
        self.startup_checks = enabled;
        self
    }

    /// Turn the near-cache on with default settings (1 s maximum age,
    /// 100 000 tokens), or off (the default).
    ///
    /// With it, a token checked in the last second is accepted without a Redis
    /// command while the store's subscription to revocation events is alive;
    /// every revoking write on any instance drops the subject's entries on all
    /// instances as soon as its event arrives. See the README's "Scaling out".
    pub fn near_cache(mut self, enabled: bool) -> Self {
        self.near_cache = enabled.then(NearCacheConfig::default);
        self
    }

    /// Turn the near-cache on with these settings.
    pub fn near_cache_config(mut self, config: NearCacheConfig) -> Self {
        self.near_cache = Some(config);
        self
    }

    /// Connect (a wrong URL, a wrong password or an unreachable server fails
    /// here): open the pool's connections, or the cluster connection.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        validate_prefix(&self.prefix)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let (backend, mode, targets, events) = match &self.endpoint {
            Endpoint::Url(url) => {
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(StoreError::unavailable)?;
                let target = Target::from_info(&info);
                if target.tls {
                    ensure_crypto_provider()?;
                }
                let pool = self
                    .own_pool(
                        Dial::Fixed(Box::new(info.clone())),
                        config,
                        Arc::new(AtomicU64::new(0)),
                    )
                    .await?;
                let events = EventSource::Nodes {
                    nodes: vec![info],
                    next: 0,
                };
                (pool, Mode::Single, vec![target], events)
            }
            #[cfg(feature = "redis-cluster")]
            Endpoint::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|url| url.as_str().into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::unavailable)?;
                if infos.is_empty() {
                    return Err(StoreError::unavailable(InvalidConfig(
                        "a cluster needs at least one node URL".to_owned(),
                    )));
                }
                let targets: Vec<Target> = infos.iter().map(Target::from_info).collect();
                if targets.iter().any(|t| t.tls) {
                    ensure_crypto_provider()?;
                }
                let conn = self.cluster_connection(infos.clone()).await?;
                let events = EventSource::Nodes {
                    nodes: infos,
                    next: 0,
                };
                (Backend::Cluster(conn), Mode::Cluster, targets, events)
            }
            #[cfg(feature = "redis-sentinel")]
            Endpoint::Sentinel {
                sentinels,
                master_name,
            } => {
                let infos = sentinels
                    .iter()
                    .map(|s| sentinel_url(s).into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::unavailable)?;
                if infos.is_empty() {
                    return Err(StoreError::unavailable(InvalidConfig(
                        "Sentinel needs at least one sentinel address".to_owned(),
                    )));
                }
                // The master's host is not known before connecting: judge by
                // the sentinels' hosts, with the master's password.
                let targets = infos
                    .iter()
                    .map(|info| Target {
                        has_password: self.master.password().is_some(),
                        ..Target::from_info(info)
                    })
                    .collect();
                let epoch = Arc::new(AtomicU64::new(0));
                let lookup = Arc::new(SentinelLookup {
                    sentinels: infos,
                    master_name: master_name.clone(),
                    settings: self.master.clone(),
                    timeout: self.connection_timeout,
                    preferred: std::sync::atomic::AtomicUsize::new(0),
                    current: std::sync::Mutex::new(None),
                    pool_epoch: Arc::clone(&epoch),
                    changes: tokio::sync::watch::Sender::new(0),
                });
                let pool = self
                    .own_pool(Dial::Sentinel(Arc::clone(&lookup)), config, epoch)
                    .await?;
                tokio::spawn(watch_master(Arc::downgrade(&lookup)));
                (pool, Mode::Sentinel, targets, EventSource::Sentinel(lookup))
            }
        };
        let mut store =
            RedisStore::new(backend, self.prefix, mode, targets, self.connection_timeout);
        let inner = Arc::get_mut(&mut store.inner).expect("store not shared yet");
        inner.response_timeout = Some(self.response_timeout);
        if let Some(config) = self.near_cache {
            let cache = Arc::new(NearCache::new(config));
            inner.near = Some(Arc::clone(&cache));
            tokio::spawn(run_subscriber(
                events,
                inner.channel.clone(),
                Arc::downgrade(&cache),
                self.connection_timeout,
            ));
            // Wait briefly for the subscription, so the cache works from the start.
            let deadline = tokio::time::Instant::now() + self.connection_timeout;
            while !cache.is_alive() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if self.startup_checks {
            store.log_startup_findings().await;
        }
        Ok(store)
    }

    async fn own_pool(
        &self,
        dial: Dial,
        config: AsyncConnectionConfig,
        epoch: Arc<AtomicU64>,
    ) -> Result<Backend, StoreError> {
        let pool = bb8::Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(self.pool_size))
            .test_on_check_out(false)
            .connection_timeout(self.connection_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .error_sink(Box::new(LogSink))
            .build(Manager::new(dial, config, Arc::clone(&epoch)))
            .await
            .map_err(map_redis_error)?;
        let hot = (self.pool_size == 1).then(HotSlot::default);
        Ok(Backend::Own(pool, epoch, hot))
    }

    /// The cluster client: per-node connect and per-attempt timeouts from the
    /// builder; a few quick retries (10 ms, then up to 20, 40, ... 400 ms
    /// apart, jittered) instead of redis-rs's default 16 retries of at least
    /// 1.28 s each, all bounded by the response timeout.
    #[cfg(feature = "redis-cluster")]
    async fn cluster_connection(
        &self,
        nodes: Vec<ConnectionInfo>,
    ) -> Result<redis::cluster_async::ClusterConnection, StoreError> {
        redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .overall_response_timeout(Some(self.response_timeout))
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(400)
            .retry_wait_formula(10, 2)
            .build()
            .map_err(StoreError::unavailable)?
            .get_async_connection()
            .await
            .map_err(map_redis_error)
    }
}

/// Retries of one cluster command (MOVED/ASK, TRYAGAIN, CLUSTERDOWN, lost
/// connections), within the response timeout.
#[cfg(feature = "redis-cluster")]
const CLUSTER_RETRIES: u32 = 8;

/// `host:port` → `redis://host:port`; URLs pass unchanged.
#[cfg(feature = "redis-sentinel")]
fn sentinel_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("redis://{address}")
    }
}

/// redis-rs builds its rustls config from the process-wide crypto provider
/// and panics when there is none: pick aws-lc-rs when it is compiled in,
/// otherwise fail with an error instead of a panic.
#[cfg(feature = "redis-tls")]
fn ensure_crypto_provider() -> Result<(), StoreError> {
    use rustls::crypto::CryptoProvider;
    #[cfg(feature = "aws_lc_rs")]
    if CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    if CryptoProvider::get_default().is_none() {
        return Err(StoreError::unavailable(InvalidConfig(
            "rediss:// needs a rustls CryptoProvider: enable the `aws_lc_rs` feature or call \
             rustls::crypto::CryptoProvider::install_default() at startup"
                .to_owned(),
        )));
    }
    Ok(())
}

/// Without `redis-tls`, redis-rs itself refuses `rediss://` URLs.
#[cfg(not(feature = "redis-tls"))]
fn ensure_crypto_provider() -> Result<(), StoreError> {
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::unavailable(InvalidConfig(format!(
            "the key prefix {prefix:?} must not contain `{{` or `}}` (they would break the hash tags)"
        ))));
    }
    Ok(())
}

impl RedisStore {
    /// Connect with the defaults: `redis://[user][:password]@host[:port][/db]`,
    /// or `rediss://` with the `redis-tls` feature.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// A builder to set the pool size, timeouts and key prefix.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url)
    }

    /// Connect to a Redis Cluster with the defaults, from the URLs of some of
    /// its nodes; see [`RedisStoreBuilder::cluster`].
    #[cfg(feature = "redis-cluster")]
    pub async fn cluster(nodes: &[&str]) -> Result<Self, StoreError> {
        RedisStoreBuilder::cluster(nodes).build().await
    }

    /// Connect to the master `master_name` watched by these sentinels
    /// (`host:port`) with the defaults; see [`RedisStoreBuilder::sentinel`].
    #[cfg(feature = "redis-sentinel")]
    pub async fn sentinel(sentinels: &[&str], master_name: &str) -> Result<Self, StoreError> {
        RedisStoreBuilder::sentinel(sentinels, master_name)
            .build()
            .await
    }

    /// Use an existing bb8-redis pool, with the key prefix `jwt`.
    ///
    /// bb8-redis's manager never reports a connection as broken, so such a
    /// pool only recovers from a Redis restart if it was built with
    /// `test_on_check_out(true)` (one extra `PING` per call). Prefer
    /// [`connect`](Self::connect) or [`builder`](Self::builder).
    pub fn from_pool(pool: bb8::Pool<bb8_redis::RedisConnectionManager>) -> Self {
        let timeout = pool.config().connection_timeout;
        Self::new(
            Backend::External(pool),
            DEFAULT_PREFIX.to_owned(),
            Mode::ExternalPool,
            Vec::new(),
            timeout,
        )
    }

    /// [`from_pool`](Self::from_pool) with another key prefix (no `{` or `}`).
    pub fn from_pool_with_prefix(
        pool: bb8::Pool<bb8_redis::RedisConnectionManager>,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        validate_prefix(prefix)?;
        let timeout = pool.config().connection_timeout;
        Ok(Self::new(
            Backend::External(pool),
            prefix.to_owned(),
            Mode::ExternalPool,
            Vec::new(),
            timeout,
        ))
    }

    fn new(
        backend: Backend,
        prefix: String,
        mode: Mode,
        targets: Vec<Target>,
        timeout: Duration,
    ) -> Self {
        let channel = format!("{prefix}:events");
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix,
                channel,
                mode,
                targets,
                connection_timeout: timeout,
                response_timeout: None,
                near: None,
            }),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The pub/sub channel revoking writes publish on: `<prefix>:events`.
    pub fn events_channel(&self) -> &str {
        &self.inner.channel
    }

    /// Checks of the server's configuration that matter for revocation:
    /// an eviction policy that may drop our keys, no password on a
    /// non-loopback address, no persistence. Uses `INFO` (allowed on managed
    /// Redis); `CONFIG GET` only where `INFO` has no answer, and only if allowed.
    /// On a cluster every master is checked (a finding shared by several
    /// masters is reported once); with Sentinel, the current master.
    pub async fn startup_findings(&self) -> Vec<StartupFinding> {
        let mut findings = Vec::new();
        for target in &self.inner.targets {
            if !target.has_password && !target.is_local() {
                let finding = StartupFinding::NoPassword {
                    host: target.host.clone().unwrap_or_default(),
                };
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
        let info = match self.query(&redis::cmd("INFO")).await {
            Ok(info) => info,
            Err(err) => {
                findings.push(StartupFinding::CheckFailed {
                    check: "INFO",
                    error: err.to_string(),
                });
                return findings;
            }
        };
        // A cluster answers with one reply per master, keyed by address.
        let per_node: Vec<(Option<String>, Value)> = match info {
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(addr, info)| (value_text(addr), info))
                .collect(),
            other => vec![(None, other)],
        };
        for (node, info) in per_node {
            for finding in self.node_findings(node.as_deref(), info).await {
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
        findings
    }

    /// Findings from one server's `INFO` reply; `node` is its `host:port` on
    /// a cluster (where `CONFIG GET` must be routed to it).
    async fn node_findings(&self, node: Option<&str>, info: Value) -> Vec<StartupFinding> {
        let Some(info) = value_text(info) else {
            return vec![StartupFinding::CheckFailed {
                check: "INFO",
                error: "unexpected reply".to_owned(),
            }];
        };
        let fields = parse_info(&info);
        let policy = match fields.get("maxmemory_policy") {
            Some(policy) => Some((*policy).to_owned()),
            None => self.config_get(node, "maxmemory-policy").await,
        };
        let save = if fields.get("aof_enabled") == Some(&"0") {
            Some(self.config_get(node, "save").await)
        } else {
            None
        };
        findings_from_info(&fields, policy.as_deref(), save)
    }

    /// [`startup_findings`](Self::startup_findings), each also logged with
    /// `tracing::warn!`. [`RedisStoreBuilder::build`] runs it by default.
    pub async fn log_startup_findings(&self) -> Vec<StartupFinding> {
        let findings = self.startup_findings().await;
        for finding in &findings {
            tracing::warn!(target: "tower_jwt_auth::redis", "{finding}");
        }
        findings
    }

    /// `CONFIG GET name` (on the cluster node `node`, if given), or `None`
    /// when not allowed or not answered.
    async fn config_get(&self, node: Option<&str>, name: &str) -> Option<String> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        let reply = match (node, &self.inner.backend) {
            #[cfg(feature = "redis-cluster")]
            (Some(node), Backend::Cluster(conn)) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let (host, port) = node.rsplit_once(':')?;
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port: port.parse().ok()?,
                });
                conn.clone().route_command(cmd, routing).await.ok()?
            }
            _ => {
                let _ = node;
                self.query(&cmd).await.ok()?
            }
        };
        match reply {
            Value::Array(items) if items.len() == 2 => value_text(items.into_iter().nth(1)?),
            Value::Map(pairs) => pairs.into_iter().next().and_then(|(_, v)| value_text(v)),
            _ => None,
        }
    }

    fn key(&self, subject: &str, kind: KeyKind<'_>) -> String {
        subject_key(&self.inner.prefix, subject, kind)
    }

    fn base(&self, subject: &str) -> String {
        subject_base(&self.inner.prefix, subject)
    }

    /// The kept connection or the cluster client, which need no checkout.
    fn ready_lease(&self) -> Option<Lease> {
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

    async fn eval(&self, invocation: Invocation<'_>) -> Result<Value, StoreError> {
        self.send(Outgoing::Script(&invocation), None).await
    }

    async fn query(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        self.send(Outgoing::Command(cmd), None).await
    }

    /// Sends a command or a script; once more on a new connection after
    /// `READONLY` (a demoted master: nothing was written). With `due`, the
    /// answer must come by then ([`StoreError::Timeout`] otherwise).
    async fn send(&self, what: Outgoing<'_>, due: Option<Due>) -> Result<Value, StoreError> {
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

    /// [`checkout`](Self::checkout), by `due`.
    async fn checkout_by(&self, due: Option<Due>) -> Result<Lease, StoreError> {
        match due {
            Some(due) => tokio::time::timeout(due.left()?, self.checkout())
                .await
                .map_err(|_| StoreError::Timeout(due.deadline))?,
            None => self.checkout().await,
        }
    }

    /// The check of one token, as far as it can be prepared before its
    /// future starts: the plain command (keys written into it, nothing of the
    /// request kept besides), or with the near-cache on, for a session's
    /// token, the script.
    fn prepare_check(&self, req: &CheckRequest<'_>) -> PreparedCheck {
        let args = CheckArgs {
            issued_at: req.issued_at,
            touch_ms: millis(req.touch_interval),
            marker_ms: millis(req.marker_ttl).max(1),
        };
        let sid = req.session_id.as_deref();
        let cache = self.inner.near.as_ref().and_then(|c| {
            Some(Box::new(CacheEntry {
                ticket: c.ticket(&req.subject)?,
                subject: req.subject.to_string(),
                token_id: req.token_id.to_string(),
                touch_interval: sid.map(|_| req.touch_interval),
            }))
        });
        let (subject, prefix) = (&*req.subject, &*self.inner.prefix);
        let deny = KeyKind::Deny(&req.token_id);
        let sent = match sid {
            Some(sid) if self.inner.near.is_some() => {
                let base = subject_base(prefix, subject);
                Sent::Script(check_script(&base, &req.token_id, Some(sid), &args))
            }
            _ => {
                let (name, kinds) = match sid {
                    // Stands when the answer is exactly 1: the deny key
                    // counts twice.
                    Some(sid) => ("EXISTS", [KeyKind::Fresh(sid), deny, deny]),
                    None => ("MGET", [KeyKind::Ban, deny, KeyKind::NotBefore]),
                };
                let id_len = req.token_id.len().max(sid.map_or(0, str::len));
                let key_len = prefix.len() + 3 * (subject.len() + id_len) + 16;
                let mut cmd = Cmd::with_capacity(4, 8 + 3 * key_len);
                cmd.arg(name);
                push_key_args(&mut cmd, prefix, subject, &kinds);
                Sent::Plain(cmd)
            }
        };
        PreparedCheck {
            sent,
            session: sid.is_some(),
            args,
            cache,
        }
    }

    /// One plain command decides nearly every check: `MGET` of ban, deny and
    /// nbf for a token without a session; `EXISTS fresh deny deny` for a
    /// session's token, which stands when the answer is exactly 1 (`fresh`
    /// there, deny not: a ban or a log-out-everywhere ends every session,
    /// and the [`CHECK`] script sets `fresh` only when no `nbf` can touch the
    /// session's tokens). The script runs when that cannot decide: the
    /// session's touch is due, or a session's token looks revoked (the
    /// script then tells the exact reason), and with the near-cache on,
    /// which needs the session's deadline that only the script returns.
    async fn run_check(
        self,
        check: PreparedCheck,
        due: Option<Due>,
    ) -> Result<Verdict, StoreError> {
        let (verdict, session_ttl) = match &check.sent {
            Sent::Plain(cmd) => {
                let reply = self.send(Outgoing::Command(cmd), due).await?;
                // Neither answer carries the session's deadline.
                let decided = if check.session {
                    (reply == Value::Int(1)).then_some(Verdict::Valid)
                } else {
                    parse_mget_check(reply, check.args.issued_at)?
                };
                match decided {
                    Some(verdict) => (verdict, None),
                    None => {
                        // Rare (once per touch interval, or a revoked
                        // token): its own future keeps this one small.
                        let script = check.script_after(cmd)?;
                        let sent = Box::pin(self.send(Outgoing::Script(&script), due));
                        parse_check(sent.await?)?
                    }
                }
            }
            Sent::Script(script) => parse_check(self.send(Outgoing::Script(script), due).await?)?,
        };
        if let (Some(cache), Some(entry), Verdict::Valid) =
            (&self.inner.near, check.cache, &verdict)
        {
            // A session-bound verdict lives no longer than the session's idle
            // deadline and the touch interval (so the next real check slides it).
            let ttl = entry
                .touch_interval
                .map(|touch| Duration::from_millis(session_ttl.unwrap_or(0)).min(touch));
            cache.insert(entry.ticket, &entry.subject, &entry.token_id, ttl);
        }
        Ok(verdict)
    }

    /// Runs a script that may revoke tokens of `subject`: it gets the events
    /// channel and the subject as its last two arguments (it publishes the
    /// event there), and our own near-cache drops the subject whatever the
    /// outcome (other instances drop theirs when the event arrives).
    async fn eval_revoking(
        &self,
        mut invocation: Invocation<'_>,
        subject: &str,
    ) -> Result<Value, StoreError> {
        invocation.arg(&self.inner.channel).arg(subject);
        let result = self.eval(invocation).await;
        if let Some(cache) = &self.inner.near {
            cache.invalidate(subject);
        }
        result
    }

    /// The near-cache's counters, when it is on.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.inner.near.as_ref().map(|c| c.stats())
    }
}

/// A check prepared by [`RedisStore::prepare_check`].
struct PreparedCheck {
    sent: Sent,
    /// A session's token (`EXISTS fresh deny deny`), or not (`MGET`).
    session: bool,
    args: CheckArgs,
    /// Where a valid verdict goes, with the near-cache on (boxed: the
    /// future of a check without it stays smaller).
    cache: Option<Box<CacheEntry>>,
}

/// What a check sends first.
enum Sent {
    /// `EXISTS` or `MGET`, which decide nearly every check.
    Plain(Cmd),
    /// The [`CHECK`] script.
    Script(Invocation<'static>),
}

/// The [`CHECK`] script's arguments besides the keys.
struct CheckArgs {
    issued_at: Option<u64>,
    touch_ms: u64,
    marker_ms: u64,
}

/// A near-cache entry to make of a valid verdict.
struct CacheEntry {
    ticket: Ticket,
    subject: String,
    token_id: String,
    /// A session's token: its verdict lives no longer than this.
    touch_interval: Option<Duration>,
}

impl PreparedCheck {
    /// The script for the check the plain command `cmd` could not decide,
    /// from the keys written into it (the request is not kept for this
    /// rare case).
    fn script_after(&self, cmd: &Cmd) -> Result<Invocation<'static>, StoreError> {
        let unreadable = || StoreError::Protocol("check: the command's keys are unreadable".into());
        let mut keys = cmd.args_iter().skip(1).map(|arg| match arg {
            redis::Arg::Simple(key) => std::str::from_utf8(key).ok(),
            _ => None,
        });
        // `EXISTS fresh deny deny` or `MGET ban deny nbf`.
        let (first, deny) = match (keys.next(), keys.next()) {
            (Some(Some(first)), Some(Some(deny))) => (first, deny),
            _ => return Err(unreadable()),
        };
        let base = first
            .find("}:")
            .map(|end| &first[..end + 2])
            .ok_or_else(unreadable)?;
        let id_in = |key: &str, kind: KeyKind<'_>| {
            key.strip_prefix(base)
                .and_then(|key| key.strip_prefix(kind.parts().0))
                .and_then(decode_key_part)
                .ok_or_else(unreadable)
        };
        let token_id = id_in(deny, KeyKind::Deny(""))?;
        let sid = match self.session {
            true => Some(id_in(first, KeyKind::Fresh(""))?),
            false => None,
        };
        Ok(check_script(base, &token_id, sid.as_deref(), &self.args))
    }
}

/// The [`CHECK`] script for a token of the subject whose keys start with
/// `base`.
fn check_script(
    base: &str,
    token_id: &str,
    sid: Option<&str>,
    args: &CheckArgs,
) -> Invocation<'static> {
    let mut inv = CHECK_SCRIPT.prepare_invoke(if sid.is_some() { 7 } else { 3 });
    for kind in [KeyKind::Ban, KeyKind::Deny(token_id), KeyKind::NotBefore] {
        inv.key(key_in(base, kind));
    }
    if let Some(sid) = sid {
        for kind in [
            KeyKind::Sessions,
            KeyKind::Session(sid),
            KeyKind::Ended,
            KeyKind::Fresh(sid),
        ] {
            inv.key(key_in(base, kind));
        }
    }
    match args.issued_at {
        Some(iat) => inv.arg(iat),
        None => inv.arg(""),
    };
    inv.arg(args.touch_ms);
    if let Some(sid) = sid {
        inv.arg(encode_key_part(sid)).arg(args.marker_ms);
    }
    inv
}

/// Where the near-cache subscribes to the events channel.
enum EventSource {
    /// Fixed servers, tried in turn: the one server, or the cluster nodes
    /// given (a plain `PUBLISH` on any cluster node reaches every node, so
    /// any one of them will do; the next one is used when it is lost).
    Nodes {
        nodes: Vec<ConnectionInfo>,
        next: usize,
    },
    /// The current master, asked of the sentinels at each (re)connect.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Arc<SentinelLookup>),
}

impl EventSource {
    /// Announces that the subscription should move (Sentinel: a new master).
    fn moves(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Self::Nodes { .. } => None,
            #[cfg(feature = "redis-sentinel")]
            Self::Sentinel(lookup) => Some(lookup.changes.subscribe()),
        }
    }

    /// The server to subscribe on now (a different one after each call when
    /// there are several).
    async fn next(&mut self) -> Result<Client, RedisError> {
        match self {
            Self::Nodes { nodes, next } => {
                let info = nodes[*next % nodes.len()].clone();
                *next = (*next + 1) % nodes.len();
                Client::open(info)
            }
            #[cfg(feature = "redis-sentinel")]
            Self::Sentinel(lookup) => Client::open(lookup.master().await?),
        }
    }
}

/// What the subscription loop waits for.
enum Next {
    Message(Option<redis::Msg>),
    Idle,
    Moved,
    Closed,
}

/// Keep a pub/sub subscription to the events channel; feed the near-cache.
/// The cache is in use only while the subscription is alive; it ends when
/// the store (and so the cache) is dropped.
async fn run_subscriber(
    mut source: EventSource,
    channel: String,
    cache: Weak<NearCache>,
    connect_timeout: Duration,
) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        // Taken before the lookup, so that a move during it is not missed.
        let mut moves = source.moves();
        let connect = async {
            let client = source.next().await?;
            let addr = Target::from_info(client.get_connection_info()).addr;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>((pubsub, addr))
        };
        match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok((mut pubsub, addr))) => {
                let Some(c) = cache.upgrade() else { return };
                c.set_alive(true);
                drop(c);
                tracing::debug!(channel = %channel, server = %addr, "near-cache subscription alive");
                backoff = Duration::from_millis(50);
                let mut stream = pubsub.on_message();
                loop {
                    let message = tokio::time::timeout(Duration::from_secs(1), stream.next());
                    let next = match moves.as_mut() {
                        None => match message.await {
                            Ok(message) => Next::Message(message),
                            Err(_) => Next::Idle,
                        },
                        Some(watch) => {
                            use futures_util::future::{select, Either};
                            let moved = std::pin::pin!(watch.changed());
                            match select(std::pin::pin!(message), moved).await {
                                Either::Left((Ok(message), _)) => Next::Message(message),
                                Either::Left((Err(_), _)) => Next::Idle,
                                Either::Right((Ok(()), _)) => Next::Moved,
                                Either::Right((Err(_), _)) => Next::Closed,
                            }
                        }
                    };
                    match next {
                        Next::Message(Some(msg)) => {
                            let Some(c) = cache.upgrade() else { return };
                            match msg.get_payload_bytes().splitn(2, |&b| b == b'\n').nth(1) {
                                Some(subject) => c.invalidate(&String::from_utf8_lossy(subject)),
                                // Not ours to parse: be safe.
                                None => c.clear(),
                            }
                        }
                        Next::Message(None) => break,
                        // The publisher moved (a new master): follow it.
                        Next::Moved => break,
                        // No more moves to watch (cannot happen: the sender
                        // lives as long as `source`).
                        Next::Closed => moves = None,
                        Next::Idle if cache.strong_count() == 0 => return,
                        Next::Idle => {}
                    }
                }
                if let Some(c) = cache.upgrade() {
                    c.set_alive(false);
                }
                tracing::warn!(channel = %channel, server = %addr, "near-cache subscription lost: cache bypassed until it is back");
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "near-cache subscription failed")
            }
            Err(_elapsed) => tracing::debug!("near-cache subscription timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------

impl CheckHints for RedisStore {
    /// A check's command is bounded by the connection's own per-command
    /// timeout, set to what is left of the deadline: one timer instead of
    /// two. Not with a cluster, whose client keeps its own timeouts.
    fn bounds_check_time(&self) -> bool {
        match self.inner.backend {
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(_) => false,
            _ => true,
        }
    }

    fn check_cached(&self, subject: &str, token_id: &str) -> bool {
        self.inner
            .near
            .as_ref()
            .is_some_and(|c| c.lookup(subject, token_id))
    }
}

impl RevocationStore for RedisStore {
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        let due = self
            .bounds_check_time()
            .then(|| Due::after(request.deadline))
            .flatten();
        Box::pin(self.clone().run_check(self.prepare_check(request), due))
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut inv = DENY_SCRIPT.prepare_invoke(1);
            inv.key(self.key(subject, KeyKind::Deny(token_id)))
                .arg(millis(ttl));
            self.eval_revoking(inv, subject).await.map(drop)
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = REVOKE_SCRIPT.prepare_invoke(2);
            inv.key(key_in(&base, KeyKind::NotBefore))
                .key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
                .arg(not_before)
                .arg(keep_for.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers));
            self.eval_revoking(inv, subject).await.map(drop)
        })
    }

    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = BAN_SCRIPT.prepare_invoke(2);
            inv.key(key_in(&base, KeyKind::Ban))
                .key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
                .arg(duration.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers));
            self.eval_revoking(inv, subject).await.map(drop)
        })
    }

    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inv = UNBAN_SCRIPT.prepare_invoke(1);
            inv.key(self.key(subject, KeyKind::Ban))
                .arg(&self.inner.channel)
                .arg(subject);
            Ok(parse_count("unban", self.eval(inv).await?)? > 0)
        })
    }

    fn sessions(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }
}

impl SessionStore for RedisStore {
    fn create_session(&self, new: NewSession) -> StoreFuture<'_, CreateOutcome> {
        Box::pin(async move {
            let subject = &new.subject;
            let base = self.base(subject);
            let mut inv = CREATE_SCRIPT.prepare_invoke(5);
            inv.key(key_in(&base, KeyKind::Ban))
                .key(key_in(&base, KeyKind::Sessions))
                .key(key_in(&base, KeyKind::Session(&new.session_id)))
                .key(key_in(&base, KeyKind::Ended))
                .key(key_in(&base, KeyKind::Fresh(&new.session_id)))
                .arg(&base)
                .arg(encode_key_part(&new.session_id))
                .arg(&new.device)
                .arg(&new.refresh_hash)
                .arg(new.max_sessions)
                .arg(match new.limit_policy {
                    LimitPolicy::RejectNew => "reject",
                    _ => "evict",
                })
                .arg(if new.replace_same_device { "1" } else { "0" })
                .arg(millis(new.idle_timeout))
                .arg(millis(new.lifetime))
                .arg(millis(new.markers));
            let result = self.eval_revoking(inv, subject).await;
            parse_create(result?)
        })
    }

    fn end_session<'a>(
        &'a self,
        subject: &'a str,
        session_id: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = END_ONE_SCRIPT.prepare_invoke(1);
            inv.key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
                .arg(encode_key_part(session_id))
                .arg(reason.code())
                .arg(millis(markers));
            let result = self.eval_revoking(inv, subject).await;
            Ok(parse_count("end_session", result?)? > 0)
        })
    }

    fn end_all_sessions<'a>(
        &'a self,
        subject: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = END_ALL_SCRIPT.prepare_invoke(1);
            inv.key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
                .arg(reason.code())
                .arg(millis(markers));
            let result = self.eval_revoking(inv, subject).await;
            let n = parse_count("end_all_sessions", result?)?;
            usize::try_from(n).map_err(|_| StoreError::Protocol(format!("end_all_sessions: {n}")))
        })
    }

    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = LIST_SCRIPT.prepare_invoke(1);
            inv.key(key_in(&base, KeyKind::Sessions)).arg(&base);
            parse_list(self.eval(inv).await?)
        })
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        Box::pin(async move {
            let subject = &rotation.subject;
            let sid = &rotation.session_id;
            let base = self.base(subject);
            let mut inv = ROTATE_SCRIPT.prepare_invoke(4);
            inv.key(key_in(&base, KeyKind::Sessions))
                .key(key_in(&base, KeyKind::Session(sid)))
                .key(key_in(&base, KeyKind::Ended))
                .key(key_in(&base, KeyKind::Fresh(sid)))
                .arg(&base)
                .arg(encode_key_part(sid))
                .arg(rotation.generation)
                .arg(&rotation.presented_hash)
                .arg(&rotation.new_hash)
                .arg(millis(rotation.idle_timeout))
                .arg(millis(rotation.markers));
            let result = self.eval_revoking(inv, subject).await;
            parse_rotate(result?)
        })
    }

    fn put_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
        subject: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = one_time_key(&self.inner.prefix, purpose, token_hash);
            let ms = millis(ttl);
            let mut cmd;
            if ms == 0 {
                cmd = redis::cmd("DEL");
                cmd.arg(key);
            } else {
                cmd = redis::cmd("SET");
                cmd.arg(key).arg(subject).arg("PX").arg(ms);
            }
            self.query(&cmd).await.map(drop)
        })
    }

    fn take_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let key = one_time_key(&self.inner.prefix, purpose, token_hash);
            match self.query(redis::cmd("GETDEL").arg(key)).await? {
                Value::Nil => Ok(None),
                other => {
                    let shown = other.clone();
                    value_text(other)
                        .map(Some)
                        .ok_or_else(|| protocol("take_one_time", &shown))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The hash tag Redis Cluster hashes for `key`, if any.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &key[open + 1..close])
    }

    type Triple = (String, u8, String);

    fn key_of((subject, kind, id): &Triple) -> String {
        let kind = match kind % 7 {
            0 => KeyKind::Deny(id),
            1 => KeyKind::NotBefore,
            2 => KeyKind::Ban,
            3 => KeyKind::Sessions,
            4 => KeyKind::Session(id),
            5 => KeyKind::Ended,
            _ => KeyKind::Fresh(id),
        };
        subject_key("jwt", subject, kind)
    }

    /// Normalize: kinds without an id ignore it.
    fn canonical((subject, kind, id): &Triple) -> Triple {
        let kind = kind % 7;
        let id = if matches!(kind, 1..=3 | 5) {
            String::new()
        } else {
            id.clone()
        };
        (subject.clone(), kind, id)
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a:{}%~ é\\n.-]{0,4}",
            "[a-z0-9:{}%]{0,3}(deny|nbf|ban|sessions|session|ended|fresh)?[:{}%a]{0,3}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn different_triples_never_share_a_key(
            triples in prop::collection::vec((part(), any::<u8>(), part()), 1..40)
        ) {
            let mut seen: HashMap<String, Triple> = HashMap::new();
            for t in &triples {
                let t = canonical(t);
                let key = key_of(&t);
                if let Some(prev) = seen.insert(key.clone(), t.clone()) {
                    prop_assert_eq!(prev, t, "two triples share the key {}", key);
                }
            }
        }

        #[test]
        fn all_keys_of_a_subject_share_one_non_empty_hash_tag(t in (part(), any::<u8>(), part())) {
            let key = key_of(&t);
            let encoded = encode_key_part(&t.0);
            prop_assert_eq!(hash_tag(&key), Some(encoded.as_str()));
            prop_assert!(!encoded.is_empty());
            let clean = !encoded.contains(['{', '}', ':']);
            prop_assert!(clean, "braces or colon in an encoded part");
        }

        #[test]
        fn encoding_round_trips(s in part()) {
            prop_assert_eq!(decode_key_part(&encode_key_part(&s)), Some(s));
        }

        #[test]
        fn one_time_keys_never_look_like_subject_keys(
            purpose in part(), hash in part(), t in (part(), any::<u8>(), part())
        ) {
            let once = one_time_key("jwt", &purpose, &hash);
            prop_assert!(hash_tag(&once).is_none());
            prop_assert_ne!(once, key_of(&t));
        }
    }

    #[test]
    fn encoding_examples() {
        assert_eq!(encode_key_part(""), "%");
        assert_eq!(encode_key_part("alice@example.com"), "alice@example.com");
        assert_eq!(encode_key_part("a:b{c}"), "a%3Ab%7Bc%7D");
        assert_eq!(encode_key_part("%"), "%25");
        assert_eq!(encode_key_part("é"), "%C3%A9");
        assert_eq!(
            subject_key("jwt", "a}b", KeyKind::Deny("t 1")),
            "jwt:{a%7Db}:deny:t%201"
        );
        assert_eq!(decode_key_part("%zz"), None);
        assert_eq!(decode_key_part("%2"), None);
    }

    #[test]
    fn millis_rounds_up_and_clamps() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), MAX_MS);
    }

    const INFO: &str = "# Memory\r\nused_memory:1000\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_saves:0\r\n";

    #[test]
    fn info_fields_are_parsed() {
        let fields = parse_info(INFO);
        assert_eq!(fields.get("maxmemory_policy"), Some(&"allkeys-lru"));
        assert_eq!(fields.get("aof_enabled"), Some(&"0"));
        assert_eq!(fields.get("loading"), Some(&"0"));
        assert!(!fields.contains_key("# Memory"));
    }

    #[test]
    fn eviction_policies_that_can_drop_our_keys_are_reported() {
        let fields = parse_info("aof_enabled:1\r\n");
        for policy in [
            "allkeys-lru",
            "allkeys-random",
            "volatile-ttl",
            "volatile-lfu",
        ] {
            assert_eq!(
                findings_from_info(&fields, Some(policy), None),
                vec![StartupFinding::EvictionPolicy {
                    policy: policy.into()
                }]
            );
        }
        assert!(findings_from_info(&fields, Some("noeviction"), None).is_empty());
        assert!(findings_from_info(&fields, None, None).is_empty());
    }

    #[test]
    fn persistence_off_is_reported_and_unknown_snapshots_are_flagged() {
        let off = parse_info(INFO);
        assert_eq!(
            findings_from_info(&off, Some("noeviction"), Some(Some(String::new()))),
            vec![StartupFinding::NoPersistence]
        );
        assert_eq!(
            findings_from_info(&off, Some("noeviction"), Some(None)),
            vec![StartupFinding::PersistenceUnverified]
        );
        assert!(
            findings_from_info(&off, Some("noeviction"), Some(Some("3600 1".into()))).is_empty()
        );
        let aof = parse_info("aof_enabled:1\n");
        assert!(findings_from_info(&aof, Some("noeviction"), None).is_empty());
    }

    #[test]
    fn loopback_hosts_need_no_password() {
        let target = |url: &str| Target::from_info(&url.into_connection_info().unwrap());
        assert!(target("redis://127.0.0.1:6379").is_local());
        assert!(target("redis://localhost").is_local());
        assert!(target("redis://[::1]:6379").is_local());
        assert!(!target("redis://10.1.2.3").is_local());
        assert!(!target("redis://cache.internal").is_local());
        assert!(target("redis://:pw@10.1.2.3").has_password);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let builder = RedisStore::builder("redis://user:hunter2@10.1.2.3:6380/3");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.1.2.3:6380"), "{shown}");
    }

    #[cfg(feature = "redis-cluster")]
    #[test]
    fn debug_of_a_cluster_builder_never_shows_passwords() {
        let builder = RedisStoreBuilder::cluster(&[
            "redis://:hunter2@10.1.2.3:7000",
            "redis://:hunter2@10.1.2.4:7000",
        ]);
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.1.2.4:7000"), "{shown}");
    }

    #[cfg(feature = "redis-sentinel")]
    #[test]
    fn sentinel_addresses_may_be_bare_or_urls() {
        assert_eq!(sentinel_url("10.0.0.1:26379"), "redis://10.0.0.1:26379");
        assert_eq!(
            sentinel_url("redis://:pw@10.0.0.1:26379"),
            "redis://:pw@10.0.0.1:26379"
        );
        let builder = RedisStoreBuilder::sentinel(&["10.0.0.1:26379"], "mymaster")
            .master_auth(Some("app"), "hunter2");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("10.0.0.1:26379") && shown.contains("mymaster"),
            "{shown}"
        );
    }

    #[test]
    fn scripts_fall_back_to_their_body() {
        let mut inv = UNBAN_SCRIPT.prepare_invoke(1);
        inv.key("k").arg("a").arg(7);
        let args = |cmd: Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                })
                .collect()
        };
        let evalsha = args(inv.evalsha().clone());
        assert_eq!(evalsha[0], b"EVALSHA");
        assert_eq!(evalsha[1], UNBAN_SCRIPT.hash.as_bytes());
        assert_eq!(
            evalsha[2..],
            [b"1".to_vec(), b"k".to_vec(), b"a".to_vec(), b"7".to_vec()]
        );
        let eval = args(inv.eval());
        assert_eq!(eval[0], b"EVAL");
        assert_eq!(eval[1], UNBAN_SCRIPT.code.as_bytes());
        assert_eq!(eval[2..], evalsha[2..]);
        assert_eq!(
            UNBAN_SCRIPT.hash,
            Script::new(&UNBAN_SCRIPT.code).get_hash()
        );
    }

    #[test]
    fn replies_map_to_verdicts() {
        let arr = |v: Vec<Value>| Value::Array(v);
        assert_eq!(
            parse_check(arr(vec![Value::Int(0)])).unwrap(),
            (Verdict::Valid, None)
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(0), Value::Int(1500)])).unwrap(),
            (Verdict::Valid, Some(1500))
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(1), Value::Int(-1)]))
                .unwrap()
                .0,
            Verdict::Revoked(RevocationReason::Banned { until: None })
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(1), Value::Int(1_700_000_000)]))
                .unwrap()
                .0,
            Verdict::Revoked(RevocationReason::Banned {
                until: Some(1_700_000_000)
            })
        );
        assert_eq!(
            parse_check(arr(vec![
                Value::Int(4),
                Value::BulkString(b"idle_timeout".to_vec())
            ]))
            .unwrap()
            .0,
            Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::IdleTimeout))
        );
        assert!(matches!(
            parse_check(Value::Int(7)),
            Err(StoreError::Protocol(_))
        ));
        assert!(matches!(
            parse_check(arr(vec![Value::Int(9)])),
            Err(StoreError::Protocol(_))
        ));
    }
}
