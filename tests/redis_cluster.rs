//! `RedisStore` on a real Redis Cluster: a master killed mid-traffic, the
//! near-cache's pushed invalidation across shards, scripts reloaded on nodes
//! that lost them. (The store-generic suite runs on a cluster in
//! `tests/conformance.rs`.)

#![cfg(feature = "redis-cluster")]

mod common;

use common::layer::{call, failover_auth, issue, near_cache_store, rejected_within, OK, REVOKED};

use std::time::{Duration, Instant};

use common::redis_cluster::RedisCluster;
use http::StatusCode;
use tower_jwt_auth::store::RedisStoreBuilder;
use tower_jwt_auth::{JwtAuth, RedisStore};

const SECRET: &[u8] = b"cluster-test-secret-0123456789-abcdefgh";

async fn store(urls: &[String], prefix: &str, near: bool) -> RedisStore {
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    near_cache_store(RedisStoreBuilder::cluster(&urls).prefix(prefix), near).await
}

fn auth(store: RedisStore) -> JwtAuth<serde_json::Value> {
    failover_auth(SECRET, store)
}

/// A subject whose keys (under `prefix`) live on node `node`, or elsewhere.
fn subject_on(cluster: &RedisCluster, prefix: &str, node: usize, same: bool) -> String {
    (0..1000)
        .map(|i| format!("user{i}"))
        .find(|s| (cluster.master_of(&format!("{prefix}:{{{s}}}:ban")) == node) == same)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_revocations_recover_when_a_master_fails_over() {
    let mut cluster = RedisCluster::start();
    let prefix = "fo";
    let victim = cluster.master_of(&format!("{prefix}:{{alice}}:ban"));
    let promoted = cluster.replicas_of(victim)[0];
    let bob = subject_on(&cluster, prefix, victim, false);
    // Instance A lists the victim first, so its near-cache subscription is on
    // the node that dies and must move on; B subscribes elsewhere.
    let mut urls = cluster.urls();
    urls.rotate_left(victim);
    let a = store(&urls, prefix, true).await;
    urls.rotate_left(1);
    let b = store(&urls, prefix, true).await;
    let (auth_a, auth_b) = (auth(a.clone()), auth(b.clone()));

    let alice1 = issue(&auth_a, "alice");
    let alice2 = issue(&auth_a, "alice");
    let bob1 = issue(&auth_a, &bob);
    for token in [&alice1, &alice2, &bob1] {
        assert_eq!(call(&auth_a, token).await, OK);
        assert_eq!(call(&auth_b, token).await, OK);
    }
    // A revocation written (and replicated) before the failover.
    auth_a.revoke(&alice2).await.unwrap();
    cluster.wait_replicated(victim);
    rejected_within(&auth_b, &alice2, Duration::from_millis(100)).await;

    cluster.kill(victim);
    let killed = Instant::now();
    let mut alice_failures = 0;
    let mut bob_failures = 0;
    let mut other_answers = Vec::new();
    // Traffic through A for a subject on the dead shard and one elsewhere,
    // until the dead shard answers again.
    let recovered = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no recovery in 20 s ({alice_failures} failures)"
        );
        match call(&auth_a, &alice1).await {
            OK => break killed.elapsed(),
            (StatusCode::SERVICE_UNAVAILABLE, _) => alice_failures += 1,
            other => other_answers.push(other),
        }
        match call(&auth_a, &bob1).await {
            OK => {}
            (StatusCode::SERVICE_UNAVAILABLE, _) => bob_failures += 1,
            other => other_answers.push(other),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let promotion = cluster.wait_until_master(promoted, Duration::from_secs(10));
    eprintln!(
        "master killed: requests for its shard answered again after {recovered:?} \
         ({alice_failures} x 503 for it, {bob_failures} x 503 for another shard); \
         replica promoted {promotion:?} after the check recovered"
    );
    assert!(other_answers.is_empty(), "wrong answers: {other_answers:?}");

    // Stable from now on, with the same store: no 503 storm after recovery.
    for _ in 0..50 {
        assert_eq!(call(&auth_a, &alice1).await, OK);
        assert_eq!(call(&auth_a, &bob1).await, OK);
    }
    // The revocation written before the failover still holds, on both instances.
    assert_eq!(call(&auth_a, &alice2).await, REVOKED);
    assert_eq!(call(&auth_b, &alice2).await, REVOKED);
    // New revocations on the promoted master work and reach the other
    // instance's near-cache (A's subscription moved to another node).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.near_cache_stats().unwrap().subscribed {
        assert!(
            Instant::now() < deadline,
            "A's subscription did not move on"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(call(&auth_b, &alice1).await, OK);
    assert_eq!(call(&auth_b, &alice1).await, OK);
    auth_a.revoke(&alice1).await.unwrap();
    let took = rejected_within(&auth_b, &alice1, Duration::from_millis(100)).await;
    eprintln!("after the failover, B saw A's revocation after {took:?}");
    assert_eq!(call(&auth_a, &alice1).await, REVOKED);
    assert!(b.near_cache_stats().unwrap().hits > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_caches_of_two_stores_drop_revoked_tokens_on_every_shard() {
    let cluster = RedisCluster::shared();
    let urls = cluster.urls();
    let a = store(&urls, "nc", true).await;
    let mut reversed = urls.clone();
    reversed.reverse();
    let b = store(&reversed, "nc", true).await;
    let (auth_a, auth_b) = (auth(a), auth(b.clone()));

    let mut latencies = Vec::new();
    for i in 0..60 {
        let subject = format!("subject-{i}");
        let token = issue(&auth_a, &subject);
        assert_eq!(call(&auth_b, &token).await, OK);
        assert_eq!(call(&auth_b, &token).await, OK); // from B's cache
        auth_a.revoke(&token).await.unwrap();
        let revoked_at = Instant::now();
        rejected_within(&auth_b, &token, Duration::from_millis(100)).await;
        latencies.push(revoked_at.elapsed());
    }
    latencies.sort();
    let stats = b.near_cache_stats().unwrap();
    eprintln!(
        "revocation seen by the other instance (60 subjects over 3 shards): \
         p50 {:?}, p99 {:?}, max {:?}; B's cache {stats:?}",
        latencies[30],
        latencies[59 * 99 / 100],
        latencies[59]
    );
    assert!(stats.hits >= 60, "{stats:?}");
    assert!(stats.subscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_on_nodes_that_lost_them() {
    let cluster = RedisCluster::shared();
    let urls = cluster.urls();
    let store = store(&urls, "noscript", false).await;
    let auth = auth(store);
    // Thirty subjects: every shard has some.
    let subjects: Vec<String> = (0..30).map(|i| format!("n{i}")).collect();
    let shards: std::collections::HashSet<usize> = subjects
        .iter()
        .map(|s| cluster.master_of(&format!("noscript:{{{s}}}:ban")))
        .collect();
    assert_eq!(shards.len(), 3);
    let tokens: Vec<String> = subjects.iter().map(|s| issue(&auth, s)).collect();
    for token in &tokens {
        assert_eq!(call(&auth, token).await, OK);
    }
    for i in 0..cluster.len() {
        let _: () = cluster.cmd(i, &["SCRIPT", "FLUSH"]);
    }
    for token in &tokens {
        assert_eq!(call(&auth, token).await, OK);
        auth.revoke(token).await.unwrap();
        assert_eq!(call(&auth, token).await, REVOKED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_findings_cover_every_master_once() {
    let cluster = RedisCluster::shared();
    let store = store(&cluster.urls(), "findings", false).await;
    // The harness runs every node without persistence: one finding for all
    // three masters, and no check that failed.
    assert_eq!(
        store.startup_findings().await,
        vec![tower_jwt_auth::store::StartupFinding::NoPersistence]
    );
    let shown = format!("{store:?}");
    assert!(shown.contains("Cluster"), "{shown}");
}
