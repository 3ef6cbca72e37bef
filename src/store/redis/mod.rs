//! The Redis store: many processes share one Redis; every check is one round trip.
//!
//! Where things are, one concern a file:
//!
//! - `mod.rs`: [`RedisStore`], its key layout (in its docs) and constructors;
//! - `builder.rs`: [`RedisStoreBuilder`], the endpoints (one server, a
//!   cluster, Sentinel) and connecting;
//! - `findings.rs`: [`StartupFinding`], the startup checks of the server's
//!   configuration;
//! - `pool.rs`: our own bb8 pool, its manager and the kept connection;
//!   a command's connection checkout;
//! - `sentinel.rs`: finding and following Sentinel's master;
//! - `conn.rs`: one command on one connection (the lease, its errors,
//!   `READONLY` retries), which every call goes through;
//! - `check.rs`: the check of one token (the plain command, its reply, the
//!   check script where the command cannot decide), and the near-cache's
//!   part in it;
//! - `writes.rs`: the revoking writes and the session store, one script each;
//! - `events.rs`: the near-cache's subscription to revocation events;
//! - `keys.rs`: key encoding and layout;
//! - `scripts.rs`: the Lua scripts' text and the invariants they keep;
//!   `lua.rs`: loading and calling them;
//! - `reply.rs`: replies parsed into the store's types.

mod builder;
mod check;
mod conn;
mod events;
mod findings;
mod keys;
mod lua;
mod pool;
mod reply;
mod scripts;
#[cfg(feature = "redis-sentinel")]
mod sentinel;
mod writes;

pub use self::builder::RedisStoreBuilder;
pub use self::findings::StartupFinding;
pub use self::keys::encode_key_part;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::builder::validate_prefix;
use self::findings::Target;
use self::keys::subject_base;
use self::pool::Backend;
use super::near_cache::{NearCache, NearCacheStats};
use super::StoreError;

/// The key prefix unless one is set.
const DEFAULT_PREFIX: &str = "jwt";

/// A [`RevocationStore`](crate::RevocationStore) and
/// [`SessionStore`](crate::SessionStore) in Redis, shared by every instance
/// of a service.
///
/// Every [`check`](crate::RevocationStore::check) is one plain command round trip
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
/// <prefix>:psid:<issuer>:<sid>           an ended provider session (back-channel logout)
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
/// cached verdicts of that subject; the end of a provider session, which
/// names no subject, publishes `psid` alone, and every near-cache clears.
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

    /// The near-cache's counters, when it is on.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.inner.near.as_ref().map(|c| c.stats())
    }

    /// The start of every key of `subject`.
    fn base(&self, subject: &str) -> String {
        subject_base(&self.inner.prefix, subject)
    }
}
