//! Getting a document over HTTP: the [`HttpFetch`] trait a user may
//! implement, our default client on hyper-util with rustls, and the checks
//! every response goes through (status 200, size limit, JSON).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, ACCEPT, AGE, CACHE_CONTROL, CONTENT_LENGTH, USER_AGENT};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::builderstates::WantsSchemes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;

use super::RemoteConfigError;
use crate::keys::ConfigError;

/// The future an [`HttpFetch`] returns.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Bytes>, FetchError>> + Send + 'a>>;

/// An HTTP client for [`RemoteKeys`](crate::RemoteKeys): bring your own for a
/// proxy, other TLS roots or client certificates. The default is
/// [`HyperFetch`].
///
/// An implementation sends a plain `GET` and must **not follow redirects**.
/// It answers with the response as received (any status: a non-200 is
/// refused by the caller), its body read whole; a body larger than `limit`
/// bytes is [`FetchError::TooLarge`]. It need not time out: the caller bounds
/// every fetch by its own deadline, dropping the future when it passes.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, Uri};
/// use tower_jwt_auth::{FetchError, FetchFuture, HttpFetch};
///
/// /// Serves one fixed JWK set, e.g. in tests.
/// struct Fixed(&'static str);
///
/// impl HttpFetch for Fixed {
///     fn get<'a>(&'a self, _url: &'a Uri, limit: usize) -> FetchFuture<'a> {
///         Box::pin(async move {
///             if self.0.len() > limit {
///                 return Err(FetchError::TooLarge(limit));
///             }
///             Ok(Response::new(Bytes::from_static(self.0.as_bytes())))
///         })
///     }
/// }
/// ```
pub trait HttpFetch: Send + Sync + 'static {
    /// `GET url`, the body read whole, at most `limit` bytes.
    fn get<'a>(&'a self, url: &'a Uri, limit: usize) -> FetchFuture<'a>;
}

/// Why a key set (or its discovery document) could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed: DNS, connection, TLS, protocol.
    #[error("request failed: {}", ErrorChain(&**.0))]
    Transport(Box<dyn StdError + Send + Sync>),
    /// No complete answer within the fetch deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A status other than 200 (redirects are not followed).
    #[error("HTTP status {0} (200 expected; redirects are not followed)")]
    Status(StatusCode),
    /// A body larger than the limit (bytes).
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// A body that is not JSON.
    #[error("response is not JSON: {0}")]
    NotJson(String),
    /// A JSON document that is not a usable JWK set.
    #[error("{0}")]
    InvalidSet(#[source] ConfigError),
    /// A discovery document that cannot be used (issuer mismatch, no
    /// `jwks_uri`, an insecure `jwks_uri`).
    #[error("discovery: {0}")]
    Discovery(String),
}

impl FetchError {
    /// A transport failure of a custom [`HttpFetch`].
    pub fn transport(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Transport(error.into())
    }
}

/// An error and its sources, `a: b: c` (hyper's errors say little alone).
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

const USER_AGENT_VALUE: &str = concat!("tower-jwt-auth/", env!("CARGO_PKG_VERSION"));

/// The default [`HttpFetch`]: hyper-util's client over HTTP/1.1 with rustls
/// (TLS 1.2 and 1.3) and the Mozilla roots of `webpki-roots`; no proxy, no
/// redirects, connections kept for 30 s.
#[derive(Clone)]
pub struct HyperFetch {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl fmt::Debug for HyperFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperFetch").finish_non_exhaustive()
    }
}

