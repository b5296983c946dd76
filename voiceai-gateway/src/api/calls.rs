//! The REST routes: health, readiness, calls, originate, disconnect, transfer and the
//! Asterisk status, in the seed's JSON shapes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorReply, ReplyStatus};
use super::{AppState, OriginateRequest, validate};
use crate::calls::{CallCommand, CallSnapshot, CallStatus};
use crate::events::timestamp;

/// `/health`'s `asterisk` object.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AsteriskHealth {
    connected: bool,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Health {
    status: &'static str,
    timestamp: String,
    asterisk: AsteriskHealth,
    active_calls: usize,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    summary = "Liveness and the ARI connection",
    description = "No token needed. 200 while ARI is connected (also while draining), 503 (`degraded`) while it is not.",
    responses(
        (status = 200, description = "ARI is connected", body = Health),
        (status = 503, description = "ARI is not connected", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let connected = state.control.ari().connected;
    let body = Health {
        status: if connected { "ok" } else { "degraded" },
        timestamp: timestamp(SystemTime::now()),
        asterisk: AsteriskHealth { connected },
        active_calls: state.calls.active_count(),
    };
    let code = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ready {
    status: &'static str,
    timestamp: String,
    asterisk: AsteriskHealth,
    accepting_calls: bool,
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    summary = "Whether the gateway takes calls",
    description = "No token needed. 200 while ARI is connected and the gateway is not draining, 503 otherwise (for load balancers).",
    responses(
        (status = 200, description = "Taking calls", body = Ready),
        (status = 503, description = "Not taking calls", body = Ready),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let connected = state.control.ari().connected;
    let accepting = connected && state.control.accepting_calls();
    let body = Ready {
        status: if accepting { "ready" } else { "not_ready" },
        timestamp: timestamp(SystemTime::now()),
        asterisk: AsteriskHealth { connected },
        accepting_calls: accepting,
    };
    let code = if accepting {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /api/calls/active`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActiveCalls {
    status: ReplyStatus,
    calls: Vec<CallSnapshot>,
    count: usize,
}

#[utoipa::path(
    get,
    path = "/api/calls/active",
    tag = "calls",
    summary = "The active calls, oldest first",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The active calls", body = ActiveCalls),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
    )
)]
pub(crate) async fn active(State(state): State<AppState>) -> Json<ActiveCalls> {
    let calls = state.calls.active();
    Json(ActiveCalls {
        status: ReplyStatus::Success,
        count: calls.len(),
        calls,
    })
}

/// `GET /api/calls/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OneCall {
    status: ReplyStatus,
    call: CallSnapshot,
}

#[utoipa::path(
    get,
    path = "/api/calls/{id}",
    tag = "calls",
    summary = "One call, active or recently ended",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call id (its Twilio callSid)")),
    responses(
        (status = 200, description = "The call", body = OneCall),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
        (status = 404, description = "No such call", body = ErrorReply),
    )
)]
pub(crate) async fn call(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OneCall>, ApiError> {
    match state.calls.get(&id) {
        Some(call) => Ok(Json(OneCall {
            status: ReplyStatus::Success,
            call,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no call with id {}", id.escape_debug()),
        )),
    }
}

/// A channel variable's value as JSON clients send it: a string, number or boolean.
fn variable_value(name: &str, value: serde_json::Value) -> Result<String, ApiError> {
    match value {
        serde_json::Value::String(text) => Ok(text),
        serde_json::Value::Number(number) => Ok(number.to_string()),
        serde_json::Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "variables.{}: value must be a string, number or boolean",
            name.escape_debug()
        ))),
    }
}

/// `POST /api/calls/originate`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OriginateBody {
    /// The number to call (an optional `+`, then digits, `*` or `#`; separators such as
    /// `-` and spaces are removed), put into the dial template
    /// (`--originate-endpoint`, e.g. `PJSIP/{number}@trunk`).
    phone_number: String,
    /// The caller id to present (`"Name" <number>` or a number); default: the configured
    /// one.
    #[serde(default)]
    caller_id: Option<String>,
    /// Channel variables to set on the call: strings, numbers or booleans.
    #[serde(default)]
    variables: Option<BTreeMap<String, serde_json::Value>>,
}

/// `POST /api/calls/originate`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OriginateReply {
    status: ReplyStatus,
    message: &'static str,
    channel_id: String,
    phone_number: String,
    call_id: String,
}

#[utoipa::path(
    post,
    path = "/api/calls/originate",
    tag = "calls",
    summary = "Place a call that goes through the AI flow when answered",
    security(("bearer" = [])),
    request_body = OriginateBody,
    responses(
        (status = 200, description = "Placed", body = OriginateReply),
        (status = 400, description = "Bad number, caller id or variables", body = ErrorReply),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
        (status = 409, description = "At --max-calls, or draining", body = ErrorReply),
        (status = 413, description = "Body too large", body = ErrorReply),
        (status = 415, description = "Not JSON", body = ErrorReply),
        (status = 502, description = "Asterisk refused the call", body = ErrorReply),
        (status = 503, description = "ARI is not connected", body = ErrorReply),
    )
)]
pub(crate) async fn originate(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OriginateBody>,
) -> Result<Json<OriginateReply>, ApiError> {
    let phone_number = validate::phone_number("phoneNumber", &body.phone_number)?;
    let caller_id = body
        .caller_id
        .as_deref()
        .map(|caller_id| validate::caller_id("callerId", caller_id))
        .transpose()?
        .filter(|caller_id| !caller_id.is_empty());
    let variables = body
        .variables
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| variable_value(&name, value).map(|value| (name, value)))
        .collect::<Result<BTreeMap<String, String>, ApiError>>()?;
    validate::variables("variables", &variables)?;
    let endpoint = validate::dial_string(&state.config.dial_template, &phone_number);
    let request = OriginateRequest {
        phone_number: phone_number.clone(),
        endpoint,
        caller_id,
        variables,
    };
    let originated = state.control.originate(request).await?;
    tracing::info!(
        call_id = %originated.call_id,
        channel_id = %originated.channel_id,
        "call originated through the API"
    );
    Ok(Json(OriginateReply {
        status: ReplyStatus::Success,
        message: "Call originated",
        channel_id: originated.channel_id,
        phone_number,
        call_id: originated.call_id,
    }))
}

