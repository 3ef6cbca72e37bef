//! `RedisStore` against a real `redis-server` (one per test): what only
//! Redis has (command counts, key layout and encoding, TTLs, restarts,
//! scripts, events, pools), and the store's answers to its own calls where
//! the conformance suite (`tests/conformance.rs`, every store) does not reach.

#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use redis::{PushInfo, PushKind, Value};
use tower_jwt_auth::store::{
    CheckRequest, CreateOutcome, LimitPolicy, NewSession, RedisStore, RevocationReason,
    RevocationStore, RotateOutcome, Rotation, SessionEnd, SessionStore, StartupFinding, StoreError,
    Verdict,
};

const MARKERS: Duration = Duration::from_secs(60);

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::builder(&server.url())
        .startup_checks(false)
        .build()
        .await
        .expect("connect to the test redis-server")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn req(subject: &str, token: &str) -> CheckRequest<'static> {
    CheckRequest {
        subject: subject.to_owned().into(),
        token_id: token.to_owned().into(),
        issued_at: Some(now_secs()),
        session_id: None,
        touch_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        marker_ttl: Duration::from_secs(60),
        deadline: Duration::from_secs(60),
    }
}

fn sreq(subject: &str, sid: &str) -> CheckRequest<'static> {
    CheckRequest {
        session_id: Some(sid.to_owned().into()),
        ..req(subject, &format!("tok-{sid}"))
    }
}

fn session(subject: &str, sid: &str, device: &str) -> NewSession {
    NewSession {
        subject: subject.into(),
        session_id: sid.into(),
        device: device.into(),
        refresh_hash: format!("rt-{sid}-0"),
        max_sessions: 0,
        limit_policy: LimitPolicy::EvictOldest,
        replace_same_device: false,
        idle_timeout: Duration::from_secs(60),
        lifetime: Duration::from_secs(3600),
        markers: MARKERS,
    }
}

fn rotation(subject: &str, sid: &str, generation: u64, presented: &str, new: &str) -> Rotation {
    Rotation {
        subject: subject.into(),
        session_id: sid.into(),
        generation,
        presented_hash: presented.into(),
        new_hash: new.into(),
        idle_timeout: Duration::from_secs(60),
        markers: MARKERS,
    }
}

fn revoked(reason: RevocationReason) -> Verdict {
    Verdict::Revoked(reason)
}

fn ended(why: SessionEnd) -> Verdict {
    Verdict::Revoked(RevocationReason::SessionEnded(why))
}

async fn live_ids(store: &RedisStore, subject: &str) -> Vec<String> {
    store
        .list_sessions(subject)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect()
}

// --- deny list, not-before, bans -------------------------------------------

#[tokio::test]
async fn a_token_on_the_deny_list_is_revoked_until_its_entry_expires() {
    let server = RedisServer::start();
    let store = store(&server).await;
    assert_eq!(
        store.check(&req("alice", "t1")).await.unwrap(),
        Verdict::Valid
    );

    store
        .deny_token("alice", "t1", Duration::from_millis(1200))
        .await
        .unwrap();
    assert_eq!(
        store.check(&req("alice", "t1")).await.unwrap(),
        revoked(RevocationReason::TokenRevoked)
    );
    assert_eq!(
        store.check(&req("alice", "t2")).await.unwrap(),
        Verdict::Valid
    );
    assert_eq!(
        store.check(&req("bob", "t1")).await.unwrap(),
        Verdict::Valid
    );

    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(
        store.check(&req("alice", "t1")).await.unwrap(),
        Verdict::Valid
    );
}

#[tokio::test]
async fn a_later_shorter_deny_entry_never_shortens_a_longer_one() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .deny_token("alice", "t1", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .deny_token("alice", "t1", Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.check(&req("alice", "t1")).await.unwrap(),
        revoked(RevocationReason::TokenRevoked)
    );
    let pttl: i64 = server.cmd(&["PTTL", "jwt:{alice}:deny:t1"]);
    assert!(pttl > 50_000, "deny entry ttl {pttl} ms");
}

#[tokio::test]
async fn tokens_issued_at_or_before_the_not_before_mark_are_revoked() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mark = now_secs();
    store
        .revoke_subject("alice", mark * 1000, None, MARKERS)
        .await
        .unwrap();

    let at = |iat: Option<u64>| CheckRequest {
        issued_at: iat,
        ..req("alice", "t")
    };
    let everywhere = revoked(RevocationReason::LoggedOutEverywhere);
    assert_eq!(store.check(&at(Some(mark - 10))).await.unwrap(), everywhere);
    assert_eq!(store.check(&at(Some(mark))).await.unwrap(), everywhere);
    assert_eq!(store.check(&at(None)).await.unwrap(), everywhere);
    assert_eq!(
        store.check(&at(Some(mark + 1))).await.unwrap(),
        Verdict::Valid
    );
    assert_eq!(store.check(&req("bob", "t")).await.unwrap(), Verdict::Valid);

    // A later call with a lower mark never lowers it.
    store
        .revoke_subject("alice", (mark - 100) * 1000, None, MARKERS)
        .await
        .unwrap();
    assert_eq!(store.check(&at(Some(mark))).await.unwrap(), everywhere);
    let ttl: i64 = server.cmd(&["PTTL", "jwt:{alice}:nbf"]);
    assert_eq!(ttl, -1, "kept for ever");
}

