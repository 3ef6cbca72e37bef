//! The README's minimal Redis ACL is enough: a user with exactly those
//! commands and key patterns can run every operation of the store, and the
//! near-cache subscription. A command missing from the list fails here with
//! NOPERM.

#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::layer::call;
use common::redis_server::RedisServer;
use http::StatusCode;
use tower_jwt_auth::{JwtAuth, Keys, RedisStore};

/// The ACL rule documented in README.md ("Redis in production").
const ACL_RULE: &str = "on >s3cret-acl-password ~jwt:* &jwt:events -@all \
    +evalsha +eval +script|load +get +mget +exists +set +getdel +del +hget +hmget +hset +hdel \
    +pexpire +pttl +zadd +zrange +zrem +zscore +zcard +zremrangebyscore +zremrangebyrank \
    +time +publish +subscribe \
    +ping +info +hello";

async fn status(auth: &JwtAuth<serde_json::Value>, token: &str) -> StatusCode {
    call(auth, token).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_minimal_acl_user_can_run_every_operation() {
    let server = RedisServer::start();
    let mut args = vec!["ACL", "SETUSER", "jwtauth"];
    args.extend(ACL_RULE.split_whitespace());
    let _: redis::Value = server.cmd(&args);
    let url = format!(
        "redis://jwtauth:s3cret-acl-password@127.0.0.1:{}",
        server.port()
    );

    let store = RedisStore::builder(&url)
        .near_cache(true)
        .build()
        .await
        .expect("connect as the ACL user");
    assert!(
        store.near_cache_stats().unwrap().subscribed,
        "the ACL user could not subscribe to events"
    );
    // The findings come from INFO; they must not fail for lack of permissions
    // (CONFIG is optional and reported as unverified when denied).
    let findings = store.startup_findings().await;
    println!("{findings:?}");

    let auth = JwtAuth::<serde_json::Value>::new(
        Keys::hs256(b"acl-test-secret-0123456789-abcdefghij").unwrap(),
    )
    .store(store)
    .max_sessions(2)
    .idle_timeout(Duration::from_secs(60));
    let s = auth.sessions();
    let claims = serde_json::json!({});

    let a = s.login("alice", "web", &claims).await.unwrap();
    let b = s.login("alice", "mobile", &claims).await.unwrap();
    let c = s.login("alice", "tablet", &claims).await.unwrap(); // evicts a
    assert_eq!(
        status(&auth, &a.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&auth, &b.access_token).await, StatusCode::OK);
    assert_eq!(s.list("alice").await.unwrap().len(), 2);
    let refreshed = s.refresh(&b.refresh_token).await.unwrap();
    assert!(s.refresh(&b.refresh_token).await.is_err()); // reuse ends b
    assert!(s.refresh(&refreshed.refresh_token).await.is_err());
    assert!(s.kick("alice", &c.session_id).await.unwrap());
    let d = s.login("alice", "web", &claims).await.unwrap();
    let who = auth.verify(&d.access_token).unwrap();
    s.logout(&who).await.unwrap();
    assert_eq!(
        status(&auth, &d.access_token).await,
        StatusCode::UNAUTHORIZED
    );

    let token = s.issue("bob", &claims).unwrap().token;
    assert_eq!(status(&auth, &token).await, StatusCode::OK);
    auth.revoke(&token).await.unwrap();
    assert_eq!(status(&auth, &token).await, StatusCode::UNAUTHORIZED);
    s.logout_all("carol").await.unwrap();
    s.kick_all("alice").await.unwrap();
    s.ban("mallory", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(s.unban("mallory").await.unwrap());

    let ott = s
        .one_time_token("reset", "alice", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.consume_one_time_token("reset", &ott).await.unwrap(),
        "alice"
    );
    assert!(s.consume_one_time_token("reset", &ott).await.is_err());

    // A back-channel logout by `sid`: its script, and the check's MGET with
    // the provider session's key.
    let store = auth.store_ref().unwrap();
    store
        .end_provider_session("https://idp.example", "s-1", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store
        .first_use("logout", "jti-1", Duration::from_secs(60))
        .await
        .unwrap());
    let request = tower_jwt_auth::store::CheckRequest {
        subject: "\0https://idp.example\0alice".into(),
        token_id: "t-1".into(),
        issued_at: Some(1),
        session_id: None,
        touch_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        marker_ttl: Duration::from_secs(60),
        deadline: Duration::from_secs(2),
    };
    let verdict = store
        .check_with_provider_session(&request, "https://idp.example", "s-1")
        .await
        .unwrap();
    assert_eq!(
        verdict,
        tower_jwt_auth::store::Verdict::Revoked(tower_jwt_auth::RevocationReason::SessionEnded(
            tower_jwt_auth::SessionEnd::LoggedOut
        ))
    );

    // Without the near-cache, a session's token is checked with EXISTS.
    let plain = RedisStore::builder(&url)
        .build()
        .await
        .expect("connect as the ACL user");
    let auth = JwtAuth::<serde_json::Value>::new(
        Keys::hs256(b"acl-test-secret-0123456789-abcdefghij").unwrap(),
    )
    .store(plain);
    let e = auth.sessions().login("erin", "web", &claims).await.unwrap();
    for _ in 0..3 {
        assert_eq!(status(&auth, &e.access_token).await, StatusCode::OK);
    }
}
