//! Key sets of identity providers (feature `remote-keys`): a JWKS URL, or an
//! issuer whose `jwks_uri` is found by OpenID Connect Discovery or RFC 8414,
//! fetched and cached by [`RemoteKeys`].
//!
//! See [`RemoteKeys`] for the cache's semantics.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

mod builder;
mod cache;
mod discovery;
mod fetch;
mod source;
mod url;

pub use self::builder::{RemoteConfigError, RemoteKeysBuilder};
pub use self::fetch::{FetchError, FetchFuture, HttpFetch, HyperFetch};

use self::cache::Cache;
use self::source::Source;
use crate::keys::Keys;

/// The key set of one identity provider, fetched from its JWKS URL and kept
/// fresh.
///
/// The cache's semantics:
///
/// - A token whose `kid` is in the current set is verified with a snapshot
///   read without lock, await or allocation, whatever a fetch is doing.
/// - The set is fresh for `max_age` (10 min), or for the response's
///   `Cache-Control: max-age` kept within `min_max_age..=max_max_age`
///   (1 min ..= 1 h), and refreshed in the background before it goes stale.
/// - While a refresh runs or fails, the last good set is used
///   (stale-while-revalidate), for up to `stale_if_error` (24 h) past its
///   freshness, logged as errors; then the keys are unavailable.
/// - An unknown `kid` (a key rotated in) starts one fetch that every
///   concurrent caller shares, at most once per `cooldown` (30 s) after a
///   success: within it, the kid is simply unknown. After a failure, a new
///   fetch may start `retry_min` (1 s) later; the refresher retries with
///   backoff up to `retry_max` (60 s).
/// - A key removed from the set stops verifying at the next fetch: the
///   snapshot is replaced whole.
/// - Unavailable ([`KeysUnavailable`], with a retry delay): never fetched,
///   or the fetch failed and the kid is unknown, or the last good set is
///   older than the stale bound. Every fetch (discovery included) ends
///   within `timeout` (5 s).
///
/// Cheap to clone (one shared cache). The background refresher stops when
/// the last clone is dropped.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_jwt_auth::RemoteKeys;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // By discovery: <issuer>/.well-known/openid-configuration, then its jwks_uri.
/// let keys = RemoteKeys::discover("https://id.example.com/realms/acme")
///     .cooldown(Duration::from_secs(30))
///     .build()?;
///
/// // Warm up at start; the service starts even if the provider is down.
/// if let Err(e) = keys.prefetch().await {
///     eprintln!("keys not fetched yet, retrying in the background: {e}");
/// }
///
/// // Or straight from a JWKS URL.
/// let google = RemoteKeys::jwks("https://www.googleapis.com/oauth2/v3/certs").build()?;
/// let set = google.get(Some("a-kid")).await?;
/// for skipped in set.skipped() {
///     println!("not used: {skipped}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteKeys {
    cache: Arc<Cache>,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("source", &self.cache.config().label)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RemoteKeys {
    /// A key set fetched from this JWKS URL.
    pub fn jwks(url: impl Into<String>) -> RemoteKeysBuilder {
        RemoteKeysBuilder::new(builder::SourceSpec::Jwks(url.into()))
    }

    /// The key set of this issuer, found by discovery: OpenID Connect
    /// (`<issuer>/.well-known/openid-configuration`), else RFC 8414
    /// (`/.well-known/oauth-authorization-server` before the issuer's path).
    /// The document's `issuer` must equal `issuer` exactly.
    pub fn discover(issuer: impl Into<String>) -> RemoteKeysBuilder {
        RemoteKeysBuilder::new(builder::SourceSpec::Discover(issuer.into()))
    }

    pub(super) fn new(cache: Arc<Cache>) -> Self {
        cache.start_refresher();
        Self { cache }
    }

    /// The issuer this set was discovered for (`None` for a JWKS URL).
    pub fn issuer(&self) -> Option<&str> {
        match &self.cache.config().source {
            Source::Discover { issuer, .. } => Some(issuer),
            Source::Jwks(_) => None,
        }
    }

    /// The keys for a token with this `kid`: see [`Lookup`]. What the layer
    /// calls on each request; without lock, await or allocation when the
    /// kid is known (or `None`) and the set is usable.
    pub(crate) fn lookup(&self, kid: Option<&str>) -> Lookup {
        self.cache.lookup(kid)
    }

    /// The keys for a token with this `kid` (or none): the current set when
    /// it knows the kid, else the outcome of a fetch shared with every
    /// concurrent caller (when the cooldown allows one). The set returned
    /// may still lack the kid: the kid is then unknown (a 401).
    ///
    /// # Errors
    ///
    /// [`KeysUnavailable`] when the set cannot be had: never fetched, the
    /// fetch failed while the kid is unknown, or the last good set is older
    /// than the stale bound.
    pub async fn get(&self, kid: Option<&str>) -> Result<Arc<Keys>, KeysUnavailable> {
        match self.lookup(kid) {
            Lookup::Ready(keys) => Ok(keys),
            Lookup::Refetch(fetch) => fetch.await,
            Lookup::Unavailable(e) => Err(e),
        }
    }

    /// Wait for a usable set: the current one, or the outcome of a fetch
    /// (started now if none runs and the last failure is older than
    /// `retry_min`). For a warm-up at start; an error here is no reason to
    /// stop, the refresher keeps trying.
    ///
    /// # Errors
    ///
    /// [`KeysUnavailable`] when the fetch failed.
    pub async fn prefetch(&self) -> Result<Arc<Keys>, KeysUnavailable> {
        self.get(None).await
    }

    /// The set if it may be used now (fresh, or stale within the bound),
    /// without fetching.
    pub fn keys_now(&self) -> Option<Arc<Keys>> {
        self.cache.keys_now()
    }

    /// Whether `keys` is the current snapshot and may be used now: what
    /// the layer's token cache asks before a remote token hits (a key set
    /// replaced by a refresh, or gone stale, drops every token it verified).
    pub(crate) fn is_current(&self, keys: &std::sync::Weak<Keys>) -> bool {
        self.cache.is_current(keys)
    }

    /// Counters and state, for metrics and tests.
    pub fn stats(&self) -> RemoteStats {
        self.cache.stats()
    }
}

