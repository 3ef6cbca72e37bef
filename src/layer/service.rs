//! [`JwtAuthService`]: the request path as a pipeline of named steps:
//! [`authenticate`] (extract, choose the issuer, verify), [`admit`] with
//! [`decide`] (no store, near-cache, breaker, or a store check; the claims
//! go into the request), then the inner service runs.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::claims::{Anonymous, Authenticated};
use crate::error::AuthError;
use crate::store::CheckRequest;

use super::config::{Config, FailureMode};
use super::future::{Check, ResponseFuture};
#[cfg(feature = "remote-keys")]
use super::future::{KeyFetch, Resume};
#[cfg(feature = "remote-keys")]
use super::issuers::RemoteKeysFor;
use super::token_cache::Origin;
use super::{JwtAuth, Validator};
#[cfg(feature = "remote-keys")]
use crate::keys::Keys;

/// Middleware that authenticates requests with a JWT. See [`JwtAuth`].
pub struct JwtAuthService<S, C> {
    pub(super) inner: S,
    pub(super) auth: JwtAuth<C>,
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
        let config = &self.auth.config;
        let auth = match authenticate(config, self.auth.validator.as_ref(), req.headers()) {
            Ok(Authn::Verified(auth)) => auth,
            Ok(Authn::Anonymous) => {
                config.metrics.accepted(true);
                req.extensions_mut().insert(Anonymous(config.clone()));
                return ResponseFuture::inner(self.inner.call(req));
            }
            #[cfg(feature = "remote-keys")]
            Ok(Authn::FetchKeys { index, fetch }) => {
                let (resume, config) = (self.auth.resume_after_fetch(index), config.clone());
                let ready = self.take_ready();
                return ResponseFuture::fetching(fetch, resume, ready, req, config);
            }
            Err(err) => {
                let err = super::dpop::challenge(config, req.headers(), err);
                return ResponseFuture::reject(config, err);
            }
        };
        match admit(config, auth, &mut req) {
            Admitted::Pass => ResponseFuture::inner(self.inner.call(req)),
            Admitted::Reject(err) => ResponseFuture::reject(config, err),
            Admitted::Check(check, ticket) => {
                let config = config.clone();
                let ready = self.take_ready();
                ResponseFuture::checking(check, ticket, ready, req, config)
            }
        }
    }
}

impl<S: Clone, C> JwtAuthService<S, C> {
    /// The service that was made ready, for a future to own; a fresh clone
    /// stays here.
    fn take_ready(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// The outcome of [`authenticate`].
// Lives on the stack for one match: boxing the claims would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Authn<C> {
    /// A verified token.
    Verified(Authenticated<C>),
    /// No token, and the layer is optional.
    Anonymous,
    /// A remote issuer's token with an unknown `kid`: its keys are being
    /// fetched (shared with every concurrent request).
    #[cfg(feature = "remote-keys")]
    FetchKeys { index: usize, fetch: KeyFetch },
}

/// Extract the token and verify it with the keys of its issuer.
pub(super) fn authenticate<C: DeserializeOwned + Clone + Send + Sync + 'static>(
    config: &Config,
    validator: Option<&Validator<C>>,
    headers: &HeaderMap,
) -> Result<Authn<C>, AuthError> {
    let Some(token) = config.token_in(headers)? else {
        return match config.optional {
            true => Ok(Authn::Anonymous),
            false => Err(missing_token()),
        };
    };
    if let Some(auth) = config.cached::<C>(token) {
        return validated(auth, validator).map(Authn::Verified);
    }
    // Several issuers: the token's `iss` chooses whose keys verify it.
    #[cfg(feature = "remote-keys")]
    if let Some((index, keys)) = config.remote_keys_of(token)? {
        return match keys {
            RemoteKeysFor::Ready(keys) => config
                .verify_remote(index, &keys, token, validator)
                .inspect(|auth| config.remember(token, auth, Origin::remote(index, &keys)))
                .map(Authn::Verified),
            RemoteKeysFor::Fetch(fetch) => Ok(Authn::FetchKeys {
                index,
                fetch: Box::pin(
                    async move { fetch.await.map_err(|e| super::issuers::unavailable(&e)) },
                ),
            }),
        };
    }
    let need_token_id = config.store.is_some();
    let auth = crate::verify::verify::<C>(token, &config.keys, &config.rules, need_token_id)?;
    validated(auth, validator)
        .inspect(|auth| config.remember(token, auth, Origin::Local))
        .map(Authn::Verified)
}

/// `auth`, once the application's own validation (if any) accepts it.
pub(super) fn validated<C>(
    auth: Authenticated<C>,
    validator: Option<&Validator<C>>,
) -> Result<Authenticated<C>, AuthError> {
    match validator {
        Some(validator) => validator(&auth).map(|()| auth),
        None => Ok(auth),
    }
}

/// The 401 for a request without a token, where one is needed.
fn missing_token() -> AuthError {
    AuthError::new(crate::ErrorKind::MissingToken, "no bearer token")
}

