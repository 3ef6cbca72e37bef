//! The quickstart server: login, sessions, logout, refresh, kick and ban over
//! HTTP, with tokens checked by `tower-jwt-auth`.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `QUICKSTART_ADDR` | `127.0.0.1:3000` | listen address |
//! | `JWT_SECRET` | a demo secret (warned about) | HS256 secret, at least 32 bytes |
//! | `REDIS_URL` | unset: `MemoryStore` | `redis://` or `rediss://` URL: `RedisStore` |
//! | `REDIS_CLUSTER_NODES` | unset | comma-separated `redis://` URLs of Redis Cluster nodes: `RedisStore` on the cluster (feature `redis-cluster`) |
//! | `REDIS_SENTINELS` | unset | comma-separated `host:port` of Redis Sentinels: `RedisStore` on the master they name (feature `redis-sentinel`) |
//! | `REDIS_MASTER_NAME` | `mymaster` | with `REDIS_SENTINELS`: the monitored master's name |
//! | `STATELESS` | `0` | `1`: no store at all, pure JWT validation |
//! | `NEAR_CACHE` | `0` | `1`: with Redis (any mode), cache verdicts locally (invalidated by pushed events) |
//! | `ACCESS_TTL_SECS` | `900` | access token lifetime |
//! | `MAX_DEVICES` | `3` | live sessions per user (oldest evicted) |
//! | `IDLE_TIMEOUT_SECS` | `1800` | session idle timeout |
//! | `LOGIN_RATE_PER_SEC` | `1` | `/login` and `/refresh` requests per second per client IP (one budget for both; a decimal such as `0.2` is fine; `0`: no limit); beyond it 429 with `Retry-After` |
//! | `LOGIN_BURST` | `10` | requests a client IP may send at once before `LOGIN_RATE_PER_SEC` applies |
//! | `HEADER_READ_TIMEOUT_SECS` | `10` (at least 1) | a connection that has not sent a whole request head this long after connecting (or after its previous response) is closed |
//! | `MAX_CONNECTIONS` | `1024` | open connections at most; further clients wait in the listen backlog |
//! | `OIDC_ISSUERS` | unset | comma-separated issuer URLs of identity providers whose access tokens are accepted beside our own (keys by OIDC discovery; feature `remote-keys`: `cargo run --example quickstart --features remote-keys`) |
//! | `OIDC_AUDIENCE` | `quickstart` | the audience (`aud`) remote tokens must carry |
//! | `JWKS_COOLDOWN_SECS` | `30` | after a fetch of a key set, how long an unknown `kid` is simply refused without another fetch |
//! | `JWKS_MAX_AGE_SECS` | `600` | how long a key set is fresh; a `Cache-Control: max-age` from the provider overrides it, down to 1 s |
//! | `JWKS_TIMEOUT_MS` | `5000` | timeout of one fetch (discovery or key set) |
//! | `REVOKE_CLIENT_ID` | `quickstart-client` (warned about) | the client of `POST /revoke` (RFC 7009, HTTP Basic) |
//! | `REVOKE_CLIENT_SECRET` | `quickstart-client-secret-change-me` (warned about) | its secret |
//! | `PUBLIC_URL` | unset: `http://` and the request's `Host` | the base URL DPoP proofs name in `htu` (e.g. `https://api.example.com` behind TLS or a proxy) |
//! | `METRICS` | `1` | `0`: no metrics and no `GET /metrics` (Prometheus text format, public) |
//! | `TOKEN_CACHE` | unset: the default | verified tokens kept (`0`: none); by default 4096 when remote issuers are set |
//! | `AUDIT_LOG` | `0` | `1`: every audit event (login, logout, kick, ban, ...) as one JSON object per line on stdout |
//!
//! `POST /backchannel-logout` takes OpenID Connect back-channel logout
//! tokens of our own issuer (audience `quickstart`) and of `OIDC_ISSUERS`
//! (audience `OIDC_AUDIENCE`).
//!
//! DPoP (RFC 9449) is on for every protected route: a token bound to a key
//! (`cnf.jkt`) needs `Authorization: DPoP` and a `DPoP` proof. `/login` and
//! `/refresh` bind the access token they issue to the key of the request's
//! `DPoP` proof when it carries one (`token_type: "DPoP"`).

