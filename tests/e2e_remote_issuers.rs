//! The quickstart with two real OpenID Providers (node's `oidc-provider`)
//! and its own HS256 tokens, over HTTP: `OIDC_ISSUERS`, `OIDC_AUDIENCE`,
//! `JWKS_*`; per-issuer subjects, rotation, outages and a start while an
//! identity provider is down. Run on the memory store and on Redis.
#![cfg(all(feature = "remote-keys", feature = "redis"))]

mod common;

use std::time::Duration;

use base64::Engine;
use common::http::{request, HttpResponse};
use common::oidc::{OidcProvider, AUDIENCE, OTHER_AUDIENCE};
use common::quickstart::Quickstart;
use common::redis_server::RedisServer;
use serde_json::{json, Value};

fn me(addr: &str, token: &str) -> HttpResponse {
    request(addr, "GET", "/me", Some(token), None)
}

fn login(addr: &str) -> String {
    common::http::access_token(&common::http::login(addr, "alice", "alice-pw", "web"))
}

/// Retry `/me` for a few seconds until it answers `status`.
fn eventually(addr: &str, token: &str, status: u16) -> HttpResponse {
    let mut res = me(addr, token);
    for _ in 0..60 {
        if res.status == status {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        res = me(addr, token);
    }
    res
}

fn forged(iss: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(json!({ "alg": "ES256", "kid": "nobody" })),
        b64(json!({ "iss": iss, "sub": "rs-test", "aud": AUDIENCE, "exp": 4_000_000_000u64 }))
    )
}

fn two_issuers_and_our_own(store: &[(&str, &str)]) {
    let a = OidcProvider::start();
    let b = OidcProvider::start();
    let issuers = format!("{},{}", a.issuer(), b.issuer());
    let mut env = vec![
        ("OIDC_ISSUERS", issuers.as_str()),
        ("OIDC_AUDIENCE", AUDIENCE),
        ("JWKS_COOLDOWN_SECS", "1"),
        ("JWKS_TIMEOUT_MS", "1000"),
    ];
    env.extend_from_slice(store);
    let qs = Quickstart::start(&env);
    let addr = qs.addr.as_str();

    // Each provider's token, and our own.
    let token_a = a.token("read");
    let token_b = b.token("read");
    let res = me(addr, &token_a);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["iss"], a.issuer());
    assert_eq!(res.json()["sub"], "rs-test");
    assert_eq!(res.json()["roles"], json!([]));
    let res = me(addr, &token_b);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["iss"], b.issuer());
    let ours = login(addr);
    assert_eq!(me(addr, &ours).status, 200);

    // /logout-all with A's token logs out A's subject only.
    assert_eq!(
        request(addr, "POST", "/logout-all", Some(&token_a), None).status,
        204
    );
    let res = me(addr, &token_a);
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["reason"], "logged_out_everywhere");
    assert_eq!(me(addr, &token_b).status, 200, "B's rs-test was logged out");
    assert_eq!(me(addr, &ours).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(me(addr, &a.token("read")).status, 200, "a later token of A");

    // Another audience, an unknown issuer: 401.
    assert_eq!(me(addr, &a.token_for(OTHER_AUDIENCE, "read")).status, 401);
    assert_eq!(me(addr, &forged("https://unknown.example")).status, 401);

    // B rotates its keys (the old ones retired): the new kid is fetched.
    b.rotate(true);
    let rotated = b.token("read");
    assert_eq!(eventually(addr, &rotated, 200).status, 200);
    // The retired key stops verifying once the set is fetched anew.
    assert_eq!(me(addr, &token_b).status, 401);

    // B's key set cannot be fetched while it rotates again: its new kid is
    // a 503 with Retry-After (never a 401); A and our own are unaffected.
    std::thread::sleep(Duration::from_millis(1100));
    b.set_jwks_status(500);
    b.rotate(false);
    let during = b.token("read");
    let res = me(addr, &during);
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    assert_eq!(
        me(addr, &rotated).status,
        200,
        "a known kid waited on the outage"
    );
    assert_eq!(me(addr, &ours).status, 200);
    b.set_jwks_status(200);
    assert_eq!(eventually(addr, &during, 200).status, 200);
}

#[test]
fn quickstart_accepts_two_identity_providers_beside_its_own_tokens_with_memory_store() {
    two_issuers_and_our_own(&[]);
}

#[test]
fn quickstart_accepts_two_identity_providers_beside_its_own_tokens_with_redis_store() {
    let redis = RedisServer::start();
    two_issuers_and_our_own(&[("REDIS_URL", &redis.url())]);
}

#[test]
fn quickstart_starts_while_its_identity_provider_is_down() {
    let mut idp = OidcProvider::start();
    let issuer = idp.issuer();
    idp.stop();
    let qs = Quickstart::start(&[
        ("OIDC_ISSUERS", issuer.as_str()),
        ("OIDC_AUDIENCE", AUDIENCE),
        ("JWKS_TIMEOUT_MS", "500"),
    ]);
    let addr = qs.addr.as_str();
    assert_eq!(request(addr, "GET", "/health", None, None).status, 200);
    // Our own tokens work at once.
    assert_eq!(me(addr, &login(addr)).status, 200);
    // A token of the provider cannot be told good or bad yet: 503.
    let early = forged(&issuer);
    let res = me(addr, &early);
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    // The provider comes back: its tokens pass, without a restart.
    idp.restart();
    let token = idp.token("read");
    let res = eventually(addr, &token, 200);
    assert_eq!(res.status, 200, "{}", res.body);
}
