//! RFC 8725 (JWT Best Current Practices) / RFC 6750 audit: one test per item
//! of issue 7 §3. Each test is written so that it fails when the protection
//! it names is removed from `src/` (see the comment on each test for the
//! mutation it was checked against).
//!
//! Run with `cargo test --all-features --test rfc8725_audit`.

mod common;

use std::convert::Infallible;
use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::hooked::{Hooked, Hooks};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::{service_fn, Layer, ServiceExt};
use tower_jwt_auth::store::{CreateOutcome, NewSession, RotateOutcome, Rotation, SessionStore};
use tower_jwt_auth::{
    Algorithm, AuthError, Authenticated, ConfigError, ErrorKind, JwtAuth, Keys, LimitPolicy,
    MemoryStore, RevocationStore, SessionError,
};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const SECRET: &[u8] = b"rfc8725 audit: HS256 secret, 32+ bytes long";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const RSA_PUBLIC_DER: &[u8] = include_bytes!("keys/rsa_public.der");
const JWKS: &str = include_str!("keys/jwks.json");

/// The attacker's own RSA key (throwaway, generated for this test with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`): it is
/// *not* one of the keys the server trusts.
const ATTACKER_RSA_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC3r+gPE6hJnfun\n\
FRB3mzjRgo0g0g0nqGIMp3naMbDt3onJZTgiX1zJr6pOiIZ4S9njHnpXSltICj5k\n\
rt2n7cdR/pbzD2JBPhAhh5TWCmBjJnk2J4r6J74ke45VZhYr+MHBim8CfgWZ4Wk3\n\
5Uf65BWmeKaRSaqENIlbzcQy/4ke+v42hdGrxy7w1h4PqwzQUtv78wbfI2F78CZk\n\
8zR/mDCx08OV5AqPJw2wKXThTrg+SBR3Fjlwzc3UXWce6OwximZ/xTeAsQQOqNuu\n\
KY13wp8ISrwI5QikXSAX31va4ylYIGn5bP7W7PGPdpQH7sk+eFtve1Yf8H9/M7ap\n\
pB3WED+bAgMBAAECggEAWKQwriXkTjJI4KZPnghv8Nq5VB9JbdvaBRVEvkDAiumb\n\
QG7yGdQ/KKz22JMVoTOpX+qzSzB8wFUBKwEfwgwC5dSf74d6+NUEX8nXzzqOrQpB\n\
8BpA/Nr07RIa66cqB+oxRj6Rt3gtJ8cZSXoBtFchA4axiucrvETGDGFNzvZ1q1bM\n\
H1ylE9/DML4na/th7N/nWKayMy+L2mN8darEqOwL5g9Lr/io7/sS6x3qbFxE0rKw\n\
oSdwG8VJ3eeyOLOUOjIWAkbeb/igOe4Fu7MrFU5z9Qv4bV+cZbesh0mufRuPx7VW\n\
6s7KhIMYKEDn+hF1h88e7bm2HNZ9ADC604SHObdtQQKBgQD+gL5fQVK4namNrJKI\n\
IqFyZY371BKR1YUUOHapawGhO3JgDqxMg0izj06IWXx9qEDVh2108W61BPm1FfjL\n\
Bms8aIzRN53wLF3TofqpGTgmIrcScayQ2VKEuyfWVa1dcznqnEwt6W/QelaHUjWi\n\
5gmbRmeTIOCsxXAzfsTHgzqyqwKBgQC4xIVwoX3PmrQM2UEa+h+owNesC79nQzdS\n\
yrGXuglBGxRtZLMUoyP1WVUj2MtGK3FGQUS9iucvtUvESwpIp9+OK2KM7BuCuhwF\n\
TDRG2CyY03IKrsaL22RXeRhJSkPK/lMW9Vdtg/AyXJeKVItBsee135r5rdXujKWF\n\
j7yGPd0m0QKBgERO3cnHSKKQfo+t/+5WDSsdIsyykQFfY8aXmRHDzL4vrHUnuwsW\n\
OY8oKZXjHszDOhOVs8Utf99KJJN8ADjN0j52eUU2PkfWQKCq2xJD2JQzwRtMM1r1\n\
WXaSnRCkElIAuUzFApVYEFDOZScQ46CDSZTJgsc0jdkRbRoFLl+2UyzdAoGARApq\n\
sW1m7TqlL04aAZs2aWiKg5rX42kHSH/IIn2pxsX4IcjBgcoKBeHdzpOZV7/LuPl0\n\
HPC37gOvYRvZL6RSWQJ1CjwwbVWn1/OWFLiqw6SqDHEMQJiMPQIlBWhJyskZRA0Z\n\
IwVBQOqEC7bSiWDAWWN8qJFxhKValvK1lCHX/OECgYA7S+E6pgbVso6P8gaihWOa\n\
IS69FnOBpdbUxPoa6K+qlP4nSFyfP7Nc3e78FkT/mKLi25e5h8griIqR9DtuqSZN\n\
w24Xeil7RKmWJ0/6J6xScYkOCSoTS8lQRpH/eA03msihBmBBihevuxzLSy6a3dql\n\
iEa2ACLfCWS7uV32tsOuBw==\n\
-----END PRIVATE KEY-----\n";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    let t = now();
    json!({ "sub": sub, "iat": t, "exp": t + 300, "jti": format!("jti-{sub}-{t}") })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `jsonwebtoken` needs a crypto provider before it signs; with both backend
