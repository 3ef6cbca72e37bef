//! The layer end to end, without Redis: tokens minted with `jsonwebtoken`
//! (a standard JWT library) and with the fixture keys in `tests/keys/`,
//! driven through a `tower::service_fn` inner service, `tower-test` mocks and
//! an axum `Router`. Every row of the response table in DESIGN.md is covered:
//! status, exact `WWW-Authenticate`, JSON body, `AuthError` in the extensions.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::hooked::{Hooked, Hooks};
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_jwt_auth::store::{CheckRequest, StoreFuture, Verdict};
use tower_jwt_auth::{
    Algorithm, AuthError, Authenticated, ConfigError, ErrorKind, FailureMode, JwtAuth, Keys,
    MemoryStore, RegisteredClaim, RevocationReason, RevocationStore, RevokeError, SessionEnd,
    StoreError, TokenSource,
};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const SECRET: &[u8] = b"an HS256 test secret of 32+ bytes!!";
const ISS: &str = "https://id.example.com";
const AUD: &str = "orders-api";

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const RSA_PUBLIC_DER: &[u8] = include_bytes!("keys/rsa_public.der");
const EC256_PRIVATE: &[u8] = include_bytes!("keys/ec_p256_private.pem");
const EC256_PUBLIC: &[u8] = include_bytes!("keys/ec_p256_public.pem");
const EC384_PRIVATE: &[u8] = include_bytes!("keys/ec_p384_private.pem");
const EC384_PUBLIC: &[u8] = include_bytes!("keys/ec_p384_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed25519_public.pem");
const JWKS: &str = include_str!("keys/jwks.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MyClaims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

static NEXT_JTI: AtomicU64 = AtomicU64::new(0);

/// Valid claims for `sub`: issued now, expiring in five minutes, a unique `jti`.
fn claims(sub: &str) -> Value {
    let t = now();
    json!({
        "sub": sub,
        "iat": t,
        "exp": t + 300,
        "jti": format!("jti-{}", NEXT_JTI.fetch_add(1, Ordering::Relaxed)),
    })
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("jsonwebtoken::encode")
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    sign_with(&header, claims, key)
}

fn hs_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &hs_key(SECRET), None, claims)
}

fn hs_auth() -> JwtAuth<MyClaims> {
    JwtAuth::new(Keys::hs256(SECRET).unwrap())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Requests through a mock inner service
// ---------------------------------------------------------------------------

/// The inner service: answers `hello <sub>` with the verified claims, or
/// `anonymous` without any.
fn echo(
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    service_fn(|req: Request<String>| async move {
        let body = match req.extensions().get::<Authenticated<MyClaims>>() {
            Some(auth) => {
                assert_eq!(
                    auth.subject(),
                    auth.claims.sub,
                    "typed and registered sub agree"
                );
                format!("hello {}", auth.claims.sub)
            }
            None => "anonymous".to_owned(),
        };
        Ok::<_, Infallible>(Response::new(body))
    })
}

async fn send(auth: &JwtAuth<MyClaims>, req: Request<String>) -> Response<String> {
    auth.layer(echo()).oneshot(req).await.unwrap()
}

fn get() -> http::request::Builder {
    Request::get("/orders")
}

fn bearer(token: &str) -> Request<String> {
    get()
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

async fn send_bearer(auth: &JwtAuth<MyClaims>, token: &str) -> Response<String> {
    send(auth, bearer(token)).await
}

#[track_caller]
fn assert_accepted(res: &Response<String>, sub: &str) {
    assert_eq!(res.status(), StatusCode::OK, "body: {}", res.body());
    assert_eq!(res.body(), &format!("hello {sub}"));
    assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    assert!(res.extensions().get::<AuthError>().is_none());
}

#[track_caller]
fn body_json(res: &Response<String>) -> Value {
    serde_json::from_str(res.body()).unwrap_or_else(|e| panic!("{e}: {:?}", res.body()))
}

/// A rejection with an RFC 6750 error code: status, exact challenge, JSON
/// body, and the `AuthError` in the extensions.
#[track_caller]
fn assert_rejected(
    res: &Response<String>,
    status: StatusCode,
    code: &str,
    description: &str,
    kind: ErrorKind,
) {
    assert_eq!(res.status(), status, "body: {}", res.body());
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        format!("Bearer realm=\"api\", error=\"{code}\", error_description=\"{description}\""),
    );
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let body = body_json(res);
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("the rejection carries its AuthError");
    assert_eq!(err.kind(), kind);
    assert_eq!(err.description(), description);
    assert_eq!(err.status(), status);
}

#[track_caller]
fn assert_invalid_token(res: &Response<String>, description: &str, kind: ErrorKind) {
    assert_rejected(
        res,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        description,
        kind,
    );
    assert!(body_json(res).get("reason").is_none() || matches!(kind, ErrorKind::Revoked(_)));
}

#[track_caller]
fn assert_invalid_request(res: &Response<String>, description: &str, kind: ErrorKind) {
    assert_rejected(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        description,
        kind,
    );
}

#[track_caller]
fn assert_revoked(res: &Response<String>, description: &str, reason: RevocationReason) {
    assert_invalid_token(res, description, ErrorKind::Revoked(reason));
    assert_eq!(body_json(res)["reason"], reason.code());
    let err = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(err.reason(), Some(reason.code()));
}

/// 401 with a bare challenge: no error code (RFC 6750 §3.1).
#[track_caller]
fn assert_challenge(res: &Response<String>, realm: &str) {
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "body: {}",
        res.body()
    );
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        format!("Bearer realm=\"{realm}\"")
    );
    let body = body_json(res);
    assert_eq!(body["error"], "unauthorized");
    assert!(body["error_description"].is_string());
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::kind),
        Some(ErrorKind::MissingToken)
    );
}

#[track_caller]
fn assert_unavailable(res: &Response<String>) {
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "body: {}",
        res.body()
    );
    assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    let retry: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body = body_json(res);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        body["error_description"],
        "authentication temporarily unavailable"
    );
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::kind),
        Some(ErrorKind::StoreUnavailable)
    );
}

// ---------------------------------------------------------------------------
// A store we own, for failure tests: a MemoryStore whose `check` can be made
// to fail, hang, or wait at a gate. Counts `check` calls.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Healthy,
    Fail,
    Hang,
    Gated,
}

/// The store of the failure tests.
type TestStore = Hooked<Faults>;

#[derive(Debug, Clone)]
struct Faults {
    mode: Arc<Mutex<Mode>>,
    calls: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
}

fn test_store(mode: Mode) -> TestStore {
    Hooked::new(Faults {
        mode: Arc::new(Mutex::new(mode)),
        calls: Arc::default(),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
    })
}

impl TestStore {
    fn set(&self, mode: Mode) {
        *self.hooks.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.hooks.calls.load(Ordering::SeqCst)
    }