#[tokio::test]
async fn a_not_before_mark_with_keep_for_lapses_by_itself() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mark = now_secs();
    store
        .revoke_subject(
            "alice",
            mark * 1000,
            Some(Duration::from_millis(800)),
            MARKERS,
        )
        .await
        .unwrap();
    let old = CheckRequest {
        issued_at: Some(mark - 5),
        ..req("alice", "t")
    };
    assert_eq!(
        store.check(&old.clone()).await.unwrap(),
        revoked(RevocationReason::LoggedOutEverywhere)
    );
    // A longer keep wins over the shorter one.
    store
        .revoke_subject(
            "carol",
            mark * 1000,
            Some(Duration::from_millis(300)),
            MARKERS,
        )
        .await
        .unwrap();
    store
        .revoke_subject("carol", mark * 1000, Some(Duration::from_secs(30)), MARKERS)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(store.check(&old).await.unwrap(), Verdict::Valid);
    let carol = CheckRequest {
        issued_at: Some(mark - 5),
        ..req("carol", "t")
    };
    assert_eq!(
        store.check(&carol).await.unwrap(),
        revoked(RevocationReason::LoggedOutEverywhere)
    );
}

#[tokio::test]
async fn the_ban_wins_over_the_deny_list_which_wins_over_the_not_before_mark() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let old = CheckRequest {
        issued_at: Some(now_secs() - 10),
        ..req("alice", "t")
    };
    store
        .revoke_subject("alice", now_secs() * 1000, None, MARKERS)
        .await
        .unwrap();
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.check(&old.clone()).await.unwrap(),
        revoked(RevocationReason::TokenRevoked)
    );
    store.ban("alice", None, MARKERS).await.unwrap();
    assert_eq!(
        store.check(&old).await.unwrap(),
        revoked(RevocationReason::Banned { until: None })
    );
}

// --- sessions ----------------------------------------------------------------

#[tokio::test]
async fn an_unknown_session_is_reported_as_ended_without_a_reason() {
    let server = RedisServer::start();
    let store = store(&server).await;
    assert_eq!(
        store.check(&sreq("alice", "never")).await.unwrap(),
        ended(SessionEnd::Unknown)
    );
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "never", 0, "a", "b"))
            .await
            .unwrap(),
        RotateOutcome::SessionEnded(SessionEnd::Unknown)
    );
    assert!(!store
        .end_session("alice", "never", SessionEnd::Kicked, MARKERS)
        .await
        .unwrap());
}

#[tokio::test]
async fn an_idle_session_times_out_and_activity_keeps_it_alive() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let new = NewSession {
        idle_timeout: Duration::from_millis(800),
        ..session("alice", "s1", "web")
    };
    store.create_session(new.clone()).await.unwrap();
    store
        .create_session(NewSession {
            session_id: "s2".into(),
            ..new
        })
        .await
        .unwrap();
    let active = CheckRequest {
        touch_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(800),
        ..sreq("alice", "s1")
    };
    // 1.6 s of use, twice the idle timeout: s1 stays, s2 (unused) lapses.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.check(&active.clone()).await.unwrap(), Verdict::Valid);
    }
    assert_eq!(
        store.check(&sreq("alice", "s2")).await.unwrap(),
        ended(SessionEnd::IdleTimeout)
    );
    let list = store.list_sessions("alice").await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].expires_at > now_millis() + 400, "{list:?}");
    assert!(list[0].last_seen_at > list[0].created_at);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        store.check(&active).await.unwrap(),
        ended(SessionEnd::IdleTimeout)
    );
    assert!(live_ids(&store, "alice").await.is_empty());
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_used() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(NewSession {
            lifetime: Duration::from_millis(1000),
            idle_timeout: Duration::from_secs(60),
            ..session("alice", "s1", "web")
        })
        .await
        .unwrap();
    let active = CheckRequest {
        touch_interval: Duration::ZERO,
        ..sreq("alice", "s1")
    };
    let list = store.list_sessions("alice").await.unwrap();
    assert!(list[0].expires_at <= list[0].created_at + 1000, "{list:?}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        assert_eq!(store.check(&active.clone()).await.unwrap(), Verdict::Valid);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.check(&active).await.unwrap(),
        ended(SessionEnd::Expired)
    );
}

#[tokio::test]
async fn a_short_marker_leaves_an_unknown_reason_behind() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    store
        .end_session(
            "alice",
            "s1",
            SessionEnd::LoggedOut,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        ended(SessionEnd::LoggedOut)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        ended(SessionEnd::Unknown)
    );
}

