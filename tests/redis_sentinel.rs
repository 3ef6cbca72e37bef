//! `RedisStore` on a real Sentinel group: the master is killed, the sentinels
//! promote the replica, and the same store (and its near-cache subscription)
//! finds the new master by itself.

#![cfg(feature = "redis-sentinel")]

mod common;

use common::layer::{call, failover_auth, issue, near_cache_store, rejected_within, OK, REVOKED};

use std::time::{Duration, Instant};

use common::redis_sentinel::{SentinelGroup, MASTER_NAME};
use http::StatusCode;
use tower_jwt_auth::store::RedisStoreBuilder;
use tower_jwt_auth::{JwtAuth, RedisStore};

const SECRET: &[u8] = b"sentinel-test-secret-0123456789-abcdefg";

async fn store(sentinels: &[String], near: bool) -> RedisStore {
    let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
    near_cache_store(RedisStoreBuilder::sentinel(&sentinels, MASTER_NAME), near).await
}

fn auth(store: RedisStore) -> JwtAuth<serde_json::Value> {
    failover_auth(SECRET, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_failover_by_itself() {
    let mut group = SentinelGroup::start();
    let sentinels = group.sentinel_addrs();
    let a = store(&sentinels, true).await;
    let b = store(&sentinels, true).await;
    let (auth_a, auth_b) = (auth(a.clone()), auth(b.clone()));

    let t1 = issue(&auth_a, "alice");
    let t2 = issue(&auth_a, "alice");
    for token in [&t1, &t2] {
        assert_eq!(call(&auth_a, token).await, OK);
        assert_eq!(call(&auth_b, token).await, OK);
    }
    // A revocation written before the failover, replicated (without this
    // wait, a write acknowledged by the master but not yet replicated may
    // be lost with it: Redis replication is asynchronous).
    auth_a.revoke(&t2).await.unwrap();
    group.wait_replicated(0);
    rejected_within(&auth_b, &t2, Duration::from_millis(100)).await;

    let old_port = group.master_port();
    assert_eq!(old_port, {
        let url = group.server_url(0);
        url.rsplit(':').next().unwrap().parse::<u16>().unwrap()
    });
    group.kill_server(0);
    let killed = Instant::now();
    let mut failures = 0;
    let mut other_answers = Vec::new();
    let recovered = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s ({failures} failures)"
        );
        match call(&auth_a, &t1).await {
            OK => break killed.elapsed(),
            (StatusCode::SERVICE_UNAVAILABLE, _) => failures += 1,
            other => other_answers.push(other),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (new_master, _) = group.wait_failover(old_port, Duration::from_secs(5));
    assert_eq!(new_master, 1);
    eprintln!(
        "master killed: checks answered again after {recovered:?} ({failures} x 503 meanwhile)"
    );
    assert!(other_answers.is_empty(), "wrong answers: {other_answers:?}");

    // B was idle during the outage: it may learn of the failover from its
    // first request (a 503, like A's) if the `+switch-master` event is still
    // on its way on a loaded machine. It must recover by itself too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call(&auth_b, &t1).await {
            OK => break,
            (StatusCode::SERVICE_UNAVAILABLE, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("B after the failover: {other:?}"),
        }
    }
    for _ in 0..50 {
        assert_eq!(call(&auth_a, &t1).await, OK);
        assert_eq!(call(&auth_b, &t1).await, OK);
    }
    // Written before the failover, still enforced.
    assert_eq!(call(&auth_a, &t2).await, REVOKED);
    assert_eq!(call(&auth_b, &t2).await, REVOKED);
    // Both near-cache subscriptions found the new master.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(a.near_cache_stats().unwrap().subscribed && b.near_cache_stats().unwrap().subscribed) {
        assert!(Instant::now() < deadline, "subscriptions did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Revocations and sessions work on the new master, and reach B's cache.
    assert_eq!(call(&auth_b, &t1).await, OK);
    auth_a.revoke(&t1).await.unwrap();
    let took = rejected_within(&auth_b, &t1, Duration::from_millis(100)).await;
    eprintln!("after the failover, B saw A's revocation after {took:?}");
    let pair = auth_a
        .sessions()
        .login("alice", "web", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(call(&auth_b, &pair.access_token).await, OK);
    assert_eq!(
        group.cmd::<u64>(1, &["EXISTS", "jwt:{alice}:sessions"]),
        1,
        "the session was written on the new master"
    );
}

/// `SENTINEL FAILOVER`: the old master stays up, and stays a master for
/// several seconds before the sentinels demote it. The store must move to the
/// new master as soon as the sentinels name it (writes left on the old one
/// would be lost when it is demoted), without failed requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_moves_the_store_to_the_new_master_at_once() {
    let group = SentinelGroup::start();
    let sentinels = group.sentinel_addrs();
    let a = store(&sentinels, true).await;
    let b = store(&sentinels, true).await;
    let (auth_a, auth_b) = (auth(a.clone()), auth(b.clone()));
    let login = auth_a
        .sessions()
        .login("alice", "web", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(call(&auth_a, &login.access_token).await, OK);

    let old_port = group.master_port();
    let started = Instant::now();
    let _: () = group.sentinel_cmd(&["SENTINEL", "FAILOVER", MASTER_NAME]);
    let mut failures = Vec::new();
    let mut operations = 0;
    // Session checks (they write the session's last-seen time) and
    // revocations while the sentinels switch masters.
    while group.master_port() == old_port {
        assert!(started.elapsed() < Duration::from_secs(20), "no switch");
        operations += 2;
        let got = call(&auth_a, &login.access_token).await;
        if got != OK {
            failures.push(format!("check: {got:?}"));
        }
        let token = issue(&auth_a, "bob");
        if let Err(err) = auth_a.revoke(&token).await {
            failures.push(format!("revoke: {err}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let named = started.elapsed();
    let (new_master, _) = group.wait_failover(old_port, Duration::from_secs(5));
    let old_master = 1 - new_master;
    // Shortly after the sentinels name the new master, every write lands
    // there, although the old master still accepts writes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let role: Vec<redis::Value> = group.cmd(old_master, &["ROLE"]);
    let old_still_master =
        matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master");
    for i in 0..20 {
        operations += 2;
        let token = issue(&auth_a, &format!("carol{i}"));
        auth_a.revoke(&token).await.unwrap();
        assert_eq!(call(&auth_b, &token).await, REVOKED);
        let key = format!("jwt:{{carol{i}}}:deny:*");
        let on_new: Vec<String> = group.cmd(new_master, &["KEYS", &key]);
        assert_eq!(on_new.len(), 1, "revocation {i} not on the new master");
        if old_still_master {
            let on_old: Vec<String> = group.cmd(old_master, &["KEYS", &key]);
            assert!(
                on_old.is_empty(),
                "revocation {i} written on the old master"
            );
        }
    }
    eprintln!(
        "SENTINEL FAILOVER: new master named after {named:?} (old one still a master \
         300 ms later: {old_still_master}); {} failed operations of {operations}: \
         {failures:?}",
        failures.len()
    );
    // The session and its checks continue on the new master; B's near-cache
    // follows the new master's events.
    assert_eq!(call(&auth_b, &login.access_token).await, OK);
    auth_a.revoke(&login.access_token).await.unwrap();
    rejected_within(&auth_b, &login.access_token, Duration::from_millis(100)).await;
    assert_eq!(
        group.cmd::<u64>(new_master, &["EXISTS", "jwt:{alice}:sessions"]),
        1
    );
    assert!(failures.len() <= 2, "{failures:?}");
}
