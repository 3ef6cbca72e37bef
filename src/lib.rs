//! A tower/axum middleware layer that makes JWTs revocable.
//!
//! [`JwtAuth`] extracts the bearer token, verifies it with `jsonwebtoken`
//! (per-key algorithm allowlist, `exp`/`nbf`/`iss`/`aud`, optional `typ`),
//! asks a [`RevocationStore`] whether the token, its session or its subject
//! has been revoked (with Redis, one plain command for a token that stands),
//! and puts [`Authenticated<C>`] into the request's extensions, where the
//! [`Claims<C>`] extractor takes it.
//!
//! Without a store it is a plain stateless JWT layer; with [`MemoryStore`]
//! (one process) or `RedisStore` (many) it adds logout, log out everywhere,
//! bans, sliding idle timeouts, kick-out, device limits and refresh-token
//! rotation through [`Sessions`].
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router, body::Body};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_jwt_auth::{Claims, JwtAuth, Keys, MemoryStore};
//!
//! #[derive(Clone, serde::Deserialize)]
//! struct MyClaims { sub: String, roles: Vec<String> }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
//!     .issuer("https://id.example.com")
//!     .audience("orders-api")
//!     .store(MemoryStore::new());
//!
//! let app = Router::new()
//!     .route("/me", get(|Claims(c): Claims<MyClaims>| async move { c.sub }))
//!     .layer(auth.clone());
//!
//! let login = auth.sessions().login("alice", "web", &serde_json::json!({ "roles": ["user"] })).await.unwrap();
//! let request = |token: &str| Request::get("/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Body::empty())
//!     .unwrap();
//!
//! let res = app.clone().oneshot(request(&login.access_token)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! auth.sessions().kick("alice", &login.session_id).await.unwrap();
//! let res = app.oneshot(request(&login.access_token)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("kicked"));
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it enables |
//! | --- | --- | --- |
//! | `axum` | yes | the [`Claims`] / [`Authenticated`] extractors (on `axum-core`) |
//! | `redis` | yes | `RedisStore` on `bb8-redis` |
//! | `aws_lc_rs` | yes | `jsonwebtoken`'s aws-lc-rs backend (about 3× faster RS256/ES256) |
//! | `rust_crypto` | no | `jsonwebtoken`'s pure-Rust backend instead |
//! | `redis-cluster` | no | `RedisStore::cluster`: Redis Cluster |
//! | `redis-sentinel` | no | `RedisStore::sentinel`: Redis Sentinel (master discovery, failover) |
//! | `redis-tls` | no | `rediss://` with rustls |
//! | `remote-keys` | no | [`RemoteKeys`]: key sets of identity providers (JWKS URL, OIDC discovery) over hyper + rustls |
//! | `metrics` | yes | [`JwtAuth::metrics`]: request outcomes, store latency, breaker, near-cache, session events through the `metrics` facade ([`metrics`] lists the series) |
//! | `test-util` | no | [`JwtAuth::test_token`] and friends for your own tests |
//!
//! # Responses
//!
//! Rejections follow [RFC 6750](https://www.rfc-editor.org/rfc/rfc6750): see
//! [`AuthError`] for the table of statuses and `WWW-Authenticate` values.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod audit;
mod authorize;
mod claims;
pub mod dpop;
mod error;
mod form;
mod keys;
mod layer;
pub mod metrics;
#[cfg(feature = "remote-keys")]
mod remote;
mod session;
mod source;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod trace;
mod util;
mod verify;

pub use audit::{AuditEvent, AuditSink, SessionEvent, AUDIT_QUEUE_CAPACITY};
pub use authorize::{RequireFuture, RequireLayer, RequireService};
#[cfg(feature = "axum")]
pub use claims::ClaimsRejection;
pub use claims::{Authenticated, Claims, RegisteredClaims};
pub use dpop::{Dpop, DpopConfigError, DpopProof};
pub use error::{AuthError, ErrorKind};
pub use form::MAX_FORM_LEN;
pub use jsonwebtoken::Algorithm;
pub use keys::{ConfigError, Keys, SkippedKey};
#[cfg(feature = "remote-keys")]
pub use layer::RemoteIssuer;
pub use layer::TokenCacheStats;
pub use layer::{
    BackchannelLogout, LogoutEffect, LogoutError, LogoutToken, Revoked, TokenRevocation,
    BACKCHANNEL_LOGOUT_EVENT, DEFAULT_LOGOUT_MAX_AGE,
};
pub use layer::{FailureMode, JwtAuth, JwtAuthService, ResponseFuture, RevokeError, Stats};
#[cfg(feature = "remote-keys")]
pub use remote::{
    FetchError, FetchFuture, HttpFetch, HyperFetch, KeysUnavailable, RemoteConfigError, RemoteKeys,
    RemoteKeysBuilder, RemoteStats,
};
pub use session::{IssuedToken, Login, Refreshed, SessionError, Sessions};
pub use source::{TokenSource, DEFAULT_MAX_TOKEN_LEN};
pub use store::{
    LimitPolicy, MemoryStore, RevocationReason, RevocationStore, SessionEnd, SessionInfo,
    SessionStore, StoreError,
};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreBuilder};
pub use verify::RegisteredClaim;

/// Parsing entry points exposed for fuzzing; not a stable API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::dpop::fuzz_proof as dpop_proof;
    pub use crate::source::parse_authorization;
    pub use crate::verify::{precheck, TokenParts};

    /// The value of `name` in a form body, as the endpoints read it (an
    /// error for a body they refuse).
    pub fn form_value(body: &[u8], name: &str) -> Result<Option<String>, &'static str> {
        let form = crate::form::Form::parse(body).map_err(|e| e.0)?;
        Ok(form.get(name).map(str::to_owned))
    }
}
