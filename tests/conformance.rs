//! One conformance suite, written once, run against every store: the same
//! test bodies drive `MemoryStore` and `RedisStore` (a private
//! `redis-server` per test; a shared Redis Cluster with the `redis-cluster`
//! feature) through the public API (`JwtAuth`, `Sessions`) and the layer.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::layer::call;
use http::StatusCode;
use serde_json::json;
use tower_jwt_auth::store::{CheckRequest, Verdict};
use tower_jwt_auth::{
    JwtAuth, Keys, LimitPolicy, RevocationReason, RevocationStore, SessionEnd, SessionError,
    Sessions,
};

const SECRET: &[u8] = b"conformance-secret-0123456789-abcdef";

#[derive(Debug, Clone, serde::Deserialize)]
#[allow(dead_code)]
struct C {
    #[serde(default)]
    roles: Vec<String>,
}

fn auth(store: &Arc<dyn RevocationStore>) -> JwtAuth<C> {
    JwtAuth::<C>::new(Keys::hs256(SECRET).unwrap())
        .issuer("conformance")
        .audience("tests")
        .store_arc(store.clone())
        .store_deadline(Duration::from_secs(2))
}

async fn assert_ok(auth: &JwtAuth<C>, token: &str) {
    assert_eq!(call(auth, token).await, (StatusCode::OK, None));
}

async fn assert_revoked(auth: &JwtAuth<C>, token: &str, reason: &str) {
    assert_eq!(
        call(auth, token).await,
        (StatusCode::UNAUTHORIZED, Some(reason))
    );
}

fn claims() -> serde_json::Value {
    json!({ "roles": ["user"] })
}

/// Sleeps until 10 ms past the next whole unix second.
async fn sleep_into_the_next_second() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1010 - into))).await;
}

/// The ids of `subject`'s live sessions, in the order `list` gives them.
async fn live_session_ids(s: &Sessions<C>, subject: &str) -> Vec<String> {
    s.list(subject)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.session_id)
        .collect()
}

fn check_request<'a>(subject: &'a str, id: &'a str) -> CheckRequest<'a> {
    CheckRequest {
        subject: subject.into(),
        token_id: id.into(),
        issued_at: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        ),
        session_id: None,
        touch_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(10),
        marker_ttl: Duration::from_secs(60),
        deadline: Duration::from_secs(2),
    }
}

// ---------------------------------------------------------------- revocation

async fn revoking_one_token_rejects_only_that_token(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let a = s.issue("alice", &claims()).unwrap().token;
    let b = s.issue("alice", &claims()).unwrap().token;
    assert_ok(&auth, &a).await;
    auth.revoke(&a).await.unwrap();
    assert_revoked(&auth, &a, "token_revoked").await;
    assert_ok(&auth, &b).await;
}

async fn tokens_without_jti_are_revoked_by_their_hash(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "bob", "iss": "conformance", "aud": "tests", "iat": now, "exp": now + 60 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    assert_ok(&auth, &token).await;
    auth.revoke(&token).await.unwrap();
    assert_revoked(&auth, &token, "token_revoked").await;
}

async fn deny_entries_expire_with_the_token(store: Arc<dyn RevocationStore>) {
    store
        .deny_token("alice", "short-lived", Duration::from_millis(700))
        .await
        .unwrap();
    let verdict = store
        .check(&check_request("alice", "short-lived"))
        .await
        .unwrap();
    assert_ne!(verdict, tower_jwt_auth::store::Verdict::Valid);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let verdict = store
        .check(&check_request("alice", "short-lived"))
        .await
        .unwrap();
    assert_eq!(verdict, tower_jwt_auth::store::Verdict::Valid);
}

async fn revoked_token_stays_revoked_through_the_leeway(store: Arc<dyn RevocationStore>) {
    // Without the leeway in the deny entry's TTL, a logged-out token would pass
    // again between exp and exp + leeway.
    let auth = auth(&store).leeway(Duration::from_secs(2));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "alice", "jti": "leeway-id", "iss": "conformance", "aud": "tests", "iat": now, "exp": now + 1 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    auth.revoke(&token).await.unwrap();
    assert_revoked(&auth, &token, "token_revoked").await;
    // Past exp, inside the leeway: still revoked, not accepted.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, reason) = call(&auth, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason, Some("token_revoked"));
}

async fn logout_everywhere_revokes_tokens_issued_up_to_now(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let old = s.issue("alice", &claims()).unwrap().token;
    let other = s.issue("bob", &claims()).unwrap().token;
    // The mark and the next token must fall in one second: start early in one
    // (the mark is in unix seconds; a tick between them made this test flaky).
    sleep_into_the_next_second().await;
    auth.revoke_subject("alice").await.unwrap();
    // Same second as the mark: revoked too (err towards revocation).
    let same_second = s.issue("alice", &claims()).unwrap().token;
    assert_revoked(&auth, &old, "logged_out_everywhere").await;
    assert_revoked(&auth, &same_second, "logged_out_everywhere").await;
    assert_ok(&auth, &other).await;
    // A token from a later second passes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = s.issue("alice", &claims()).unwrap().token;
    assert_ok(&auth, &fresh).await;
}

