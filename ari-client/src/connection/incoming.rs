//! Channels that enter the app without a handle following them: inbound calls.

use std::pin::Pin;
use std::task::{Context, Poll};

use ari_model::Event;
use ari_model::events::StasisStart;
use futures::Stream;
use tokio::sync::mpsc;

use super::AppConnection;
use crate::handles::ChannelHandle;
use crate::router::Incoming;

/// Channels offered at most while the program has not taken them; beyond, they are only
/// seen in [`AppConnection::updates`].
const INCOMING_QUEUE: usize = 1024;

/// A channel that entered Stasis with no handle of this connection following it (a call
/// the dialplan sent to the app, not one the program created).
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingChannel {
    /// A handle subscribed before the `StasisStart` was dispatched: its events begin with
    /// that `StasisStart`, and nothing after it is missed.
    pub channel: ChannelHandle,
    /// The `StasisStart` (its `args` are the `Stasis()` application's arguments).
    pub start: StasisStart,
}

/// The stream of [`IncomingChannel`]s; see [`AppConnection::incoming_channels`].
pub struct IncomingChannels {
    receiver: mpsc::Receiver<Incoming>,
    connection: AppConnection,
}

impl std::fmt::Debug for IncomingChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingChannels").finish_non_exhaustive()
    }
}

impl AppConnection {
    /// Channels entering this connection's apps that no handle follows, each with a
    /// handle subscribed before its `StasisStart` was dispatched — unlike a handle made
    /// from the `StasisStart` seen in [`AppConnection::updates`], which can miss the
    /// events that follow it (a caller hanging up at once). Channels the program
    /// creates (originate, external media, snoop) are followed already and are not
    /// offered. One stream at a time: a new call replaces the previous stream, which
    /// ends. The stream ends when the connection closes.
    pub fn incoming_channels(&self) -> IncomingChannels {
        let (sender, receiver) = mpsc::channel(INCOMING_QUEUE);
        self.router().set_incoming(sender);
        IncomingChannels {
            receiver,
            connection: self.clone(),
        }
    }
}

impl IncomingChannels {
    /// The next channel, or `None` once the connection has closed (or a newer stream
    /// replaced this one).
    pub async fn next_channel(&mut self) -> Option<IncomingChannel> {
        let cancel = self.connection.cancel_token().clone();
        loop {
            let incoming = tokio::select! {
                incoming = self.receiver.recv() => incoming?,
                () = cancel.cancelled() => return None,
            };
            if let Some(channel) = self.wrap(incoming) {
                return Some(channel);
            }
        }
    }

    fn wrap(&self, (events, event): Incoming) -> Option<IncomingChannel> {
        let Event::StasisStart(start) = event.as_ref() else {
            return None;
        };
        let start = StasisStart::clone(start);
        let channel = ChannelHandle::new(self.connection.clone(), start.channel.id.clone(), events);
        Some(IncomingChannel { channel, start })
    }
}

impl Stream for IncomingChannels {
    type Item = IncomingChannel;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<IncomingChannel>> {
        loop {
            if self.connection.cancel_token().is_cancelled() {
                return Poll::Ready(None);
            }
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(incoming)) => {
                    if let Some(channel) = self.wrap(incoming) {
                        return Poll::Ready(Some(channel));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
