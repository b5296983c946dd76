//! A typed async client for the Asterisk REST Interface (ARI), on tokio and hyper.
//!
//! - **Every operation, typed**: `client.channels().originate(..)`, grouped by resource
//!   ([`Client::channels`], [`Client::bridges`], [`Client::recordings`], ... returning
//!   the groups of [`resources`]), taking the parameter structs of [`model::operations`]
//!   and returning [`model::models`]. The resource layer is generated from Asterisk's
//!   api-docs, like the model.
//! - **Errors that say what Asterisk said**: [`Error::Api`] carries the status, the reason
//!   the spec documents for it and Asterisk's own message; transport errors and time-outs
//!   say whether the request may have reached Asterisk ([`Error::delivery`]).
//! - **Events that survive restarts**: an [`AppConnection`] (dialled with
//!   [`Client::app_connection`], or accepted from Asterisk with
//!   [`Client::outbound_server`]) reconnects forever with jittered backoff, reports every
//!   failure as data ([`Update::Disconnected`], [`Update::ReconnectFailed`] carry the
//!   [`Error`]), detects half-open sockets with pings, never blocks its reader on the
//!   application (a bounded buffer with [`Update::Lagged`], never a silent drop), and
//!   after a reconnect re-reads Asterisk's state ([`Update::Resynced`]).
//! - **Handles** ([`ChannelHandle`], [`BridgeHandle`], [`PlaybackHandle`],
//!   [`RecordingHandle`]) with client-chosen ids: they subscribe before the object is
//!   created, receive only that object's events, and end when it is gone — after its
//!   last event, or when a resync no longer finds it. Typed waits
//!   ([`ObjectEvents::wait_for`], [`ObjectEvents::wait_until`], [`ObjectEvents::within`])
//!   return the event or an [`Error::NotReceived`] saying why it never came.
//! - **REST over WebSocket** (Asterisk 22.4+): [`AppConnection::rest_client`].
//! - **Call audio over WebSocket** (chan_websocket, Asterisk 22.6+):
//!   [`AppConnection::websocket_media`] and the [`media`] module.
//! - **Claiming broadcast calls** (`StasisBroadcast`, Asterisk 20.17/22.7/23.1+):
//!   [`AppConnection::claim_broadcast`] answers [`Claim::Won`], [`Claim::Taken`] or
//!   [`Claim::NotOffered`].
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use ari_client::model::Event;
//! use ari_client::model::events::{StasisStart, PlaybackFinished};
//! use ari_client::model::models::HangupReason;
//! use ari_client::model::operations::channels::Originate;
//! use ari_client::{Client, Credentials, Update};
//! use futures::StreamExt as _;
//!
//! # async fn run() -> Result<(), ari_client::Error> {
//! let client = Client::builder("http://127.0.0.1:8088")
//!     .credentials(Credentials::new("asterisk", "asterisk"))
//!     .build()?;
//! let app = client.app_connection(["hello"]).connect().await?;
//!
//! // Place a call into the app and play to it once it is there. A wait ends with an
//! // error saying why when the event cannot come any more (the call failed, say).
//! let mut call = app.originate(Originate::new("PJSIP/1000@trunk").formats("ulaw")).await?;
//! call.events.within(Duration::from_secs(30)).wait_for::<StasisStart>().await?;
//! let mut playback = call.play("sound:hello-world").await?;
//! playback.finished().await?;
//! call.hangup(HangupReason::Normal).await?;
//!
//! // Or serve calls routed to Stasis(hello).
//! let mut updates = app.updates();
//! while let Some(update) = updates.next().await {
//!     match update {
//!         Update::Event(event) => {
//!             if let Some(start) = event.downcast::<StasisStart>() {
//!                 app.channel(start.channel.id.clone()).answer().await?;
//!             }
//!         }
//!         Update::ReconnectFailed { error, retry_in } if error.is_unauthorized() => {
//!             eprintln!("ARI refuses our password; retrying in {retry_in:?}");
//!         }
//!         Update::Resynced(snapshot) => println!("after a reconnect I own {} channels", snapshot.channels.len()),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod backoff;
#[cfg(feature = "clap")]
pub mod cli;
mod client;
mod config;
mod connection;
pub mod credentials;
mod error;
mod generated;
mod handles;
pub mod media;
mod router;
mod websocket;

pub use ari_model as model;
pub use backoff::Backoff;
pub use client::Client;
pub use config::{ClientBuilder, TlsRoots};
pub use connection::{
    AppConnection, AppConnectionBuilder, Claim, IncomingChannel, IncomingChannels,
    OutboundServerBuilder, Snapshot, Update, Updates,
};
pub use credentials::Credentials;
pub use error::{Delivery, Error, ErrorChain, StreamEnd, WaitFailure};
pub use handles::{
    BridgeHandle, ChannelHandle, DialOptions, DialplanTarget, PlaybackHandle, RecordOptions,
    RecordingHandle, SnoopOptions, new_id, wav_is_whole,
};
pub use router::{ObjectEvents, Within};

/// The resource groups of operations, one per ARI resource: [`Client::channels`] returns
/// a [`resources::Channels`], and so on. Generated from the api-docs.
pub mod resources {
    pub use crate::generated::resources::*;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    #[test]
    fn handles_and_streams_can_cross_tasks() {
        shareable::<Client>();
        shareable::<AppConnection>();
        shareable::<Updates>();
        shareable::<ObjectEvents>();
        shareable::<ChannelHandle>();
        shareable::<BridgeHandle>();
        shareable::<PlaybackHandle>();
        shareable::<RecordingHandle>();
        shareable::<Error>();
    }
}