    fn open_gate(&self) {
        self.hooks.gate.add_permits(1);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused by 10.1.2.3:6379 (internal detail)")]
struct Refused;

impl Hooks for Faults {
    fn check(
        &self,
        memory: &MemoryStore,
        request: &CheckRequest<'_>,
    ) -> StoreFuture<'static, Verdict> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        let memory = memory.clone();
        let gate = self.gate.clone();
        match mode {
            Mode::Healthy => memory.check(request),
            Mode::Fail => Box::pin(async { Err(StoreError::unavailable(Refused)) }),
            Mode::Hang => Box::pin(std::future::pending()),
            Mode::Gated => {
                let request = request.clone().into_owned();
                Box::pin(async move {
                    let _permit = gate.acquire().await.expect("gate closed");
                    memory.check(&request).await
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// No token, another scheme
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_without_token_gets_401_with_a_bare_bearer_challenge() {
    let res = send(&hs_auth(), get().body(String::new()).unwrap()).await;
    assert_challenge(&res, "api");
    assert_ne!(res.body(), "anonymous", "the inner service must not run");
}

#[tokio::test]
async fn basic_credentials_get_the_bare_challenge_without_error_code() {
    let req = get()
        .header(AUTHORIZATION, "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .body(String::new())
        .unwrap();
    let res = send(&hs_auth(), req).await;
    assert_challenge(&res, "api");
}

#[tokio::test]
async fn configured_realm_appears_in_every_challenge() {
    let auth = hs_auth().realm("orders");
    let res = send(&auth, get().body(String::new()).unwrap()).await;
    assert_challenge(&res, "orders");

    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    let res = send_bearer(&auth, &hs256(&c)).await;
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"token expired\""
    );
}

#[tokio::test]
async fn bearer_scheme_is_matched_case_insensitively() {
    let token = hs256(&claims("alice"));
    let req = get()
        .header(AUTHORIZATION, format!("bEaReR {token}"))
        .body(String::new())
        .unwrap();
    assert_accepted(&send(&hs_auth(), req).await, "alice");
}

// ---------------------------------------------------------------------------
// 400 invalid_request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let token = hs256(&claims("alice"));
    let req = get()
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let res = send(&hs_auth(), req).await;
    assert_invalid_request(
        &res,
        "more than one Authorization header",
        ErrorKind::InvalidRequest,
    );
}

#[tokio::test]
async fn bearer_with_an_empty_token_is_an_invalid_request() {
    // hyper trims trailing whitespace, so "Bearer " usually arrives as "Bearer".
    for value in ["Bearer", "Bearer ", "Bearer    "] {
        let req = get()
            .header(AUTHORIZATION, value)
            .body(String::new())
            .unwrap();
        let res = send(&hs_auth(), req).await;
        assert_invalid_request(&res, "empty bearer token", ErrorKind::InvalidRequest);
    }
}

#[tokio::test]
async fn bearer_token_with_spaces_is_an_invalid_request() {
    let token = hs256(&claims("alice"));
    let (head, tail) = token.split_at(20);
    let req = get()
        .header(AUTHORIZATION, format!("Bearer {head} {tail}"))
        .body(String::new())
        .unwrap();
    let res = send(&hs_auth(), req).await;
    assert_invalid_request(
        &res,
        "bearer token contains whitespace",
        ErrorKind::InvalidRequest,
    );
}

#[tokio::test]
async fn token_larger_than_8_kib_is_an_invalid_request() {
    // Exactly 8 KiB passes the size check (and then is not a JWT: 401) ...
    let at_limit = "a".repeat(tower_jwt_auth::DEFAULT_MAX_TOKEN_LEN);
    let res = send_bearer(&hs_auth(), &at_limit).await;
    assert_invalid_token(
        &res,
        "token is not a JWS compact serialization",
        ErrorKind::Malformed,
    );

    // ... one byte more is refused before parsing.
    for len in [tower_jwt_auth::DEFAULT_MAX_TOKEN_LEN + 1, 64 * 1024] {
        let res = send_bearer(&hs_auth(), &"a".repeat(len)).await;
        assert_invalid_request(&res, "token too large", ErrorKind::TokenTooLarge);
    }
}

#[tokio::test]
async fn valid_token_larger_than_a_custom_max_token_len_is_an_invalid_request() {
    let mut c = claims("alice");
    c["padding"] = json!("x".repeat(200));
    let token = hs256(&c);
    assert!(token.len() > 256);
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");

    let small = hs_auth().max_token_len(256);
    let res = send_bearer(&small, &token).await;
    assert_invalid_request(&res, "token too large", ErrorKind::TokenTooLarge);

    // A token within the custom limit still passes.
    let short = hs256(&claims("bob"));
    assert!(short.len() <= 256, "{}", short.len());
    assert_accepted(&send_bearer(&small, &short).await, "bob");
}

#[tokio::test]
async fn non_utf8_authorization_value_is_an_invalid_request() {
    let value = HeaderValue::from_bytes(b"Bearer \xff\xfe.abc.def").unwrap();
    let req = get()
        .header(AUTHORIZATION, value)
        .body(String::new())
        .unwrap();
    let res = send(&hs_auth(), req).await;
    assert_invalid_request(
        &res,
        "bearer token contains invalid characters",
        ErrorKind::InvalidRequest,
    );
}

// ---------------------------------------------------------------------------
// Every algorithm family with the fixture keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hmac_tokens_of_every_size_are_accepted() {
    let secret = [7u8; 64];
    for (alg, len) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        let auth = JwtAuth::<MyClaims>::new(Keys::hmac(alg, &secret[..len]).unwrap());
        let token = sign(alg, &hs_key(&secret[..len]), None, &claims("alice"));
        assert_accepted(&send_bearer(&auth, &token).await, "alice");

        // The same bytes under another HMAC algorithm are not accepted.
        let other = if alg == Algorithm::HS256 {
            Algorithm::HS512
        } else {
            Algorithm::HS256
        };
        let token = sign(other, &hs_key(&secret[..len]), None, &claims("alice"));
        let res = send_bearer(&auth, &token).await;
        assert_invalid_token(
            &res,
            "token algorithm not allowed",
            ErrorKind::AlgorithmNotAllowed,
        );
    }
}

#[tokio::test]
async fn rsa_tokens_of_every_algorithm_are_accepted_with_the_pem_key() {
    let private = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let auth = JwtAuth::<MyClaims>::new(Keys::from_pem(alg, RSA_PUBLIC).unwrap());
        let token = sign(alg, &private, None, &claims("alice"));
        assert_accepted(&send_bearer(&auth, &token).await, "alice");
    }
}

#[tokio::test]
async fn rsa_public_key_in_pkcs1_der_verifies_rs256() {
    let auth = JwtAuth::<MyClaims>::new(Keys::from_der(Algorithm::RS256, RSA_PUBLIC_DER).unwrap());
    let private = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    assert_accepted(
        &send_bearer(
            &auth,
            &sign(Algorithm::RS256, &private, None, &claims("alice")),
        )
        .await,
        "alice",
    );

    // A token signed by another key does not verify against it.
    let ec = EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap();
    let res = send_bearer(&auth, &sign(Algorithm::ES256, &ec, None, &claims("alice"))).await;
    assert_invalid_token(
        &res,
        "token algorithm not allowed",
        ErrorKind::AlgorithmNotAllowed,
    );
}

#[tokio::test]
async fn rsa_key_allows_only_its_configured_algorithms() {
    let private = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let rs256_only =
        JwtAuth::<MyClaims>::new(Keys::from_pem(Algorithm::RS256, RSA_PUBLIC).unwrap());
    for alg in [Algorithm::RS384, Algorithm::PS256] {
        let res = send_bearer(&rs256_only, &sign(alg, &private, None, &claims("alice"))).await;
        assert_invalid_token(
            &res,
            "token algorithm not allowed",
            ErrorKind::AlgorithmNotAllowed,
        );
    }

    let widened = JwtAuth::<MyClaims>::new(
        Keys::from_pem(Algorithm::RS256, RSA_PUBLIC)
            .unwrap()
            .allow(Algorithm::PS256)
            .unwrap(),
    );
    let token = sign(Algorithm::PS256, &private, None, &claims("alice"));
    assert_accepted(&send_bearer(&widened, &token).await, "alice");

    // Widening across families is a configuration error.
    let err = Keys::from_pem(Algorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .allow(Algorithm::HS256)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::AlgorithmMismatch {
                alg: Algorithm::HS256,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn ec_p256_and_p384_tokens_are_accepted() {
    for (alg, private, public) in [
        (Algorithm::ES256, EC256_PRIVATE, EC256_PUBLIC),
        (Algorithm::ES384, EC384_PRIVATE, EC384_PUBLIC),
    ] {
        let auth = JwtAuth::<MyClaims>::new(Keys::from_pem(alg, public).unwrap());
        let key = EncodingKey::from_ec_pem(private).unwrap();
        assert_accepted(
            &send_bearer(&auth, &sign(alg, &key, None, &claims("alice"))).await,
            "alice",
        );
    }
    // The P-384 key does not verify a P-256 signature.
    let auth = JwtAuth::<MyClaims>::new(Keys::from_pem(Algorithm::ES384, EC384_PUBLIC).unwrap());
    let p256 = EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap();
    let res = send_bearer(
        &auth,
        &sign(Algorithm::ES256, &p256, None, &claims("alice")),
    )
    .await;
    assert_invalid_token(
        &res,
        "token algorithm not allowed",
        ErrorKind::AlgorithmNotAllowed,
    );
}

#[tokio::test]
async fn eddsa_tokens_are_accepted() {
    let auth = JwtAuth::<MyClaims>::new(Keys::from_pem(Algorithm::EdDSA, ED_PUBLIC).unwrap());
    let key = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    let token = sign(Algorithm::EdDSA, &key, None, &claims("alice"));
    assert_accepted(&send_bearer(&auth, &token).await, "alice");

    let mut forged = token.clone();
    let (message, _) = token.rsplit_once('.').unwrap();
    forged.truncate(message.len() + 1);
    forged.push_str(&b64(&[0u8; 64]));
    assert_invalid_token(
        &send_bearer(&auth, &forged).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );
}

#[tokio::test]
async fn jwk_set_keys_verify_tokens_selected_by_kid() {
    let auth = JwtAuth::<MyClaims>::new(Keys::from_jwk_set(JWKS).unwrap());
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec = EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap();

    let token = sign(Algorithm::RS256, &rsa, Some("rsa-1"), &claims("alice"));
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
    let token = sign(Algorithm::ES256, &ec, Some("ec-1"), &claims("bob"));
    assert_accepted(&send_bearer(&auth, &token).await, "bob");

    // An RSA token that names the EC key's kid: that key does not allow RS256.
    let token = sign(Algorithm::RS256, &rsa, Some("ec-1"), &claims("alice"));
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "token algorithm not allowed",
        ErrorKind::AlgorithmNotAllowed,
    );

    // The JWK of rsa-1 pins RS256: PS256 with the same RSA key is refused.
    let token = sign(Algorithm::PS256, &rsa, Some("rsa-1"), &claims("alice"));
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "token algorithm not allowed",
        ErrorKind::AlgorithmNotAllowed,
    );

    let token = sign(Algorithm::RS256, &rsa, Some("rsa-2"), &claims("alice"));
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "unknown key id",
        ErrorKind::UnknownKey,
    );
}

// ---------------------------------------------------------------------------
// kid selection
// ---------------------------------------------------------------------------

const SECRET_A: &[u8] = b"secret A, at least thirty-two bytes long";
const SECRET_B: &[u8] = b"secret B, at least thirty-two bytes long";

fn two_key_auth() -> JwtAuth<MyClaims> {
    let keys = Keys::hs256(SECRET_A)
        .unwrap()
        .kid("a")
        .unwrap()
        .and(Keys::hs256(SECRET_B).unwrap().kid("b").unwrap())
        .and(
            Keys::from_pem(Algorithm::RS256, RSA_PUBLIC)
                .unwrap()
                .kid("r")
                .unwrap(),
        );
    JwtAuth::new(keys)
}

#[tokio::test]
async fn kid_selects_the_right_key_among_several() {
    let auth = two_key_auth();
    let token = sign(
        Algorithm::HS256,
        &hs_key(SECRET_A),
        Some("a"),
        &claims("alice"),
    );
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
    let token = sign(
        Algorithm::HS256,
        &hs_key(SECRET_B),
        Some("b"),
        &claims("bob"),
    );
    assert_accepted(&send_bearer(&auth, &token).await, "bob");
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let token = sign(Algorithm::RS256, &rsa, Some("r"), &claims("carol"));
    assert_accepted(&send_bearer(&auth, &token).await, "carol");

    // Signed with B but naming A: A's key is the one tried, and it fails.
    let token = sign(
        Algorithm::HS256,
        &hs_key(SECRET_B),
        Some("a"),
        &claims("alice"),
    );
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );
}

#[tokio::test]
async fn unknown_kid_is_rejected_with_invalid_token() {
    let auth = two_key_auth();
    let token = sign(
        Algorithm::HS256,
        &hs_key(SECRET_A),
        Some("c"),
        &claims("alice"),
    );
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "unknown key id",
        ErrorKind::UnknownKey,
    );

    let long_kid = "k".repeat(300);
    let token = sign(
        Algorithm::HS256,
        &hs_key(SECRET_A),
        Some(&long_kid),
        &claims("alice"),
    );
    assert_invalid_token(
        &send_bearer(&auth, &token).await,
        "unknown key id",
        ErrorKind::UnknownKey,
    );
}

// ---------------------------------------------------------------------------
// Registered claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn expired_token_is_rejected_with_invalid_token() {
    let mut c = claims("alice");
    c["iat"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    let res = send_bearer(&hs_auth(), &hs256(&c)).await;
    assert_invalid_token(&res, "token expired", ErrorKind::Expired);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"token expired\""
    );
}

