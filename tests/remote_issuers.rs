//! Several issuers on one layer, end to end: a real OpenID Provider (node's
//! `oidc-provider`, RFC 9068 `at+jwt` access tokens by client credentials)
//! beside the layer's own HS256 tokens, through the layer with a store.
#![cfg(feature = "remote-keys")]

mod common;

use std::time::Duration;

use base64::Engine;
use common::jwks_server::JwksServer;
use common::layer::{call, claims_of};
use common::oidc::{OidcProvider, AUDIENCE, OTHER_AUDIENCE};
use http::{Response, StatusCode};
use serde_json::{json, Value};
use tower_jwt_auth::{AuthError, ErrorKind, JwtAuth, Keys, MemoryStore, RemoteIssuer, RemoteKeys};

const SECRET: &[u8] = b"remote-issuers-local-secret-0123456789";

fn layer(provider: &OidcProvider, cooldown: Duration) -> JwtAuth<Value> {
    let keys = RemoteKeys::discover(provider.issuer())
        .cooldown(cooldown)
        .retry(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap())
        .issuer("local")
        .audience("local-api")
        .store(MemoryStore::new())
        .remote_issuer(
            RemoteIssuer::new(provider.issuer(), keys)
                .audience(AUDIENCE)
                .token_type("at+jwt"),
        )
}

fn kind(res: &Response<String>) -> ErrorKind {
    res.extensions().get::<AuthError>().unwrap().kind()
}

