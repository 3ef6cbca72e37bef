//! Tokens, their signatures and the signing secret never reach the logs
//! (TRACE level), `Debug` output or response bodies, whatever the outcome of a
//! request.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};
use tower_jwt_auth::{Authenticated, JwtAuth, Keys, MemoryStore};

const SECRET: &str = "log-canary secret: s3cr3t-HMAC-key-0123456789abcdef";
const OTHER_SECRET: &str = "another log-canary secret, 32+ bytes long!";

#[derive(Debug, Clone, Deserialize)]
struct MyClaims {
    sub: String,
    #[serde(default)]
    #[allow(dead_code)]
    roles: Vec<String>,
}

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mint(secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({ "sub": sub, "iat": now(), "exp": exp, "jti": format!("id-{sub}") })
}

fn bearer<B: Default>(token: &str) -> Request<B> {
    Request::get("/")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(B::default())
        .unwrap()
}

/// Everything that may not show up anywhere: the token, each of its parts
/// that carries information, and the secret in any obvious rendering.
fn forbidden(token: &str) -> Vec<String> {
    let mut parts = token.split('.');
    let _header = parts.next().unwrap();
    let payload = parts.next().unwrap();
    let signature = parts.next().unwrap();
    vec![token.to_owned(), payload.to_owned(), signature.to_owned()]
}

fn secret_renderings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    vec![
        secret.to_owned(),
        secret[..16].to_owned(),
        format!("{:?}", &bytes[..8])
            .trim_end_matches(']')
            .to_owned(),
        bytes[..8].iter().map(|b| format!("{b:02x}")).collect(),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} contains a secret ({secret:?}):\n{text}"
        );
    }
}

fn response_text<B>(res: &Response<B>, body: &str) -> String {
    let mut text = format!("{:?}\n", res.status());
    for (name, value) in res.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(body);
    text
}

