//! [`RedisStoreBuilder`]: what to connect to (one server, a cluster,
//! Sentinel), the settings, and connecting.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "redis-cluster")]
use redis::ConnectionInfo;
use redis::{AsyncConnectionConfig, IntoConnectionInfo};

use super::conn::{map_redis_error, InvalidConfig};
use super::events::{run_subscriber, EventSource};
use super::findings::Target;
use super::pool::{Backend, Dial, HotSlot, LogSink, Manager};
#[cfg(feature = "redis-sentinel")]
use super::sentinel::{watch_master, SentinelLookup};
use super::{Mode, RedisStore, DEFAULT_PREFIX};
use crate::store::near_cache::{NearCache, NearCacheConfig};
use crate::store::StoreError;

const DEFAULT_POOL_SIZE: u32 = 1;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

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

/// A prefix must not break the hash tags.
pub(super) fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::unavailable(InvalidConfig(format!(
            "the key prefix {prefix:?} must not contain `{{` or `}}` (they would break the hash tags)"
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "redis-sentinel")]
    use super::sentinel_url;
    #[cfg(any(feature = "redis-cluster", feature = "redis-sentinel"))]
    use super::RedisStoreBuilder;
    use crate::store::RedisStore;

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
}
