//! `RemoteKeys` against a local JWKS / discovery server the test controls
//! (issue 14): rotation, single-flight, cooldown under an unknown-kid flood,
//! Cache-Control, outages (500, garbage, hang, connection refused, start
//! while down), stale-if-error, discovery, the https-only rule, and every
//! asymmetric algorithm.
//!
//! Keys are generated with the `openssl` CLI, their JWKs written from
//! openssl's own output, tokens minted with `jsonwebtoken` directly and
//! verified by `JwtAuth::verify` over the keys of the fetched snapshot:
//! neither side goes through the code under test. Fetches are counted at
//! the server.
//!
//! Run with `cargo test --features remote-keys --test remote_keys`.
#![cfg(feature = "remote-keys")]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use tower_jwt_auth::{
    Algorithm, FetchError, JwtAuth, Keys, KeysUnavailable, RemoteConfigError, RemoteKeys,
    RemoteKeysBuilder,
};

use common::jwks_server::{JwksServer, Mode, JWKS_PATH, OIDC_PATH, RFC8414_PATH};
use common::keygen::{
    b64, ec, ec_jwk, genpkey, now, okp_jwk, p256, rsa2048, rsa_jwk, token, with, Generated,
};

// ---------------------------------------------------------------------------
// Fixtures: real keys from openssl (common::keygen)
// ---------------------------------------------------------------------------

struct Fixtures {
    rsa: Generated,
    p256_a: Generated,
    p256_b: Generated,
    p384: Generated,
    ed25519: Generated,
    rsa_jwk: Value,
    p256_a_jwk: Value,
    p256_b_jwk: Value,
    p384_jwk: Value,
    ed25519_jwk: Value,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = common::new_dir("remote-keys");
        let rsa = rsa2048(&dir, "rsa");
        let p256_a = p256(&dir, "p256a");
        let p256_b = p256(&dir, "p256b");
        let p384 = ec(&dir, "p384", "P-384");
        let ed25519 = genpkey(&dir, "ed25519", &["-algorithm", "ED25519"]);
        let fixtures = Fixtures {
            rsa_jwk: rsa_jwk(&rsa),
            p256_a_jwk: ec_jwk(&p256_a, "P-256", 32),
            p256_b_jwk: ec_jwk(&p256_b, "P-256", 32),
            p384_jwk: ec_jwk(&p384, "P-384", 48),
            ed25519_jwk: okp_jwk(&ed25519, "Ed25519", 32),
            rsa,
            p256_a,
            p256_b,
            p384,
            ed25519,
        };
        let _ = std::fs::remove_dir_all(&dir);
        fixtures
    })
}

fn set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Key "k1" (ES256, key A) and "k2" (ES256, key B).
fn k1() -> Value {
    with(
        &fixtures().p256_a_jwk,
        json!({ "kid": "k1", "alg": "ES256", "use": "sig" }),
    )
}

fn k2() -> Value {
    with(
        &fixtures().p256_b_jwk,
        json!({ "kid": "k2", "alg": "ES256", "use": "sig" }),
    )
}

// ---------------------------------------------------------------------------
// Tokens, minted by jsonwebtoken, verified by JwtAuth over the snapshot
// ---------------------------------------------------------------------------

fn token_k1() -> String {
    token(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&fixtures().p256_a.pem).unwrap(),
        Some("k1"),
    )
}

fn token_k2() -> String {
    token(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&fixtures().p256_b.pem).unwrap(),
        Some("k2"),
    )
}

