//! The gateway's HTTP side: the REST API (seed-compatible shapes), the Twilio-compatible
//! call-control endpoint bots use to end or transfer calls, and the live event WebSockets
//! `/ws/frontend` and `/ws/monitor`.
//!
//! Routes:
//! - `GET /` (the live monitor page), `GET /monitor.js`, `GET /monitor.css`,
//!   `GET /health`, `GET /ready`, `GET /metrics` (Prometheus), `GET /openapi.json` (no auth; the page shows nothing without the token);
//! - `GET /api/calls/active`, `GET /api/calls/{id}`, `POST /api/calls/originate`,
//!   `POST /api/calls/{id}/disconnect`, `POST /api/calls/{id}/transfer`,
//!   `GET /api/asterisk/status` (bearer token);
//! - `GET /ws/frontend`, `GET /ws/monitor` (bearer token as a header or `token` query
//!   parameter);
//! - `POST|GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` (Twilio Basic auth).
//!
//! Answers are JSON: `{"status":"success",...}` or `{"status":"error","message":...}` with
//! 400 (bad input), 401, 404 (unknown call or route), 405, 409 (wrong state), 413 (body too
//! large), 415 (not JSON), 502 (Asterisk refused) or 503 (no ARI). The Twilio endpoint
//! answers in Twilio's shapes instead.

mod auth;
mod calls;
mod error;
mod metrics;
mod monitor_page;
pub mod openapi;
mod twilio;
pub mod validate;
mod ws;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::calls::Calls;

pub use error::{ApiError, ErrorReply, ReplyStatus};

/// The dial template used when none is configured.
pub const DEFAULT_DIAL_TEMPLATE: &str = crate::config::DEFAULT_ORIGINATE_ENDPOINT;
/// The largest request body accepted by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The Twilio account SID used when none is configured (what the bot's `start` carries).
pub const DEFAULT_ACCOUNT_SID: &str = crate::config::DEFAULT_ACCOUNT_SID;

/// The ARI connection, as `/health` and `/api/asterisk/status` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriStatus {
    /// Whether the ARI WebSocket is up.
    pub connected: bool,
    /// The Asterisk host.
    pub host: String,
    /// The ARI HTTP port.
    pub ari_port: u16,
    /// The Stasis application name.
    pub app_name: String,
    /// Asterisk's version, once known.
    pub asterisk_version: Option<String>,
}

/// One Asterisk server's ARI connection (`--ari-url` may be given more than once), as the
/// live monitor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriServerStatus {
    /// The server's name (the calls' `server`).
    pub name: String,
    /// The Asterisk host.
    pub host: String,
    /// The ARI HTTP port.
    pub ari_port: u16,
    /// The Stasis application served there.
    pub app_name: String,
    /// Whether its ARI WebSocket is up.
    pub connected: bool,
    /// Its Asterisk version, once known.
    pub asterisk_version: Option<String>,
}

/// A call to place (`POST /api/calls/originate`), already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateRequest {
    /// The number to call, checked by [`validate::phone_number`].
    pub phone_number: String,
    /// The dial string: the number put into [`ApiConfig::dial_template`].
    pub endpoint: String,
    /// The caller id to present, checked by [`validate::caller_id`].
    pub caller_id: Option<String>,
    /// Channel variables to set, checked by [`validate::variables`].
    pub variables: BTreeMap<String, String>,
}

/// A call placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originated {
    /// The gateway's id of the call (its Twilio `callSid`).
    pub call_id: String,
    /// The Asterisk channel id.
    pub channel_id: String,
}

/// Why the gateway did not place a call; each variant has its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// ARI is not connected: 503.
    #[error("Asterisk is not connected")]
    NotConnected,
    /// The gateway does not take calls now (at its maximum, draining): 409.
    #[error("{0}")]
    Refused(String),
    /// Asterisk refused the request: 502, with Asterisk's message.
    #[error("Asterisk refused the request: {0}")]
    Asterisk(String),
    /// The request is not acceptable: 400.
    #[error("{0}")]
    BadRequest(String),
}

impl ControlError {
    /// The HTTP status the API answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotConnected => 503,
            Self::Refused(_) => 409,
            Self::Asterisk(_) => 502,
            Self::BadRequest(_) => 400,
        }
    }
}

/// What the API needs from the gateway beyond the call registry; implemented by the
/// gateway (and by fakes in tests).
pub trait GatewayControl: Send + Sync + 'static {
    /// The ARI connection now.
    fn ari(&self) -> AriStatus;

    /// Whether the gateway takes calls now (ARI connected, not draining): `/ready`.
    fn accepting_calls(&self) -> bool;

    /// Each Asterisk server's connection; by default the one [`GatewayControl::ari`]
    /// describes, named `host:port`.
    fn ari_servers(&self) -> Vec<AriServerStatus> {
        let ari = self.ari();
        vec![AriServerStatus {
            name: format!("{}:{}", ari.host, ari.ari_port),
            host: ari.host,
            ari_port: ari.ari_port,
            app_name: ari.app_name,
            connected: ari.connected,
            asterisk_version: ari.asterisk_version,
        }]
    }

    /// Places a call that, when answered, goes through the AI flow.
    fn originate(
        &self,
        request: OriginateRequest,
    ) -> BoxFuture<'_, Result<Originated, ControlError>>;
}