#[tokio::test]
async fn token_expired_within_the_leeway_is_accepted() {
    let mut c = claims("alice");
    c["exp"] = json!(now() - 10);
    let token = hs256(&c);
    // Default leeway: 30 s.
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");
    // Without leeway the same token is expired.
    let strict = hs_auth().leeway(Duration::ZERO);
    assert_invalid_token(
        &send_bearer(&strict, &token).await,
        "token expired",
        ErrorKind::Expired,
    );
    // Past the leeway it is expired too.
    c["exp"] = json!(now() - 31);
    assert_invalid_token(
        &send_bearer(&hs_auth(), &hs256(&c)).await,
        "token expired",
        ErrorKind::Expired,
    );
}

#[tokio::test]
async fn token_not_yet_valid_is_rejected() {
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 120);
    let res = send_bearer(&hs_auth(), &hs256(&c)).await;
    assert_invalid_token(&res, "token not yet valid", ErrorKind::NotYetValid);
}

#[tokio::test]
async fn token_not_yet_valid_within_the_leeway_is_accepted() {
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 10);
    let token = hs256(&c);
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");
    let strict = hs_auth().leeway(Duration::ZERO);
    assert_invalid_token(
        &send_bearer(&strict, &token).await,
        "token not yet valid",
        ErrorKind::NotYetValid,
    );
}

#[tokio::test]
async fn token_without_exp_is_rejected_by_default() {
    let token = hs256(&without(claims("alice"), "exp"));
    let res = send_bearer(&hs_auth(), &token).await;
    assert_invalid_token(&res, "token has no exp claim", ErrorKind::MissingClaim);
}

#[tokio::test]
async fn wrong_or_missing_issuer_is_rejected() {
    let auth = hs_auth().issuer(ISS);
    let mut c = claims("alice");
    c["iss"] = json!(ISS);
    assert_accepted(&send_bearer(&auth, &hs256(&c)).await, "alice");

    c["iss"] = json!("https://evil.example.com");
    assert_invalid_token(
        &send_bearer(&auth, &hs256(&c)).await,
        "token issuer not accepted",
        ErrorKind::WrongIssuer,
    );

    let c = without(c, "iss");
    assert_invalid_token(
        &send_bearer(&auth, &hs256(&c)).await,
        "token issuer not accepted",
        ErrorKind::WrongIssuer,
    );
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let auth = hs_auth().audience(AUD);
    let mut c = claims("alice");
    c["aud"] = json!("billing-api");
    assert_invalid_token(
        &send_bearer(&auth, &hs256(&c)).await,
        "token audience not accepted",
        ErrorKind::WrongAudience,
    );
    c["aud"] = json!(["billing-api", "shipping-api"]);
    assert_invalid_token(
        &send_bearer(&auth, &hs256(&c)).await,
        "token audience not accepted",
        ErrorKind::WrongAudience,
    );

    c["aud"] = json!(AUD);
    assert_accepted(&send_bearer(&auth, &hs256(&c)).await, "alice");
    c["aud"] = json!(["billing-api", AUD]);
    assert_accepted(&send_bearer(&auth, &hs256(&c)).await, "alice");
}