/// Issue 12, bug 8: a login right after "log out everywhere", in the very
/// same second, used to be refused for up to a second.
async fn a_login_right_after_logout_everywhere_is_accepted(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let before = s.login("alice", "web", &claims()).await.unwrap();
    // The mark and the next login in one second: start early in one.
    sleep_into_the_next_second().await;
    s.logout_all("alice").await.unwrap();
    let after = s.login("alice", "web", &claims()).await.unwrap();
    let stateless_same_second = s.issue("alice", &claims()).unwrap().token;
    assert_ok(&auth, &after.access_token).await;
    assert_ok(&auth, &after.access_token).await;
    assert_revoked(&auth, &before.access_token, "logged_out_everywhere").await;
    // A token without a session from the mark's second is still refused:
    // its `iat` has whole seconds.
    assert_revoked(&auth, &stateless_same_second, "logged_out_everywhere").await;
    // The new session refreshes and keeps working.
    let next = s
        .refresh_with(&after.refresh_token, &claims())
        .await
        .unwrap();
    assert_ok(&auth, &next.access_token).await;
}

async fn ban_rejects_tokens_and_unban_restores_them(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let token = s.issue("mallory", &claims()).unwrap().token;
    let other = s.issue("bob", &claims()).unwrap().token;
    s.ban("mallory", None).await.unwrap();
    assert_revoked(&auth, &token, "banned").await;
    assert_ok(&auth, &other).await;
    assert!(s.unban("mallory").await.unwrap());
    assert!(!s.unban("mallory").await.unwrap());
    assert_ok(&auth, &token).await;
}

async fn timed_ban_ends_by_itself(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let token = s.issue("mallory", &claims()).unwrap().token;
    let before_ms = unix_now_millis();
    s.ban("mallory", Some(Duration::from_millis(800)))
        .await
        .unwrap();
    assert_revoked(&auth, &token, "banned").await;
    let verdict = store.check(&check_request("mallory", "t")).await.unwrap();
    let Verdict::Revoked(RevocationReason::Banned { until: Some(until) }) = verdict else {
        panic!("not banned with an end: {verdict:?}");
    };
    let expected = (before_ms + 800) / 1000;
    assert!(
        until.abs_diff(expected) <= 1,
        "until {until}, expected about {expected}"
    );
    assert!(matches!(
        s.login("mallory", "web", &claims()).await,
        Err(SessionError::Banned { until: Some(_) })
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ok(&auth, &token).await;
    assert!(
        !s.unban("mallory").await.unwrap(),
        "a lapsed ban is not in force"
    );
    s.login("mallory", "web", &claims()).await.unwrap();
}

async fn ban_ends_sessions_and_blocks_login(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let login = s.login("eve", "web", &claims()).await.unwrap();
    s.ban("eve", None).await.unwrap();
    assert_revoked(&auth, &login.access_token, "banned").await;
    assert!(matches!(
        s.login("eve", "web", &claims()).await,
        Err(SessionError::Banned { until: None })
    ));
    assert!(s.list("eve").await.unwrap().is_empty());
    assert!(s.refresh(&login.refresh_token).await.is_err());
    s.unban("eve").await.unwrap();
    // The old session stays ended; a new login works.
    assert_revoked(&auth, &login.access_token, "banned").await;
    let again = s.login("eve", "web", &claims()).await.unwrap();
    assert_ok(&auth, &again.access_token).await;
}

async fn subjects_with_special_characters_are_kept_apart(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let subjects = ["a:b", "a", "a:b:deny", "{a}", "a}b{", "ü ñ", "a%3Ab", ""];
    let tokens: Vec<String> = subjects
        .iter()
        .map(|sub| s.issue(sub, &claims()).unwrap().token)
        .collect();
    s.ban("a:b", None).await.unwrap();
    for (sub, token) in subjects.iter().zip(&tokens) {
        if *sub == "a:b" {
            assert_revoked(&auth, token, "banned").await;
        } else {
            assert_ok(&auth, token).await;
        }
    }
}

async fn concurrent_checks_and_revocations_lose_nothing(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let tokens: Vec<String> = (0..40)
        .map(|i| s.issue(&format!("user{}", i % 5), &claims()).unwrap().token)
        .collect();
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let auth = auth.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let _ = call(&auth, &token).await;
            }
            if i % 2 == 0 {
                auth.revoke(&token).await.unwrap();
            }
            for _ in 0..5 {
                let _ = call(&auth, &token).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (i, token) in tokens.iter().enumerate() {
        if i % 2 == 0 {
            assert_revoked(&auth, token, "token_revoked").await;
        } else {
            assert_ok(&auth, token).await;
        }
    }
}

// ------------------------------------------------------------------ sessions

async fn device_limit_evicts_the_oldest_session(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store).max_sessions(2);
    let s = auth.sessions();
    let a = s.login("alice", "web", &claims()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = s.login("alice", "mobile", &claims()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = s.login("alice", "tablet", &claims()).await.unwrap();
    assert!(a.replaced.is_empty() && b.replaced.is_empty());
    assert_eq!(c.replaced, vec![a.session_id.clone()]);
    assert_revoked(&auth, &a.access_token, "replaced").await;
    assert_ok(&auth, &b.access_token).await;
    assert_ok(&auth, &c.access_token).await;
    let live = live_session_ids(&s, "alice").await;
    assert_eq!(live, vec![b.session_id, c.session_id]);
    assert!(matches!(
        s.refresh(&a.refresh_token).await,
        Err(SessionError::SessionEnded(_))
    ));
}

async fn logins_in_one_millisecond_still_evict_in_login_order(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store).max_sessions(2);
    let s = auth.sessions();
    let mut ids: Vec<String> = Vec::new();
    for device in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let login = s.login("alice", device, &claims()).await.unwrap();
        let expected: Vec<String> = ids
            .len()
            .checked_sub(2)
            .map(|i| ids[i].clone())
            .into_iter()
            .collect();
        assert_eq!(login.replaced, expected, "login on device {device}");
        ids.push(login.session_id);
    }
    let live = live_session_ids(&s, "alice").await;
    assert_eq!(live, ids[ids.len() - 2..]);
}

async fn device_limit_can_reject_new_logins(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store)
        .max_sessions(1)
        .session_limit_policy(LimitPolicy::RejectNew);
    let s = auth.sessions();
    let a = s.login("alice", "web", &claims()).await.unwrap();
    assert!(matches!(
        s.login("alice", "mobile", &claims()).await,
        Err(SessionError::LimitReached)
    ));
    assert_ok(&auth, &a.access_token).await;
    assert_eq!(s.list("alice").await.unwrap().len(), 1);
    assert_eq!(
        live_session_ids(&s, "alice").await,
        vec![a.session_id.clone()]
    );
    // Once the session ends, there is room again.
    s.kick("alice", &a.session_id).await.unwrap();
    let b = s.login("alice", "mobile", &claims()).await.unwrap();
    assert!(b.replaced.is_empty());
}

