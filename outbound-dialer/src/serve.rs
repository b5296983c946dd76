//! `outbound-dialer serve`: the seed's HTTP controller. `GET /start`, `GET /status`,
//! `POST /pause`, `POST /resume` and `POST /stop` drive a campaign through [`Control`],
//! which the campaign runner implements. The campaign's do-not-call list (the store's
//! `dnc` table, which every dialer of the campaign checks right before each originate):
//! `POST /dnc` adds numbers (`{"number": ...}` or `{"numbers": [...]}`, optional
//! `"source"`), `GET /dnc` counts them, `GET /dnc/{number}` looks one up and
//! `DELETE /dnc/{number}` takes one off; numbers are normalised as the import does, and a
//! number that is not one is 400.
//!
//! Every answer is JSON: `{"status":"success", ...}`, or `{"status":"error","message":...}`
//! with 404 (unknown route), 405 (known route, other method), 409 (wrong state),
//! 503 (the campaign cannot run) or 500, the gateway's shape. A request that HTTP itself
//! cannot parse is answered 400 by hyper before it reaches a route, with no body.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::numbers::normalize;
use crate::report::ReportSummary;
use crate::status::{CampaignStatus, RunState};
use crate::store::DncEntry;

/// Where the seed's controller listened; `serve` binds loopback only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

/// What `/start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A new run began.
    Now,
    /// A run was already under way, in this state; nothing changed.
    AlreadyRunning(RunState),
}

/// Why the campaign refused an action; each variant has its HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The action does not apply in the campaign's state (pause when idle): 409.
    #[error("cannot {action} the campaign while it is {}", state.as_str())]
    WrongState {
        /// What was asked (`pause`, `resume`, `stop`, `start`).
        action: &'static str,
        /// The state the campaign was in.
        state: RunState,
    },
    /// The campaign cannot run (the trunk does not exist, the list is empty): 503.
    #[error("{0}")]
    CannotRun(String),
    /// The campaign rules hold it (`/resume` while the circuit breaker pauses it): 409.
    #[error("{0}")]
    Held(String),
    /// Anything else: 500.
    #[error("{message}")]
    Internal {
        /// What failed.
        message: String,
        /// Why, when another error says so.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

impl ControlError {
    /// An internal error caused by `source`.
    pub fn internal(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        ControlError::Internal {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The HTTP status the API answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::WrongState { .. } | ControlError::Held(_) => 409,
            ControlError::CannotRun(_) => 503,
            ControlError::Internal { .. } => 500,
        }
    }
}

/// The campaign as the controller drives it; implemented by the campaign runner.
///
/// Calls may arrive concurrently (two `/start`s at once): an implementation decides
/// each under its own lock, so that exactly one of them answers [`Started::Now`].
pub trait Control: Send + Sync + 'static {
    /// Starts a run when idle or finished (re-reading `.env` and the number list first,
    /// as the seed did); answers [`Started::AlreadyRunning`] when a run is under way.
    fn start(&self) -> BoxFuture<'_, Result<Started, ControlError>>;

    /// The campaign now.
    fn status(&self) -> BoxFuture<'_, CampaignStatus>;

    /// Stops dialling new numbers until resumed; calls in progress go on.
    fn pause(&self) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Dials again after a pause.
    fn resume(&self) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Ends the run: no new calls; the calls in progress finish.
    fn stop(&self) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Rewrites the per-attempt report (`--report`) on `GET /status`; `Ok(None)` when
    /// there is no report to write, which is what the default does.
    fn write_report(&self) -> BoxFuture<'_, Result<Option<ReportSummary>, ControlError>> {
        Box::pin(async { Ok(None) })
    }

    /// Adds normalised numbers to the campaign's do-not-call list, from `source`; answers
    /// how many were not on it yet. The default has no list (503).
    fn dnc_add(
        &self,
        numbers: Vec<String>,
        source: String,
    ) -> BoxFuture<'_, Result<u64, ControlError>> {
        let _ = (numbers, source);
        Box::pin(async { Err(no_dnc_list()) })
    }

    /// Takes a normalised number off the list; whether it was on it.
    fn dnc_remove(&self, number: String) -> BoxFuture<'_, Result<bool, ControlError>> {
        let _ = number;
        Box::pin(async { Err(no_dnc_list()) })
    }

    /// A normalised number's entry on the list, if it is on it.
    fn dnc_lookup(&self, number: String) -> BoxFuture<'_, Result<Option<DncEntry>, ControlError>> {
        let _ = number;
        Box::pin(async { Err(no_dnc_list()) })
    }

    /// How many numbers the list holds.
    fn dnc_count(&self) -> BoxFuture<'_, Result<u64, ControlError>> {
        Box::pin(async { Err(no_dnc_list()) })
    }
}