/// The API's settings.
#[derive(Clone)]
pub struct ApiConfig {
    /// The bearer token (`BACKEND_AUTH_TOKEN`); `None`: no auth (loopback only).
    pub auth_token: Option<String>,
    /// The Twilio account SID bots are given (and use in the REST path and Basic auth).
    pub twilio_account_sid: String,
    /// The password of the Twilio endpoint's Basic auth; `None`: [`ApiConfig::auth_token`]
    /// is used, and with neither the endpoint checks only the account SID.
    pub twilio_auth_token: Option<String>,
    /// Origins allowed by CORS (`CORS_ORIGINS`); empty: no CORS headers; `*`: any origin.
    pub cors_origins: Vec<String>,
    /// Turns a bare number into an endpoint (`PJSIP/{number}@trunk`).
    pub dial_template: String,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How often the WebSockets ping their clients (a client silent for two intervals is
    /// closed).
    pub ws_ping_interval: Duration,
    /// Messages queued per WebSocket client before it is closed as too slow.
    pub ws_queue: usize,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens are secrets: only whether they are set.
        f.debug_struct("ApiConfig")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field(
                "twilio_auth_token",
                &self.twilio_auth_token.as_ref().map(|_| "<set>"),
            )
            .field("cors_origins", &self.cors_origins)
            .field("dial_template", &self.dial_template)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("ws_ping_interval", &self.ws_ping_interval)
            .field("ws_queue", &self.ws_queue)
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            auth_token: None,
            twilio_account_sid: DEFAULT_ACCOUNT_SID.to_owned(),
            twilio_auth_token: None,
            cors_origins: Vec::new(),
            dial_template: DEFAULT_DIAL_TEMPLATE.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ws_ping_interval: Duration::from_secs(30),
            ws_queue: 256,
        }
    }
}

impl ApiConfig {
    /// The API's settings from the gateway's validated configuration (token, CORS origins,
    /// Twilio SID and password, `--originate-endpoint` as the dial template).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            auth_token: config
                .api
                .auth_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            twilio_account_sid: config.twilio.account_sid.clone(),
            twilio_auth_token: config
                .twilio
                .auth_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            cors_origins: config.api.cors_origins.clone(),
            dial_template: config.originate.endpoint.clone(),
            ..Self::default()
        }
    }

    /// The Twilio endpoint's Basic auth password, if any.
    fn twilio_password(&self) -> Option<&str> {
        self.twilio_auth_token
            .as_deref()
            .or(self.auth_token.as_deref())
    }
}

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) calls: Calls,
    pub(crate) control: Arc<dyn GatewayControl>,
    pub(crate) config: Arc<ApiConfig>,
}

/// The CORS layer for `origins`; `None` when none are configured.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|origin| origin.trim() == "*") {
        AllowOrigin::any()
    } else {
        let values: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| match HeaderValue::from_str(origin.trim()) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!(origin = %origin.escape_debug(), "CORS origin ignored: not a valid header value");
                    None
                }
            })
            .collect();
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-requested-with"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The API's routes over the call registry and the gateway.
pub fn router(calls: Calls, control: Arc<dyn GatewayControl>, config: ApiConfig) -> Router {
    let cors = cors(&config.cors_origins);
    let max_body = config.max_body_bytes;
    let state = AppState {
        calls,
        control,
        config: Arc::new(config),
    };
    let protected = Router::new()
        .route("/api/calls/active", get(calls::active))
        .route("/api/calls/originate", post(calls::originate))
        .route("/api/calls/{id}", get(calls::call))
        .route("/api/calls/{id}/disconnect", post(calls::disconnect))
        .route("/api/calls/{id}/transfer", post(calls::transfer))
        .route("/api/asterisk/status", get(calls::asterisk_status))
        .route("/ws/frontend", get(ws::frontend))
        .route("/ws/monitor", get(ws::monitor))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let router = Router::new()
        .route("/", get(monitor_page::index))
        .route("/monitor.js", get(monitor_page::script))
        .route("/monitor.css", get(monitor_page::style))
        .route("/health", get(calls::health))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/ready", get(calls::ready))
        .route(
            "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}",
            post(twilio::update_call).get(twilio::fetch_call),
        )
        .merge(protected)
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Handed to WebSocket tasks by [`serve`]: closes them on shutdown, and lets `serve` wait
/// for their close frames.
#[derive(Clone)]
pub(crate) struct WsShutdown {
    pub(crate) closing: watch::Receiver<bool>,
    pub(crate) _alive: mpsc::Sender<()>,
}

/// How long [`serve`] waits for WebSocket clients to be sent their close frames.
const WS_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown` completes; then requests in progress
/// finish and WebSocket clients are closed (1001, "server shutting down").
///
/// # Errors
/// The listener's address cannot be read.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let (closing_tx, closing) = watch::channel(false);
    let (alive, mut gone) = mpsc::channel(1);
    let router = router.layer(Extension(WsShutdown {
        closing,
        _alive: alive,
    }));
    tracing::info!(%address, "API listening on http://{address}");
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = closing_tx.send(true);
        })
        .await;
    // Every sender is gone once the router and the WebSocket tasks are.
    let _ = tokio::time::timeout(WS_CLOSE_WAIT, gone.recv()).await;
    result
}