async fn a_second_login_on_the_same_device_replaces_the_first(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store).one_session_per_device(true);
    let s = auth.sessions();
    let web = s.login("alice", "web", &claims()).await.unwrap();
    let mobile1 = s.login("alice", "mobile", &claims()).await.unwrap();
    let mobile2 = s.login("alice", "mobile", &claims()).await.unwrap();
    assert_eq!(mobile2.replaced, vec![mobile1.session_id.clone()]);
    assert_revoked(&auth, &mobile1.access_token, "replaced").await;
    assert_ok(&auth, &web.access_token).await;
    assert_ok(&auth, &mobile2.access_token).await;
    let mut live = live_session_ids(&s, "alice").await;
    live.sort();
    let mut expected = vec![web.session_id, mobile2.session_id];
    expected.sort();
    assert_eq!(live, expected);
}

async fn fifty_concurrent_logins_never_exceed_the_limit(store: Arc<dyn RevocationStore>) {
    for policy in [LimitPolicy::EvictOldest, LimitPolicy::RejectNew] {
        let auth = auth(&store).max_sessions(3).session_limit_policy(policy);
        let subject = format!("{policy:?}");
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = auth.sessions();
            let subject = subject.clone();
            tasks.push(tokio::spawn(async move {
                s.login(&subject, &format!("device{i}"), &claims()).await
            }));
        }
        let mut logins = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(login) => logins.push(login),
                Err(SessionError::LimitReached) if policy == LimitPolicy::RejectNew => {}
                Err(err) => panic!("{policy:?}: {err:?}"),
            }
        }
        let live = auth.sessions().list(&subject).await.unwrap();
        assert_eq!(live.len(), 3, "{policy:?}: {live:?}");
        match policy {
            LimitPolicy::RejectNew => assert_eq!(logins.len(), 3),
            _ => {
                assert_eq!(logins.len(), 50);
                let evicted: usize = logins.iter().map(|l| l.replaced.len()).sum();
                assert_eq!(evicted, 47);
            }
        }
        let mut accepted = 0;
        for login in &logins {
            if call(&auth, &login.access_token).await.0 == StatusCode::OK {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 3, "{policy:?}");
    }
}

async fn idle_sessions_end_and_activity_keeps_them_alive(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store)
        .idle_timeout(Duration::from_millis(1200))
        .touch_interval(Duration::from_millis(100));
    let s = auth.sessions();
    let busy = s.login("alice", "web", &claims()).await.unwrap();
    let idle = s.login("alice", "mobile", &claims()).await.unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_ok(&auth, &busy.access_token).await;
    }
    assert_revoked(&auth, &idle.access_token, "idle_timeout").await;
    assert_ok(&auth, &busy.access_token).await;
    let live = s.list("alice").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].session_id, busy.session_id);
    assert!(live[0].last_seen_at > live[0].created_at);
    assert!(matches!(
        s.refresh(&idle.refresh_token).await,
        Err(SessionError::SessionEnded(_))
    ));
}

async fn absolute_lifetime_caps_a_busy_session(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store)
        .idle_timeout(Duration::from_secs(10))
        .session_lifetime(Duration::from_millis(900));
    let s = auth.sessions();
    let login = s.login("alice", "web", &claims()).await.unwrap();
    assert_ok(&auth, &login.access_token).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, reason) = call(&auth, &login.access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        matches!(reason, Some("session_expired") | Some("idle_timeout")),
        "{reason:?}"
    );
}

