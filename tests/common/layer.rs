//! Driving a `JwtAuth` layer in tests: one request over a no-op inner service.

use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tower_jwt_auth::{AuthError, JwtAuth};

/// An accepted request.
pub const OK: (StatusCode, Option<&str>) = (StatusCode::OK, None);
/// A request rejected because its token was revoked.
pub const REVOKED: (StatusCode, Option<&str>) = (StatusCode::UNAUTHORIZED, Some("token_revoked"));

/// Send one request with `token` through the layer: the status and the
/// revocation reason, if any.
pub async fn call<C>(auth: &JwtAuth<C>, token: &str) -> (StatusCode, Option<&'static str>)
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let res = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }))
        .oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let reason = res.extensions().get::<AuthError>().and_then(|e| e.reason());
    (res.status(), reason)
}

/// A stateless token for `subject` with no extra claims.
pub fn issue<C: DeserializeOwned>(auth: &JwtAuth<C>, subject: &str) -> String {
    auth.sessions()
        .issue(subject, &serde_json::json!({}))
        .unwrap()
        .token
}

/// Wait (up to `bound`) until `token` is rejected as revoked; how long it took.
pub async fn rejected_within<C>(auth: &JwtAuth<C>, token: &str, bound: Duration) -> Duration
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let started = Instant::now();
    loop {
        let got = call(auth, token).await;
        if got == REVOKED {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "still {got:?} after {bound:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
