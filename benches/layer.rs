//! Per-request cost of the layer (`BENCHMARKS.md`).
//!
//! - `stateless/<alg>/…`: the layer over a no-op inner service, no store,
//!   against a bare `jsonwebtoken::decode` of the same token with the same
//!   validation (issuer, audience and `exp` required, 30 s leeway), and
//!   `JwtAuth::verify` alone (verification without the service plumbing).
//! - `store/c1/…`, `store/c64/…`: the revocation check against a real
//!   `redis-server` that this bench starts on a free port (and kills at the
//!   end), one at a time and 64 concurrently: a bare `EXISTS` on one
//!   multiplexed connection (the hand-written baseline's cost), the full
//!   `RedisStore::check` of a session-bound token (ban, deny, not-before,
//!   session + sliding touch: one `EVALSHA`), the same check on `MemoryStore`,
//!   and the whole layer with `RedisStore`, without and with the near-cache
//!   (a hot token: answered locally, no Redis command), next to the stateless
//!   layer for the same session-bound token.
//!
//! - `token_cache/<alg>/…`: the verified-token cache: no cache, a miss, a
//!   hit, and the HS256 layer for comparison.
//!
//! ```text
//! cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3
//! ```

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::pin::{pin, Pin};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use http::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::json;
use tower::{Layer, Service, ServiceExt};
use tower_jwt_auth::store::CheckRequest;
use tower_jwt_auth::{JwtAuth, Keys, MemoryStore, RedisStore, RevocationStore};

const ISSUER: &str = "tower-jwt-auth-quickstart";
const AUDIENCE: &str = "quickstart";
const SECRET: &[u8] = b"quickstart-demo-secret-change-me-0123456789";
const KEYS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

/// The quickstart's claims.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct BenchClaims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS_DIR}/{name}")).unwrap_or_else(|e| panic!("{KEYS_DIR}/{name}: {e}"))
}

/// One algorithm family: the layer's keys, jsonwebtoken's key, a signed token.
struct Case {
    name: &'static str,
    alg: Algorithm,
    keys: Keys,
    decoding: DecodingKey,
    token: String,
}

fn cases() -> Vec<Case> {
    let claims = json!({
        "sub": "alice",
        "roles": ["user"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 24 * 3600,
        "jti": "k1nr3GPRIRtXprP77vo_ZQ",
    });
    let sign = |alg: Algorithm, key: &EncodingKey| {
        jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
    };
    let pem = |alg: Algorithm, private: &str, public: &str, name: &'static str| {
        let private = read_key(private);
        let public = read_key(public);
        let (enc, dec) = match alg {
            Algorithm::RS256 => (
                EncodingKey::from_rsa_pem(&private).unwrap(),
                DecodingKey::from_rsa_pem(&public).unwrap(),
            ),
            Algorithm::ES256 => (
                EncodingKey::from_ec_pem(&private).unwrap(),
                DecodingKey::from_ec_pem(&public).unwrap(),
            ),
            _ => (
                EncodingKey::from_ed_pem(&private).unwrap(),
                DecodingKey::from_ed_pem(&public).unwrap(),
            ),
        };
        Case {
            name,
            alg,
            keys: Keys::from_pem(alg, &public).unwrap(),
            decoding: dec,
            token: sign(alg, &enc),
        }
    };
    vec![
        Case {
            name: "HS256",
            alg: Algorithm::HS256,
            keys: Keys::hs256(SECRET).unwrap(),
            decoding: DecodingKey::from_secret(SECRET).unwrap(),
            token: sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET).unwrap()),
        },
        pem(
            Algorithm::RS256,
            "rsa_private.pem",
            "rsa_public.pem",
            "RS256",
        ),
        pem(
            Algorithm::ES256,
            "ec_p256_private.pem",
            "ec_p256_public.pem",
            "ES256",
        ),
        pem(
            Algorithm::EdDSA,
            "ed25519_private.pem",
            "ed25519_public.pem",
            "EdDSA",
        ),
    ]
}

/// The validation the hand-written baseline uses.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 30;
    validation
}