async fn kick_ends_one_session_and_kick_all_ends_every_one(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let a = s.login("alice", "web", &claims()).await.unwrap();
    let b = s.login("alice", "mobile", &claims()).await.unwrap();
    let c = s.login("alice", "tablet", &claims()).await.unwrap();
    let bob = s.login("bob", "web", &claims()).await.unwrap();
    assert!(s.kick("alice", &a.session_id).await.unwrap());
    assert!(!s.kick("alice", &a.session_id).await.unwrap());
    assert_revoked(&auth, &a.access_token, "kicked").await;
    assert_ok(&auth, &b.access_token).await;
    assert_eq!(s.kick_all("alice").await.unwrap(), 2);
    assert_eq!(s.kick_all("alice").await.unwrap(), 0);
    assert_revoked(&auth, &b.access_token, "kicked").await;
    assert_revoked(&auth, &c.access_token, "kicked").await;
    assert_ok(&auth, &bob.access_token).await;
    assert!(s.list("alice").await.unwrap().is_empty());
    // Ending them all again, for another reason, ends none and leaves the
    // markers as they were.
    let sessions = store.sessions().expect("the store keeps sessions");
    let markers = Duration::from_secs(60);
    let ended = sessions.end_all_sessions("alice", SessionEnd::LoggedOutEverywhere, markers);
    assert_eq!(ended.await.unwrap(), 0);
    assert_revoked(&auth, &a.access_token, "kicked").await;
    assert_revoked(&auth, &b.access_token, "kicked").await;
}

async fn logout_ends_the_callers_session(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let a = s.login("alice", "web", &claims()).await.unwrap();
    let b = s.login("alice", "mobile", &claims()).await.unwrap();
    let who = auth.verify(&a.access_token).unwrap();
    s.logout(&who).await.unwrap();
    assert_revoked(&auth, &a.access_token, "token_revoked").await;
    assert!(matches!(
        s.refresh(&a.refresh_token).await,
        Err(SessionError::SessionEnded(_))
    ));
    assert_ok(&auth, &b.access_token).await;
    // A second access token of the same session (from a refresh) is refused too.
    let listed = s.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
}

async fn logout_all_ends_every_session_and_refresh_token(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let a = s.login("alice", "web", &claims()).await.unwrap();
    let b = s.login("alice", "mobile", &claims()).await.unwrap();
    s.logout_all("alice").await.unwrap();
    assert_revoked(&auth, &a.access_token, "logged_out_everywhere").await;
    assert!(s.list("alice").await.unwrap().is_empty());
    assert!(s.refresh(&b.refresh_token).await.is_err());
}

async fn refresh_rotates_and_reuse_ends_the_session(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let login = s.login("alice", "web", &claims()).await.unwrap();
    let first = s
        .refresh_with(&login.refresh_token, &claims())
        .await
        .unwrap();
    assert_ne!(first.refresh_token, login.refresh_token);
    assert_eq!(first.session_id, login.session_id);
    assert_ok(&auth, &first.access_token).await;
    let second = s
        .refresh_with(&first.refresh_token, &claims())
        .await
        .unwrap();
    assert_ok(&auth, &second.access_token).await;
    // The first refresh token again: theft. The whole session ends.
    assert!(matches!(
        s.refresh(&login.refresh_token).await,
        Err(SessionError::RefreshReused)
    ));
    assert_revoked(&auth, &second.access_token, "refresh_reuse").await;
    assert!(s.refresh(&second.refresh_token).await.is_err());
    // A forged secret for the current generation is refused and changes nothing.
    let other = s.login("alice", "mobile", &claims()).await.unwrap();
    let mut parts: Vec<&str> = other.refresh_token.split('.').collect();
    parts[3] = "forgedsecret";
    assert!(matches!(
        s.refresh(&parts.join(".")).await,
        Err(SessionError::InvalidRefreshToken)
    ));
    assert_ok(&auth, &other.access_token).await;
    s.refresh(&other.refresh_token).await.unwrap();
    for garbage in ["", "a.b", "...", "YWxpY2U.x.notanumber.y"] {
        assert!(s.refresh(garbage).await.is_err());
    }
}

async fn two_concurrent_refreshes_of_one_token_have_one_winner(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    for round in 0..10 {
        let login = s
            .login(&format!("racer{round}"), "web", &claims())
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            tokio::spawn({
                let s = s.clone();
                let t = login.refresh_token.clone();
                async move { s.refresh(&t).await }
            }),
            tokio::spawn({
                let s = s.clone();
                let t = login.refresh_token.clone();
                async move { s.refresh(&t).await }
            })
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "round {round}: {a:?} {b:?}"
        );
        // The loser presented an already rotated token: the session ends.
        let loser = if a.is_ok() { b } else { a };
        assert!(
            matches!(loser, Err(SessionError::RefreshReused)),
            "round {round}: {loser:?}"
        );
    }
}

