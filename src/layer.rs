//! The layer, its service and its response future.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Authenticated;
use crate::error::{AuthError, ErrorKind};
use crate::keys::{ensure_crypto_provider, Keys};
use crate::source::TokenSource;
use crate::store::{CheckRequest, LimitPolicy, RevocationStore, StoreError, StoreFuture, Verdict};
use crate::verify::{RegisteredClaim, Rules};

type Validator<C> = Arc<dyn Fn(&Authenticated<C>) -> Result<(), AuthError> + Send + Sync>;
/// A response body of any type, told apart again by downcasting when the
/// service knows its own body type.
type AnyBody = Box<dyn Any + Send>;
type ErrorHandler = Arc<dyn Fn(&AuthError) -> Response<AnyBody> + Send + Sync>;

/// How long a store keeps an entry that must never wear off (a deny entry of
/// a token without `exp`): 100 years, the longest a ban can be.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What the layer does when the revocation store cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Reject with 503 and `Retry-After` (the default).
    #[default]
    Closed,
    /// Accept the (verified) token, log a warning and count it.
    Open,
}

/// Session settings used by [`Sessions`](crate::Sessions) and the check.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub(crate) max_sessions: u32,
    pub(crate) limit_policy: LimitPolicy,
    pub(crate) one_per_device: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) touch_interval: Option<Duration>,
    pub(crate) access_ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            max_sessions: 0,
            limit_policy: LimitPolicy::EvictOldest,
            one_per_device: false,
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(30 * 24 * 3600),
            touch_interval: None,
            access_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl SessionSettings {
    /// At most a quarter of the idle timeout, so a session in use never lapses.
    pub(crate) fn touch_interval(&self) -> Duration {
        let quarter = self.idle_timeout / 4;
        self.touch_interval.map_or(quarter, |t| t.min(quarter))
    }
}

/// Counters of store outcomes, shared by every clone of one [`JwtAuth`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) store_failures: AtomicU64,
    pub(crate) failed_open: AtomicU64,
    pub(crate) short_circuited: AtomicU64,
}

/// A snapshot of the layer's store counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Store checks that failed (error or deadline).
    pub store_failures: u64,
    /// Requests accepted without a store verdict (fail-open mode).
    pub failed_open: u64,
    /// Requests answered by the open circuit breaker without asking the store.
    pub short_circuited: u64,
}

/// A circuit breaker: after `threshold` consecutive failures the store is not
/// asked for `cooldown`; then one probe goes through, and a success closes it.
///
/// Requests that were already in flight when a failure was counted belong to
/// the same outage (one stall fails them all at once, e.g. 25 concurrent
/// checks missing the deadline together): they count once, so a single
/// hiccup does not open the breaker, while a dead store (every new request
/// fails) opens it after `threshold` waves.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// In µs since `epoch`: while open, when the next probe may go.
    open_until_us: AtomicU64,
    /// How many failures were ever counted: a check that sees it change
    /// while in flight belongs to an outage counted already.
    counted: AtomicU64,
    epoch: std::time::Instant,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until_us: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// What [`failure`](Self::failure) is given of a check: taken when it
    /// starts (an atomic load, no clock read on the way of every request).
    pub(crate) fn ticket(&self) -> u64 {
        self.counted.load(Ordering::Acquire)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The end of a cooldown that starts now.
    fn cooldown_end_us(&self) -> u64 {
        let cooldown = u64::try_from(self.cooldown.as_micros()).unwrap_or(u64::MAX);
        self.now_us().saturating_add(cooldown)
    }

    /// Whether a request may ask the store now.
    fn allow(&self) -> bool {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return true;
        }
        let until = self.open_until_us.load(Ordering::Acquire);
        // Past the cooldown, exactly one caller wins the probe.
        self.now_us() >= until
            && self
                .open_until_us
                .compare_exchange(
                    until,
                    self.cooldown_end_us(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Release);
        }
    }

    fn failure(&self, ticket: u64) {
        if self
            .counted
            .compare_exchange(ticket, ticket + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // In flight when a failure was counted (or counted concurrently):
            // the same outage.
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            self.open_until_us
                .store(self.cooldown_end_us(), Ordering::Release);
        }
    }

    fn retry_after_secs(&self) -> u64 {
        self.cooldown.as_secs().max(1)
    }
}