fn auth<C>(keys: Keys) -> JwtAuth<C> {
    JwtAuth::<C>::new(keys).issuer(ISSUER).audience(AUDIENCE)
}

fn request(token: &str) -> Request<()> {
    Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

type NoopFuture = std::future::Ready<Result<Response<String>, Infallible>>;

/// The no-op inner service.
fn noop() -> tower::util::ServiceFn<fn(Request<()>) -> NoopFuture> {
    fn respond(_req: Request<()>) -> NoopFuture {
        std::future::ready(Ok(Response::new(String::new())))
    }
    tower::service_fn(respond as fn(Request<()>) -> NoopFuture)
}

/// `poll_ready` + `call` + one poll, for services that answer without waiting.
fn call_now<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("no-op service not ready"),
    }
    let mut future = pin!(svc.call(req));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("stateless call did not complete at once"),
    }
}

fn stateless(c: &mut Criterion) {
    let all = cases();
    for case in &all {
        let mut group = c.benchmark_group(format!("stateless/{}", case.name));
        // Verification every time (the cache is measured in `token_cache`).
        let jwt = auth::<BenchClaims>(case.keys.clone()).token_cache(0);
        let mut svc = jwt.layer(noop());
        // Same token, both paths accept it.
        assert_eq!(call_now(&mut svc, request(&case.token)).status(), 200);
        let validation = validation(case.alg);
        jsonwebtoken::decode::<BenchClaims>(&case.token, &case.decoding, &validation).unwrap();

        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<BenchClaims>(
                    std::hint::black_box(&case.token),
                    &case.decoding,
                    &validation,
                )
                .unwrap()
            })
        });
        group.bench_function("jwtauth_verify", |b| {
            b.iter(|| jwt.verify(std::hint::black_box(&case.token)).unwrap())
        });
        group.bench_function("layer", |b| {
            b.iter_batched(
                || request(&case.token),
                |req| call_now(&mut svc, req),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// A private `redis-server` on a free loopback port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("redis-server not started ({e}): skipping the store benches"))
            .ok()?;
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                eprintln!("redis-server did not come up: skipping the store benches");
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for every future (no `futures` crate): polls the unfinished ones on each wake.
struct JoinAll<F: Future> {
    futures: Vec<Option<Pin<Box<F>>>>,
    left: usize,
}

fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    let futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    JoinAll {
        left: futures.len(),
        futures,
    }
}

impl<F: Future> Future for JoinAll<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        for slot in &mut this.futures {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                    this.left -= 1;
                }
            }
        }
        if this.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One request through `svc`, which must answer 200.
async fn through_layer_once<S>(svc: S, token: &str)
where
    S: Service<Request<()>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let response = svc.oneshot(request(token)).await.unwrap();
    assert_eq!(response.status(), 200);
}

/// A session-bound token and its check request, as the quickstart's `/me` sees it.
async fn session(auth: &JwtAuth<BenchClaims>) -> (String, CheckRequest<'static>) {
    let login = auth
        .sessions()
        .login("alice", "bench", &json!({ "roles": ["user"] }))
        .await
        .unwrap();
    let verified = auth.verify(&login.access_token).unwrap();
    let request = CheckRequest {
        subject: verified.subject().to_owned().into(),
        token_id: verified.token_id().to_owned().into(),
        issued_at: verified.registered.iat,
        session_id: verified.registered.sid.clone().map(Into::into),
        touch_interval: Duration::from_secs(30 * 60 / 4),
        idle_timeout: Duration::from_secs(30 * 60),
        marker_ttl: Duration::from_secs(60),
        deadline: Duration::from_millis(100),
    };
    (login.access_token, request)
}

