//! Hostile claim values and the revocation invariant: "after an acknowledged
//! revocation, the token is refused until it expires", on every store.
//!
//! Tokens are minted with `jsonwebtoken` directly (not the layer's signer),
//! so every claim value can be chosen, including those no sane issuer sends.

#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::layer::call;
use common::redis_server::RedisServer;
use http::StatusCode;
use jsonwebtoken::{EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower_jwt_auth::{
    ErrorKind, JwtAuth, Keys, MemoryStore, RedisStore, RevocationStore, RevokeError,
};

const SECRET: &[u8] = b"claim-extremes-secret-0123456789-abcdef";
/// The configured `max_token_lifetime` of these tests.
const LIFETIME: u64 = 7200;

#[derive(Debug, Clone, serde::Deserialize)]
struct C {}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn mint(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

fn auth(store: Arc<dyn RevocationStore>, leeway: u64) -> JwtAuth<C> {
    JwtAuth::<C>::new(Keys::hs256(SECRET).unwrap())
        .leeway(Duration::from_secs(leeway))
        .max_token_lifetime(Duration::from_secs(LIFETIME))
        .store_arc(store)
        .store_deadline(Duration::from_secs(2))
}

fn memory() -> Arc<dyn RevocationStore> {
    Arc::new(MemoryStore::new())
}

async fn redis(server: &RedisServer) -> Arc<dyn RevocationStore> {
    Arc::new(RedisStore::connect(&server.url()).await.unwrap())
}

/// The remaining life in ms of the one key of `server` whose name contains `part`.
fn pttl_of(server: &RedisServer, part: &str) -> i64 {
    let keys: Vec<String> = server.cmd(&["KEYS", &format!("*{part}*")]);
    assert_eq!(keys.len(), 1, "keys matching {part}: {keys:?}");
    server.cmd(&["PTTL", &keys[0]])
}

// ---------------------------------------------------------------------------
// Bug 1: a huge exp
// ---------------------------------------------------------------------------

/// Every one of these `exp` values made `exp + leeway` times 1000 overflow.
const HUGE_EXPS: [u64; 5] = [
    20_000_000_000_000_000,
    1 << 53,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

async fn huge_exp_is_refused_and_cannot_be_revoked_silently(store: Arc<dyn RevocationStore>) {
    let auth = auth(store, 30);
    for exp in HUGE_EXPS {
        for claims in [
            json!({ "sub": "huge", "iat": now(), "exp": exp }),
            json!({ "sub": "huge", "exp": exp }),
            json!({ "sub": "huge", "jti": "j", "iat": now(), "exp": exp }),
        ] {
            let token = mint(&claims);
            let err = auth.verify(&token).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::LifetimeTooLong, "{claims}");
            assert_eq!(call(&auth, &token).await.0, StatusCode::UNAUTHORIZED);
            // Revoking it is refused loudly, never an Ok that writes nothing.
            assert!(matches!(
                auth.revoke(&token).await,
                Err(RevokeError::Invalid(_))
            ));
        }
    }
}

async fn hostile_numeric_dates_are_refused_without_panic(store: Arc<dyn RevocationStore>) {
    let auth = auth(store, 30);
    let n = now();
    for (claims, kind) in [
        (json!({ "sub": "x", "exp": -1 }), ErrorKind::Malformed),
        (json!({ "sub": "x", "exp": 1.5e300 }), ErrorKind::Malformed),
        (json!({ "sub": "x", "exp": "soon" }), ErrorKind::Malformed),
        (
            json!({ "sub": "x", "exp": n + 60, "iat": -5 }),
            ErrorKind::Malformed,
        ),
        (
            json!({ "sub": "x", "exp": n + 60, "iat": u64::MAX }),
            ErrorKind::NotYetValid,
        ),
        (
            json!({ "sub": "x", "exp": n + 60, "nbf": u64::MAX }),
            ErrorKind::NotYetValid,
        ),
        (json!({ "sub": "x", "exp": 1.0e9 }), ErrorKind::Expired),
        (json!({ "sub": "x", "exp": 0 }), ErrorKind::Expired),
    ] {
        let err = auth.verify(&mint(&claims)).unwrap_err();
        assert_eq!(err.kind(), kind, "{claims}");
    }
    // A fractional exp within the lifetime is a valid NumericDate.
    let ok = mint(&json!({ "sub": "x", "iat": n, "exp": n as f64 + 60.5 }));
    assert!(auth.verify(&ok).is_ok());
}

// ---------------------------------------------------------------------------
// Bug 2: log out everywhere wore off for tokens longer than max_token_lifetime
// ---------------------------------------------------------------------------

async fn tokens_longer_than_max_token_lifetime_are_refused(store: Arc<dyn RevocationStore>) {
    let auth = JwtAuth::<C>::new(Keys::hs256(SECRET).unwrap())
        .max_token_lifetime(Duration::from_secs(2))
        .access_token_ttl(Duration::from_secs(2))
        .leeway(Duration::ZERO)
        .store_arc(store);
    let n = now();
    // The issue's reproduction: exp = now + 600.
    let long = mint(&json!({ "sub": "lt", "iat": n, "exp": n + 600 }));
    assert_eq!(
        auth.verify(&long).unwrap_err().kind(),
        ErrorKind::LifetimeTooLong
    );
    assert_eq!(call(&auth, &long).await.0, StatusCode::UNAUTHORIZED);
    // Without iat, the lifetime is counted from now.
    let long = mint(&json!({ "sub": "lt", "exp": n + 600 }));
    assert_eq!(
        auth.verify(&long).unwrap_err().kind(),
        ErrorKind::LifetimeTooLong
    );
    // Within the lifetime: accepted, and log out everywhere refuses it.
    let short = mint(&json!({ "sub": "lt", "iat": n - 1, "exp": n + 1 }));
    assert_eq!(call(&auth, &short).await.0, StatusCode::OK);
    auth.revoke_subject("lt").await.unwrap();
    assert_eq!(
        call(&auth, &short).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out_everywhere"))
    );
    // The default is 24 h: a 48 h token is refused.
    let defaults = JwtAuth::<C>::new(Keys::hs256(SECRET).unwrap());
    let two_days = mint(&json!({ "sub": "lt", "iat": n, "exp": n + 48 * 3600 }));
    assert_eq!(
        defaults.verify(&two_days).unwrap_err().kind(),
        ErrorKind::LifetimeTooLong
    );
    // An access_token_ttl longer than max_token_lifetime raises it: the
    // layer's own tokens always pass.
    let long_ttl = JwtAuth::<C>::new(Keys::hs256(SECRET).unwrap())
        .max_token_lifetime(Duration::from_secs(60))
        .access_token_ttl(Duration::from_secs(3600));
    let own = long_ttl.sessions().issue("lt", &json!({})).unwrap().token;
    assert!(long_ttl.verify(&own).is_ok());
}

// ---------------------------------------------------------------------------
// Bug 3: an iat in the future escaped log out everywhere
// ---------------------------------------------------------------------------

async fn tokens_issued_in_the_future_are_refused(store: Arc<dyn RevocationStore>) {
    let auth = auth(store, 30);
    let n = now();
    let future = mint(&json!({ "sub": "fut", "iat": n + 3600, "exp": n + 3700 }));
    let err = auth.verify(&future).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotYetValid);
    assert_eq!(err.description(), "token issued in the future");
    assert_eq!(call(&auth, &future).await.0, StatusCode::UNAUTHORIZED);
    // Within the leeway (clock skew) it passes.
    let skewed = mint(&json!({ "sub": "fut", "iat": n + 10, "exp": n + 100 }));
    assert!(auth.verify(&skewed).is_ok());
}

/// A token without `exp` (allowed only when `exp` is not required) can
/// never wear off, so neither may its deny entry.
async fn a_token_without_exp_stays_revoked(store: Arc<dyn RevocationStore>) {
    let auth = auth(store, 30).required_claims([]);
    let token = mint(&json!({ "sub": "noexp", "jti": "forever" }));
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    auth.revoke(&token).await.unwrap();
    assert_eq!(
        call(&auth, &token).await,
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::memory()).await;
                }
            )*
        }

        mod redis_store {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = crate::common::redis_server::RedisServer::start();
                    super::$name(super::redis(&server).await).await;
                }
            )*
        }
    };
}

