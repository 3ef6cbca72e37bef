//! DPoP with a real authorization server: node's `oidc-provider` binds a
//! client-credentials token to the key of the token request's proof (both
//! minted by node libraries), and the layer, which takes that provider's
//! tokens as a remote issuer, wants the key's proof on every request.
#![cfg(feature = "remote-keys")]

mod common;

use ::http::{Request, Response, StatusCode};
use base64::Engine;
use serde_json::Value;
use tower::ServiceExt;
use tower_jwt_auth::{JwtAuth, Keys, MemoryStore, RemoteIssuer, RemoteKeys};

use common::dpop::{Jose, ProofSpec};
use common::http;
use common::oidc::{OidcProvider, AUDIENCE, CLIENT_ID, CLIENT_SECRET};

/// A client-credentials token request carrying `proof` (when given).
fn token_response(provider: &OidcProvider, proof: Option<&str>) -> Value {
    let body = format!(
        "grant_type=client_credentials&resource={}&scope=read",
        AUDIENCE.replace(':', "%3A")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let dpop = proof.map(|p| format!("DPoP: {p}\r\n")).unwrap_or_default();
    let addr = provider.addr();
    let res = http::raw(
        &addr,
        &format!(
            "POST /token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Basic {basic}\r\n{dpop}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn send(auth: &JwtAuth<Value>, headers: &[(&str, &str)]) -> Response<String> {
    let mut req = Request::get("/me").header("host", "rs.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }))
        .oneshot(req.body(String::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_the_provider_bound_to_a_key_needs_that_keys_proofs() {
    let provider = OidcProvider::start();
    let jose = Jose::start();
    let key = jose.key("ES256");
    let token_url = format!("{}/token", provider.issuer());
    let proof = jose.proof(&key, &ProofSpec::new("POST", &token_url, None));
    let answer = token_response(&provider, Some(&proof));
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["cnf"]["jkt"],
        key.jkt.as_str(),
        "bound by the provider to jose's thumbprint"
    );

    let keys = RemoteKeys::discover(provider.issuer()).build().unwrap();
    let auth =
        JwtAuth::<Value>::new(Keys::hs256(b"dpop-oidc-local-secret-at-least-32-bytes").unwrap())
            .store(MemoryStore::new())
            .remote_issuer(
                RemoteIssuer::new(provider.issuer(), keys)
                    .audience(AUDIENCE)
                    .token_type("at+jwt"),
            );

    // The first request waits for the provider's keys, then the proof.
    let proof = jose.proof(
        &key,
        &ProofSpec::new("GET", "http://rs.test/me", Some(&token)),
    );
    let dpop = format!("DPoP {token}");
    let res = send(&auth, &[("authorization", &dpop), ("dpop", &proof)]).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{:?} {}",
        res.headers(),
        res.body()
    );
    let res = send(&auth, &[("authorization", &dpop), ("dpop", &proof)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a replay");
    let bearer = format!("Bearer {token}");
    let res = send(&auth, &[("authorization", &bearer)]).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "bound token as bearer"
    );
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("DPoP "));

    // Without a proof at the token endpoint: a bearer token, as before.
    let plain = token_response(&provider, None);
    assert_eq!(plain["token_type"], "Bearer", "{plain}");
    let bearer = format!("Bearer {}", plain["access_token"].as_str().unwrap());
    assert_eq!(
        send(&auth, &[("authorization", &bearer)]).await.status(),
        StatusCode::OK
    );
}
