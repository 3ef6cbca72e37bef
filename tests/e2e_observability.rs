//! The quickstart's observability over HTTP: a scrape of `GET /metrics`
//! after known traffic equals what the client saw (accepted, rejected by
//! reason, 503s while Redis is dead, the breaker gauge, session events), and
//! `AUDIT_LOG=1` prints one JSON line per session event, with no token, no
//! refresh token and no secret in any of them.
#![cfg(all(feature = "metrics", feature = "redis"))]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use common::http::{access_token as token, request, HttpResponse};
use common::quickstart::Quickstart;
use common::redis_server::RedisServer;
use serde_json::{json, Value};

const DEMO_SECRET: &str = "quickstart-demo-secret-change-me-0123456789";

/// A scrape: every sample of the text format, by its name with labels.
type Scrape = BTreeMap<String, f64>;

fn scrape(addr: &str) -> Scrape {
    let res = request(addr, "GET", "/metrics", None, None);
    assert_eq!(res.status, 200, "{res:?}");
    assert!(
        res.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{res:?}"
    );
    res.body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn requests_series(outcome: &str, reason: &str) -> String {
    format!("jwt_auth_requests_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}")
}

fn session_series(event: &str) -> String {
    format!("jwt_auth_session_events_total{{event=\"{event}\"}}")
}

/// What the client saw, series by series.
#[derive(Default)]
struct Seen(BTreeMap<String, f64>);

impl Seen {
    fn count(&mut self, series: String) {
        *self.0.entry(series).or_default() += 1.0;
    }

    /// A request through the layer: count it by its answer.
    fn saw(&mut self, res: &HttpResponse, expect_status: u16, reason: &str) {
        assert_eq!(res.status, expect_status, "{res:?}");
        let outcome = match res.status {
            200..=299 => "accepted",
            503 => "unavailable",
            _ => "rejected",
        };
        if outcome == "rejected" && res.body.starts_with('{') {
            // The body's own reason, where there is one, is the label.
            if let Some(body_reason) = res.json()["reason"].as_str() {
                assert_eq!(body_reason, reason, "{res:?}");
            }
        }
        self.count(requests_series(outcome, reason));
    }
}

fn login(addr: &str, user: &str, device: &str) -> Value {
    common::http::login(addr, user, &format!("{user}-pw"), device)
}

fn refresh(addr: &str, refresh_token: &str) -> HttpResponse {
    request(
        addr,
        "POST",
        "/refresh",
        None,
        Some(&json!({ "refresh_token": refresh_token })),
    )
}

#[test]
fn a_scrape_equals_what_the_client_saw_with_redis_up_then_dead() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let qs = Quickstart::start(&[("REDIS_URL", url.as_str())]);
    let addr = qs.addr.as_str();
    let before = scrape(addr);
    assert_eq!(before.get("jwt_auth_circuit_breaker_open"), Some(&0.0));
    let mut seen = Seen::default();
    let mut events = Seen::default();

    let alice = login(addr, "alice", "web");
    events.count(session_series("login"));
    let admin = login(addr, "admin", "web");
    events.count(session_series("login"));
    for _ in 0..3 {
        let res = request(addr, "GET", "/me", Some(&token(&alice)), None);
        seen.saw(&res, 200, "verified");
    }
    let res = request(addr, "GET", "/me", None, None);
    seen.saw(&res, 401, "missing_token");
    let res = request(addr, "GET", "/me", Some("not-a-jwt"), None);
    seen.saw(&res, 401, "malformed");
    // Installs the crypto provider when several backends are compiled in.
    let _ = tower_jwt_auth::JwtAuth::<Value>::new(
        tower_jwt_auth::Keys::hs256(DEMO_SECRET.as_bytes()).unwrap(),
    );
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "alice", "exp": 4_000_000_000u64, "iss": "tower-jwt-auth-quickstart", "aud": "quickstart" }),
        &jsonwebtoken::EncodingKey::from_secret(b"another secret of at least thirty-two bytes").unwrap(),
    )
    .unwrap();
    let res = request(addr, "GET", "/me", Some(&forged), None);
    seen.saw(&res, 401, "bad_signature");

    // Refresh, then the spent refresh token again: the session ends.
    let rotated = refresh(addr, alice["refresh_token"].as_str().unwrap());
    assert_eq!(rotated.status, 200, "{rotated:?}");
    events.count(session_series("refresh"));
    let reused = refresh(addr, alice["refresh_token"].as_str().unwrap());
    assert_eq!(reused.status, 401, "{reused:?}");
    events.count(session_series("refresh_reuse"));
    let res = request(addr, "GET", "/me", Some(&token(&alice)), None);
    seen.saw(&res, 401, "refresh_reuse");

    // Log out, then the same token.
    let alice = login(addr, "alice", "web");
    events.count(session_series("login"));
    let res = request(addr, "POST", "/logout", Some(&token(&alice)), None);
    seen.saw(&res, 204, "verified");
    events.count(session_series("logout"));
    let res = request(addr, "GET", "/me", Some(&token(&alice)), None);
    let reason = res.json()["reason"].as_str().unwrap().to_owned();
    seen.saw(&res, 401, &reason);

    // An administrator kicks alice out, then bans and unbans her.
    let alice = login(addr, "alice", "phone");
    events.count(session_series("login"));
    let res = request(
        addr,
        "POST",
        "/admin/users/alice/kick",
        Some(&token(&admin)),
        None,
    );
    seen.saw(&res, 204, "verified");
    events.count(session_series("kicked"));
    let res = request(addr, "GET", "/me", Some(&token(&alice)), None);
    seen.saw(&res, 401, "kicked");
    let ban = json!({ "seconds": 60 });
    let res = request(
        addr,
        "PUT",
        "/admin/users/alice/ban",
        Some(&token(&admin)),
        Some(&ban),
    );
    seen.saw(&res, 204, "verified");
    events.count(session_series("banned"));
    let res = request(
        addr,
        "DELETE",
        "/admin/users/alice/ban",
        Some(&token(&admin)),
        None,
    );
    seen.saw(&res, 204, "verified");
    events.count(session_series("unbanned"));

    // Redis dies: every request is a 503, counted as unavailable, and the
    // breaker opens.
    redis.kill();
    for _ in 0..8 {
        let res = request(addr, "GET", "/me", Some(&token(&admin)), None);
        seen.saw(&res, 503, "store_unavailable");
    }
    let after = scrape(addr);
    assert_eq!(after.get("jwt_auth_circuit_breaker_open"), Some(&1.0));

    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    for (prefix, expected) in [
        ("jwt_auth_requests_total{", &seen.0),
        ("jwt_auth_session_events_total{", &events.0),
    ] {
        for series in after.keys().filter(|s| s.starts_with(prefix)) {
            let want = expected.get(series).copied().unwrap_or(0.0);
            assert_eq!(delta(series), want, "{series}");
        }
        for series in expected.keys() {
            assert!(after.contains_key(series), "{series} is not exported");
        }
    }
    // Every check that reached the store was timed: the accepted ones (all
    // session tokens), the revoked ones, and the failed ones (at least the
    // five that opened the breaker; the others were short-circuited, except
    // perhaps a probe after its cooldown).
    let checks = delta("jwt_auth_store_check_duration_seconds_count");
    let answered: f64 = seen
        .0
        .iter()
        .filter(|(series, _)| {
            series.contains("accepted")
                || ["refresh_reuse", "logged_out", "token_revoked", "kicked"]
                    .iter()
                    .any(|r| series.contains(&format!("reason=\"{r}\"")))
        })
        .map(|(_, n)| n)
        .sum();
    assert!(
        (answered + 5.0..=answered + 8.0).contains(&checks),
        "{checks} store checks timed for {answered} answered and 8 failed"
    );
    assert!(delta("jwt_auth_store_check_duration_seconds_sum") > 0.0);
}

