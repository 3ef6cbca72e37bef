//! OpenID Connect Back-Channel Logout 1.0 through `JwtAuth::backchannel_logout`:
//! every validation rule of §2.6 as a case that logs out a victim if the
//! rule is missing; the effects (a provider session by `sid` alone, an
//! issuer's subject by `sub`, one of our sessions); replay refused across
//! two layers on one Redis; a logout token is never an access token and an
//! access token never a logout token. Logout tokens here are signed with
//! `jsonwebtoken`; `e2e_logout_revocation.rs` mints them with node's `jose`.
#![cfg(feature = "remote-keys")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::jwks_server::JwksServer;
use common::keygen::{ec_jwk, now, p256, with, Generated};
use common::layer::call;
use http::{HeaderMap, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower_jwt_auth::{
    JwtAuth, Keys, LogoutEffect, MemoryStore, RemoteIssuer, RemoteKeys, RevocationStore,
    BACKCHANNEL_LOGOUT_EVENT,
};

const SECRET: &[u8] = b"backchannel-local-secret-0123456789-abc";
const LOCAL: &str = "https://local.example";
const AUDIENCE: &str = "orders-api";

/// A remote issuer (its P-256 key served as a JWKS) and our own HS256 keys.
struct Idp {
    issuer: String,
    key: EncodingKey,
    other: EncodingKey,
    _server: JwksServer,
}

async fn idp() -> Idp {
    let dir = common::new_dir("backchannel");
    let key: Generated = p256(&dir, "idp");
    let other = p256(&dir, "other");
    let jwk = with(
        &ec_jwk(&key, "P-256", 32),
        json!({ "kid": "k1", "alg": "ES256" }),
    );
    let server = JwksServer::start(json!({ "keys": [jwk] }).to_string()).await;
    Idp {
        issuer: server.base(),
        key: EncodingKey::from_ec_pem(&key.pem).unwrap(),
        other: EncodingKey::from_ec_pem(&other.pem).unwrap(),
        _server: server,
    }
}

fn layer(idp: &Idp, store: impl RevocationStore) -> JwtAuth<Value> {
    let keys = RemoteKeys::jwks(format!("{}/jwks.json", idp.issuer))
        .build()
        .unwrap();
    JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap())
        .issuer(LOCAL)
        .audience(AUDIENCE)
        .store(store)
        .remote_issuer(RemoteIssuer::new(idp.issuer.clone(), keys).audience(AUDIENCE))
}

fn sign(key: &EncodingKey, alg: Algorithm, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = (alg == Algorithm::ES256).then(|| "k1".to_owned());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// The claims of a valid logout token of `iss` for `sid`.
fn logout_claims(iss: &str, sid: &str) -> Value {
    let n = JTI.fetch_add(1, Ordering::Relaxed);
    json!({
        "iss": iss, "aud": AUDIENCE, "iat": now(), "exp": now() + 120,
        "jti": format!("jti-{n}-{}", now()), "sid": sid,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    })
}

impl Idp {
    fn logout_token(&self, claims: &Value) -> String {
        sign(&self.key, Algorithm::ES256, Some("logout+jwt"), claims)
    }

    /// An access token of this issuer for `sub` in provider session `sid`.
    fn access_token(&self, sub: &str, sid: &str) -> String {
        let n = JTI.fetch_add(1, Ordering::Relaxed);
        let claims = json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": sub, "sid": sid,
            "iat": now(), "exp": now() + 300, "jti": format!("at-{n}"),
        });
        sign(&self.key, Algorithm::ES256, Some("at+jwt"), &claims)
    }
}

fn form(body: &str) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    (headers, body.as_bytes().to_vec())
}

async fn post(auth: &JwtAuth<Value>, token: &str) -> Response<String> {
    let (headers, body) = form(&format!("logout_token={token}"));
    auth.backchannel_logout().handle(&headers, &body).await
}

