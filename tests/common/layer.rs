//! Driving a `JwtAuth` layer in tests: one request over a no-op inner service.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tower_jwt_auth::{AuthError, Authenticated, JwtAuth};

/// An accepted request.
pub const OK: (StatusCode, Option<&str>) = (StatusCode::OK, None);
/// A request rejected because its token was revoked.
pub const REVOKED: (StatusCode, Option<&str>) = (StatusCode::UNAUTHORIZED, Some("token_revoked"));

/// Send one request with `token` through the layer over a no-op inner
/// service: the claims the layer put into the request, or the rejection.
pub async fn claims_of<C>(
    auth: &JwtAuth<C>,
    token: &str,
) -> Result<Authenticated<C>, Response<String>>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(None));
    let inner_seen = seen.clone();
    let res = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(move |req: Request<String>| {
            let seen = inner_seen.clone();
            async move {
                let claims = req.extensions().get::<Authenticated<C>>().cloned();
                assert!(claims.is_some(), "inner service reached without claims");
                *seen.lock().unwrap() = claims;
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            }
        }))
        .oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    match res.status() {
        StatusCode::OK => Ok(seen.lock().unwrap().take().expect("claims seen")),
        _ => Err(res),
    }
}

/// Send one request with `token` through the layer: the status and the
/// revocation reason, if any.
pub async fn call<C>(auth: &JwtAuth<C>, token: &str) -> (StatusCode, Option<&'static str>)
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    match claims_of(auth, token).await {
        Ok(_) => (StatusCode::OK, None),
        Err(res) => {
            let reason = res.extensions().get::<AuthError>().and_then(|e| e.reason());
            (res.status(), reason)
        }
    }
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

/// `builder`'s store with the near-cache on or off (5 s entries, 10 000
/// tokens) and no startup checks: the near-cache and failover tests' store.
#[cfg(feature = "redis")]
pub async fn near_cache_store(
    builder: tower_jwt_auth::RedisStoreBuilder,
    near: bool,
) -> tower_jwt_auth::RedisStore {
    builder
        .near_cache_config(tower_jwt_auth::store::NearCacheConfig {
            max_age: Duration::from_secs(5),
            capacity: 10_000,
        })
        .near_cache(near)
        .startup_checks(false)
        .build()
        .await
        .unwrap()
}

/// A layer for the failover tests: HS256 with `secret`, a 300 ms store
/// deadline, and a breaker that never stays open (the tests measure the
/// store, not the breaker's cool-down).
#[cfg(feature = "redis")]
pub fn failover_auth(
    secret: &[u8],
    store: tower_jwt_auth::RedisStore,
) -> JwtAuth<serde_json::Value> {
    JwtAuth::new(tower_jwt_auth::Keys::hs256(secret).unwrap())
        .store(store)
        .store_deadline(Duration::from_millis(300))
        .circuit_breaker(u32::MAX, Duration::from_millis(1))
}