/// What happens to a verified token.
pub(super) enum Admitted {
    /// Its claims are in the request: call the inner service.
    Pass,
    /// Refused without asking the store.
    Reject(AuthError),
    /// Its claims are in the request: ask the store first (with this
    /// breaker ticket).
    Check(Check, u64),
}

/// Decide about a verified token and, unless it is refused, put its claims
/// into the request.
pub(super) fn admit<C, B>(
    config: &Arc<Config>,
    mut auth: Authenticated<C>,
    req: &mut Request<B>,
) -> Admitted
where
    C: Clone + Send + Sync + 'static,
{
    // Role guards behind this layer render their rejections as it does.
    auth.layer = Some(config.clone());
    config.metrics.verified(auth.subject());
    // RFC 9449: a DPoP-bound token stands only with its proof, whose `jti`
    // is checked beside the store check.
    let replay = match super::dpop::proof(config, &auth, req) {
        Ok(replay) => replay,
        Err(err) => return Admitted::Reject(err),
    };
    let decision = super::dpop::with_replay(config, decide(config, &auth), replay);
    let admitted = match decision {
        Decision::Accept => {
            config.metrics.accepted(false);
            Admitted::Pass
        }
        // Counted as failed open where it was decided.
        Decision::FailOpen => Admitted::Pass,
        Decision::Reject(err) => return Admitted::Reject(err),
        Decision::Check(check) => Admitted::Check(check, config.breaker.ticket()),
    };
    req.extensions_mut().insert(auth);
    admitted
}

#[cfg(feature = "remote-keys")]
impl<C> JwtAuth<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// What a request whose keys were being fetched does once they are
    /// there: verify with them, then as any request.
    fn resume_after_fetch<B>(&self, index: usize) -> Resume<B> {
        let auth = self.clone();
        Box::new(
            move |req: &mut Request<B>, keys: Result<Arc<Keys>, AuthError>| {
                let config = &auth.config;
                let verified = keys.and_then(|keys| {
                    let token = config.token_in(req.headers())?.ok_or_else(missing_token)?;
                    config.verify_remote(index, &keys, token, auth.validator.as_ref())
                });
                match verified {
                    Ok(verified) => admit(config, verified, req),
                    Err(err) => {
                        Admitted::Reject(super::dpop::challenge(config, req.headers(), err))
                    }
                }
            },
        )
    }
}

/// What to do with a verified token.
pub(super) enum Decision {
    /// Let it through without asking the store.
    Accept,
    /// Let it through unchecked: the breaker is open and the layer fails
    /// open (counted as such already).
    FailOpen,
    /// Refuse it without asking the store (the breaker is open, fail closed).
    Reject(AuthError),
    /// Ask the store.
    Check(Check),
}

/// The breaker is open: refuse (fail closed) or accept unchecked (open).
pub(super) fn short_circuit(config: &Config) -> Decision {
    config.counters.short_circuited();
    match config.failure_mode {
        FailureMode::Closed => Decision::Reject(AuthError::store_unavailable(
            config.breaker.retry_after_secs(),
        )),
        FailureMode::Open => {
            config.count_failed_open();
            tracing::warn!("revocation store circuit open: accepting token unchecked (fail open)");
            Decision::FailOpen
        }
    }
}

/// Decide whether the store must be asked about `auth`: not without a store,
/// nor on a near-cache hit; not while the breaker is open.
pub(super) fn decide<C>(config: &Config, auth: &Authenticated<C>) -> Decision {
    let Some(store) = &config.store else {
        return Decision::Accept;
    };
    let hints = config.hints.as_deref();
    if hints.is_some_and(|h| h.check_cached(auth.store_subject(), auth.token_id())) {
        config.metrics.near_cache_hit();
        return Decision::Accept;
    }
    config.metrics.near_cache_miss(hints);
    if !config.breaker.allow() {
        return short_circuit(config);
    }
    // The store takes what it needs from the borrowed claims up front.
    let request = CheckRequest {
        subject: Cow::Borrowed(auth.store_subject()),
        token_id: Cow::Borrowed(auth.token_id()),
        issued_at: auth.registered.iat,
        // A remote issuer's `sid` names its own session, not one of ours.
        session_id: match auth.is_remote() {
            false => auth.registered.sid.as_deref().map(Cow::Borrowed),
            true => None,
        },
        touch_interval: config.sessions.touch_interval(),
        idle_timeout: config.sessions.idle_timeout,
        marker_ttl: config.marker_ttl(),
        deadline: config.deadline,
    };
    // A remote issuer's `sid` may have ended by a back-channel logout.
    let check = match (auth.is_remote(), &auth.registered.iss, &auth.registered.sid) {
        (true, Some(iss), Some(sid)) => store.check_with_provider_session(&request, iss, sid),
        _ => store.check(&request),
    };
    Decision::Check(if hints.is_some_and(|h| h.bounds_check_time()) {
        Check::Bounded { check }
    } else {
        Check::Timed {
            check: tokio::time::timeout(config.deadline, check),
            deadline: config.deadline,
        }
    })
}
