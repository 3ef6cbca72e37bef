//! The layer: [`JwtAuth`] (its configuration and builder methods, here),
//! the service and its future, the circuit breaker, and the revocation API.
//!
//! - `config`: the shared configuration and what other modules ask of it;
//! - `service`: [`JwtAuthService`], the request path;
//! - `future`: [`ResponseFuture`];
//! - `breaker`: the circuit breaker and the store counters ([`Stats`]);
//! - `revoke`: [`JwtAuth::revoke`] and friends.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use serde::de::DeserializeOwned;
use tower_layer::Layer;

use crate::claims::Authenticated;
use crate::error::AuthError;
use crate::keys::{ensure_crypto_provider, Keys};
use crate::source::TokenSource;
use crate::store::{LimitPolicy, RevocationStore};
use crate::verify::RegisteredClaim;

mod backchannel;
mod breaker;
mod config;
mod dpop;
mod future;
#[cfg(feature = "remote-keys")]
mod issuers;
mod revocation;
mod revoke;
mod service;
mod signer;
mod token_cache;

pub use self::backchannel::{
    BackchannelLogout, LogoutEffect, LogoutError, LogoutToken, BACKCHANNEL_LOGOUT_EVENT,
    DEFAULT_LOGOUT_MAX_AGE,
};
pub use self::breaker::Stats;
pub use self::config::FailureMode;
pub(crate) use self::config::{Config, SignError};
pub use self::future::ResponseFuture;
#[cfg(feature = "remote-keys")]
pub use self::issuers::RemoteIssuer;
pub use self::revocation::{Revoked, TokenRevocation};
pub use self::revoke::RevokeError;
pub use self::service::JwtAuthService;
pub use self::token_cache::TokenCacheStats;

use self::breaker::Breaker;
use self::config::{AnyBody, ErrorHandler};

type Validator<C> = Arc<dyn Fn(&Authenticated<C>) -> Result<(), AuthError> + Send + Sync>;

/// Layer that applies [`JwtAuthService`], which verifies the request's JWT,
/// asks the revocation store whether it still stands, and puts
/// [`Authenticated<C>`] into the request's extensions.
///
/// Cheap to clone (an `Arc` inside): use it in `.layer(...)` and keep a clone
/// for [`revoke`](Self::revoke), [`revoke_subject`](Self::revoke_subject) and
/// [`sessions`](Self::sessions).
///
/// # Example
///
/// ```
/// use axum::{routing::get, Router, body::Body};
/// use http::{Request, StatusCode};
/// use tower::ServiceExt;
/// use tower_jwt_auth::{Claims, JwtAuth, Keys, MemoryStore};
///
/// #[derive(Clone, serde::Deserialize, serde::Serialize)]
/// struct MyClaims { sub: String }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .issuer("https://id.example.com")
///     .audience("orders-api")
///     .store(MemoryStore::new());
///
/// let app = Router::new()
///     .route("/me", get(|Claims(c): Claims<MyClaims>| async move { c.sub }))
///     .layer(auth.clone());
///
/// let token = auth.sessions().issue("alice", &serde_json::json!({})).unwrap().token;
/// let ok = app.clone().oneshot(
///     Request::get("/me").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
/// ).await.unwrap();
/// assert_eq!(ok.status(), StatusCode::OK);
///
/// auth.revoke(&token).await.unwrap();
/// let revoked = app.oneshot(
///     Request::get("/me").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
/// ).await.unwrap();
/// assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
pub struct JwtAuth<C> {
    pub(crate) config: Arc<Config>,
    validator: Option<Validator<C>>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> Clone for JwtAuth<C> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            validator: self.validator.clone(),
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for JwtAuth<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("keys", &self.config.keys)
            .field("rules", &self.config.rules)
            .field("sources", &self.config.sources)
            .field("realm", &self.config.realm)
            .field("store", &self.config.store)
            .field("deadline", &self.config.deadline)
            .field("failure_mode", &self.config.failure_mode)
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuth<C> {
    /// A layer that verifies tokens with `keys`; stateless until a
    /// [`store`](Self::store) is set.
    ///
    /// Defaults: token from `Authorization: Bearer`, at most 8 KiB; `exp`
    /// required; 30 s leeway; no issuer or audience check (set them);
    /// realm `api`; store deadline 100 ms, fail closed; circuit breaker after 5
    /// consecutive failures for 1 s.
    pub fn new(keys: Keys) -> Self {
        ensure_crypto_provider();
        crate::claims::register_claims_type::<C>();
        Self {
            config: Arc::new(Config::new(keys)),
            validator: None,
            _claims: PhantomData,
        }
    }

    /// Accept tokens from this issuer (`iss`). Configuring an issuer makes the
    /// claim required. Call again to accept several.
    #[must_use]
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.configure(|i| i.rules.issuers.push(issuer.into()))
    }