/// What a [`Control`] without a do-not-call list answers.
fn no_dnc_list() -> ControlError {
    ControlError::CannotRun("this controller has no do-not-call list".to_owned())
}

/// Numbers one `POST /dnc` may add (a bigger list is a `--dnc-file`).
pub const MAX_DNC_PER_REQUEST: usize = 10_000;

/// The `status` field of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The request did what it asked.
    Success,
    /// It did not; `message` says why.
    Error,
}

/// `/start`, `/pause`, `/resume` and `/stop`: `{"status":"success","message":...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageReply {
    /// Always [`ReplyStatus::Success`].
    pub status: ReplyStatus,
    /// What happened, for people (the seed's wording).
    pub message: String,
    /// The run's state, when `/start` found one under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RunState>,
}

/// `/status`: `{"status":"success", ...the campaign's fields...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReply {
    /// Always [`ReplyStatus::Success`].
    pub status: ReplyStatus,
    /// The campaign's fields, inline.
    #[serde(flatten)]
    pub campaign: CampaignStatus,
    /// The report this request wrote, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportSummary>,
    /// Why the report could not be written; the status is still current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

/// `POST /dnc`: `{"status":"success","message":...,"added":N,"numbers":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncAddReply {
    /// Always [`ReplyStatus::Success`].
    pub status: ReplyStatus,
    /// What happened, for people.
    pub message: String,
    /// How many of the numbers were not on the list yet.
    pub added: u64,
    /// The numbers as stored (normalised, duplicates once), in the request's order.
    pub numbers: Vec<String>,
}

/// `GET /dnc`: `{"status":"success","count":N}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncCountReply {
    /// Always [`ReplyStatus::Success`].
    pub status: ReplyStatus,
    /// Numbers on the list.
    pub count: u64,
}

/// `GET /dnc/{number}` and `DELETE /dnc/{number}`: the number and whether it is on the list
/// now, with its source and time when it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncNumberReply {
    /// Always [`ReplyStatus::Success`].
    pub status: ReplyStatus,
    /// What happened, for people (`DELETE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The number, normalised.
    pub number: String,
    /// Whether it is on the list now (after a `DELETE`: false; one that was not is 404).
    pub dnc: bool,
    /// Where it came from (a file name, `api`, `operator`), when on the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was added, Unix ms, when on the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_at: Option<i64>,
}

/// Every failure: `{"status":"error","message":...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorReply {
    /// Always [`ReplyStatus::Error`].
    pub status: ReplyStatus,
    /// Why, for people.
    pub message: String,
}

/// An error answer: its HTTP status and message.
struct ApiError {
    code: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorReply {
            status: ReplyStatus::Error,
            message: self.message,
        };
        (self.code, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let code =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::warn!(error = %chain(&error), "campaign control failed");
        }
        ApiError {
            code,
            message: chain(&error),
        }
    }
}

/// `a: b: c` for an error and its causes: the API's message must say why on its own.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        // Writing to a String cannot fail.
        let _ = write!(text, ": {next}");
        cause = next.source();
    }
    text
}

fn success(message: &str) -> Json<MessageReply> {
    Json(MessageReply {
        status: ReplyStatus::Success,
        message: message.to_owned(),
        state: None,
    })
}

type Shared = Arc<dyn Control>;

async fn start(State(control): State<Shared>) -> Result<Json<MessageReply>, ApiError> {
    match control.start().await? {
        Started::Now => {
            tracing::info!("campaign started");
            Ok(success("Campaign started"))
        }
        Started::AlreadyRunning(state) => Ok(Json(MessageReply {
            status: ReplyStatus::Success,
            message: "Campaign is already running".to_owned(),
            state: Some(state),
        })),
    }
}

async fn status(State(control): State<Shared>) -> Json<StatusReply> {
    let campaign = control.status().await;
    let (report, report_error) = match control.write_report().await {
        Ok(report) => (report, None),
        Err(error) => {
            tracing::warn!(error = %chain(&error), "report not written");
            (None, Some(chain(&error)))
        }
    };
    Json(StatusReply {
        status: ReplyStatus::Success,
        campaign,
        report,
        report_error,
    })
}

async fn pause(State(control): State<Shared>) -> Result<Json<MessageReply>, ApiError> {
    control.pause().await?;
    tracing::info!("campaign paused");
    Ok(success("Campaign paused"))
}

async fn resume(State(control): State<Shared>) -> Result<Json<MessageReply>, ApiError> {
    control.resume().await?;
    tracing::info!("campaign resumed");
    Ok(success("Campaign resumed"))
}

