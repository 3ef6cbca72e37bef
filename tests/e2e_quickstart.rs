//! End-to-end tests of `examples/quickstart.rs` over HTTP: the project's
//! public contract (endpoints, JSON fields, environment variables), run
//! against the real example binary with `MemoryStore`, with `RedisStore`
//! (a private `redis-server`), and stateless.

mod common;

use std::time::Duration;

use common::http::{request, HttpResponse};
use common::quickstart::Quickstart;
use serde_json::{json, Value};

const DEMO_SECRET: &str = "quickstart-demo-secret-change-me-0123456789";

fn login(addr: &str, user: &str, password: &str, device: &str) -> Value {
    let res = request(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "username": user, "password": password, "device": device })),
    );
    assert_eq!(res.status, 200, "{res:?}");
    res.json()
}

fn access(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

fn me(addr: &str, token: &str) -> HttpResponse {
    request(addr, "GET", "/me", Some(token), None)
}

fn assert_rejected(res: &HttpResponse, reason: &str) {
    assert_eq!(res.status, 401, "{res:?}");
    let challenge = res.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body = res.json();
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

/// Mint a token with `jsonwebtoken` directly, as any other service would.
fn foreign_token(claims: Value) -> String {
    // Installs the crypto provider when several backends are compiled in.
    let _ = tower_jwt_auth::JwtAuth::<Value>::new(
        tower_jwt_auth::Keys::hs256(DEMO_SECRET.as_bytes()).unwrap(),
    );
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEMO_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every endpoint of the contract, in one story.
fn full_contract(env: &[(&str, &str)]) {
    let qs = Quickstart::start(env);
    let addr = qs.addr.as_str();

    let health = request(addr, "GET", "/health", None, None);
    assert_eq!(health.status, 200);

    let bad = request(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "username": "alice", "password": "nope", "device": "web" })),
    );
    assert_eq!(bad.status, 401);

    // Login: the fields of the contract.
    let first = login(addr, "alice", "alice-pw", "web");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    assert!(first["refresh_token"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let sid = first["session_id"].as_str().unwrap().to_owned();
    let token = access(&first);

    // The token's claims are the documented ones.
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["iss"], "tower-jwt-auth-quickstart");
    assert_eq!(claims["aud"], "quickstart");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["user"]));
    for field in ["iat", "exp", "jti", "sid"] {
        assert!(!claims[field].is_null(), "{field} missing in {claims}");
    }

    let res = me(addr, &token);
    assert_eq!(res.status, 200, "{res:?}");
    let body = res.json();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["sid"], sid.as_str());

    // No token, another scheme, a malformed header.
    let res = request(addr, "GET", "/me", None, None);
    assert_eq!(res.status, 401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let res = common::http::raw(
        addr,
        &format!("GET /me HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer a b\r\n\r\n"),
    );
    assert_eq!(res.status, 400);
    assert!(res
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_request"));

    // Any token signed with the secret and the right iss/aud is accepted.
    let foreign = foreign_token(json!({
        "sub": "carol", "iss": "tower-jwt-auth-quickstart", "aud": "quickstart",
        "iat": now(), "exp": now() + 300, "roles": ["auditor"],
    }));
    let res = me(addr, &foreign);
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["roles"], json!(["auditor"]));
    // ... and one that omits aud is not.
    let no_aud = foreign_token(json!({
        "sub": "carol", "iss": "tower-jwt-auth-quickstart", "iat": now(), "exp": now() + 300,
    }));
    assert_eq!(me(addr, &no_aud).status, 401);

    // Sessions listing.
    let second = login(addr, "alice", "alice-pw", "mobile");
    let res = request(addr, "GET", "/sessions", Some(&token), None);
    assert_eq!(res.status, 200);
    let list = res.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    for s in list {
        for field in ["session_id", "device", "created_at", "last_seen_at"] {
            assert!(!s[field].is_null(), "{field} missing in {s}");
        }
    }
    assert!(list.iter().any(|s| s["device"] == "mobile"));

    // Refresh rotates; reuse of the old refresh token ends the session.
    let refreshed = request(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": second["refresh_token"] })),
    );
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let refreshed = refreshed.json();
    assert_ne!(refreshed["refresh_token"], second["refresh_token"]);
    assert_eq!(refreshed["session_id"], second["session_id"]);
    assert_eq!(me(addr, &access(&refreshed)).status, 200);
    let reuse = request(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": second["refresh_token"] })),
    );
    assert_eq!(reuse.status, 401, "{reuse:?}");
    assert_rejected(&me(addr, &access(&refreshed)), "refresh_reuse");
    let again = request(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": refreshed["refresh_token"] })),
    );
    assert_eq!(again.status, 401, "{again:?}");

    // Logout: 204, then that token is rejected; the session is gone.
    let res = request(addr, "POST", "/logout", Some(&token), None);
    assert_eq!(res.status, 204);
    assert_rejected(&me(addr, &token), "token_revoked");
    let third = login(addr, "alice", "alice-pw", "web");
    let res = request(addr, "GET", "/sessions", Some(&access(&third)), None);
    let list = res.json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["session_id"] != sid.as_str()),
        "{list}"
    );

    // Logout everywhere: every token issued before now is rejected.
    let fourth = login(addr, "alice", "alice-pw", "tablet");
    let res = request(addr, "POST", "/logout-all", Some(&access(&third)), None);
    assert_eq!(res.status, 204);
    assert_rejected(&me(addr, &access(&third)), "logged_out_everywhere");
    assert_rejected(&me(addr, &access(&fourth)), "logged_out_everywhere");
    // A new login after the second boundary works again.
    std::thread::sleep(Duration::from_millis(1100));
    let fifth = login(addr, "alice", "alice-pw", "web");
    assert_eq!(me(addr, &access(&fifth)).status, 200);

    // Admin routes: 403 for a user, 204 for the admin.
    let admin = access(&login(addr, "admin", "admin-pw", "web"));
    let res = request(
        addr,
        "POST",
        "/admin/users/alice/kick",
        Some(&access(&fifth)),
        None,
    );
    assert_eq!(res.status, 403);
    assert!(res
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(res.json()["error"], "insufficient_scope");
    let res = request(addr, "POST", "/admin/users/alice/kick", Some(&admin), None);
    assert_eq!(res.status, 204);
    assert_rejected(&me(addr, &access(&fifth)), "kicked");

    // Ban: tokens rejected, login refused; unban restores.
    let sixth = login(addr, "alice", "alice-pw", "web");
    let res = request(
        addr,
        "PUT",
        "/admin/users/alice/ban",
        Some(&admin),
        Some(&json!({ "seconds": 0 })),
    );
    assert_eq!(res.status, 204);
    assert_rejected(&me(addr, &access(&sixth)), "banned");
    let res = request(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "username": "alice", "password": "alice-pw", "device": "web" })),
    );
    assert_ne!(res.status, 200, "a banned user logged in: {res:?}");
    let res = request(addr, "DELETE", "/admin/users/alice/ban", Some(&admin), None);
    assert_eq!(res.status, 204);
    let seventh = login(addr, "alice", "alice-pw", "web");
    assert_eq!(me(addr, &access(&seventh)).status, 200);

    // A timed ban ends by itself.
    let res = request(
        addr,
        "PUT",
        "/admin/users/alice/ban",
        Some(&admin),
        Some(&json!({ "seconds": 1 })),
    );
    assert_eq!(res.status, 204);
    std::thread::sleep(Duration::from_millis(1300));
    let eighth = login(addr, "alice", "alice-pw", "web");
    assert_eq!(me(addr, &access(&eighth)).status, 200);
}

