//! Metrics and audit events of the library itself, each test with a
//! Prometheus recorder of its own (`metrics::with_local_recorder`): what a
//! layer without `.metrics()` records (nothing), fail-open counts, the
//! near-cache's hits and misses, a refused login, and a full audit queue.
#![cfg(all(feature = "metrics", feature = "redis"))]

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::layer::{call, issue, near_cache_store};
use common::redis_server::RedisServer;
use http::StatusCode;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::json;
use tower_jwt_auth::{
    AuditEvent, FailureMode, JwtAuth, Keys, LimitPolicy, MemoryStore, RedisStore, SessionError,
    SessionEvent, AUDIT_QUEUE_CAPACITY,
};

const SECRET: &[u8] = b"observability-secret-0123456789-abcdefgh";

fn layer() -> JwtAuth<serde_json::Value> {
    JwtAuth::new(Keys::hs256(SECRET).unwrap())
}

/// A recorder of this test's own, and the layer's series registered with it.
fn recorded(
    build: impl FnOnce() -> JwtAuth<serde_json::Value>,
) -> (
    JwtAuth<serde_json::Value>,
    PrometheusRecorder,
    PrometheusHandle,
) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let auth = metrics::with_local_recorder(&recorder, || build().metrics());
    (auth, recorder, handle)
}

fn samples(handle: &PrometheusHandle) -> BTreeMap<String, f64> {
    handle
        .render()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

#[tokio::test]
async fn a_layer_without_metrics_records_nothing() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let auth = metrics::with_local_recorder(&recorder, || layer().store(MemoryStore::new()));
    let token = issue(&auth, "alice");
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    assert!(
        !handle.render().contains("jwt_auth_"),
        "{}",
        handle.render()
    );
}

