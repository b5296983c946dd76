//! REST over WebSocket (Asterisk 22.4+): operations sent as `RESTRequest` on one app
//! connection's events socket, answered by `RESTResponse` events with the same
//! `request_id`. The route belongs to its connection: [`crate::AppConnection::rest_client`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ari_model::events::RESTResponse;
use ari_model::{Operation, ResponseKind};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::client::{decode_answer, operation_name};
use crate::error::{Delivery, Error};

type Answer = Result<RESTResponse, Error>;

/// Where one connection's REST requests go, and the answers they wait for.
#[derive(Clone)]
pub(crate) struct RestRoute {
    shared: Arc<RestShared>,
}

struct RestShared {
    /// The events socket's writer: (request id, text). Requests wait there while the
    /// socket is down, within their time-out.
    outgoing: mpsc::Sender<(String, String)>,
    /// Requests not answered yet, by request id.
    pending: Mutex<HashMap<String, Pending>>,
    /// Cancelled when the connection closes.
    closed: CancellationToken,
}

/// A request waiting for its answer.
struct Pending {
    answer: oneshot::Sender<Answer>,
    /// Whether it was written to a socket (so Asterisk may have acted on it).
    written: bool,
}

/// Forgets a request whose caller stopped waiting (time-out, dropped future).
struct PendingGuard<'a> {
    route: &'a RestShared,
    request_id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.route.pending.lock() {
            pending.remove(self.request_id);
        }
    }
}

impl RestRoute {
    pub(crate) fn new(outgoing: mpsc::Sender<(String, String)>, closed: CancellationToken) -> Self {
        RestRoute {
            shared: Arc::new(RestShared {
                outgoing,
                pending: Mutex::new(HashMap::new()),
                closed,
            }),
        }
    }

    /// Whether binary downloads must still use HTTP (they cannot travel as events).
    pub(crate) fn carries<O: Operation>() -> bool {
        matches!(O::RESPONSE_KIND, ResponseKind::Json | ResponseKind::Empty)
    }

    /// Sends `operation` as a `RESTRequest` and decodes its `RESTResponse`.
    pub(crate) async fn execute<O>(
        &self,
        operation: &O,
        timeout: std::time::Duration,
    ) -> Result<O::Response, Error>
    where
        O: Operation,
        O::Response: DeserializeOwned,
    {
        let request_id = crate::handles::new_id("req");
        let query: Vec<serde_json::Value> = operation
            .query()
            .into_iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
            .collect();
        let mut request = serde_json::json!({
            "type": "RESTRequest",
            "transaction_id": request_id,
            "request_id": request_id,
            "method": O::METHOD.as_str(),
            "uri": operation.path().trim_start_matches('/'),
            "query_strings": query,
        });
        if let Some(body) = operation.body() {
            request["content_type"] = "application/json".into();
            request["message_body"] = body.to_string().into();
        }
        let response =
            tokio::time::timeout(timeout, self.request(request.to_string(), &request_id))
                .await
                .map_err(|_| Error::Timeout {
                    operation: operation_name::<O>(),
                    timeout,
                })??;
        let status = StatusCode::from_u16(u16::try_from(response.status_code).unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        decode_answer::<O>(
            status,
            response
                .message_body
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    async fn request(&self, request: String, request_id: &str) -> Answer {
        let (answer_tx, answer_rx) = oneshot::channel();
        if self.shared.closed.is_cancelled() {
            return Err(Error::Closed);
        }
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.insert(
                request_id.to_owned(),
                Pending {
                    answer: answer_tx,
                    written: false,
                },
            );
        }
        let _guard = PendingGuard {
            route: &self.shared,
            request_id,
        };
        self.shared
            .outgoing
            .send((request_id.to_owned(), request))
            .await
            .map_err(|_| Error::Closed)?;
        tokio::select! {
            () = self.shared.closed.cancelled() => Err(self.closed_error(request_id)),
            answer = answer_rx => answer.unwrap_or_else(|_| Err(self.closed_error(request_id))),
        }
    }

    /// The connection closed before the answer: whether Asterisk got the request
    /// depends on whether it was written.
    fn closed_error(&self, request_id: &str) -> Error {
        let written = self
            .shared
            .pending
            .lock()
            .map(|pending| pending.get(request_id).is_some_and(|p| p.written))
            .unwrap_or(true);
        if written {
            Error::Transport {
                operation: "RESTRequest".to_owned(),
                message: "the connection closed before the answer".to_owned(),
                delivery: Delivery::Unknown,
                source: None,
            }
        } else {
            Error::Closed
        }
    }

    /// Called by the writer just before it sends `request_id`: false when the caller
    /// has stopped waiting (time-out, dropped future, already failed), so that a
    /// request reported as failed is never sent late.
    pub(crate) fn claim_for_writing(&self, request_id: &str) -> bool {
        match self.shared.pending.lock() {
            Ok(mut pending) => match pending.get_mut(request_id) {
                Some(request) => {
                    request.written = true;
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    fn take(&self, request_id: &str) -> Option<oneshot::Sender<Answer>> {
        Some(self.shared.pending.lock().ok()?.remove(request_id)?.answer)
    }

    /// Hands a `RESTResponse` to the request waiting for it.
    pub(crate) fn answer(&self, response: &RESTResponse) {
        if let Some(waiter) = self.take(&response.request_id) {
            let _ = waiter.send(Ok(response.clone()));
        }
    }

    /// An answer that does not decode is still the answer: fail its request at once.
    pub(crate) fn undecodable(&self, raw: &str, error: &str) {
        let Some(request_id) = serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("request_id")?.as_str().map(str::to_owned))
        else {
            return;
        };
        if let Some(waiter) = self.take(&request_id) {
            let _ = waiter.send(Err(Error::Decode {
                operation: "RESTResponse".to_owned(),
                message: error.to_owned(),
                body: raw.to_owned(),
            }));
        }
    }

    /// The socket that carried the written requests is gone: no answer will come on
    /// the next one, and whether Asterisk acted on them is unknown. Requests not written
    /// yet stay queued for the next socket.
    pub(crate) fn fail_pending(&self, cause: &Arc<Error>) {
        let waiting: Vec<_> = match self.shared.pending.lock() {
            Ok(mut pending) => {
                let written: Vec<String> = pending
                    .iter()
                    .filter(|(_, request)| request.written)
                    .map(|(id, _)| id.clone())
                    .collect();
                written
                    .iter()
                    .filter_map(|id| pending.remove(id))
                    .map(|request| request.answer)
                    .collect()
            }
            Err(_) => return,
        };
        for waiter in waiting {
            let _ = waiter.send(Err(Error::Transport {
                operation: "RESTRequest".to_owned(),
                message: "the events socket dropped before the answer".to_owned(),
                delivery: Delivery::Unknown,
                source: Some(Box::new(SharedError(cause.clone()))),
            }));
        }
    }
}

/// An [`Error`] shared with other subscribers, as the cause of another.
#[derive(Debug)]
pub(crate) struct SharedError(pub(crate) Arc<Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
