//! RFC 9449 DPoP on the resource server, rule by rule, with proofs minted
//! by an independent library (node's `jose`, `tests/oidc/dpop.mjs`) and
//! requests through the layer over a no-op inner service. Each case fails
//! without the rule it names.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_jwt_auth::{
    Algorithm, Authenticated, Dpop, ErrorKind, JwtAuth, Keys, MemoryStore, RedisStore,
};

use common::dpop::{now, Jose, JoseKey, ProofSpec};
use common::redis_server::RedisServer;

const SECRET: &[u8] = b"dpop-test-secret-of-at-least-32-bytes!";
const HOST: &str = "api.test";
const URL: &str = "http://api.test/me";

fn jose() -> &'static Jose {
    static JOSE: OnceLock<Jose> = OnceLock::new();
    JOSE.get_or_init(Jose::start)
}

fn es256() -> &'static JoseKey {
    static KEY: OnceLock<JoseKey> = OnceLock::new();
    KEY.get_or_init(|| jose().key("ES256"))
}

fn layer() -> JwtAuth<Value> {
    JwtAuth::new(Keys::hs256(SECRET).unwrap())
        .issuer("https://as.test")
        .audience("api")
        .leeway(Duration::from_secs(5))
}

/// A token bound to `key` (`cnf.jkt`).
fn bound(auth: &JwtAuth<Value>, key: &JoseKey) -> String {
    auth.sessions()
        .issue("alice", &json!({ "cnf": { "jkt": key.jkt } }))
        .unwrap()
        .token
}

/// A valid proof for `GET http://api.test/me` with `token`, by `key`.
fn proof(key: &JoseKey, token: &str) -> String {
    jose().proof(key, &ProofSpec::new("GET", URL, Some(token)))
}

/// Send `method path` (Host `api.test`) with these headers through `auth`.
async fn send(
    auth: &JwtAuth<Value>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<String> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(|req: Request<String>| async move {
            let auth = req.extensions().get::<Authenticated<Value>>().unwrap();
            let jkt = auth.registered.jkt.clone().unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Response::new(jkt))
        }))
        .oneshot(req.body(String::new()).unwrap())
        .await
        .unwrap()
}

async fn get_dpop(auth: &JwtAuth<Value>, token: &str, proof: &str) -> Response<String> {
    send(
        auth,
        "GET",
        "/me",
        &[("authorization", &format!("DPoP {token}")), ("dpop", proof)],
    )
    .await
}

/// A 401 with a DPoP challenge carrying `error` and the `algs`, and this
/// description fragment.
#[track_caller]
fn assert_dpop_401(res: &Response<String>, error: &str, description: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{}", res.body());
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP realm="), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("algs=\"ES256 ES384 EdDSA RS256"),
        "{challenge}"
    );
    assert!(challenge.contains(description), "{challenge}");
}

#[tokio::test]
async fn a_bound_token_with_a_valid_proof_passes_for_every_algorithm() {
    let auth = layer().store(MemoryStore::new());
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256", "RS512"] {
        let key = jose().key(alg);
        let token = bound(&auth, &key);
        let res = get_dpop(&auth, &token, &proof(&key, &token)).await;
        assert_eq!(res.status(), StatusCode::OK, "{alg}: {:?}", res.headers());
        assert_eq!(res.body(), &key.jkt, "{alg}: the claims carry the binding");
    }
}

#[tokio::test]
async fn a_bound_token_as_bearer_is_refused() {
    let auth = layer();
    let token = bound(&auth, es256());
    let res = send(
        &auth,
        "GET",
        "/me",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_dpop_401(&res, "invalid_token", "DPoP scheme");
    // With a valid proof beside it, too: the scheme says bearer.
    let proof = proof(es256(), &token);
    let res = send(
        &auth,
        "GET",
        "/me",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("dpop", &proof),
        ],
    )
    .await;
    assert_dpop_401(&res, "invalid_token", "DPoP scheme");
}