/// What [`RemoteKeys::lookup`] found for a token's `kid`.
pub(crate) enum Lookup {
    /// A usable set that knows the kid, or the current set (fetched within
    /// the cooldown) that does not: the kid is then unknown.
    Ready(Arc<Keys>),
    /// The kid is unknown: a fetch (shared) may bring it. The future ends
    /// within the fetch timeout.
    Refetch(Refetch),
    /// No usable keys and no fetch allowed now.
    Unavailable(KeysUnavailable),
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(keys) => f.debug_tuple("Ready").field(keys).finish(),
            Self::Refetch(_) => f.write_str("Refetch"),
            Self::Unavailable(e) => f.debug_tuple("Unavailable").field(e).finish(),
        }
    }
}

/// The outcome of the fetch a [`Lookup::Refetch`] waits for.
pub(crate) struct Refetch {
    inner: Pin<Box<dyn Future<Output = Result<Arc<Keys>, KeysUnavailable>> + Send>>,
}

impl Refetch {
    fn new(
        future: impl Future<Output = Result<Arc<Keys>, KeysUnavailable>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl Future for Refetch {
    type Output = Result<Arc<Keys>, KeysUnavailable>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// The keys of an issuer cannot be had now: a token of theirs can be told
/// neither good nor bad (a 503 with `Retry-After`, never a 401).
#[derive(Debug, Clone)]
pub struct KeysUnavailable {
    retry_after: Duration,
    cause: Option<Arc<FetchError>>,
}

impl KeysUnavailable {
    pub(crate) fn new(retry_after: Duration, cause: Option<Arc<FetchError>>) -> Self {
        Self { retry_after, cause }
    }

    /// When a fetch may be tried again.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// [`retry_after`](Self::retry_after) in whole seconds, at least 1, for
    /// a `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// Why the last fetch failed, if one did.
    pub fn cause(&self) -> Option<&FetchError> {
        self.cause.as_deref()
    }
}

impl fmt::Display for KeysUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the issuer's keys are unavailable")?;
        match &self.cause {
            Some(cause) => write!(f, ": {cause}"),
            None => f.write_str(": not fetched yet"),
        }
    }
}

impl std::error::Error for KeysUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Counters and state of a [`RemoteKeys`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Fetches started (discovery and JWKS together count as one).
    pub fetches_attempted: u64,
    /// Fetches that brought a usable set.
    pub fetches_succeeded: u64,
    /// Fetches that failed.
    pub fetches_failed: u64,
    /// When the last successful fetch ended.
    pub last_success: Option<SystemTime>,
    /// Why the last fetch failed, when it did (cleared by a success).
    pub last_error: Option<String>,
    /// Verification keys in the current set.
    pub keys: usize,
    /// Whether the current set is fresh.
    pub fresh: bool,
    /// Whether the current set may be used (fresh, or stale within the bound).
    pub usable: bool,
}
