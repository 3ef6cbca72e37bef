//! [`RemoteKeysBuilder`]: the settings of a remote key set, checked once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::cache::Cache;
use super::fetch::{HttpFetch, HyperFetch};
use super::source::{Config, Source};
use super::url::{parse_url, UrlRefusal};
use super::RemoteKeys;
use crate::keys::ASYMMETRIC_ALGORITHMS;

const SYMMETRIC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// A remote key set that cannot be built as configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteConfigError {
    /// Not an absolute `https://` (or `http://`) URL with a host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain `http://` to a host that is not loopback, without
    /// [`allow_http(true)`](RemoteKeysBuilder::allow_http).
    #[error("{0:?} is plain http to a host that is not loopback: use https, or allow_http(true)")]
    InsecureUrl(String),
    /// Bounds that contradict each other.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// No rustls crypto provider for the default client: enable the
    /// `aws_lc_rs` feature, install one, or hand in your own client.
    #[error(
        "no rustls CryptoProvider: enable the `aws_lc_rs` feature, call \
         rustls::crypto::CryptoProvider::install_default() first, or pass http_client(..)"
    )]
    NoCryptoProvider,
    /// The TLS configuration of the default client could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Where the set comes from, as given.
pub(super) enum SourceSpec {
    Jwks(String),
    Discover(String),
}

/// Settings of a [`RemoteKeys`], from [`RemoteKeys::jwks`] or
/// [`RemoteKeys::discover`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_auth::{Algorithm, RemoteConfigError, RemoteKeys};
///
/// let keys = RemoteKeys::discover("https://tenant.eu.auth0.com/")
///     .max_age(Duration::from_secs(600))
///     .cache_control_bounds(Duration::from_secs(1), Duration::from_secs(3600))
///     .cooldown(Duration::from_secs(30))
///     .timeout(Duration::from_secs(5))
///     .stale_if_error(Duration::from_secs(24 * 3600))
///     .allowed_algorithms([Algorithm::RS256])
///     .build()?;
///
/// // HTTPS only, but for loopback addresses or an explicit opt-in.
/// let err = RemoteKeys::jwks("http://keys.internal/jwks.json").build().unwrap_err();
/// assert!(matches!(err, RemoteConfigError::InsecureUrl(_)));
/// assert!(RemoteKeys::jwks("http://127.0.0.1:8080/jwks.json").build().is_ok());
/// assert!(RemoteKeys::jwks("http://keys.internal/jwks.json").allow_http(true).build().is_ok());
/// # Ok::<(), RemoteConfigError>(())
/// ```
#[must_use]
pub struct RemoteKeysBuilder {
    source: SourceSpec,
    client: Option<Arc<dyn HttpFetch>>,
    allowed: Option<Vec<Algorithm>>,
    allow_symmetric: bool,
    allow_http: bool,
    max_age: Duration,
    min_max_age: Duration,
    max_max_age: Duration,
    cooldown: Duration,
    timeout: Duration,
    stale_if_error: Duration,
    retry_min: Duration,
    retry_max: Duration,
    max_body: usize,
}

