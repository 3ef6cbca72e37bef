//! The verified-token cache (issue 17): a hot asymmetric token is not
//! verified again, and the cache never accepts what a fresh verification
//! would refuse: expired while cached, not yet valid, a token that only
//! shares a prefix, a key removed from a remote key set, a changed
//! configuration, a validator that changes its mind, a revocation.
//!
//! Tokens are signed with `jsonwebtoken` directly with the keys of
//! `tests/keys` (ES256 and RS256), never through the code under test.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::keygen::now;
use common::layer::{call, claims_of, OK, REVOKED};
use http::{Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tower_jwt_auth::{
    Algorithm, AuthError, ErrorKind, JwtAuth, Keys, MemoryStore, TokenCacheStats,
};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
const SECRET: &[u8] = b"token-cache-test-secret-0123456789-abcdef";

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).unwrap()
}

fn es256_layer() -> JwtAuth<Value> {
    JwtAuth::<Value>::new(Keys::from_pem(Algorithm::ES256, &read("ec_p256_public.pem")).unwrap())
        .issuer("https://idp.example")
        .audience("api")
}

/// An ES256 token (kid `ec-1`) with these claims over the usual ones.
fn es256(claims: Value) -> String {
    let _ = JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap()); // installs the crypto provider
    let mut all = json!({
        "sub": "alice", "iss": "https://idp.example", "aud": "api",
        "iat": now(), "exp": now() + 300, "jti": "j1",
    });
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let key = EncodingKey::from_ec_pem(&read("ec_p256_private.pem")).unwrap();
    jsonwebtoken::encode(&header, &all, &key).unwrap()
}

fn kind(res: &Response<String>) -> ErrorKind {
    res.extensions().get::<AuthError>().unwrap().kind()
}

fn counts(auth: &JwtAuth<Value>) -> (u64, u64, usize) {
    let TokenCacheStats {
        hits,
        misses,
        entries,
        ..
    } = auth.token_cache_stats().expect("the cache is on");
    (hits, misses, entries)
}

#[tokio::test]
async fn a_hot_es256_token_is_verified_once_and_the_counters_are_exact() {
    let auth = es256_layer();
    assert_eq!(auth.token_cache_stats().unwrap().capacity, 4096);
    let token = es256(json!({ "roles": ["user"] }));
    let first = claims_of(&auth, &token).await.unwrap();
    assert_eq!(counts(&auth), (0, 1, 1));
    for _ in 0..9 {
        let again = claims_of(&auth, &token).await.unwrap();
        assert_eq!(again.claims, first.claims);
        assert_eq!(again.registered, first.registered);
        assert_eq!(again.kid(), Some("ec-1"));
        assert_eq!(again.alg(), Algorithm::ES256);
    }
    assert_eq!(counts(&auth), (9, 1, 1));
    // A second token is a miss, then hits too.
    let other = es256(json!({ "sub": "bob" }));
    assert_eq!(call(&auth, &other).await, OK);
    assert_eq!(call(&auth, &other).await, OK);
    assert_eq!(counts(&auth), (10, 2, 2));
}

#[tokio::test]
async fn a_token_that_expires_while_cached_is_refused() {
    let auth = es256_layer().leeway(Duration::ZERO);
    let token = es256(json!({ "exp": now() + 1 }));
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth).0, 1, "the second request was a hit");
    // Past exp (the wall clock, whole seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = claims_of(&auth, &token).await.unwrap_err();
    assert_eq!(kind(&res), ErrorKind::Expired);
    assert_eq!(counts(&auth).0, 1, "no hit past exp");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused_until_its_nbf_and_then_cached() {
    let auth = es256_layer().leeway(Duration::ZERO);
    let token = es256(json!({ "nbf": now() + 2 }));
    for _ in 0..3 {
        let res = claims_of(&auth, &token).await.unwrap_err();
        assert_eq!(kind(&res), ErrorKind::NotYetValid);
    }
    assert_eq!(counts(&auth), (0, 3, 0), "a refused token is not kept");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth), (1, 4, 1));
}

#[tokio::test]
async fn a_token_sharing_a_prefix_or_a_signature_with_a_cached_one_is_verified() {
    let auth = es256_layer();
    let token = es256(json!({}));
    assert_eq!(call(&auth, &token).await, OK);
    let (head, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = head.split_once('.').unwrap();
    // The signature cut short, one character changed, one appended.
    let last = signature.chars().last().unwrap();
    let flipped = if last == 'A' { 'B' } else { 'A' };
    let changed = format!("{}{flipped}", &token[..token.len() - 1]);
    for forged in [&token[..token.len() - 1], &changed, &format!("{token}A")] {
        let res = claims_of(&auth, forged).await.unwrap_err();
        assert!(
            matches!(kind(&res), ErrorKind::BadSignature | ErrorKind::Malformed),
            "{:?}",
            kind(&res)
        );
    }
    // Another payload under the cached token's header and signature.
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({ "sub": "mallory", "iss": "https://idp.example", "aud": "api", "exp": now() + 300 })
            .to_string(),
    );
    let swapped = format!("{header}.{payload}.{signature}");
    let res = claims_of(&auth, &swapped).await.unwrap_err();
    assert_eq!(kind(&res), ErrorKind::BadSignature);
    assert_eq!(counts(&auth), (0, 5, 1));
    // The real one still hits.
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth).0, 1);
}