/// The device limit and the idle timeout, from their environment variables.
fn limits(env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.extend([("MAX_DEVICES", "2"), ("IDLE_TIMEOUT_SECS", "2")]);
    let qs = Quickstart::start(&env);
    let addr = qs.addr.as_str();

    let a = login(addr, "alice", "alice-pw", "web");
    std::thread::sleep(Duration::from_millis(5));
    let b = login(addr, "alice", "alice-pw", "mobile");
    std::thread::sleep(Duration::from_millis(5));
    let c = login(addr, "alice", "alice-pw", "tablet");
    assert_rejected(&me(addr, &access(&a)), "replaced");
    assert_eq!(me(addr, &access(&b)).status, 200);
    assert_eq!(me(addr, &access(&c)).status, 200);
    let list = request(addr, "GET", "/sessions", Some(&access(&c)), None).json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // Activity keeps `c` alive past the idle timeout; `b` lapses.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(me(addr, &access(&c)).status, 200);
    }
    assert_rejected(&me(addr, &access(&b)), "idle_timeout");
}

#[test]
fn quickstart_serves_the_whole_contract_with_memory_store() {
    full_contract(&[]);
}

#[test]
fn quickstart_enforces_device_limit_and_idle_timeout_with_memory_store() {
    limits(&[]);
}

#[cfg(feature = "redis")]
mod with_redis {
    use super::*;
    use common::redis_server::RedisServer;

    #[test]
    fn quickstart_serves_the_whole_contract_with_redis_store() {
        let redis = RedisServer::start();
        full_contract(&[("REDIS_URL", &redis.url())]);
    }