impl fmt::Debug for RemoteKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            SourceSpec::Jwks(url) => ("jwks", url),
            SourceSpec::Discover(issuer) => ("discover", issuer),
        };
        f.debug_struct("RemoteKeysBuilder")
            .field("source", &source)
            .field("custom_client", &self.client.is_some())
            .field("allowed", &self.allowed)
            .field("allow_symmetric", &self.allow_symmetric)
            .field("allow_http", &self.allow_http)
            .field("max_age", &self.max_age)
            .field("min_max_age", &self.min_max_age)
            .field("max_max_age", &self.max_max_age)
            .field("cooldown", &self.cooldown)
            .field("timeout", &self.timeout)
            .field("stale_if_error", &self.stale_if_error)
            .field("retry", &(self.retry_min, self.retry_max))
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl RemoteKeysBuilder {
    pub(super) fn new(source: SourceSpec) -> Self {
        Self {
            source,
            client: None,
            allowed: None,
            allow_symmetric: false,
            allow_http: false,
            max_age: Duration::from_secs(600),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(3600),
            cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(24 * 3600),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_body: 1 << 20,
        }
    }

    /// How long a fetched set is fresh when the response has no
    /// `Cache-Control: max-age` (default 10 min).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The shortest freshness a response's `Cache-Control: max-age` (or
    /// `no-cache`) may set (default 1 min).
    pub fn min_max_age(mut self, min: Duration) -> Self {
        self.min_max_age = min;
        self
    }

    /// The longest freshness a response's `Cache-Control: max-age` may set
    /// (default 1 h: a key removed by the provider stops verifying within it).
    pub fn max_max_age(mut self, max: Duration) -> Self {
        self.max_max_age = max;
        self
    }

    /// Both bounds of `Cache-Control: max-age`.
    pub fn cache_control_bounds(self, min: Duration, max: Duration) -> Self {
        self.min_max_age(min).max_max_age(max)
    }

    /// After a successful fetch, how long an unknown `kid` is just unknown
    /// instead of starting another fetch (default 30 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The deadline of one fetch, discovery included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long past its freshness the last good set is still used while
    /// fetches fail (default 24 h); then the keys are unavailable.
    pub fn stale_if_error(mut self, bound: Duration) -> Self {
        self.stale_if_error = bound;
        self
    }

    /// After a failed fetch: how soon a caller may start another (`min`,
    /// default 1 s), and the longest wait of the refresher's backoff, which
    /// doubles from `min` (`max`, default 60 s).
    pub fn retry(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// The algorithms keys of the set may be used with: a key's own `alg` if
    /// it is among them, else those of its type that are (default: every
    /// asymmetric algorithm; with [`allow_symmetric`](Self::allow_symmetric),
    /// also HS256/384/512). A key none of whose algorithms is allowed is
    /// skipped.
    pub fn allowed_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.allowed = Some(algorithms.into_iter().collect());
        self
    }

    /// Accept symmetric (`oct`) keys from the set (default: refused, they
    /// would be secrets published over the network).
    pub fn allow_symmetric(mut self, allow: bool) -> Self {
        self.allow_symmetric = allow;
        self
    }

    /// Allow plain `http://` to hosts that are not loopback (default: only
    /// `https://`, and `http://` to 127.0.0.0/8, `[::1]` or `localhost`).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The largest response body read (default 1 MiB).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Fetch with this client instead of [`HyperFetch`] (a proxy, other
    /// roots, client certificates).
    pub fn http_client(mut self, client: impl HttpFetch) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// The key set. Nothing is fetched here: inside a tokio runtime the
    /// background refresher starts now and fetches at once, otherwise on
    /// first use. A provider that is down does not fail the build.
    ///
    /// # Errors
    ///
    /// [`RemoteConfigError::InvalidUrl`], [`RemoteConfigError::InsecureUrl`],
    /// [`RemoteConfigError::InvalidSettings`] (`min_max_age > max_max_age`,
    /// `retry` min above max or zero, a zero timeout or size), or an error of
    /// [`HyperFetch::new`].
    pub fn build(self) -> Result<RemoteKeys, RemoteConfigError> {
        let (label, url) = match &self.source {
            SourceSpec::Jwks(url) | SourceSpec::Discover(url) => (url.clone(), url),
        };
        let uri = parse_url(url, self.allow_http).map_err(|refusal| match refusal {
            UrlRefusal::Insecure => RemoteConfigError::InsecureUrl(url.clone()),
            UrlRefusal::Invalid(reason) => RemoteConfigError::InvalidUrl {
                url: url.clone(),
                reason,
            },
        })?;
        let invalid = |what: &str| Err(RemoteConfigError::InvalidSettings(what.to_owned()));
        if self.min_max_age > self.max_max_age {
            return invalid("min_max_age is above max_max_age");
        }
        if self.retry_min.is_zero() || self.retry_min > self.retry_max {
            return invalid("retry: min must be above zero and at most max");
        }
        if self.timeout.is_zero() {
            return invalid("timeout is zero");
        }
        if self.max_body == 0 {
            return invalid("max_response_size is zero");
        }
        let source = match self.source {
            SourceSpec::Jwks(_) => Source::Jwks(uri),
            SourceSpec::Discover(issuer) => Source::Discover { issuer, uri },
        };
        let client: Arc<dyn HttpFetch> = match self.client {
            Some(client) => client,
            None => Arc::new(HyperFetch::new()?),
        };
        let allowed = self.allowed.unwrap_or_else(|| {
            let mut allowed = ASYMMETRIC_ALGORITHMS.to_vec();
            if self.allow_symmetric {
                allowed.extend(SYMMETRIC);
            }
            allowed
        });
        let config = Config {
            source,
            label,
            client,
            allowed,
            allow_symmetric: self.allow_symmetric,
            allow_http: self.allow_http,
            max_age: self.max_age,
            min_max_age: self.min_max_age,
            max_max_age: self.max_max_age,
            cooldown: self.cooldown,
            timeout: self.timeout,
            stale_if_error: self.stale_if_error,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            max_body: self.max_body,
        };
        Ok(RemoteKeys::new(Cache::new(config)))
    }
}
