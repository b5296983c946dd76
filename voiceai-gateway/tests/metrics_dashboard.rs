//! `deploy/grafana-dashboard.json` against a real `GET /metrics` (the API in process):
//! every metric name its PromQL uses is one `/metrics` exposes, and every metric family
//! `/metrics` exposes is charted by some panel (or listed in `NOT_CHARTED` with the
//! reason); every name `deploy/prometheus-alerts.yml` uses is exposed too. `metrics_lab`
//! checks the same against a gateway on the lab.

mod api_support;
mod metrics_support;

use std::collections::BTreeSet;

use api_support::Server;
use hyper::{Method, StatusCode};
use metrics_support::{DASHBOARD, check_dashboard, metric_names, sample};
use serde_json::Value;

#[tokio::test]
async fn the_dashboard_charts_exactly_what_metrics_exposes() {
    let server = Server::start().await;
    let metrics = server.calls.metrics();
    // What the gateway does when it starts (the ARI families have a series per server).
    metrics.ari_state("127.0.0.1:8088", false, false);
    let (entry, _commands) = server.call("CA1");
    let reply = server.send(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK, "/metrics needs no token");
    let content_type = reply.headers.get("content-type").map(|v| v.to_str());
    assert!(
        matches!(content_type, Some(Ok(v)) if v.starts_with("application/openmetrics-text")),
        "{content_type:?}"
    );
    let text = reply.text;
    assert_eq!(
        sample(&text, "voiceai_active_calls", ""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "voiceai_calls_started_total",
            "direction=\"inbound\""
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "voiceai_ari_connected", "server=\"127.0.0.1:8088\""),
        Some(0.0),
        "{text}"
    );
    let families = check_dashboard(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    assert!(families >= 16, "{families} families: {text}");

    entry.finish("caller_hangup");
    let text = server
        .send(Method::GET, "/metrics", &[], Vec::new())
        .await
        .text;
    assert_eq!(
        sample(&text, "voiceai_active_calls", ""),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "voiceai_calls_ended_total",
            "reason=\"caller_hangup\""
        ),
        Some(1.0),
        "{text}"
    );

    // Every panel queries the dashboard's data source variable; ids are unique.
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!metric_names(expr).is_empty(), "{panel}");
        }
    }
}
