//! `GET /metrics`: the gateway's Prometheus metrics ([`crate::metrics`]).
//!
//! Served without the API token, like `/health` and `/ready`: scrapers and probes are
//! infrastructure, and the metrics carry only counts (no call ids, numbers or tokens).
//! Keep `--listen` on loopback or behind a firewall when even the counts are private.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::CONTENT_TYPE;

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics",
    description = "The gateway's metrics in OpenMetrics text (Prometheus scrapes it natively): \
        calls started, answered, ended by reason and refused, active calls, call durations, \
        backend failures, reconnects and failovers, media frames and added latency per \
        direction, the ARI connection and the event WebSocket clients. No token needed.",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
    )
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.calls.metrics().render();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        text,
    )
        .into_response()
}