fn verifies(keys: &Keys, token: &str) -> bool {
    JwtAuth::<Value>::new(keys.clone()).verify(token).is_ok()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A builder for the server's JWK set, with test-sized durations.
fn remote(server: &JwksServer) -> RemoteKeysBuilder {
    RemoteKeys::jwks(server.jwks_url())
        .timeout(Duration::from_millis(500))
        .retry(Duration::from_millis(100), Duration::from_millis(200))
}

fn unavailable(result: Result<Arc<Keys>, KeysUnavailable>) -> KeysUnavailable {
    match result {
        Ok(keys) => panic!("keys were available: {keys:?}"),
        Err(e) => e,
    }
}

/// Poll `cond` every 20 ms for up to `within`.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

// ---------------------------------------------------------------------------
// Rotation, single-flight, cooldown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rotation_new_kid_one_refetch_removed_kid_stops_at_next_refresh() {
    let server = JwksServer::start(set(&[k1()])).await;
    let keys = remote(&server)
        .cooldown(Duration::from_millis(200))
        .cache_control_bounds(Duration::from_secs(1), Duration::from_secs(3600))
        .build()
        .unwrap();
    let first = keys.prefetch().await.unwrap();
    assert!(verifies(&first, &token_k1()));
    assert!(!verifies(&first, &token_k2()));
    assert_eq!(server.fetches(), 1);

    // The provider rotates k2 in (with a short max-age from now on); past
    // the cooldown, the first token with k2 fetches once.
    server.set_jwks(set(&[k1(), k2()]));
    server.set_cache_control(Some("max-age=1"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let rotated = keys.get(Some("k2")).await.unwrap();
    assert!(verifies(&rotated, &token_k2()));
    assert!(verifies(&rotated, &token_k1()));
    assert_eq!(server.fetches(), 2, "one refetch for the new kid");
    // Known now: no further fetch.
    for _ in 0..10 {
        assert!(verifies(&keys.get(Some("k2")).await.unwrap(), &token_k2()));
    }
    assert_eq!(server.fetches(), 2);

    // k1 is removed: it stops at the next background refresh (max-age=1),
    // with no request asking for it.
    server.set_jwks(set(&[k2()]));
    assert!(
        eventually(Duration::from_secs(3), || {
            keys.keys_now().is_some_and(|k| !verifies(&k, &token_k1()))
        })
        .await,
        "a removed key kept verifying"
    );
    assert_eq!(server.fetches(), 3, "one background refresh");
    assert!(verifies(&keys.keys_now().unwrap(), &token_k2()));
    let after = keys.get(Some("k1")).await.unwrap();
    assert!(!verifies(&after, &token_k1()));
}

#[tokio::test]
async fn single_flight_50_concurrent_lookups_of_a_new_kid_fetch_once() {
    let server = JwksServer::start(set(&[k1()])).await;
    let keys = remote(&server)
        .cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    keys.prefetch().await.unwrap();
    assert_eq!(server.fetches(), 1);
    server.set_jwks(set(&[k1(), k2()]));
    server.set_delay(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(150)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let keys = keys.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                keys.get(Some("k2")).await
            })
        })
        .collect();
    let token = token_k2();
    for task in tasks {
        let got = task.await.unwrap().expect("keys after the shared fetch");
        assert!(verifies(&got, &token));
    }
    assert_eq!(server.fetches(), 2, "50 callers, one fetch");
    assert_eq!(keys.stats().fetches_attempted, 2);
}

