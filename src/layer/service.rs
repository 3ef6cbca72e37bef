//! [`JwtAuthService`]: the request path as a pipeline of named steps:
//! [`authenticate`] (extract and verify), [`decide`] (no store, near-cache,
//! breaker, or a store check), then the claims go into the request and the
//! inner service runs.

use std::borrow::Cow;
use std::fmt;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::claims::{Anonymous, Authenticated};
use crate::error::AuthError;
use crate::store::CheckRequest;

use super::config::{Config, FailureMode};
use super::future::{Check, ResponseFuture};
use super::{JwtAuth, Validator};

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
        let mut auth = match authenticate(config, self.auth.validator.as_ref(), req.headers()) {
            Ok(Some(auth)) => auth,
            Ok(None) => {
                req.extensions_mut().insert(Anonymous(config.clone()));
                return ResponseFuture::inner(self.inner.call(req));
            }
            Err(err) => return ResponseFuture::reject(config, err),
        };
        // Role guards behind this layer render their rejections as it does.
        auth.layer = Some(config.clone());
        let check = match decide(config, &auth) {
            Decision::Accept => {
                req.extensions_mut().insert(auth);
                return ResponseFuture::inner(self.inner.call(req));
            }
            Decision::Reject(err) => return ResponseFuture::reject(config, err),
            Decision::Check(check) => check,
        };
        let ticket = config.breaker.ticket();
        req.extensions_mut().insert(auth);
        // The future owns the service that was made ready; we keep a fresh clone.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::checking(check, ticket, ready, req, config.clone())
    }
}

/// Extract the token and verify it: `Ok(None)` when there is none and the
/// layer is [`optional`](JwtAuth::optional).
pub(super) fn authenticate<C: DeserializeOwned>(
    config: &Config,
    validator: Option<&Validator<C>>,
    headers: &HeaderMap,
) -> Result<Option<Authenticated<C>>, AuthError> {
    let token = match crate::source::extract(headers, &config.sources, config.rules.max_token_len)?
    {
        Some(token) => token,
        None if config.optional => return Ok(None),
        None => {
            return Err(AuthError::new(
                crate::ErrorKind::MissingToken,
                "no bearer token",
            ))
        }
    };
    let need_token_id = config.store.is_some();
    let auth = crate::verify::verify::<C>(token, &config.keys, &config.rules, need_token_id)?;
    if let Some(validator) = validator {
        validator(&auth)?;
    }
    Ok(Some(auth))
}

/// What to do with a verified token.
pub(super) enum Decision {
    /// Let it through without asking the store.
    Accept,
    /// Refuse it without asking the store (the breaker is open, fail closed).
    Reject(AuthError),
    /// Ask the store.
    Check(Check),
}

/// Decide whether the store must be asked about `auth`: not without a store,
/// nor on a near-cache hit; not while the breaker is open.
pub(super) fn decide<C>(config: &Config, auth: &Authenticated<C>) -> Decision {
    let Some(store) = &config.store else {
        return Decision::Accept;
    };
    let hints = config.hints.as_deref();
    if hints.is_some_and(|h| h.check_cached(auth.subject(), auth.token_id())) {
        return Decision::Accept;
    }
    if !config.breaker.allow() {
        config.counters.short_circuited();
        return match config.failure_mode {
            FailureMode::Closed => Decision::Reject(AuthError::store_unavailable(
                config.breaker.retry_after_secs(),
            )),
            FailureMode::Open => {
                config.counters.failed_open();
                tracing::warn!(
                    "revocation store circuit open: accepting token unchecked (fail open)"
                );
                Decision::Accept
            }
        };
    }
    // The store takes what it needs from the borrowed claims up front.
    let check = store.check(&CheckRequest {
        subject: Cow::Borrowed(auth.subject()),
        token_id: Cow::Borrowed(auth.token_id()),
        issued_at: auth.registered.iat,
        session_id: auth.registered.sid.as_deref().map(Cow::Borrowed),
        touch_interval: config.sessions.touch_interval(),
        idle_timeout: config.sessions.idle_timeout,
        marker_ttl: config.marker_ttl(),
        deadline: config.deadline,
    });
    Decision::Check(if hints.is_some_and(|h| h.bounds_check_time()) {
        Check::Bounded { check }
    } else {
        Check::Timed {
            check: tokio::time::timeout(config.deadline, check),
            deadline: config.deadline,
        }
    })
}
