//! STUB (lead's local compile aid; replaced by the media branch).
#![allow(missing_docs, dead_code, unused_variables, clippy::all)]
use crate::audio::AudioFormat;
use ari_client::{AppConnection, ChannelHandle};
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Websocket,
    Rtp,
    Audiosocket,
}
impl MediaKind {
    pub const fn as_str(self) -> &'static str {
        "x"
    }
}
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub kind: MediaKind,
    pub format: AudioFormat,
    pub rtp_address: IpAddr,
    pub rtp_ports: RangeInclusive<u16>,
    pub audiosocket_listen: SocketAddr,
    pub connect_timeout: Duration,
}
#[derive(Debug, thiserror::Error)]
#[error("media")]
pub struct MediaError;
pub struct MediaFactory;
impl MediaFactory {
    pub async fn new(settings: MediaSettings) -> Result<MediaFactory, MediaError> {
        Err(MediaError)
    }
    pub async fn open(
        &self,
        app: &AppConnection,
        channel_id: &str,
    ) -> Result<MediaLeg, MediaError> {
        Err(MediaError)
    }
    pub fn settings(&self) -> &MediaSettings {
        unimplemented!()
    }
}
pub struct MediaLeg {
    pub channel: ChannelHandle,
    pub format: AudioFormat,
    pub tx: MediaTx,
    pub rx: MediaRx,
}
pub enum MediaInput {
    Audio(Bytes),
    Ended { reason: String },
}
pub struct MediaRx;
pub struct MediaTx;
impl MediaRx {
    pub async fn recv(&mut self) -> Option<MediaInput> {
        None
    }
}
impl MediaTx {
    pub async fn send_frame(&mut self, frame: &[u8], spurt_start: bool) -> Result<(), MediaError> {
        Ok(())
    }
    pub async fn flush(&mut self) -> Result<(), MediaError> {
        Ok(())
    }
    pub async fn close(self) {}
}