#[path = "support/dpop.rs"]
mod dpop;
#[path = "support/observability.rs"]
mod observability;
#[path = "support/revocation_routes.rs"]
mod revocation_routes;
#[path = "support/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::{GovernorError, GovernorLayer};
use tower_jwt_auth::{
    Authenticated, Claims, JwtAuth, Keys, MemoryStore, RevocationStore, SessionError,
};

const ISSUER: &str = "tower-jwt-auth-quickstart";
const AUDIENCE: &str = "quickstart";
const DEMO_SECRET: &str = "quickstart-demo-secret-change-me-0123456789";

/// The claims of a quickstart token (besides the registered ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoClaims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Clone)]
struct App {
    auth: JwtAuth<DemoClaims>,
    stateful: bool,
}

/// The demo users: name, password, roles.
const USERS: &[(&str, &str, &[&str])] = &[
    ("alice", "alice-pw", &["user"]),
    ("admin", "admin-pw", &["admin"]),
];

fn roles_of(user: &str) -> Vec<String> {
    USERS
        .iter()
        .find(|(name, _, _)| *name == user)
        .map(|(_, _, roles)| roles.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default()
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => n,
            _ => {
                eprintln!("{name}={v:?} is not a number >= 0; using {default}");
                default
            }
        },
        Err(_) => default,
    }
}

fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn session_error(err: SessionError) -> Response {
    match err {
        SessionError::Banned { .. } => error(StatusCode::FORBIDDEN, "banned", "account is banned"),
        SessionError::LimitReached => error(
            StatusCode::CONFLICT,
            "session_limit",
            "too many active sessions",
        ),
        SessionError::RefreshReused => error(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "refresh token reused: session ended",
        ),
        SessionError::SessionEnded(end) => error(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            &format!("session ended: {}", end.code()),
        ),
        SessionError::InvalidRefreshToken | SessionError::InvalidOneTimeToken => error(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "invalid refresh token",
        ),
        SessionError::NotConfigured(what) => error(
            StatusCode::NOT_IMPLEMENTED,
            "not_available",
            &format!("not available in this mode ({what})"),
        ),
        SessionError::Store(e) => {
            tracing::warn!(error = %e, "store failed");
            let mut res = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again shortly",
            );
            res.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            res
        }
        other => {
            tracing::error!(error = %other, "session operation failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    device: Option<String>,
}

async fn login(
    State(app): State<App>,
    (method, uri, headers): (Method, Uri, HeaderMap),
    Json(req): Json<LoginRequest>,
) -> Response {
    let known = USERS
        .iter()
        .any(|(name, pw, _)| *name == req.username && *pw == req.password);
    if !known {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown user or wrong password",
        );
    }
    let claims = json!({ "roles": roles_of(&req.username) });
    let (claims, token_type) = match dpop::bind(&app.auth, &method, &uri, &headers, claims).await {
        Ok(bound) => bound,
        Err(res) => return res,
    };
    let sessions = app.auth.sessions();
    if !app.stateful {
        return match sessions.issue(&req.username, &claims) {
            Ok(token) => Json(json!({
                "access_token": token.token,
                "token_type": token_type,
                "expires_in": token.expires_in,
            }))
            .into_response(),
            Err(e) => session_error(e),
        };
    }
    let device = req.device.as_deref().unwrap_or("web");
    match sessions.login(&req.username, device, &claims).await {
        Ok(login) => Json(json!({
            "access_token": login.access_token,
            "token_type": token_type,
            "expires_in": login.expires_in,
            "refresh_token": login.refresh_token,
            "session_id": login.session_id,
        }))
        .into_response(),
        Err(e) => session_error(e),
    }
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(app): State<App>,
    (method, uri, headers): (Method, Uri, HeaderMap),
    Json(req): Json<RefreshRequest>,
) -> Response {
    // The proof first: a refresh that rotated the token and then failed
    // would lose the session.
    let (mut claims, token_type) =
        match dpop::bind(&app.auth, &method, &uri, &headers, json!({})).await {
            Ok(bound) => bound,
            Err(res) => return res,
        };
    let sessions = app.auth.sessions();
    let refreshed = match sessions.refresh(&req.refresh_token).await {
        Ok(r) => r,
        Err(e) => return session_error(e),
    };
    // Roles are looked up afresh: a refresh picks up role changes.
    claims["roles"] = json!(roles_of(&refreshed.subject));
    match sessions.issue_with_session(&refreshed.subject, Some(&refreshed.session_id), &claims) {
        Ok(access) => Json(json!({
            "access_token": access.token,
            "token_type": token_type,
            "expires_in": access.expires_in,
            "refresh_token": refreshed.refresh_token,
            "session_id": refreshed.session_id,
        }))
        .into_response(),
        Err(e) => session_error(e),
    }
}

async fn me(auth: Authenticated<DemoClaims>) -> Json<serde_json::Value> {
    Json(json!({
        "sub": auth.claims.sub,
        "iss": auth.registered.iss,
        "roles": auth.claims.roles,
        "sid": auth.registered.sid,
        "jti": auth.registered.jti,
        "exp": auth.registered.exp,
        "cnf_jkt": auth.registered.jkt,
    }))
}

async fn logout(State(app): State<App>, auth: Authenticated<DemoClaims>) -> Response {
    match app.auth.sessions().logout(&auth).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_error(e),
    }
}

