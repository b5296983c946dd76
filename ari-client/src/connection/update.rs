//! What an app connection delivers: [`Update`]s, the [`Snapshot`] of a resync, and the
//! [`Updates`] stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ari_model::Event;
use ari_model::models::{Application, Bridge, Channel, LiveRecording, Playback};
use futures::{Stream, StreamExt as _};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// What an [`crate::AppConnection`] delivers: events, and markers of the connection's
/// life. Errors travel as data (shared, so every subscriber gets the same one) so that
/// a program can act on them, e.g. alert on `error.is_unauthorized()` during an outage.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Update {
    /// The first connection is up.
    Connected,
    /// The connection dropped; events until [`Update::Reconnected`] are lost.
    Disconnected {
        /// Why.
        error: Arc<Error>,
    },
    /// An attempt to connect failed; the next one follows after `retry_in`. One per
    /// attempt, for as long as the outage lasts.
    ReconnectFailed {
        /// Why this attempt failed (e.g. [`Error::is_unauthorized`] after a password
        /// change, or a transport error while Asterisk is down).
        error: Arc<Error>,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// The connection is up again after a drop.
    Reconnected,
    /// State re-read after a reconnect: rebuild yours from it. Events delivered after
    /// `Reconnected` may predate the snapshot. Handles whose object is gone have ended.
    Resynced(Arc<Snapshot>),
    /// Re-reading state after a reconnect failed; the connection itself is up.
    ResyncFailed {
        /// Why.
        error: Arc<Error>,
    },
    /// An event.
    Event(Arc<Event>),
    /// A frame that is not a decodable event (kept, with why).
    Undecodable {
        /// Why it did not decode.
        error: String,
        /// The frame as received (binary frames lossily as text).
        raw: String,
    },
    /// This subscriber fell behind and missed this many updates.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The state of the connection's apps, read after a reconnect.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Snapshot {
    /// Each app as `GET /applications/{app}` lists it.
    pub applications: Vec<Application>,
    /// The channels the apps own (those that still existed when read).
    pub channels: Vec<Channel>,
    /// The bridges the apps own (those that still existed when read).
    pub bridges: Vec<Bridge>,
    /// The playbacks that handles of this connection follow and that still run.
    pub playbacks: Vec<Playback>,
    /// The live recordings that handles of this connection follow and that still run.
    pub recordings: Vec<LiveRecording>,
}

/// A stream of [`Update`]s; see [`crate::AppConnection::updates`].
pub struct Updates {
    inner: Pin<Box<dyn Stream<Item = Update> + Send + Sync>>,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates").finish_non_exhaustive()
    }
}

impl Updates {
    /// A stream that ends once the connection is closed (`closed`) and what was already
    /// sent has been read.
    pub(crate) fn new(receiver: broadcast::Receiver<Update>, closed: CancellationToken) -> Self {
        let inner =
            futures::stream::unfold((receiver, closed), |(mut receiver, closed)| async move {
                loop {
                    let next = match receiver.try_recv() {
                        Err(broadcast::error::TryRecvError::Empty) => {
                            if closed.is_cancelled() {
                                return None;
                            }
                            tokio::select! {
                                next = receiver.recv() => next,
                                // Drain what is left, then end.
                                () = closed.cancelled() => continue,
                            }
                        }
                        Ok(update) => Ok(update),
                        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                            Err(broadcast::error::RecvError::Lagged(missed))
                        }
                        Err(broadcast::error::TryRecvError::Closed) => {
                            Err(broadcast::error::RecvError::Closed)
                        }
                    };
                    return match next {
                        Ok(update) => Some((update, (receiver, closed))),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            Some((Update::Lagged { missed }, (receiver, closed)))
                        }
                        Err(broadcast::error::RecvError::Closed) => None,
                    };
                }
            });
        Updates {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Updates {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        self.inner.poll_next_unpin(cx)
    }
}