/// The configuration shared by every clone (not generic over the claims type).
pub(crate) struct Inner {
    pub(crate) keys: Keys,
    pub(crate) rules: Rules,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) realm: String,
    pub(crate) optional: bool,
    pub(crate) store: Option<Arc<dyn RevocationStore>>,
    pub(crate) deadline: Duration,
    pub(crate) failure_mode: FailureMode,
    pub(crate) breaker: Arc<Breaker>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) error_handler: Option<ErrorHandler>,
    pub(crate) sessions: SessionSettings,
    pub(crate) max_token_lifetime: Duration,
}

impl Clone for Inner {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            rules: self.rules.clone(),
            sources: self.sources.clone(),
            realm: self.realm.clone(),
            optional: self.optional,
            store: self.store.clone(),
            deadline: self.deadline,
            failure_mode: self.failure_mode,
            breaker: self.breaker.clone(),
            counters: self.counters.clone(),
            error_handler: self.error_handler.clone(),
            sessions: self.sessions.clone(),
            max_token_lifetime: self.max_token_lifetime,
        }
    }
}

impl Inner {
    /// The rejection response for `err`: the error handler's, when its body
    /// is the service's body type (or a `String`), else the default one.
    pub(crate) fn render<B: From<String> + 'static>(&self, err: &AuthError) -> Response<B> {
        let mut response = match &self.error_handler {
            Some(handler) => {
                let (parts, body) = handler(err).into_parts();
                match body.downcast::<B>() {
                    Ok(body) => Response::from_parts(parts, *body),
                    Err(body) => match body.downcast::<String>() {
                        Ok(body) => Response::from_parts(parts, B::from(*body)),
                        Err(_) => {
                            tracing::error!(
                                body = std::any::type_name::<B>(),
                                "JwtAuth error handler: its response body is neither the \
                                 service's body type nor a String; the default response is sent"
                            );
                            err.to_response(&self.realm).map(B::from)
                        }
                    },
                }
            }
            None => err.to_response(&self.realm).map(B::from),
        };
        response.extensions_mut().insert(err.clone());
        response
    }

    pub(crate) fn leeway(&self) -> Duration {
        Duration::from_secs(self.rules.leeway)
    }

    /// Sign `claims` with the configured signing key, `kid` and `typ`: the
    /// one place tokens are signed ([`Sessions`](crate::Sessions) and the
    /// test kit).
    pub(crate) fn sign(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, SignError> {
        let sign = self.keys.sign.as_ref().ok_or(SignError::NoSigningKey)?;
        let mut header = jsonwebtoken::Header::new(sign.algorithm);
        header.kid = sign.kid.clone();
        header.typ = Some(self.rules.typ.clone().unwrap_or_else(|| "JWT".to_owned()));
        jsonwebtoken::encode(&header, claims, &sign.key).map_err(SignError::Failed)
    }

    /// The longest lifetime any accepted token can have.
    pub(crate) fn max_lifetime(&self) -> Duration {
        self.max_token_lifetime.max(self.sessions.access_ttl)
    }

    fn sync_max_lifetime(&mut self) {
        self.rules.max_lifetime = self.max_lifetime().as_secs();
    }

    /// How long a deny entry for a token with this `exp` must live: until
    /// `exp` plus the leeway (`None`: already past, nothing to keep). Never
    /// longer than any token the verifier accepts can live, and, for a token
    /// without `exp` (accepted only when `exp` is not required), for as long as
    /// a store keeps anything ([`FOREVER`]).
    pub(crate) fn deny_ttl(&self, exp: Option<u64>, now_ms: u64) -> Option<Duration> {
        let Some(exp) = exp else {
            return Some(FOREVER);
        };
        let until_ms = exp.saturating_add(self.rules.leeway).saturating_mul(1000);
        let left = until_ms.checked_sub(now_ms).filter(|&ms| ms > 0)?;
        // An accepted token has exp <= iat + max_lifetime and iat <= now + leeway.
        let longest = self.max_lifetime() + self.leeway() * 2;
        Some(Duration::from_millis(left).min(longest))
    }

    /// How long session-end markers are kept: as long as an access token of the
    /// ended session can still be presented.
    pub(crate) fn marker_ttl(&self) -> Duration {
        self.sessions.access_ttl + self.leeway()
    }

    /// How long a not-before mark must be kept (`None`: for ever, when tokens
    /// without `exp` are accepted).
    pub(crate) fn not_before_ttl(&self) -> Option<Duration> {
        self.rules
            .required
            .contains(&RegisteredClaim::Exp)
            .then(|| self.max_lifetime() + self.leeway())
    }
}