/// features on (`--all-features`) it cannot pick one itself. Building a
/// `JwtAuth` installs one.
fn init() {
    let _ = JwtAuth::<Value>::new(Keys::hs256([0u8; 32]).unwrap());
}

fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    init();
    jsonwebtoken::encode(header, claims, key).expect("jsonwebtoken::encode")
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    sign_with(&header, claims, key)
}

fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET).unwrap()
}

/// A token signed by hand: any header JSON, HMAC-SHA256 with `SECRET`.
fn hs256_raw(header: &Value, claims: &Value) -> String {
    init();
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &hs_key(), Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

fn hs_auth() -> JwtAuth<Value> {
    JwtAuth::new(Keys::hs256(SECRET).unwrap())
}

fn rs_auth() -> JwtAuth<Value> {
    JwtAuth::new(Keys::from_pem(Algorithm::RS256, RSA_PUBLIC).unwrap())
}

/// One request through the layer to an inner service that answers 200.
async fn send(auth: &JwtAuth<Value>, token: &str) -> Response<String> {
    let inner = service_fn(|req: Request<String>| async move {
        let sub = req
            .extensions()
            .get::<Authenticated<Value>>()
            .map(|a| a.subject().to_owned())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(format!("hello {sub}")))
    });
    let req = Request::get("/")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    auth.layer(inner).oneshot(req).await.unwrap()
}

#[track_caller]
fn kind(res: &Response<String>) -> ErrorKind {
    res.extensions()
        .get::<AuthError>()
        .unwrap_or_else(|| panic!("accepted ({}): {}", res.status(), res.body()))
        .kind()
}

#[track_caller]
fn assert_accepted(res: &Response<String>, sub: &str) {
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    assert_eq!(res.body(), &format!("hello {sub}"));
}

/// 401 `invalid_token` with this error kind.
#[track_caller]
fn assert_invalid_token(res: &Response<String>, want: ErrorKind) {
    assert_eq!(kind(res), want, "{}", res.body());
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

// ---------------------------------------------------------------------------
// 1. Algorithm allowlist per key: the header `alg` never widens it
// ---------------------------------------------------------------------------

/// Mutation: drop `k.algorithms.contains(&alg)` from `Keys::candidates`
/// (the key then verifies whatever its family can) → RS384/PS256/RS512 and
/// HS384/HS512 tokens are accepted.
#[tokio::test]
async fn header_alg_never_widens_the_keys_allowlist() {
    init();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let auth = rs_auth();
    assert_accepted(
        &send(&auth, &sign(Algorithm::RS256, &rsa, None, &claims("alice"))).await,
        "alice",
    );
    // Correctly signed with the right key, but with an algorithm the key was
    // not configured for.
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = sign(alg, &rsa, None, &claims("alice"));
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::AlgorithmNotAllowed);
    }
    // Same for a JWK set key whose `alg` is RS256, selected by its kid.
    let jwks = JwtAuth::<Value>::new(Keys::from_jwk_set(JWKS).unwrap());
    let token = sign(Algorithm::PS256, &rsa, Some("rsa-1"), &claims("alice"));
    assert_invalid_token(&send(&jwks, &token).await, ErrorKind::AlgorithmNotAllowed);

    // And for HMAC: an HS256 key does not verify HS384/HS512 with its secret.
    let hs = hs_auth();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &hs_key(), None, &claims("alice"));
        assert_invalid_token(&send(&hs, &token).await, ErrorKind::AlgorithmNotAllowed);
    }
}

/// Algorithm confusion (RFC 8725 §2.1): HS256 "signed" with the server's
/// RSA public key as the HMAC secret.
///
/// Mutation: as above, and also making a key's family follow the header.
#[tokio::test]
async fn hs_token_against_an_rs_key_is_rejected() {
    let claims = claims("admin");
    let forged = [
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
            None,
            &claims,
        ),
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC_DER).unwrap(),
            None,
            &claims,
        ),
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
            Some("rsa-1"),
            &claims,
        ),
    ];
    for auth in [rs_auth(), JwtAuth::new(Keys::from_jwk_set(JWKS).unwrap())] {
        for token in &forged {
            assert_invalid_token(&send(&auth, token).await, ErrorKind::AlgorithmNotAllowed);
        }
    }
}

// ---------------------------------------------------------------------------
// 2. `alg: none` and unknown algorithms
// ---------------------------------------------------------------------------