fn store(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = Keys::hs256(SECRET).unwrap();
    let keys_for_layers = keys.clone();
    let (redis_store, near_store, conn) = rt.block_on(async {
        let store = RedisStore::builder(&server.url())
            .startup_checks(false)
            .build()
            .await
            .unwrap();
        let near = RedisStore::builder(&server.url())
            .startup_checks(false)
            .near_cache(true)
            .build()
            .await
            .unwrap();
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (store, near, conn)
    });
    let redis_auth = auth::<BenchClaims>(keys.clone()).store(redis_store.clone());
    let memory_store = MemoryStore::new();
    let memory_auth = auth::<BenchClaims>(keys).store(memory_store.clone());
    let (token, redis_check) = rt.block_on(session(&redis_auth));
    let (_, memory_check) = rt.block_on(session(&memory_auth));
    let deny_key = format!("jwt:{{alice}}:deny:{}", redis_check.token_id);
    let redis_store: Arc<dyn RevocationStore> = Arc::new(redis_store);
    let memory_store: Arc<dyn RevocationStore> = Arc::new(memory_store);
    let layer_svc = redis_auth.layer(noop());
    let near_stats = near_store.clone();
    let near_svc = auth::<BenchClaims>(keys_for_layers.clone())
        .store(near_store)
        .layer(noop());
    let stateless_svc = auth::<BenchClaims>(keys_for_layers).layer(noop());
    // Fill the near-cache (and wait until its event subscription is up).
    rt.block_on(async {
        for _ in 0..200 {
            through_layer_once(near_svc.clone(), &token).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let exists = |mut conn: redis::aio::MultiplexedConnection, key: String| async move {
        let found: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!found);
    };
    let check = |store: Arc<dyn RevocationStore>, req: CheckRequest<'static>| async move {
        let verdict = store.check(&req).await.unwrap();
        assert_eq!(verdict, tower_jwt_auth::store::Verdict::Valid);
    };
    let through_layer = |svc: tower_jwt_auth::JwtAuthService<_, BenchClaims>, token: String| async move {
        let response = svc.oneshot(request(&token)).await.unwrap();
        assert_eq!(response.status(), 200);
    };

    for concurrency in [1usize, 64] {
        let mut group = c.benchmark_group(format!("store/c{concurrency}"));
        group.throughput(Throughput::Elements(concurrency as u64));
        let n = concurrency;
        group.bench_function(BenchmarkId::new("exists_multiplexed", n), |b| {
            b.to_async(&rt)
                .iter(|| join_all((0..n).map(|_| exists(conn.clone(), deny_key.clone()))))
        });
        group.bench_function(BenchmarkId::new("redis_store_check", n), |b| {
            b.to_async(&rt)
                .iter(|| join_all((0..n).map(|_| check(redis_store.clone(), redis_check.clone()))))
        });
        group.bench_function(BenchmarkId::new("memory_store_check", n), |b| {
            b.to_async(&rt).iter(|| {
                join_all((0..n).map(|_| check(memory_store.clone(), memory_check.clone())))
            })
        });
        group.bench_function(BenchmarkId::new("layer_redis", n), |b| {
            b.to_async(&rt)
                .iter(|| join_all((0..n).map(|_| through_layer(layer_svc.clone(), token.clone()))))
        });
        group.bench_function(BenchmarkId::new("layer_redis_near_cache", n), |b| {
            b.to_async(&rt)
                .iter(|| join_all((0..n).map(|_| through_layer(near_svc.clone(), token.clone()))))
        });
        group.bench_function(BenchmarkId::new("layer_stateless", n), |b| {
            b.to_async(&rt).iter(|| {
                join_all((0..n).map(|_| through_layer(stateless_svc.clone(), token.clone())))
            })
        });
        group.finish();
    }
    if let Some(stats) = near_stats.near_cache_stats() {
        eprintln!(
            "near-cache: {} hits, {} misses (a miss per token per second at most)",
            stats.hits, stats.misses
        );
    }
    drop(rt);
    drop(server);
}

/// A request with a known `kid` of a remote issuer against the same key
/// given at start-up (issue 14: within 2 %). The key set comes from an
/// `HttpFetch` that answers from memory: the request path is measured, not
/// the fetch.
#[cfg(feature = "remote-keys")]
fn remote(c: &mut Criterion) {
    use base64::Engine;
    use tower_jwt_auth::{FetchFuture, HttpFetch, RemoteIssuer, RemoteKeys};

    struct FromMemory(String);
    impl HttpFetch for FromMemory {
        fn get<'a>(&'a self, _url: &'a http::Uri, _limit: usize) -> FetchFuture<'a> {
            let body = bytes::Bytes::from(self.0.clone());
            Box::pin(async move { Ok(Response::new(body)) })
        }
    }

    let public = read_key("ec_p256_public.pem");
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            String::from_utf8(public.clone())
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let point = &der[der.len() - 64..];
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
        "x": b64(&point[..32]), "y": b64(&point[32..]),
    }]})
    .to_string();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("bench".into());
    let claims = json!({
        "sub": "alice", "roles": ["user"], "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 3600, "jti": "k1nr3GPRIRtXprP77vo_ZQ",
    });
    let private = EncodingKey::from_ec_pem(&read_key("ec_p256_private.pem")).unwrap();
    let token = jsonwebtoken::encode(&header, &claims, &private).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let keys = RemoteKeys::jwks("https://idp.example/jwks")
        .http_client(FromMemory(jwks))
        .build()
        .unwrap();
    runtime.block_on(keys.prefetch()).unwrap();
    let remote = JwtAuth::<BenchClaims>::new(Keys::hs256(SECRET).unwrap())
        .remote_issuer(RemoteIssuer::new(ISSUER, keys).audience(AUDIENCE));
    let local = auth::<BenchClaims>(
        Keys::from_pem(Algorithm::ES256, &public)
            .unwrap()
            .kid("bench")
            .unwrap(),
    );
    let mut group = c.benchmark_group("remote/ES256");
    let cached = remote.clone();
    let (local, remote) = (local.token_cache(0), remote.token_cache(0));
    for (name, jwt) in [
        ("static_keys", local),
        ("remote_issuer", remote),
        ("remote_issuer_cached", cached),
    ] {
        let mut svc = jwt.layer(noop());
        assert_eq!(call_now(&mut svc, request(&token)).status(), 200, "{name}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(&token),
                |req| call_now(&mut svc, req),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

#[cfg(not(feature = "remote-keys"))]
fn remote(_: &mut Criterion) {}

/// The verified-token cache (issue 17): the same token through the layer
/// over a no-op service, `no_cache` (verified every time), `miss` (a token
/// the cache has not seen: a fresh layer, so a fresh cache, for every
/// request; its set-up is not timed) and `hit`; next to the HS256 layer
/// without cache, the figure a hit should come near.
fn token_cache(c: &mut Criterion) {
    let all = cases();
    let hs256 = all.iter().find(|c| c.name == "HS256").unwrap();
    let mut hs = auth::<BenchClaims>(hs256.keys.clone()).layer(noop());
    for case in all.iter().filter(|c| c.name != "HS256") {
        let mut group = c.benchmark_group(format!("token_cache/{}", case.name));
        let base = auth::<BenchClaims>(case.keys.clone());
        let fresh = |capacity: usize| {
            let base = base.clone();
            let token = case.token.clone();
            move || {
                (
                    base.clone().token_cache(capacity).layer(noop()),
                    request(&token),
                )
            }
        };
        // The service and the response are returned, so their drop is not timed.
        for (name, capacity) in [("no_cache", 0), ("miss", 4096)] {
            group.bench_function(name, |b| {
                b.iter_batched(
                    fresh(capacity),
                    |(mut svc, req)| {
                        let response = call_now(&mut svc, req);
                        (svc, response)
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        let mut hot = base.clone().layer(noop());
        assert_eq!(call_now(&mut hot, request(&case.token)).status(), 200);
        group.bench_function("hit", |b| {
            b.iter_batched(
                || request(&case.token),
                |req| call_now(&mut hot, req),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("hs256_no_cache", |b| {
            b.iter_batched(
                || request(&hs256.token),
                |req| call_now(&mut hs, req),
                BatchSize::SmallInput,
            )
        });
        group.finish();
        let stats = base.token_cache_stats().unwrap();
        eprintln!("token cache {}: {stats:?}", case.name);
    }
}

criterion_group!(benches, stateless, store, remote, token_cache);
criterion_main!(benches);
