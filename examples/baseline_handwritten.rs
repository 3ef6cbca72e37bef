//! The hand-written reference server for the load test (`scripts/loadtest.sh`,
//! `BENCHMARKS.md`): what an application would write without this crate.
//!
//! An axum `middleware::from_fn` that reads `Authorization: Bearer`, runs
//! `jsonwebtoken::decode` (HS256, or ES256 with a static public key) with the same validation as the quickstart
//! (issuer, audience and `exp` required, 30 s leeway), and, when `REDIS_URL`
//! is set, sends one `EXISTS jwt:{<sub>}:deny:<jti>` per request on one
//! multiplexed Redis connection. `/me` answers the same JSON as the
//! quickstart's `/me`; `/bare` has no middleware at all.
//!
//! ```text
//! cargo run --release --example baseline_handwritten
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BASELINE_ADDR` | `127.0.0.1:3001` | listen address |
//! | `JWT_SECRET` | the quickstart's demo secret | HS256 secret |
//! | `REDIS_URL` | unset: no Redis | one `EXISTS` per request when set |
//! | `BASELINE_ES256_KEY` | unset: HS256 | a P-256 public key (PEM): verify ES256 tokens with it instead |
//! | `BASELINE_ISSUER` | the quickstart's issuer | the accepted `iss` |
//!
//! Tokens: `POST /login` on the quickstart (same secret, issuer and audience);
//! for ES256, `examples/mint_token.rs`.

#[path = "support/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

const ISSUER: &str = "tower-jwt-auth-quickstart";
const AUDIENCE: &str = "quickstart";
const DEMO_SECRET: &str = "quickstart-demo-secret-change-me-0123456789";

/// The claims the handler needs (the quickstart's `/me` fields).
#[derive(Debug, Clone, Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    exp: u64,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
    redis: Option<redis::aio::MultiplexedConnection>,
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
    )
        .into_response()
}

async fn auth(State(verifier): State<Arc<Verifier>>, mut req: Request, next: Next) -> Response {
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized();
    };
    let claims =
        match jsonwebtoken::decode::<TokenClaims>(token, &verifier.key, &verifier.validation) {
            Ok(data) => data.claims,
            Err(_) => return unauthorized(),
        };
    if let Some(conn) = &verifier.redis {
        let key = format!(
            "jwt:{{{}}}:deny:{}",
            claims.sub,
            claims.jti.as_deref().unwrap_or("")
        );
        let mut conn = conn.clone();
        let exists: Result<bool, _> = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await;
        match exists {
            Ok(false) => {}
            Ok(true) => return unauthorized(),
            Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    req.extensions_mut().insert(claims);
    next.run(req).await
}

async fn me(Extension(claims): Extension<TokenClaims>) -> Json<serde_json::Value> {
    Json(json!({
        "sub": claims.sub,
        "roles": claims.roles,
        "sid": claims.sid,
        "jti": claims.jti,
        "exp": claims.exp,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // With both jsonwebtoken backends compiled in (`--all-features`), none is
    // the default and `decode` would panic: pick aws-lc-rs explicitly.
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();

    let addr: SocketAddr = std::env::var("BASELINE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| DEMO_SECRET.into());

    let issuer = std::env::var("BASELINE_ISSUER").unwrap_or_else(|_| ISSUER.into());
    let (key, alg) = match std::env::var("BASELINE_ES256_KEY") {
        Ok(path) => (
            DecodingKey::from_ec_pem(&std::fs::read(path)?)?,
            Algorithm::ES256,
        ),
        Err(_) => (
            DecodingKey::from_secret(secret.as_bytes())?,
            Algorithm::HS256,
        ),
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    // Setting iss/aud does not make them required (jsonwebtoken #493).
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 30;

    let redis = match std::env::var("REDIS_URL") {
        Ok(url) => Some(
            redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        ),
        Err(_) => None,
    };
    let mode = match redis.is_some() {
        true => format!("{alg:?}, one EXISTS per request"),
        false => format!("{alg:?}, stateless"),
    };
    let verifier = Arc::new(Verifier {
        key,
        validation,
        redis,
    });

    let app = Router::new()
        .route("/me", get(me))
        .route_layer(middleware::from_fn_with_state(verifier, auth))
        .route("/bare", get(|| async { Body::from("ok") }));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "baseline_handwritten listening on http://{} ({mode})",
        listener.local_addr()?
    );
    // The quickstart's server (header-read timeout, connection cap), so that
    // a load test compares the middleware, not two servers.
    serve::serve(listener, app, Duration::from_secs(10), 1024, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