on_every_store!(
    huge_exp_is_refused_and_cannot_be_revoked_silently,
    hostile_numeric_dates_are_refused_without_panic,
    tokens_longer_than_max_token_lifetime_are_refused,
    tokens_issued_in_the_future_are_refused,
    a_token_without_exp_stays_revoked,
);

#[tokio::test]
async fn a_redis_deny_entry_of_a_token_without_exp_is_kept_for_a_century() {
    let server = RedisServer::start();
    let auth = auth(redis(&server).await, 30).required_claims([]);
    let token = mint(&json!({ "sub": "noexp", "jti": "forever" }));
    auth.revoke(&token).await.unwrap();
    let fifty_years_ms = 50 * 365 * 24 * 3600 * 1000_i64;
    assert!(pttl_of(&server, "deny") > fifty_years_ms);
}

// ---------------------------------------------------------------------------
// The invariant, over random claim values
// ---------------------------------------------------------------------------

/// A token's claims, drawn so that the token is accepted: `iat` absent or
/// up to `LIFETIME` in the past or up to the leeway in the future, `exp`
/// within `LIFETIME` of it, and sometimes a `jti`.
#[derive(Debug, Clone)]
struct Drawn {
    iat_offset: Option<i64>,
    life: u64,
    jti: bool,
    leeway: u64,
}