async fn logout_all(State(app): State<App>, auth: Authenticated<DemoClaims>) -> Response {
    // A remote issuer's token logs out that issuer's subject only.
    match app.auth.sessions().logout_all(auth.store_subject()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_error(e),
    }
}

async fn sessions(State(app): State<App>, Claims(claims): Claims<DemoClaims>) -> Response {
    match app.auth.sessions().list(&claims.sub).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => session_error(e),
    }
}

async fn kick(State(app): State<App>, Path(sub): Path<String>) -> Response {
    match app.auth.sessions().kick_all(&sub).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_error(e),
    }
}

/// The longest ban the quickstart asks for: about a hundred years, the cap
/// the stores apply too. Longer requests are shortened to it.
const MAX_BAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `{"seconds": N}`; `{}` or `{"seconds": 0}` bans until lifted. Unknown
/// fields are refused, so a misspelt `seconds` does not ban for ever.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    #[serde(default)]
    seconds: Option<u64>,
}

async fn ban(
    State(app): State<App>,
    Path(sub): Path<String>,
    body: Result<Json<BanRequest>, JsonRejection>,
) -> Response {
    // A ban needs a readable JSON body: a missing, mistyped or malformed one
    // is refused (415, 400, 422) and bans no one.
    let Json(req) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                rejection.status(),
                "invalid_request",
                &rejection.body_text(),
            )
        }
    };
    let duration = req
        .seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s).min(MAX_BAN));
    match app.auth.sessions().ban(&sub, duration).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_error(e),
    }
}

async fn unban(State(app): State<App>, Path(sub): Path<String>) -> Response {
    match app.auth.sessions().unban(&sub).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_error(e),
    }
}

