//! The near-cache's subscription to the events channel: every revoking
//! write publishes `<kind>\n<subject>` there, and each instance drops the
//! subject's cached verdicts when it arrives.

#[cfg(feature = "redis-sentinel")]
use std::sync::Arc;
use std::sync::Weak;
use std::time::Duration;

use redis::{Client, ConnectionInfo, RedisError};

use super::findings::Target;
#[cfg(feature = "redis-sentinel")]
use super::sentinel::SentinelLookup;
use crate::store::near_cache::NearCache;

/// Where the near-cache subscribes to the events channel.
pub(super) enum EventSource {
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
pub(super) async fn run_subscriber(
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
