//! RFC 9449 DPoP end to end: two quickstart processes on one Redis, over
//! HTTP, with proofs minted by node's `jose` (an independent JWT library):
//! `/login` binds the token to the proof's key, every protected route
//! wants the proof, and a proof used on one instance is refused on the
//! other.

mod common;

use serde_json::{json, Value};

use common::dpop::{Jose, JoseKey, ProofSpec};
use common::http::{self, HttpResponse};
use common::quickstart::Quickstart;
use common::redis_server::RedisServer;

const SECRET: &str = "e2e-dpop-secret-of-at-least-thirty-two-bytes";
const PUBLIC: &str = "https://api.example.test";

/// One request with these extra headers and an optional JSON body.
fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> HttpResponse {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = String::new();
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    http::raw(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{head}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn alice() -> Value {
    json!({ "username": "alice", "password": "alice-pw", "device": "laptop" })
}

/// Log in on `qs` with a proof for `htu` by `key`: the login answer.
fn login(qs: &Quickstart, jose: &Jose, key: &JoseKey, htu: &str) -> Value {
    let proof = jose.proof(key, &ProofSpec::new("POST", htu, None));
    let res = send(
        &qs.addr,
        "POST",
        "/login",
        &[("DPoP", &proof)],
        Some(&alice()),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

fn me(qs: &Quickstart, token: &str, proof: Option<&str>) -> HttpResponse {
    let scheme = if proof.is_some() { "DPoP" } else { "Bearer" };
    let auth = format!("{scheme} {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(proof) = proof {
        headers.push(("DPoP", proof));
    }
    send(&qs.addr, "GET", "/me", &headers, None)
}

#[test]
fn two_instances_bind_tokens_demand_proofs_and_share_the_replay_cache() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("JWT_SECRET", SECRET),
        ("PUBLIC_URL", PUBLIC),
    ];
    let (a, b) = (Quickstart::start(&env), Quickstart::start(&env));
    let jose = Jose::start();
    let key = jose.key("ES256");

    // /login binds the token to the proof's key.
    let login = login(&a, &jose, &key, &format!("{PUBLIC}/login"));
    assert_eq!(login["token_type"], "DPoP");
    let token = login["access_token"].as_str().unwrap();

    // Accepted with a proof for the public URL, on either instance.
    let htu = format!("{PUBLIC}/me");
    let proof = jose.proof(&key, &ProofSpec::new("GET", &htu, Some(token)));
    let res = me(&a, token, Some(&proof));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.json()["cnf_jkt"],
        key.jkt.as_str(),
        "bound to jose's thumbprint"
    );

    // The same proof on the other instance: a replay.
    let res = me(&b, token, Some(&proof));
    assert_eq!(res.status, 401, "{}", res.body);
    let challenge = res.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("invalid_dpop_proof"),
        "{challenge}"
    );
    assert!(challenge.contains("algs=\""), "{challenge}");
    assert!(res.body.contains("replayed"), "{}", res.body);

    // A fresh proof works on b.
    let fresh = jose.proof(&key, &ProofSpec::new("GET", &htu, Some(token)));
    assert_eq!(me(&b, token, Some(&fresh)).status, 200);

    // The bound token as a bearer token: refused, with a DPoP challenge.
    let res = me(&a, token, None);
    assert_eq!(res.status, 401);
    assert!(
        res.header("www-authenticate").unwrap().starts_with("DPoP "),
        "{:?}",
        res.headers
    );

    // A proof of another key, of another URL (the instance's own address
    // instead of the public one), or for another method: refused.
    let thief = jose.key("ES256");
    let stolen = jose.proof(&thief, &ProofSpec::new("GET", &htu, Some(token)));
    assert_eq!(me(&a, token, Some(&stolen)).status, 401);
    let by_host = jose.proof(
        &key,
        &ProofSpec::new("GET", &format!("http://{}/me", a.addr), Some(token)),
    );
    assert_eq!(me(&a, token, Some(&by_host)).status, 401);
    let post = jose.proof(&key, &ProofSpec::new("POST", &htu, Some(token)));
    assert_eq!(me(&a, token, Some(&post)).status, 401);

    // /refresh keeps the binding when it gets a proof; a refresh with a bad
    // proof does not rotate the refresh token.
    let refresh = json!({ "refresh_token": login["refresh_token"] });
    let bad = jose.proof(
        &key,
        &ProofSpec::new("POST", &format!("{PUBLIC}/login"), None),
    );
    let res = send(
        &b.addr,
        "POST",
        "/refresh",
        &[("DPoP", &bad)],
        Some(&refresh),
    );
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.json()["error"], "invalid_dpop_proof");
    let good = jose.proof(
        &key,
        &ProofSpec::new("POST", &format!("{PUBLIC}/refresh"), None),
    );
    let res = send(
        &b.addr,
        "POST",
        "/refresh",
        &[("DPoP", &good)],
        Some(&refresh),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["token_type"], "DPoP");
    let renewed = res.json()["access_token"].as_str().unwrap().to_owned();
    let proof = jose.proof(&key, &ProofSpec::new("GET", &htu, Some(&renewed)));
    assert_eq!(me(&a, &renewed, Some(&proof)).status, 200);
}

#[test]
fn without_a_proof_login_issues_bearer_tokens_as_before() {
    let qs = Quickstart::start(&[("JWT_SECRET", SECRET)]);
    let res = send(&qs.addr, "POST", "/login", &[], Some(&alice()));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["token_type"], "Bearer");
    let token = res.json()["access_token"].as_str().unwrap().to_owned();
    let res = me(&qs, &token, None);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["cnf_jkt"], Value::Null);
}

#[test]
fn without_public_url_proofs_name_the_host_and_a_bad_login_proof_is_400() {
    let qs = Quickstart::start(&[("JWT_SECRET", SECRET)]);
    let jose = Jose::start();
    let key = jose.key("EdDSA");
    let login = login(&qs, &jose, &key, &format!("http://{}/login", qs.addr));
    let token = login["access_token"].as_str().unwrap();
    let proof = jose.proof(
        &key,
        &ProofSpec::new("GET", &format!("http://{}/me", qs.addr), Some(token)),
    );
    assert_eq!(me(&qs, token, Some(&proof)).status, 200);
    // A proof that names another URL at login: 400 invalid_dpop_proof.
    let wrong = jose.proof(
        &key,
        &ProofSpec::new("POST", "http://elsewhere.test/login", None),
    );
    let res = send(
        &qs.addr,
        "POST",
        "/login",
        &[("DPoP", &wrong)],
        Some(&alice()),
    );
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.json()["error"], "invalid_dpop_proof");
    // Hostile proof headers: a clear 400/401, never a crash.
    for hostile in ["x".repeat(9000), "a.b.c".into(), "%%%".into()] {
        let res = send(
            &qs.addr,
            "POST",
            "/login",
            &[("DPoP", &hostile)],
            Some(&alice()),
        );
        assert_eq!(res.status, 400, "{}", res.body);
        let res = me(&qs, token, Some(&hostile));
        assert_eq!(res.status, 401, "{}", res.body);
    }
    assert_eq!(
        me(
            &qs,
            token,
            Some(&jose.proof(
                &key,
                &ProofSpec::new("GET", &format!("http://{}/me", qs.addr), Some(token))
            ))
        )
        .status,
        200
    );
}
