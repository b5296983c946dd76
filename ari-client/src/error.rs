//! The one error type of the client.

use std::time::Duration;

/// Whether a failed request may have reached Asterisk (and so may have taken effect).
///
/// Retrying a request that may have been sent is safe only when it is idempotent: most
/// ARI operations are, and creating operations are when they carry a client-chosen id
/// (a repeat gets 409 Conflict instead of a second channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request never left this process (no connection could be made).
    NotSent,
    /// The request may or may not have reached Asterisk.
    Unknown,
    /// Asterisk received the request and answered.
    Received,
}

/// Everything that can go wrong talking to ARI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Asterisk answered with an error status.
    #[error("{operation}: Asterisk answered {status}{}{}", reason.map(|r| format!(" ({r})")).unwrap_or_default(), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Api {
        /// `resource.nickname` of the operation, e.g. `channels.originate`.
        operation: String,
        /// HTTP status.
        status: u16,
        /// What the spec documents for this status on this operation.
        reason: Option<&'static str>,
        /// Asterisk's own message (the `message` field of its JSON body).
        message: Option<String>,
        /// The raw response body.
        body: String,
    },
    /// The connection failed or broke.
    #[error("{operation}: {message}")]
    Transport {
        /// The operation, or what was being done.
        operation: String,
        /// What failed.
        message: String,
        /// Whether the request may have reached Asterisk.
        delivery: Delivery,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No answer within the request timeout.
    #[error("{operation}: no answer from Asterisk within {timeout:?}")]
    Timeout {
        /// The operation.
        operation: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Asterisk answered with a body that does not decode; the body is kept.
    #[error("{operation}: cannot decode Asterisk's answer: {message}")]
    Decode {
        /// The operation.
        operation: String,
        /// Why decoding failed (with the field path).
        message: String,
        /// The body as received.
        body: String,
    },
    /// The client was configured with something that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The events connection is closed (the connection was dropped or shut down).
    #[error("the events connection is closed")]
    Closed,
    /// Writing a downloaded body failed.
    #[error("{operation}: cannot write the downloaded body: {source}")]
    Write {
        /// The operation.
        operation: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status when Asterisk answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 404: the object does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: conflict, e.g. an id already in use or a channel not in Stasis.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 400: invalid parameters.
    pub fn is_bad_request(&self) -> bool {
        self.status() == Some(400)
    }

    /// 412: the object is not in a state that allows the operation (e.g. not answered).
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }

    /// 422: the request is understood but cannot be processed (e.g. unknown endpoint).
    pub fn is_unprocessable(&self) -> bool {
        self.status() == Some(422)
    }

    /// 401 or 403: the credentials are wrong or not allowed.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// A transport failure or time-out, worth retrying once Asterisk is reachable.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transport { .. } | Error::Timeout { .. })
            || matches!(self.status(), Some(500..=599))
    }

    /// Whether the request may have reached Asterisk.
    pub fn delivery(&self) -> Delivery {
        match self {
            Error::Api { .. } | Error::Decode { .. } => Delivery::Received,
            Error::Transport { delivery, .. } => *delivery,
            Error::Timeout { .. } | Error::Write { .. } => Delivery::Unknown,
            Error::Config(_) | Error::Closed => Delivery::NotSent,
        }
    }
}