async fn one_time_tokens_are_consumed_exactly_once(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let token = s
        .one_time_token("password-reset", "alice", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s
        .consume_one_time_token("email-verify", &token)
        .await
        .is_err());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            s.consume_one_time_token("password-reset", &token).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Ok(subject) = t.await.unwrap() {
            winners.push(subject);
        }
    }
    assert_eq!(winners, vec!["alice".to_owned()]);
    assert!(s
        .consume_one_time_token("password-reset", &token)
        .await
        .is_err());
    // Purposes do not share tokens.
    let verify = s
        .one_time_token("email-verify", "bob", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(s
        .consume_one_time_token("password-reset", &verify)
        .await
        .is_err());
    assert_eq!(
        s.consume_one_time_token("email-verify", &verify)
            .await
            .unwrap(),
        "bob"
    );
    // Expired tokens are refused.
    let short = s
        .one_time_token("email-verify", "bob", Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(s
        .consume_one_time_token("email-verify", &short)
        .await
        .is_err());
}

/// `first_use`: the replay cache of DPoP proofs and logout tokens. One
/// winner among concurrent callers, scopes apart, forgotten after the ttl,
/// and a hostile id (huge, odd bytes) is just another id.
async fn single_use_ids_are_first_used_exactly_once(store: Arc<dyn RevocationStore>) {
    let minute = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.first_use("dpop", "jti-1", minute).await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1);
    assert!(!store.first_use("dpop", "jti-1", minute).await.unwrap());
    assert!(store.first_use("logout", "jti-1", minute).await.unwrap());
    let hostile = format!("{}\0{{x}}:\r\n", "j".repeat(100_000));
    assert!(store.first_use("dpop", &hostile, minute).await.unwrap());
    assert!(!store.first_use("dpop", &hostile, minute).await.unwrap());
    // A zero ttl is kept for at least a moment, never an error.
    store
        .first_use("dpop", "zero", Duration::ZERO)
        .await
        .unwrap();
    assert!(store
        .first_use("dpop", "short", Duration::from_millis(200))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store
        .first_use("dpop", "short", Duration::from_millis(200))
        .await
        .unwrap());
    assert!(store
        .first_use("dpop", "huge", Duration::MAX)
        .await
        .unwrap());
}

