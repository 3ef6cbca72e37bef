//! Where a remote key set comes from and how one fetch of it goes: the
//! settled configuration, discovery while the `jwks_uri` is not known, the
//! JWK set read with the configured algorithms, its freshness from
//! `Cache-Control` within bounds, all within the fetch deadline.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;

use super::discovery::discover;
use super::fetch::{cache_max_age, get_json, FetchError, HttpFetch};
use crate::keys::Keys;

/// Where the key set comes from.
pub(crate) enum Source {
    /// A JWKS URL.
    Jwks(Uri),
    /// An issuer whose `jwks_uri` is found by discovery.
    Discover { issuer: String, uri: Uri },
}

/// Everything the builder settled.
pub(crate) struct Config {
    pub(super) source: Source,
    pub(super) label: String,
    pub(super) client: Arc<dyn HttpFetch>,
    pub(super) allowed: Vec<Algorithm>,
    pub(super) allow_symmetric: bool,
    pub(super) allow_http: bool,
    pub(super) max_age: Duration,
    pub(super) min_max_age: Duration,
    pub(super) max_max_age: Duration,
    pub(super) cooldown: Duration,
    pub(super) timeout: Duration,
    pub(super) stale_if_error: Duration,
    pub(super) retry_min: Duration,
    pub(super) retry_max: Duration,
    pub(super) max_body: usize,
}

/// The set fetched by a successful attempt, and for how long it is fresh.
pub(super) struct Fetched {
    pub(super) keys: Keys,
    pub(super) max_age: Duration,
}

/// One fetch of the set (discovery first when needed), bounded by the timeout.
pub(super) async fn fetch_keys(
    config: &Config,
    discovered: &Mutex<Option<Uri>>,
) -> Result<Fetched, FetchError> {
    let timeout = config.timeout;
    tokio::time::timeout(timeout, fetch_unbounded(config, discovered))
        .await
        .unwrap_or(Err(FetchError::Timeout(timeout)))
}

async fn fetch_unbounded(
    config: &Config,
    discovered: &Mutex<Option<Uri>>,
) -> Result<Fetched, FetchError> {
    let client = &*config.client;
    let url = match &config.source {
        Source::Jwks(url) => url.clone(),
        Source::Discover { issuer, uri } => {
            let known = lock(discovered).clone();
            match known {
                Some(url) => url,
                None => {
                    let url =
                        discover(client, issuer, uri, config.max_body, config.allow_http).await?;
                    tracing::debug!(issuer = %issuer, jwks_uri = %url, "JWKS: discovered");
                    *lock(discovered) = Some(url.clone());
                    url
                }
            }
        }
    };
    let result = fetch_set(config, &url).await;
    if result.is_err() {
        // Discover again next time: the provider may have moved its keys.
        *lock(discovered) = None;
    }
    result
}

async fn fetch_set(config: &Config, url: &Uri) -> Result<Fetched, FetchError> {
    let (body, headers) = get_json(&*config.client, url, config.max_body).await?;
    let json = std::str::from_utf8(&body).map_err(|e| FetchError::NotJson(e.to_string()))?;
    let keys = Keys::from_fetched_jwk_set(json, &config.allowed, config.allow_symmetric)
        .map_err(FetchError::InvalidSet)?;
    let max_age = cache_max_age(&headers).map_or(config.max_age, |age| {
        age.clamp(config.min_max_age, config.max_max_age)
    });
    Ok(Fetched { keys, max_age })
}

fn lock(discovered: &Mutex<Option<Uri>>) -> MutexGuard<'_, Option<Uri>> {
    discovered.lock().unwrap_or_else(PoisonError::into_inner)
}