/// jsonwebtoken's `Validation` lets a token without `aud` pass even with an
/// audience configured (upstream #493); the layer must not.
#[tokio::test]
async fn token_that_omits_aud_is_rejected_when_an_audience_is_configured() {
    let auth = hs_auth().audience(AUD);
    let token = hs256(&claims("alice"));
    assert!(!token.is_empty());
    let res = send_bearer(&auth, &token).await;
    assert_invalid_token(
        &res,
        "token audience not accepted",
        ErrorKind::WrongAudience,
    );

    // Without an audience configured, the same token is fine.
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let auth = hs_auth().required_claims([
        RegisteredClaim::Exp,
        RegisteredClaim::Jti,
        RegisteredClaim::Iat,
    ]);
    assert_accepted(&send_bearer(&auth, &hs256(&claims("alice"))).await, "alice");
    for (name, description) in [
        ("jti", "token has no jti claim"),
        ("iat", "token has no iat claim"),
    ] {
        let token = hs256(&without(claims("alice"), name));
        assert_invalid_token(
            &send_bearer(&auth, &token).await,
            description,
            ErrorKind::MissingClaim,
        );
    }

    // An empty list makes even exp optional.
    let lax = hs_auth().required_claims([]);
    let token = hs256(&without(claims("alice"), "exp"));
    assert_accepted(&send_bearer(&lax, &token).await, "alice");
}

#[tokio::test]
async fn claims_that_do_not_fit_the_claims_type_are_rejected() {
    let mut c = claims("alice");
    c["roles"] = json!("admin"); // a string, not a list
    let res = send_bearer(&hs_auth(), &hs256(&c)).await;
    assert_invalid_token(&res, "token claims invalid", ErrorKind::InvalidClaims);
}

// ---------------------------------------------------------------------------
// Signatures and headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tampered_payload_is_rejected_as_bad_signature() {
    let token = hs256(&claims("alice"));
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    payload["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    );
    let res = send_bearer(&hs_auth(), &forged).await;
    assert_invalid_token(&res, "invalid signature", ErrorKind::BadSignature);
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");
}

#[tokio::test]
async fn tampered_signature_is_rejected() {
    let token = hs256(&claims("alice"));
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    sig[5] ^= 0x01;
    let forged = format!("{message}.{}", b64(&sig));
    assert_invalid_token(
        &send_bearer(&hs_auth(), &forged).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );

    // A token signed with another secret.
    let other = sign(Algorithm::HS256, &hs_key(SECRET_B), None, &claims("alice"));
    assert_invalid_token(
        &send_bearer(&hs_auth(), &other).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );
}

#[tokio::test]
async fn unsigned_alg_none_token_is_rejected() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims("alice").to_string().as_bytes());

    // The classic form: an empty signature.
    let res = send_bearer(&hs_auth(), &format!("{header}.{payload}.")).await;
    assert_invalid_token(&res, "token parts are not base64url", ErrorKind::Malformed);

    // With some signature bytes, "none" is still not an algorithm.
    let res = send_bearer(&hs_auth(), &format!("{header}.{payload}.{}", b64(b"sig"))).await;
    assert_invalid_token(
        &res,
        "token algorithm not allowed",
        ErrorKind::AlgorithmNotAllowed,
    );

    // Nor is "None" or "NONE".
    for alg in ["None", "NONE"] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        let res = send_bearer(&hs_auth(), &format!("{header}.{payload}.{}", b64(b"sig"))).await;
        assert_invalid_token(
            &res,
            "token algorithm not allowed",
            ErrorKind::AlgorithmNotAllowed,
        );
    }
}

#[tokio::test]
async fn malformed_tokens_are_rejected_with_invalid_token() {
    let res = send_bearer(&hs_auth(), "abc.def").await;
    assert_invalid_token(
        &res,
        "token is not a JWS compact serialization",
        ErrorKind::Malformed,
    );
    let res = send_bearer(
        &hs_auth(),
        &format!("{}.{}.{}", b64(b"not json"), b64(b"{}"), b64(b"x")),
    )
    .await;
    assert_invalid_token(
        &res,
        "token header is not a JSON object with an alg",
        ErrorKind::Malformed,
    );
}

/// Algorithm confusion: an attacker signs HS256 with the server's RSA public
/// key (which is public) as the HMAC secret.
#[tokio::test]
async fn hs256_token_signed_with_the_rsa_public_key_is_rejected_by_an_rs256_key() {
    let forged_pem = sign(
        Algorithm::HS256,
        &hs_key(RSA_PUBLIC),
        None,
        &claims("admin"),
    );
    let forged_der = sign(
        Algorithm::HS256,
        &hs_key(RSA_PUBLIC_DER),
        None,
        &claims("admin"),
    );
    let forged_kid = sign(
        Algorithm::HS256,
        &hs_key(RSA_PUBLIC),
        Some("rsa-1"),
        &claims("admin"),
    );

    for auth in [
        JwtAuth::<MyClaims>::new(Keys::from_pem(Algorithm::RS256, RSA_PUBLIC).unwrap()),
        JwtAuth::<MyClaims>::new(Keys::from_der(Algorithm::RS256, RSA_PUBLIC_DER).unwrap()),
        JwtAuth::<MyClaims>::new(Keys::from_jwk_set(JWKS).unwrap()),
    ] {
        for forged in [&forged_pem, &forged_der, &forged_kid] {
            let res = send_bearer(&auth, forged).await;
            assert_invalid_token(
                &res,
                "token algorithm not allowed",
                ErrorKind::AlgorithmNotAllowed,
            );
        }
    }
}

#[tokio::test]
async fn critical_header_extensions_are_rejected() {
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp".to_owned()]);
    let token = sign_with(&header, &claims("alice"), &hs_key(SECRET));
    let res = send_bearer(&hs_auth(), &token).await;
    assert_invalid_token(
        &res,
        "token header has critical extensions",
        ErrorKind::UnsupportedCritical,
    );
}

#[tokio::test]
async fn token_type_is_enforced_when_configured() {
    let auth = hs_auth().token_type("at+jwt");
    let typed = |typ: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        sign_with(&header, &claims("alice"), &hs_key(SECRET))
    };
    assert_accepted(&send_bearer(&auth, &typed(Some("at+jwt"))).await, "alice");
    assert_accepted(
        &send_bearer(&auth, &typed(Some("application/AT+JWT"))).await,
        "alice",
    );
    for typ in [Some("JWT"), None] {
        let res = send_bearer(&auth, &typed(typ)).await;
        assert_invalid_token(&res, "token type not accepted", ErrorKind::WrongType);
    }
    // Without the setting any typ passes.
    assert_accepted(&send_bearer(&hs_auth(), &typed(Some("JWT"))).await, "alice");
}

// ---------------------------------------------------------------------------
// Application hooks: validate_with, require
// ---------------------------------------------------------------------------

#[tokio::test]
async fn custom_validator_can_reject_a_valid_token() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let auth = hs_auth().validate_with(move |a: &Authenticated<MyClaims>| {
        counter.fetch_add(1, Ordering::SeqCst);
        if a.claims.sub == "mallory" {
            Err(AuthError::invalid_token("subject suspended"))
        } else {
            Ok(())
        }
    });
    assert_accepted(&send_bearer(&auth, &hs256(&claims("alice"))).await, "alice");
    let res = send_bearer(&auth, &hs256(&claims("mallory"))).await;
    assert_invalid_token(&res, "subject suspended", ErrorKind::Rejected);
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // It runs only after the signature holds.
    let forged = sign(Algorithm::HS256, &hs_key(SECRET_B), None, &claims("alice"));
    assert_invalid_token(
        &send_bearer(&auth, &forged).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn custom_validator_can_answer_insufficient_scope() {
    let auth = hs_auth().validate_with(|a: &Authenticated<MyClaims>| {
        if a.claims.roles.iter().any(|r| r == "user") {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope("user role required"))
        }
    });
    let res = send_bearer(&auth, &hs256(&claims("alice"))).await;
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "user role required",
        ErrorKind::InsufficientScope,
    );
}

fn with_roles(sub: &str, roles: &[&str]) -> Value {
    let mut c = claims(sub);
    c["roles"] = json!(roles);
    c
}