/// `end_provider_session`: a back-channel logout by `sid` refuses every
/// token of that issuer's session (whatever its subject), and only those:
/// not another issuer's session of the same id, not another session, not a
/// plain check; ban and deny keep their precedence; the mark expires.
async fn an_ended_provider_session_refuses_its_tokens_only(store: Arc<dyn RevocationStore>) {
    let logged_out = Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::LoggedOut));
    let (a, b) = ("https://a.example", "https://b.example");
    let alice = "\0https://a.example\0alice";
    let req = check_request(alice, "jti-1");
    let check =
        |iss: &'static str, sid: &'static str| store.check_with_provider_session(&req, iss, sid);
    assert_eq!(check(a, "s-1").await.unwrap(), Verdict::Valid);
    store
        .end_provider_session(a, "s-1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(check(a, "s-1").await.unwrap(), logged_out);
    // Any subject's token of that session: the logout may name no subject.
    let other = check_request("\0https://a.example\0bob", "jti-2");
    assert_eq!(
        store
            .check_with_provider_session(&other, a, "s-1")
            .await
            .unwrap(),
        logged_out
    );
    assert_eq!(
        check(b, "s-1").await.unwrap(),
        Verdict::Valid,
        "another issuer"
    );
    assert_eq!(
        check(a, "s-2").await.unwrap(),
        Verdict::Valid,
        "another session"
    );
    assert_eq!(store.check(&req).await.unwrap(), Verdict::Valid);
    // Hostile ids are ids like any other; no two pairs share a mark.
    let odd = "s-1\0{x}:\r\n%";
    store
        .end_provider_session(b, odd, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(check(b, odd).await.unwrap(), logged_out);
    assert_eq!(check(b, "s-1").await.unwrap(), Verdict::Valid);
    assert_eq!(check(a, "s-1\0{x}").await.unwrap(), Verdict::Valid);
    // A ban and a deny entry still tell their own reason first.
    store
        .deny_token(alice, "jti-1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        check(a, "s-1").await.unwrap(),
        Verdict::Revoked(RevocationReason::TokenRevoked)
    );
    // A shorter later mark never shortens it; a short one wears off.
    store
        .end_provider_session(a, "short", Duration::from_millis(300))
        .await
        .unwrap();
    store
        .end_provider_session(a, "s-1", Duration::from_millis(1))
        .await
        .unwrap();
    let fresh = check_request(alice, "jti-3");
    let check = |sid: &'static str| store.check_with_provider_session(&fresh, a, sid);
    assert_eq!(check("short").await.unwrap(), logged_out);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(check("short").await.unwrap(), Verdict::Valid, "worn off");
    assert_eq!(check("s-1").await.unwrap(), logged_out, "kept its 60 s");
}

async fn session_ids_are_unique_and_listed_with_their_device(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let mut ids = HashSet::new();
    for device in ["web", "mobile", "cli"] {
        ids.insert(
            s.login("alice", device, &claims())
                .await
                .unwrap()
                .session_id,
        );
    }
    assert_eq!(ids.len(), 3);
    let listed = s.list("alice").await.unwrap();
    let devices: HashSet<&str> = listed.iter().map(|i| i.device.as_str()).collect();
    assert_eq!(devices, HashSet::from(["web", "mobile", "cli"]));
    for info in &listed {
        assert!(ids.contains(&info.session_id));
        assert!(info.expires_at > info.created_at);
    }
}

// ------------------------------------------------------- issue 12: store bugs

/// `<base64url(subject)>.<sid>.<generation>.<secret>` with the subject part
/// of a real refresh token.
fn forged_refresh(real: &str, generation: &str, secret: &str) -> String {
    let parts: Vec<&str> = real.split('.').collect();
    format!("{}.{}.{generation}.{secret}", parts[0], parts[1])
}

/// Issue 12, bug 4: knowing a subject and a session id (readable in any
/// access token) must not be enough to end the session: an older
/// generation ends it only with the secret that was really issued for it.
async fn a_forged_old_generation_ends_nothing_and_the_real_one_does(
    store: Arc<dyn RevocationStore>,
) {
    let auth = auth(&store);
    let s = auth.sessions();
    let login = s.login("alice", "web", &claims()).await.unwrap();
    let first = s
        .refresh_with(&login.refresh_token, &claims())
        .await
        .unwrap();
    for (generation, secret) in [
        ("0", "garbage"),
        ("0", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("1", "garbage"),
        ("2", "garbage"),
        ("9007199254740993", "garbage"),
        ("18446744073709551615", "garbage"),
    ] {
        let forged = forged_refresh(&login.refresh_token, generation, secret);
        assert!(
            matches!(
                s.refresh(&forged).await,
                Err(SessionError::InvalidRefreshToken)
            ),
            "generation {generation}"
        );
        assert_ok(&auth, &first.access_token).await;
    }
    assert_eq!(live_session_ids(&s, "alice").await, vec![login.session_id]);
    // The real generation-0 token again: theft, the session ends.
    assert!(matches!(
        s.refresh(&login.refresh_token).await,
        Err(SessionError::RefreshReused)
    ));
    assert_revoked(&auth, &first.access_token, "refresh_reuse").await;
    assert!(s.refresh(&first.refresh_token).await.is_err());
}

/// Issue 12, bug 4: reuse is recognised for the last 16 earlier
/// generations; an older token is only invalid (its secret can no longer
/// be proven) and ends nothing.
async fn reuse_is_detected_within_the_window_of_earlier_generations(
    store: Arc<dyn RevocationStore>,
) {
    let auth = auth(&store);
    let s = auth.sessions();
    let login = s.login("alice", "web", &claims()).await.unwrap();
    let mut tokens = vec![login.refresh_token.clone()];
    for _ in 0..20 {
        let next = s.refresh(tokens.last().unwrap()).await.unwrap();
        tokens.push(next.refresh_token);
    }
    // Generation 20 is current; 4..=19 are kept, 0..=3 are not.
    for old in &tokens[..4] {
        assert!(matches!(
            s.refresh(old).await,
            Err(SessionError::InvalidRefreshToken)
        ));
    }
    assert_ok(&auth, &login.access_token).await;
    assert!(matches!(
        s.refresh(&tokens[4]).await,
        Err(SessionError::RefreshReused)
    ));
    assert_revoked(&auth, &login.access_token, "refresh_reuse").await;
}

/// Issue 12, bug 5: a session that lapsed stays refused with its reason
/// however many writes (which sweep the `MemoryStore`) come in between,
/// even unauthenticated ones (refreshes with made-up tokens).
async fn an_idle_session_stays_refused_after_a_flood_of_writes(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store).idle_timeout(Duration::from_millis(500));
    let s = auth.sessions();
    let login = s.login("alice", "web", &claims()).await.unwrap();
    assert_ok(&auth, &login.access_token).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let flood = forged_refresh(
        &s.login("flooder", "web", &claims())
            .await
            .unwrap()
            .refresh_token,
        "0",
        "garbage",
    );
    for i in 0..1500 {
        let bogus = flood.replace(".0.", &format!(".{i}."));
        assert!(s.refresh(&bogus).await.is_err());
    }
    assert_revoked(&auth, &login.access_token, "idle_timeout").await;
    assert!(matches!(
        s.refresh(&login.refresh_token).await,
        Err(SessionError::SessionEnded(_))
    ));
    assert_revoked(&auth, &login.access_token, "idle_timeout").await;
}

/// Issue 12, bug 5: a token whose session the store has never heard of
/// (another store, a restart, a marker long gone) is never accepted.
async fn a_token_of_an_unknown_session_is_refused(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let token = s
        .issue_with_session("nobody-knows-me", Some("no-such-session"), &claims())
        .unwrap()
        .token;
    assert_revoked(&auth, &token, "session_ended").await;
    let token = s
        .issue_with_session("alice", Some("no-such-session"), &claims())
        .unwrap()
        .token;
    s.login("alice", "web", &claims()).await.unwrap();
    assert_revoked(&auth, &token, "session_ended").await;
}

fn unix_now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issue 12, bug 6: a ban of any length (up to `Duration::MAX`) applies, is
/// reported with an end in the future (bans are capped at 100 years) and
/// never panics the store.
async fn a_huge_ban_applies_and_ends_in_the_future(store: Arc<dyn RevocationStore>) {
    let auth = auth(&store);
    let s = auth.sessions();
    let hundred_years = 100 * 365 * 24 * 3600;
    for (i, duration) in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(18_446_744_073_709_551),
        Duration::from_millis(u64::MAX),
        Duration::from_secs(hundred_years * 2),
    ]
    .into_iter()
    .enumerate()
    {
        let subject = format!("huge-ban-{i}");
        let login = s.login(&subject, "web", &claims()).await.unwrap();
        s.ban(&subject, Some(duration)).await.unwrap();
        assert_revoked(&auth, &login.access_token, "banned").await;
        let verdict = store
            .check(&check_request(&subject, "any-token"))
            .await
            .unwrap();
        let tower_jwt_auth::store::Verdict::Revoked(tower_jwt_auth::RevocationReason::Banned {
            until: Some(until),
        }) = verdict
        else {
            panic!("{duration:?}: {verdict:?}");
        };
        let now = unix_now();
        assert!(
            until > now + hundred_years - 86_400 && until <= now + hundred_years + 86_400,
            "{duration:?}: until {until}, now {now}"
        );
        match s.login(&subject, "web", &claims()).await {
            Err(SessionError::Banned { until: Some(u) }) => assert!(u > now, "{u}"),
            other => panic!("{duration:?}: {other:?}"),
        }
        assert!(s.unban(&subject).await.unwrap());
        s.login(&subject, "web", &claims()).await.unwrap();
    }
}

