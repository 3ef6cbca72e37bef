//! Two quickstart instances on one Redis, over HTTP: `POST
//! /backchannel-logout` with logout tokens minted by node's `jose` (an
//! independent JWT library) with a real OpenID Provider's keys and with our
//! own secret, and `POST /revoke` (RFC 7009). Every back-channel rule is a
//! case that would log out a victim; replays are refused across the
//! instances; the store down answers 503.
#![cfg(all(feature = "remote-keys", feature = "redis"))]

mod common;

use std::time::Duration;

use base64::Engine;
use common::http::{raw, request, HttpResponse};
use common::oidc::{OidcProvider, AUDIENCE};
use common::quickstart::Quickstart;
use common::redis_server::RedisServer;
use serde_json::{json, Value};

const SECRET: &str = "e2e-logout-revocation-secret-0123456789";
const OUR_ISSUER: &str = "tower-jwt-auth-quickstart";
const OUR_AUDIENCE: &str = "quickstart";
const CLIENT: (&str, &str) = ("e2e-client", "e2e-client-secret");
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn me(addr: &str, token: &str) -> u16 {
    request(addr, "GET", "/me", Some(token), None).status
}

/// `/me` until it answers `status` (a few seconds at most: the other
/// instance's near-cache drops its verdicts when the event arrives).
fn eventually(addr: &str, token: &str, status: u16) -> u16 {
    let mut got = me(addr, token);
    for _ in 0..50 {
        if got == status {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        got = me(addr, token);
    }
    got
}

fn post_form(addr: &str, path: &str, basic: Option<(&str, &str)>, body: &str) -> HttpResponse {
    let auth = basic.map_or(String::new(), |(id, secret)| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        format!("Authorization: Basic {pair}\r\n")
    });
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn logout(addr: &str, token: &str) -> HttpResponse {
    post_form(
        addr,
        "/backchannel-logout",
        None,
        &format!("logout_token={token}"),
    )
}

fn revoke(addr: &str, body: &str) -> HttpResponse {
    post_form(addr, "/revoke", Some(CLIENT), body)
}

fn login(addr: &str, device: &str) -> Value {
    common::http::login(addr, "alice", "alice-pw", device)
}

struct Setup {
    idp: OidcProvider,
    redis: RedisServer,
    a: Quickstart,
    b: Quickstart,
}

fn setup() -> Setup {
    let idp = OidcProvider::start();
    let redis = RedisServer::start();
    let issuers = idp.issuer();
    let url = redis.url();
    let start = |near: &str| {
        Quickstart::start(&[
            ("REDIS_URL", url.as_str()),
            ("NEAR_CACHE", near),
            ("JWT_SECRET", SECRET),
            ("OIDC_ISSUERS", issuers.as_str()),
            ("OIDC_AUDIENCE", AUDIENCE),
            ("REVOKE_CLIENT_ID", CLIENT.0),
            ("REVOKE_CLIENT_SECRET", CLIENT.1),
        ])
    };
    let (a, b) = (start("0"), start("1"));
    Setup { idp, redis, a, b }
}

impl Setup {
    /// An access token of the provider (signed by jose) for `sub` in its
    /// session `sid`.
    fn access_token(&self, sub: &str, sid: &str) -> String {
        let claims = json!({
            "iss": self.idp.issuer(), "aud": AUDIENCE, "sub": sub, "sid": sid,
            "iat": now(), "exp": now() + 300, "jti": format!("at-{sub}-{sid}-{}", rand()),
        });
        self.idp.sign(json!({ "typ": "at+jwt" }), claims)
    }

    fn logout_claims(&self, sid: &str) -> Value {
        json!({
            "iss": self.idp.issuer(), "aud": AUDIENCE, "iat": now(), "exp": now() + 120,
            "jti": format!("lt-{}", rand()), "sid": sid, "events": { EVENT: {} },
        })
    }

    fn logout_token(&self, claims: Value) -> String {
        self.idp.sign(json!({ "typ": "logout+jwt" }), claims)
    }
}

fn rand() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

#[test]
fn back_channel_logout_over_http_on_two_instances() {
    let s = setup();
    let (a, b) = (s.a.addr.as_str(), s.b.addr.as_str());

    // Every rule: refused with 400 invalid_request, the victim untouched.
    let victim = s.access_token("alice", "victim");
    assert_eq!(me(a, &victim), 200);
    assert_eq!(me(b, &victim), 200);
    let edit = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = s.logout_claims("victim");
        change(claims.as_object_mut().unwrap());
        s.logout_token(claims)
    };
    let cases = [
        (
            "wrong aud",
            edit(&|c| {
                c.insert("aud".into(), json!("urn:someone-else"));
            }),
        ),
        (
            "no aud",
            edit(&|c| {
                c.remove("aud");
            }),
        ),
        (
            "unknown iss",
            edit(&|c| {
                c.insert("iss".into(), json!("http://127.0.0.1:1"));
            }),
        ),
        (
            "no iat",
            edit(&|c| {
                c.remove("iat");
            }),
        ),
        (
            "old iat",
            edit(&|c| {
                c.insert("iat".into(), json!(now() - 3600));
            }),
        ),
        (
            "expired",
            edit(&|c| {
                c.insert("exp".into(), json!(now() - 60));
            }),
        ),
        (
            "no events",
            edit(&|c| {
                c.remove("events");
            }),
        ),
        (
            "other event",
            edit(&|c| {
                c.insert("events".into(), json!({ "urn:other": {} }));
            }),
        ),
        (
            "nonce",
            edit(&|c| {
                c.insert("nonce".into(), json!("abc"));
            }),
        ),
        (
            "no sub nor sid",
            edit(&|c| {
                c.remove("sid");
            }),
        ),
        (
            "no jti",
            edit(&|c| {
                c.remove("jti");
            }),
        ),
        (
            "typ JWT",
            s.idp
                .sign(json!({ "typ": "JWT" }), s.logout_claims("victim")),
        ),
        (
            "our secret, their iss",
            s.idp
                .sign_hs256(SECRET, json!({}), s.logout_claims("victim")),
        ),
        ("an access token", s.access_token("alice", "victim")),
    ];
    for (case, token) in &cases {
        let res = logout(a, token);
        assert_eq!(res.status, 400, "{case}: {}", res.body);
        assert_eq!(res.json()["error"], "invalid_request", "{case}");
    }
    assert_eq!(me(a, &victim), 200);
    assert_eq!(me(b, &victim), 200);

    // `sid` alone, on A: every token of that provider session is refused
    // on both instances (B with its near-cache), another session is not.
    let bob = s.access_token("bob", "victim");
    let other = s.access_token("alice", "other");
    let token = s.logout_token(s.logout_claims("victim"));
    let res = logout(a, &token);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    for token in [&victim, &bob] {
        assert_eq!(me(a, token), 401);
        assert_eq!(eventually(b, token, 401), 401);
    }
    assert_eq!(me(b, &other), 200);
    // The same token again, on the other instance: a replay.
    let replay = logout(b, &token);
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert_eq!(replay.json()["error"], "invalid_request");

    // A logout token is no access token.
    assert_eq!(me(a, &token), 401);

    // `sub` alone logs out the provider's alice, never our own alice.
    let ours = login(a, "web")["access_token"].as_str().unwrap().to_owned();
    let mut claims = s.logout_claims("");
    claims.as_object_mut().unwrap().remove("sid");
    claims["sub"] = json!("alice");
    assert_eq!(logout(b, &s.logout_token(claims)).status, 200);
    assert_eq!(eventually(b, &other, 401), 401);
    assert_eq!(me(a, &other), 401);
    assert_eq!(me(b, &ours), 200);

    // Our own issuer (HS256 with JWT_SECRET, minted by jose): sub and sid
    // end that session of ours, on both instances.
    let session = login(a, "phone");
    let access = session["access_token"].as_str().unwrap();
    let claims = json!({
        "iss": OUR_ISSUER, "aud": OUR_AUDIENCE, "iat": now(), "jti": format!("ours-{}", rand()),
        "sub": "alice", "sid": session["session_id"], "events": { EVENT: {} },
    });
    let res = logout(
        b,
        &s.idp
            .sign_hs256(SECRET, json!({ "typ": "logout+jwt" }), claims),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(me(a, access), 401);
    assert_eq!(me(b, &ours), 200, "another session of ours");

    // Not a form, or no token: 400.
    let res = request(
        a,
        "POST",
        "/backchannel-logout",
        None,
        Some(&json!({ "logout_token": token })),
    );
    assert_eq!(res.status, 400);
    assert_eq!(post_form(a, "/backchannel-logout", None, "").status, 400);
}

#[test]
fn token_revocation_over_http_on_two_instances() {
    let mut s = setup();
    let (a, b) = (s.a.addr.as_str(), s.b.addr.as_str());
    let session = login(a, "web");
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let token = format!("token={access}");

    // Client authentication: 401 invalid_client with a Basic challenge.
    for auth in [None, Some((CLIENT.0, "wrong")), Some(("nobody", CLIENT.1))] {
        let res = post_form(a, "/revoke", auth, &token);
        assert_eq!(res.status, 401, "{auth:?}");
        assert_eq!(res.json()["error"], "invalid_client");
        assert!(res.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    let res = revoke(a, "token_type_hint=access_token");
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["error"], "invalid_request");
    assert_eq!(me(b, &access), 200, "nothing revoked yet");

    // No oracle: junk, a forged token, an unknown refresh token: 200.
    for junk in ["junk", "a.b.c", "YWxpY2U.sid.0.secret"] {
        assert_eq!(revoke(a, &format!("token={junk}")).status, 200, "{junk}");
    }

    // Our access token, with the wrong hint: refused on both instances.
    let other = login(a, "phone");
    let res = revoke(a, &format!("{token}&token_type_hint=refresh_token"));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(eventually(b, &access, 401), 401);
    assert_eq!(me(a, &access), 401);
    assert_eq!(me(b, other["access_token"].as_str().unwrap()), 200);

    // A refresh token, on B: its session ends, its access tokens with it.
    let res = revoke(
        b,
        &format!("token={}", other["refresh_token"].as_str().unwrap()),
    );
    assert_eq!(res.status, 200);
    assert_eq!(me(a, other["access_token"].as_str().unwrap()), 401);
    let res = request(
        a,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": other["refresh_token"] })),
    );
    assert_ne!(res.status, 200, "{}", res.body);
    // The first session's refresh token still works (only its access token went).
    let res = request(
        a,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(res.status, 200, "{}", res.body);

    // A provider's access token (jose): denied on both instances.
    let remote = s.access_token("carol", "s-1");
    assert_eq!(me(b, &remote), 200);
    assert_eq!(revoke(a, &format!("token={remote}")).status, 200);
    assert_eq!(eventually(b, &remote, 401), 401);

    // The store down: 503, never a 200 for a revocation that did not happen.
    let fresh = login(a, "tablet");
    s.redis.kill();
    let res = revoke(
        a,
        &format!("token={}", fresh["access_token"].as_str().unwrap()),
    );
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    let res = revoke(
        b,
        &format!("token={}", fresh["refresh_token"].as_str().unwrap()),
    );
    assert_eq!(res.status, 503, "{}", res.body);
}