#[tokio::test]
async fn listing_shows_live_sessions_oldest_first_with_their_deadlines() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let before = now_millis();
    for (sid, device) in [("b", "web"), ("a", "mobile"), ("c", "cli")] {
        store
            .create_session(NewSession {
                idle_timeout: Duration::from_secs(30),
                ..session("alice", sid, device)
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store
        .end_session("alice", "c", SessionEnd::LoggedOut, MARKERS)
        .await
        .unwrap();
    let list = store.list_sessions("alice").await.unwrap();
    let ids: Vec<_> = list.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(list[0].device, "web");
    assert_eq!(list[1].device, "mobile");
    for s in &list {
        assert!(s.created_at + 1000 >= before && s.created_at <= now_millis() + 1000);
        assert_eq!(s.last_seen_at, s.created_at);
        assert_eq!(s.expires_at, s.created_at + 30_000);
    }
    assert!(store.list_sessions("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn log_out_everywhere_ends_every_session_with_its_reason() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    store
        .create_session(session("alice", "s2", "app"))
        .await
        .unwrap();
    store
        .revoke_subject("alice", (now_secs() - 3600) * 1000, None, MARKERS)
        .await
        .unwrap();
    assert!(live_ids(&store, "alice").await.is_empty());
    // A token newer than the mark still fails on its session.
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        ended(SessionEnd::LoggedOutEverywhere)
    );
    // A login after the mark works.
    store
        .create_session(session("alice", "s3", "web"))
        .await
        .unwrap();
    assert_eq!(
        store.check(&sreq("alice", "s3")).await.unwrap(),
        Verdict::Valid
    );
}

// --- refresh rotation ----------------------------------------------------------

#[tokio::test]
async fn refresh_rotation_advances_the_generation_and_a_reused_token_ends_the_session() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 0, "rt-s1-0", "h1"))
            .await
            .unwrap(),
        RotateOutcome::Rotated { generation: 1 }
    );
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 1, "h1", "h2"))
            .await
            .unwrap(),
        RotateOutcome::Rotated { generation: 2 }
    );
    // The generation-1 token again: theft.
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 1, "h1", "h9"))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        ended(SessionEnd::RefreshReuse)
    );
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 2, "h2", "h3"))
            .await
            .unwrap(),
        RotateOutcome::SessionEnded(SessionEnd::RefreshReuse)
    );
}

#[tokio::test]
async fn a_wrong_refresh_hash_or_a_future_generation_is_invalid_and_changes_nothing() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    for (generation, presented) in [(0, "wrong"), (5, "rt-s1-0"), (1, "rt-s1-0")] {
        assert_eq!(
            store
                .rotate_refresh(rotation("alice", "s1", generation, presented, "x"))
                .await
                .unwrap(),
            RotateOutcome::Invalid
        );
    }
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 0, "rt-s1-0", "h1"))
            .await
            .unwrap(),
        RotateOutcome::Rotated { generation: 1 }
    );
}

// --- encoding ----------------------------------------------------------------------

#[tokio::test]
async fn subjects_and_ids_with_special_characters_never_collide() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let weird = ["a:b", "a", "a}b", "{a}", "", "é ü", "100%", "a%3Ab", "x\ny"];
    for subject in weird {
        store
            .deny_token(subject, &format!("deny:{subject}"), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .create_session(session(subject, &format!("s:{subject}}}"), "web"))
            .await
            .unwrap();
    }
    for subject in weird {
        for other in weird {
            let token = format!("deny:{other}");
            let expected = if subject == other {
                revoked(RevocationReason::TokenRevoked)
            } else {
                Verdict::Valid
            };
            assert_eq!(
                store.check(&req(subject, &token)).await.unwrap(),
                expected,
                "subject {subject:?}, token {token:?}"
            );
        }
        assert_eq!(
            live_ids(&store, subject).await,
            [format!("s:{subject}}}")],
            "sessions of {subject:?}"
        );
    }
    // Every key carries the subject's hash tag and no raw `}` inside it.
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]);
    for key in &keys {
        let tag = key
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(tag, _)| tag);
        assert!(tag.is_some_and(|t| !t.is_empty()), "{key}");
    }
}

/// A session's check that the plain `EXISTS` cannot decide (the first one,
/// a revoked token, an ended session) runs the script with keys read back
/// from that command: ids that need encoding survive the round trip.
#[tokio::test]
async fn session_checks_decided_by_the_script_read_odd_ids_back_exactly() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let odd = ["a:b", "{a}", "", "é ü", "100%", "a%3Ab", "x\ny"];
    for (n, subject) in odd.into_iter().enumerate() {
        let sid = format!("s:{subject}}}");
        let token = format!("t%{n} {subject}");
        store
            .create_session(session(subject, &sid, "web"))
            .await
            .unwrap();
        let check = CheckRequest {
            session_id: Some(sid.clone().into()),
            ..req(subject, &token)
        };
        // The first check runs the script (no `fresh` yet), the second not.
        for round in 0..2 {
            assert_eq!(
                store.check(&check).await.unwrap(),
                Verdict::Valid,
                "{subject:?} round {round}"
            );
        }
        store
            .deny_token(subject, &token, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.check(&check).await.unwrap(),
            revoked(RevocationReason::TokenRevoked),
            "{subject:?}"
        );
        let other = CheckRequest {
            token_id: format!("{token}-2").into(),
            ..check.clone()
        };
        assert_eq!(store.check(&other).await.unwrap(), Verdict::Valid);
        store
            .end_session(subject, &sid, SessionEnd::Kicked, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.check(&other).await.unwrap(),
            ended(SessionEnd::Kicked),
            "{subject:?}"
        );
    }
}