/// Issue 12, bug 6: every duration a caller hands a store may be as large
/// as `Duration::MAX`: nothing panics, and each entry holds.
async fn huge_durations_never_panic_a_store(store: Arc<dyn RevocationStore>) {
    let max = Duration::MAX;
    let sessions = store.sessions().expect("the store keeps sessions");
    store.deny_token("alice", "t1", max).await.unwrap();
    assert_ne!(
        store.check(&check_request("alice", "t1")).await.unwrap(),
        tower_jwt_auth::store::Verdict::Valid
    );
    store
        .revoke_subject("bob", unix_now_millis() + 5_000, Some(max), max)
        .await
        .unwrap();
    assert_ne!(
        store.check(&check_request("bob", "t")).await.unwrap(),
        tower_jwt_auth::store::Verdict::Valid
    );
    let session = tower_jwt_auth::store::NewSession {
        subject: "carol".into(),
        session_id: "s1".into(),
        device: "web".into(),
        refresh_hash: "h0".into(),
        max_sessions: 1,
        limit_policy: LimitPolicy::EvictOldest,
        replace_same_device: false,
        idle_timeout: max,
        lifetime: max,
        markers: max,
    };
    sessions.create_session(session.clone()).await.unwrap();
    let mut check = check_request("carol", "t");
    check.session_id = Some("s1".into());
    check.touch_interval = Duration::ZERO;
    check.idle_timeout = max;
    check.marker_ttl = max;
    assert_eq!(
        store.check(&check).await.unwrap(),
        tower_jwt_auth::store::Verdict::Valid
    );
    let rotation = tower_jwt_auth::store::Rotation {
        subject: "carol".into(),
        session_id: "s1".into(),
        generation: 0,
        presented_hash: "h0".into(),
        new_hash: "h1".into(),
        idle_timeout: max,
        markers: max,
    };
    assert_eq!(
        sessions.rotate_refresh(rotation.clone()).await.unwrap(),
        tower_jwt_auth::store::RotateOutcome::Rotated { generation: 1 }
    );
    let listed = sessions.list_sessions("carol").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].expires_at > listed[0].created_at);
    // A second login evicts the first (limit 1), leaving a marker kept "for ever".
    sessions
        .create_session(tower_jwt_auth::store::NewSession {
            session_id: "s2".into(),
            ..session
        })
        .await
        .unwrap();
    assert_eq!(
        store.check(&check).await.unwrap(),
        tower_jwt_auth::store::Verdict::Revoked(tower_jwt_auth::RevocationReason::SessionEnded(
            tower_jwt_auth::SessionEnd::Replaced
        ))
    );
    for generation in [u64::MAX, u64::MAX - 1, 1 << 53, (1 << 53) + 1] {
        let outcome = sessions
            .rotate_refresh(tower_jwt_auth::store::Rotation {
                session_id: "s2".into(),
                generation,
                ..rotation.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            outcome,
            tower_jwt_auth::store::RotateOutcome::Invalid,
            "{generation}"
        );
    }
    assert_eq!(
        sessions
            .end_all_sessions("carol", tower_jwt_auth::SessionEnd::Kicked, max)
            .await
            .unwrap(),
        1
    );
    sessions.put_one_time("p", "h", "dave", max).await.unwrap();
    assert_eq!(
        sessions.take_one_time("p", "h").await.unwrap().as_deref(),
        Some("dave")
    );
}