#[tokio::test]
async fn a_token_without_cnf_keeps_working_as_bearer_but_not_as_dpop() {
    let auth = layer();
    let token = auth.sessions().issue("bob", &json!({})).unwrap().token;
    let res = send(
        &auth,
        "GET",
        "/me",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = get_dpop(&auth, &token, &proof(es256(), &token)).await;
    assert_dpop_401(&res, "invalid_token", "not DPoP-bound");
}

#[tokio::test]
async fn a_cnf_of_another_method_is_never_a_bearer_token() {
    let auth = layer();
    let token = auth
        .sessions()
        .issue(
            "bob",
            &json!({ "cnf": { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" } }),
        )
        .unwrap()
        .token;
    let res = send(
        &auth,
        "GET",
        "/me",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = get_dpop(&auth, &token, &proof(es256(), &token)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "binding");
}

#[tokio::test]
async fn exactly_one_dpop_header_is_required() {
    let auth = layer();
    let token = bound(&auth, es256());
    let res = send(
        &auth,
        "GET",
        "/me",
        &[("authorization", &format!("DPoP {token}"))],
    )
    .await;
    assert_dpop_401(&res, "invalid_dpop_proof", "no DPoP proof");
    let (a, b) = (proof(es256(), &token), proof(es256(), &token));
    let res = send(
        &auth,
        "GET",
        "/me",
        &[
            ("authorization", &format!("DPoP {token}")),
            ("dpop", &a),
            ("dpop", &b),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("invalid_request"),
        "{challenge}"
    );
}

#[tokio::test]
async fn the_proof_must_be_typed_dpop_jwt() {
    let auth = layer();
    let token = bound(&auth, es256());
    for typ in [Some("JWT".to_owned()), Some("at+jwt".to_owned()), None] {
        let mut spec = ProofSpec::new("GET", URL, Some(&token));
        spec.typ = Some(typ.clone());
        let res = get_dpop(&auth, &token, &jose().proof(es256(), &spec)).await;
        assert_dpop_401(&res, "invalid_dpop_proof", "typ is not dpop+jwt");
    }
}

/// A proof assembled by hand: `header` and `claims` as given, signature
/// `signature` (base64url).
fn hand_made(header: &Value, claims: &Value, signature: &str) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

#[tokio::test]
async fn none_hmac_and_algorithms_off_the_allowlist_are_refused() {
    let auth = layer();
    let token = bound(&auth, es256());
    let claims = json!({
        "jti": "x", "htm": "GET", "htu": URL, "iat": now(),
        "ath": base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())),
    });
    // alg none (with any signature), HS256 with a symmetric jwk.
    let none = hand_made(
        &json!({"alg": "none", "typ": "dpop+jwt", "jwk": es256().jwk}),
        &claims,
        "AA",
    );
    let res = get_dpop(&auth, &token, &none).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "algorithm not allowed");
    let header = json!({"alg": "HS256", "typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}});
    let unsigned = hand_made(&header, &claims, "");
    let input = &unsigned[..unsigned.len() - 1];
    let key = jsonwebtoken::EncodingKey::from_secret(b"secretsecretsecretsecretsecret").unwrap();
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    let res = get_dpop(&auth, &token, &format!("{input}.{sig}")).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "algorithm not allowed");

    // An asymmetric alg left out of the configured list.
    let only_es256 = layer().dpop(Dpop::new().algorithms([Algorithm::ES256]).unwrap());
    let ed = jose().key("EdDSA");
    let token = bound(&only_es256, &ed);
    let res = get_dpop(&only_es256, &token, &proof(&ed, &token)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("algs=\"ES256\"") && challenge.contains("algorithm not allowed"),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_private_jwk_in_the_header_is_refused() {
    let auth = layer();
    let token = bound(&auth, es256());
    let mut spec = ProofSpec::new("GET", URL, Some(&token));
    spec.private_jwk = true;
    let res = get_dpop(&auth, &token, &jose().proof(es256(), &spec)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "private key");
}

#[tokio::test]
async fn the_proof_key_must_be_the_bound_one_and_must_sign_it() {
    let auth = layer();
    let token = bound(&auth, es256());
    let other = jose().key("ES256");
    // Another key's proof: thumbprint mismatch.
    let res = get_dpop(&auth, &token, &proof(&other, &token)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "does not match the token");
    // The bound key's jwk in the header, signed by another key.
    let mut spec = ProofSpec::new("GET", URL, Some(&token));
    spec.jwk_of = Some(es256().index);
    let res = get_dpop(&auth, &token, &jose().proof(&other, &spec)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "signature invalid");
}

#[tokio::test]
async fn htm_must_be_the_request_method() {
    let auth = layer();
    let token = bound(&auth, es256());
    let post = jose().proof(es256(), &ProofSpec::new("POST", URL, Some(&token)));
    let res = get_dpop(&auth, &token, &post).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "htm");
    let lower = jose().proof(es256(), &ProofSpec::new("get", URL, Some(&token)));
    assert_dpop_401(
        &get_dpop(&auth, &token, &lower).await,
        "invalid_dpop_proof",
        "htm",
    );
}

#[tokio::test]
async fn htu_must_be_the_request_url_without_query_and_fragment() {
    let auth = layer().store(MemoryStore::new());
    let token = bound(&auth, es256());
    for wrong in [
        "http://api.test/other",
        "http://evil.test/me",
        "https://api.test/me",
        "http://api.test:8080/me",
    ] {
        let p = jose().proof(es256(), &ProofSpec::new("GET", wrong, Some(&token)));
        let res = get_dpop(&auth, &token, &p).await;
        assert_dpop_401(&res, "invalid_dpop_proof", "htu");
    }
    // Query and fragment are ignored on both sides; case and default port
    // are normalized.
    for same in ["http://api.test/me?x=1#f", "HTTP://API.TEST:80/me"] {
        let p = jose().proof(es256(), &ProofSpec::new("GET", same, Some(&token)));
        let res = send(
            &auth,
            "GET",
            "/me?y=2",
            &[("authorization", &format!("DPoP {token}")), ("dpop", &p)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{same}: {:?}", res.headers());
    }
}

#[tokio::test]
async fn a_configured_public_url_wins_over_the_host_header() {
    let auth = layer().dpop(
        Dpop::new()
            .public_url("https://api.example.com/v1")
            .unwrap(),
    );
    let token = bound(&auth, es256());
    let by_host = proof(es256(), &token);
    assert_dpop_401(
        &get_dpop(&auth, &token, &by_host).await,
        "invalid_dpop_proof",
        "htu",
    );
    let public = jose().proof(
        es256(),
        &ProofSpec::new("GET", "https://api.example.com/v1/me", Some(&token)),
    );
    assert_eq!(
        get_dpop(&auth, &token, &public).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn iat_must_be_within_the_window_plus_leeway() {
    // Window 60 s, leeway 5 s: 65 s either way.
    let auth = layer().store(MemoryStore::new());
    let token = bound(&auth, es256());
    for (offset, ok) in [
        (-55, true),
        (55, true),
        (-75, false),
        (75, false),
        (-3600, false),
    ] {
        let mut spec = ProofSpec::new("GET", URL, Some(&token));
        spec.iat = Some(now() + offset);
        let res = get_dpop(&auth, &token, &jose().proof(es256(), &spec)).await;
        if ok {
            assert_eq!(res.status(), StatusCode::OK, "iat {offset:+}");
        } else {
            assert_dpop_401(&res, "invalid_dpop_proof", "iat is outside");
        }
    }
    // A narrower window.
    let narrow = layer().dpop(Dpop::new().iat_window(Duration::from_secs(10)));
    let token = bound(&narrow, es256());
    let mut spec = ProofSpec::new("GET", URL, Some(&token));
    spec.iat = Some(now() - 30);
    let res = get_dpop(&narrow, &token, &jose().proof(es256(), &spec)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "iat is outside");
    let mut spec = ProofSpec::new("GET", URL, Some(&token));
    spec.omit = vec!["iat"];
    let res = get_dpop(&narrow, &token, &jose().proof(es256(), &spec)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "no iat");
}

#[tokio::test]
async fn ath_must_be_the_hash_of_the_presented_token() {
    let auth = layer();
    let token = bound(&auth, es256());
    let other = bound(&auth, es256());
    let res = get_dpop(&auth, &token, &proof(es256(), &other)).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "ath does not match");
    let no_ath = jose().proof(es256(), &ProofSpec::new("GET", URL, None));
    assert_dpop_401(
        &get_dpop(&auth, &token, &no_ath).await,
        "invalid_dpop_proof",
        "no ath",
    );
}

#[tokio::test]
async fn a_proof_is_used_once_with_a_store_and_without() {
    for auth in [layer(), layer().store(MemoryStore::new())] {
        let token = bound(&auth, es256());
        let proof = proof(es256(), &token);
        assert_eq!(
            get_dpop(&auth, &token, &proof).await.status(),
            StatusCode::OK
        );
        let res = get_dpop(&auth, &token, &proof).await;
        assert_dpop_401(&res, "invalid_dpop_proof", "replayed");
        // A fresh proof for the same token passes.
        let fresh = self::proof(es256(), &token);
        assert_eq!(
            get_dpop(&auth, &token, &fresh).await.status(),
            StatusCode::OK
        );
        let mut spec = ProofSpec::new("GET", URL, Some(&token));
        spec.omit = vec!["jti"];
        let res = get_dpop(&auth, &token, &jose().proof(es256(), &spec)).await;
        assert_dpop_401(&res, "invalid_dpop_proof", "no jti");
    }
}

#[tokio::test]
async fn the_same_jti_of_another_key_is_not_a_replay() {
    let auth = layer();
    let other = jose().key("ES256");
    for key in [es256(), &other] {
        let token = bound(&auth, key);
        let mut spec = ProofSpec::new("GET", URL, Some(&token));
        spec.jti = Some("shared-jti".into());
        let res = get_dpop(&auth, &token, &jose().proof(key, &spec)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn two_instances_on_one_redis_refuse_a_replay_made_on_the_other() {
    let server = RedisServer::start();
    let a = layer().store(RedisStore::connect(&server.url()).await.unwrap());
    let b = layer().store(RedisStore::connect(&server.url()).await.unwrap());
    let token = bound(&a, es256());
    let proof = proof(es256(), &token);
    assert_eq!(get_dpop(&a, &token, &proof).await.status(), StatusCode::OK);
    let res = get_dpop(&b, &token, &proof).await;
    assert_dpop_401(&res, "invalid_dpop_proof", "replayed");
    // And back: b's fresh proof is refused on a.
    let fresh = self::proof(es256(), &token);
    assert_eq!(get_dpop(&b, &token, &fresh).await.status(), StatusCode::OK);
    assert_dpop_401(
        &get_dpop(&a, &token, &fresh).await,
        "invalid_dpop_proof",
        "replayed",
    );
}

#[tokio::test]
async fn the_replay_cache_failing_is_a_503_never_a_pass() {
    let mut server = RedisServer::start();
    let auth = layer()
        .store(RedisStore::connect(&server.url()).await.unwrap())
        .store_deadline(Duration::from_millis(200));
    let token = bound(&auth, es256());
    server.kill();
    let res = get_dpop(&auth, &token, &proof(es256(), &token)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));

    // A store without first_use fails closed as well.
    #[derive(Debug)]
    struct NoHooks;
    impl common::hooked::Hooks for NoHooks {}
    let auth = layer().store(common::hooked::Hooked::new(NoHooks));
    let token = bound(&auth, es256());
    let res = get_dpop(&auth, &token, &proof(es256(), &token)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_revoked_bound_token_is_refused_even_with_a_valid_proof() {
    let auth = layer().store(MemoryStore::new());
    let token = bound(&auth, es256());
    auth.revoke(&token).await.unwrap();
    let res = get_dpop(&auth, &token, &proof(es256(), &token)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions()
            .get::<tower_jwt_auth::AuthError>()
            .unwrap()
            .reason(),
        Some("token_revoked")
    );
    // Asked under the DPoP scheme, answered with a DPoP challenge (RFC 9449 §7.1).
    assert_dpop_401(&res, "invalid_token", "token revoked");
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn token_errors_under_the_dpop_scheme_are_challenged_with_dpop() {
    let auth = layer().with_test_signer();
    let expired = auth.test_token_expired("alice", &json!({ "cnf": { "jkt": es256().jkt } }));
    let res = get_dpop(&auth, &expired, &proof(es256(), &expired)).await;
    assert_dpop_401(&res, "invalid_token", "expired");
    let res = send(
        &auth,
        "GET",
        "/me",
        &[("authorization", &format!("Bearer {expired}"))],
    )
    .await;
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
}

#[tokio::test]
async fn hostile_proofs_get_a_clear_401_never_a_panic() {
    let auth = layer();
    let token = bound(&auth, es256());
    let giant_jwk = json!({"kty": "RSA", "e": "AQAB", "n": "A".repeat(6000)});
    let giant = hand_made(
        &json!({"alg": "RS256", "typ": "dpop+jwt", "jwk": giant_jwk}),
        &json!({}),
        "AA",
    );
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let cases: Vec<(String, &str)> = vec![
        ("a".repeat(20_000), "too large"),
        ("!!!.@@@.###".into(), "not a JWS"),
        ("e30.e30".into(), "not a JWS"),
        (
            format!("{}.e30.AA", b64("{\"alg\":")),
            "header is not a valid JSON",
        ),
        (
            format!("{}.e30.AA", b64("[1,2]")),
            "header is not a valid JSON",
        ),
        (
            format!(
                "{}.e30.AA",
                b64(r#"{"alg":"ES256","typ":"dpop+jwt","typ":"x"}"#)
            ),
            "header is not a valid JSON",
        ),
        (
            format!("{}.e30.AA", b64(r#"{"alg":"ES256","typ":"dpop+jwt"}"#)),
            "no jwk",
        ),
        (
            format!(
                "{}.e30.AA",
                b64(r#"{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC"}}"#)
            ),
            "jwk",
        ),
        (
            format!(
                "{}.e30.AA",
                b64(r#"{"alg":"ES256","typ":"dpop+jwt","crit":["x"],"jwk":{}}"#)
            ),
            "critical",
        ),
        (giant, "too large"),
    ];
    for (proof, description) in cases {
        let res = get_dpop(&auth, &token, &proof).await;
        assert_dpop_401(&res, "invalid_dpop_proof", description);
    }
    // Bytes that are not text.
    let mut req = Request::get("/me")
        .header("host", HOST)
        .header("authorization", format!("DPoP {token}"));
    req = req.header(
        "dpop",
        http::HeaderValue::from_bytes(b"\xff\xfe.a.b").unwrap(),
    );
    let res = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }))
        .oneshot(req.body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A request without Host cannot be matched.
    let p = proof(es256(), &token);
    let req = Request::get("/me")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", p)
        .body(String::new())
        .unwrap();
    let res = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions()
            .get::<tower_jwt_auth::AuthError>()
            .unwrap()
            .kind(),
        ErrorKind::InvalidDpopProof
    );
}

#[tokio::test]
async fn a_token_endpoint_checks_a_proof_without_ath_and_learns_its_thumbprint() {
    let auth = layer().store(MemoryStore::new());
    let login = "http://api.test/login";
    for alg in ["ES256", "EdDSA", "RS256"] {
        let key = jose().key(alg);
        let p = jose().proof(&key, &ProofSpec::new("POST", login, None));
        let req = Request::post("/login")
            .header("host", HOST)
            .header("dpop", &p)
            .body(())
            .unwrap();
        let found = auth
            .dpop_proof(req.method(), req.uri(), req.headers())
            .await
            .unwrap();
        assert_eq!(
            found.unwrap().jkt,
            key.jkt,
            "{alg}: our thumbprint is jose's"
        );
        let again = auth
            .dpop_proof(req.method(), req.uri(), req.headers())
            .await
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidDpopProof, "replay");
    }
    let wrong = jose().proof(
        es256(),
        &ProofSpec::new("POST", "http://api.test/other", None),
    );
    let req = Request::post("/login")
        .header("host", HOST)
        .header("dpop", &wrong)
        .body(())
        .unwrap();
    assert!(auth
        .dpop_proof(req.method(), req.uri(), req.headers())
        .await
        .is_err());
    let plain = Request::post("/login")
        .header("host", HOST)
        .body(())
        .unwrap();
    assert_eq!(
        auth.dpop_proof(plain.method(), plain.uri(), plain.headers())
            .await
            .unwrap(),
        None
    );
}
