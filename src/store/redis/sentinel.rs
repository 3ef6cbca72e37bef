//! Redis Sentinel: finding the current master, and following the
//! sentinels' announcements of a new one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisError, ServerErrorKind, Value,
};

use super::reply::{value_array, value_text};

/// Finds the current master of a Sentinel-monitored group.
pub(super) struct SentinelLookup {
    pub(super) sentinels: Vec<ConnectionInfo>,
    pub(super) master_name: String,
    /// Database, credentials of the master (the protocol is set per connection).
    pub(super) settings: redis::RedisConnectionInfo,
    pub(super) timeout: Duration,
    /// The sentinel that answered last: asked first next time.
    pub(super) preferred: AtomicUsize,
    /// The master's address as last named by a sentinel.
    pub(super) current: Mutex<Option<(String, u16)>>,
    /// The pool's epoch: raised when the sentinels name another master, so
    /// that every connection to the old one is replaced, even if the old
    /// master is still up and still a master (a `SENTINEL FAILOVER` leaves it
    /// so for several seconds, and writes sent to it then would be lost).
    pub(super) pool_epoch: Arc<AtomicU64>,
    /// Counts master changes; the near-cache subscription follows them.
    pub(super) changes: tokio::sync::watch::Sender<u64>,
}

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
