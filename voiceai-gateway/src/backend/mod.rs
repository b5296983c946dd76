//! STUB (lead's local compile aid; replaced by the backend branch).
#![allow(missing_docs, dead_code, unused_variables, clippy::all)]
use crate::audio::AudioFormat;
use crate::protocol::{CallInfo, ProtocolKind, raw::StopReason, twilio::StreamIds};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub protocol: ProtocolKind,
    pub default_url: String,
    pub url_by_number: BTreeMap<String, String>,
    pub url_variable: String,
    pub auth_token: Option<String>,
    pub raw_format: AudioFormat,
    pub account_sid: String,
    pub connect_timeout: Duration,
}
#[derive(Debug, thiserror::Error)]
#[error("backend")]
pub struct BackendError;
pub fn resolve_url(
    settings: &BackendSettings,
    dialled: &str,
    variable: Option<&str>,
) -> Result<String, BackendError> {
    Err(BackendError)
}
pub async fn connect(
    settings: &BackendSettings,
    url: &str,
    call: &CallInfo,
    ids: &StreamIds,
    leg_format: AudioFormat,
) -> Result<(BackendTx, BackendRx), BackendError> {
    Err(BackendError)
}
pub struct BackendTx;
pub struct BackendRx;
impl BackendTx {
    pub async fn send_audio(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        Ok(())
    }
    pub async fn send_dtmf(&mut self, digit: char) -> Result<(), BackendError> {
        Ok(())
    }
    pub async fn send_mark(&mut self, name: &str, played: bool) -> Result<(), BackendError> {
        Ok(())
    }
    pub async fn stop(self, reason: StopReason) {}
}
pub enum BackendEvent {
    Audio(Bytes),
    Mark(String),
    Clear,
    Hangup {
        reason: Option<String>,
    },
    Transfer {
        extension: String,
        context: Option<String>,
    },
    Transcript(serde_json::Value),
    Closed(BackendClose),
}
pub enum BackendClose {
    Normal,
    Abnormal(String),
}
impl BackendRx {
    pub async fn recv(&mut self) -> BackendEvent {
        BackendEvent::Closed(BackendClose::Normal)
    }
}