#[tokio::test]
async fn a_configuration_change_starts_an_empty_cache() {
    let auth = es256_layer();
    let token = es256(json!({}));
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    // A clone configured for another audience refuses the token the
    // original has cached, and starts with nothing.
    let other = auth.clone().audience("other-api");
    assert_eq!(counts(&other), (0, 0, 0));
    assert_eq!(
        call(&other, &token).await,
        OK,
        "audiences accumulate: api still accepted"
    );
    let strict = JwtAuth::<Value>::new(auth.keys().clone())
        .issuer("https://idp.example")
        .audience("other-api");
    let res = claims_of(&strict, &token).await.unwrap_err();
    assert_eq!(kind(&res), ErrorKind::WrongAudience);
    // A shorter lifetime bound: the cached token lives 300 s, now too long.
    let short = auth
        .clone()
        .max_token_lifetime(Duration::from_secs(60))
        .access_token_ttl(Duration::from_secs(60));
    let res = claims_of(&short, &token).await.unwrap_err();
    assert_eq!(kind(&res), ErrorKind::LifetimeTooLong);
    // Other keys: the same token no longer verifies.
    let rekeyed = auth
        .clone()
        .with_keys(Keys::from_pem(Algorithm::RS256, &read("rsa_public.pem")).unwrap());
    assert!(claims_of(&rekeyed, &token).await.is_err());
    // The original kept its cache.
    assert_eq!(counts(&auth), (1, 1, 1));
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth), (2, 1, 1));
}

#[tokio::test]
async fn the_validator_and_the_store_run_on_every_hit() {
    let refuse = Arc::new(AtomicBool::new(false));
    let flag = refuse.clone();
    let store = MemoryStore::new();
    let auth = es256_layer().store(store.clone()).validate_with(move |_| {
        match flag.load(Ordering::SeqCst) {
            true => Err(AuthError::invalid_token("refused by the application")),
            false => Ok(()),
        }
    });
    let token = es256(json!({}));
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    refuse.store(true, Ordering::SeqCst);
    assert_eq!(call(&auth, &token).await.0, StatusCode::UNAUTHORIZED);
    refuse.store(false, Ordering::SeqCst);
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth), (3, 1, 1));
    auth.revoke(&token).await.unwrap();
    assert_eq!(call(&auth, &token).await, REVOKED);
    assert_eq!(counts(&auth).0, 4, "a hit, refused by the store");
}

#[tokio::test]
async fn hmac_layers_have_no_cache_and_hmac_tokens_are_never_kept() {
    let hs = JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap());
    assert!(
        hs.token_cache_stats().is_none(),
        "off by default for HMAC keys"
    );
    let on = hs.clone().token_cache(10);
    let token = common::layer::issue(&on, "alice");
    assert_eq!(call(&on, &token).await, OK);
    assert_eq!(call(&on, &token).await, OK);
    assert_eq!(counts(&on), (0, 2, 0));
    assert!(es256_layer().token_cache(0).token_cache_stats().is_none());
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_capacity() {
    let auth = es256_layer().token_cache(3);
    let tokens: Vec<String> = (0..6)
        .map(|i| es256(json!({ "jti": format!("t{i}") })))
        .collect();
    for token in &tokens {
        assert_eq!(call(&auth, token).await, OK);
    }
    let stats = auth.token_cache_stats().unwrap();
    assert!(stats.entries <= 3, "{stats:?}");
    assert_eq!((stats.hits, stats.misses, stats.capacity), (0, 6, 3));
    // The last one stays cached.
    assert_eq!(call(&auth, &tokens[5]).await, OK);
    assert_eq!(counts(&auth).0, 1);
}

/// A key removed from a remote issuer's set stops verifying through the
/// cache as soon as the set is fetched again.
#[cfg(feature = "remote-keys")]
#[tokio::test]
async fn a_key_removed_from_a_remote_key_set_stops_hitting_at_the_next_fetch() {
    use common::jwks_server::JwksServer;
    use tower_jwt_auth::{RemoteIssuer, RemoteKeys};

    let full: Value = serde_json::from_slice(&read("jwks.json")).unwrap();
    let rsa_only = json!({ "keys": [full["keys"][0].clone()] });
    assert_eq!(rsa_only["keys"][0]["kid"], "rsa-1");
    let server = JwksServer::start(full.to_string()).await;
    let keys = RemoteKeys::jwks(server.jwks_url())
        .cooldown(Duration::ZERO)
        .build()
        .unwrap();
    keys.prefetch().await.unwrap();
    let auth = JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap())
        .remote_issuer(RemoteIssuer::new("https://idp.example", keys.clone()).audience("api"));
    assert_eq!(
        counts(&auth),
        (0, 0, 0),
        "on by default with a remote issuer"
    );
    let token = es256(json!({}));
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth), (1, 1, 1));

    // The set is fetched again without the key (an unknown kid fetches).
    server.set_jwks(rsa_only.to_string());
    keys.get(Some("new-kid")).await.unwrap();
    assert_eq!(keys.stats().keys, 1, "ec-1 is gone");
    let res = claims_of(&auth, &token).await.unwrap_err();
    assert_eq!(kind(&res), ErrorKind::UnknownKey);
    assert_eq!(counts(&auth).0, 1, "no hit once the key is gone");

    // Back in the set: verified again, then cached again.
    server.set_jwks(full.to_string());
    keys.get(Some("another-kid")).await.unwrap();
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(call(&auth, &token).await, OK);
    assert_eq!(counts(&auth).0, 2);
}
