//! The API's error answers, `{"status":"error","message":...}`, and the JSON body
//! extractor whose rejections (malformed JSON, wrong content type, missing field, oversized
//! body) are answered in that shape.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use super::{AppState, ControlError};
use crate::calls::CommandError;

/// The `status` field of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The request did what it asked.
    Success,
    /// It did not; `message` says why.
    Error,
}

/// Every failure: `{"status":"error","message":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorReply {
    /// Always [`ReplyStatus::Error`].
    pub status: ReplyStatus,
    /// Why, for people.
    pub message: String,
}

/// An error answer: its HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub code: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error answer with `code` and `message`.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid token: send Authorization: Bearer <BACKEND_AUTH_TOKEN>",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorReply {
            status: ReplyStatus::Error,
            message: self.message,
        };
        let mut response = (self.code, axum::Json(body)).into_response();
        if self.code == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<super::validate::ValidationError> for ApiError {
    fn from(error: super::validate::ValidationError) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let code = match &error {
            CommandError::NotFound(_) => StatusCode::NOT_FOUND,
            CommandError::Ended(_) | CommandError::Busy(_) => StatusCode::CONFLICT,
        };
        Self::new(code, error.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let code =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::warn!(%error, "gateway refused the request");
        }
        Self::new(code, error.to_string())
    }
}

/// The message for a body that could not be read (`limit`: the configured maximum).
pub(crate) fn body_rejection(rejection: &BytesRejection, limit: usize) -> ApiError {
    let code = rejection.status();
    if code == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(code, format!("request body is larger than {limit} bytes"))
    } else {
        ApiError::new(
            code,
            format!("request body could not be read: {}", rejection.body_text()),
        )
    }
}

/// A JSON body; its rejections answer in the API's error shape with a clear message.
#[derive(Debug, Clone)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection, state.config.max_body_bytes)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => ApiError::bad_request(format!(
            "invalid request body: {}",
            inner_message(&error.body_text())
        )),
        JsonRejection::JsonSyntaxError(error) => ApiError::bad_request(format!(
            "malformed JSON: {}",
            inner_message(&error.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(error) => body_rejection(error, limit),
        other => ApiError::new(other.status(), other.body_text()),
    }
}

/// serde's own message without axum's prefix (`Failed to ...: <serde message>`).
fn inner_message(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, inner)| inner)
}

/// Unknown routes: 404 in the API's shape.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
    )
}

/// Known routes, other method: 405 in the API's shape.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
