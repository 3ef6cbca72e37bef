//! The JWKS metrics of a remote key set (features `remote-keys` and
//! `metrics`), through the process's global Prometheus recorder: fetches by
//! result, the number of keys, the time of the last success.
#![cfg(all(feature = "remote-keys", feature = "metrics"))]

mod common;

use std::time::Duration;

use common::jwks_server::{JwksServer, Mode};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use tower_jwt_auth::RemoteKeys;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn fetches_keys_and_last_success_are_recorded_per_key_set() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let key = |kid: &str| json!({ "kty": "oct", "kid": kid, "alg": "HS256", "k": "c2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMtb3ItbW9yZSEh" });
    let server = JwksServer::start(json!({ "keys": [key("a"), key("b")] }).to_string()).await;
    let url = server.jwks_url();
    let keys = RemoteKeys::jwks(&url)
        .allow_symmetric(true)
        .allow_http(true)
        .cooldown(Duration::from_millis(100))
        .timeout(Duration::from_millis(500))
        .retry(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    keys.prefetch().await.unwrap();
    server.set_mode(Mode::Status(500));
    // An unknown kid: a second fetch, which fails (the known keys stay).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = keys.get(Some("c")).await;

    let text = handle.render();
    let labels = |result: &str| {
        format!("jwt_auth_jwks_fetches_total{{issuer=\"{url}\",result=\"{result}\"}}")
    };
    assert_eq!(sample(&text, &labels("ok")), Some(1.0), "{text}");
    assert_eq!(sample(&text, &labels("error")), Some(1.0), "{text}");
    let keys_series = format!("jwt_auth_jwks_keys{{issuer=\"{url}\"}}");
    assert_eq!(sample(&text, &keys_series), Some(2.0), "{text}");
    let last = format!("jwt_auth_jwks_last_success_timestamp_seconds{{issuer=\"{url}\"}}");
    let last = sample(&text, &last).expect("last success");
    assert!(
        (started - 1.0..started + 5.0).contains(&last),
        "{last} vs {started}"
    );
}
