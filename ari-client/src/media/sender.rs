//! The writing half of a media socket: audio in whole frames, paced on tokio's clock and
//! held while Asterisk has said `MEDIA_XOFF`.

use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt as _;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::reader::{Ending, Flow, Sink};
use super::{
    DEFAULT_MAX_QUEUED_FRAMES, MAX_COMMAND_BYTES, MAX_FRAMES_PER_MESSAGE, MAX_MESSAGE_BYTES,
    MediaCommand, media_error,
};
use crate::error::{Delivery, Error};

/// Writing half of a media socket.
///
/// Its calls are not cancel-safe: a `send_audio` dropped part way may have sent part of
/// the audio.
pub struct MediaSender {
    /// `None` only once dropped (it goes back to the reader task).
    sink: Option<Sink>,
    sink_back: Option<oneshot::Sender<Sink>>,
    flow: watch::Receiver<Flow>,
    max_queued_frames: Option<usize>,
    playout: Playout,
}

impl std::fmt::Debug for MediaSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSender")
            .field("max_queued_frames", &self.max_queued_frames)
            .field("paused", &self.is_paused())
            .finish_non_exhaustive()
    }
}

impl MediaSender {
    pub(super) fn new(
        sink: Sink,
        sink_back: oneshot::Sender<Sink>,
        flow: watch::Receiver<Flow>,
    ) -> Self {
        MediaSender {
            sink: Some(sink),
            sink_back: Some(sink_back),
            flow,
            max_queued_frames: Some(DEFAULT_MAX_QUEUED_FRAMES),
            playout: Playout::default(),
        }
    }

    /// Caps the audio this sender lets Asterisk queue, estimated from the frames sent
    /// and the time played (`None`: no cap, only `MEDIA_XOFF` stops it). Default
    /// [`DEFAULT_MAX_QUEUED_FRAMES`].
    pub fn set_max_queued_frames(&mut self, frames: Option<usize>) {
        self.max_queued_frames = frames;
    }