async fn stop(State(control): State<Shared>) -> Result<Json<MessageReply>, ApiError> {
    control.stop().await?;
    tracing::info!("campaign stopping: no new calls, calls in progress finish");
    Ok(success(
        "Campaign stopping: no new calls; active calls finish",
    ))
}

fn bad_request(message: String) -> ApiError {
    ApiError {
        code: StatusCode::BAD_REQUEST,
        message,
    }
}

/// How much of a client's bad value an error message repeats.
const ECHO_CHARS: usize = 40;

/// The start of `text` for an error message, and "…" when there was more: a "number" can
/// be nearly the whole 2 MB body, and the operator needs only enough to recognise it.
fn cut(text: &str) -> (&str, &'static str) {
    match text.char_indices().nth(ECHO_CHARS) {
        Some((end, _)) => (&text[..end], "…"),
        None => (text, ""),
    }
}

/// A value of the request, as an error message repeats it ([`cut`]).
fn echo(text: &str) -> String {
    let (start, more) = cut(text);
    format!("{start}{more}")
}

/// A number from the request, normalised as the import does; 400 when it is not one.
fn dnc_number(raw: &str) -> Result<String, ApiError> {
    normalize(raw).map_err(|why| {
        let (start, more) = cut(raw);
        bad_request(format!("{start:?}{more} is not a phone number: {why}"))
    })
}

/// The `{number}` of `/dnc/{number}`, normalised.
fn path_number(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(raw) = path.map_err(|why| bad_request(format!("the number in the path: {why}")))?;
    dnc_number(&raw)
}

/// The numbers and source of a `POST /dnc` body; every number must be one, else nothing
/// is added.
fn dnc_body(body: &[u8]) -> Result<(Vec<String>, String), ApiError> {
    const SHAPE: &str = r#"send a JSON object: {"number": "+15551234567"} or {"numbers": ["+15551234567", ...]}, optionally with "source""#;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|why| bad_request(format!("the body is not JSON ({why}): {SHAPE}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad_request(format!(
            "the body is not a JSON object: {SHAPE}"
        )));
    };
    let raw: Vec<&serde_json::Value> = match (object.get("number"), object.get("numbers")) {
        (Some(one), None) => vec![one],
        (None, Some(serde_json::Value::Array(many))) => many.iter().collect(),
        (None, Some(_)) => return Err(bad_request(format!("\"numbers\" is not a list: {SHAPE}"))),
        (Some(_), Some(_)) => {
            return Err(bad_request(format!(
                "both \"number\" and \"numbers\": {SHAPE}"
            )));
        }
        (None, None) => {
            return Err(bad_request(format!(
                "no \"number\" or \"numbers\": {SHAPE}"
            )));
        }
    };
    if raw.is_empty() {
        return Err(bad_request("\"numbers\" is empty".to_owned()));
    }
    if raw.len() > MAX_DNC_PER_REQUEST {
        return Err(bad_request(format!(
            "{} numbers in one request, at most {MAX_DNC_PER_REQUEST}: load a bigger list with --dnc-file",
            raw.len()
        )));
    }
    let mut numbers: Vec<String> = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    for (index, value) in raw.into_iter().enumerate() {
        let number = match value {
            serde_json::Value::String(text) => dnc_number(text),
            // A number written as a JSON number has no '+' or separators to lose.
            serde_json::Value::Number(n) if n.is_u64() => dnc_number(&n.to_string()),
            other => Err(bad_request(format!(
                "{} is not a phone number (a string)",
                echo(&other.to_string())
            ))),
        }
        .map_err(|error| ApiError {
            message: format!("number {} of the request: {}", index + 1, error.message),
            ..error
        })?;
        if seen.insert(number.clone()) {
            numbers.push(number);
        }
    }
    let source = match object.get("source") {
        None => "api".to_owned(),
        Some(serde_json::Value::String(source)) if !source.trim().is_empty() => {
            source.trim().chars().take(255).collect()
        }
        Some(other) => {
            return Err(bad_request(format!(
                "\"source\" must be a non-empty string, not {}",
                echo(&other.to_string())
            )));
        }
    };
    Ok((numbers, source))
}