#[tokio::test]
async fn single_flight_on_first_use_with_no_keys_yet() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_delay(Duration::from_millis(200));
    let keys = remote(&server).build().unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let keys = keys.clone();
            tokio::spawn(async move {
                keys.get(Some(if i % 2 == 0 { "k1" } else { "other" }))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("keys after the shared fetch");
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn cooldown_holds_an_unknown_kid_flood_to_at_most_one_fetch() {
    let server = JwksServer::start(set(&[k1()])).await;
    let keys = remote(&server)
        .cooldown(Duration::from_millis(600))
        .build()
        .unwrap();
    keys.prefetch().await.unwrap();
    assert_eq!(server.fetches(), 1);

    // Within the cooldown: every random kid is just unknown, no fetch.
    let started = Instant::now();
    for i in 0..1000 {
        let got = keys
            .get(Some(&format!("random-{i}-{}", now())))
            .await
            .unwrap();
        assert_eq!(got.skipped().len(), 0);
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.fetches(), 1, "no fetch within the cooldown");

    // Past it, a concurrent flood of 1000 random kids: one shared fetch.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.get(Some(&format!("flood-{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("unknown kid, keys available");
    }
    assert_eq!(server.fetches(), 2, "at most one fetch for the flood");
}

// ---------------------------------------------------------------------------
// Cache-Control and the background refresher
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cache_control_max_age_drives_the_background_refresh_within_bounds() {
    // Honoured: max-age=1 with a 1 s lower bound.
    let short = JwksServer::start(set(&[k1()])).await;
    short.set_cache_control(Some("public, max-age=1"));
    // No header: the 10 min default, no refresh.
    let default = JwksServer::start(set(&[k1()])).await;
    // Clamped: max-age one day, upper bound 1 s.
    let long = JwksServer::start(set(&[k1()])).await;
    long.set_cache_control(Some("max-age=86400"));
    // Clamped: max-age=0 with the default 1 min lower bound.
    let zero = JwksServer::start(set(&[k1()])).await;
    zero.set_cache_control(Some("max-age=0"));

    let bounds = |b: RemoteKeysBuilder| {
        b.cache_control_bounds(Duration::from_secs(1), Duration::from_secs(1))
    };
    let a = bounds(remote(&short)).build().unwrap();
    let b = remote(&default).build().unwrap();
    let c = bounds(remote(&long)).build().unwrap();
    let d = remote(&zero).build().unwrap();
    for keys in [&a, &b, &c, &d] {
        keys.prefetch().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        short.fetches() >= 2,
        "max-age=1 not honoured: {}",
        short.fetches()
    );
    assert!(
        long.fetches() >= 2,
        "max-age not clamped to the upper bound: {}",
        long.fetches()
    );
    assert_eq!(default.fetches(), 1, "refreshed without need");
    assert_eq!(
        zero.fetches(),
        1,
        "max-age=0 not clamped to the lower bound"
    );
    assert!(a.stats().fresh && b.stats().fresh);
}

#[tokio::test]
async fn refresher_stops_when_the_last_handle_is_dropped() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_cache_control(Some("max-age=1"));
    let keys = remote(&server)
        .min_max_age(Duration::from_secs(1))
        .build()
        .unwrap();
    let clone = keys.clone();
    keys.prefetch().await.unwrap();
    drop(keys);
    // A clone keeps it alive.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let seen = server.fetches();
    assert!(seen >= 2, "no background refresh: {seen}");
    drop(clone);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        server.fetches() <= seen + 1,
        "still refreshing after the last drop"
    );
}

#[tokio::test]
async fn known_kid_never_waits_on_a_fetch() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_cache_control(Some("max-age=1"));
    let keys = remote(&server)
        .timeout(Duration::from_secs(5))
        .min_max_age(Duration::from_secs(1))
        .build()
        .unwrap();
    keys.prefetch().await.unwrap();
    server.set_mode(Mode::Hang);
    // The background refresh starts at 0.9 s and hangs.
    assert!(eventually(Duration::from_secs(2), || server.fetches() == 2).await);
    for _ in 0..100 {
        let started = Instant::now();
        let got = keys.get(Some("k1")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(verifies(&got, &token_k1()));
    }
}

// ---------------------------------------------------------------------------
// Outages
// ---------------------------------------------------------------------------