#[tokio::test]
async fn tokens_signatures_and_secrets_never_appear_in_logs_debug_output_or_responses() {
    let logs = Buffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let auth = JwtAuth::<MyClaims>::new(Keys::hs256(SECRET).unwrap()).store(MemoryStore::new());
    let svc = auth.layer(service_fn(|req: Request<String>| async move {
        let sub = req
            .extensions()
            .get::<Authenticated<MyClaims>>()
            .map(|a| a.claims.sub.clone())
            .unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Response::new(format!("hello {sub}")))
    }));

    let valid = mint(SECRET, &claims("alice", now() + 300));
    let expired = mint(SECRET, &claims("bob", now() - 3600));
    let bad_signature = mint(OTHER_SECRET, &claims("carol", now() + 300));
    let revoked = mint(SECRET, &claims("dave", now() + 300));
    let wrong_claims = mint(
        SECRET,
        &json!({ "sub": "erin", "exp": now() + 300, "roles": "admin" }),
    );
    let login = auth
        .sessions()
        .login("frank", "web", &json!({}))
        .await
        .unwrap();
    auth.revoke(&revoked).await.unwrap();

    let mut secrets = secret_renderings(SECRET);
    secrets.extend(secret_renderings(OTHER_SECRET));
    for token in [
        &valid,
        &expired,
        &bad_signature,
        &revoked,
        &wrong_claims,
        &login.access_token,
    ] {
        secrets.extend(forbidden(token));
    }
    secrets.push(login.refresh_token.clone());
    secrets.push(login.refresh_token.rsplit('.').next().unwrap().to_owned());

    let mut transcript = String::new();
    for (token, status) in [
        (&valid, StatusCode::OK),
        (&expired, StatusCode::UNAUTHORIZED),
        (&bad_signature, StatusCode::UNAUTHORIZED),
        (&revoked, StatusCode::UNAUTHORIZED),
        (&wrong_claims, StatusCode::UNAUTHORIZED),
        (&login.access_token, StatusCode::OK),
    ] {
        let res = svc.clone().oneshot(bearer(token)).await.unwrap();
        assert_eq!(res.status(), status, "{}", res.body());
        transcript.push_str(&response_text(&res, res.body()));
        transcript.push_str(&format!(
            "{:?}\n",
            res.extensions().get::<tower_jwt_auth::AuthError>()
        ));
    }

    // A refresh, then the spent refresh token again (reuse, logged as a
    // warning), which ends the session: its access token is refused.
    let refreshed = auth.sessions().refresh(&login.refresh_token).await.unwrap();
    secrets.push(refreshed.refresh_token.clone());
    secrets.push(
        refreshed
            .refresh_token
            .rsplit('.')
            .next()
            .unwrap()
            .to_owned(),
    );
    assert!(auth.sessions().refresh(&login.refresh_token).await.is_err());
    let res = svc
        .clone()
        .oneshot(bearer(&login.access_token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    transcript.push_str(&response_text(&res, res.body()));
    // A kicked session's token.
    let second = auth
        .sessions()
        .login("frank", "mobile", &json!({}))
        .await
        .unwrap();
    secrets.extend(forbidden(&second.access_token));
    assert!(auth
        .sessions()
        .kick("frank", &second.session_id)
        .await
        .unwrap());
    let res = svc
        .clone()
        .oneshot(bearer(&second.access_token))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    transcript.push_str(&response_text(&res, res.body()));

    // Direct verification and revocation of a bad token.
    let verified = auth.verify(&valid).unwrap();
    let refused = auth.verify(&bad_signature).unwrap_err();
    let revoke_err = auth.revoke(&bad_signature).await.unwrap_err();

    // axum: the missing-layer rejection logs an error.
    #[cfg(feature = "axum")]
    {
        use axum::body::Body;
        use axum::routing::get;
        use tower_jwt_auth::Claims;

        let app =
            axum::Router::new().route("/", get(|Claims(c): Claims<MyClaims>| async move { c.sub }));
        let res = app.oneshot(bearer::<Body>(&valid)).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(body.contains("applied to this route?"), "{body}");
        transcript.push_str(&response_text(&Response::from_parts(parts, ()), &body));
    }

    drop(_guard);
    let logs = logs.contents();
    // The subscriber did capture the cycles, so an empty log cannot pass.
    assert!(logs.contains("request rejected: token expired"), "{logs}");
    assert!(
        logs.contains("request rejected: invalid signature"),
        "{logs}"
    );
    assert!(logs.contains("request rejected: token revoked"), "{logs}");
    assert!(
        logs.contains("request rejected: session ended: kicked"),
        "{logs}"
    );
    assert!(logs.contains("refresh token reused"), "{logs}");
    assert!(
        logs.contains("DEBUG"),
        "TRACE/DEBUG events are captured: {logs}"
    );
    #[cfg(feature = "axum")]
    assert!(logs.contains("applied to this route?"), "{logs}");
    assert_clean("the logs", &logs, &secrets);

    assert_clean("the responses", &transcript, &secrets);

    let debug = format!(
        "{auth:?}\n{:?}\n{:?}\n{verified:?}\n{refused:?}\n{revoke_err:?}\n{revoke_err}\n{login:?}\n{refreshed:?}\n{:?}\n{svc:?}",
        auth.keys(),
        auth.sessions(),
        auth.sessions().issue("gina", &json!({})).unwrap(),
    );
    assert!(debug.contains("[redacted]"), "{debug}");
    assert_clean("Debug output", &debug, &secrets);
}

#[test]
fn debug_of_the_layer_and_its_keys_redacts_every_key() {
    let rsa_private = include_bytes!("keys/rsa_private.pem");
    let keys = Keys::hs256(SECRET)
        .unwrap()
        .kid("hmac-1")
        .unwrap()
        .and(Keys::from_pem(Algorithm::RS256, include_bytes!("keys/rsa_public.pem")).unwrap())
        .signing_pem(Algorithm::RS256, rsa_private, Some("rsa-1"))
        .unwrap();
    let auth = JwtAuth::<MyClaims>::new(keys);
    let svc = auth.layer(service_fn(|_: Request<String>| async {
        Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    }));
    let debug = format!("{auth:?}\n{:?}\n{:#?}\n{svc:?}", auth.keys(), auth.keys());
    assert!(debug.contains("hmac-1"), "key ids are shown: {debug}");
    let mut secrets = secret_renderings(SECRET);
    let rsa_private = std::str::from_utf8(rsa_private).unwrap();
    // A line of the private key's base64 body.
    secrets.push(rsa_private.lines().nth(1).unwrap().to_owned());
    assert_clean("Debug output", &debug, &secrets);
}