async fn dnc_add(
    State(control): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DncAddReply>, ApiError> {
    // A body over axum's limit (2 MB) is the API's JSON error too, not a text answer.
    let body = body.map_err(|why| ApiError {
        code: why.status(),
        message: format!("the body: {}", why.body_text()),
    })?;
    let (numbers, source) = dnc_body(&body)?;
    let added = control.dnc_add(numbers.clone(), source.clone()).await?;
    let already = numbers.len() as u64 - added.min(numbers.len() as u64);
    tracing::info!(numbers = numbers.len(), added, %source, "numbers added to the do-not-call list");
    let mut message = format!(
        "{added} number{} added to the do-not-call list",
        if added == 1 { "" } else { "s" }
    );
    if already > 0 {
        let _ = write!(message, " ({already} already on it)");
    }
    Ok(Json(DncAddReply {
        status: ReplyStatus::Success,
        message,
        added,
        numbers,
    }))
}

async fn dnc_count(State(control): State<Shared>) -> Result<Json<DncCountReply>, ApiError> {
    Ok(Json(DncCountReply {
        status: ReplyStatus::Success,
        count: control.dnc_count().await?,
    }))
}

async fn dnc_lookup(
    State(control): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DncNumberReply>, ApiError> {
    let number = path_number(path)?;
    let entry = control.dnc_lookup(number.clone()).await?;
    Ok(Json(DncNumberReply {
        status: ReplyStatus::Success,
        message: None,
        number,
        dnc: entry.is_some(),
        source: entry.as_ref().map(|e| e.source.clone()),
        added_at: entry.map(|e| e.added_at),
    }))
}

async fn dnc_remove(
    State(control): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DncNumberReply>, ApiError> {
    let number = path_number(path)?;
    if !control.dnc_remove(number.clone()).await? {
        return Err(ApiError {
            code: StatusCode::NOT_FOUND,
            message: format!("{number} is not on the do-not-call list"),
        });
    }
    tracing::info!(%number, "number taken off the do-not-call list");
    Ok(Json(DncNumberReply {
        status: ReplyStatus::Success,
        message: Some(format!("{number} taken off the do-not-call list")),
        number,
        dnc: false,
        source: None,
        added_at: None,
    }))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError {
        code: StatusCode::NOT_FOUND,
        message: format!("no route {method} {}", uri.path()),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        code: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("method {method} is not allowed on {}", uri.path()),
    }
}

/// The controller's routes over `control`, with JSON 404 and 405 answers.
pub fn router(control: Arc<dyn Control>) -> Router {
    Router::new()
        .route("/start", get(start))
        .route("/status", get(status))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/stop", post(stop))
        .route("/dnc", get(dnc_count).post(dnc_add))
        .route("/dnc/{number}", get(dnc_lookup).delete(dnc_remove))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(control)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then lets requests in
/// progress finish.
///
/// # Errors
/// The listener's address cannot be read.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<dyn Control>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "controller listening on http://{address}");
    axum::serve(listener, router(control))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_echoed_cut_on_a_character() {
        assert_eq!(cut("5551234567"), ("5551234567", ""));
        let forty = "é".repeat(ECHO_CHARS);
        assert_eq!(cut(&forty), (forty.as_str(), ""));
        let long = format!("{forty}€{}", "x".repeat(1000));
        assert_eq!(cut(&long), (forty.as_str(), "…"));
        assert_eq!(echo(&long), format!("{forty}…"));
        let message = dnc_number(&long).unwrap_err().message;
        assert!(
            message.starts_with(&format!(
                "{forty:?}… is not a phone number: 'é' is not allowed in a number"
            )),
            "{message}"
        );
    }

    #[test]
    fn errors_map_to_their_statuses() {
        let wrong = ControlError::WrongState {
            action: "pause",
            state: RunState::Idle,
        };
        assert_eq!(wrong.http_status(), 409);
        assert_eq!(
            wrong.to_string(),
            "cannot pause the campaign while it is idle"
        );
        assert_eq!(
            ControlError::CannotRun("no numbers".into()).http_status(),
            503
        );
        let io = std::io::Error::other("disk full");
        let internal = ControlError::internal("saving the campaign", io);
        assert_eq!(internal.http_status(), 500);
        assert_eq!(internal.to_string(), "saving the campaign");
        assert_eq!(chain(&internal), "saving the campaign: disk full");
    }

    #[test]
    fn replies_serialise_in_the_seed_shape() {
        let reply = serde_json::to_value(MessageReply {
            status: ReplyStatus::Success,
            message: "Campaign is already running".into(),
            state: Some(RunState::Running),
        })
        .unwrap();
        assert_eq!(
            reply,
            serde_json::json!({
                "status": "success",
                "message": "Campaign is already running",
                "state": "running",
            })
        );
        let reply = serde_json::to_value(StatusReply {
            status: ReplyStatus::Success,
            campaign: CampaignStatus::empty("c", RunState::Idle),
            report: None,
            report_error: None,
        })
        .unwrap();
        assert_eq!(reply["status"], "success");
        assert_eq!(reply["campaign"], "c");
        assert_eq!(reply["state"], "idle");
        assert_eq!(reply["outcomes"]["no_answer"], 0);
        assert!(reply.get("report").is_none());
    }
}