#[tokio::test]
async fn require_answers_403_insufficient_scope_without_the_role() {
    let auth = hs_auth();
    let svc = auth.layer(
        auth.require("admin role", |a| {
            a.claims.roles.iter().any(|r| r == "admin")
        })
        .layer(echo()),
    );

    let res = svc
        .clone()
        .oneshot(bearer(&hs256(&with_roles("alice", &["user"]))))
        .await
        .unwrap();
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "admin role required",
        ErrorKind::InsufficientScope,
    );

    let res = svc
        .clone()
        .oneshot(bearer(&hs256(&with_roles("root", &["user", "admin"]))))
        .await
        .unwrap();
    assert_accepted(&res, "root");

    // Authentication still comes first.
    let res = svc
        .oneshot(get().body(String::new()).unwrap())
        .await
        .unwrap();
    assert_challenge(&res, "api");
}

#[tokio::test]
async fn require_without_an_auth_layer_before_it_is_a_configuration_error_500() {
    let auth = hs_auth();
    let svc = auth.require("admin role", |_| true).layer(echo());
    let res = svc.oneshot(bearer(&hs256(&claims("alice")))).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        res.body().contains("apply the guard inside the auth layer"),
        "{}",
        res.body()
    );
}

#[tokio::test]
async fn require_outside_the_auth_layer_is_a_configuration_error_not_a_silent_401() {
    // The guard wraps the auth layer: it sees the request first.
    let auth = hs_auth();
    let svc = tower::ServiceBuilder::new()
        .layer(auth.require("admin role", |_| true))
        .layer(auth.clone())
        .service(echo());
    let res = svc.oneshot(bearer(&hs256(&claims("alice")))).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.body().contains("RequireLayer"), "{}", res.body());
    // The right order accepts the same token.
    let svc = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require("admin role", |_| true))
        .service(echo());
    let res = svc.oneshot(bearer(&hs256(&claims("alice")))).await.unwrap();
    assert_accepted(&res, "alice");
}

#[tokio::test]
async fn required_guard_behind_an_optional_layer_answers_401_without_a_token() {
    let auth = hs_auth();
    let svc = tower::ServiceBuilder::new()
        .layer(auth.clone().optional(true))
        .layer(auth.required())
        .service(echo());
    let res = svc
        .clone()
        .oneshot(get().body(String::new()).unwrap())
        .await
        .unwrap();
    assert_challenge(&res, "api");
    let res = svc.oneshot(bearer(&hs256(&claims("alice")))).await.unwrap();
    assert_accepted(&res, "alice");
}

#[tokio::test]
async fn a_guard_built_before_the_error_handler_renders_with_the_layers_handler() {
    let auth = hs_auth();
    let guard = auth.require("admin role", |_| false);
    let auth = auth.with_error_handler(|err| {
        let mut res = Response::new(format!("custom: {}", err.description()));
        *res.status_mut() = err.status();
        res
    });
    let svc = tower::ServiceBuilder::new()
        .layer(auth)
        .layer(guard)
        .service(echo());
    let res = svc.oneshot(bearer(&hs256(&claims("alice")))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), "custom: admin role required");
}

// ---------------------------------------------------------------------------
// Revocation with MemoryStore
// ---------------------------------------------------------------------------

fn stored_auth() -> JwtAuth<MyClaims> {
    hs_auth().store(MemoryStore::new())
}

#[tokio::test]
async fn revoked_token_is_rejected_with_reason_token_revoked() {
    let auth = stored_auth();
    let token = hs256(&claims("alice"));
    let other = hs256(&claims("alice"));
    assert_accepted(&send_bearer(&auth, &token).await, "alice");

    auth.revoke(&token).await.unwrap();
    let res = send_bearer(&auth, &token).await;
    assert_revoked(&res, "token revoked", RevocationReason::TokenRevoked);
    // Only that token: another token of the same subject still passes.
    assert_accepted(&send_bearer(&auth, &other).await, "alice");
}

#[tokio::test]
async fn revoked_token_without_jti_is_rejected_by_its_hash() {
    let auth = stored_auth();
    let token = hs256(&without(claims("alice"), "jti"));
    let mut c = without(claims("alice"), "jti");
    c["iat"] = json!(now() - 1);
    let other = hs256(&c);
    assert_ne!(token, other);

    auth.revoke(&token).await.unwrap();
    assert_revoked(
        &send_bearer(&auth, &token).await,
        "token revoked",
        RevocationReason::TokenRevoked,
    );
    assert_accepted(&send_bearer(&auth, &other).await, "alice");
}

#[tokio::test]
async fn revoke_refuses_a_token_that_does_not_verify() {
    let auth = stored_auth();
    let forged = sign(Algorithm::HS256, &hs_key(SECRET_B), None, &claims("alice"));
    match auth.revoke(&forged).await {
        Err(RevokeError::Invalid(err)) => assert_eq!(err.kind(), ErrorKind::BadSignature),
        other => panic!("expected RevokeError::Invalid, got {other:?}"),
    }
    // And without a store there is nowhere to write.
    let stateless = hs_auth();
    assert!(matches!(
        stateless.revoke(&hs256(&claims("alice"))).await,
        Err(RevokeError::Store(_))
    ));
}

#[tokio::test]
async fn revoke_subject_rejects_earlier_tokens_with_logged_out_everywhere() {
    let auth = stored_auth();
    let mut c = claims("alice");
    c["iat"] = json!(now() - 60);
    let alice = hs256(&c);
    let mut c = claims("bob");
    c["iat"] = json!(now() - 60);
    let bob = hs256(&c);
    assert_accepted(&send_bearer(&auth, &alice).await, "alice");

    auth.revoke_subject("alice").await.unwrap();
    let res = send_bearer(&auth, &alice).await;
    assert_revoked(
        &res,
        "token revoked: logged_out_everywhere",
        RevocationReason::LoggedOutEverywhere,
    );
    assert_accepted(&send_bearer(&auth, &bob).await, "bob");

    // A token without iat cannot prove it is newer than the mark.
    let no_iat = hs256(&without(claims("alice"), "iat"));
    assert_revoked(
        &send_bearer(&auth, &no_iat).await,
        "token revoked: logged_out_everywhere",
        RevocationReason::LoggedOutEverywhere,
    );
}

#[tokio::test]
async fn token_issued_in_the_same_second_as_the_subject_mark_is_revoked() {
    let auth = stored_auth();
    for attempt in 0..10 {
        let subject = format!("alice-{attempt}");
        let second = now();
        let mut c = claims(&subject);
        c["iat"] = json!(second);
        let same_second = hs256(&c);
        c["iat"] = json!(second + 1);
        let next_second = hs256(&c);
        auth.revoke_subject(&subject).await.unwrap();
        if now() != second {
            continue; // the clock ticked during the mark: the mark may be second + 1
        }
        let res = send_bearer(&auth, &same_second).await;
        assert_revoked(
            &res,
            "token revoked: logged_out_everywhere",
            RevocationReason::LoggedOutEverywhere,
        );
        // The mark is exactly that second: a token from the next one passes.
        assert_accepted(&send_bearer(&auth, &next_second).await, &subject);
        return;
    }
    panic!("could not mint a token and mark in the same second");
}

#[tokio::test]
async fn banned_subject_is_rejected_with_reason_banned() {
    let auth = stored_auth();
    let token = hs256(&claims("alice"));
    auth.sessions().ban("alice", None).await.unwrap();
    let res = send_bearer(&auth, &token).await;
    assert_revoked(
        &res,
        "token revoked: banned",
        RevocationReason::Banned { until: None },
    );
    auth.sessions().unban("alice").await.unwrap();
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
}

#[tokio::test]
async fn kicked_session_token_is_rejected_with_reason_kicked() {
    let auth = stored_auth();
    let login = auth
        .sessions()
        .login("alice", "web", &json!({}))
        .await
        .unwrap();
    assert_accepted(&send_bearer(&auth, &login.access_token).await, "alice");
    assert!(auth
        .sessions()
        .kick("alice", &login.session_id)
        .await
        .unwrap());
    let res = send_bearer(&auth, &login.access_token).await;
    assert_revoked(
        &res,
        "session ended: kicked",
        RevocationReason::SessionEnded(SessionEnd::Kicked),
    );
}

