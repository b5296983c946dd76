//! The reader task of a media socket, the flow state it keeps for the sender, and the
//! receiver it feeds.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, Stream, StreamExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::Instrument as _;

use super::{MediaEvent, MediaFrame, RECEIVER_QUEUE_FRAMES, media_error};
use crate::error::{Delivery, Error};
use crate::websocket::Socket;

/// The writing half, as the sender hands it back to the reader task when dropped.
pub(super) type Sink = SplitSink<Socket, Message>;

/// How long closing a socket that both halves let go of may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the reader task knows and the sender needs.
#[derive(Debug, Clone)]
pub(super) struct Flow {
    /// `MEDIA_XOFF` said, `MEDIA_XON` not yet.
    pub(super) paused: bool,
    /// Bytes per frame, from `MEDIA_START`.
    pub(super) frame_size: usize,
    /// Time per frame, from `MEDIA_START`.
    pub(super) ptime: Duration,
    /// Set when the socket closed or failed.
    pub(super) ended: Option<Ending>,
    /// Messages dropped after the last one the receiver got, once the task has ended.
    pub(super) missed_at_end: u64,
}

impl Default for Flow {
    fn default() -> Flow {
        // µ-law at 20 ms until MEDIA_START says otherwise.
        Flow {
            paused: false,
            frame_size: 160,
            ptime: Duration::from_millis(20),
            ended: None,
            missed_at_end: 0,
        }
    }
}

/// How a media socket ended.
#[derive(Debug, Clone)]
pub(super) enum Ending {
    /// Closed (by either side) or the connection dropped at a message boundary.
    Closed,
    /// Reading failed; shared by the receiver's error and the sender's.
    Failed(Arc<tungstenite::Error>),
}

impl Ending {
    /// The error of an operation that needs the socket open.
    pub(super) fn closed_error(&self) -> Error {
        media_error(
            "media WebSocket: closed",
            Delivery::NotSent,
            match self {
                Ending::Closed => None,
                Ending::Failed(error) => Some(Box::new(error.clone())),
            },
        )
    }
}

/// Starts the reader task on `runtime`; returns the flow it keeps, the queue it feeds and
/// where the sender returns the writing half.
pub(super) fn spawn(
    runtime: &tokio::runtime::Handle,
    stream: SplitStream<Socket>,
) -> (
    watch::Receiver<Flow>,
    mpsc::Receiver<MediaFrame>,
    oneshot::Sender<Sink>,
) {
    let (flow, flow_receiver) = watch::channel(Flow::default());
    let (frames, frames_receiver) = mpsc::channel(RECEIVER_QUEUE_FRAMES);
    let (sink_back, sink_returned) = oneshot::channel();
    let queue = Queue {
        frames,
        missed: 0,
        discarded: 0,
    };
    runtime.spawn(
        read(stream, queue, flow, sink_returned).instrument(tracing::debug_span!("media reader")),
    );
    (flow_receiver, frames_receiver, sink_back)
}

/// The receiver's queue, which never makes the reader wait.
struct Queue {
    frames: mpsc::Sender<MediaFrame>,
    /// Dropped because the queue was full, not yet reported.
    missed: u64,
    /// Dropped because the receiver is gone.
    discarded: u64,
}

impl Queue {
    fn push(&mut self, frame: MediaFrame) {
        if self.frames.is_closed() {
            self.discarded += 1;
            return;
        }
        if self.missed == 0 {
            if self.frames.try_send(frame).is_err() {
                tracing::debug!("media receiver not read: dropping messages");
                self.missed = 1;
            }
            return;
        }
        // The marker goes where the gap is, so it needs room for itself and the frame.
        match (self.frames.try_reserve(), self.frames.try_reserve()) {
            (Ok(marker), Ok(slot)) => {
                marker.send(MediaFrame::Lagged {
                    missed: self.missed,
                });
                slot.send(frame);
                self.missed = 0;
            }
            _ => self.missed += 1,
        }
    }
}