    /// Accept tokens for this audience (`aud`). Configuring an audience makes
    /// the claim required: a token that omits `aud` is rejected. Call again to
    /// accept several.
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.configure(|i| i.rules.audiences.push(audience.into()))
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s). Revocations
    /// are kept this much longer than the token's `exp`.
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        self.configure(|i| i.rules.leeway = leeway.as_secs())
    }

    /// These registered claims must be present (default: `exp`). Replaces the list.
    #[must_use]
    pub fn required_claims(self, claims: impl IntoIterator<Item = RegisteredClaim>) -> Self {
        self.configure(|i| i.rules.required = claims.into_iter().collect())
    }

    /// Require the header `typ`, e.g. `at+jwt` (RFC 9068); compared
    /// case-insensitively, with or without `application/`.
    #[must_use]
    pub fn token_type(self, typ: impl Into<String>) -> Self {
        self.configure(|i| i.rules.typ = Some(typ.into()))
    }

    /// Largest accepted token in bytes (default 8 KiB), checked before parsing.
    #[must_use]
    pub fn max_token_len(self, len: usize) -> Self {
        self.configure(|i| i.rules.max_token_len = len)
    }

    /// Where tokens are read from, in order (default: only `Authorization: Bearer`).
    #[must_use]
    pub fn token_sources(self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.configure(|i| i.sources = sources.into_iter().collect())
    }

    /// The `realm` of `WWW-Authenticate` challenges (default `api`).
    #[must_use]
    pub fn realm(self, realm: impl Into<String>) -> Self {
        self.configure(|i| i.realm = realm.into())
    }

    /// Let requests without any token through, without claims (handlers take
    /// `Option<Claims<C>>`). A token that is present must still be valid.
    #[must_use]
    pub fn optional(self, optional: bool) -> Self {
        self.configure(|i| i.optional = optional)
    }

    /// Check every verified token against this revocation store.
    #[must_use]
    pub fn store(self, store: impl RevocationStore) -> Self {
        self.store_arc(Arc::new(store))
    }

    /// Like [`store`](Self::store), for a store already behind an `Arc`.
    #[must_use]
    pub fn store_arc(self, store: Arc<dyn RevocationStore>) -> Self {
        self.configure(|i| i.set_store(store))
    }

    /// How long a store check may take before the failure mode applies (default 100 ms).
    #[must_use]
    pub fn store_deadline(self, deadline: Duration) -> Self {
        self.configure(|i| i.deadline = deadline)
    }

    /// What happens when the store cannot answer (default [`FailureMode::Closed`]).
    #[must_use]
    pub fn failure_mode(self, mode: FailureMode) -> Self {
        self.configure(|i| i.failure_mode = mode)
    }

    /// Open the circuit breaker after `failures` consecutive store failures, for
    /// `cooldown` (default 5 and 1 s); then one probe request tries the store.
    #[must_use]
    pub fn circuit_breaker(self, failures: u32, cooldown: Duration) -> Self {
        self.configure(|i| i.breaker = Arc::new(Breaker::new(failures, cooldown)))
    }

    /// The longest lifetime of any accepted token (default 24 h): a token
    /// whose `exp - iat` (or `exp - now` without `iat`) is longer is refused
    /// with 401 `invalid_token`, and a "log out everywhere" mark is kept this
    /// long (plus leeway). Raised to [`access_token_ttl`](Self::access_token_ttl)
    /// when that is longer, so the layer's own tokens always pass.
    ///
    /// A token without `iat` is held to `exp - now`: an issuer that omits
    /// `iat` must not mint tokens that live longer than this, or a "log out
    /// everywhere" mark can wear off before they expire.
    #[must_use]
    pub fn max_token_lifetime(self, lifetime: Duration) -> Self {
        self.configure(|i| {
            i.max_token_lifetime = lifetime;
            i.sync_max_lifetime();
        })
    }

    /// Lifetime of access tokens issued by [`Sessions`](crate::Sessions) (default 15 min).
    #[must_use]
    pub fn access_token_ttl(self, ttl: Duration) -> Self {
        self.configure(|i| {
            i.sessions.access_ttl = ttl;
            i.sync_max_lifetime();
        })
    }

    /// At most `n` live sessions per subject (default 0: no limit).
    #[must_use]
    pub fn max_sessions(self, n: u32) -> Self {
        self.configure(|i| i.sessions.max_sessions = n)
    }

    /// What a login beyond [`max_sessions`](Self::max_sessions) does (default: evict the oldest).
    #[must_use]
    pub fn session_limit_policy(self, policy: LimitPolicy) -> Self {
        self.configure(|i| i.sessions.limit_policy = policy)
    }

    /// One session per device label: a new login on `mobile` replaces the
    /// previous `mobile` session; other devices stay.
    #[must_use]
    pub fn one_session_per_device(self, on: bool) -> Self {
        self.configure(|i| i.sessions.one_per_device = on)
    }

    /// A session ends after this long without an accepted request (default 30 min).
    #[must_use]
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.configure(|i| i.sessions.idle_timeout = timeout)
    }

    /// A session ends this long after login, however used (default 30 days).
    #[must_use]
    pub fn session_lifetime(self, lifetime: Duration) -> Self {
        self.configure(|i| i.sessions.lifetime = lifetime)
    }

    /// Minimum time between two writes of a session's last-seen time (default
    /// and maximum: a quarter of the idle timeout).
    #[must_use]
    pub fn touch_interval(self, interval: Duration) -> Self {
        self.configure(|i| i.sessions.touch_interval = Some(interval))
    }

    /// Render rejections with your own function instead of the RFC 6750 JSON
    /// response. The [`AuthError`] is still added to the response's
    /// extensions, and [`require`](Self::require) guards behind this layer
    /// render with it too.
    ///
    /// The handler returns an `http::Response` with the body type of the
    /// service the layer wraps (with axum: anything `.into_response()`
    /// gives), or with a `String` body, which any body type that is
    /// `From<String>` takes.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{http::StatusCode, response::IntoResponse, routing::get, Json, Router};
    /// use tower_jwt_auth::{JwtAuth, Keys};
    ///
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims {}
    ///
    /// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
    ///     .with_error_handler(|err| {
    ///         let body = Json(serde_json::json!({ "message": err.description() }));
    ///         (err.status(), body).into_response()
    ///     });
    /// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(auth);
    /// ```
    #[must_use]
    pub fn with_error_handler<F, B>(self, handler: F) -> Self
    where
        F: Fn(&AuthError) -> Response<B> + Send + Sync + 'static,
        B: Send + 'static,
    {
        let handler: ErrorHandler =
            Arc::new(move |err| handler(err).map(|body| Box::new(body) as AnyBody));
        self.configure(|i| i.error_handler = Some(handler))
    }

    /// Validate the claims further after the signature and registered claims
    /// pass; return [`AuthError::invalid_token`] or
    /// [`AuthError::insufficient_scope`] to reject.
    #[must_use]
    pub fn validate_with<F>(mut self, validator: F) -> Self
    where
        F: Fn(&Authenticated<C>) -> Result<(), AuthError> + Send + Sync + 'static,
    {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// DPoP settings (RFC 9449; see [`crate::dpop`]): the public URL proofs
    /// name, the `iat` window, the algorithms. DPoP-bound tokens are held to
    /// the defaults without this.
    #[must_use]
    pub fn dpop(self, dpop: crate::dpop::Dpop) -> Self {
        self.configure(|i| i.dpop = dpop)
    }

    /// Verify (and sign) with these keys instead.
    #[must_use]
    pub fn with_keys(self, keys: Keys) -> Self {
        self.configure(|i| i.keys = keys)
    }

    /// The keys (e.g. to check [`Keys::can_sign`]).
    pub fn keys(&self) -> &Keys {
        &self.config.keys
    }

    /// The store, if one is configured.
    pub fn store_ref(&self) -> Option<&Arc<dyn RevocationStore>> {
        self.config.store.as_ref()
    }

    /// Store failure counters.
    pub fn stats(&self) -> Stats {
        self.config.counters.snapshot()
    }

    /// Keep up to `capacity` verified tokens (0: none), so that a token
    /// seen again is not verified again while it stands. On by default,
    /// for 4096 tokens, when the layer verifies asymmetric tokens (its keys
    /// or a remote issuer's); only RSA, ECDSA and EdDSA tokens are kept. A
    /// hit is as strict as a verification (the same bytes, within `exp`,
    /// `nbf` and the leeway, the issuer's key set unchanged since); the
    /// validator and the revocation store still run on every request. Any
    /// later builder call empties the cache. See `BENCHMARKS.md` for what
    /// it saves.
    #[must_use]
    pub fn token_cache(self, capacity: usize) -> Self {
        self.configure(|c| c.token_cache.set_capacity(capacity))
    }

    /// The verified-token cache's counters (`None` when it is off).
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.config.token_cache_stats()
    }
}