#[tokio::test]
async fn stateless_layer_ignores_revocations_it_cannot_see() {
    // Sanity check that the store is what rejects: the same token on a layer
    // without a store passes.
    let auth = stored_auth();
    let token = hs256(&claims("alice"));
    auth.revoke(&token).await.unwrap();
    assert_accepted(&send_bearer(&hs_auth(), &token).await, "alice");
}

// ---------------------------------------------------------------------------
// Token sources
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_can_be_read_from_a_cookie() {
    let auth = hs_auth().token_sources([TokenSource::cookie("access_token")]);
    let token = hs256(&claims("alice"));
    let req = get()
        .header(COOKIE, format!("theme=dark; access_token={token}; lang=en"))
        .body(String::new())
        .unwrap();
    assert_accepted(&send(&auth, req).await, "alice");

    // The Authorization header is not a source any more.
    let res = send_bearer(&auth, &token).await;
    assert_challenge(&res, "api");

    // Two cookies of that name are ambiguous.
    let req = get()
        .header(COOKIE, format!("access_token={token}"))
        .header(COOKIE, format!("access_token={token}"))
        .body(String::new())
        .unwrap();
    assert_invalid_request(
        &send(&auth, req).await,
        "token cookie sent twice",
        ErrorKind::InvalidRequest,
    );
}

#[tokio::test]
async fn token_can_be_read_from_a_custom_header() {
    let name = HeaderName::from_static("x-access-token");
    let auth = hs_auth().token_sources([TokenSource::header(name.clone())]);
    let token = hs256(&claims("alice"));
    let req = get().header(&name, &token).body(String::new()).unwrap();
    assert_accepted(&send(&auth, req).await, "alice");

    // The header holds the bare token: a scheme in front is malformed.
    let req = get()
        .header(&name, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    assert_invalid_request(
        &send(&auth, req).await,
        "token contains invalid characters",
        ErrorKind::InvalidRequest,
    );
}

#[tokio::test]
async fn default_source_ignores_cookies() {
    let token = hs256(&claims("alice"));
    let req = get()
        .header(COOKIE, format!("access_token={token}"))
        .body(String::new())
        .unwrap();
    assert_challenge(&send(&hs_auth(), req).await, "api");
}

#[tokio::test]
async fn token_sources_are_tried_in_the_configured_order() {
    let from_cookie = hs256(&claims("from-cookie"));
    let from_bearer = hs256(&claims("from-bearer"));
    let both = || {
        get()
            .header(AUTHORIZATION, format!("Bearer {from_bearer}"))
            .header(COOKIE, format!("at={from_cookie}"))
            .body(String::new())
            .unwrap()
    };

    let cookie_first = hs_auth().token_sources([TokenSource::cookie("at"), TokenSource::bearer()]);
    assert_accepted(&send(&cookie_first, both()).await, "from-cookie");
    let bearer_first = hs_auth().token_sources([TokenSource::bearer(), TokenSource::cookie("at")]);
    assert_accepted(&send(&bearer_first, both()).await, "from-bearer");

    // An absent source, or another scheme, passes on to the next one.
    let req = get()
        .header(AUTHORIZATION, "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .header(COOKIE, format!("at={from_cookie}"))
        .body(String::new())
        .unwrap();
    assert_accepted(&send(&bearer_first, req).await, "from-cookie");

    // A source that is present but malformed stops the search.
    let req = get()
        .header(AUTHORIZATION, "Bearer")
        .header(COOKIE, format!("at={from_cookie}"))
        .body(String::new())
        .unwrap();
    assert_invalid_request(
        &send(&bearer_first, req).await,
        "empty bearer token",
        ErrorKind::InvalidRequest,
    );
}

// ---------------------------------------------------------------------------
// Custom rendering, configuration errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn custom_error_handler_renders_rejections() {
    let auth = hs_auth().with_error_handler(|err: &AuthError| {
        let mut res = Response::new(format!("denied: {}", err.description()));
        *res.status_mut() = err.status();
        res.headers_mut()
            .insert("x-auth-code", HeaderValue::from_static("custom"));
        res
    });
    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    let res = send_bearer(&auth, &hs256(&c)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.body(), "denied: token expired");
    assert_eq!(res.headers()["x-auth-code"], "custom");
    assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::kind),
        Some(ErrorKind::Expired)
    );

    // Valid tokens are not affected.
    assert_accepted(&send_bearer(&auth, &hs256(&claims("alice"))).await, "alice");
}

#[test]
fn hmac_secret_shorter_than_32_bytes_is_a_weak_secret() {
    let err = Keys::hs256([1u8; 31]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::WeakSecret {
                alg: Algorithm::HS256,
                min: 32,
                got: 31
            }
        ),
        "{err:?}"
    );
    assert!(Keys::hs256([1u8; 32]).is_ok());
    assert!(matches!(
        Keys::hmac(Algorithm::HS384, [1u8; 47]).unwrap_err(),
        ConfigError::WeakSecret {
            min: 48,
            got: 47,
            ..
        }
    ));
    assert!(matches!(
        Keys::hmac(Algorithm::HS512, [1u8; 63]).unwrap_err(),
        ConfigError::WeakSecret {
            min: 64,
            got: 63,
            ..
        }
    ));
    assert!(matches!(
        Keys::hmac(Algorithm::RS256, [1u8; 64]).unwrap_err(),
        ConfigError::AlgorithmMismatch { .. }
    ));
    // The weak secret itself is not part of the message.
    assert!(!err.to_string().contains('\u{1}'));
}

// ---------------------------------------------------------------------------
// poll_ready: readiness is forwarded; the future calls the service that was
// made ready (clone and swap), also across a pending store check.
// ---------------------------------------------------------------------------

type Mock = tower_test::mock::Mock<Request<String>, Response<String>>;
type MockHandle = tower_test::mock::Handle<Request<String>, Response<String>>;
type Spawned = tower_test::mock::Spawn<tower_jwt_auth::JwtAuthService<Mock, MyClaims>>;

fn spawn(auth: JwtAuth<MyClaims>) -> (Spawned, MockHandle) {
    tower_test::mock::spawn_layer(auth)
}

/// Poll a future once.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

