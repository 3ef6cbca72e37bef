//! Memory cost of a revoked token and of a session, for sizing (`BENCHMARKS.md`).
//!
//! - `MemoryStore`: resident set growth for `N` deny entries (default 100 000),
//!   once with one revoked token per subject (the worst case: each entry also
//!   creates its subject) and once with all tokens under one subject; and for
//!   `N` sessions (one login per subject).
//! - `RedisStore` (when `REDIS_URL` is set): `MEMORY USAGE` of one deny key
//!   written by `JwtAuth::revoke`, and the `used_memory` growth for
//!   `REDIS_TOKENS` revocations (default 10 000) divided by their number; the
//!   same for sessions (`MEMORY USAGE` of a session hash and of the subject's
//!   session index, `used_memory` growth per login), and of the `fresh` key
//!   a session in use has between two touches.
//!   Use an empty database: the keys are left behind (deny entries expire
//!   with the tokens, sessions after their idle timeout).
//!
//! ```text
//! cargo run --release --example memory_sizing
//! REDIS_URL=redis://127.0.0.1:6379/15 cargo run --release --example memory_sizing
//! ```

use std::time::Duration;

use serde_json::json;
use tower_jwt_auth::{JwtAuth, Keys, MemoryStore, RevocationStore};

const SECRET: &[u8] = b"memory-sizing-secret-0123456789abcdef";
const ISSUER: &str = "tower-jwt-auth-quickstart";
const AUDIENCE: &str = "quickstart";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size in bytes (Linux `/proc/self/statm`), `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A token id shaped like the crate's own `jti` (16 random bytes, base64url: 22 chars).
fn jti(i: usize) -> String {
    format!("{i:0>22}")
}

/// RSS growth per entry; the store is returned so that the next measurement
/// cannot reuse its freed memory.
async fn memory_store(n: usize, distinct_subjects: bool) -> Option<(f64, MemoryStore)> {
    let subjects: Vec<String> = (0..n)
        .map(|i| {
            if distinct_subjects {
                format!("user-{i:07}")
            } else {
                "alice".to_owned()
            }
        })
        .collect();
    let ids: Vec<String> = (0..n).map(jti).collect();
    let store = MemoryStore::new();
    let ttl = Duration::from_secs(900 + 30);
    // Warm the allocator with a few entries, then measure.
    store.deny_token("warm-up", "warm-up", ttl).await.ok()?;
    let before = rss_bytes()?;
    for (subject, id) in subjects.iter().zip(&ids) {
        store.deny_token(subject, id, ttl).await.ok()?;
    }
    let after = rss_bytes()?;
    assert_eq!(store.len(), n + 1);
    Some((after.saturating_sub(before) as f64 / n as f64, store))
}

/// RSS growth per session for `n` logins, one subject each.
async fn memory_sessions(n: usize) -> Option<(f64, JwtAuth<serde_json::Value>)> {
    let subjects: Vec<String> = (0..n).map(|i| format!("user-{i:07}")).collect();
    let auth = JwtAuth::<serde_json::Value>::new(Keys::hs256(SECRET).ok()?)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .store(MemoryStore::new());
    let sessions = auth.sessions();
    let claims = json!({ "roles": ["user"] });
    sessions.login("warm-up", "web", &claims).await.ok()?;
    let before = rss_bytes()?;
    for subject in &subjects {
        sessions.login(subject, "web", &claims).await.ok()?;
    }
    let after = rss_bytes()?;
    Some((after.saturating_sub(before) as f64 / n as f64, auth))
}

async fn info_used_memory(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

async fn redis_store(url: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let store = tower_jwt_auth::RedisStore::builder(url)
        .startup_checks(false)
        .build()
        .await?;
    let auth = JwtAuth::<serde_json::Value>::new(Keys::hs256(SECRET)?)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .store(store);
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let sessions = auth.sessions();
    let claims = json!({ "roles": ["user"] });

    let one = sessions.issue("alice", &claims)?;
    auth.revoke(&one.token).await?;
    let key = format!("jwt:{{alice}}:deny:{}", one.jti);
    let usage: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut conn)
        .await?;
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await?;
    println!(
        "redis: MEMORY USAGE {key} = {} bytes (PTTL {ttl_ms} ms)",
        usage.map_or_else(|| "missing".to_owned(), |u| u.to_string())
    );

    let tokens: Vec<String> = (0..n)
        .map(|i| {
            sessions
                .issue(&format!("user-{i:07}"), &claims)
                .map(|t| t.token)
        })
        .collect::<Result<_, _>>()?;
    let before = info_used_memory(&mut conn).await?;
    for token in &tokens {
        auth.revoke(token).await?;
    }
    let after = info_used_memory(&mut conn).await?;
    println!(
        "redis: used_memory +{} bytes for {n} revoked tokens (one per subject) = {:.1} bytes per token",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64
    );

    let login = sessions.login("alice", "web", &claims).await?;
    // One request through the layer: the check sets the session's `fresh` key.
    let service = tower::Layer::layer(
        &auth,
        tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }),
    );
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {}", login.access_token))
        .body(String::new())?;
    let response = tower::ServiceExt::oneshot(service, request).await?;
    assert_eq!(response.status(), http::StatusCode::OK);
    for (what, key) in [
        (
            "a session's fresh key, while it is in use",
            format!("jwt:{{alice}}:fresh:{}", login.session_id),
        ),
        (
            "session hash",
            format!("jwt:{{alice}}:session:{}", login.session_id),
        ),
        (
            "session index (ZSET, one session)",
            "jwt:{alice}:sessions".to_owned(),
        ),
    ] {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        println!(
            "redis: MEMORY USAGE {key} ({what}) = {} bytes",
            usage.map_or_else(|| "missing".to_owned(), |u| u.to_string())
        );
    }
    let before = info_used_memory(&mut conn).await?;
    for i in 0..n {
        sessions
            .login(&format!("session-user-{i:07}"), "web", &claims)
            .await?;
    }
    let after = info_used_memory(&mut conn).await?;
    println!(
        "redis: used_memory +{} bytes for {n} sessions (one per subject) = {:.1} bytes per session",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_usize("N", 100_000);
    let mut keep = Vec::new();
    let mut keep_auth = None;
    match memory_store(n, true).await {
        Some((per, store)) => {
            println!("memory: RSS +{per:.1} bytes per deny entry ({n} entries, one subject each)");
            keep.push(store);
        }
        None => println!("memory: RSS not available on this platform"),
    }
    if let Some((per, store)) = memory_store(n, false).await {
        println!("memory: RSS +{per:.1} bytes per deny entry ({n} entries, all one subject)");
        keep.push(store);
    }
    if let Some((per, auth)) = memory_sessions(n).await {
        println!("memory: RSS +{per:.1} bytes per session ({n} logins, one subject each)");
        keep_auth = Some(auth);
    }
    if let Ok(url) = std::env::var("REDIS_URL") {
        redis_store(&url, env_usize("REDIS_TOKENS", 10_000)).await?;
    }
    drop((keep, keep_auth));
    Ok(())
}