/// Mutation: in `verify`, fall back to the key's own algorithm when the
/// header's `alg` does not parse → `AlgorithmNotAllowed` becomes
/// `BadSignature` (and an unsigned token would be one bug away from passing).
#[tokio::test]
async fn alg_none_and_unknown_algorithms_are_rejected() {
    let payload = b64(claims("alice").to_string().as_bytes());
    for auth in [hs_auth(), rs_auth()] {
        // The classic unsecured JWS: empty signature.
        for alg in ["none", "None", "NONE"] {
            let header = b64(json!({ "alg": alg, "typ": "JWT" }).to_string().as_bytes());
            let res = send(&auth, &format!("{header}.{payload}.")).await;
            assert_invalid_token(&res, ErrorKind::Malformed);
        }
        // With signature bytes, these are still no algorithms of ours.
        for alg in ["none", "None", "HS1", "RS1", "ES512", "hs256", "", "HS256 "] {
            let header = b64(json!({ "alg": alg }).to_string().as_bytes());
            let token = format!("{header}.{payload}.{}", b64(b"signature"));
            assert_invalid_token(&send(&auth, &token).await, ErrorKind::AlgorithmNotAllowed);
        }
        // An `alg` that is not a string, or none at all.
        for header in [json!({ "alg": null }), json!({ "alg": 256 }), json!({})] {
            let header = b64(header.to_string().as_bytes());
            let token = format!("{header}.{payload}.{}", b64(b"signature"));
            assert_invalid_token(&send(&auth, &token).await, ErrorKind::Malformed);
        }
    }
    // A correctly HMAC-signed token whose header says "none" is not accepted either.
    let token = hs256_raw(&json!({ "alg": "none" }), &claims("alice"));
    assert_invalid_token(
        &send(&hs_auth(), &token).await,
        ErrorKind::AlgorithmNotAllowed,
    );
}

// ---------------------------------------------------------------------------
// 3. `kid` is untrusted input: lookup only, bounded length
// ---------------------------------------------------------------------------

const SECRET_A: &[u8] = b"rfc8725 audit: key a, 32+ bytes long!";
const SECRET_B: &[u8] = b"rfc8725 audit: key b, 32+ bytes long!";

fn two_keys() -> JwtAuth<Value> {
    JwtAuth::new(
        Keys::hs256(SECRET_A)
            .unwrap()
            .kid("a")
            .unwrap()
            .and(Keys::hs256(SECRET_B).unwrap().kid("b").unwrap()),
    )
}

/// Mutation: make an unknown kid fall back to trying every key
/// (`(Some(_), Some(_)) => true` in `Keys::candidates`) → accepted.
#[tokio::test]
async fn unknown_kid_is_rejected() {
    let auth = two_keys();
    let key_a = EncodingKey::from_secret(SECRET_A).unwrap();
    assert_accepted(
        &send(
            &auth,
            &sign(Algorithm::HS256, &key_a, Some("a"), &claims("alice")),
        )
        .await,
        "alice",
    );
    for kid in ["c", "A", ""] {
        let token = sign(Algorithm::HS256, &key_a, Some(kid), &claims("alice"));
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::UnknownKey);
    }
    // Signed with key a but naming key b: b is looked up, a is not tried.
    let token = sign(Algorithm::HS256, &key_a, Some("b"), &claims("alice"));
    assert_invalid_token(&send(&auth, &token).await, ErrorKind::BadSignature);
}

/// A lone key without a kid accepts any kid (there is nothing to select), so
/// only the length bound stops an over-long one: a validly signed token with
/// a 257-byte kid is rejected before any lookup, one with 256 bytes passes.
/// A 10 KB kid never gets as far as the header being decoded.
///
/// Mutations: drop the `MAX_KID_LEN` check in `verify` → the 257-byte kid is
/// accepted; drop the header size bound in `precheck` → the 10 KB kid is
/// rejected only later, as `UnknownKey` instead of a malformed header.
#[tokio::test]
async fn over_long_kid_is_rejected_without_lookup() {
    let auth = hs_auth();
    let at_limit = sign(
        Algorithm::HS256,
        &hs_key(),
        Some(&"k".repeat(256)),
        &claims("alice"),
    );
    assert_accepted(&send(&auth, &at_limit).await, "alice");
    let over = sign(
        Algorithm::HS256,
        &hs_key(),
        Some(&"k".repeat(257)),
        &claims("alice"),
    );
    assert_invalid_token(&send(&auth, &over).await, ErrorKind::UnknownKey);

    // 10 KB: too large a token for the default limit (400) ...
    let huge = sign(
        Algorithm::HS256,
        &hs_key(),
        Some(&"k".repeat(10_240)),
        &claims("alice"),
    );
    let res = send(&auth, &huge).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(kind(&res), ErrorKind::TokenTooLarge);
    // ... and with a generous token limit the header bound (2 KiB decoded)
    // stops it before the header is decoded.
    let generous = hs_auth().max_token_len(64 * 1024);
    let err = generous.verify(&huge).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(err.description(), "token header too large");
}

