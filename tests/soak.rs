//! Chaos soak: many clients use valid tokens while others are revoked at a
//! steady rate, and Redis (with AOF, `appendfsync always`) is killed and
//! restarted every few seconds and paused once. Asserts:
//!
//! - safety: no request that starts after a revocation was acknowledged is
//!   accepted with that token;
//! - durability: every acknowledged revocation still holds after each restart;
//! - availability: while Redis is up (past a recovery window after a restart)
//!   valid tokens are accepted; while it is down or paused the answer is a fast
//!   503, never a 401 for a valid token, never a 500, never a hang;
//! - the process never dies and its memory does not grow without bound.
//!
//! Length: `SOAK_SECS` (default 20 in `cargo test`); a longer run:
//! `SOAK_SECS=600 cargo test --release --test soak -- --nocapture`.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use http::{Request, Response, StatusCode};
use tower::ServiceExt;
use tower_jwt_auth::{AuthError, JwtAuth, Keys, RedisStore};

const UP: u8 = 0;
const DOWN: u8 = 1;
const PAUSED: u8 = 2;

/// After Redis comes back, requests may still see 503 this long: the pool
/// reconnects and the circuit breaker's cooldown (1 s) runs out.
const RECOVERY_WINDOW: Duration = Duration::from_secs(3);

/// With near-caches, another instance may accept a revoked token until the
/// revocation event reaches it (measured p99 ~2.5 ms on loopback); a request
/// accepted later than this after the acknowledgement is a violation.
const EVENT_GRACE: Duration = Duration::from_millis(200);

/// The two soaks share the machine's two cores: run them one after the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    unauthorized: AtomicU64,
    unavailable: AtomicU64,
    violations: AtomicU64,
    late_by_event: AtomicU64,
    max_event_lag_us: AtomicU64,
    hangs: AtomicU64,
    server_errors: AtomicU64,
    wrongful_401: AtomicU64,
    slow_while_down: AtomicU64,
    unavailable_while_up: AtomicU64,
    revocations_acked: AtomicU64,
    durability_checks: AtomicU64,
    durability_failures: AtomicU64,
}

struct World {
    near_cache: bool,
    tokens: Vec<String>,
    /// Token index -> when its revocation was acknowledged.
    acked: Mutex<HashMap<usize, Instant>>,
    /// Token indexes whose revocation was attempted (maybe applied without ack).
    attempted: Mutex<Vec<bool>>,
    state: AtomicU8,
    /// Epoch (ms since start) since which Redis is up.
    up_since_ms: AtomicU64,
    /// Bumped on every state change.
    generation: AtomicU64,
    start: Instant,
    stop: AtomicBool,
    counters: Counters,
}

