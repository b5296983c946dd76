//! One attempt as the store keeps it and the report prints it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::Outcome;

/// Milliseconds since the Unix epoch (the store's time unit).
pub type UnixMillis = i64;

/// Everything known about one attempt at one number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// The number as dialled (normalised).
    pub number: String,
    /// The other columns of the number's input line.
    pub data: BTreeMap<String, String>,
    /// 1 for the first attempt at this number.
    pub attempt: u32,
    /// The outcome, once the attempt has ended.
    pub outcome: Option<Outcome>,
    /// Q.850 cause of the callee's channel, when known.
    pub cause: Option<i64>,
    /// Asterisk's text for the cause.
    pub cause_text: Option<String>,
    /// Asterisk's message for `error` outcomes (e.g. a refused originate).
    pub message: Option<String>,
    /// When the originate was sent.
    pub originated_at: Option<UnixMillis>,
    /// When the callee answered.
    pub answered_at: Option<UnixMillis>,
    /// When the target joined the bridge.
    pub target_connected_at: Option<UnixMillis>,
    /// When the attempt ended.
    pub ended_at: Option<UnixMillis>,
    /// The callee's channel id (deterministic: campaign, number, attempt).
    pub channel_id: String,
    /// The target's channel id, once originated.
    pub target_channel_id: Option<String>,
    /// The bridge id, once made.
    pub bridge_id: Option<String>,
    /// The recording's name on Asterisk, once started.
    pub recording_name: Option<String>,
    /// The downloaded recording, relative to the recordings directory.
    pub recording_file: Option<String>,
}

impl AttemptRecord {
    /// Milliseconds from originate to answer (or to the end, unanswered).
    pub fn ring_ms(&self) -> Option<i64> {
        let start = self.originated_at?;
        let end = self.answered_at.or(self.ended_at)?;
        Some((end - start).max(0))
    }

    /// Milliseconds from answer to end.
    pub fn talk_ms(&self) -> Option<i64> {
        Some((self.ended_at? - self.answered_at?).max(0))
    }
}
