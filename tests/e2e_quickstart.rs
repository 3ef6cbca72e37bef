//! End-to-end tests of `examples/quickstart.rs` over HTTP: the project's
//! public contract (endpoints, JSON fields, environment variables), run
//! against the real example binary with `MemoryStore`, with `RedisStore`
//! (a private `redis-server`), and stateless.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{access_token as access, login, request, send, HttpResponse};
use common::quickstart::Quickstart;
use serde_json::{json, Value};

const DEMO_SECRET: &str = "quickstart-demo-secret-change-me-0123456789";

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

/// Bug 10 of issue 12: a ban needs a readable JSON body. A missing,
/// mistyped or malformed one is refused and bans no one; `{}` still bans
/// until lifted; a ban longer than any clock is capped, not a panic.
fn ban_needs_a_readable_body(env: &[(&str, &str)]) {
    let qs = Quickstart::start(env);
    let addr = qs.addr.as_str();
    let admin = access(&login(addr, "admin", "admin-pw", "web"));
    let alice = access(&login(addr, "alice", "alice-pw", "web"));
    let path = "/admin/users/alice/ban";
    let json = Some("application/json");
    for (content_type, body, status) in [
        (None, "", 415),
        (None, r#"{"seconds": 0}"#, 415),
        (Some("text/plain"), r#"{"seconds": 0}"#, 415),
        (Some("application/x-www-form-urlencoded"), "seconds=0", 415),
        (json, "", 400),
        (json, "seconds=0", 400),
        (json, r#"{"seconds": 0"#, 400),
        (json, r#"{"secs": 60}"#, 422),
        (json, r#"{"seconds": -1}"#, 422),
        (json, r#"{"seconds": "forever"}"#, 422),
    ] {
        let res = send(addr, "PUT", path, Some(&admin), content_type, body);
        assert_eq!(res.status, status, "{content_type:?} {body:?}: {res:?}");
        assert_eq!(res.json()["error"], "invalid_request", "{res:?}");
        assert_eq!(
            me(addr, &alice).status,
            200,
            "{content_type:?} {body:?} banned alice"
        );
    }
    let alice = access(&login(addr, "alice", "alice-pw", "web"));

    // The documented contract: `{}` (like `{"seconds": 0}`) bans until lifted.
    let res = request(addr, "PUT", path, Some(&admin), Some(&json!({})));
    assert_eq!(res.status, 204, "{res:?}");
    assert_rejected(&me(addr, &alice), "banned");
    let refused = request(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "username": "alice", "password": "alice-pw" })),
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        request(addr, "DELETE", path, Some(&admin), None).status,
        204
    );

    // Bans longer than a hundred years are that long: applied, no panic.
    for seconds in [u64::MAX, 18_446_744_073_709_551, 100 * 366 * 24 * 3600] {
        let alice = access(&login(addr, "alice", "alice-pw", "web"));
        let res = request(
            addr,
            "PUT",
            path,
            Some(&admin),
            Some(&json!({ "seconds": seconds })),
        );
        assert_eq!(res.status, 204, "{seconds}: {res:?}");
        assert_rejected(&me(addr, &alice), "banned");
        let refused = request(
            addr,
            "POST",
            "/login",
            None,
            Some(&json!({ "username": "alice", "password": "alice-pw" })),
        );
        assert_eq!(refused.status, 403, "{seconds}: {refused:?}");
        assert_eq!(
            request(addr, "DELETE", path, Some(&admin), None).status,
            204
        );
    }
    let alice = access(&login(addr, "alice", "alice-pw", "web"));
    assert_eq!(me(addr, &alice).status, 200);
}

#[test]
fn quickstart_refuses_a_ban_without_a_readable_body_with_memory_store() {
    ban_needs_a_readable_body(&[]);
}

fn login_attempt(addr: &str, password: &str) -> HttpResponse {
    request(
        addr,
        "POST",
        "/login",
        None,
        Some(&json!({ "username": "alice", "password": password, "device": "web" })),
    )
}

fn assert_rate_limited(res: &HttpResponse) {
    assert_eq!(res.status, 429, "{res:?}");
    let retry_after: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {res:?}"));
    assert!((1..=3).contains(&retry_after), "{res:?}");
    assert_eq!(res.json()["error"], "rate_limited", "{res:?}");
}

/// `/login` and `/refresh` share one budget per client IP
/// (`LOGIN_RATE_PER_SEC`, `LOGIN_BURST`); beyond it 429 with `Retry-After`.
#[test]
fn quickstart_rate_limits_login_and_refresh_per_client_ip() {
    let qs = Quickstart::start(&[("LOGIN_RATE_PER_SEC", "0.5"), ("LOGIN_BURST", "3")]);
    let addr = qs.addr.as_str();

    // The burst: three wrong passwords are answered.
    for _ in 0..3 {
        assert_eq!(login_attempt(addr, "guess").status, 401);
    }
    // Beyond it even the right password is refused, and so is a refresh.
    assert_rate_limited(&login_attempt(addr, "alice-pw"));
    assert_rate_limited(&request(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": "garbage" })),
    ));
    // Other routes are not limited, and neither is another client IP.
    assert_eq!(request(addr, "GET", "/health", None, None).status, 200);
    let body = json!({ "username": "alice", "password": "alice-pw" }).to_string();
    let other = common::http::raw_from(
        "127.0.0.2".parse().unwrap(),
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(other.status, 200, "{other:?}");

    // One request's worth comes back every 2 s: then a good login works, once.
    std::thread::sleep(Duration::from_millis(2300));
    let res = login_attempt(addr, "alice-pw");
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(me(addr, &access(&res.json())).status, 200);
    assert_rate_limited(&login_attempt(addr, "alice-pw"));
}

/// Read until the server closes the connection; a reset counts as closed.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf) {
        Ok(_) => buf,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => buf,
        Err(e) => panic!("still open after 8 s ({e}); read {buf:?}"),
    }
}

/// A client that does not finish its request head within
/// `HEADER_READ_TIMEOUT_SECS` is disconnected: one that stalls mid request
/// line, one in its headers, one that sends nothing, and an idle keep-alive.
#[test]
fn quickstart_disconnects_clients_that_stall_before_a_whole_request_head() {
    let qs = Quickstart::start(&[("HEADER_READ_TIMEOUT_SECS", "1")]);
    let addr = qs.addr.as_str();
    let started = Instant::now();
    let mut stalled = Vec::new();
    for prefix in [
        "GET /health HT".to_owned(),
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: 1\r\n"),
        String::new(),
    ] {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(prefix.as_bytes()).unwrap();
        stalled.push((prefix, stream));
    }
    let mut keep_alive = TcpStream::connect(addr).unwrap();
    keep_alive
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();

    for (prefix, mut stream) in stalled {
        let got = read_until_closed(&mut stream);
        assert!(
            got.is_empty(),
            "{prefix:?} got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let got = String::from_utf8_lossy(&read_until_closed(&mut keep_alive)).into_owned();
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("\r\n\r\nok"),
        "{got:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}, the timeout is 1 s"
    );
    // The server still serves.
    assert_eq!(request(addr, "GET", "/health", None, None).status, 200);
}

/// `MAX_CONNECTIONS`: connections beyond it wait for a free slot (here freed
/// by the header-read timeout of two silent clients).
#[test]
fn quickstart_caps_open_connections() {
    let qs = Quickstart::start(&[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "2")]);
    let addr = qs.addr.as_str();
    // The harness's own probe connection may hold a slot for a moment.
    std::thread::sleep(Duration::from_millis(200));
    let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let res = request(addr, "GET", "/health", None, None);
    let waited = started.elapsed();
    assert_eq!(res.status, 200, "{res:?}");
    assert!(
        waited >= Duration::from_millis(1200) && waited < Duration::from_secs(6),
        "served after {waited:?}: the two silent clients held both slots for about 2 s"
    );
    drop(silent);
}

/// The token is asked for on the protected routes only: an unknown path is a
/// 404 with or without a token, and a protected one is still a 401 without.
#[test]
fn quickstart_answers_404_for_unknown_paths() {
    let qs = Quickstart::start(&[]);
    let addr = qs.addr.as_str();
    let alice = access(&login(addr, "alice", "alice-pw", "web"));
    for path in [
        "/nope",
        "/me/extra",
        "/admin",
        "/admin/users/alice",
        "/login/x",
    ] {
        for bearer in [None, Some(alice.as_str()), Some("not-a-token")] {
            let res = request(addr, "GET", path, bearer, None);
            assert_eq!(res.status, 404, "GET {path} with {bearer:?}: {res:?}");
        }
    }
    assert_eq!(me(addr, "not-a-token").status, 401);
    assert_eq!(request(addr, "GET", "/me", None, None).status, 401);
    let res = request(addr, "POST", "/admin/users/alice/kick", None, None);
    assert_eq!(res.status, 401, "{res:?}");
    let res = request(addr, "POST", "/admin/users/alice/kick", Some(&alice), None);
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(me(addr, &alice).status, 200);
}

/// A token of `carol` minted with the demo secret by someone else.
fn carol(iat: Option<u64>, exp: u64, jti: &str) -> String {
    let mut claims = json!({
        "sub": "carol", "iss": "tower-jwt-auth-quickstart", "aud": "quickstart",
        "exp": exp, "jti": jti, "roles": ["user"],
    });
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    foreign_token(claims)
}

fn assert_invalid_token(res: &HttpResponse, what: &str) {
    assert_eq!(res.status, 401, "{what}: {res:?}");
    assert_eq!(res.json()["error"], "invalid_token", "{what}: {res:?}");
}

/// Issue 12, bug 1: a huge `exp` is either refused, or a logout of it holds
/// (it used to panic in debug builds and answer 204 while writing nothing in
/// release builds, the token still accepted).
fn huge_exp_is_refused_or_truly_logged_out(env: &[(&str, &str)]) {
    let qs = Quickstart::start(env);
    let addr = qs.addr.as_str();
    for (n, exp) in [20_000_000_000_000_000, i64::MAX as u64, u64::MAX]
        .into_iter()
        .enumerate()
    {
        let token = carol(Some(now()), exp, &format!("huge-exp-{n}"));
        let res = me(addr, &token);
        if res.status == 401 {
            assert_invalid_token(&res, &format!("exp {exp}"));
            continue;
        }
        assert_eq!(res.status, 200, "exp {exp}: {res:?}");
        let out = request(addr, "POST", "/logout", Some(&token), None);
        assert_eq!(out.status, 204, "exp {exp}: {out:?}");
        assert_rejected(&me(addr, &token), "token_revoked");
    }
}

/// Issue 12, bug 2: a token living longer than `max_token_lifetime` (24 h by
/// default) is refused, with or without `iat`; one within it is accepted.
fn lifetime_beyond_the_maximum_is_refused(env: &[(&str, &str)]) {
    let qs = Quickstart::start(env);
    let addr = qs.addr.as_str();
    let within = carol(Some(now()), now() + 23 * 3600, "within-24h");
    assert_eq!(me(addr, &within).status, 200);
    let beyond = carol(Some(now()), now() + 48 * 3600, "beyond-24h");
    assert_invalid_token(&me(addr, &beyond), "exp = iat + 48 h");
    let beyond = carol(None, now() + 48 * 3600, "beyond-24h-no-iat");
    assert_invalid_token(&me(addr, &beyond), "exp = now + 48 h, no iat");
    let old_iat = carol(Some(now() - 25 * 3600), now() + 300, "old-iat");
    assert_invalid_token(&me(addr, &old_iat), "exp - iat = 25 h");
}

/// Issue 12, bug 3: a token issued in the future (beyond the leeway) is
/// refused, so it cannot outlive a log out everywhere.
fn future_iat_is_refused(env: &[(&str, &str)]) {
    let qs = Quickstart::start(env);
    let addr = qs.addr.as_str();
    let future = carol(Some(now() + 3600), now() + 7200, "future-iat");
    assert_invalid_token(&me(addr, &future), "iat = now + 1 h");
}

#[test]
fn quickstart_refuses_or_truly_logs_out_a_huge_exp_with_memory_store() {
    huge_exp_is_refused_or_truly_logged_out(&[]);
}

#[test]
fn quickstart_refuses_a_lifetime_beyond_the_maximum_with_memory_store() {
    lifetime_beyond_the_maximum_is_refused(&[]);
}

#[test]
fn quickstart_refuses_a_future_iat_with_memory_store() {
    future_iat_is_refused(&[]);
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
    fn quickstart_refuses_a_ban_without_a_readable_body_with_redis_store() {
        let redis = RedisServer::start();
        ban_needs_a_readable_body(&[("REDIS_URL", &redis.url())]);
    }

    #[test]
    fn quickstart_refuses_or_truly_logs_out_a_huge_exp_with_redis_store() {
        let redis = RedisServer::start();
        huge_exp_is_refused_or_truly_logged_out(&[("REDIS_URL", &redis.url())]);
    }

    #[test]
    fn quickstart_refuses_a_lifetime_beyond_the_maximum_with_redis_store() {
        let redis = RedisServer::start();
        lifetime_beyond_the_maximum_is_refused(&[("REDIS_URL", &redis.url())]);
    }

    #[test]
    fn quickstart_refuses_a_future_iat_with_redis_store() {
        let redis = RedisServer::start();
        future_iat_is_refused(&[("REDIS_URL", &redis.url())]);
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