#[tokio::test]
async fn error_statuses_are_unavailable_not_unknown() {
    for status in [500, 404, 302, 204] {
        let server = JwksServer::start(set(&[k1()])).await;
        server.set_mode(Mode::Status(status));
        let keys = remote(&server)
            .retry(Duration::from_secs(2), Duration::from_secs(4))
            .build()
            .unwrap();
        let e = unavailable(keys.get(Some("k1")).await);
        match e.cause() {
            Some(FetchError::Status(s)) => assert_eq!(s.as_u16(), status),
            other => panic!("{status}: {other:?}"),
        }
        assert!(e.retry_after_secs() >= 1);
        assert!(keys.keys_now().is_none());
        assert_eq!(
            server.fetches(),
            1,
            "{status}: redirect followed or retried"
        );
        assert!(keys.stats().fetches_failed >= 1);
        assert!(keys
            .stats()
            .last_error
            .unwrap()
            .contains(&status.to_string()));
    }
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_refused() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_mode(Mode::Garbage);
    let keys = remote(&server).build().unwrap();
    let e = unavailable(keys.get(Some("k1")).await);
    assert!(matches!(e.cause(), Some(FetchError::NotJson(_))), "{e}");

    // JSON, but no JWK set.
    let server = JwksServer::start(r#"{"hello": "world"}"#).await;
    let e = unavailable(remote(&server).build().unwrap().get(None).await);
    assert!(matches!(e.cause(), Some(FetchError::InvalidSet(_))), "{e}");

    // A set larger than the limit.
    let server = JwksServer::start(set(&[k1(), k2()])).await;
    let keys = remote(&server).max_response_size(200).build().unwrap();
    let e = unavailable(keys.get(Some("k1")).await);
    assert!(matches!(e.cause(), Some(FetchError::TooLarge(200))), "{e}");
}

#[tokio::test]
async fn a_hanging_server_is_answered_within_the_timeout() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_mode(Mode::Hang);
    let keys = remote(&server)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = unavailable(keys.get(Some("k1")).await);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(600), "{took:?}");
    assert!(matches!(e.cause(), Some(FetchError::Timeout(_))), "{e}");
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let port = common::free_port();
    let keys = RemoteKeys::jwks(format!("http://127.0.0.1:{port}{JWKS_PATH}"))
        .build()
        .unwrap();
    let e = unavailable(keys.get(Some("k1")).await);
    assert!(matches!(e.cause(), Some(FetchError::Transport(_))), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn starts_while_the_provider_is_down_and_picks_keys_up_when_it_comes_back() {
    let port = common::free_port();
    let keys = RemoteKeys::jwks(format!("http://127.0.0.1:{port}{JWKS_PATH}"))
        .retry(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .expect("built while the provider is down");
    unavailable(keys.prefetch().await);
    unavailable(keys.get(Some("k1")).await);
    assert!(keys.keys_now().is_none());

    let server = JwksServer::start_on(port, set(&[k1()])).await;
    // No request needed: the background refresher retries.
    assert!(
        eventually(Duration::from_secs(2), || keys.keys_now().is_some()).await,
        "keys not picked up"
    );
    assert!(verifies(&keys.get(Some("k1")).await.unwrap(), &token_k1()));
    assert!(server.fetches() >= 1);
    assert!(keys.stats().last_success.is_some());
}

#[tokio::test]
async fn stale_if_error_serves_the_last_good_keys_up_to_the_bound() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_cache_control(Some("max-age=1"));
    let keys = remote(&server)
        .min_max_age(Duration::from_secs(1))
        .stale_if_error(Duration::from_secs(1))
        .cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    keys.prefetch().await.unwrap();
    let fetched = Instant::now();
    server.set_mode(Mode::Status(500));

    // Stale but within the bound: the known kid verifies, a new kid is 503.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let stats = keys.stats();
    assert!(!stats.fresh && stats.usable, "{stats:?}");
    assert!(stats.fetches_failed >= 1, "{stats:?}");
    assert!(verifies(&keys.get(Some("k1")).await.unwrap(), &token_k1()));
    unavailable(keys.get(Some("new")).await);

    // Past the bound (fresh 1 s + stale 1 s): unavailable.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(fetched.elapsed())).await;
    assert!(keys.keys_now().is_none());
    let e = unavailable(keys.get(Some("k1")).await);
    assert!(matches!(e.cause(), Some(FetchError::Status(_))), "{e}");

    // The provider recovers: keys again without a restart.
    server.set_mode(Mode::Serve);
    assert!(eventually(Duration::from_secs(2), || keys.keys_now().is_some()).await);
    assert!(verifies(&keys.get(Some("k1")).await.unwrap(), &token_k1()));
}

// ---------------------------------------------------------------------------
// Discovery and the https-only rule
// ---------------------------------------------------------------------------

#[tokio::test]
async fn discovery_by_openid_configuration() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_discovery(
        OIDC_PATH,
        json!({ "issuer": server.base(), "jwks_uri": server.jwks_url() }),
    );
    let keys = RemoteKeys::discover(server.base()).build().unwrap();
    assert_eq!(keys.issuer(), Some(server.base().as_str()));
    assert!(verifies(&keys.prefetch().await.unwrap(), &token_k1()));
    assert_eq!(
        (
            server.hits(OIDC_PATH),
            server.hits(RFC8414_PATH),
            server.fetches()
        ),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_discovery(
        RFC8414_PATH,
        json!({ "issuer": server.base(), "jwks_uri": server.jwks_url() }),
    );
    let keys = RemoteKeys::discover(server.base()).build().unwrap();
    assert!(verifies(&keys.prefetch().await.unwrap(), &token_k1()));
    assert_eq!(
        (
            server.hits(OIDC_PATH),
            server.hits(RFC8414_PATH),
            server.fetches()
        ),
        (1, 1, 1)
    );

    // The RFC 8414 form of an issuer with a path: the well-known part first.
    let tenant = format!("{}/tenant", server.base());
    server.set_discovery(
        &format!("{RFC8414_PATH}/tenant"),
        json!({ "issuer": tenant, "jwks_uri": server.jwks_url() }),
    );
    let keys = RemoteKeys::discover(&tenant).build().unwrap();
    assert!(verifies(&keys.prefetch().await.unwrap(), &token_k1()));
    assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 1);
}

