//! The one error type of the client.

use std::time::Duration;

/// Whether a failed request may have reached Asterisk (and so may have taken effect).
///
/// Retrying a request that may have been sent is safe only when it is idempotent: most
/// ARI operations are, and creating operations are when they carry a client-chosen id
/// (a repeat gets 409 Conflict instead of a second channel). Asterisk also answers 409
/// when a new channel id is a *prefix* of a live channel's id (`call-1` while `call-10`
/// is up), so ids a program builds must be prefix-free (fixed width, or ending in a
/// terminator) for a 409 to mean "this very request already went through".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request never left this process (no connection could be made).
    NotSent,
    /// The request may or may not have reached Asterisk.
    Unknown,
    /// Asterisk received the request and answered.
    Received,
}

/// Why an object's event stream ended (see [`crate::ObjectEvents::ended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEnd {
    /// The object's last event arrived (`ChannelDestroyed`, `BridgeDestroyed`,
    /// `PlaybackFinished`, `RecordingFinished` or `RecordingFailed`).
    LastEvent,
    /// After a reconnect the object was not in Asterisk's state any more: it ended while
    /// the connection was down (or Asterisk restarted), and its last event was lost.
    Vanished,
    /// The connection was closed by the program.
    Closed,
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamEnd::LastEvent => "the object ended first",
            StreamEnd::Vanished => "the object was gone after a reconnect (its end event was lost)",
            StreamEnd::Closed => "the connection was closed",
        })
    }
}

/// Why a wait for an event gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitFailure {
    /// The object's stream ended first.
    Ended(StreamEnd),
    /// The deadline passed.
    Deadline(Duration),
    /// The object's queue overflowed and this many updates were dropped: the awaited
    /// event may have been among them (read the object's state to know).
    Lagged(u64),
}

impl std::fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitFailure::Ended(end) => end.fmt(f),
            WaitFailure::Deadline(within) => write!(f, "not within {within:?}"),
            WaitFailure::Lagged(missed) => {
                write!(
                    f,
                    "{missed} updates were dropped while the program read slowly"
                )
            }
        }
    }
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
    /// The connection failed or broke. The cause is the [`std::error::Error::source`];
    /// the message says what was being done.
    #[error("{operation}: {message}")]
    Transport {
        /// The operation, or what was being done.
        operation: String,
        /// What failed (without the cause's own text).
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
    /// A listening address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The events connection is closed (the connection was dropped or shut down).
    #[error("the events connection is closed")]
    Closed,
    /// A wait for an object's event gave up.
    #[error("{object}: {waited_for} did not come: {failure}")]
    NotReceived {
        /// The object waited on, e.g. `channel call-1`.
        object: String,
        /// What was waited for, e.g. `StasisStart`.
        waited_for: String,
        /// Why the wait ended.
        failure: WaitFailure,
    },
    /// Writing a downloaded body failed.
    #[error("{operation}: cannot write the downloaded body")]
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

    /// What the spec documents for the status Asterisk answered on this operation
    /// (e.g. "Channel not found").
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::Api { reason, .. } => *reason,
            _ => None,
        }
    }

    /// Asterisk's own message, when it answered with one (e.g. "Channel not in Stasis
    /// application").
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// Why a wait gave up, when this is [`Error::NotReceived`].
    pub fn wait_failure(&self) -> Option<WaitFailure> {
        match self {
            Error::NotReceived { failure, .. } => Some(*failure),
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
            Error::Config(_) | Error::Bind { .. } | Error::Closed | Error::NotReceived { .. } => {
                Delivery::NotSent
            }
        }
    }

    /// The error and its causes on one line (`a: b: c`), for logs: `Display` prints only
    /// the first, as error-chain reporters expect.
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }

    /// A transport error with a cause.
    pub(crate) fn transport(
        operation: impl Into<String>,
        message: impl Into<String>,
        delivery: Delivery,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Transport {
            operation: operation.into(),
            message: message.into(),
            delivery,
            source: Some(Box::new(source)),
        }
    }
}

/// An error with its causes, `a: b: c`; see [`Error::chain`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(&'a Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(self.0);
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_error_prints_its_cause_once_in_a_chain() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::transport("channels.get", "cannot connect", Delivery::NotSent, cause);
        assert_eq!(error.to_string(), "channels.get: cannot connect");
        assert_eq!(
            error.chain().to_string(),
            "channels.get: cannot connect: refused"
        );
    }

    #[test]
    fn accessors_read_api_errors() {
        let error = Error::Api {
            operation: "channels.play".into(),
            status: 409,
            reason: Some("Channel not in a Stasis application"),
            message: Some("Channel not in Stasis application".into()),
            body: String::new(),
        };
        assert_eq!(error.status(), Some(409));
        assert_eq!(error.reason(), Some("Channel not in a Stasis application"));
        assert_eq!(error.message(), Some("Channel not in Stasis application"));
        assert!(error.is_conflict() && !error.is_transient());
        assert_eq!(Error::Closed.message(), None);
    }
}
