//! The events WebSocket of one or more Stasis apps, kept up forever.
//!
//! A background task owns the socket ([`task`]). It reads every frame as it arrives and
//! publishes it into a bounded broadcast buffer and to the handles' per-object queues,
//! so it never waits on the application (Asterisk drops readers that fall 100 ms
//! behind). A subscriber that falls behind gets [`Update::Lagged`] with the number of
//! updates it missed — never a silent drop.
//!
//! When the socket drops, subscribers get [`Update::Disconnected`] with the error; the
//! task reconnects with jittered backoff (an [`Update::ReconnectFailed`] per failed
//! attempt), then sends [`Update::Reconnected`] and, once it has re-read the apps and
//! Asterisk's channels and bridges, [`Update::Resynced`] with that snapshot: Asterisk
//! does not queue events for a disconnected client, so this is how a program rebuilds
//! its state. Handles whose object did not survive end their streams then.

mod builder;
mod claim;
mod handshake;
mod incoming;
pub(crate) mod rest;
mod resync;
mod task;
mod update;

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use builder::{AppConnectionBuilder, OutboundServerBuilder};
pub use claim::Claim;
pub use incoming::{IncomingChannel, IncomingChannels};
pub(crate) use resync::Live;
pub use update::{Snapshot, Update, Updates};

use crate::client::Client;
use crate::router::Router;

struct Shared {
    updates: broadcast::Sender<Update>,
    cancel: CancellationToken,
    apps: Vec<String>,
    /// What handles send REST with (HTTP, or `rest_client` when so built).
    client: Client,
    /// REST over this connection's socket.
    rest_client: Client,
    router: Arc<Router>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A live events connection for one or more Stasis apps. Clones share it; it closes
/// when the last clone is dropped (or on [`AppConnection::close`]).
#[derive(Clone)]
pub struct AppConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AppConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConnection")
            .field("apps", &self.shared.apps)
            .finish_non_exhaustive()
    }
}

impl AppConnection {
    /// Every update from now on, as a stream. Each call is an independent subscriber.
    pub fn updates(&self) -> Updates {
        Updates::new(self.shared.updates.subscribe(), self.shared.cancel.clone())
    }

    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.shared.cancel
    }

    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.shared.router
    }

    /// Live per-object subscriptions (handles' event streams), for leak checks.
    pub fn object_subscriptions(&self) -> usize {
        self.shared.router.len()
    }

    /// The apps this connection serves.
    pub fn apps(&self) -> &[String] {
        &self.shared.apps
    }

    /// The first app (the one handles originate into).
    pub fn app(&self) -> &str {
        self.shared.apps.first().map_or("", String::as_str)
    }

    /// The client this connection's handles send REST with: HTTP, or this connection's
    /// socket when built with `rest_over_websocket(true)`.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// A client that sends every operation with a JSON or empty answer over this
    /// connection's events socket (`RESTRequest`/`RESTResponse`, Asterisk 22.4+), and
    /// binary downloads over HTTP. A request made while the socket is down waits for the
    /// next one within its time-out, and is never sent after its caller gave up (time-out,
    /// dropped future); one whose socket drops after it was written fails at once with
    /// [`crate::Delivery::Unknown`]; all fail once the connection is closed
    /// ([`crate::Error::Closed`] when never written).
    pub fn rest_client(&self) -> &Client {
        &self.shared.rest_client
    }

    /// Closes the connection for every clone: update streams end once drained, handles'
    /// streams end with [`crate::StreamEnd::Closed`], and so do handles made later.
    pub fn close(&self) {
        self.shared.cancel.cancel();
    }
}