impl World {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn set_state(&self, state: u8) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if state == UP {
            self.up_since_ms.store(self.now_ms(), Ordering::SeqCst);
        }
        self.state.store(state, Ordering::SeqCst);
    }

    /// Redis has been up for longer than the recovery window, in generation `g`.
    fn settled_up(&self) -> Option<u64> {
        let g = self.generation.load(Ordering::SeqCst);
        let up = self.state.load(Ordering::SeqCst) == UP;
        let since = self.up_since_ms.load(Ordering::SeqCst);
        (up && self.now_ms() >= since + RECOVERY_WINDOW.as_millis() as u64).then_some(g)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

type Svc =
    tower::util::BoxCloneService<Request<String>, Response<String>, std::convert::Infallible>;

async fn send(svc: Svc, token: String) -> Response<String> {
    svc.oneshot(
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap(),
    )
    .await
    .unwrap()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn client(world: Arc<World>, svc: Svc, seed: u64) {
    let mut rng = Rng(seed | 1);
    let c = &world.counters;
    while !world.stop.load(Ordering::Relaxed) {
        let idx = (rng.next() % world.tokens.len() as u64) as usize;
        let settled_before = world.settled_up();
        let state_before = world.state.load(Ordering::SeqCst);
        let started = Instant::now();
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            send(svc.clone(), world.tokens[idx].clone()),
        )
        .await;
        let elapsed = started.elapsed();
        c.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(res) = res else {
            c.hangs.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let acked_at = world
            .acked
            .lock()
            .unwrap()
            .get(&idx)
            .copied()
            .filter(|at| *at < started);
        let attempted = world.attempted.lock().unwrap()[idx];
        match res.status() {
            StatusCode::OK => {
                c.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = acked_at {
                    let lag = started.duration_since(at);
                    if world.near_cache && lag <= EVENT_GRACE {
                        // Another instance's near-cache learns by a pushed event.
                        c.late_by_event.fetch_add(1, Ordering::Relaxed);
                        c.max_event_lag_us
                            .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
                    } else {
                        c.violations.fetch_add(1, Ordering::Relaxed);
                        eprintln!("VIOLATION: revoked token {idx} accepted {lag:?} after the ack");
                    }
                }
            }
            StatusCode::UNAUTHORIZED => {
                c.unauthorized.fetch_add(1, Ordering::Relaxed);
                if !attempted {
                    c.wrongful_401.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "wrongful 401 for valid token {idx}: {:?}",
                        res.extensions().get::<AuthError>()
                    );
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                c.unavailable.fetch_add(1, Ordering::Relaxed);
                let settled_after = world.settled_up();
                if settled_before.is_some() && settled_before == settled_after {
                    c.unavailable_while_up.fetch_add(1, Ordering::Relaxed);
                }
                if state_before != UP && elapsed > Duration::from_secs(1) {
                    c.slow_while_down.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => {
                c.server_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("unexpected status {other}");
            }
        }
        // Yield a little so that the clients do not starve the revoker.
        if rng.next().is_multiple_of(8) {
            tokio::task::yield_now().await;
        }
    }
}

async fn revoker(world: Arc<World>, auth: JwtAuth<serde_json::Value>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    while !world.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Keep half of the tokens valid for the availability checks.
        let idx = (rng.next() % world.tokens.len() as u64) as usize;
        if idx % 2 == 1 {
            continue;
        }
        {
            let mut attempted = world.attempted.lock().unwrap();
            if attempted[idx] {
                continue;
            }
            attempted[idx] = true;
        }
        let revoked =
            tokio::time::timeout(Duration::from_secs(2), auth.revoke(&world.tokens[idx])).await;
        // Not acknowledged (Redis down): the token may or may not be revoked.
        if let Ok(Ok(())) = revoked {
            world.acked.lock().unwrap().insert(idx, Instant::now());
            world
                .counters
                .revocations_acked
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every acknowledged revocation still holds (once Redis answers).
async fn durability_check(world: &World, svc: &Svc) {
    let acked: Vec<usize> = world.acked.lock().unwrap().keys().copied().collect();
    for idx in acked {
        // Redis may be down again: retry on 503 for a while.
        for _ in 0..50 {
            let res = send(svc.clone(), world.tokens[idx].clone()).await;
            match res.status() {
                StatusCode::SERVICE_UNAVAILABLE => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                StatusCode::UNAUTHORIZED => {
                    let reason = res.extensions().get::<AuthError>().and_then(|e| e.reason());
                    world
                        .counters
                        .durability_checks
                        .fetch_add(1, Ordering::Relaxed);
                    if reason != Some("token_revoked") {
                        world
                            .counters
                            .durability_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                _ => {
                    world
                        .counters
                        .durability_checks
                        .fetch_add(1, Ordering::Relaxed);
                    world
                        .counters
                        .durability_failures
                        .fetch_add(1, Ordering::Relaxed);
                    eprintln!("DURABILITY: revoked token {idx} answered {}", res.status());
                    break;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_never_pass_while_redis_is_killed_restarted_and_paused() {
    let _serial = SERIAL.lock().await;
    soak(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_never_pass_with_near_caches_while_redis_is_killed_and_paused() {
    let _serial = SERIAL.lock().await;
    soak(true).await;
}

/// Clients go through instance B; revocations are written through instance
/// A (its own store and, with `near_cache`, its own cache): B must learn of
/// them through Redis.
async fn soak(near_cache: bool) {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let clients: u64 = std::env::var("SOAK_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let server = Arc::new(Mutex::new(RedisServer::start_with_aof()));
    let url = server.lock().unwrap().url();
    let instance = |store: RedisStore| {
        JwtAuth::<serde_json::Value>::new(
            Keys::hs256(b"soak-test-secret-0123456789-abcdefgh").unwrap(),
        )
        .audience("soak")
        .store(store)
        .store_deadline(Duration::from_millis(200))
    };
    let store = |url: String| async move {
        RedisStore::builder(&url)
            .near_cache(near_cache)
            .build()
            .await
            .unwrap()
    };
    let auth = instance(store(url.clone()).await);
    let auth_b = instance(store(url.clone()).await);
    let svc: Svc = tower::util::BoxCloneService::new(
        tower::ServiceBuilder::new()
            .layer(auth_b.clone())
            .service(tower::service_fn(|_req: Request<String>| async {
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            })),
    );
    let tokens: Vec<String> = (0..400)
        .map(|i| {
            auth.sessions()
                .issue(&format!("user{}", i % 40), &serde_json::json!({}))
                .unwrap()
                .token
        })
        .collect();
    let world = Arc::new(World {
        near_cache,
        attempted: Mutex::new(vec![false; tokens.len()]),
        tokens,
        acked: Mutex::default(),
        state: AtomicU8::new(UP),
        up_since_ms: AtomicU64::new(0),
        generation: AtomicU64::new(0),
        start: Instant::now(),
        stop: AtomicBool::new(false),
        counters: Counters::default(),
    });
    let rss_start = rss_kib();

    let mut tasks = Vec::new();
    for seed in 0..clients {
        tasks.push(tokio::spawn(client(
            world.clone(),
            svc.clone(),
            seed * 7919 + 1,
        )));
    }
    tasks.push(tokio::spawn(revoker(world.clone(), auth.clone())));

    // Chaos on a blocking thread: kill/restart every ~3 s, pause once.
    let (restarted_tx, mut restarted_rx) = tokio::sync::mpsc::unbounded_channel();
    let chaos = {
        let world = world.clone();
        let server = server.clone();
        std::thread::spawn(move || {
            let mut restarts = 0u32;
            let mut pauses = 0u32;
            let mut cycle = 0u32;
            let end = Instant::now() + Duration::from_secs(secs.saturating_sub(4));
            while Instant::now() < end {
                std::thread::sleep(Duration::from_millis(2500));
                if Instant::now() >= end {
                    break;
                }
                cycle += 1;
                if cycle == 2 {
                    world.set_state(PAUSED);
                    server.lock().unwrap().pause(1500);
                    std::thread::sleep(Duration::from_millis(1500));
                    world.set_state(UP);
                    pauses += 1;
                } else {
                    world.set_state(DOWN);
                    server.lock().unwrap().kill();
                    std::thread::sleep(Duration::from_millis(600));
                    server.lock().unwrap().restart();
                    world.set_state(UP);
                    restarts += 1;
                    let _ = restarted_tx.send(());
                }
            }
            (restarts, pauses)
        })
    };

    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        tokio::select! {
            Some(()) = restarted_rx.recv() => durability_check(&world, &svc).await,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let (restarts, pauses) = tokio::task::spawn_blocking(move || chaos.join().unwrap())
        .await
        .unwrap();
    world.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    // Final durability sweep with Redis up.
    tokio::time::sleep(RECOVERY_WINDOW).await;
    durability_check(&world, &svc).await;
    let rss_end = rss_kib();

    let c = &world.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak {secs}s near_cache={near_cache}: late_by_event={} max_event_lag={}us requests={} ok={} 401={} 503={} revocations_acked={} restarts={restarts} pauses={pauses} \
         violations={} hangs={} 5xx={} wrongful_401={} slow_503_while_down={} 503_while_up={} \
         durability_checks={} durability_failures={} rss_start={rss_start}KiB rss_end={rss_end}KiB",
        get(&c.late_by_event),
        get(&c.max_event_lag_us),
        get(&c.requests),
        get(&c.ok),
        get(&c.unauthorized),
        get(&c.unavailable),
        get(&c.revocations_acked),
        get(&c.violations),
        get(&c.hangs),
        get(&c.server_errors),
        get(&c.wrongful_401),
        get(&c.slow_while_down),
        get(&c.unavailable_while_up),
        get(&c.durability_checks),
        get(&c.durability_failures),
    );
    assert!(restarts >= 1 || secs < 10, "no restart happened");
    assert!(
        get(&c.revocations_acked) > 0,
        "no revocation was acknowledged"
    );
    assert!(get(&c.ok) > 0, "no request was accepted");
    assert_eq!(get(&c.violations), 0, "revoked tokens were accepted");
    assert_eq!(get(&c.hangs), 0, "requests hung");
    assert_eq!(get(&c.server_errors), 0, "unexpected statuses");
    assert_eq!(
        get(&c.wrongful_401),
        0,
        "valid tokens were refused with 401"
    );
    assert_eq!(get(&c.slow_while_down), 0, "503s while down were slow");
    assert_eq!(
        get(&c.durability_failures),
        0,
        "acknowledged revocations were lost"
    );
    assert!(get(&c.durability_checks) > 0);
    // While up and settled, valid tokens are served: allow a tiny fraction of
    // deadline misses on a loaded machine, never more.
    let up_misses = get(&c.unavailable_while_up);
    assert!(
        up_misses * 1000 <= get(&c.requests),
        "{up_misses} requests got 503 while Redis was up"
    );
    assert!(
        rss_end < rss_start + 256 * 1024,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}