fn error_of(res: &Response<String>) -> String {
    serde_json::from_str::<Value>(res.body()).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sid_alone_ends_that_provider_session_for_every_subject() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let (alice, bob) = (
        idp.access_token("alice", "s-1"),
        idp.access_token("bob", "s-1"),
    );
    let other_session = idp.access_token("alice", "s-2");
    let ours = auth.sessions().issue("alice", &json!({})).unwrap().token;
    for token in [&alice, &bob, &other_session, &ours] {
        assert_eq!(call(&auth, token).await.0, StatusCode::OK);
    }
    let res = post(&auth, &idp.logout_token(&logout_claims(&idp.issuer, "s-1"))).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    assert_eq!(res.headers()["cache-control"], "no-store");
    for token in [&alice, &bob] {
        assert_eq!(
            call(&auth, token).await,
            (StatusCode::UNAUTHORIZED, Some("logged_out"))
        );
    }
    assert_eq!(call(&auth, &other_session).await.0, StatusCode::OK);
    assert_eq!(call(&auth, &ours).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_alone_logs_out_that_issuers_subject_only() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let remote = idp.access_token("alice", "s-1");
    let ours = auth.sessions().issue("alice", &json!({})).unwrap().token;
    let mut claims = logout_claims(&idp.issuer, "");
    claims.as_object_mut().unwrap().remove("sid");
    claims["sub"] = json!("alice");
    let (token, effect) = auth
        .backchannel_logout()
        .logout(&idp.logout_token(&claims))
        .await
        .unwrap();
    assert_eq!(effect, LogoutEffect::SubjectLoggedOut);
    assert_eq!(token.subject.as_deref(), Some("alice"));
    assert!(token.remote);
    assert_eq!(
        call(&auth, &remote).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out_everywhere"))
    );
    assert_eq!(call(&auth, &ours).await.0, StatusCode::OK, "our own alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_section_2_6_refuses_and_logs_out_no_one() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let victim = idp.access_token("alice", "victim");
    let good = || logout_claims(&idp.issuer, "victim");
    let edit = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = good();
        change(claims.as_object_mut().unwrap());
        claims
    };
    let es = |claims: &Value, typ: Option<&str>| sign(&idp.key, Algorithm::ES256, typ, claims);
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.AA",
        b64(&json!({ "alg": "none", "typ": "logout+jwt" })),
        b64(&good())
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "another key",
            sign(&idp.other, Algorithm::ES256, Some("logout+jwt"), &good()),
        ),
        ("alg none", unsigned),
        (
            "HS256 with our secret for a remote issuer",
            sign(
                &EncodingKey::from_secret(SECRET).unwrap(),
                Algorithm::HS256,
                None,
                &good(),
            ),
        ),
        (
            "unknown iss",
            idp.logout_token(&edit(&|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            })),
        ),
        (
            "no iss",
            idp.logout_token(&edit(&|c| {
                c.remove("iss");
            })),
        ),
        (
            "wrong aud",
            idp.logout_token(&edit(&|c| {
                c.insert("aud".into(), json!(["other-api"]));
            })),
        ),
        (
            "no aud",
            idp.logout_token(&edit(&|c| {
                c.remove("aud");
            })),
        ),
        (
            "no iat",
            idp.logout_token(&edit(&|c| {
                c.remove("iat");
            })),
        ),
        (
            "iat too old",
            idp.logout_token(&edit(&|c| {
                c.insert("iat".into(), json!(now() - 900));
            })),
        ),
        (
            "iat in the future",
            idp.logout_token(&edit(&|c| {
                c.insert("iat".into(), json!(now() + 900));
            })),
        ),
        (
            "expired",
            idp.logout_token(&edit(&|c| {
                c.insert("exp".into(), json!(now() - 120));
            })),
        ),
        ("typ JWT", es(&good(), Some("JWT"))),
        ("typ at+jwt", es(&good(), Some("at+jwt"))),
        (
            "no events",
            idp.logout_token(&edit(&|c| {
                c.remove("events");
            })),
        ),
        (
            "events without the member",
            idp.logout_token(&edit(&|c| {
                c.insert(
                    "events".into(),
                    json!({ "http://schemas.openid.net/event/other": {} }),
                );
            })),
        ),
        (
            "event member not an object",
            idp.logout_token(&edit(&|c| {
                c.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: "yes" }));
            })),
        ),
        (
            "events not an object",
            idp.logout_token(&edit(&|c| {
                c.insert("events".into(), json!([BACKCHANNEL_LOGOUT_EVENT]));
            })),
        ),
        (
            "nonce",
            idp.logout_token(&edit(&|c| {
                c.insert("nonce".into(), json!("n-1"));
            })),
        ),
        (
            "neither sub nor sid",
            idp.logout_token(&edit(&|c| {
                c.remove("sid");
            })),
        ),
        (
            "empty sid",
            idp.logout_token(&edit(&|c| {
                c.insert("sid".into(), json!(""));
            })),
        ),
        (
            "no jti",
            idp.logout_token(&edit(&|c| {
                c.remove("jti");
            })),
        ),
        (
            "empty jti",
            idp.logout_token(&edit(&|c| {
                c.insert("jti".into(), json!(""));
            })),
        ),
        ("an access token", idp.access_token("alice", "victim")),
    ];
    for (case, token) in &cases {
        let res = post(&auth, token).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            res.body()
        );
        assert_eq!(error_of(&res), "invalid_request", "{case}");
        assert_eq!(
            call(&auth, &victim).await.0,
            StatusCode::OK,
            "{case} logged out"
        );
    }
    // The controls: untyped, typed with the media type prefix, without
    // `exp` (honoured when present): all pass.
    let no_exp = edit(&|c| {
        c.remove("exp");
    });
    for (typ, claims) in [
        (None, good()),
        (Some("application/logout+jwt"), good()),
        (Some("logout+jwt"), no_exp),
    ] {
        let res = post(&auth, &es(&claims, typ)).await;
        assert_eq!(res.status(), StatusCode::OK, "{typ:?}: {}", res.body());
    }
    assert_eq!(
        call(&auth, &victim).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_token_is_never_an_access_token() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let mut claims = logout_claims(&idp.issuer, "s-1");
    claims["sub"] = json!("alice");
    // Typed, untyped, and with our own keys and issuer: all refused as
    // access tokens, though every access token rule holds.
    let typed = idp.logout_token(&claims);
    let untyped = sign(&idp.key, Algorithm::ES256, None, &claims);
    let mut local = claims.clone();
    local["iss"] = json!(LOCAL);
    let ours = sign(
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
        None,
        &local,
    );
    for token in [&typed, &untyped, &ours] {
        assert_eq!(call(&auth, token).await.0, StatusCode::UNAUTHORIZED);
    }
    // The same token without `events` is a fine access token: the refusal
    // is for being a logout token.
    claims.as_object_mut().unwrap().remove("events");
    let plain = sign(&idp.key, Algorithm::ES256, None, &claims);
    assert_eq!(call(&auth, &plain).await.0, StatusCode::OK);
    let secevent = sign(&idp.key, Algorithm::ES256, Some("secevent+jwt"), &claims);
    assert_eq!(call(&auth, &secevent).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_issuers_logout_ends_our_session_and_wants_its_sub() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let login = auth
        .sessions()
        .login("alice", "web", &json!({}))
        .await
        .unwrap();
    let other = auth
        .sessions()
        .login("alice", "phone", &json!({}))
        .await
        .unwrap();
    let local = |claims: &Value| {
        sign(
            &EncodingKey::from_secret(SECRET).unwrap(),
            Algorithm::HS256,
            Some("logout+jwt"),
            claims,
        )
    };
    let sid_alone = local(&logout_claims(LOCAL, &login.session_id));
    assert_eq!(
        post(&auth, &sid_alone).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut claims = logout_claims(LOCAL, &login.session_id);
    claims["sub"] = json!("alice");
    let res = post(&auth, &local(&claims)).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    assert_eq!(
        call(&auth, &login.access_token).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out"))
    );
    assert_eq!(call(&auth, &other.access_token).await.0, StatusCode::OK);
    // Our issuer's logout token for another audience is refused.
    claims["aud"] = json!("someone-else");
    claims["jti"] = json!("another");
    assert_eq!(
        post(&auth, &local(&claims)).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_refused_and_bad_requests_are_400() {
    let idp = idp().await;
    let auth = layer(&idp, MemoryStore::new());
    let token = idp.logout_token(&logout_claims(&idp.issuer, "s-1"));
    assert_eq!(post(&auth, &token).await.status(), StatusCode::OK);
    let again = post(&auth, &token).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.body().contains("replayed"), "{}", again.body());

    let handle = |headers: HeaderMap, body: Vec<u8>| {
        let logout = auth.backchannel_logout();
        async move { logout.handle(&headers, &body).await.status() }
    };
    let fresh = idp.logout_token(&logout_claims(&idp.issuer, "s-2"));
    let (headers, _) = form("");
    assert_eq!(
        handle(
            HeaderMap::new(),
            format!("logout_token={fresh}").into_bytes()
        )
        .await,
        400,
        "not a form"
    );
    assert_eq!(
        handle(headers.clone(), b"token=x".to_vec()).await,
        400,
        "no logout_token"
    );
    let twice = format!("logout_token={fresh}&logout_token={fresh}");
    assert_eq!(
        handle(headers.clone(), twice.into_bytes()).await,
        400,
        "repeated"
    );
    let huge = format!("logout_token={fresh}&pad={}", "a".repeat(70_000));
    assert_eq!(
        handle(headers.clone(), huge.into_bytes()).await,
        400,
        "too large"
    );
    assert_eq!(
        handle(headers, b"logout_token=%zz".to_vec()).await,
        400,
        "bad encoding"
    );
    // None of those was taken: the token still works once.
    assert_eq!(post(&auth, &fresh).await.status(), StatusCode::OK);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_on_one_redis_share_the_replay_cache_and_the_logout() {
    use common::redis_server::RedisServer;
    use tower_jwt_auth::RedisStore;
    let mut redis = RedisServer::start();
    let idp = idp().await;
    let store = || async {
        RedisStore::builder(&redis.url())
            .near_cache(true)
            .build()
            .await
            .unwrap()
    };
    let (a, b) = (layer(&idp, store().await), layer(&idp, store().await));
    let victim = idp.access_token("alice", "s-1");
    // B has seen (and cached) the victim's token as valid.
    assert_eq!(call(&b, &victim).await.0, StatusCode::OK);
    let token = idp.logout_token(&logout_claims(&idp.issuer, "s-1"));
    assert_eq!(post(&a, &token).await.status(), StatusCode::OK);
    let replay = post(&b, &token).await;
    assert_eq!(
        replay.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        replay.body()
    );
    // B refuses the victim's token as soon as the event arrives.
    let mut got = call(&b, &victim).await;
    for _ in 0..100 {
        if got.0 == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        got = call(&b, &victim).await;
    }
    assert_eq!(got, (StatusCode::UNAUTHORIZED, Some("logged_out")));
    // The store down: 503 with Retry-After, never a 200.
    redis.kill();
    let down = post(&a, &idp.logout_token(&logout_claims(&idp.issuer, "s-9"))).await;
    assert_eq!(
        down.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body()
    );
    assert!(down.headers().contains_key("retry-after"));
    assert_eq!(error_of(&down), "temporarily_unavailable");
}

/// One round trip on one Redis: the check of a remote token with a `sid`
/// is the one `MGET` of ban, deny and nbf with the provider session's key.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_token_with_a_sid_costs_one_command_on_one_redis() {
    use common::redis_server::RedisServer;
    let redis = RedisServer::start();
    let idp = idp().await;
    let store = tower_jwt_auth::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let auth = layer(&idp, store);
    let token = idp.access_token("alice", "s-1");
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK); // keys fetched, scripts loaded
    let monitor = redis.monitor();
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    let _ = redis.commandstats(); // an INFO: everything before it is in
    let mut sent = monitor.client_commands();
    for _ in 0..100 {
        if sent.iter().any(|c| c == "info") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sent = monitor.client_commands();
    }
    let sent: Vec<String> = sent.into_iter().take_while(|c| c != "info").collect();
    assert_eq!(sent, ["mget"]);
}

/// The cost of a provider session on a Redis Cluster, for ARCHITECTURE.md:
/// the check's `MGET` is split by slot (the provider session's key has no
/// subject hash tag), two commands to two nodes sent at once. Prints the
/// mean latency of a check with and without one, interleaved in one run.
/// `cargo test --all-features --test backchannel_logout -- --ignored --nocapture`
#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn provider_session_cost_on_a_cluster() {
    use std::time::{Duration, Instant};
    use tower_jwt_auth::store::{CheckRequest, RedisStoreBuilder, Verdict};
    let cluster = common::redis_cluster::RedisCluster::shared();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisStoreBuilder::cluster(&urls)
        .prefix("psid-cost")
        .build()
        .await
        .unwrap();
    let request = CheckRequest {
        subject: "\0https://idp.example\0alice".into(),
        token_id: "t-1".into(),
        issued_at: Some(now()),
        session_id: None,
        touch_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        marker_ttl: Duration::from_secs(60),
        deadline: Duration::from_secs(2),
    };
    let (mut plain, mut with) = (Duration::ZERO, Duration::ZERO);
    let rounds = 2000;
    for _ in 0..rounds {
        let t = Instant::now();
        assert_eq!(store.check(&request).await.unwrap(), Verdict::Valid);
        plain += t.elapsed();
        let t = Instant::now();
        let verdict = store
            .check_with_provider_session(&request, "https://idp.example", "s-1")
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::Valid);
        with += t.elapsed();
    }
    println!(
        "cluster check: {:?} without, {:?} with a provider session ({:.2}x)",
        plain / rounds,
        with / rounds,
        with.as_secs_f64() / plain.as_secs_f64()
    );
}
