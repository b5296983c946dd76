//! Shared kit of the gateway's integration tests: an AI backend to talk to ([`bot`]), the
//! gateway binary run as a child process ([`gateway`]), clients of its REST API and event
//! WebSockets ([`http`]), and a whole lab call through the gateway ([`call`]). Audio
//! checks and SIPp callers come from `ari_lab` (`ari_lab::audio`, `ari_lab::pcap`,
//! `ari_lab::sipp`, `ari_lab::tap`).
#![allow(dead_code, unreachable_pub)]

pub mod bot;
pub mod call;
pub mod gateway;
pub mod http;

use std::time::Duration;

/// How long a step of a test may wait by default.
pub const WAIT: Duration = Duration::from_secs(10);