fn log_rejection(err: &AuthError) {
    match err.kind() {
        ErrorKind::MissingToken => {
            tracing::debug!(kind = ?err.kind(), "request rejected: {}", err.description())
        }
        ErrorKind::StoreUnavailable => {
            tracing::warn!(kind = ?err.kind(), "request rejected: {}", err.description())
        }
        _ => tracing::info!(
            kind = ?err.kind(),
            reason = err.reason().unwrap_or(""),
            "request rejected: {}",
            err.description()
        ),
    }
}

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
    pub(crate) inner: Arc<Inner>,
    pub(crate) validator: Option<Validator<C>>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> Clone for JwtAuth<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: self.validator.clone(),
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for JwtAuth<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("keys", &self.inner.keys)
            .field("rules", &self.inner.rules)
            .field("sources", &self.inner.sources)
            .field("realm", &self.inner.realm)
            .field("store", &self.inner.store)
            .field("deadline", &self.inner.deadline)
            .field("failure_mode", &self.inner.failure_mode)
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($self:ident, |$inner:ident| $body:expr) => {{
        let mut this = $self;
        {
            let $inner = Arc::make_mut(&mut this.inner);
            $body;
        }
        this
    }};
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
            inner: Arc::new(Inner {
                keys,
                rules: Rules::default(),
                sources: vec![TokenSource::Bearer],
                realm: "api".to_owned(),
                optional: false,
                store: None,
                deadline: Duration::from_millis(100),
                failure_mode: FailureMode::Closed,
                breaker: Arc::new(Breaker::new(5, Duration::from_secs(1))),
                counters: Arc::default(),
                error_handler: None,
                sessions: SessionSettings::default(),
                max_token_lifetime: Duration::from_secs(24 * 3600),
            }),
            validator: None,
            _claims: PhantomData,
        }
    }

    /// Accept tokens from this issuer (`iss`). Configuring an issuer makes the
    /// claim required. Call again to accept several.
    #[must_use]
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        setter!(self, |i| i.rules.issuers.push(issuer.into()))
    }

    /// Accept tokens for this audience (`aud`). Configuring an audience makes
    /// the claim required: a token that omits `aud` is rejected. Call again to
    /// accept several.
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> Self {
        setter!(self, |i| i.rules.audiences.push(audience.into()))
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s). Revocations
    /// are kept this much longer than the token's `exp`.
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        setter!(self, |i| i.rules.leeway = leeway.as_secs())
    }

    /// These registered claims must be present (default: `exp`). Replaces the list.
    #[must_use]
    pub fn required_claims(self, claims: impl IntoIterator<Item = RegisteredClaim>) -> Self {
        setter!(self, |i| i.rules.required = claims.into_iter().collect())
    }

    /// Require the header `typ`, e.g. `at+jwt` (RFC 9068); compared
    /// case-insensitively, with or without `application/`.
    #[must_use]
    pub fn token_type(self, typ: impl Into<String>) -> Self {
        setter!(self, |i| i.rules.typ = Some(typ.into()))
    }

    /// Largest accepted token in bytes (default 8 KiB), checked before parsing.
    #[must_use]
    pub fn max_token_len(self, len: usize) -> Self {
        setter!(self, |i| i.rules.max_token_len = len)
    }

    /// Where tokens are read from, in order (default: only `Authorization: Bearer`).
    #[must_use]
    pub fn token_sources(self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        setter!(self, |i| i.sources = sources.into_iter().collect())
    }

    /// The `realm` of `WWW-Authenticate` challenges (default `api`).
    #[must_use]
    pub fn realm(self, realm: impl Into<String>) -> Self {
        setter!(self, |i| i.realm = realm.into())
    }

    /// Let requests without any token through, without claims (handlers take
    /// `Option<Claims<C>>`). A token that is present must still be valid.
    #[must_use]
    pub fn optional(self, optional: bool) -> Self {
        setter!(self, |i| i.optional = optional)
    }

    /// Check every verified token against this revocation store.
    #[must_use]
    pub fn store(self, store: impl RevocationStore) -> Self {
        self.store_arc(Arc::new(store))
    }

    /// Like [`store`](Self::store), for a store already behind an `Arc`.
    #[must_use]
    pub fn store_arc(self, store: Arc<dyn RevocationStore>) -> Self {
        setter!(self, |i| i.store = Some(store))
    }

    /// How long a store check may take before the failure mode applies (default 100 ms).
    #[must_use]
    pub fn store_deadline(self, deadline: Duration) -> Self {
        setter!(self, |i| i.deadline = deadline)
    }

    /// What happens when the store cannot answer (default [`FailureMode::Closed`]).
    #[must_use]
    pub fn failure_mode(self, mode: FailureMode) -> Self {
        setter!(self, |i| i.failure_mode = mode)
    }

    /// Open the circuit breaker after `failures` consecutive store failures, for
    /// `cooldown` (default 5 and 1 s); then one probe request tries the store.
    #[must_use]
    pub fn circuit_breaker(self, failures: u32, cooldown: Duration) -> Self {
        setter!(self, |i| i.breaker =
            Arc::new(Breaker::new(failures, cooldown)))
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
        setter!(self, |i| {
            i.max_token_lifetime = lifetime;
            i.sync_max_lifetime();
        })
    }

    /// Lifetime of access tokens issued by [`Sessions`](crate::Sessions) (default 15 min).
    #[must_use]
    pub fn access_token_ttl(self, ttl: Duration) -> Self {
        setter!(self, |i| {
            i.sessions.access_ttl = ttl;
            i.sync_max_lifetime();
        })
    }

    /// At most `n` live sessions per subject (default 0: no limit).
    #[must_use]
    pub fn max_sessions(self, n: u32) -> Self {
        setter!(self, |i| i.sessions.max_sessions = n)
    }

    /// What a login beyond [`max_sessions`](Self::max_sessions) does (default: evict the oldest).
    #[must_use]
    pub fn session_limit_policy(self, policy: LimitPolicy) -> Self {
        setter!(self, |i| i.sessions.limit_policy = policy)
    }

    /// One session per device label: a new login on `mobile` replaces the
    /// previous `mobile` session; other devices stay.
    #[must_use]
    pub fn one_session_per_device(self, on: bool) -> Self {
        setter!(self, |i| i.sessions.one_per_device = on)
    }

    /// A session ends after this long without an accepted request (default 30 min).
    #[must_use]
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        setter!(self, |i| i.sessions.idle_timeout = timeout)
    }

    /// A session ends this long after login, however used (default 30 days).
    #[must_use]
    pub fn session_lifetime(self, lifetime: Duration) -> Self {
        setter!(self, |i| i.sessions.lifetime = lifetime)
    }

    /// Minimum time between two writes of a session's last-seen time (default
    /// and maximum: a quarter of the idle timeout).
    #[must_use]
    pub fn touch_interval(self, interval: Duration) -> Self {
        setter!(self, |i| i.sessions.touch_interval = Some(interval))
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
        setter!(self, |i| i.error_handler = Some(handler))
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

    /// Verify (and sign) with these keys instead.
    #[must_use]
    pub fn with_keys(self, keys: Keys) -> Self {
        setter!(self, |i| i.keys = keys)
    }

    /// The keys (e.g. to check [`Keys::can_sign`]).
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The store, if one is configured.
    pub fn store_ref(&self) -> Option<&Arc<dyn RevocationStore>> {
        self.inner.store.as_ref()
    }

    /// Store failure counters.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            store_failures: c.store_failures.load(Ordering::Relaxed),
            failed_open: c.failed_open.load(Ordering::Relaxed),
            short_circuited: c.short_circuited.load(Ordering::Relaxed),
        }
    }

    /// Log out the token these claims came from (e.g. in a logout handler).
    ///
    /// # Errors
    ///
    /// When the store fails or none is set.
    pub async fn revoke_authenticated(&self, auth: &Authenticated<C>) -> Result<(), StoreError> {
        self.revoke_token_id(auth.subject(), auth.token_id(), auth.registered.exp)
            .await
    }

    pub(crate) async fn revoke_token_id(
        &self,
        subject: &str,
        token_id: &str,
        exp: Option<u64>,
    ) -> Result<(), StoreError> {
        let store = self.require_store()?;
        let Some(ttl) = self.inner.deny_ttl(exp, crate::store::unix_millis()) else {
            // Past exp + leeway the token is refused anyway: nothing to write.
            return Ok(());
        };
        store.deny_token(subject, token_id, ttl).await
    }

    /// Log out everywhere: every token of `subject` issued up to now (same
    /// second included) is rejected, and all its sessions end.
    ///
    /// # Errors
    ///
    /// When the store fails or none is set.
    pub async fn revoke_subject(&self, subject: &str) -> Result<(), StoreError> {
        let store = self.require_store()?;
        let now = crate::store::unix_millis() / 1000;
        store
            .revoke_subject(
                subject,
                now,
                self.inner.not_before_ttl(),
                self.inner.marker_ttl(),
            )
            .await
    }

    pub(crate) fn require_store(&self) -> Result<&Arc<dyn RevocationStore>, StoreError> {
        self.inner.store.as_ref().ok_or_else(|| {
            StoreError::Protocol("no revocation store configured on this JwtAuth".into())
        })
    }
}

