//! The chan_websocket leg (Asterisk 22.6+), through `ari-client`'s media helper.

use ari_client::ChannelHandle;
use ari_client::media::{MediaCommand, MediaEvent, MediaFrame, MediaReceiver, MediaSender};
use ari_client::model::operations::channels::ExternalMedia;

use super::{MediaError, MediaInput, Opening, RxInner, TxInner};
use crate::audio::frames::Reframer;

/// Creates the channel, connects its socket, waits for StasisStart.
pub(super) async fn open(
    opening: &Opening<'_>,
) -> Result<(ChannelHandle, TxInner, RxInner), MediaError> {
    let params = ExternalMedia::new(opening.app.app(), opening.format.as_str())
        .channel_id(opening.channel_id);
    let app = opening.app.clone();
    let (mut channel, _, socket) = opening
        .create(async move { app.websocket_media_with(params).await })
        .await?;
    opening.in_stasis(&mut channel).await?;
    let (sender, receiver) = socket.split();
    Ok((
        channel,
        TxInner::Websocket(Tx { sender }),
        RxInner::Websocket(Rx {
            receiver,
            reframer: Reframer::new(opening.format),
        }),
    ))
}

/// Audio toward Asterisk.
#[derive(Debug)]
pub(super) struct Tx {
    sender: MediaSender,
}

impl Tx {
    pub(super) async fn send_frame(&mut self, frame: &[u8]) -> Result<(), MediaError> {
        self.sender.send_audio(frame).await.map_err(MediaError::Ari)
    }

    pub(super) async fn flush(&mut self) -> Result<(), MediaError> {
        self.sender
            .send_command(MediaCommand::FlushMedia)
            .await
            .map_err(MediaError::Ari)
    }

    pub(super) async fn close(mut self) {
        if let Err(error) = self.sender.close().await {
            tracing::debug!(%error, "closing the media socket");
        }
    }
}

/// Audio from Asterisk.
#[derive(Debug)]
pub(super) struct Rx {
    receiver: MediaReceiver,
    reframer: Reframer,
}

impl Rx {
    pub(super) async fn recv(&mut self) -> MediaInput {
        let frame_bytes = self.reframer.format().frame_bytes();
        loop {
            if let Some(frame) = self.reframer.next_frame() {
                return MediaInput::Audio(frame);
            }
            match self.receiver.recv().await {
                Some(Ok(MediaFrame::Audio(audio))) => {
                    if audio.len() == frame_bytes && self.reframer.remainder() == 0 {
                        return MediaInput::Audio(audio);
                    }
                    self.reframer.push(&audio);
                }
                Some(Ok(MediaFrame::Event(event))) => match event {
                    // MEDIA_START carries the connection id: never logged whole.
                    MediaEvent::Start(start) => {
                        if start.optimal_frame_size != frame_bytes {
                            tracing::debug!(
                                optimal_frame_size = start.optimal_frame_size,
                                frame_bytes,
                                "chan_websocket frames are not 20 ms: re-framed"
                            );
                        }
                    }
                    // Events may carry the connection id too: not logged.
                    _ => tracing::trace!("media event"),
                },
                Some(Ok(MediaFrame::Lagged { missed })) => {
                    tracing::warn!(
                        missed,
                        "media from Asterisk was not read in time: messages dropped"
                    );
                }
                Some(Ok(_)) => tracing::trace!("media message ignored"),
                Some(Err(error)) => {
                    return MediaInput::Ended {
                        reason: format!("the media WebSocket failed: {error}"),
                    };
                }
                None => {
                    return MediaInput::Ended {
                        reason: "the media WebSocket closed".to_owned(),
                    };
                }
            }
        }
    }
}