#[tokio::test]
async fn discovery_refuses_an_issuer_mismatch_and_an_insecure_jwks_uri() {
    let server = JwksServer::start(set(&[k1()])).await;
    server.set_discovery(
        OIDC_PATH,
        json!({ "issuer": "https://evil.example.com", "jwks_uri": server.jwks_url() }),
    );
    let keys = RemoteKeys::discover(server.base()).build().unwrap();
    let e = unavailable(keys.prefetch().await);
    match e.cause() {
        Some(FetchError::Discovery(why)) => assert!(why.contains("evil.example.com"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.fetches(), 0, "keys fetched for a mismatched issuer");

    let server = JwksServer::start(set(&[k1()])).await;
    server.set_discovery(
        OIDC_PATH,
        json!({ "issuer": server.base(), "jwks_uri": "http://keys.example.invalid/jwks" }),
    );
    let e = unavailable(
        RemoteKeys::discover(server.base())
            .build()
            .unwrap()
            .prefetch()
            .await,
    );
    match e.cause() {
        Some(FetchError::Discovery(why)) => assert!(why.contains("plain http"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn https_only_except_loopback_or_explicit_opt_in() {
    for url in [
        "http://id.example.com/jwks",
        "http://10.0.0.1/jwks",
        "http://[::2]/jwks",
    ] {
        let err = RemoteKeys::jwks(url).build().unwrap_err();
        assert!(
            matches!(err, RemoteConfigError::InsecureUrl(_)),
            "{url}: {err}"
        );
        assert!(
            RemoteKeys::jwks(url).allow_http(true).build().is_ok(),
            "{url}"
        );
    }
    let err = RemoteKeys::discover("http://id.example.com")
        .build()
        .unwrap_err();
    assert!(matches!(err, RemoteConfigError::InsecureUrl(_)), "{err}");
    for url in [
        "https://id.example.com/jwks",
        "http://127.0.0.1:1/jwks",
        "http://127.8.9.10/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost:8080/jwks",
    ] {
        assert!(RemoteKeys::jwks(url).build().is_ok(), "{url}");
    }
    for url in [
        "ftp://id.example.com/jwks",
        "/jwks",
        "https://u:p@id.example.com/jwks",
    ] {
        let err = RemoteKeys::jwks(url).build().unwrap_err();
        assert!(
            matches!(err, RemoteConfigError::InvalidUrl { .. }),
            "{url}: {err}"
        );
    }
    let err = RemoteKeys::jwks("https://id.example.com/jwks")
        .cache_control_bounds(Duration::from_secs(10), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, RemoteConfigError::InvalidSettings(_)),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// JWK sets as published: every asymmetric algorithm, unusable keys skipped
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_asymmetric_algorithm_verifies_from_the_fetched_set() {
    let f = fixtures();
    let rsa_signer = EncodingKey::from_rsa_pem(&f.rsa.pem).unwrap();
    let mut jwks = Vec::new();
    let mut tokens = Vec::new();
    for (name, alg) in [
        ("RS256", Algorithm::RS256),
        ("RS384", Algorithm::RS384),
        ("RS512", Algorithm::RS512),
        ("PS256", Algorithm::PS256),
        ("PS384", Algorithm::PS384),
        ("PS512", Algorithm::PS512),
    ] {
        let kid = name.to_lowercase();
        jwks.push(with(&f.rsa_jwk, json!({ "kid": kid, "alg": name })));
        tokens.push((kid.clone(), token(alg, &rsa_signer, Some(&kid))));
    }
    jwks.push(with(
        &f.p256_a_jwk,
        json!({ "kid": "es256", "alg": "ES256" }),
    ));
    tokens.push((
        "es256".into(),
        token(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(&f.p256_a.pem).unwrap(),
            Some("es256"),
        ),
    ));
    // No alg: the type decides (P-384 → ES384, Ed25519 → EdDSA).
    jwks.push(with(&f.p384_jwk, json!({ "kid": "es384" })));
    tokens.push((
        "es384".into(),
        token(
            Algorithm::ES384,
            &EncodingKey::from_ec_pem(&f.p384.pem).unwrap(),
            Some("es384"),
        ),
    ));
    jwks.push(with(&f.ed25519_jwk, json!({ "kid": "eddsa" })));
    tokens.push((
        "eddsa".into(),
        token(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_pem(&f.ed25519.pem).unwrap(),
            Some("eddsa"),
        ),
    ));
    // Skipped, never fatal: an encryption key, a symmetric key, an unknown kty, x5c ignored.
    jwks.push(with(
        &f.rsa_jwk,
        json!({ "kid": "enc", "use": "enc", "alg": "RSA-OAEP" }),
    ));
    let secret = b"a secret of at least thirty-two bytes!";
    jwks.push(json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(secret) }));
    jwks.push(json!({ "kty": "PQC", "kid": "future" }));
    jwks.last_mut().unwrap()["x5c"] = json!(["MIIB"]);
    let server = JwksServer::start(set(&jwks)).await;

    let keys = remote(&server).build().unwrap();
    let fetched = keys.prefetch().await.unwrap();
    assert_eq!(keys.stats().keys, 9);
    let skipped: Vec<_> = fetched
        .skipped()
        .iter()
        .filter_map(|s| s.kid.clone())
        .collect();
    assert_eq!(skipped, ["enc", "hmac", "future"]);
    for (kid, token) in &tokens {
        let got = keys.get(Some(kid)).await.unwrap();
        assert!(verifies(&got, token), "{kid}");
    }
    // Algorithm confusion: an RS256 token under the PS256 key is refused.
    let confused = token(Algorithm::RS256, &rsa_signer, Some("ps256"));
    assert!(!verifies(&fetched, &confused));
    // The symmetric key was refused: its token does not verify.
    let hmac = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret).unwrap(),
        Some("hmac"),
    );
    assert!(!verifies(&fetched, &hmac));
    assert_eq!(server.fetches(), 1);

    // An allowlist narrows what a key accepts; allow_symmetric opts oct keys in.
    let keys = remote(&server)
        .allowed_algorithms([Algorithm::ES256, Algorithm::HS256])
        .allow_symmetric(true)
        .build()
        .unwrap();
    let narrowed = keys.prefetch().await.unwrap();
    assert!(verifies(&narrowed, &hmac));
    assert!(verifies(&narrowed, &tokens[6].1), "es256");
    assert!(!verifies(&narrowed, &tokens[0].1), "rs256 allowed");
}
