//! A typed async client for the Asterisk REST Interface (ARI).
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

pub use ari_model as model;
pub use backoff::Backoff;
pub use client::Client;
pub use config::{ClientBuilder, TlsRoots};
pub use connection::{AppConnection, AppConnectionBuilder, Snapshot, Update, Updates};
pub use credentials::Credentials;
pub use error::{Delivery, Error};
pub use generated::resources::*;
pub use handles::{
    BridgeHandle, ChannelHandle, ObjectEvents, PlaybackHandle, RecordingHandle, new_id,
};
