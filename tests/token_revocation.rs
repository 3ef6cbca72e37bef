//! The RFC 7009 revocation endpoint (`JwtAuth::token_revocation`): client
//! authentication, the 400 and the 200 without an oracle, access tokens
//! (ours and a remote issuer's) on the deny list, refresh tokens ending
//! their session whatever the hint, and 503 when the store is down. On the
//! memory store and on Redis.

mod common;

use std::time::Duration;

use base64::Engine;
use common::layer::call;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use tower_jwt_auth::{JwtAuth, Keys, MemoryStore, RevocationStore, Revoked};

const SECRET: &[u8] = b"revocation-test-secret-0123456789-abcdef";
const CLIENT: (&str, &str) = ("web-app", "s3cret:with%odd chars");

fn layer(store: impl RevocationStore) -> JwtAuth<Value> {
    JwtAuth::<Value>::new(Keys::hs256(SECRET).unwrap())
        .issuer("local")
        .audience("api")
        .store(store)
        .store_deadline(Duration::from_millis(500))
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn basic(id: &str, secret: &str) -> HeaderValue {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    format!("Basic {encoded}").parse().unwrap()
}

fn headers(auth: Option<HeaderValue>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    if let Some(auth) = auth {
        headers.insert("authorization", auth);
    }
    headers
}

async fn revoke(auth: &JwtAuth<Value>, body: &str) -> Response<String> {
    auth.token_revocation(CLIENT.0, CLIENT.1)
        .handle(&headers(Some(basic(CLIENT.0, CLIENT.1))), body.as_bytes())
        .await
}

fn error_of(res: &Response<String>) -> String {
    let body: Value = serde_json::from_str(res.body()).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

async fn client_authentication_and_requests(auth: JwtAuth<Value>) {
    let endpoint = auth
        .token_revocation(CLIENT.0, CLIENT.1)
        .client("other", "x");
    let token = auth.sessions().issue("alice", &json!({})).unwrap().token;
    let body = format!("token={token}");
    let wrong = [
        None,
        Some(basic(CLIENT.0, "s3cret:with%odd char")),
        Some(basic(CLIENT.0, "x")),
        Some(basic("other", CLIENT.1)),
        Some(basic("", "")),
        Some(HeaderValue::from_static("Basic !!!")),
        Some(HeaderValue::from_static("Basic d2ViLWFwcA==")), // no colon
        Some(format!("Bearer {token}").parse().unwrap()),
    ];
    for auth_header in wrong {
        let shown = format!("{auth_header:?}");
        let res = endpoint
            .handle(&headers(auth_header), body.as_bytes())
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{shown}");
        assert_eq!(error_of(&res), "invalid_client", "{shown}");
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
    }
    // Two Authorization headers: refused, even with one right.
    let mut two = headers(Some(basic(CLIENT.0, CLIENT.1)));
    two.append("authorization", basic("other", "x"));
    assert_eq!(endpoint.handle(&two, body.as_bytes()).await.status(), 401);
    assert_eq!(
        call(&auth, &token).await.0,
        StatusCode::OK,
        "nothing revoked"
    );

    // The second client, in lower-case scheme.
    let lower = basic("other", "x")
        .to_str()
        .unwrap()
        .replace("Basic", "basic");
    let ok = endpoint
        .handle(&headers(Some(lower.parse().unwrap())), b"token=unknown")
        .await;
    assert_eq!(ok.status(), StatusCode::OK);

    for (case, body) in [
        ("no token", ""),
        ("empty token", "token="),
        ("hint only", "token_type_hint=access_token"),
    ] {
        let res = revoke(&auth, body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(error_of(&res), "invalid_request", "{case}");
    }
    let not_form = endpoint
        .handle(
            &{
                let mut h = headers(Some(basic(CLIENT.0, CLIENT.1)));
                h.insert("content-type", "application/json".parse().unwrap());
                h
            },
            body.as_bytes(),
        )
        .await;
    assert_eq!(not_form.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        call(&auth, &token).await.0,
        StatusCode::OK,
        "nothing revoked"
    );
}

async fn tokens_are_revoked_whatever_the_hint(auth: JwtAuth<Value>) {
    let s = auth.sessions();
    // An access token, with the wrong hint: found and denied.
    let token = s.issue("alice", &json!({})).unwrap().token;
    let other = s.issue("alice", &json!({})).unwrap().token;
    let res = revoke(
        &auth,
        &format!("token={token}&token_type_hint=refresh_token"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.body());
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(
        call(&auth, &token).await,
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    assert_eq!(
        call(&auth, &other).await.0,
        StatusCode::OK,
        "only that token"
    );

    // A refresh token, with the wrong hint: its session ends, so its access
    // token is refused and the refresh token is spent; another session lives.
    let login = s.login("bob", "web", &json!({})).await.unwrap();
    let phone = s.login("bob", "phone", &json!({})).await.unwrap();
    let body = format!("token={}&token_type_hint=access_token", login.refresh_token);
    assert_eq!(revoke(&auth, &body).await.status(), StatusCode::OK);
    assert_eq!(
        call(&auth, &login.access_token).await,
        (StatusCode::UNAUTHORIZED, Some("logged_out"))
    );
    assert!(s.refresh(&login.refresh_token).await.is_err());
    assert_eq!(call(&auth, &phone.access_token).await.0, StatusCode::OK);
    let endpoint = auth.token_revocation(CLIENT.0, CLIENT.1);
    assert_eq!(
        endpoint
            .revoke(&phone.refresh_token, Some("refresh_token"))
            .await
            .unwrap(),
        Revoked::RefreshToken
    );
    assert_eq!(
        call(&auth, &phone.access_token).await.0,
        StatusCode::UNAUTHORIZED
    );

    // No oracle: unknown, malformed, expired, forged, a forged refresh token
    // of a live session: 200, and nothing else happens.
    let carol = s.login("carol", "web", &json!({})).await.unwrap();
    let (sub, sid, _, _) = split_refresh(&carol.refresh_token);
    let forged_refresh = format!("{sub}.{sid}.0.not-the-secret");
    let expired = expired_token();
    let forged_access = {
        let mut t = carol.access_token.clone();
        t.pop();
        t.push(if carol.access_token.ends_with('A') {
            'B'
        } else {
            'A'
        });
        t
    };
    for junk in [
        "unknown",
        "a.b.c",
        "%41%42",
        &expired,
        &forged_access,
        &forged_refresh,
        &"x".repeat(10_000),
    ] {
        let res = revoke(&auth, &format!("token={}", form_encode(junk))).await;
        assert_eq!(res.status(), StatusCode::OK, "{junk}");
        assert_eq!(
            endpoint.revoke(junk, None).await.unwrap(),
            Revoked::Nothing,
            "{junk}"
        );
    }
    assert_eq!(call(&auth, &carol.access_token).await.0, StatusCode::OK);
    assert!(
        s.refresh(&carol.refresh_token).await.is_ok(),
        "carol's session lives"
    );
}

fn split_refresh(token: &str) -> (&str, &str, &str, &str) {
    let mut parts = token.split('.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

fn expired_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({ "sub": "alice", "iss": "local", "aud": "api", "iat": now - 600, "exp": now - 300 });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_client_authentication_and_requests() {
    client_authentication_and_requests(layer(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_tokens_are_revoked_whatever_the_hint() {
    tokens_are_revoked_whatever_the_hint(layer(MemoryStore::new())).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_tokens_are_revoked_whatever_the_hint_and_a_dead_store_is_503() {
    use common::redis_server::RedisServer;
    let mut redis = RedisServer::start();
    let store = tower_jwt_auth::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let auth = layer(store);
    tokens_are_revoked_whatever_the_hint(auth.clone()).await;
    let token = auth.sessions().issue("dave", &json!({})).unwrap().token;
    let login = auth
        .sessions()
        .login("dave", "web", &json!({}))
        .await
        .unwrap();
    redis.kill();
    for token in [&token, &login.refresh_token] {
        let res = revoke(&auth, &format!("token={token}")).await;
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            res.body()
        );
        assert_eq!(error_of(&res), "temporarily_unavailable");
        assert!(res.headers().contains_key("retry-after"));
    }
    // Junk never reaches the store: still 200 (no oracle), nothing to record.
    assert_eq!(revoke(&auth, "token=junk").await.status(), StatusCode::OK);
}

#[cfg(feature = "remote-keys")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_issuers_access_token_is_denied_for_that_issuers_subject() {
    use common::jwks_server::JwksServer;
    use common::keygen::{ec_jwk, now, p256, with};
    use tower_jwt_auth::{RemoteIssuer, RemoteKeys};
    let dir = common::new_dir("revocation");
    let key = p256(&dir, "idp");
    let jwk = with(
        &ec_jwk(&key, "P-256", 32),
        json!({ "kid": "k1", "alg": "ES256" }),
    );
    let server = JwksServer::start(json!({ "keys": [jwk] }).to_string()).await;
    let keys = RemoteKeys::jwks(server.jwks_url()).build().unwrap();
    let auth = layer(MemoryStore::new())
        .remote_issuer(RemoteIssuer::new(server.base(), keys).audience("api"));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims = json!({ "iss": server.base(), "aud": "api", "sub": "alice", "iat": now(), "exp": now() + 300, "jti": "r-1" });
    let remote = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&key.pem).unwrap(),
    )
    .unwrap();
    let ours = auth.sessions().issue("alice", &json!({})).unwrap().token;
    // The keys are fetched on the revocation's behalf when not known yet.
    assert_eq!(
        revoke(&auth, &format!("token={remote}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&auth, &remote).await,
        (StatusCode::UNAUTHORIZED, Some("token_revoked"))
    );
    assert_eq!(call(&auth, &ours).await.0, StatusCode::OK, "our own alice");
}