impl<C> JwtAuth<C> {
    /// Change the shared configuration (copied first if another clone holds it).
    pub(crate) fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let config = Arc::make_mut(&mut self.config);
        change(config);
        #[cfg(feature = "remote-keys")]
        config.sync_issuers();
        config.renew_token_cache();
        self
    }

    /// Also accept the tokens of this identity provider (feature
    /// `remote-keys`): a token whose `iss` is its issuer is verified with its
    /// keys and its audience, every other token as before. Call again for
    /// several.
    ///
    /// An unknown `kid` of its tokens fetches its key set (one fetch shared by
    /// every request, at most once per cooldown); while its keys cannot be
    /// had, its tokens get 503 with `Retry-After`, never 401.
    #[cfg(feature = "remote-keys")]
    #[must_use]
    pub fn remote_issuer(self, issuer: RemoteIssuer) -> Self {
        self.configure(|c| c.remote.push(issuer))
    }

    /// The subject under which the store keeps the revocations of `sub` at
    /// `issuer`: `sub` itself for the layer's own tokens (any issuer that is
    /// not a remote one), `NUL issuer NUL sub` for a remote issuer's. For
    /// administrative calls (`revoke_subject`, `ban`) about a remote
    /// issuer's user; see [`Authenticated::store_subject`].
    pub fn store_subject(&self, issuer: Option<&str>, sub: &str) -> String {
        #[cfg(feature = "remote-keys")]
        if let Some(index) = self.config.remote_issuer(issuer) {
            return self.config.remote[index].store_subject(sub);
        }
        let _ = issuer;
        sub.to_owned()
    }

    /// The configuration, for sessions, the role guard and the test kit.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

impl<C: DeserializeOwned> JwtAuth<C> {
    /// Verify a token as a request would (signature and claims, not the store).
    ///
    /// # Errors
    ///
    /// The [`AuthError`] a request with this token would get.
    pub fn verify(&self, token: &str) -> Result<Authenticated<C>, AuthError> {
        let auth = crate::verify::verify(token, &self.config.keys, &self.config.rules, true)?;
        service::validated(auth, self.validator.as_ref())
    }
}

impl<S, C> Layer<S> for JwtAuth<C> {
    type Service = JwtAuthService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService {
            inner,
            auth: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    #[allow(dead_code)]
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn layer_service_and_future_are_send_sync_where_they_must_be() {
        #[derive(Clone, serde::Deserialize)]
        struct C;
        type Svc = tower::util::BoxCloneSyncService<
            Request<String>,
            Response<String>,
            std::convert::Infallible,
        >;
        assert_send_sync::<JwtAuth<C>>();
        assert_send_sync::<JwtAuthService<Svc, C>>();
        fn assert_send<T: Send>() {}
        assert_send::<ResponseFuture<Svc, String>>();
    }
}