/// Lines of the quickstart's stdout, as they come.
fn lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next audit line (a JSON object), skipping the banner.
fn next_event(rx: &mpsc::Receiver<String>) -> (String, Value) {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an audit line within 10 s");
        if line.starts_with('{') {
            let value = serde_json::from_str(&line).expect("a JSON line");
            return (line, value);
        }
    }
}

#[test]
fn audit_log_prints_every_session_event_as_a_json_line_without_secrets() {
    let (qs, stdout) = Quickstart::start_piped(&[
        ("AUDIT_LOG", "1"),
        ("MAX_DEVICES", "1"),
        ("IDLE_TIMEOUT_SECS", "2"),
    ]);
    let addr = qs.addr.as_str();
    let rx = lines(stdout);
    let mut secrets = vec![DEMO_SECRET.to_owned()];
    let mut keep = |login: &Value| {
        for field in ["access_token", "refresh_token"] {
            let value = login[field].as_str().unwrap().to_owned();
            // The refresh token's secret part too.
            secrets.push(value.rsplit('.').next().unwrap().to_owned());
            secrets.push(value);
        }
    };
    let mut got = Vec::new();
    let mut expect = |rx: &mpsc::Receiver<String>, event: &str, sub: &str, sid: Option<&str>| {
        let (line, value) = next_event(rx);
        assert_eq!(value["event"], event, "{line}");
        assert_eq!(value["sub"], sub, "{line}");
        assert_eq!(value["iss"], "tower-jwt-auth-quickstart", "{line}");
        assert!(value["time"].as_u64().is_some(), "{line}");
        if let Some(sid) = sid {
            assert_eq!(value["sid"], sid, "{line}");
        }
        got.push(line);
        value
    };

    let first = login(addr, "alice", "web");
    keep(&first);
    let sid1 = first["session_id"].as_str().unwrap();
    let e = expect(&rx, "login", "alice", Some(sid1));
    assert_eq!(e["device"], "web");
    // The device limit is 1: a second login replaces the first session.
    let second = login(addr, "alice", "phone");
    keep(&second);
    let sid2 = second["session_id"].as_str().unwrap();
    expect(&rx, "login", "alice", Some(sid2));
    let e = expect(&rx, "replaced", "alice", Some(sid1));
    assert_eq!(e["reason"], format!("new_session:{sid2}"));

    let rotated = refresh(addr, second["refresh_token"].as_str().unwrap()).json();
    keep(&rotated);
    expect(&rx, "refresh", "alice", Some(sid2));
    let reused = refresh(addr, second["refresh_token"].as_str().unwrap());
    assert_eq!(reused.status, 401);
    expect(&rx, "refresh_reuse", "alice", Some(sid2));

    let third = login(addr, "alice", "web");
    keep(&third);
    let sid3 = third["session_id"].as_str().unwrap();
    expect(&rx, "login", "alice", Some(sid3));
    let res = request(addr, "POST", "/logout", Some(&token(&third)), None);
    assert_eq!(res.status, 204);
    expect(&rx, "logout", "alice", Some(sid3));

    let admin = login(addr, "admin", "web");
    keep(&admin);
    expect(&rx, "login", "admin", None);
    let fourth = login(addr, "alice", "web");
    keep(&fourth);
    let sid4 = fourth["session_id"].as_str().unwrap();
    expect(&rx, "login", "alice", Some(sid4));
    let res = request(
        addr,
        "POST",
        "/admin/users/alice/kick",
        Some(&token(&admin)),
        None,
    );
    assert_eq!(res.status, 204);
    let e = expect(&rx, "kicked", "alice", None);
    assert_eq!(e["reason"], "all_sessions:1");
    let ban = json!({ "seconds": 60 });
    let res = request(
        addr,
        "PUT",
        "/admin/users/alice/ban",
        Some(&token(&admin)),
        Some(&ban),
    );
    assert_eq!(res.status, 204);
    let e = expect(&rx, "banned", "alice", None);
    assert_eq!(e["reason"], "for_seconds:60");
    let res = request(
        addr,
        "DELETE",
        "/admin/users/alice/ban",
        Some(&token(&admin)),
        None,
    );
    assert_eq!(res.status, 204);
    expect(&rx, "unbanned", "alice", None);

    let res = request(addr, "POST", "/logout-all", Some(&token(&admin)), None);
    assert_eq!(res.status, 204);
    expect(&rx, "logout_all", "admin", None);

    // A session left idle past its timeout: the refresh finds it lapsed.
    let idle = login(addr, "alice", "web");
    keep(&idle);
    let sid5 = idle["session_id"].as_str().unwrap();
    expect(&rx, "login", "alice", Some(sid5));
    std::thread::sleep(Duration::from_millis(2500));
    let res = refresh(addr, idle["refresh_token"].as_str().unwrap());
    assert_eq!(res.status, 401, "{res:?}");
    expect(&rx, "idle_timeout", "alice", Some(sid5));

    for line in &got {
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "{line} shows a secret");
        }
    }
}
