//! The two ways to get an [`AppConnection`], each with only the options that apply:
//! [`AppConnectionBuilder`] dials Asterisk, [`OutboundServerBuilder`] listens for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::rest::RestRoute;
use super::task::{Keepalive, Source, Task};
use super::update::{Update, Updates};
use super::{AppConnection, Shared};
use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::Error;
use crate::router::Router;

/// Where the task's sockets will come from.
enum SourceKind {
    Dial {
        subscribe_all: bool,
        event_sources: Vec<String>,
    },
    Accept {
        listener: tokio::net::TcpListener,
        expected: Option<String>,
    },
}

/// Settings both modes share.
#[derive(Debug, Clone)]
struct Common {
    client: Client,
    apps: Vec<String>,
    buffer: usize,
    keepalive: Keepalive,
    rest_over_websocket: bool,
}

impl Common {
    fn new(client: Client, apps: Vec<String>) -> Self {
        Common {
            client,
            apps,
            buffer: 4096,
            keepalive: Keepalive {
                ping_interval: Duration::from_secs(10),
                pong_timeout: Duration::from_secs(10),
            },
            rest_over_websocket: false,
        }
    }

    fn spawn(
        self,
        updates: broadcast::Sender<Update>,
        source: SourceKind,
        backoff: Backoff,
        ready: Option<oneshot::Sender<Result<(), Error>>>,
        cancel: CancellationToken,
    ) -> AppConnection {
        let (outgoing_tx, outgoing_rx) = mpsc::channel(256);
        let accepting = matches!(source, SourceKind::Accept { .. });
        let source = match source {
            SourceKind::Dial {
                subscribe_all,
                event_sources,
            } => Source::Dial {
                subscribe_all,
                event_sources,
            },
            SourceKind::Accept { listener, expected } => Source::Accept {
                sockets: super::handshake::acceptor(listener, expected, cancel.clone()),
            },
        };
        let router = Arc::new(Router::default());
        let rest = RestRoute::new(outgoing_tx, cancel.clone());
        let rest_client = self.client.with_rest_route(rest.clone());
        let client = if self.rest_over_websocket {
            rest_client.clone()
        } else {
            self.client.clone()
        };
        let shared = Arc::new(Shared {
            router: router.clone(),
            updates: updates.clone(),
            cancel: cancel.clone(),
            apps: self.apps.clone(),
            client,
            rest_client,
        });
        let span = tracing::info_span!("ari_events", apps = %self.apps.join(","));
        let task = Task {
            // Asterisk dials an outbound server often because HTTP cannot reach it: its
            // resyncs go over the socket.
            client: if accepting {
                shared.rest_client.clone()
            } else {
                self.client
            },
            apps: self.apps,
            source,
            keepalive: self.keepalive,
            backoff,
            updates,
            cancel,
            outgoing: outgoing_rx,
            router: router.clone(),
            rest,
        };
        tokio::spawn(
            async move {
                task.run(ready).await;
                // Handles' streams end with the connection.
                router.close();
            }
            .instrument(span),
        );
        AppConnection { shared }
    }
}

macro_rules! common_options {
    () => {
        /// How many updates a subscriber of [`AppConnection::updates`] may fall behind
        /// before it gets [`Update::Lagged`] (default 4096, at least 16). Updates are
        /// kept only until every subscriber has read them.
        pub fn buffer(mut self, updates: usize) -> Self {
            self.common.buffer = updates.max(16);
            self
        }

        /// How often to ping Asterisk (default 10 s), and how long past an unanswered
        /// ping the connection counts as dead (default 10 s): this catches half-open
        /// sockets. Each is at least 10 ms.
        pub fn keepalive(mut self, ping_interval: Duration, pong_timeout: Duration) -> Self {
            self.common.keepalive = Keepalive {
                ping_interval: ping_interval.max(Duration::from_millis(10)),
                pong_timeout: pong_timeout.max(Duration::from_millis(10)),
            };
            self
        }

        /// Make [`AppConnection::client`] (which handles use) send operations over this
        /// connection's socket (`RESTRequest`/`RESTResponse`, Asterisk 22.4+) instead of
        /// HTTP; [`AppConnection::rest_client`] does so in any case. Binary downloads
        /// still use HTTP.
        pub fn rest_over_websocket(mut self, enabled: bool) -> Self {
            self.common.rest_over_websocket = enabled;
            self
        }
    };
}

/// Builder of an [`AppConnection`] that dials Asterisk's `/ari/events`; see
/// [`Client::app_connection`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() or start()"]
pub struct AppConnectionBuilder {
    common: Common,
    subscribe_all: bool,
    event_sources: Vec<String>,
    backoff: Backoff,
}

impl AppConnectionBuilder {
    common_options!();

    /// Receive every event of the system, not only those of the apps' objects.
    ///
    /// This includes every device state: an app subscribed to them can deadlock
    /// Asterisk's ARI when its socket closes while a device state is being delivered
    /// (asterisk/asterisk#2170). To watch every channel, prefer
    /// [`event_sources`](Self::event_sources)`(["channel:"])`.
    pub fn subscribe_all(mut self, all: bool) -> Self {
        self.subscribe_all = all;
        self
    }