impl<C: DeserializeOwned> JwtAuth<C> {
    /// Verify a token as a request would (signature and claims, not the store).
    ///
    /// # Errors
    ///
    /// The [`AuthError`] a request with this token would get.
    pub fn verify(&self, token: &str) -> Result<Authenticated<C>, AuthError> {
        let auth = crate::verify::verify(token, &self.inner.keys, &self.inner.rules, true)?;
        if let Some(validator) = &self.validator {
            validator(&auth)?;
        }
        Ok(auth)
    }

    /// Log out one token: it is rejected from now on, until it would have
    /// expired anyway. The token must verify; its id (`jti`, else SHA-256) is
    /// stored, never the token.
    ///
    /// # Errors
    ///
    /// [`RevokeError::Invalid`] for a token that does not verify (nothing to
    /// revoke), [`RevokeError::Store`] when the store fails or none is set.
    pub async fn revoke(&self, token: &str) -> Result<(), RevokeError> {
        let auth = crate::verify::verify::<serde::de::IgnoredAny>(
            token,
            &self.inner.keys,
            &self.inner.rules,
            true,
        )
        .map_err(RevokeError::Invalid)?;
        self.revoke_token_id(auth.subject(), auth.token_id(), auth.registered.exp)
            .await
            .map_err(RevokeError::Store)
    }
}