impl HyperFetch {
    /// With the Mozilla roots and the crate's rustls crypto provider
    /// (aws-lc-rs with the `aws_lc_rs` feature, else the process default).
    ///
    /// # Errors
    ///
    /// [`RemoteConfigError::NoCryptoProvider`] without `aws_lc_rs` when no
    /// rustls provider is installed.
    pub fn new() -> Result<Self, RemoteConfigError> {
        let provider = crypto_provider()?;
        let builder = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| RemoteConfigError::Tls(e.to_string()))?;
        Ok(Self::from_builder(builder))
    }

    /// With your own rustls configuration (roots, client certificates);
    /// its ALPN list must be empty (set to HTTP/1.1 here).
    pub fn with_tls_config(config: rustls::ClientConfig) -> Self {
        Self::from_builder(HttpsConnectorBuilder::new().with_tls_config(config))
    }

    fn from_builder(builder: HttpsConnectorBuilder<WantsSchemes>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // Which schemes may be used is decided before a request (https
        // only, but for loopback or an explicit opt-in).
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Self { client }
    }
}

fn crypto_provider() -> Result<Arc<CryptoProvider>, RemoteConfigError> {
    #[cfg(feature = "aws_lc_rs")]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(not(feature = "aws_lc_rs"))]
    {
        CryptoProvider::get_default()
            .cloned()
            .ok_or(RemoteConfigError::NoCryptoProvider)
    }
}

impl HttpFetch for HyperFetch {
    fn get<'a>(&'a self, url: &'a Uri, limit: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            let request = Request::get(url.clone())
                .header(ACCEPT, "application/json, application/jwk-set+json")
                .header(USER_AGENT, USER_AGENT_VALUE)
                .body(Empty::new())
                .map_err(FetchError::transport)?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(FetchError::transport)?;
            let (parts, body) = response.into_parts();
            if parts.status != StatusCode::OK {
                // Not read: it is refused whatever it says.
                return Ok(Response::from_parts(parts, Bytes::new()));
            }
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > limit as u64) {
                return Err(FetchError::TooLarge(limit));
            }
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        FetchError::TooLarge(limit)
                    } else {
                        FetchError::Transport(e)
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// `GET url` with `client`: the body of a 200 answer, at most `limit` bytes,
/// that is JSON, with the response's headers.
pub(crate) async fn get_json(
    client: &dyn HttpFetch,
    url: &Uri,
    limit: usize,
) -> Result<(Bytes, HeaderMap), FetchError> {
    let (parts, body) = client.get(url, limit).await?.into_parts();
    if parts.status != StatusCode::OK {
        return Err(FetchError::Status(parts.status));
    }
    if body.len() > limit {
        return Err(FetchError::TooLarge(limit));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map_err(|e| FetchError::NotJson(e.to_string()))?;
    Ok((body, parts.headers))
}

/// How long a response may be used by its `Cache-Control` (`max-age` less
/// `Age`; `no-cache` or `no-store`: zero), if it says.
pub(crate) fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok()) {
                    max_age = Some(secs);
                }
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|secs| Duration::from_secs(secs.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{HeaderMap, HeaderValue, AGE, CACHE_CONTROL};

    use super::cache_max_age;

    fn headers(pairs: &[(http::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cache_control_max_age() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(cache_max_age(&headers(&[])), None);
        assert_eq!(
            cache_max_age(&headers(&[(CACHE_CONTROL, "public, max-age=300")])),
            secs(300)
        );
        assert_eq!(
            cache_max_age(&headers(&[(
                CACHE_CONTROL,
                "Max-Age=\"60\", must-revalidate"
            )])),
            secs(60)
        );
        assert_eq!(
            cache_max_age(&headers(&[(CACHE_CONTROL, "max-age=300"), (AGE, "100")])),
            secs(200)
        );
        assert_eq!(
            cache_max_age(&headers(&[(CACHE_CONTROL, "max-age=300"), (AGE, "400")])),
            secs(0)
        );
        assert_eq!(
            cache_max_age(&headers(&[(CACHE_CONTROL, "no-store")])),
            secs(0)
        );
        assert_eq!(
            cache_max_age(&headers(&[
                (CACHE_CONTROL, "public"),
                (CACHE_CONTROL, "max-age=5")
            ])),
            secs(5)
        );
        assert_eq!(
            cache_max_age(&headers(&[(CACHE_CONTROL, "max-age=soon")])),
            None
        );
    }
}