async fn store_from_env() -> Result<Option<Arc<dyn RevocationStore>>, Box<dyn std::error::Error>> {
    if env_flag("STATELESS") {
        return Ok(None);
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let list = |value: &str| -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let near_cache = env_flag("NEAR_CACHE");
    let chosen = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS"]
        .into_iter()
        .filter(|name| var(name).is_some())
        .collect::<Vec<_>>();
    if chosen.len() > 1 {
        return Err(format!("set only one of {}", chosen.join(", ")).into());
    }
    // Startup findings (eviction policy, persistence, auth) are logged by build().
    if let Some(nodes) = var("REDIS_CLUSTER_NODES") {
        #[cfg(feature = "redis-cluster")]
        {
            let nodes = list(&nodes);
            let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let store = tower_jwt_auth::store::RedisStoreBuilder::cluster(&nodes)
                .near_cache(near_cache)
                .build()
                .await?;
            eprintln!(
                "store: Redis Cluster via {} node(s), near-cache {near_cache}",
                nodes.len()
            );
            return Ok(Some(Arc::new(store)));
        }
        #[cfg(not(feature = "redis-cluster"))]
        {
            let _ = (nodes, list, near_cache);
            return Err(
                "REDIS_CLUSTER_NODES is set but the `redis-cluster` feature is off \
                        (cargo run --example quickstart --features redis-cluster)"
                    .into(),
            );
        }
    }
    if let Some(sentinels) = var("REDIS_SENTINELS") {
        #[cfg(feature = "redis-sentinel")]
        {
            let master = var("REDIS_MASTER_NAME").unwrap_or_else(|| "mymaster".to_owned());
            let sentinels = list(&sentinels);
            let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
            let store = tower_jwt_auth::store::RedisStoreBuilder::sentinel(&sentinels, &master)
                .near_cache(near_cache)
                .build()
                .await?;
            eprintln!(
                "store: Redis Sentinel master {master:?} via {} sentinel(s), near-cache {near_cache}",
                sentinels.len()
            );
            return Ok(Some(Arc::new(store)));
        }
        #[cfg(not(feature = "redis-sentinel"))]
        {
            let _ = (sentinels, list, near_cache);
            return Err(
                "REDIS_SENTINELS is set but the `redis-sentinel` feature is off \
                        (cargo run --example quickstart --features redis-sentinel)"
                    .into(),
            );
        }
    }
    if let Some(url) = var("REDIS_URL") {
        #[cfg(feature = "redis")]
        {
            let store = tower_jwt_auth::RedisStore::builder(&url)
                .near_cache(near_cache)
                .build()
                .await?;
            return Ok(Some(Arc::new(store)));
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (url, list, near_cache);
            return Err("REDIS_URL is set but the `redis` feature is off".into());
        }
    }
    let _ = list;
    Ok(Some(Arc::new(MemoryStore::new())))
}

/// `/login` and `/refresh`, limited per client IP (one budget for both)
/// unless `per_sec` is 0.
fn credential_routes(per_sec: f64, burst: u32) -> Router<App> {
    let routes = Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh));
    if per_sec <= 0.0 {
        return routes;
    }
    // One request's worth of budget comes back every 1/rate seconds.
    let period =
        Duration::from_secs_f64((1.0 / per_sec).min(86_400.0)).max(Duration::from_nanos(1));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst.max(1))
        .finish()
        .expect("period and burst are not zero");
    // The limiter keeps a cell per client IP: forget the idle ones now and
    // then, or a flood from many addresses grows it without bound.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    routes.route_layer(GovernorLayer::new(config).error_handler(|e| match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // The limiter's wait is rounded down to whole seconds: round up.
            let wait = wait_time.saturating_add(1);
            let mut res = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &format!("too many attempts; retry in {wait} s"),
            );
            res.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(wait));
            res
        }
        other => {
            tracing::error!(error = %other, "rate limiter failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }))
}

fn app(auth: JwtAuth<DemoClaims>, stateful: bool, rate: (f64, u32)) -> Router {
    let state = App {
        auth: auth.clone(),
        stateful,
    };
    let admin = Router::new()
        .route("/admin/users/{sub}/kick", post(kick))
        .route("/admin/users/{sub}/ban", put(ban).delete(unban))
        .route_layer(auth.require("admin role", |a: &Authenticated<DemoClaims>| {
            a.claims.roles.iter().any(|r| r == "admin")
        }));
    // route_layer: the token is asked for on these routes only, so an unknown
    // path is a 404, not a 401.
    let protected = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/sessions", get(sessions))
        .merge(admin)
        .route_layer(auth);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(credential_routes(rate.0, rate.1))
        .merge(revocation_routes::routes(&state.auth))
        .merge(protected)
        .with_state(state)
}

/// The identity providers of `OIDC_ISSUERS`, each found by discovery; their
/// keys are fetched on first use (the server starts while they are down).
#[cfg(feature = "remote-keys")]
fn remote_issuers_from_env(
    mut auth: JwtAuth<DemoClaims>,
) -> Result<JwtAuth<DemoClaims>, Box<dyn std::error::Error>> {
    use tower_jwt_auth::{RemoteIssuer, RemoteKeys};
    let audience = std::env::var("OIDC_AUDIENCE").unwrap_or_else(|_| AUDIENCE.to_owned());
    let issuers = std::env::var("OIDC_ISSUERS").unwrap_or_default();
    for issuer in issuers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let keys = RemoteKeys::discover(issuer)
            .cooldown(Duration::from_secs(env_u64("JWKS_COOLDOWN_SECS", 30)))
            .max_age(Duration::from_secs(env_u64("JWKS_MAX_AGE_SECS", 600)))
            .min_max_age(Duration::from_secs(1))
            .timeout(Duration::from_millis(env_u64("JWKS_TIMEOUT_MS", 5000)))
            .build()?;
        println!("accepting tokens of {issuer} for audience {audience}");
        auth = auth.remote_issuer(RemoteIssuer::new(issuer, keys).audience(audience.clone()));
    }
    Ok(auth)
}