#[tokio::test]
async fn a_dead_store_with_fail_open_counts_failed_open_and_opens_the_breaker() {
    let mut server = RedisServer::start();
    let store = near_cache_store(RedisStore::builder(&server.url()), false).await;
    let (auth, _recorder, handle) = recorded(|| {
        layer()
            .store(store)
            .store_deadline(Duration::from_millis(200))
            .failure_mode(FailureMode::Open)
            .circuit_breaker(2, Duration::from_secs(60))
    });
    let token = issue(&auth, "alice");
    assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    server.kill();
    for _ in 0..5 {
        assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    }
    let s = samples(&handle);
    let requests = |outcome: &str, reason: &str| {
        value(
            &s,
            &format!("jwt_auth_requests_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(requests("accepted", "verified"), 1.0);
    assert_eq!(requests("failed_open", "store_unavailable"), 5.0);
    assert_eq!(requests("unavailable", "store_unavailable"), 0.0);
    assert_eq!(value(&s, "jwt_auth_circuit_breaker_open"), 1.0);
    // Two checks failed (then the breaker opened), one succeeded.
    assert_eq!(
        value(&s, "jwt_auth_store_check_duration_seconds_count"),
        3.0
    );
    assert_eq!(auth.stats().failed_open, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_hits_and_misses_are_counted() {
    let server = RedisServer::start();
    let store = near_cache_store(RedisStore::builder(&server.url()), true).await;
    let (auth, _recorder, handle) = recorded(|| layer().store(store));
    let token = issue(&auth, "alice");
    for _ in 0..11 {
        assert_eq!(call(&auth, &token).await.0, StatusCode::OK);
    }
    let s = samples(&handle);
    assert_eq!(
        value(&s, "jwt_auth_near_cache_requests_total{result=\"miss\"}"),
        1.0
    );
    assert_eq!(
        value(&s, "jwt_auth_near_cache_requests_total{result=\"hit\"}"),
        10.0
    );
    assert_eq!(
        value(
            &s,
            "jwt_auth_requests_total{outcome=\"accepted\",reason=\"verified\"}"
        ),
        11.0
    );
    assert_eq!(
        value(&s, "jwt_auth_store_check_duration_seconds_count"),
        1.0
    );
}

#[tokio::test]
async fn a_refused_login_is_counted_and_audited() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (auth, _recorder, handle) = recorded(|| {
        layer()
            .store(MemoryStore::new())
            .max_sessions(1)
            .session_limit_policy(LimitPolicy::RejectNew)
            .audit(move |e: AuditEvent| {
                let _ = tx.lock().unwrap().send(e);
            })
    });
    let sessions = auth.sessions();
    let login = sessions.login("alice", "web", &json!({})).await.unwrap();
    let refused = sessions.login("alice", "phone", &json!({})).await;
    assert!(matches!(refused, Err(SessionError::LimitReached)));

    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first.event, SessionEvent::Login);
    assert_eq!(first.session_id.as_deref(), Some(login.session_id.as_str()));
    assert_eq!(first.device.as_deref(), Some("web"));
    let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(second.event, SessionEvent::RejectedLogin);
    assert_eq!(second.subject, "alice");
    assert_eq!(second.device.as_deref(), Some("phone"));
    assert_eq!(second.session_id, None);

    let s = samples(&handle);
    let events = |event: &str| {
        value(
            &s,
            &format!("jwt_auth_session_events_total{{event=\"{event}\"}}"),
        )
    };
    assert_eq!(events("login"), 1.0);
    assert_eq!(events("rejected_login"), 1.0);
    assert_eq!(events("logout"), 0.0);
}

#[tokio::test]
async fn a_full_audit_queue_drops_events_and_counts_them_without_blocking() {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let (auth, _recorder, handle) = recorded(|| {
        layer()
            .store(MemoryStore::new())
            .audit(move |_: AuditEvent| {
                // The sink is stuck until the test lets it go.
                let _ = gate.lock().unwrap().recv();
            })
    });
    let sessions = auth.sessions();
    let total = AUDIT_QUEUE_CAPACITY + 100;
    for i in 0..total {
        sessions
            .ban(&format!("user-{i}"), Some(Duration::from_secs(60)))
            .await
            .unwrap();
    }
    // The sink holds one event, the queue the next CAPACITY; the rest are
    // dropped (one fewer if the sink had not taken its first yet).
    let dropped = auth.audit_dropped();
    let most = (total - AUDIT_QUEUE_CAPACITY) as u64;
    assert!(
        (most - 1..=most).contains(&dropped),
        "{dropped} dropped of {total}"
    );
    let s = samples(&handle);
    assert_eq!(value(&s, "jwt_auth_audit_dropped_total"), dropped as f64);
    // Every event is counted, delivered or not.
    assert_eq!(
        value(&s, "jwt_auth_session_events_total{event=\"banned\"}"),
        total as f64
    );
    drop(release);
}

/// The fields a span was given, as they were recorded.
#[derive(Clone, Default)]
struct Fields(std::sync::Arc<Mutex<BTreeMap<String, String>>>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .lock()
            .unwrap()
            .insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut self.clone());
    }
}

/// One request with `token` inside a span that declares the layer's fields:
/// the fields recorded on it.
async fn span_fields_of(
    auth: &JwtAuth<serde_json::Value>,
    token: &str,
) -> BTreeMap<String, String> {
    use tower_jwt_auth::trace::{OUTCOME, REASON, SUBJECT};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let fields = Fields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let span = tracing::info_span!(
        "request",
        { OUTCOME } = tracing::field::Empty,
        { REASON } = tracing::field::Empty,
        { SUBJECT } = tracing::field::Empty,
    );
    call(auth, token).instrument(span).await;
    let recorded = fields.0.lock().unwrap().clone();
    recorded
}

#[tokio::test]
async fn span_fields_carry_the_outcome_reason_and_verified_subject() {
    let auth = layer().store(MemoryStore::new()).span_fields(true);
    let token = issue(&auth, "alice");
    let fields = span_fields_of(&auth, &token).await;
    assert_eq!(
        fields.get("auth.outcome").map(String::as_str),
        Some("accepted")
    );
    assert_eq!(
        fields.get("auth.reason").map(String::as_str),
        Some("verified")
    );
    assert_eq!(fields.get("enduser.id").map(String::as_str), Some("alice"));

    auth.revoke(&token).await.unwrap();
    let fields = span_fields_of(&auth, &token).await;
    assert_eq!(
        fields.get("auth.outcome").map(String::as_str),
        Some("rejected")
    );
    assert_eq!(
        fields.get("auth.reason").map(String::as_str),
        Some("token_revoked")
    );

    let fields = span_fields_of(&auth, "not-a-jwt").await;
    assert_eq!(
        fields.get("auth.reason").map(String::as_str),
        Some("malformed")
    );
    assert_eq!(
        fields.get("enduser.id"),
        None,
        "an unverified subject was recorded"
    );

    // Off by default: nothing recorded.
    let quiet = layer().store(MemoryStore::new());
    let token = issue(&quiet, "alice");
    assert!(span_fields_of(&quiet, &token).await.is_empty());
}

/// The events on the audit target, each as its fields.
#[derive(Clone, Default)]
struct AuditEvents(std::sync::Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "tower_jwt_auth::audit" {
            return;
        }
        let fields = Fields::default();
        event.record(&mut fields.clone());
        let fields = fields.0.lock().unwrap().clone();
        self.0.lock().unwrap().push(fields);
    }
}

#[tokio::test]
async fn by_default_audit_events_are_tracing_events_on_their_target_without_secrets() {
    use tracing_subscriber::layer::SubscriberExt;

    let events = AuditEvents::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
    let auth = layer()
        .issuer("https://id.example")
        .store(MemoryStore::new());
    let sessions = auth.sessions();
    let login = sessions.login("alice", "web", &json!({})).await.unwrap();
    let rotated = sessions.refresh(&login.refresh_token).await.unwrap();
    let reused = sessions.refresh(&login.refresh_token).await;
    assert!(matches!(reused, Err(SessionError::RefreshReused)));

    let events = events.0.lock().unwrap().clone();
    let codes: Vec<_> = events.iter().map(|e| e["event"].as_str()).collect();
    assert_eq!(codes, ["login", "refresh", "refresh_reuse"]);
    for event in &events {
        assert_eq!(event["sub"], "alice");
        assert_eq!(event["sid"], login.session_id);
        assert_eq!(event["iss"], "https://id.example");
        for secret in [
            &login.access_token,
            &login.refresh_token,
            &rotated.refresh_token,
        ] {
            let secret_part = secret.rsplit('.').next().unwrap();
            assert!(
                event.values().all(|v| !v.contains(secret_part)),
                "{event:?} shows a secret"
            );
        }
    }
    assert_eq!(events[0]["device"], "web");
}