impl Drawn {
    fn claims(&self, subject: &str, now: u64) -> (Value, u64) {
        let iat = self.iat_offset.map(|o| now.saturating_add_signed(o));
        let from = iat.unwrap_or(now);
        let exp = from + self.life;
        let mut claims = json!({ "sub": subject, "exp": exp });
        if let Some(iat) = iat {
            claims["iat"] = iat.into();
        }
        if self.jti {
            claims["jti"] = format!("jti-{subject}").into();
        }
        (claims, exp)
    }
}

fn drawn(past_only: bool) -> impl Strategy<Value = Drawn> {
    (0u64..=30, any::<bool>(), 1u64..=LIFETIME, any::<bool>()).prop_flat_map(
        move |(leeway, with_iat, life, jti)| {
            let high = if past_only { 0 } else { leeway as i64 };
            let offsets = -(LIFETIME as i64)..=high;
            (offsets, Just((leeway, with_iat, life, jti))).prop_map(
                |(offset, (leeway, with_iat, life, jti))| Drawn {
                    iat_offset: with_iat.then_some(offset),
                    life,
                    jti,
                    leeway,
                },
            )
        },
    )
}

/// How a revocation is made in one case.
#[derive(Debug, Clone, Copy)]
enum How {
    Token,
    Subject,
}

/// Whether the token is accepted by the verifier at all (an `iat` far in
/// the past with a short life is expired: nothing to revoke then).
fn accepted(auth: &JwtAuth<C>, token: &str) -> bool {
    auth.verify(token).is_ok()
}

/// Memory: revoke, then move the store's clock to one second before the
/// token's last accepted second; it is still refused.
fn memory_case(d: &Drawn, how: How, case: u32) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = auth(memory(), d.leeway);
        let subject = format!("m{case}");
        let n = now();
        let (claims, exp) = d.claims(&subject, n);
        let token = mint(&claims);
        if !accepted(&auth, &token) {
            return Ok(());
        }
        match how {
            How::Token => auth.revoke(&token).await.unwrap(),
            How::Subject => auth.revoke_subject(&subject).await.unwrap(),
        }
        // Read after the revocation was written: its entry was sized on the
        // wall clock at or before this moment.
        let revoked_by = now_ms();
        prop_assert_eq!(call(&auth, &token).await.0, StatusCode::UNAUTHORIZED);
        // The verifier reads the wall clock (the token stays unexpired for it);
        // the store's entries age with tokio's paused clock. Move that clock to
        // the token's last accepted millisecond (it is refused from
        // `exp + leeway` on), measured from the revocation, not from the
        // second the claims were drawn in (the wall clock may have crossed
        // into the next second in between).
        let last_accepted = ((exp + d.leeway) * 1000)
            .saturating_sub(1)
            .saturating_sub(revoked_by);
        tokio::time::advance(Duration::from_millis(last_accepted)).await;
        prop_assert_eq!(
            call(&auth, &token).await.0,
            StatusCode::UNAUTHORIZED,
            "revocation wore off {} ms later for {:?}",
            last_accepted,
            claims
        );
        Ok(())
    })
}

/// Redis: revoke, then the entry's remaining life covers the token's.
fn redis_case(
    server: &RedisServer,
    store: &Arc<dyn RevocationStore>,
    rt: &tokio::runtime::Runtime,
    d: &Drawn,
    how: How,
    case: u32,
) -> Result<(), TestCaseError> {
    rt.block_on(async {
        let auth = auth(store.clone(), d.leeway);
        let subject = format!("r{case}");
        let (claims, exp) = d.claims(&subject, now());
        let token = mint(&claims);
        if !accepted(&auth, &token) {
            return Ok(());
        }
        let part = match how {
            How::Token => {
                auth.revoke(&token).await.unwrap();
                format!("{{{subject}}}:deny")
            }
            How::Subject => {
                auth.revoke_subject(&subject).await.unwrap();
                format!("{{{subject}}}:nbf")
            }
        };
        prop_assert_eq!(call(&auth, &token).await.0, StatusCode::UNAUTHORIZED);
        let pttl = pttl_of(server, &part);
        let read_at = now_ms();
        let needed_until = (exp + d.leeway) * 1000;
        prop_assert!(
            read_at + u64::try_from(pttl).unwrap_or(0) + 50 >= needed_until,
            "entry {} ends {} ms before the token does ({:?})",
            part,
            needed_until.saturating_sub(read_at + u64::try_from(pttl).unwrap_or(0)),
            claims
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_revoked_tokens_stay_refused_until_they_expire(
        d in drawn(false),
        case in any::<u32>(),
    ) {
        memory_case(&d, How::Token, case)?;
    }

    #[test]
    fn memory_store_logged_out_tokens_stay_refused_until_they_expire(
        d in drawn(true),
        case in any::<u32>(),
    ) {
        memory_case(&d, How::Subject, case)?;
    }
}

#[test]
fn redis_store_revocations_outlive_the_tokens_they_refuse() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(redis(&server));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let cases = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&(drawn(true), any::<bool>()), |(d, by_subject)| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let how = if by_subject { How::Subject } else { How::Token };
            redis_case(&server, &store, &rt, &d, how, case)
        })
        .unwrap();
}