    #[test]
    fn quickstart_enforces_device_limit_and_idle_timeout_with_redis_store() {
        let redis = RedisServer::start();
        limits(&[("REDIS_URL", &redis.url())]);
    }

    #[test]
    fn quickstart_serves_the_whole_contract_with_redis_and_near_cache() {
        let redis = RedisServer::start();
        full_contract(&[("REDIS_URL", &redis.url()), ("NEAR_CACHE", "1")]);
    }

    #[test]
    fn quickstart_enforces_device_limit_and_idle_timeout_with_near_cache() {
        let redis = RedisServer::start();
        limits(&[("REDIS_URL", &redis.url()), ("NEAR_CACHE", "1")]);
    }

    #[test]
    fn two_quickstarts_sharing_one_redis_see_each_others_logouts() {
        two_instances("0");
    }

    #[test]
    fn two_quickstarts_with_near_caches_see_each_others_logouts() {
        two_instances("1");
    }

    fn two_instances(near_cache: &str) {
        let redis = RedisServer::start();
        let url = redis.url();
        let a = Quickstart::start(&[("REDIS_URL", &url), ("NEAR_CACHE", near_cache)]);
        let b = Quickstart::start(&[("REDIS_URL", &url), ("NEAR_CACHE", near_cache)]);
        let login = login(&a.addr, "alice", "alice-pw", "web");
        let token = access(&login);
        assert_eq!(me(&b.addr, &token).status, 200);
        assert_eq!(
            request(&a.addr, "POST", "/logout", Some(&token), None).status,
            204
        );
        eventually_rejected(&b.addr, &token, "token_revoked");

        let other = access(&super::login(&b.addr, "alice", "alice-pw", "web"));
        let admin = access(&super::login(&b.addr, "admin", "admin-pw", "web"));
        assert_eq!(
            request(
                &b.addr,
                "POST",
                "/admin/users/alice/kick",
                Some(&admin),
                None
            )
            .status,
            204
        );
        eventually_rejected(&a.addr, &other, "kicked");
    }

    /// With a near-cache the other instance learns of a revocation by a pushed
    /// event: allow its delivery (documented bound: well under 100 ms).
    fn eventually_rejected(addr: &str, token: &str, reason: &str) {
        let deadline = std::time::Instant::now() + Duration::from_millis(100);
        loop {
            let res = me(addr, token);
            if res.status == 401 || std::time::Instant::now() > deadline {
                assert_rejected(&res, reason);
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn quickstart_runs_stateless_without_any_store() {
    let qs = Quickstart::start(&[("STATELESS", "1")]);
    let addr = qs.addr.as_str();
    let login = login(addr, "alice", "alice-pw", "web");
    assert_eq!(login["token_type"], "Bearer");
    let token = access(&login);
    let res = me(addr, &token);
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["sub"], "alice");
    // Tampering is still caught without a store.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(me(addr, &tampered).status, 401);
}

#[cfg(feature = "redis-cluster")]
mod with_redis_cluster {
    use super::*;
    use common::redis_cluster::RedisCluster;

    fn nodes(cluster: &RedisCluster) -> String {
        cluster.urls().join(",")
    }

    #[test]
    fn quickstart_serves_the_whole_contract_on_a_cluster_with_near_cache() {
        let cluster = RedisCluster::start_without_replicas();
        full_contract(&[
            ("REDIS_CLUSTER_NODES", &nodes(&cluster)),
            ("NEAR_CACHE", "1"),
        ]);
    }

    #[test]
    fn quickstart_enforces_device_limit_and_idle_timeout_on_a_cluster() {
        let cluster = RedisCluster::start_without_replicas();
        limits(&[("REDIS_CLUSTER_NODES", &nodes(&cluster))]);
    }
}

#[cfg(feature = "redis-sentinel")]
mod with_redis_sentinel {
    use super::*;
    use common::redis_sentinel::{SentinelGroup, MASTER_NAME};

    #[test]
    fn quickstart_serves_the_whole_contract_through_sentinel() {
        let group = SentinelGroup::start();
        let sentinels = group.sentinel_addrs().join(",");
        full_contract(&[
            ("REDIS_SENTINELS", &sentinels),
            ("REDIS_MASTER_NAME", MASTER_NAME),
            ("NEAR_CACHE", "1"),
        ]);
    }

    #[test]
    fn quickstart_enforces_device_limit_and_idle_timeout_through_sentinel() {
        let group = SentinelGroup::start();
        let sentinels = group.sentinel_addrs().join(",");
        limits(&[
            ("REDIS_SENTINELS", &sentinels),
            ("REDIS_MASTER_NAME", MASTER_NAME),
        ]);
    }
}
