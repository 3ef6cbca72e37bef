//! Role and scope checks after authentication: 403 `insufficient_scope`
//! ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{Anonymous, Authenticated};
use crate::error::AuthError;
use crate::layer::JwtAuth;

type Predicate<C> = Arc<dyn Fn(&Authenticated<C>) -> bool + Send + Sync>;

/// Layer that applies [`RequireService`]: requests whose claims fail the
/// predicate get 403 `insufficient_scope`. Apply it inside (after) [`JwtAuth`],
/// e.g. with axum's `route_layer`.
///
/// Made by [`JwtAuth::require`] (or [`JwtAuth::required`]). Rejections render
/// like those of the [`JwtAuth`] that ran before it, with its error handler.
///
/// The guard must run after the auth layer. In the wrong order
/// (`.layer(auth).layer(guard)` in axum, where the last layer runs first),
/// no layer has run when the guard sees the request: that is a configuration
/// error, answered with 500 and logged (once) as such, never a silent 401.
///
/// # Example
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_jwt_auth::{JwtAuth, Keys};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct MyClaims { roles: Vec<String> }
///
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap());
/// let admin = Router::new()
///     .route("/admin/kick", post(|| async { "done" }))
///     .route_layer(auth.require("admin role", |a| a.claims.roles.iter().any(|r| r == "admin")));
/// let app: Router = Router::new().merge(admin).layer(auth);
/// ```
pub struct RequireLayer<C> {
    predicate: Predicate<C>,
    what: Cow<'static, str>,
    misordered_logged: Arc<AtomicBool>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> Clone for RequireLayer<C> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            what: self.what.clone(),
            misordered_logged: self.misordered_logged.clone(),
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for RequireLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("what", &self.what)
            .finish()
    }
}

impl<C> JwtAuth<C> {
    /// A layer that lets through only requests whose claims satisfy
    /// `predicate`; others get 403 with `error_description` "`what`
    /// required". A request that an [`optional`](Self::optional) layer let
    /// through without a token gets 401.
    pub fn require<F>(&self, what: impl Into<Cow<'static, str>>, predicate: F) -> RequireLayer<C>
    where
        F: Fn(&Authenticated<C>) -> bool + Send + Sync + 'static,
    {
        RequireLayer {
            predicate: Arc::new(predicate),
            what: what.into(),
            misordered_logged: Arc::default(),
            _claims: PhantomData,
        }
    }

    /// A guard that lets through only tokens that grant `scope` (RFC 9068
    /// `scope`, or `scp`); others get 403 "scope `…` required".
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_jwt_auth::{JwtAuth, Keys};
    ///
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims {}
    ///
    /// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap());
    /// let app: Router = Router::new()
    ///     .route("/orders", get(|| async { "orders" }))
    ///     .route_layer(auth.require_scope("orders:read"))
    ///     .layer(auth);
    /// ```
    pub fn require_scope(&self, scope: impl Into<String>) -> RequireLayer<C> {
        let scope = scope.into();
        self.require(format!("scope `{scope}`"), move |auth| {
            auth.has_scope(&scope)
        })
    }

    /// A guard that lets through only requests with a verified token: the
    /// one way to mix public and protected routes on one router. Put the
    /// layer, [`optional`](Self::optional), on the whole router, and this
    /// guard on the routes that need a token (401 without one).
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_jwt_auth::{Claims, JwtAuth, Keys};
    ///
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims { sub: String }
    ///
    /// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap());
    /// let protected = Router::new()
    ///     .route("/me", get(|Claims(c): Claims<MyClaims>| async move { c.sub }))
    ///     .route_layer(auth.required());
    /// let app: Router = Router::new()
    ///     // Anyone; a token, when sent, must be valid.
    ///     .route("/", get(|c: Option<Claims<MyClaims>>| async move {
    ///         c.map_or("hello, stranger".to_owned(), |Claims(c)| format!("hello, {}", c.sub))
    ///     }))
    ///     .merge(protected)
    ///     .layer(auth.optional(true));
    /// ```
    pub fn required(&self) -> RequireLayer<C> {
        self.require("authentication", |_| true)
    }
}

impl<S, C> Layer<S> for RequireLayer<C> {
    type Service = RequireService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            layer: self.clone(),
        }
    }
}

/// Middleware that checks a predicate on the claims. See [`RequireLayer`].
pub struct RequireService<S, C> {
    inner: S,
    layer: RequireLayer<C>,
}

impl<S: Clone, C> Clone for RequireService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for RequireService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for RequireService<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: Send + Sync + 'static,
    ResBody: From<String> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (err, layer) = match req.extensions().get::<Authenticated<C>>() {
            Some(auth) if (self.layer.predicate)(auth) => {
                return RequireFuture {
                    kind: Kind::Inner {
                        future: self.inner.call(req),
                    },
                }
            }
            Some(auth) => (
                AuthError::insufficient_scope(format!("{} required", self.layer.what)),
                auth.layer.clone(),
            ),
            None => match req.extensions().get::<Anonymous>() {
                Some(Anonymous(layer)) => {
                    (AuthError::authentication_required(), Some(layer.clone()))
                }
                None => return self.misordered(),
            },
        };
        tracing::info!(kind = ?err.kind(), "request rejected: {}", err.description());
        let response = match layer {
            Some(layer) => layer.render(&err),
            None => err.to_response("api").map(ResBody::from),
        };
        RequireFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<S, C> RequireService<S, C> {
    /// No `JwtAuth<C>` ran before this guard: the layers are in the wrong
    /// order, or the route has no auth layer. A configuration error (500),
    /// logged once per guard.
    fn misordered<ResBody: From<String>, F>(&self) -> RequireFuture<F, ResBody> {
        let message = format!(
            "RequireLayer (\"{}\") saw a request that no JwtAuth<{}> authenticated: apply the \
             guard inside the auth layer (axum: `.route_layer(guard)` on the routes, then \
             `.layer(auth)`; the last `.layer` runs first)",
            self.layer.what,
            std::any::type_name::<C>()
        );
        if !self.layer.misordered_logged.swap(true, Ordering::Relaxed) {
            tracing::error!("{message}");
        }
        let mut response = Response::new(ResBody::from(message));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        RequireFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

pin_project! {
    /// Response future for [`RequireService`].
    pub struct RequireFuture<F, ResBody> {
        #[pin]
        kind: Kind<F, ResBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, ResBody> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<ResBody>> },
    }
}

impl<F, ResBody> fmt::Debug for RequireFuture<F, ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for RequireFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireFuture polled after completion"))),
        }
    }
}