// --- what only Redis has --------------------------------------------------------------

/// The commands clients sent while `run` ran, in order (MONITOR: commands
/// run inside scripts are left out; `INFO` marks the end).
async fn client_commands_during<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    run: F,
) -> Vec<String> {
    let monitor = server.monitor();
    run.await;
    let _ = server.commandstats(); // an INFO: everything before it is in
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sent = monitor.client_commands();
    while !sent.iter().any(|c| c == "info") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sent = monitor.client_commands();
    }
    sent.into_iter().take_while(|c| c != "info").collect()
}

/// Whether the session's `fresh` key exists (a check of its token then
/// needs no script).
fn has_fresh(server: &RedisServer, subject: &str, sid: &str) -> bool {
    let exists: i64 = server.cmd(&["EXISTS", &format!("jwt:{{{subject}}}:fresh:{sid}")]);
    exists == 1
}

/// Loads the check script (the first `EVALSHA` meets `NOSCRIPT`), with a
/// check of a session of its own whose touch is due.
async fn warm_up_check_script(store: &RedisStore) {
    store
        .create_session(session("warm-up", "w", "web"))
        .await
        .unwrap();
    let due = CheckRequest {
        touch_interval: Duration::ZERO,
        ..sreq("warm-up", "w")
    };
    assert_eq!(store.check(&due).await.unwrap(), Verdict::Valid);
}

#[tokio::test]
async fn each_check_is_one_command_and_a_due_touch_adds_one_script() {
    let server = RedisServer::start();
    let store = store(&server).await;
    warm_up_check_script(&store).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    let touch = Duration::from_millis(300);
    let check = || CheckRequest {
        touch_interval: touch,
        ..sreq("alice", "s1")
    };
    // The session's first check runs the script, which sets `fresh`.
    let sent = client_commands_during(&server, async {
        assert_eq!(store.check(&check()).await.unwrap(), Verdict::Valid);
    })
    .await;
    assert_eq!(sent, vec!["exists", "evalsha"]);
    let fresh: i64 = server.cmd(&["PTTL", "jwt:{alice}:fresh:s1"]);
    assert!(fresh > 0 && fresh <= 300, "fresh PTTL {fresh}");

    let sent = client_commands_during(&server, async {
        for i in 0..10 {
            let plain = store.check(&req("alice", &format!("t{i}"))).await.unwrap();
            assert_eq!(plain, Verdict::Valid);
            assert_eq!(store.check(&check()).await.unwrap(), Verdict::Valid);
        }
    })
    .await;
    assert_eq!(sent, ["mget", "exists"].repeat(10));

    // Once the touch is due, `fresh` is gone: the script slides the session.
    let before: String = server.cmd(&["HGET", "jwt:{alice}:session:s1", "last"]);
    tokio::time::sleep(touch + Duration::from_millis(50)).await;
    let sent = client_commands_during(&server, async {
        assert_eq!(store.check(&check()).await.unwrap(), Verdict::Valid);
        assert_eq!(store.check(&check()).await.unwrap(), Verdict::Valid);
    })
    .await;
    assert_eq!(sent, vec!["exists", "evalsha", "exists"]);
    let after: String = server.cmd(&["HGET", "jwt:{alice}:session:s1", "last"]);
    let ms = |v: &str| v.parse::<u64>().unwrap();
    assert!(ms(&after) >= ms(&before) + 300, "{before} -> {after}");
}