/// Mutation: compare kids by prefix or case-insensitively in
/// `Keys::candidates` → `a/../b`, `a' OR '1'='1`, `A` select key a.
#[tokio::test]
async fn kid_with_path_or_sql_content_just_fails_lookup() {
    let auth = two_keys();
    let jwks = JwtAuth::<Value>::new(Keys::from_jwk_set(JWKS).unwrap());
    let key_a = EncodingKey::from_secret(SECRET_A).unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    for kid in [
        "../../../../etc/passwd",
        "/dev/null",
        "a/../b",
        "a' OR '1'='1",
        "' UNION SELECT 'secret' --",
        "a\u{0}",
        "a%00",
        "a\r\nX-Injected: 1",
        "file:///etc/passwd",
        "http://127.0.0.1:1/key",
        "rsa-1/../ec-1",
        "rsa-1' --",
        "RSA-1",
    ] {
        let token = sign(Algorithm::HS256, &key_a, Some(kid), &claims("alice"));
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::UnknownKey);
        let token = sign(Algorithm::RS256, &rsa, Some(kid), &claims("alice"));
        assert_invalid_token(&send(&jwks, &token).await, ErrorKind::UnknownKey);
    }
}

// ---------------------------------------------------------------------------
// 4. `jku`, `x5u`, `jwk`, `x5c` are never followed
// ---------------------------------------------------------------------------

fn attacker_key() -> EncodingKey {
    init();
    EncodingKey::from_rsa_pem(ATTACKER_RSA_PRIVATE.as_bytes()).unwrap()
}

/// The attacker signs with their own RSA key and embeds its public half as
/// the `jwk` header (CVE-2018-0114 style), also under the server's kid.
///
/// Mutation: verify with `DecodingKey::from_jwk(header.jwk)` when present →
/// accepted.
#[tokio::test]
async fn embedded_jwk_is_never_used_to_verify() {
    let attacker = attacker_key();
    let jwk = Jwk::from_encoding_key(&attacker, Algorithm::RS256).unwrap();
    for (auth, kid) in [
        (rs_auth(), None),
        (
            JwtAuth::new(Keys::from_jwk_set(JWKS).unwrap()),
            Some("rsa-1"),
        ),
    ] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        header.jwk = Some(jwk.clone());
        let token = sign_with(&header, &claims("admin"), &attacker);
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::BadSignature);
        // The token does verify with the embedded key: only the configured
        // keys are what stop it.
        let embedded = JwtAuth::<Value>::new(
            Keys::from_jwk_set(&json!({ "keys": [jwk.clone()] }).to_string()).unwrap(),
        );
        assert!(embedded.verify(&token).is_ok());
    }
}

/// `jku`/`x5u` pointing at a port that refuses connections and at a live
/// listener: both tokens fail with a bad signature, quickly, and the listener
/// never sees a connection.
///
/// Mutation: fetch the `jku`/`x5u` URL (any attempt shows on the listener).
#[tokio::test]
async fn jku_and_x5u_are_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let attacker = attacker_key();
    let auth = rs_auth();
    let mut tokens = Vec::new();
    for base in [
        "http://127.0.0.1:1".to_owned(),
        format!("http://127.0.0.1:{port}"),
    ] {
        let mut header = Header::new(Algorithm::RS256);
        header.jku = Some(format!("{base}/.well-known/jwks.json"));
        tokens.push(header.clone());
        header.jku = None;
        header.x5u = Some(format!("{base}/cert.pem"));
        tokens.push(header.clone());
        header.jku = Some(format!("{base}/jwks.json"));
        header.x5c = Some(vec![b64(b"not a certificate")]);
        tokens.push(header);
    }
    let started = std::time::Instant::now();
    for header in &tokens {
        let token = sign_with(header, &claims("admin"), &attacker);
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::BadSignature);
        assert!(auth.verify(&token).is_err());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Anything spawned in the background would have connected by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    match listener.accept() {
        Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
        Err(e) => panic!("accept failed: {e}"),
        Ok((_, peer)) => panic!("a connection was made to the jku/x5u URL from {peer}"),
    }
}

// ---------------------------------------------------------------------------
// 5. Optional `typ` enforcement (RFC 8725 §3.11)
// ---------------------------------------------------------------------------

/// Mutation: drop the `rules.typ` check in `verify` → `JWT`, a missing typ
/// and an ID-token typ are accepted.
#[tokio::test]
async fn typ_is_enforced_when_configured() {
    let typed = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        sign_with(&header, &claims("alice"), &hs_key())
    };
    let auth = hs_auth().token_type("at+jwt");
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        assert_accepted(&send(&auth, &typed(Some(typ))).await, "alice");
    }
    for typ in [
        Some("JWT"),
        Some("id_token+jwt"),
        Some("at+jwt2"),
        Some(""),
        None,
    ] {
        assert_invalid_token(&send(&auth, &typed(typ)).await, ErrorKind::WrongType);
    }
    // A typ that is not a string is not a way around it.
    let token = hs256_raw(
        &json!({ "alg": "HS256", "typ": ["at+jwt"] }),
        &claims("alice"),
    );
    assert!(auth.verify(&token).is_err());
    // Optional: without the setting, any typ passes.
    assert_accepted(&send(&hs_auth(), &typed(Some("JWT"))).await, "alice");
    assert_accepted(&send(&hs_auth(), &typed(None)).await, "alice");
}

// ---------------------------------------------------------------------------
// 6. `crit` header parameters are rejected (RFC 7515 §4.1.11)
// ---------------------------------------------------------------------------