/// Why [`Inner::sign`] failed.
#[derive(Debug)]
pub(crate) enum SignError {
    NoSigningKey,
    Failed(jsonwebtoken::errors::Error),
}

/// Why [`JwtAuth::revoke`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The token does not verify, so there is nothing to revoke.
    #[error("token not revocable: {0}")]
    Invalid(#[source] AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Middleware that authenticates requests with a JWT. See [`JwtAuth`].
pub struct JwtAuthService<S, C> {
    inner: S,
    auth: JwtAuth<C>,
}

impl<S: Clone, C> Clone for JwtAuthService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for JwtAuthService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthService")
            .field("inner", &self.inner)
            .field("auth", &self.auth)
            .finish()
    }
}

impl<S, C> JwtAuthService<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for JwtAuthService<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    ResBody: From<String> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let inner = &self.auth.inner;
        let token = match crate::source::extract(
            req.headers(),
            &inner.sources,
            inner.rules.max_token_len,
        ) {
            Ok(Some(token)) => token,
            Ok(None) if inner.optional => {
                req.extensions_mut()
                    .insert(crate::claims::Anonymous(self.auth.inner.clone()));
                return ResponseFuture::inner(self.inner.call(req));
            }
            Ok(None) => {
                return ResponseFuture::reject(
                    inner,
                    AuthError::new(ErrorKind::MissingToken, "no bearer token"),
                );
            }
            Err(err) => return ResponseFuture::reject(inner, err),
        };
        let verified =
            crate::verify::verify::<C>(token, &inner.keys, &inner.rules, inner.store.is_some())
                .and_then(|auth| match &self.auth.validator {
                    Some(validator) => validator(&auth).map(|()| auth),
                    None => Ok(auth),
                });
        let mut auth = match verified {
            Ok(auth) => auth,
            Err(err) => return ResponseFuture::reject(inner, err),
        };
        auth.layer = Some(self.auth.inner.clone());

        // Accepted without a store round trip (and without a boxed future).
        let mut pass = |mut req: Request<B>, auth: Authenticated<C>| {
            req.extensions_mut().insert(auth);
            ResponseFuture::inner(self.inner.call(req))
        };
        let Some(store) = &inner.store else {
            return pass(req, auth);
        };
        // Near-cache hit.
        if store.check_cached(auth.subject(), auth.token_id()) {
            return pass(req, auth);
        }

        if !inner.breaker.allow() {
            inner
                .counters
                .short_circuited
                .fetch_add(1, Ordering::Relaxed);
            return match inner.failure_mode {
                FailureMode::Closed => ResponseFuture::reject(
                    inner,
                    AuthError::store_unavailable(inner.breaker.retry_after_secs()),
                ),
                FailureMode::Open => {
                    inner.counters.failed_open.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "revocation store circuit open: accepting token unchecked (fail open)"
                    );
                    pass(req, auth)
                }
            };
        }

        // The store takes what it needs from the borrowed claims up front.
        let check = store.check(&CheckRequest {
            subject: Cow::Borrowed(auth.subject()),
            token_id: Cow::Borrowed(auth.token_id()),
            issued_at: auth.registered.iat,
            session_id: auth.registered.sid.as_deref().map(Cow::Borrowed),
            touch_interval: inner.sessions.touch_interval(),
            idle_timeout: inner.sessions.idle_timeout,
            marker_ttl: inner.marker_ttl(),
            deadline: inner.deadline,
        });
        let check = if store.bounds_check_time() {
            Check::Bounded { check }
        } else {
            Check::Timed {
                check: tokio::time::timeout(inner.deadline, check),
                deadline: inner.deadline,
            }
        };
        req.extensions_mut().insert(auth);
        // The future owns the service that was made ready; we keep a fresh clone.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Checking {
                check,
                ticket: inner.breaker.ticket(),
                pending: Some((ready, req)),
                config: self.auth.inner.clone(),
            },
        }
    }
}