#[tokio::test]
async fn a_revoked_token_costs_one_command_or_with_a_session_one_more_script_for_the_reason() {
    let server = RedisServer::start();
    let store = store(&server).await;
    warm_up_check_script(&store).await;
    let hour = Duration::from_secs(3600);
    let check = |sid: &str| CheckRequest {
        touch_interval: hour,
        ..sreq("alice", sid)
    };
    for sid in ["s1", "s2"] {
        store
            .create_session(session("alice", sid, "web"))
            .await
            .unwrap();
        assert_eq!(store.check(&check(sid)).await.unwrap(), Verdict::Valid);
        assert!(has_fresh(&server, "alice", sid));
    }
    // Ending a session deletes its `fresh` key at once.
    store
        .end_session("alice", "s1", SessionEnd::Kicked, MARKERS)
        .await
        .unwrap();
    assert!(!has_fresh(&server, "alice", "s1"));
    store
        .deny_token("alice", "tok-s2", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .deny_token("bob", "t", Duration::from_secs(60))
        .await
        .unwrap();
    store.ban("carol", None, MARKERS).await.unwrap();
    let sent = client_commands_during(&server, async {
        assert_eq!(
            store.check(&req("bob", "t")).await.unwrap(),
            revoked(RevocationReason::TokenRevoked)
        );
        assert_eq!(
            store.check(&req("carol", "t")).await.unwrap(),
            revoked(RevocationReason::Banned { until: None })
        );
    })
    .await;
    assert_eq!(sent, vec!["mget"; 2], "tokens without a session");
    let sent = client_commands_during(&server, async {
        assert_eq!(
            store.check(&check("s1")).await.unwrap(),
            ended(SessionEnd::Kicked)
        );
        assert_eq!(
            store.check(&check("s2")).await.unwrap(),
            revoked(RevocationReason::TokenRevoked)
        );
    })
    .await;
    assert_eq!(sent, ["exists", "evalsha"].repeat(2), "session tokens");
    // A ban ends every session, `fresh` keys included.
    store.ban("alice", None, MARKERS).await.unwrap();
    let keys: Vec<String> = server.cmd(&["KEYS", "jwt:{alice}:fresh:*"]);
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_session_under_a_log_out_everywhere_never_gets_a_fresh_key() {
    // Log out everywhere with a not-before in the future, then log in again:
    // the new session's tokens issued up to that second stay revoked, which
    // only the script checks, so every check of them runs it.
    let server = RedisServer::start();
    let store = store(&server).await;
    warm_up_check_script(&store).await;
    let nbf = now_secs() + 100;
    store
        .revoke_subject("alice", nbf * 1000, None, MARKERS)
        .await
        .unwrap();
    store
        .create_session(session("alice", "s2", "web"))
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    let check = |iat: u64| CheckRequest {
        issued_at: Some(iat),
        touch_interval: hour,
        ..sreq("alice", "s2")
    };
    let sent = client_commands_during(&server, async {
        assert_eq!(
            store.check(&check(nbf)).await.unwrap(),
            revoked(RevocationReason::LoggedOutEverywhere)
        );
        assert_eq!(store.check(&check(nbf + 1)).await.unwrap(), Verdict::Valid);
        assert_eq!(store.check(&check(nbf + 1)).await.unwrap(), Verdict::Valid);
    })
    .await;
    assert_eq!(sent, ["exists", "evalsha"].repeat(3));
    assert!(!has_fresh(&server, "alice", "s2"));

    // An nbf before the session's creation second cannot touch its tokens.
    let past = now_secs() - 10;
    store
        .revoke_subject("bob", past * 1000, None, MARKERS)
        .await
        .unwrap();
    store
        .create_session(session("bob", "s3", "web"))
        .await
        .unwrap();
    let bob = || CheckRequest {
        touch_interval: hour,
        ..sreq("bob", "s3")
    };
    assert_eq!(store.check(&bob()).await.unwrap(), Verdict::Valid);
    let sent = client_commands_during(&server, async {
        assert_eq!(store.check(&bob()).await.unwrap(), Verdict::Valid);
    })
    .await;
    assert_eq!(sent, vec!["exists"]);
}

#[tokio::test]
async fn a_refresh_drops_the_fresh_key_so_the_next_check_reads_the_new_deadline() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    let check = CheckRequest {
        touch_interval: Duration::from_secs(3600),
        ..sreq("alice", "s1")
    };
    assert_eq!(store.check(&check).await.unwrap(), Verdict::Valid);
    assert!(has_fresh(&server, "alice", "s1"));
    let rotated = store
        .rotate_refresh(Rotation {
            subject: "alice".into(),
            session_id: "s1".into(),
            generation: 0,
            presented_hash: "rt-s1-0".into(),
            new_hash: "rt-s1-1".into(),
            idle_timeout: Duration::from_millis(200),
            markers: MARKERS,
        })
        .await
        .unwrap();
    assert!(
        matches!(rotated, RotateOutcome::Rotated { .. }),
        "{rotated:?}"
    );
    assert!(!has_fresh(&server, "alice", "s1"));
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .create_session(session("alice", "s0", "web"))
        .await
        .unwrap();
    let _: () = server.cmd(&["SCRIPT", "FLUSH"]);
    let loads = server
        .commandstats()
        .get("script|load")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        store.check(&req("alice", "t")).await.unwrap(),
        revoked(RevocationReason::TokenRevoked)
    );
    // A check whose session touch is due runs the check script.
    let due = CheckRequest {
        touch_interval: Duration::ZERO,
        ..sreq("alice", "s0")
    };
    assert_eq!(store.check(&due).await.unwrap(), Verdict::Valid);
    store
        .create_session(session("alice", "s", "web"))
        .await
        .unwrap();
    let after = server
        .commandstats()
        .get("script|load")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        after - loads,
        2,
        "check and create_session each reloaded once"
    );
}