/// Mutation: drop the `header.crit` check in `verify` → accepted.
#[tokio::test]
async fn crit_header_is_rejected() {
    let auth = hs_auth();
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!(["http://example.com/ext"]),
        json!([]),
        json!("b64"),
        json!(null),
    ] {
        let token = hs256_raw(
            &json!({ "alg": "HS256", "crit": crit, "b64": false }),
            &claims("alice"),
        );
        assert_invalid_token(&send(&auth, &token).await, ErrorKind::UnsupportedCritical);
    }
    // The same token without `crit` is fine.
    let token = hs256_raw(&json!({ "alg": "HS256" }), &claims("alice"));
    assert_accepted(&send(&auth, &token).await, "alice");
}

// ---------------------------------------------------------------------------
// 7. Size limits before decoding
// ---------------------------------------------------------------------------

/// A *validly signed* token just over the limit: it would pass every other
/// check, so only the size limit refuses it, and it does so before any
/// signature verification (the `validate_with` hook, which runs after a
/// successful verification, is never reached).
///
/// Mutations: drop the length check in `precheck` → `verify` accepts it;
/// drop both that and the one in `parse_authorization` → the request is
/// accepted; drop only the latter → caught by the direct call below.
#[tokio::test]
async fn oversized_tokens_are_refused_before_decoding() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let auth = hs_auth().validate_with(move |_: &Authenticated<Value>| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let limit = tower_jwt_auth::DEFAULT_MAX_TOKEN_LEN;

    let small = hs256_raw(&json!({ "alg": "HS256" }), &claims("alice"));
    assert_accepted(&send(&auth, &small).await, "alice");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the hook counts verifications"
    );

    let mut big_claims = claims("alice");
    big_claims["pad"] = json!("x".repeat(limit));
    let big = hs256_raw(&json!({ "alg": "HS256" }), &big_claims);
    assert!(big.len() > limit && big.len() < 2 * limit);
    assert!(
        hs_auth().max_token_len(64 * 1024).verify(&big).is_ok(),
        "the big token is valid apart from its size"
    );

    let res = send(&auth, &big).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{}", res.body());
    assert_eq!(kind(&res), ErrorKind::TokenTooLarge);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"token too large\""
    );
    let body: Value = serde_json::from_str(res.body()).unwrap();
    assert_eq!(body["error"], "invalid_request");

    let err = auth.verify(&big).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenTooLarge);
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);

    // The size comes first: garbage of that size is "too large", not "malformed".
    let garbage = "%".repeat(limit + 1);
    assert_eq!(
        auth.verify(&garbage).unwrap_err().kind(),
        ErrorKind::TokenTooLarge
    );
    // The header parser alone refuses it too.
    let header = format!("Bearer {big}");
    let err = tower_jwt_auth::__fuzz::parse_authorization(header.as_bytes(), limit).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenTooLarge);

    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no verification of an oversized token"
    );
}

// ---------------------------------------------------------------------------
// 8. Secrets compared in constant time; one-time tokens by SHA-256 only
// ---------------------------------------------------------------------------

fn stateful_auth(store: impl RevocationStore) -> JwtAuth<Value> {
    hs_auth().store(store)
}

/// Replace the secret (last part) of a refresh token.
fn with_secret(refresh: &str, secret: &str) -> String {
    let (head, _) = refresh.rsplit_once('.').unwrap();
    format!("{head}.{secret}")
}

/// Through `Sessions::refresh`: a wrong secret of the same length and ones of
/// other lengths are all refused the same way, and change nothing.
///
/// Mutation: accept a presented hash when it is a prefix of the stored one
/// (a hand-rolled "constant-time" compare over `zip`) → the store-level
/// prefix case below is accepted.
#[tokio::test]
async fn refresh_secret_mismatches_are_refused_identically() {
    let auth = stateful_auth(MemoryStore::new());
    let sessions = auth.sessions();
    let login = sessions.login("alice", "web", &json!({})).await.unwrap();
    let secret = login.refresh_token.rsplit('.').next().unwrap().to_owned();
    let mut same_len = secret.clone().into_bytes();
    same_len[0] = if same_len[0] == b'A' { b'B' } else { b'A' };
    let same_len = String::from_utf8(same_len).unwrap();
    let candidates = [
        same_len.clone(),
        secret[..secret.len() - 1].to_owned(),
        format!("{secret}A"),
        "A".to_owned(),
        "A".repeat(200),
    ];
    let mut messages = Vec::new();
    for wrong in &candidates {
        let err = sessions
            .refresh(&with_secret(&login.refresh_token, wrong))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SessionError::InvalidRefreshToken),
            "{wrong:?}: {err:?}"
        );
        messages.push((err.to_string(), format!("{err:?}")));
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "every mismatch answers alike: {messages:?}"
    );
    // Nothing changed: the genuine token still rotates (no reuse detection
    // was triggered by the wrong ones).
    sessions.refresh(&login.refresh_token).await.unwrap();

    // The store compares hashes: a prefix, an extension, a case change, an
    // empty string are all `Invalid`; only the exact hash rotates.
    let store = MemoryStore::new();
    let hash = sha256_hex(b"the refresh secret");
    let created = store
        .create_session(NewSession {
            subject: "bob".into(),
            session_id: "s1".into(),
            device: "web".into(),
            refresh_hash: hash.clone(),
            max_sessions: 0,
            limit_policy: LimitPolicy::EvictOldest,
            replace_same_device: false,
            idle_timeout: Duration::from_secs(3600),
            lifetime: Duration::from_secs(86_400),
            markers: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    assert!(matches!(created, CreateOutcome::Created { .. }));
    let rotation = |presented: String| Rotation {
        subject: "bob".into(),
        session_id: "s1".into(),
        generation: 0,
        presented_hash: presented,
        new_hash: sha256_hex(b"next"),
        idle_timeout: Duration::from_secs(3600),
        markers: Duration::from_secs(3600),
    };
    let mut flipped = hash.clone().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    for presented in [
        String::from_utf8(flipped).unwrap(),
        hash[..32].to_owned(),
        hash[..63].to_owned(),
        format!("{hash}0"),
        hash.to_uppercase(),
        String::new(),
    ] {
        let outcome = store
            .rotate_refresh(rotation(presented.clone()))
            .await
            .unwrap();
        assert_eq!(outcome, RotateOutcome::Invalid, "{presented:?}");
    }
    let outcome = store.rotate_refresh(rotation(hash)).await.unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated { generation: 1 });
}