/// Reads until the socket ends, or until both halves are dropped (then closes it).
async fn read(
    mut stream: SplitStream<Socket>,
    mut queue: Queue,
    flow: watch::Sender<Flow>,
    mut sink_returned: oneshot::Receiver<Sink>,
) {
    let mut sink: Option<Sink> = None;
    let (mut sender_gone, mut receiver_gone) = (false, false);
    let ending = loop {
        if sender_gone && receiver_gone {
            if let Some(sink) = sink.take() {
                close(sink, &mut stream).await;
            }
            break Ending::Closed;
        }
        tokio::select! {
            message = stream.next() => match message {
                None => break Ending::Closed,
                Some(Err(error)) => break Ending::Failed(Arc::new(error)),
                Some(Ok(Message::Binary(audio))) => queue.push(MediaFrame::Audio(audio)),
                Some(Ok(Message::Text(text))) => {
                    let event = MediaEvent::from_text(text.as_str());
                    apply(&flow, &event);
                    queue.push(MediaFrame::Event(event));
                }
                Some(Ok(Message::Close(_))) => {
                    // Wake a waiting sender now; reading on lets tungstenite answer the
                    // close until the stream ends.
                    end(&flow, Ending::Closed, 0);
                }
                Some(Ok(_)) => {}
            },
            returned = &mut sink_returned, if !sender_gone => {
                sender_gone = true;
                sink = returned.ok();
            }
            () = queue.frames.closed(), if !receiver_gone => receiver_gone = true,
        }
    };
    tracing::debug!(
        missed = queue.missed,
        discarded = queue.discarded,
        "media socket ended"
    );
    end(&flow, ending, queue.missed);
}

/// Records the end (the first reason wins) and what the receiver has not been told.
fn end(flow: &watch::Sender<Flow>, ending: Ending, missed: u64) {
    flow.send_modify(|flow| {
        flow.ended.get_or_insert(ending);
        flow.paused = false;
        flow.missed_at_end = missed;
    });
}

/// Sends a close frame and reads until Asterisk answers, within [`CLOSE_GRACE`].
async fn close(mut sink: Sink, stream: &mut SplitStream<Socket>) {
    let closing = async {
        if sink.close().await.is_ok() {
            while let Some(Ok(_)) = stream.next().await {}
        }
    };
    if tokio::time::timeout(CLOSE_GRACE, closing).await.is_err() {
        tracing::debug!("media socket: no close answer within {CLOSE_GRACE:?}");
    }
}

/// Applies what a control event says to the flow the sender follows.
fn apply(flow: &watch::Sender<Flow>, event: &MediaEvent) {
    match event {
        MediaEvent::Xoff => {
            flow.send_if_modified(|flow| !std::mem::replace(&mut flow.paused, true));
        }
        MediaEvent::Xon => {
            flow.send_if_modified(|flow| std::mem::replace(&mut flow.paused, false));
        }
        MediaEvent::Start(start) => flow.send_modify(|flow| {
            // Zeros would make no frames at all: keep the defaults then.
            if start.optimal_frame_size > 0 {
                flow.frame_size = start.optimal_frame_size;
            }
            if start.ptime > 0 {
                flow.ptime = Duration::from_millis(start.ptime.into());
            }
        }),
        _ => {}
    }
}

/// Reading half of a media socket: audio and events in arrival order, as a
/// [`Stream`] or with [`MediaReceiver::recv`].
///
/// The reader task reads whether or not this is polled; it holds up to
/// [`RECEIVER_QUEUE_FRAMES`] messages, then reports what it had to drop as
/// [`MediaFrame::Lagged`]. After the last message the stream yields the error the socket
/// failed with, if it failed, then ends.
pub struct MediaReceiver {
    frames: mpsc::Receiver<MediaFrame>,
    flow: watch::Receiver<Flow>,
    lag_reported: bool,
    finished: bool,
}

impl std::fmt::Debug for MediaReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaReceiver").finish_non_exhaustive()
    }
}

impl MediaReceiver {
    pub(super) fn new(frames: mpsc::Receiver<MediaFrame>, flow: watch::Receiver<Flow>) -> Self {
        MediaReceiver {
            frames,
            flow,
            lag_reported: false,
            finished: false,
        }
    }

    /// The next audio frame, control event or lag marker; `None` once the socket ended.
    ///
    /// # Errors
    /// Once, after the last message, when reading the socket failed.
    pub async fn recv(&mut self) -> Option<Result<MediaFrame, Error>> {
        self.next().await
    }

    /// What follows the last queued message: the drops not yet reported, then the
    /// failure, if any.
    fn after_last(&mut self) -> Option<Result<MediaFrame, Error>> {
        if self.finished {
            return None;
        }
        let flow = self.flow.borrow();
        if !self.lag_reported && flow.missed_at_end > 0 {
            self.lag_reported = true;
            return Some(Ok(MediaFrame::Lagged {
                missed: flow.missed_at_end,
            }));
        }
        self.finished = true;
        match &flow.ended {
            Some(Ending::Failed(error)) => Some(Err(media_error(
                "media WebSocket: read failed",
                Delivery::Unknown,
                Some(Box::new(error.clone())),
            ))),
            _ => None,
        }
    }
}

impl Stream for MediaReceiver {
    type Item = Result<MediaFrame, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.frames.poll_recv(cx) {
            Poll::Ready(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            // The task has recorded its end before dropping the queue's sender.
            Poll::Ready(None) => Poll::Ready(this.after_last()),
            Poll::Pending => Poll::Pending,
        }
    }
}