#[tokio::test]
async fn a_deny_entry_survives_a_restart_with_aof_and_the_store_reconnects_by_itself() {
    let mut server = RedisServer::start_with_aof();
    let store = RedisStore::builder(&server.url())
        .startup_checks(false)
        .pool_size(2)
        .connection_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    store.check(&req("alice", "t")).await.unwrap();

    server.kill();
    assert!(matches!(
        store.check(&req("alice", "t")).await,
        Err(StoreError::Unavailable(_))
    ));
    server.restart();

    let start = Instant::now();
    let mut failures = 0;
    let verdict = loop {
        match store.check(&req("alice", "t")).await {
            Ok(verdict) => break verdict,
            Err(StoreError::Unavailable(_)) if start.elapsed() < Duration::from_secs(5) => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("no recovery after {failures} failures: {err:?}"),
        }
    };
    assert_eq!(verdict, revoked(RevocationReason::TokenRevoked));
    assert!(failures <= 1, "{failures} failed checks after the restart");
    assert_eq!(
        store.check(&req("alice", "other")).await.unwrap(),
        Verdict::Valid
    );
    // Every pooled connection was replaced: many checks in a row all work.
    for _ in 0..10 {
        store.check(&req("bob", "t")).await.unwrap();
    }
}

#[tokio::test]
async fn revoking_writes_publish_an_event_on_the_events_channel() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let client = redis::Client::open(format!("{}/?protocol=resp3", server.url())).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut sub = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    assert_eq!(store.events_channel(), "jwt:events");
    sub.subscribe(store.events_channel()).await.unwrap();

    let mut next = async || loop {
        let info = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("an event within 2 s")
            .expect("channel open");
        if info.kind == PushKind::Message {
            match &info.data[1] {
                Value::BulkString(b) => return String::from_utf8(b.clone()).unwrap(),
                other => panic!("{other:?}"),
            }
        }
    };

    store
        .deny_token("a:b", "t", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(next().await, "deny\na:b");
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    store
        .end_session("alice", "s1", SessionEnd::Kicked, MARKERS)
        .await
        .unwrap();
    assert_eq!(next().await, "session\nalice");
    store
        .revoke_subject("alice", now_secs() * 1000, None, MARKERS)
        .await
        .unwrap();
    assert_eq!(next().await, "revoke\nalice");
    store.ban("alice", None, MARKERS).await.unwrap();
    assert_eq!(next().await, "ban\nalice");
    store.unban("alice").await.unwrap();
    assert_eq!(next().await, "unban\nalice");
}

fn connections_received(server: &RedisServer) -> u64 {
    let info: String = server.cmd(&["INFO", "stats"]);
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received in INFO stats")
}

/// The store bounds a check by its deadline itself (so the layer arms no
/// timer): a stalled server gives `Timeout` at the deadline, and a slow
/// answer is not taken for a broken connection, which is kept.
#[tokio::test]
async fn a_check_keeps_to_its_deadline_and_keeps_its_connection() {
    let server = RedisServer::start();
    let store = store(&server).await;
    // That the layer leaves the bound to `RedisStore` is held by the unit
    // test `store::hints::tests::the_crates_stores_bound_their_own_checks`.
    let deadline = Duration::from_millis(100);
    let check = CheckRequest {
        deadline,
        ..sreq("alice", "s1")
    };
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    assert_eq!(store.check(&check).await.unwrap(), Verdict::Valid);
    let before = connections_received(&server);
    server.pause(700);
    let start = Instant::now();
    let result = store.check(&check).await;
    let took = start.elapsed();
    assert!(
        matches!(result, Err(StoreError::Timeout(d)) if d == deadline),
        "{result:?}"
    );
    assert!(
        took >= deadline && took < Duration::from_millis(500),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(store.check(&check).await.unwrap(), Verdict::Valid);
    // `before` and the pause opened a connection each, this INFO one more:
    // none of the store's.
    assert_eq!(connections_received(&server), before + 2);
}

#[tokio::test]
async fn a_paused_server_makes_calls_fail_with_unavailable_and_then_recover() {
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url())
        .startup_checks(false)
        .response_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    store.check(&req("alice", "t")).await.unwrap();
    server.pause(1000);
    let start = Instant::now();
    let result = store.check(&req("alice", "t")).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(900));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let start = Instant::now();
    loop {
        match store.check(&req("alice", "t")).await {
            Ok(verdict) => break assert_eq!(verdict, Verdict::Valid),
            Err(_) if start.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("no recovery: {err:?}"),
        }
    }
}

#[tokio::test]
async fn connecting_where_no_redis_listens_fails_with_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let result = RedisStore::builder(&format!("redis://127.0.0.1:{port}"))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_prefix_with_braces_is_rejected_and_another_prefix_is_used_for_every_key() {
    let server = RedisServer::start();
    for bad in ["a{b", "a}b"] {
        let result = RedisStore::builder(&server.url())
            .prefix(bad)
            .startup_checks(false)
            .build()
            .await;
        assert!(result.is_err(), "{bad}");
    }
    let store = RedisStore::builder(&server.url())
        .prefix("auth:v2")
        .startup_checks(false)
        .build()
        .await
        .unwrap();
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .create_session(session("alice", "s", "web"))
        .await
        .unwrap();
    store
        .put_one_time("reset", "h", "alice", Duration::from_secs(60))
        .await
        .unwrap();
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]);
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("auth:v2:")), "{keys:?}");
    assert_eq!(store.events_channel(), "auth:v2:events");
}

