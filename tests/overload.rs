//! Overload: Redis stops answering (`CLIENT PAUSE`) while a concurrency far
//! above the pool size hits the layer. Every request is answered within the
//! deadline (plus scheduling slack) with a 503, none queues without limit or
//! hangs, and once Redis answers again the layer recovers by itself.

#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use common::layer::{call, issue};
use common::redis_server::RedisServer;
use http::StatusCode;
use tower_jwt_auth::{JwtAuth, Keys, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_under_heavy_concurrency_sheds_with_fast_503s_and_recovers() {
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .pool_size(2)
        .startup_checks(false)
        .build()
        .await
        .unwrap();
    let deadline = Duration::from_millis(100);
    let auth = JwtAuth::<serde_json::Value>::new(
        Keys::hs256(b"overload-secret-0123456789-abcdefghij").unwrap(),
    )
    .store(store)
    .store_deadline(deadline)
    .circuit_breaker(5, Duration::from_millis(500));
    let token = issue(&auth, "alice");
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK);

    server.pause(2000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let auth = auth.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let (status, _) = tokio::time::timeout(Duration::from_secs(5), call(&auth, &token))
                .await
                .expect("a request hung");
            (status, t.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    let mut unavailable = 0;
    for t in tasks {
        let (status, took) = t.await.unwrap();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "while Redis is stalled"
        );
        unavailable += 1;
        slowest = slowest.max(took);
    }
    let all = started.elapsed();
    println!(
        "1000 concurrent requests during a stall: all answered in {all:?}, slowest {slowest:?}"
    );
    assert_eq!(unavailable, 1000);
    // Bounded by the deadline, not by the stall (2 s) or a queue behind 2 connections.
    assert!(slowest < deadline * 8, "slowest request took {slowest:?}");
    assert!(all < Duration::from_millis(1500), "the batch took {all:?}");

    // More requests keep coming during the stall: answered at once.
    let t = Instant::now();
    for _ in 0..200 {
        assert_eq!(call(&auth, &token).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );

    // Redis answers again: the layer recovers without a restart.
    let recovered = Instant::now();
    loop {
        if call(&auth, &token).await.0 == StatusCode::OK {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(5),
            "no recovery after the stall"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..50 {
        assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    }
}