/// The answer to disconnect and transfer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommandReply {
    status: ReplyStatus,
    message: &'static str,
    call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/calls/{id}/disconnect",
    tag = "calls",
    summary = "Hang a call up",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call id")),
    responses(
        (status = 200, description = "Hang-up requested", body = CommandReply),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
        (status = 404, description = "No such call", body = ErrorReply),
        (status = 409, description = "Ended, or busy with earlier commands", body = ErrorReply),
    )
)]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CommandReply>, ApiError> {
    state.calls.command(&id, CallCommand::Hangup)?;
    tracing::info!(call_id = %id, "hang-up requested through the API");
    Ok(Json(CommandReply {
        status: ReplyStatus::Success,
        message: "Call disconnect requested",
        call_id: id,
        endpoint: None,
    }))
}

/// `POST /api/calls/{id}/transfer`'s body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TransferBody {
    /// A dial string (`PJSIP/100`, `Local/777@default`) or a bare number (put into the
    /// dial template).
    endpoint: String,
}

#[utoipa::path(
    post,
    path = "/api/calls/{id}/transfer",
    tag = "calls",
    summary = "Blind-transfer the caller to an endpoint (the AI leg is removed)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call id")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "Transfer requested", body = CommandReply),
        (status = 400, description = "Bad endpoint", body = ErrorReply),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
        (status = 404, description = "No such call", body = ErrorReply),
        (status = 409, description = "Ringing, already transferred, ended or busy", body = ErrorReply),
    )
)]
pub(crate) async fn transfer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<Json<CommandReply>, ApiError> {
    let endpoint = validate::dial_target("endpoint", &body.endpoint, &state.config.dial_template)?;
    // The call task takes any command of a ringing call as its cancellation, and one
    // being transferred is no longer the gateway's to transfer.
    match state.calls.get(&id).map(|call| call.status) {
        Some(CallStatus::Ringing) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("call {} is not answered yet", id.escape_debug()),
            ));
        }
        Some(CallStatus::Transferring) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("call {} is already transferred", id.escape_debug()),
            ));
        }
        _ => {}
    }
    state.calls.command(
        &id,
        CallCommand::Transfer {
            endpoint: endpoint.clone(),
        },
    )?;
    tracing::info!(call_id = %id, %endpoint, "transfer requested through the API");
    Ok(Json(CommandReply {
        status: ReplyStatus::Success,
        message: "Call transfer requested",
        call_id: id,
        endpoint: Some(endpoint),
    }))
}

/// `GET /api/asterisk/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AsteriskStatus {
    status: ReplyStatus,
    connected: bool,
    host: String,
    ari_port: u16,
    app_name: String,
    asterisk_version: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/asterisk/status",
    tag = "calls",
    summary = "The ARI connection and Asterisk's version",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The connection", body = AsteriskStatus),
        (status = 401, description = "No or a wrong token", body = ErrorReply),
    )
)]
pub(crate) async fn asterisk_status(State(state): State<AppState>) -> Json<AsteriskStatus> {
    let ari = state.control.ari();
    Json(AsteriskStatus {
        status: ReplyStatus::Success,
        connected: ari.connected,
        host: ari.host,
        ari_port: ari.ari_port,
        app_name: ari.app_name,
        asterisk_version: ari.asterisk_version,
    })
}