#[cfg(not(feature = "remote-keys"))]
fn remote_issuers_from_env(
    auth: JwtAuth<DemoClaims>,
) -> Result<JwtAuth<DemoClaims>, Box<dyn std::error::Error>> {
    match std::env::var("OIDC_ISSUERS") {
        Ok(v) if !v.trim().is_empty() => Err(
            "OIDC_ISSUERS needs the remote-keys feature: cargo run --example quickstart --features remote-keys"
                .into(),
        ),
        _ => Ok(auth),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tower_jwt_auth=warn".into()),
        )
        .init();

    let addr: SocketAddr = std::env::var("QUICKSTART_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| {
        eprintln!("warning: JWT_SECRET is not set; using the public demo secret. Never do this in production.");
        DEMO_SECRET.into()
    });
    let store = store_from_env().await?;
    let stateful = store.is_some();
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let mode = if !stateful {
        "stateless (no store)".to_owned()
    } else {
        let backend = if set("REDIS_CLUSTER_NODES") {
            "RedisStore on Redis Cluster"
        } else if set("REDIS_SENTINELS") {
            "RedisStore via Redis Sentinel"
        } else if set("REDIS_URL") {
            "RedisStore"
        } else {
            "MemoryStore"
        };
        let cache = if backend != "MemoryStore" && env_flag("NEAR_CACHE") {
            " with near-cache"
        } else {
            ""
        };
        format!("{backend}{cache}")
    };

    // The recorder first: the layer registers its series with it.
    let scrape = observability::install();
    let mut auth = JwtAuth::<DemoClaims>::new(Keys::hs256(secret.as_bytes())?)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .access_token_ttl(Duration::from_secs(env_u64("ACCESS_TTL_SECS", 900)))
        .max_sessions(env_u64("MAX_DEVICES", 3) as u32)
        .idle_timeout(Duration::from_secs(env_u64("IDLE_TIMEOUT_SECS", 1800)));
    if let Some(store) = store {
        auth = auth.store_arc(store);
    }
    let mut auth = remote_issuers_from_env(auth)?;
    if let Ok(capacity) = std::env::var("TOKEN_CACHE") {
        auth = auth.token_cache(capacity.parse()?);
    }
    let auth = dpop::configure(auth)?;
    let auth = observability::instrument(auth, &scrape);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("tower-jwt-auth quickstart listening on http://{addr} ({mode})");
    println!("try:");
    println!("  curl -s -X POST http://{addr}/login -H 'content-type: application/json' -d '{{\"username\":\"alice\",\"password\":\"alice-pw\",\"device\":\"web\"}}'");
    println!("  TOKEN=...   # the access_token from above");
    println!("  curl -s http://{addr}/me -H \"authorization: Bearer $TOKEN\"");
    println!("  curl -s -X POST http://{addr}/logout -H \"authorization: Bearer $TOKEN\" -o /dev/null -w '%{{http_code}}\\n'");
    println!("  curl -s -i http://{addr}/me -H \"authorization: Bearer $TOKEN\"   # now 401 invalid_token");
    let rate = (
        env_f64("LOGIN_RATE_PER_SEC", 1.0),
        u32::try_from(env_u64("LOGIN_BURST", 10)).unwrap_or(u32::MAX),
    );
    let header_read_timeout = Duration::from_secs(env_u64("HEADER_READ_TIMEOUT_SECS", 10).max(1));
    let max_connections = usize::try_from(env_u64("MAX_CONNECTIONS", 1024)).unwrap_or(usize::MAX);
    serve::serve(
        listener,
        app(auth, stateful, rate).merge(observability::routes(scrape)),
        header_read_timeout,
        max_connections,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    Ok(())
}
