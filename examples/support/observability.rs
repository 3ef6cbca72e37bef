//! The quickstart's observability: `GET /metrics` in the Prometheus text
//! format (unless `METRICS=0`), and with `AUDIT_LOG=1` every audit event as
//! one JSON object per line on stdout.

use std::io::Write;

use axum::Router;
#[cfg(feature = "metrics")]
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_jwt_auth::{AuditEvent, JwtAuth};

/// What renders `GET /metrics`: a Prometheus recorder's handle.
#[cfg(feature = "metrics")]
pub(crate) type Scrape = PrometheusHandle;
/// Without the `metrics` feature there is nothing to scrape.
#[cfg(not(feature = "metrics"))]
pub(crate) type Scrape = ();

/// The store-check latency buckets, in seconds: 50 µs to 250 ms (the
/// default deadline is 100 ms).
#[cfg(feature = "metrics")]
const STORE_CHECK_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// Install the Prometheus recorder, before the layer is built (it registers
/// its series with the recorder installed then). `None` with `METRICS=0`.
pub(crate) fn install() -> Option<Scrape> {
    if matches!(
        std::env::var("METRICS").as_deref(),
        Ok("0" | "false" | "no")
    ) {
        return None;
    }
    #[cfg(feature = "metrics")]
    {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(tower_jwt_auth::metrics::STORE_CHECK_DURATION_SECONDS.into()),
                STORE_CHECK_BUCKETS,
            )
            .and_then(|b| b.install_recorder());
        match handle {
            Ok(handle) => {
                // Histogram samples wait in the recorder until drained:
                // drain them even when nobody scrapes.
                let upkeep = handle.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
                Some(handle)
            }
            Err(err) => {
                eprintln!("metrics off: {err}");
                None
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    None
}

/// The layer with metrics (when the recorder is installed) and, with
/// `AUDIT_LOG=1`, audit events as JSON lines on stdout.
pub(crate) fn instrument<C>(mut auth: JwtAuth<C>, scrape: &Option<Scrape>) -> JwtAuth<C> {
    #[cfg(feature = "metrics")]
    if scrape.is_some() {
        auth = auth.metrics();
    }
    #[cfg(not(feature = "metrics"))]
    let _ = scrape;
    if matches!(
        std::env::var("AUDIT_LOG").as_deref(),
        Ok("1" | "true" | "yes")
    ) {
        auth = auth.audit(|event: AuditEvent| {
            let Ok(line) = serde_json::to_string(&event) else {
                return;
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
    }
    auth
}

/// `GET /metrics`, public, when metrics are on.
pub(crate) fn routes(scrape: Option<Scrape>) -> Router {
    let Some(scrape) = scrape else {
        return Router::new();
    };
    #[cfg(feature = "metrics")]
    return Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = scrape.render();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    body,
                )
            }
        }),
    );
    #[cfg(not(feature = "metrics"))]
    {
        let () = scrape;
        Router::new()
    }
}