pin_project! {
    /// Response future for [`JwtAuthService`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    /// A store check: under a timer of the layer's, unless the store keeps
    /// to the deadline itself ([`RevocationStore::bounds_check_time`]).
    #[project = CheckProj]
    enum Check {
        Bounded {
            check: StoreFuture<'static, Verdict>,
        },
        Timed {
            #[pin]
            check: tokio::time::Timeout<StoreFuture<'static, Verdict>>,
            deadline: Duration,
        },
    }
}

impl Future for Check {
    type Output = Result<Verdict, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckProj::Bounded { check } => check.as_mut().poll(cx),
            CheckProj::Timed { check, deadline } => check
                .poll(cx)
                .map(|outcome| outcome.unwrap_or(Err(StoreError::Timeout(*deadline)))),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Checking {
            #[pin]
            check: Check,
            pending: Option<(S, Request<B>)>,
            config: Arc<Inner>,
            ticket: u64,
        },
        Inner {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<S::Response>,
        },
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Checking { .. } => "checking",
            State::Inner { .. } => "inner",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    fn reject<ResBody>(config: &Inner, err: AuthError) -> Self
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
        ResBody: From<String> + 'static,
    {
        log_rejection(&err);
        Self {
            state: State::Rejected {
                response: Some(config.render(&err)),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: From<String> + 'static,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Checking {
                    check,
                    pending,
                    config,
                    ticket,
                } => {
                    let outcome = ready!(check.poll(cx));
                    let (mut service, req) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let failure = match outcome {
                        Ok(Verdict::Valid) => {
                            config.breaker.success();
                            None
                        }
                        Ok(Verdict::Revoked(reason)) => {
                            config.breaker.success();
                            let err = AuthError::revoked(reason);
                            log_rejection(&err);
                            Some(config.render(&err))
                        }
                        Err(err) => store_failed(config, &err, *ticket),
                    };
                    match failure {
                        Some(response) => State::Rejected {
                            response: Some(response),
                        },
                        None => State::Inner {
                            future: service.call(req),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// Count a store failure; the response when failing closed, `None` when open.
fn store_failed<B: From<String> + 'static>(
    config: &Inner,
    err: &StoreError,
    ticket: u64,
) -> Option<Response<B>> {
    config.breaker.failure(ticket);
    config
        .counters
        .store_failures
        .fetch_add(1, Ordering::Relaxed);
    match config.failure_mode {
        FailureMode::Closed => {
            tracing::warn!(error = %err, "revocation store failed: rejecting with 503 (fail closed)");
            let err = AuthError::store_unavailable(config.breaker.retry_after_secs());
            Some(config.render(&err))
        }
        FailureMode::Open => {
            config.counters.failed_open.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, "revocation store failed: accepting token unchecked (fail open)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn breaker_opens_after_threshold_and_lets_one_probe_through() {
        let breaker = Breaker::new(2, Duration::from_millis(0));
        assert!(breaker.allow());
        breaker.failure(breaker.ticket());
        assert!(breaker.allow());
        breaker.failure(breaker.ticket());
        // Cooldown 0: the next caller is the probe.
        assert!(breaker.allow());
        breaker.success();
        assert!(breaker.allow());

        let breaker = Breaker::new(1, Duration::from_secs(60));
        breaker.failure(breaker.ticket());
        assert!(!breaker.allow());
        assert!(!breaker.allow());
    }

    #[test]
    fn requests_in_flight_together_count_as_one_failure() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        // 25 checks start, then a stall fails them all.
        let started = breaker.ticket();
        for _ in 0..25 {
            breaker.failure(started);
        }
        assert!(breaker.allow(), "one stall opened the breaker");
        // A dead store: every new request fails too, wave after wave.
        for _ in 0..3 {
            breaker.failure(breaker.ticket());
        }
        assert!(!breaker.allow(), "a dead store did not open the breaker");
    }
}