/// Timing is not observable reliably in a test, so this one audits the
/// source: the refresh-hash comparison in `MemoryStore` goes through
/// `util::constant_time_eq`, which is `subtle::ConstantTimeEq`.
///
/// Mutation: replace either with `==` → fails.
#[test]
fn refresh_hash_comparison_uses_subtle() {
    let util = include_str!("../src/util.rs");
    let memory = include_str!("../src/store/memory.rs");
    let ct = util
        .split("fn constant_time_eq")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("util::constant_time_eq exists");
    assert!(
        ct.contains("subtle::ConstantTimeEq") && ct.contains("ct_eq("),
        "{ct}"
    );
    let rotate = memory
        .split("fn rotate_refresh")
        .nth(1)
        .and_then(|rest| rest.split("\n    fn ").next())
        .expect("MemoryStore::rotate_refresh exists");
    assert!(rotate.contains("constant_time_eq("), "{rotate}");
    assert!(!rotate.contains("presented_hash =="), "{rotate}");
    assert!(!rotate.contains("== rotation.presented_hash"), "{rotate}");
}

/// A store that records every secret-bearing argument it is given.
type Recorder = Hooked<Seen>;

#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<(&'static str, String)>>>);

impl Hooks for Seen {
    fn saw(&self, what: &'static str, value: &str) {
        self.0.lock().unwrap().push((what, value.to_owned()));
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(&'static str, String)> {
        self.hooks.0.lock().unwrap().clone()
    }
}

/// One-time tokens and refresh secrets reach the store only as SHA-256
/// hashes: the store is never given the secret itself, so a lookup is an
/// exact match on a hash (no comparison of the secret, nothing to time).
///
/// Mutation: pass the raw one-time token (or refresh secret) to the store →
/// fails.
#[tokio::test]
async fn one_time_tokens_and_refresh_secrets_reach_the_store_only_as_hashes() {
    let store = Recorder::default();
    let auth = stateful_auth(store.clone());
    let sessions = auth.sessions();

    let token = sessions
        .one_time_token("password-reset", "alice", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        sessions
            .consume_one_time_token("password-reset", &token)
            .await
            .unwrap(),
        "alice"
    );
    assert!(matches!(
        sessions
            .consume_one_time_token("password-reset", &token)
            .await,
        Err(SessionError::InvalidOneTimeToken)
    ));
    let hash = sha256_hex(token.as_bytes());
    let seen = store.seen();
    assert_eq!(
        seen,
        vec![
            ("put_one_time.hash", hash.clone()),
            ("take_one_time.hash", hash.clone()),
            ("take_one_time.hash", hash),
        ]
    );

    let login = sessions.login("alice", "web", &json!({})).await.unwrap();
    let secret = login.refresh_token.rsplit('.').next().unwrap().to_owned();
    let refreshed = sessions.refresh(&login.refresh_token).await.unwrap();
    let new_secret = refreshed
        .refresh_token
        .rsplit('.')
        .next()
        .unwrap()
        .to_owned();
    let seen = store.seen();
    let value = |what: &str| {
        seen.iter()
            .find(|(w, _)| *w == what)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(value("create.refresh_hash"), sha256_hex(secret.as_bytes()));
    assert_eq!(
        value("rotate.presented_hash"),
        sha256_hex(secret.as_bytes())
    );
    assert_eq!(value("rotate.new_hash"), sha256_hex(new_secret.as_bytes()));

    // No raw secret in any argument the store was given.
    for (what, value) in &seen {
        for raw in [
            &token,
            &secret,
            &new_secret,
            &login.refresh_token,
            &login.access_token,
        ] {
            assert!(!value.contains(raw.as_str()), "{what} holds a raw secret");
        }
    }
}

// ---------------------------------------------------------------------------
// 9. No token, secret or key in `Debug` output or error bodies
//    (log lines: tests/no_secrets_in_logs.rs)
// ---------------------------------------------------------------------------

/// What a secret may look like in a `Debug` string: as text, as the
/// `Debug` of its bytes, as hex and as base64.
fn renderings(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        format!("{secret:?}"),
        format!("{:?}", secret.to_vec()),
        secret.iter().map(|b| format!("{b:02x}")).collect(),
        b64(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_owned());
    }
    out.retain(|s| s.len() >= 8);
    out
}

#[track_caller]
fn assert_hides(debug: &str, secrets: &[&[u8]]) {
    for secret in secrets {
        for rendering in renderings(secret) {
            assert!(
                !debug.contains(&rendering),
                "Debug output reveals a secret: {debug}"
            );
        }
    }
}

/// The body of a PEM, without its armour lines.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    std::str::from_utf8(pem)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .into_bytes()
}

