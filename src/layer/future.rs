//! The response future of [`JwtAuthService`](super::JwtAuthService): a
//! rejection, the inner service's future, or a store check then the inner
//! service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::{AuthError, ErrorKind};
use crate::store::{StoreError, StoreFuture, Verdict};

use super::config::{Config, FailureMode};
use super::service::Admitted;
use crate::keys::Keys;

/// The fetch of a remote issuer's keys a request waits for.
pub(super) type KeyFetch = Pin<Box<dyn Future<Output = Result<Arc<Keys>, AuthError>> + Send>>;

/// What a request does once its issuer's keys were fetched: verify with
/// them and be admitted (its claims put into it), or be refused.
pub(super) type Resume<B> =
    Box<dyn FnOnce(&mut Request<B>, Result<Arc<Keys>, AuthError>) -> Admitted + Send>;

pin_project! {
    /// Response future for [`JwtAuthService`](super::JwtAuthService).
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
    /// to the deadline itself (`CheckHints::bounds_check_time`).
    #[project = CheckProj]
    pub(super) enum Check {
        Bounded {
            check: StoreFuture<'static, Verdict>,
        },
        Timed {
            #[pin]
            check: tokio::time::Timeout<StoreFuture<'static, Verdict>>,
            deadline: Duration,
        },
        /// A DPoP proof's replay check, with the store check when one is
        /// due, run concurrently (`dpop::with_replay`).
        Proof {
            joined: Pin<Box<dyn Future<Output = Checked> + Send>>,
        },
    }
}

/// What a check found: the store's verdict, and for a DPoP proof whether
/// its `jti` was seen for the first time.
pub(super) type Checked = (
    Result<Verdict, StoreError>,
    Option<Result<bool, StoreError>>,
);

impl Future for Check {
    type Output = Checked;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckProj::Bounded { check } => check.as_mut().poll(cx).map(|v| (v, None)),
            CheckProj::Timed { check, deadline } => check
                .poll(cx)
                .map(|outcome| (outcome.unwrap_or(Err(StoreError::Timeout(*deadline))), None)),
            CheckProj::Proof { joined } => joined.as_mut().poll(cx),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Fetching {
            fetch: KeyFetch,
            resume: Option<Resume<B>>,
            pending: Option<(S, Request<B>)>,
            config: Arc<Config>,
        },
        Checking {
            #[pin]
            check: Check,
            pending: Option<(S, Request<B>)>,
            config: Arc<Config>,
            ticket: u64,
            // When the check started (metrics on only).
            started: Option<Instant>,
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
            State::Fetching { .. } => "fetching keys",
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
    pub(super) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(super) fn reject<ResBody>(config: &Config, err: AuthError) -> Self
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
        ResBody: From<String> + 'static,
    {
        log_rejection(config, &err);
        Self {
            state: State::Rejected {
                response: Some(config.render(&err)),
            },
        }
    }

    /// Wait for the issuer's keys, then go on as [`resume`](Resume) says.
    #[cfg_attr(not(feature = "remote-keys"), allow(dead_code))]
    pub(super) fn fetching(
        fetch: KeyFetch,
        resume: Resume<B>,
        service: S,
        req: Request<B>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Fetching {
                fetch,
                resume: Some(resume),
                pending: Some((service, req)),
                config,
            },
        }
    }

    /// Wait for `check`, then call `service` with `req` if the token stands.
    pub(super) fn checking(
        check: Check,
        ticket: u64,
        service: S,
        req: Request<B>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                pending: Some((service, req)),
                started: config.metrics.check_started(),
                config,
                ticket,
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
                StateProj::Fetching {
                    fetch,
                    resume,
                    pending,
                    config,
                } => {
                    let keys = ready!(fetch.as_mut().poll(cx));
                    let (mut service, mut req) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let resume = resume
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match resume(&mut req, keys) {
                        Admitted::Pass => State::Inner {
                            future: service.call(req),
                        },
                        Admitted::Reject(err) => {
                            log_rejection(config, &err);
                            State::Rejected {
                                response: Some(config.render(&err)),
                            }
                        }
                        Admitted::Check(check, ticket) => State::Checking {
                            check,
                            pending: Some((service, req)),
                            started: config.metrics.check_started(),
                            config: config.clone(),
                            ticket,
                        },
                    }
                }
                StateProj::Checking {
                    check,
                    pending,
                    config,
                    ticket,
                    started,
                } => {
                    let (outcome, replay) = ready!(check.poll(cx));
                    config.metrics.check_done(*started);
                    let (mut service, req) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let replayed =
                        replay.and_then(|r| super::dpop::judge_replay(config, r, *ticket));
                    match replayed.or_else(|| judge(config, outcome, *ticket, req.headers())) {
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

/// What a store's answer means for the request (whose `headers` tell
/// whether it used the `DPoP` scheme): `None` to go on, or the rejection
/// response.
fn judge<B: From<String> + 'static>(
    config: &Config,
    outcome: Result<Verdict, StoreError>,
    ticket: u64,
    headers: &http::HeaderMap,
) -> Option<Response<B>> {
    match outcome {
        Ok(Verdict::Valid) => {
            breaker_success(config);
            config.metrics.accepted(false);
            None
        }
        Ok(Verdict::Revoked(reason)) => {
            breaker_success(config);
            // Under the DPoP scheme, challenged with DPoP (RFC 9449 §7.1).
            let err = super::dpop::challenge(config, headers, AuthError::revoked(reason));
            log_rejection(config, &err);
            Some(config.render(&err))
        }
        Err(err) => store_failed(config, &err, ticket),
    }
}

/// Count a store failure; the response when failing closed, `None` when open.
pub(super) fn store_failed<B: From<String> + 'static>(
    config: &Config,
    err: &StoreError,
    ticket: u64,
) -> Option<Response<B>> {
    if config.breaker.failure(ticket) {
        config.metrics.breaker(true);
    }
    config.counters.store_failed();
    match config.failure_mode {
        FailureMode::Closed => {
            tracing::warn!(error = %err, "revocation store failed: rejecting with 503 (fail closed)");
            let err = AuthError::store_unavailable(config.breaker.retry_after_secs());
            config.metrics.refused(&err);
            Some(config.render(&err))
        }
        FailureMode::Open => {
            config.count_failed_open();
            tracing::warn!(error = %err, "revocation store failed: accepting token unchecked (fail open)");
            None
        }
    }
}

fn breaker_success(config: &Config) {
    if config.breaker.success() {
        config.metrics.breaker(false);
    }
}

/// Log and count a refused request.
pub(super) fn log_rejection(config: &Config, err: &AuthError) {
    config.metrics.refused(err);
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
