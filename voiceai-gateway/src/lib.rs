//! voiceai-gateway: takes inbound calls into a Stasis app and bridges their audio to an AI
//! voice backend over WebSocket. The binary is a thin wrapper over this library.
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod ari_servers;
pub mod audio;
pub mod audiosocket;
pub mod backend;
pub mod call_log;
pub mod calls;
pub mod config;
pub mod events;
pub mod gateway;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod rtp;