#[tokio::test]
async fn an_acl_user_and_a_database_number_from_the_url_are_used_and_the_password_never_shown() {
    let server = RedisServer::start();
    let _: () = server.cmd(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        ">s3cr3t-pw",
        "~*",
        "&*",
        "+@all",
    ]);
    let url = format!("redis://app:s3cr3t-pw@127.0.0.1:{}/3", server.port());
    let store = RedisStore::builder(&url)
        .startup_checks(false)
        .build()
        .await
        .unwrap();
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    let keyspace: String = server.cmd(&["INFO", "keyspace"]);
    assert!(keyspace.contains("db3:keys=1"), "{keyspace}");
    let shown = format!("{store:?}");
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(shown.contains("app"), "{shown}");

    let wrong = format!("redis://app:wrong@127.0.0.1:{}/3", server.port());
    let result = RedisStore::builder(&wrong)
        .connection_timeout(Duration::from_millis(300))
        .build()
        .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn startup_findings_report_eviction_and_missing_persistence() {
    let server = RedisServer::start();
    let store = store(&server).await;
    assert_eq!(
        store.startup_findings().await,
        [StartupFinding::NoPersistence]
    );
    let _: () = server.cmd(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]);
    let _: () = server.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    let findings = store.log_startup_findings().await;
    assert_eq!(
        findings,
        [StartupFinding::EvictionPolicy {
            policy: "volatile-lru".into()
        }]
    );
    assert!(findings[0].message().contains("noeviction"));

    let aof = RedisServer::start_with_aof();
    let with_aof = RedisStore::builder(&aof.url())
        .startup_checks(false)
        .build()
        .await
        .unwrap();
    assert!(with_aof.startup_findings().await.is_empty());
}

#[tokio::test]
async fn a_store_over_an_existing_bb8_pool_works_the_same() {
    let server = RedisServer::start();
    let manager = bb8_redis::RedisConnectionManager::new(server.url()).unwrap();
    let pool = bb8::Pool::builder().build(manager).await.unwrap();
    let store = RedisStore::from_pool(pool);
    store
        .deny_token("alice", "t", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.check(&req("alice", "t")).await.unwrap(),
        revoked(RevocationReason::TokenRevoked)
    );
    store
        .create_session(session("alice", "s", "web"))
        .await
        .unwrap();
    assert_eq!(
        store.check(&sreq("alice", "s")).await.unwrap(),
        Verdict::Valid
    );
}

// --- issue 12: store bugs ------------------------------------------------------

/// Every key of `subject` (default prefix).
fn subject_keys(server: &RedisServer, subject: &str) -> Vec<String> {
    let mut keys: Vec<String> = server.cmd(&["KEYS", &format!("jwt:{{{subject}}}:*")]);
    keys.sort();
    keys
}

/// Issue 12, bug 7: the subject's `sessions` index always has a TTL at least
/// as long as its longest session's lifetime, from the first login on.
#[tokio::test]
async fn the_session_index_always_has_a_ttl_covering_its_sessions() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let index = "jwt:{alice}:sessions";
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    let pttl: i64 = server.cmd(&["PTTL", index]);
    // Lifetime one hour, markers one minute.
    assert!((3_600_000..=3_660_000).contains(&pttl), "PTTL {pttl}");
    // A longer session raises it; a shorter one never lowers it.
    store
        .create_session(NewSession {
            lifetime: Duration::from_secs(7200),
            ..session("alice", "s2", "web")
        })
        .await
        .unwrap();
    let pttl: i64 = server.cmd(&["PTTL", index]);
    assert!(pttl >= 7_200_000, "PTTL {pttl}");
    store
        .create_session(NewSession {
            lifetime: Duration::from_secs(10),
            ..session("alice", "s3", "web")
        })
        .await
        .unwrap();
    let pttl: i64 = server.cmd(&["PTTL", index]);
    assert!(pttl >= 7_200_000 - 5_000, "PTTL {pttl}");
    // Every other key of the subject expires by itself too.
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        Verdict::Valid
    );
    store
        .end_session("alice", "s3", SessionEnd::Kicked, MARKERS)
        .await
        .unwrap();
    for key in subject_keys(&server, "alice") {
        let pttl: i64 = server.cmd(&["PTTL", &key]);
        assert!(pttl > 0, "{key} has PTTL {pttl}");
    }
}