/// Mutations: derive `Debug` for `Login`/`IssuedToken` (or print the key
/// material in `Keys`) → fails.
#[tokio::test]
async fn debug_output_never_shows_tokens_secrets_or_keys() {
    // Keys: HMAC secret, an RSA signing key, and JwtAuth holding them.
    let hs = Keys::hs256(SECRET).unwrap();
    let rsa = Keys::from_pem(Algorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .signing_pem(Algorithm::RS256, RSA_PRIVATE, Some("rsa-1"))
        .unwrap();
    let rsa_body = pem_body(RSA_PRIVATE);
    for debug in [format!("{hs:?}"), format!("{hs:#?}")] {
        assert_hides(&debug, &[SECRET]);
        assert!(debug.contains("redacted"), "{debug}");
    }
    for debug in [format!("{rsa:?}"), format!("{rsa:#?}")] {
        assert_hides(&debug, &[&rsa_body, &rsa_body[64..128]]);
    }
    let auth = stateful_auth(MemoryStore::new());
    for debug in [format!("{auth:?}"), format!("{auth:#?}")] {
        assert_hides(&debug, &[SECRET]);
    }
    let rsa_auth = JwtAuth::<Value>::new(rsa);
    assert_hides(&format!("{rsa_auth:#?}"), &[&rsa_body, &rsa_body[64..128]]);
    assert_hides(&format!("{:?}", auth.sessions()), &[SECRET]);

    // Login and IssuedToken: neither token, nor the refresh secret, nor the
    // JWT signature.
    let sessions = auth.sessions();
    let login = sessions.login("alice", "web", &json!({})).await.unwrap();
    let issued = sessions.issue("alice", &json!({})).unwrap();
    let refreshed = sessions.refresh(&login.refresh_token).await.unwrap();
    let parts = |token: &str| -> Vec<Vec<u8>> {
        let mut out = vec![token.as_bytes().to_vec()];
        out.extend(token.split('.').skip(1).map(|p| p.as_bytes().to_vec()));
        out
    };
    let mut hidden = parts(&login.access_token);
    hidden.extend(parts(&issued.token));
    hidden.push(login.refresh_token.as_bytes().to_vec());
    hidden.push(
        login
            .refresh_token
            .rsplit('.')
            .next()
            .unwrap()
            .as_bytes()
            .to_vec(),
    );
    hidden.push(refreshed.refresh_token.as_bytes().to_vec());
    hidden.push(
        refreshed
            .refresh_token
            .rsplit('.')
            .next()
            .unwrap()
            .as_bytes()
            .to_vec(),
    );
    let hidden: Vec<&[u8]> = hidden.iter().map(Vec::as_slice).collect();
    for debug in [
        format!("{login:?}"),
        format!("{login:#?}"),
        format!("{issued:?}"),
        format!("{issued:#?}"),
        format!("{refreshed:?}"),
    ] {
        assert_hides(&debug, &hidden);
    }

    // What a rejected token leaves behind: the AuthError's Debug, its
    // response body and challenge.
    let mut tampered = login.access_token.clone();
    tampered.push('A');
    let res = send(&auth, &tampered).await;
    let err = res.extensions().get::<AuthError>().unwrap().clone();
    let rendered = format!(
        "{err:?} {err} {} {:?} {}",
        res.body(),
        res.headers(),
        err.json_body()
    );
    assert_hides(&rendered, &[tampered.as_bytes(), hidden[0]]);
    assert_hides(&rendered, &hidden[1..3]);

    // Configuration errors do not echo the rejected secret.
    let weak = b"a weak secret!";
    let err = Keys::hs256(weak).unwrap_err();
    assert_hides(&format!("{err:?} {err}"), &[weak]);
}

/// Mutation: print the URL in `RedisStoreBuilder`'s/`RedisStore`'s `Debug`
/// (or in the connection error) → the password shows.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_debug_and_errors_hide_the_password() {
    use tower_jwt_auth::RedisStore;
    const PASSWORD: &str = "hunter2-redis-p4ssw0rd";
    let builder = RedisStore::builder(&format!("redis://:{PASSWORD}@127.0.0.1:1/3"))
        .connection_timeout(Duration::from_millis(300));
    let debug = format!("{builder:?} {builder:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(
        debug.contains("127.0.0.1:1"),
        "the target is still shown: {debug}"
    );
    let acl = RedisStore::builder(&format!("redis://admin:{PASSWORD}@127.0.0.1:1"));
    assert!(!format!("{acl:?}").contains(PASSWORD));

    // Connecting fails (nothing listens on port 1): the error hides it too.
    let err = builder.build().await.unwrap_err();
    let text = format!("{err:?} {err}");
    assert!(!text.contains(PASSWORD), "{text}");

    // A live store behind a password.
    let server = common::redis_server::RedisServer::start();
    let _: () = server.cmd(&["CONFIG", "SET", "requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port());
    let store = RedisStore::builder(&url)
        .startup_checks(false)
        .build()
        .await
        .unwrap();
    let debug = format!("{store:?} {store:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    let auth = hs_auth().store(store);
    let debug = format!("{auth:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    // A wrong password is refused without echoing either password.
    let wrong = format!("redis://:not-{PASSWORD}@127.0.0.1:{}/0", server.port());
    let err = RedisStore::builder(&wrong)
        .startup_checks(false)
        .build()
        .await
        .unwrap_err();
    let text = format!("{err:?} {err}");
    assert!(!text.contains(PASSWORD), "{text}");
}

// ---------------------------------------------------------------------------
// 10. HMAC secrets shorter than the hash output are a configuration error
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_weak(err: ConfigError, want_alg: Algorithm, want_min: usize, want_got: usize) {
    match &err {
        ConfigError::WeakSecret { alg, min, got } => {
            assert_eq!((*alg, *min, *got), (want_alg, want_min, want_got));
        }
        other => panic!("expected WeakSecret, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&format!("at least {want_min} bytes")),
        "a clear message: {message}"
    );
}

fn oct_jwks(alg: &str, len: usize) -> String {
    json!({ "keys": [{ "kty": "oct", "kid": "h", "alg": alg, "k": b64(&vec![7u8; len]) }] })
        .to_string()
}

/// Mutations: lower a minimum in `hmac_min_len`, or drop `check_secret` from
/// `Keys::hmac` or `Keys::from_jwk_set` → fails.
#[test]
fn short_hmac_secrets_are_rejected_at_configuration_time() {
    assert_weak(
        Keys::hs256([1u8; 31]).unwrap_err(),
        Algorithm::HS256,
        32,
        31,
    );
    assert_weak(Keys::hs256([0u8; 0]).unwrap_err(), Algorithm::HS256, 32, 0);
    assert_weak(
        Keys::hmac(Algorithm::HS256, [1u8; 31]).unwrap_err(),
        Algorithm::HS256,
        32,
        31,
    );
    assert_weak(
        Keys::hmac(Algorithm::HS384, [1u8; 47]).unwrap_err(),
        Algorithm::HS384,
        48,
        47,
    );
    assert_weak(
        Keys::hmac(Algorithm::HS512, [1u8; 63]).unwrap_err(),
        Algorithm::HS512,
        64,
        63,
    );
    assert!(Keys::hs256([1u8; 32]).is_ok());
    assert!(Keys::hmac(Algorithm::HS384, [1u8; 48]).is_ok());
    assert!(Keys::hmac(Algorithm::HS512, [1u8; 64]).is_ok());

    for (alg, name, min) in [
        (Algorithm::HS256, "HS256", 32),
        (Algorithm::HS384, "HS384", 48),
        (Algorithm::HS512, "HS512", 64),
    ] {
        let err = Keys::from_jwk_set(&oct_jwks(name, min - 1)).unwrap_err();
        assert_weak(err, alg, min, min - 1);
        assert!(Keys::from_jwk_set(&oct_jwks(name, min)).is_ok(), "{name}");
    }
    // One weak key spoils the whole set.
    let mixed = json!({ "keys": [
        { "kty": "oct", "kid": "good", "alg": "HS256", "k": b64(&[7u8; 32]) },
        { "kty": "oct", "kid": "weak", "alg": "HS256", "k": b64(&[7u8; 16]) },
    ]});
    assert_weak(
        Keys::from_jwk_set(&mixed.to_string()).unwrap_err(),
        Algorithm::HS256,
        32,
        16,
    );
}

// ---------------------------------------------------------------------------
// 11. A token without `exp` is rejected by default
// ---------------------------------------------------------------------------

/// Mutation: drop `RegisteredClaim::Exp` from `Rules::default` → accepted.
#[tokio::test]
async fn token_without_exp_is_rejected_by_default() {
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    let token = hs256_raw(&json!({ "alg": "HS256" }), &c);
    let res = send(&hs_auth(), &token).await;
    assert_invalid_token(&res, ErrorKind::MissingClaim);
    assert!(
        res.body().contains("token has no exp claim"),
        "{}",
        res.body()
    );
    // A non-numeric exp is not a way around it either.
    c["exp"] = json!("never");
    let token = hs256_raw(&json!({ "alg": "HS256" }), &c);
    assert!(hs_auth().verify(&token).is_err());
    // Only an explicit opt-out accepts it.
    c.as_object_mut().unwrap().remove("exp");
    let token = hs256_raw(&json!({ "alg": "HS256" }), &c);
    let lax = hs_auth().required_claims([]);
    assert_accepted(&send(&lax, &token).await, "alice");
}