    /// Event sources every app is subscribed to after each (re)connect, before
    /// [`connect`](Self::connect) returns: `channel:ID`, `bridge:ID`, `endpoint:TECH/RES`,
    /// `deviceState:NAME`; a kind without an id (`channel:`, `bridge:`) means all of it.
    /// A refused subscription fails the connect (or, later, that reconnect attempt).
    pub fn event_sources<I, S>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_sources = sources.into_iter().map(Into::into).collect();
        self
    }

    /// Delays between reconnect attempts (default [`Backoff::default`]: 250 ms doubling
    /// to 4 s, jittered, so the connection is back within about 5 s of Asterisk).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Connects, and returns once the first connection is up; from then on reconnects
    /// forever.
    ///
    /// # Errors
    /// When the first connection fails (wrong credentials, Asterisk down, ...).
    pub async fn connect(self) -> Result<AppConnection, Error> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (updates, _) = broadcast::channel(self.common.buffer);
        let source = SourceKind::Dial {
            subscribe_all: self.subscribe_all,
            event_sources: self.event_sources,
        };
        let connection = self.common.spawn(
            updates,
            source,
            self.backoff,
            Some(ready_tx),
            CancellationToken::new(),
        );
        match ready_rx.await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Starts connecting in the background and returns at once, with a subscriber made
    /// before the connection task started (so its first update is [`Update::Connected`],
    /// or an [`Update::ReconnectFailed`] per failed attempt until then); retries until
    /// Asterisk answers.
    pub fn start(self) -> (AppConnection, Updates) {
        let (updates, _) = broadcast::channel(self.common.buffer);
        let cancel = CancellationToken::new();
        let first = Updates::new(updates.subscribe(), cancel.clone());
        let source = SourceKind::Dial {
            subscribe_all: self.subscribe_all,
            event_sources: self.event_sources,
        };
        (
            self.common
                .spawn(updates, source, self.backoff, None, cancel),
            first,
        )
    }
}

/// Builder of an [`AppConnection`] that Asterisk dials (ARI outbound WebSocket,
/// Asterisk 22.5+); see [`Client::outbound_server`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until bind()"]
pub struct OutboundServerBuilder {
    common: Common,
    listen: SocketAddr,
    expected: Option<crate::Credentials>,
}

impl OutboundServerBuilder {
    common_options!();

    /// The user and password Asterisk must present (websocket_client.conf
    /// `username`/`password`). Without them any peer that reaches the listening address
    /// is accepted: listen on loopback or a private network only.
    pub fn expect_credentials(mut self, credentials: crate::Credentials) -> Self {
        self.expected = Some(credentials);
        self
    }

    /// Listens, and returns at once with the address bound. Asterisk connects whenever
    /// it is ready (and again after each drop); wait for [`Update::Connected`] on a
    /// subscriber made before it can have come: the returned [`Updates`].
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn bind(self) -> Result<(AppConnection, Updates, SocketAddr), Error> {
        let address = self.listen;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| Error::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| Error::Bind { address, source })?;
        let expected = self
            .expected
            .as_ref()
            .map(crate::Credentials::basic_authorization);
        let (updates, _) = broadcast::channel(self.common.buffer);
        let cancel = CancellationToken::new();
        let first = Updates::new(updates.subscribe(), cancel.clone());
        // Asterisk redials by itself; the backoff only paces our own retries, of which
        // an accepting connection makes none.
        let connection = self.common.spawn(
            updates,
            SourceKind::Accept { listener, expected },
            Backoff::default(),
            None,
            cancel,
        );
        Ok((connection, first, bound))
    }
}

impl Client {
    /// An events connection for `apps` (Stasis application names) that dials Asterisk;
    /// call [`AppConnectionBuilder::connect`] or [`AppConnectionBuilder::start`] on it.
    pub fn app_connection<I, S>(&self, apps: I) -> AppConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AppConnectionBuilder {
            common: Common::new(self.clone(), apps.into_iter().map(Into::into).collect()),
            subscribe_all: false,
            event_sources: Vec::new(),
            backoff: Backoff::default(),
        }
    }

    /// Serve an ARI outbound WebSocket (Asterisk 22.5+, ari.conf
    /// `type=outbound_websocket`): Asterisk connects to `listen` and sends the events of
    /// `apps` there; call [`OutboundServerBuilder::bind`]. The result is an
    /// [`AppConnection`] like any other. REST goes over HTTP to this client's URL, or
    /// over the socket ([`AppConnection::rest_client`]).
    pub fn outbound_server<I, S>(&self, apps: I, listen: SocketAddr) -> OutboundServerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        OutboundServerBuilder {
            common: Common::new(self.clone(), apps.into_iter().map(Into::into).collect()),
            listen,
            expected: None,
        }
    }
}