#[tokio::test]
async fn layer_forwards_readiness_of_the_inner_service() {
    let (mut svc, mut handle) = spawn(hs_auth());
    handle.allow(0);
    assert!(svc.poll_ready::<Request<String>>().is_pending());
    handle.allow(1);
    assert!(
        svc.is_woken(),
        "the inner service's wakeup reaches the caller"
    );
    assert!(matches!(
        svc.poll_ready::<Request<String>>(),
        Poll::Ready(Ok(()))
    ));

    let token = hs256(&claims("alice"));
    let fut = svc.call(bearer(&token));
    let (req, respond) = handle
        .next_request()
        .await
        .expect("the request reached the inner service");
    let auth = req
        .extensions()
        .get::<Authenticated<MyClaims>>()
        .expect("claims inserted");
    assert_eq!(auth.subject(), "alice");
    respond.send_response(Response::new("from inner".to_owned()));
    assert_eq!(fut.await.unwrap().body(), "from inner");

    // Errors of the inner service's readiness come through unchanged.
    handle.send_error("inner broke");
    match svc.poll_ready::<Request<String>>() {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "inner broke"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

#[tokio::test]
async fn rejected_request_does_not_reach_the_inner_service() {
    let (mut svc, mut handle) = spawn(stored_auth());
    handle.allow(1);
    assert!(svc.poll_ready::<Request<String>>().is_ready());
    let res = svc.call(get().body(String::new()).unwrap()).await.unwrap();
    assert_challenge(&res, "api");
    assert!(
        handle.poll_request().is_pending(),
        "no request may reach the inner service"
    );
}

#[tokio::test]
async fn future_calls_the_service_that_was_made_ready_while_the_store_check_is_pending() {
    let store = test_store(Mode::Gated);
    let auth = hs_auth()
        .store(store.clone())
        .store_deadline(Duration::from_secs(60));
    let (mut svc, mut handle) = spawn(auth);

    handle.allow(1);
    assert!(matches!(
        svc.poll_ready::<Request<String>>(),
        Poll::Ready(Ok(()))
    ));
    // No more capacity: only the clone that was made ready may call.
    handle.allow(0);

    let token = hs256(&claims("alice"));
    let mut fut = Box::pin(svc.call(bearer(&token)));
    assert!(
        poll_once(&mut fut).await.is_pending(),
        "the store check is pending"
    );
    assert_eq!(store.calls(), 1);
    assert!(
        handle.poll_request().is_pending(),
        "nothing reaches the inner service before the verdict"
    );

    // The layered service kept a fresh clone that has not been made ready.
    assert!(svc.poll_ready::<Request<String>>().is_pending());

    store.open_gate();
    let respond = async {
        let (req, respond) = handle.next_request().await.expect("request forwarded");
        assert_eq!(
            req.extensions()
                .get::<Authenticated<MyClaims>>()
                .unwrap()
                .subject(),
            "alice"
        );
        respond.send_response(Response::new("from inner".to_owned()));
    };
    // If the future called a clone that was never made ready, the mock panics.
    let (res, ()) = tokio::join!(fut, respond);
    assert_eq!(res.unwrap().body(), "from inner");
}

// ---------------------------------------------------------------------------
// Store failures: fail closed, fail open, deadline, circuit breaker
// ---------------------------------------------------------------------------

#[tokio::test]
async fn failing_store_answers_503_with_retry_after() {
    let store = test_store(Mode::Fail);
    let auth = hs_auth().store(store.clone());
    let res = send_bearer(&auth, &hs256(&claims("alice"))).await;
    assert_unavailable(&res);
    assert!(
        !res.body().contains("10.1.2.3"),
        "store internals never reach the client"
    );
    assert_eq!(store.calls(), 1);
    let stats = auth.stats();
    assert_eq!((stats.store_failures, stats.failed_open), (1, 0));

    // The verdict comes before the store: a bad token is 401, not 503.
    let forged = sign(Algorithm::HS256, &hs_key(SECRET_B), None, &claims("alice"));
    assert_invalid_token(
        &send_bearer(&auth, &forged).await,
        "invalid signature",
        ErrorKind::BadSignature,
    );
    assert_eq!(store.calls(), 1);
}

#[tokio::test]
async fn failing_store_in_fail_open_mode_accepts_and_counts() {
    let store = test_store(Mode::Fail);
    let auth = hs_auth()
        .store(store.clone())
        .failure_mode(FailureMode::Open);
    let token = hs256(&claims("alice"));
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
    let stats = auth.stats();
    assert_eq!(stats.failed_open, 2);
    assert_eq!(stats.store_failures, 2);
    assert_eq!(store.calls(), 2);

    // A healthy store is asked and its verdict holds, even in fail-open mode.
    store.set(Mode::Healthy);
    auth.revoke(&token).await.unwrap();
    assert_revoked(
        &send_bearer(&auth, &token).await,
        "token revoked",
        RevocationReason::TokenRevoked,
    );
    assert_eq!(auth.stats().failed_open, 2);
}

#[tokio::test(start_paused = true)]
async fn hanging_store_answers_503_within_the_deadline() {
    let store = test_store(Mode::Hang);
    let auth = hs_auth()
        .store(store.clone())
        .store_deadline(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        send_bearer(&auth, &hs256(&claims("alice"))),
    )
    .await
    .expect("the layer answers without waiting for the store");
    let waited = started.elapsed();
    assert_unavailable(&res);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    assert_eq!(auth.stats().store_failures, 1);

    // Fail open: accepted after the deadline.
    let open = hs_auth()
        .store(store.clone())
        .store_deadline(Duration::from_millis(50))
        .failure_mode(FailureMode::Open);
    assert_accepted(&send_bearer(&open, &hs256(&claims("alice"))).await, "alice");
    assert_eq!(open.stats().failed_open, 1);
}

#[tokio::test]
async fn circuit_breaker_stops_asking_a_failing_store_and_closes_after_cooldown() {
    let store = test_store(Mode::Fail);
    let cooldown = Duration::from_secs(1);
    let auth = hs_auth().store(store.clone()).circuit_breaker(3, cooldown);
    let token = hs256(&claims("alice"));

    for _ in 0..3 {
        assert_unavailable(&send_bearer(&auth, &token).await);
    }
    assert_eq!(store.calls(), 3);

    // Open: the store is not called any more, even once it has recovered.
    store.set(Mode::Healthy);
    for _ in 0..5 {
        let res = send_bearer(&auth, &token).await;
        assert_unavailable(&res);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
    }
    assert_eq!(store.calls(), 3);
    let stats = auth.stats();
    assert_eq!((stats.store_failures, stats.short_circuited), (3, 5));

    // After the cooldown one probe goes through; its success closes the breaker.
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_accepted(&send_bearer(&auth, &token).await, "alice");
    assert_eq!(store.calls(), 4);
    for _ in 0..3 {
        assert_accepted(&send_bearer(&auth, &token).await, "alice");
    }
    assert_eq!(store.calls(), 7);
    assert_eq!(auth.stats().short_circuited, 5);
}

#[tokio::test]
async fn failed_probe_keeps_the_breaker_open() {
    let store = test_store(Mode::Fail);
    let cooldown = Duration::from_secs(1);
    let auth = hs_auth().store(store.clone()).circuit_breaker(1, cooldown);
    let token = hs256(&claims("alice"));
    assert_unavailable(&send_bearer(&auth, &token).await);
    assert_unavailable(&send_bearer(&auth, &token).await);
    assert_eq!(store.calls(), 1);

    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_unavailable(&send_bearer(&auth, &token).await); // the probe, which fails
    assert_eq!(store.calls(), 2);
    assert_unavailable(&send_bearer(&auth, &token).await); // open again
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn open_breaker_in_fail_open_mode_accepts_without_asking_the_store() {
    let store = test_store(Mode::Fail);
    let auth = hs_auth()
        .store(store.clone())
        .failure_mode(FailureMode::Open)
        .circuit_breaker(2, Duration::from_secs(60));
    let token = hs256(&claims("alice"));
    for _ in 0..4 {
        assert_accepted(&send_bearer(&auth, &token).await, "alice");
    }
    assert_eq!(store.calls(), 2);
    let stats = auth.stats();
    assert_eq!(
        (
            stats.store_failures,
            stats.short_circuited,
            stats.failed_open
        ),
        (2, 2, 4)
    );
}

// ---------------------------------------------------------------------------
// axum
// ---------------------------------------------------------------------------

#[cfg(feature = "axum")]
mod with_axum {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::get as route_get;
    use axum::Router;
    use tower_jwt_auth::Claims;

    async fn me(Claims(c): Claims<MyClaims>) -> String {
        format!("me: {}", c.sub)
    }

    async fn maybe(c: Option<Claims<MyClaims>>) -> String {
        match c {
            Some(Claims(c)) => format!("maybe: {}", c.sub),
            None => "maybe: anonymous".to_owned(),
        }
    }

    async fn registered(a: Authenticated<MyClaims>) -> String {
        format!(
            "{} {}",
            a.subject(),
            a.registered.jti.as_deref().unwrap_or("-")
        )
    }

    fn app(auth: &JwtAuth<MyClaims>) -> Router {
        Router::new()
            .route("/me", route_get(me))
            .route("/maybe", route_get(maybe))
            .route("/registered", route_get(registered))
            .layer(auth.clone())
    }

    fn request(path: &str, token: Option<&str>) -> Request<Body> {
        let mut builder = Request::get(path);
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn call(app: &Router, req: Request<Body>) -> Response<String> {
        let res = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        Response::from_parts(parts, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn axum_claims_extractor_gets_the_typed_claims() {
        let auth = hs_auth().issuer(ISS).audience(AUD);
        let mut c = claims("alice");
        c["iss"] = json!(ISS);
        c["aud"] = json!(AUD);
        let jti = c["jti"].as_str().unwrap().to_owned();
        let token = hs256(&c);
        let app = app(&auth);

        let res = call(&app, request("/me", Some(&token))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "me: alice");
        let res = call(&app, request("/registered", Some(&token))).await;
        assert_eq!(res.body(), &format!("alice {jti}"));
    }

    #[tokio::test]
    async fn axum_rejection_has_the_challenge_body_and_auth_error() {
        let app = app(&hs_auth());
        let mut c = claims("alice");
        c["exp"] = json!(now() - 3600);
        let res = call(&app, request("/me", Some(&hs256(&c)))).await;
        assert_invalid_token(&res, "token expired", ErrorKind::Expired);

        let res = call(&app, request("/me", None)).await;
        assert_challenge(&res, "api");
    }

    #[tokio::test]
    async fn axum_optional_claims_are_none_without_a_token_when_the_layer_is_optional() {
        let app = app(&hs_auth().optional(true));
        let res = call(&app, request("/maybe", None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "maybe: anonymous");

        let res = call(&app, request("/maybe", Some(&hs256(&claims("alice"))))).await;
        assert_eq!(res.body(), "maybe: alice");

        // Another scheme is no bearer token: anonymous too.
        let req = Request::get("/maybe")
            .header(AUTHORIZATION, "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, req).await.body(), "maybe: anonymous");

        // A route that needs claims still cannot run without them: 401.
        let res = call(&app, request("/me", None)).await;
        assert_challenge(&res, "api");

        // Not optional: the layer answers 401 before the handler.
        let strict = app_strict();
        let res = call(&strict, request("/maybe", None)).await;
        assert_challenge(&res, "api");
    }

    fn app_strict() -> Router {
        app(&hs_auth())
    }

    #[tokio::test]
    async fn axum_optional_layer_still_rejects_an_invalid_token() {
        let app = app(&hs_auth().optional(true));
        let forged = sign(Algorithm::HS256, &hs_key(SECRET_B), None, &claims("alice"));
        let res = call(&app, request("/maybe", Some(&forged))).await;
        assert_invalid_token(&res, "invalid signature", ErrorKind::BadSignature);
        let req = Request::get("/maybe")
            .header(AUTHORIZATION, "Bearer")
            .body(Body::empty())
            .unwrap();
        assert_invalid_request(
            &call(&app, req).await,
            "empty bearer token",
            ErrorKind::InvalidRequest,
        );
    }

    #[tokio::test]
    async fn axum_extractor_without_the_layer_answers_500_naming_jwtauth() {
        let app = Router::new()
            .route("/me", route_get(me))
            .route("/registered", route_get(registered));
        for path in ["/me", "/registered"] {
            let res = call(&app, request(path, Some(&hs256(&claims("alice"))))).await;
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(res.body().contains("Is `JwtAuth<"), "{}", res.body());
            assert!(
                res.body().contains("applied to this route?"),
                "{}",
                res.body()
            );
        }
        // Option<Claims> without any layer is the same configuration error,
        // not a silent None.
        let app = Router::new().route("/maybe", route_get(maybe));
        let res = call(&app, request("/maybe", None)).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn axum_claims_of_another_type_name_both_types_in_a_500() {
        #[derive(Clone, serde::Deserialize)]
        struct OtherClaims {}
        async fn other(Claims(_): Claims<OtherClaims>) -> &'static str {
            "unreachable"
        }
        let app = Router::new()
            .route("/other", route_get(other))
            .layer(hs_auth());
        let res = call(&app, request("/other", Some(&hs256(&claims("alice"))))).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.body().contains("OtherClaims"), "{}", res.body());
        assert!(res.body().contains("MyClaims>"), "{}", res.body());
    }

    #[tokio::test]
    async fn axum_error_handler_may_return_any_into_response() {
        let auth = hs_auth().with_error_handler(|err| {
            (
                err.status(),
                axum::Json(json!({ "message": err.description() })),
            )
                .into_response()
        });
        let app = app(&auth);
        let res = call(&app, request("/me", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(body["message"], "no bearer token");
        assert!(res.extensions().get::<AuthError>().is_some());
    }

    #[tokio::test]
    async fn axum_route_layer_require_answers_403() {
        let auth = stored_auth();
        let admin = Router::new()
            .route("/admin", route_get(|| async { "admin area" }))
            .route_layer(auth.require("admin role", |a| {
                a.claims.roles.iter().any(|r| r == "admin")
            }));
        let app = Router::new().merge(admin).layer(auth.clone());

        let res = call(
            &app,
            request("/admin", Some(&hs256(&with_roles("alice", &["user"])))),
        )
        .await;
        assert_rejected(
            &res,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "admin role required",
            ErrorKind::InsufficientScope,
        );
        let res = call(
            &app,
            request("/admin", Some(&hs256(&with_roles("root", &["admin"])))),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "admin area");
    }

    #[tokio::test]
    async fn axum_revoked_token_is_rejected_through_the_router() {
        let auth = stored_auth();
        let app = app(&auth);
        let token = hs256(&claims("alice"));
        assert_eq!(
            call(&app, request("/me", Some(&token))).await.status(),
            StatusCode::OK
        );
        auth.revoke(&token).await.unwrap();
        let res = call(&app, request("/me", Some(&token))).await;
        assert_revoked(&res, "token revoked", RevocationReason::TokenRevoked);
    }
}

#[test]
fn authenticated_exposes_the_tokens_alg_and_kid() {
    let auth = JwtAuth::<MyClaims>::new(Keys::hs256(SECRET).unwrap().kid("k-1").unwrap())
        .required_claims([]);
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let with_kid = sign(Algorithm::HS256, &key, Some("k-1"), &claims("alice"));
    let verified = auth.verify(&with_kid).unwrap();
    assert_eq!(verified.alg(), Algorithm::HS256);
    assert_eq!(verified.kid(), Some("k-1"));
    let plain = JwtAuth::<MyClaims>::new(Keys::hs256(SECRET).unwrap());
    let verified = plain.verify(&hs256(&claims("alice"))).unwrap();
    assert_eq!(verified.kid(), None);
}

#[cfg(feature = "test-util")]
#[test]
fn the_test_signer_mints_tokens_for_a_layer_whose_keys_cannot_sign() {
    let public_only = Keys::hs256(SECRET).unwrap();
    // Drop the signing half by taking the keys of a JWK set of one public EC key.
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"prod","use":"sig","alg":"ES256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let prod = JwtAuth::<MyClaims>::new(Keys::from_jwk_set(jwks).unwrap());
    assert!(!prod.keys().can_sign());
    let auth = prod.clone().with_test_signer();
    let token = auth.test_token("alice", &json!({ "sub": "alice" }));
    assert!(auth.verify(&token).is_ok());
    // The production configuration does not accept it.
    assert!(prod.verify(&token).is_err());
    // A layer that can sign keeps its own key.
    let signing = JwtAuth::<MyClaims>::new(public_only).with_test_signer();
    let token = signing.test_token("alice", &json!({ "sub": "alice" }));
    assert!(hs_auth().verify(&token).is_ok());
}

#[tokio::test]
async fn require_scope_reads_rfc9068_scope_and_scp_lists() {
    let auth = hs_auth();
    let svc = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require_scope("orders:read"))
        .service(echo());
    let mut with_scope = claims("alice");
    with_scope["scope"] = json!("profile orders:read");
    let res = svc
        .clone()
        .oneshot(bearer(&hs256(&with_scope)))
        .await
        .unwrap();
    assert_accepted(&res, "alice");
    let mut with_scp = claims("alice");
    with_scp["scp"] = json!(["orders:read"]);
    let res = svc
        .clone()
        .oneshot(bearer(&hs256(&with_scp)))
        .await
        .unwrap();
    assert_accepted(&res, "alice");
    let mut other = claims("alice");
    other["scope"] = json!("orders:read:all profile");
    let res = svc.oneshot(bearer(&hs256(&other))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.body().contains("scope `orders:read` required"),
        "{}",
        res.body()
    );
    let verified = auth.verify(&hs256(&with_scope)).unwrap();
    assert_eq!(verified.registered.scope, ["profile", "orders:read"]);
}