/// Issue 12, bug 9: one account that logs in again and again (device limit
/// 2) keeps a bounded number of keys (two sessions with their `fresh` keys,
/// the index, one capped marker set), not one marker key per evicted session.
#[tokio::test]
async fn evicted_sessions_leave_a_bounded_number_of_keys_per_subject() {
    let server = RedisServer::start();
    let store = store(&server).await;
    // Shaped like the crate's own session ids (22 characters).
    let id = |i: usize| format!("{i:0>22}");
    for i in 0..500 {
        let outcome = store
            .create_session(NewSession {
                max_sessions: 2,
                ..session("alice", &id(i), "web")
            })
            .await
            .unwrap();
        assert!(matches!(outcome, CreateOutcome::Created { .. }));
        // Checks set `fresh` keys and mark nothing: the worst case.
        assert_eq!(
            store.check(&sreq("alice", &id(i))).await.unwrap(),
            Verdict::Valid
        );
    }
    let keys = subject_keys(&server, "alice");
    assert!(keys.len() <= 6, "{} keys: {keys:?}", keys.len());
    let marker_keys = keys.iter().filter(|k| k.contains("ended")).count();
    assert_eq!(marker_keys, 1, "{keys:?}");
    // The first sessions' markers were dropped: refused all the same.
    assert_eq!(
        store.check(&sreq("alice", &id(0))).await.unwrap(),
        ended(SessionEnd::Unknown)
    );
    assert_eq!(
        store.check(&sreq("alice", &id(497))).await.unwrap(),
        ended(SessionEnd::Replaced)
    );
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", &id(0), 0, "x", "y"))
            .await
            .unwrap(),
        RotateOutcome::SessionEnded(SessionEnd::Unknown)
    );
    let usage: i64 = server.cmd(&["MEMORY", "USAGE", "jwt:{alice}:ended"]);
    println!("ended markers of one subject: {usage} bytes (MEMORY USAGE)");
    assert!(usage < 8 * 1024, "{usage} bytes");
}

/// Issue 12, bug 4: an older generation with a secret that was never issued
/// is invalid and changes nothing; with the one that was, the session ends.
#[tokio::test]
async fn an_old_generation_ends_the_session_only_with_the_hash_it_was_issued_with() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .create_session(session("alice", "s1", "web"))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 0, "rt-s1-0", "h1"))
            .await
            .unwrap(),
        RotateOutcome::Rotated { generation: 1 }
    );
    for (generation, presented) in [
        (0, "forged"),
        (0, "h1"),
        (0, ""),
        (u64::MAX, "h1"),
        (1 << 53, "h1"),
    ] {
        assert_eq!(
            store
                .rotate_refresh(rotation("alice", "s1", generation, presented, "x"))
                .await
                .unwrap(),
            RotateOutcome::Invalid,
            "generation {generation}, {presented}"
        );
    }
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        Verdict::Valid
    );
    assert_eq!(
        store
            .rotate_refresh(rotation("alice", "s1", 0, "rt-s1-0", "x"))
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert_eq!(
        store.check(&sreq("alice", "s1")).await.unwrap(),
        ended(SessionEnd::RefreshReuse)
    );
}

/// Issue 12, bug 6: a ban of `Duration::MAX` is capped at 100 years and
/// reported with that end.
#[tokio::test]
async fn a_ban_of_duration_max_lasts_a_hundred_years() {
    let server = RedisServer::start();
    let store = store(&server).await;
    store
        .ban("alice", Some(Duration::MAX), MARKERS)
        .await
        .unwrap();
    let hundred_years = 100 * 365 * 24 * 3600;
    let Verdict::Revoked(RevocationReason::Banned { until: Some(until) }) =
        store.check(&req("alice", "t")).await.unwrap()
    else {
        panic!("not banned");
    };
    assert!(until.abs_diff(now_secs() + hundred_years) <= 2, "{until}");
    let pttl: i64 = server.cmd(&["PTTL", "jwt:{alice}:ban"]);
    assert!(pttl > (hundred_years as i64 - 10) * 1000, "PTTL {pttl}");
}

#[tokio::test]
async fn a_not_before_mark_kept_in_seconds_by_an_older_version_still_holds() {
    // Marks used to be unix seconds; they are milliseconds now. An old mark
    // must keep revoking its whole second, and a new one must never be
    // lowered by it.
    let server = RedisServer::start();
    let store = store(&server).await;
    // A second ahead, so that the session below is created within it.
    let mark = now_secs() + 1;
    let _: () = server.cmd(&["SET", "jwt:{dave}:nbf", &mark.to_string()]);
    let at = |iat: u64| CheckRequest {
        issued_at: Some(iat),
        ..req("dave", "t")
    };
    let everywhere = revoked(RevocationReason::LoggedOutEverywhere);
    assert_eq!(store.check(&at(mark)).await.unwrap(), everywhere);
    assert_eq!(store.check(&at(mark + 1)).await.unwrap(), Verdict::Valid);
    // A session created within that second is refused too (the old mark
    // counts to the last millisecond of its second).
    store
        .create_session(session("dave", "s1", "web"))
        .await
        .unwrap();
    let session_check = CheckRequest {
        issued_at: Some(mark),
        ..sreq("dave", "s1")
    };
    assert_eq!(store.check(&session_check).await.unwrap(), everywhere);
    // A new mark an hour earlier does not lower the old one.
    store
        .revoke_subject("dave", (mark - 3600) * 1000, None, MARKERS)
        .await
        .unwrap();
    assert_eq!(store.check(&at(mark)).await.unwrap(), everywhere);
    let kept: String = server.cmd(&["GET", "jwt:{dave}:nbf"]);
    assert_eq!(kept, format!("{mark}999"));
}