/// A token that names `kid` and `iss` and carries a signature that is not one.
fn forged(kid: &str, iss: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid })),
        b64(json!({ "iss": iss, "sub": "x", "aud": AUDIENCE, "exp": 4_000_000_000u64 }))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_providers_token_passes_beside_our_own_and_subjects_stay_per_issuer() {
    let provider = tokio::task::block_in_place(OidcProvider::start);
    let auth = layer(&provider, Duration::from_secs(30));
    let remote = tokio::task::block_in_place(|| provider.token("read"));

    let accepted = claims_of(&auth, &remote).await.unwrap();
    assert_eq!(
        accepted.registered.iss.as_deref(),
        Some(provider.issuer().as_str())
    );
    assert_eq!(accepted.registered.client_id.as_deref(), Some("rs-test"));
    assert!(accepted.has_scope("read"));
    assert!(accepted.is_remote());
    let sub = accepted.subject().to_owned();
    assert_eq!(
        accepted.store_subject(),
        format!("\0{}\0{sub}", provider.issuer())
    );
    assert_eq!(
        auth.store_subject(Some(&provider.issuer()), &sub),
        accepted.store_subject()
    );

    // Our own token for the same `sub` passes too.
    let local = auth.sessions().issue(&sub, &json!({})).unwrap().token;
    assert_eq!(call(&auth, &local).await.0, StatusCode::OK);

    // Logging the provider's subject out everywhere leaves ours alone...
    auth.revoke_subject(accepted.store_subject()).await.unwrap();
    assert_eq!(
        call(&auth, &remote).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out_everywhere"))
    );
    assert_eq!(call(&auth, &local).await.0, StatusCode::OK);
    // ...and ours leaves a fresh token of the provider's alone.
    auth.revoke_subject(&sub).await.unwrap();
    assert_eq!(call(&auth, &local).await.0, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = tokio::task::block_in_place(|| provider.token("read"));
    assert_eq!(call(&auth, &fresh).await.0, StatusCode::OK);

    // Another audience is refused; so is a token without the RFC 9068 type.
    let other = tokio::task::block_in_place(|| provider.token_for(OTHER_AUDIENCE, "read"));
    assert_eq!(
        kind(&claims_of(&auth, &other).await.unwrap_err()),
        ErrorKind::WrongAudience
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_issuer_is_a_401_without_any_fetch() {
    let provider = tokio::task::block_in_place(OidcProvider::start);
    let auth = layer(&provider, Duration::from_secs(30));
    // The keys' first fetch (started when they were built) is done.
    let good = tokio::task::block_in_place(|| provider.token("read"));
    assert_eq!(call(&auth, &good).await.0, StatusCode::OK);
    let before = tokio::task::block_in_place(|| provider.stats());
    let res = claims_of(&auth, &forged("k", "https://unknown.example"))
        .await
        .unwrap_err();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let after = tokio::task::block_in_place(|| provider.stats());
    assert_eq!(
        (after.jwks_fetches, after.discovery_fetches),
        (before.jwks_fetches, before.discovery_fetches)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_under_50_concurrent_requests_fetches_the_set_once() {
    let provider = tokio::task::block_in_place(OidcProvider::start);
    let auth = layer(&provider, Duration::from_millis(200));
    let first = tokio::task::block_in_place(|| provider.token("read"));
    assert_eq!(call(&auth, &first).await.0, StatusCode::OK);
    let before = tokio::task::block_in_place(|| provider.stats()).jwks_fetches;

    let rotation = tokio::task::block_in_place(|| provider.rotate(false));
    let rotated = tokio::task::block_in_place(|| provider.token("read"));
    tokio::time::sleep(Duration::from_millis(300)).await; // past the cooldown
    let calls = (0..50).map(|_| {
        let (auth, token) = (auth.clone(), rotated.clone());
        tokio::spawn(async move { call(&auth, &token).await.0 })
    });
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let fetched = tokio::task::block_in_place(|| provider.stats()).jwks_fetches - before;
    println!(
        "rotation to {}: 50 concurrent requests, {fetched} JWKS fetch(es)",
        rotation.signing_kid
    );
    assert_eq!(fetched, 1);
    // The old key still verifies (not retired).
    assert_eq!(call(&auth, &first).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_flood_within_the_cooldown_fetches_at_most_once() {
    let provider = tokio::task::block_in_place(OidcProvider::start);
    let auth = layer(&provider, Duration::from_secs(30));
    let good = tokio::task::block_in_place(|| provider.token("read"));
    assert_eq!(call(&auth, &good).await.0, StatusCode::OK);
    let before = tokio::task::block_in_place(|| provider.stats()).jwks_fetches;
    let issuer = provider.issuer();
    let calls = (0..1000).map(|i| {
        let (auth, token) = (auth.clone(), forged(&format!("flood-{i}"), &issuer));
        tokio::spawn(async move { claims_of(&auth, &token).await.map(|_| ()).unwrap_err() })
    });
    for res in futures_util::future::join_all(calls).await {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(kind(&res), ErrorKind::UnknownKey);
    }
    let fetched = tokio::task::block_in_place(|| provider.stats()).jwks_fetches - before;
    println!("unknown-kid flood: 1000 requests, {fetched} JWKS fetch(es)");
    assert!(fetched <= 1, "{fetched} fetches");
    assert_eq!(call(&auth, &good).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_outage_is_a_503_with_retry_after_and_recovers_without_restart() {
    let provider = tokio::task::block_in_place(OidcProvider::start);
    let token = tokio::task::block_in_place(|| provider.token("read"));
    // Down before the layer ever had its keys.
    tokio::task::block_in_place(|| provider.set_jwks_status(500));
    let auth = layer(&provider, Duration::from_millis(100));
    let res = claims_of(&auth, &token).await.unwrap_err();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(kind(&res), ErrorKind::KeysUnavailable);
    assert!(res.headers().get("retry-after").is_some());
    assert!(res.headers().get("www-authenticate").is_none());

    tokio::task::block_in_place(|| provider.set_jwks_status(200));
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = call(&auth, &token).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "keys were not picked up after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_sid_is_the_providers_session_and_never_looked_up() {
    let dir = common::new_dir("remote-sid");
    let key = common::keygen::p256(&dir, "idp");
    let mut jwk = common::keygen::ec_jwk(&key, "P-256", 32);
    jwk["kid"] = "idp-1".into();
    jwk["alg"] = "ES256".into();
    let server = JwksServer::start(json!({ "keys": [jwk] }).to_string()).await;
    let issuer = server.base();
    let keys = RemoteKeys::jwks(server.jwks_url()).build().unwrap();
    let auth = JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap())
        .store(MemoryStore::new())
        .remote_issuer(RemoteIssuer::new(issuer.clone(), keys).audience("api"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": issuer, "aud": "api", "sub": "bob", "sid": "the-providers-session",
        "iat": now, "exp": now + 300,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("idp-1".into());
    let remote = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&key.pem).unwrap(),
    )
    .unwrap();
    let accepted = claims_of(&auth, &remote).await.unwrap();
    assert_eq!(accepted.session_id(), Some("the-providers-session"));
    assert!(accepted.is_remote());

    // The same sid in a token of our own names a session we do not know.
    let local = auth
        .sessions()
        .issue_with_session("bob", Some("the-providers-session"), &json!({}))
        .unwrap()
        .token;
    assert_eq!(
        call(&auth, &local).await,
        (StatusCode::UNAUTHORIZED, Some("session_ended"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