    /// Sends audio in whole frames, at most [`MAX_FRAMES_PER_MESSAGE`] per message (and no
    /// more than the cap), keeping Asterisk's queue under the cap
    /// ([`MediaSender::set_max_queued_frames`]) and waiting while Asterisk has said
    /// `MEDIA_XOFF`. A trailing partial frame is sent as is.
    ///
    /// # Errors
    /// When the socket is closed (also while waiting for `MEDIA_XON`) or writing fails.
    pub async fn send_audio(&mut self, audio: &[u8]) -> Result<(), Error> {
        let (frame, ptime) = {
            let flow = self.flow.borrow();
            (flow.frame_size.max(1), flow.ptime)
        };
        let per_message = MAX_FRAMES_PER_MESSAGE
            .min(self.max_queued_frames.unwrap_or(usize::MAX))
            .min(MAX_MESSAGE_BYTES / frame)
            .max(1);
        for piece in audio.chunks(frame * per_message) {
            if let Some(max) = self.max_queued_frames {
                let delay =
                    self.playout
                        .reserve(Instant::now(), piece.len().div_ceil(frame), max, ptime);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            self.until_accepting().await?;
            self.write(Message::binary(Bytes::copy_from_slice(piece)))
                .await?;
            // Gives the reader task its turn to apply an XOFF that came in meanwhile
            // before the next message: on a current-thread runtime it would otherwise
            // wait until the socket blocks this task.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// Waits until Asterisk accepts audio: not paused by `MEDIA_XOFF`, socket open.
    async fn until_accepting(&mut self) -> Result<(), Error> {
        let ending = match self
            .flow
            .wait_for(|flow| !flow.paused || flow.ended.is_some())
            .await
        {
            Ok(flow) => flow.ended.clone(),
            // The reader task is gone, so is the socket.
            Err(_) => Some(Ending::Closed),
        };
        ending.map_or(Ok(()), |ending| Err(ending.closed_error()))
    }

    /// Sends a control command; it does not wait for `MEDIA_XON` (a `FLUSH_MEDIA` is
    /// what empties Asterisk's queue).
    ///
    /// # Errors
    /// [`Error::Config`] when the command is longer than Asterisk reads
    /// ([`MAX_COMMAND_BYTES`]: a long `MARK_MEDIA` correlation id); a transport error when
    /// the socket is closed or writing fails.
    pub async fn send_command(&mut self, command: MediaCommand) -> Result<(), Error> {
        let text = command.to_json();
        if text.len() > MAX_COMMAND_BYTES {
            return Err(Error::Config(format!(
                "media command of {} bytes: Asterisk ignores text messages over {MAX_COMMAND_BYTES}",
                text.len()
            )));
        }
        if let Some(ending) = &self.flow.borrow().ended {
            return Err(ending.closed_error());
        }
        if command == MediaCommand::FlushMedia {
            // Asterisk drops its queue: nothing of ours is waiting to play.
            self.playout = Playout::default();
        }
        self.write(Message::text(text)).await
    }

    async fn write(&mut self, message: Message) -> Result<(), Error> {
        let ended = self.flow.borrow().ended.clone();
        match (&mut self.sink, ended) {
            (Some(sink), None) => sink.send(message).await.map_err(|e| {
                media_error(
                    "media WebSocket: write failed",
                    Delivery::Unknown,
                    Some(Box::new(e)),
                )
            }),
            (_, Some(ending)) => Err(ending.closed_error()),
            (None, None) => Err(Ending::Closed.closed_error()),
        }
    }

    /// Whether Asterisk asked us to stop sending (`MEDIA_XOFF` without `MEDIA_XON` yet).
    pub fn is_paused(&self) -> bool {
        self.flow.borrow().paused
    }

    /// Closes the socket (Asterisk hangs the channel up); nothing to do once it ended.
    ///
    /// # Errors
    /// When the close frame cannot be sent.
    pub async fn close(&mut self) -> Result<(), Error> {
        let ended = self.flow.borrow().ended.is_some();
        let Some(sink) = self.sink.as_mut().filter(|_| !ended) else {
            return Ok(());
        };
        sink.close().await.map_err(|e| {
            media_error(
                "media WebSocket: close failed",
                Delivery::Unknown,
                Some(Box::new(e)),
            )
        })
    }
}

impl Drop for MediaSender {
    fn drop(&mut self) {
        // The reader task closes the socket once the receiver is gone too.
        if let (Some(sink), Some(back)) = (self.sink.take(), self.sink_back.take()) {
            let _ = back.send(sink);
        }
    }
}

/// The sender's estimate of Asterisk's queue: a run of audio starts playing when its
/// first frame is sent and plays one frame per ptime; a gap that lets it drain starts a
/// new run.
#[derive(Debug, Default)]
struct Playout {
    /// When the current run started, and the frames sent in it.
    run: Option<(Instant, usize)>,
}

impl Playout {
    /// Counts `frames` more as sent at `now` and says how long to wait first so that at
    /// most `max` are queued (or only these, when they are more than `max`).
    fn reserve(&mut self, now: Instant, frames: usize, max: usize, ptime: Duration) -> Duration {
        let Some((started, sent)) = self.run else {
            self.run = Some((now, frames));
            return Duration::ZERO;
        };
        let played = now.duration_since(started).as_nanos() / ptime.as_nanos().max(1);
        let played = usize::try_from(played).unwrap_or(usize::MAX);
        if played >= sent {
            // The queue ran dry: a new run starts playing now.
            self.run = Some((now, frames));
            return Duration::ZERO;
        }
        self.run = Some((started, sent + frames));
        let excess = (sent - played + frames).saturating_sub(max.max(frames));
        ptime.saturating_mul(u32::try_from(excess).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    /// Frames Asterisk still holds at `at` of what was sent at `sends`, playing one per
    /// ptime from the first send (worked out apart from `Playout`).
    fn queued_at(sends: &[(Instant, usize)], at: Instant) -> usize {
        let start = sends[0].0;
        let sent: usize = sends.iter().filter(|(t, _)| *t <= at).map(|s| s.1).sum();
        let played = (at.duration_since(start).as_millis() / PTIME.as_millis()) as usize;
        sent.saturating_sub(played)
    }

    #[tokio::test(start_paused = true)]
    async fn a_minute_under_a_cap_of_500_takes_50_s_and_never_bursts_over_it() {
        let mut playout = Playout::default();
        let started = Instant::now();
        let mut sends = Vec::new();
        for _ in 0..3000 / MAX_FRAMES_PER_MESSAGE {
            let delay = playout.reserve(Instant::now(), MAX_FRAMES_PER_MESSAGE, 500, PTIME);
            tokio::time::sleep(delay).await;
            sends.push((Instant::now(), MAX_FRAMES_PER_MESSAGE));
            let queued = queued_at(&sends, Instant::now());
            assert!(
                queued <= 500,
                "{queued} frames queued at {:?}",
                started.elapsed()
            );
        }
        // (3000 - 500) frames had to play before the last message fitted.
        assert_eq!(started.elapsed(), PTIME * 2500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_drains_the_queue_starts_a_new_run() {
        let mut playout = Playout::default();
        assert_eq!(
            playout.reserve(Instant::now(), 400, 500, PTIME),
            Duration::ZERO
        );
        // 100 more fit; the next 20 wait for 20 frames to play.
        assert_eq!(
            playout.reserve(Instant::now(), 100, 500, PTIME),
            Duration::ZERO
        );
        assert_eq!(playout.reserve(Instant::now(), 20, 500, PTIME), PTIME * 20);
        tokio::time::sleep(PTIME * 520).await;
        // Everything played: no wait, and the estimate starts again from here.
        assert_eq!(
            playout.reserve(Instant::now(), 500, 500, PTIME),
            Duration::ZERO
        );
        assert_eq!(playout.reserve(Instant::now(), 1, 500, PTIME), PTIME);
        tokio::time::sleep(PTIME * 10).await;
        assert_eq!(playout.reserve(Instant::now(), 10, 500, PTIME), PTIME);
    }

    #[test]
    fn more_frames_than_the_cap_wait_only_for_the_queue_ahead() {
        let mut playout = Playout::default();
        let now = Instant::now();
        assert_eq!(playout.reserve(now, 30, 10, PTIME), Duration::ZERO);
        assert_eq!(playout.reserve(now, 30, 10, PTIME), PTIME * 30);
        assert_eq!(
            playout.reserve(now, 1, 10, Duration::ZERO),
            Duration::ZERO,
            "a zero ptime never waits, nor divides by zero"
        );
    }
}