/// Issue 12, bug 9: one account logging in again and again with a small
/// device limit leaves a bounded number of markers, and every evicted
/// session's token stays refused, with or without its marker.
async fn evicted_sessions_stay_refused_when_their_markers_are_capped(
    store: Arc<dyn RevocationStore>,
) {
    let auth = auth(&store).max_sessions(2);
    let s = auth.sessions();
    let mut logins = Vec::new();
    for i in 0..300 {
        logins.push(s.login("alice", &format!("d{i}"), &claims()).await.unwrap());
    }
    let (evicted, live) = logins.split_at(298);
    for login in live {
        assert_ok(&auth, &login.access_token).await;
    }
    // The oldest markers were dropped by the cap: refused all the same.
    for login in &evicted[..10] {
        let (status, reason) = call(&auth, &login.access_token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            matches!(reason, Some("session_ended" | "replaced")),
            "{reason:?}"
        );
        assert!(s.refresh(&login.refresh_token).await.is_err());
    }
    // The latest ones still tell why.
    for login in &evicted[evicted.len() - 10..] {
        assert_revoked(&auth, &login.access_token, "replaced").await;
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store: std::sync::Arc<dyn tower_jwt_auth::RevocationStore> =
                        std::sync::Arc::new(tower_jwt_auth::MemoryStore::new());
                    super::$name(store).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = crate::common::redis_server::RedisServer::start();
                    let store = tower_jwt_auth::RedisStore::connect(&server.url()).await.unwrap();
                    let store: std::sync::Arc<dyn tower_jwt_auth::RevocationStore> =
                        std::sync::Arc::new(store);
                    super::$name(store).await;
                    drop(server);
                }
            )*
        }

        /// One cluster (three masters, three replicas) shared by the module;
        /// each test keeps to its own key prefix.
        #[cfg(feature = "redis-cluster")]
        mod redis_cluster_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let cluster = crate::common::redis_cluster::RedisCluster::shared();
                    let urls = cluster.urls();
                    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
                    let store = tower_jwt_auth::store::RedisStoreBuilder::cluster(&urls)
                        .prefix(concat!("conf-", stringify!($name)))
                        .build()
                        .await
                        .unwrap();
                    let store: std::sync::Arc<dyn tower_jwt_auth::RevocationStore> =
                        std::sync::Arc::new(store);
                    super::$name(store).await;
                }
            )*
        }
    };
}

conformance!(
    revoking_one_token_rejects_only_that_token,
    tokens_without_jti_are_revoked_by_their_hash,
    deny_entries_expire_with_the_token,
    revoked_token_stays_revoked_through_the_leeway,
    logout_everywhere_revokes_tokens_issued_up_to_now,
    a_login_right_after_logout_everywhere_is_accepted,
    ban_rejects_tokens_and_unban_restores_them,
    timed_ban_ends_by_itself,
    ban_ends_sessions_and_blocks_login,
    subjects_with_special_characters_are_kept_apart,
    concurrent_checks_and_revocations_lose_nothing,
    device_limit_evicts_the_oldest_session,
    logins_in_one_millisecond_still_evict_in_login_order,
    device_limit_can_reject_new_logins,
    a_second_login_on_the_same_device_replaces_the_first,
    fifty_concurrent_logins_never_exceed_the_limit,
    idle_sessions_end_and_activity_keeps_them_alive,
    absolute_lifetime_caps_a_busy_session,
    kick_ends_one_session_and_kick_all_ends_every_one,
    logout_ends_the_callers_session,
    logout_all_ends_every_session_and_refresh_token,
    refresh_rotates_and_reuse_ends_the_session,
    two_concurrent_refreshes_of_one_token_have_one_winner,
    one_time_tokens_are_consumed_exactly_once,
    single_use_ids_are_first_used_exactly_once,
    an_ended_provider_session_refuses_its_tokens_only,
    session_ids_are_unique_and_listed_with_their_device,
    a_forged_old_generation_ends_nothing_and_the_real_one_does,
    reuse_is_detected_within_the_window_of_earlier_generations,
    an_idle_session_stays_refused_after_a_flood_of_writes,
    a_token_of_an_unknown_session_is_refused,
    a_huge_ban_applies_and_ends_in_the_future,
    huge_durations_never_panic_a_store,
    evicted_sessions_stay_refused_when_their_markers_are_capped,
);

/// Issue 12, bug 9: the `MemoryStore` holds a bounded number of entries for
/// one account however often it logs in (device limit 2: two sessions and
/// at most 64 markers).
#[tokio::test]
async fn memory_store_markers_per_subject_are_bounded() {
    let memory = tower_jwt_auth::MemoryStore::new();
    let store: Arc<dyn RevocationStore> = Arc::new(memory.clone());
    let auth = auth(&store).max_sessions(2);
    let s = auth.sessions();
    let first = s.login("alice", "web", &claims()).await.unwrap();
    for i in 0..2000 {
        s.login("alice", &format!("d{i}"), &claims()).await.unwrap();
    }
    assert!(memory.len() <= 2 + 64, "{} entries", memory.len());
    assert_revoked(&auth, &first.access_token, "session_ended").await;
}
