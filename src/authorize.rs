//! Role and scope checks after authentication: 403 `insufficient_scope`
//! ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Authenticated;
use crate::error::{AuthError, ErrorKind};
use crate::layer::{Inner, JwtAuth};

type Predicate<C> = Arc<dyn Fn(&Authenticated<C>) -> bool + Send + Sync>;

/// Layer that applies [`RequireService`]: requests whose claims fail the
/// predicate get 403 `insufficient_scope`. Apply it inside (after) [`JwtAuth`],
/// e.g. with axum's `route_layer`.
///
/// Made by [`JwtAuth::require`], so rejections render like the layer's own.
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
    what: &'static str,
    config: Arc<Inner>,
    _claims: PhantomData<fn() -> C>,
}

impl<C> Clone for RequireLayer<C> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            what: self.what,
            config: self.config.clone(),
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
    /// `predicate`; others get 403 with `error_description` "`what` required".
    /// A request without claims (layer missing, or [`optional`](Self::optional)
    /// without token) gets 401.
    pub fn require<F>(&self, what: &'static str, predicate: F) -> RequireLayer<C>
    where
        F: Fn(&Authenticated<C>) -> bool + Send + Sync + 'static,
    {
        RequireLayer {
            predicate: Arc::new(predicate),
            what,
            config: self.inner.clone(),
            _claims: PhantomData,
        }
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
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let err = match req.extensions().get::<Authenticated<C>>() {
            Some(auth) if (self.layer.predicate)(auth) => {
                return RequireFuture {
                    kind: Kind::Inner {
                        future: self.inner.call(req),
                    },
                }
            }
            Some(_) => AuthError::insufficient_scope(format!("{} required", self.layer.what)),
            None => AuthError::new(ErrorKind::MissingToken, "authentication required"),
        };
        tracing::info!(kind = ?err.kind(), "request rejected: {}", err.description());
        RequireFuture {
            kind: Kind::Rejected {
                response: Some(self.layer.config.render(&err)),
            },
        }
    }
}

pin_project! {
    /// Response future for [`RequireService`].
    pub struct RequireFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<String>> },
    }
}

impl<F> fmt::Debug for RequireFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for RequireFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireFuture polled after completion")
                .map(ResBody::from))),
        }
    }
}
