//! The call's audio relay: caller audio to the backend as it arrives, backend audio to
//! the caller at real time, DTMF and marks, and the backend's loss and return.
//!
//! The gateway, not the backend, holds the call: when the backend is unreachable or its
//! socket dies, the caller hears hold music while the relay reconnects with jittered
//! backoff (each new socket gets a fresh `start`), and after the policy's
//! `failover_after` the call goes to the fallback endpoint, or is hung up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ari_client::model::Event;
use ari_client::{Backoff, BridgeHandle, ChannelHandle};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::call::{CallContext, CallIds, departure};
use super::registry::{BackendState, CallCommand, CallEntry, CallStats, CallStatus};
use crate::audio::jitter::{Output, Playout};
use crate::backend::{self, BackendClose, BackendError, BackendEvent, BackendRx, BackendTx};
use crate::media::{MediaInput, MediaLeg};
use crate::protocol::CallInfo;
use crate::protocol::twilio::{StreamIds, random_sid};

/// First and longest wait between backend reconnection attempts.
const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(200), Duration::from_secs(2));

/// What the relay needs.
pub(super) struct Parts<'a> {
    pub(super) context: &'a CallContext,
    pub(super) entry: &'a CallEntry,
    pub(super) caller: ChannelHandle,
    pub(super) bridge: BridgeHandle,
    pub(super) leg: MediaLeg,
    pub(super) commands: mpsc::Receiver<CallCommand>,
    pub(super) ids: &'a CallIds,
    pub(super) info: &'a CallInfo,
    pub(super) url: &'a str,
}

/// What is left to tear down when the relay ends.
pub(super) struct Leftovers {
    pub(super) caller: ChannelHandle,
    pub(super) bridge: BridgeHandle,
    pub(super) leg: MediaLeg,
    /// The backend socket, when still open (it gets a `stop`).
    pub(super) backend: Option<BackendTx>,
    /// The API's commands, still read while a transferred call goes on.
    pub(super) commands: mpsc::Receiver<CallCommand>,
}

/// Why the relay ended, and what the call does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RelayEnd {
    /// The caller left (hung up, or the channel is gone).
    CallerGone(&'static str),
    /// Hang the caller up, for this reason.
    Hangup(&'static str),
    /// The gateway is shutting down.
    Shutdown,
    /// Bridge the caller with `endpoint` (an API transfer, or the failover).
    Transfer {
        /// The dial string.
        endpoint: String,
        /// Whether this is the failover after the backend stayed away.
        failover: bool,
    },
    /// Send the caller on in the dialplan (the raw protocol's `transfer`).
    Continue {
        /// Context.
        context: String,
        /// Extension.
        extension: String,
    },
}

type Connecting =
    Pin<Box<dyn Future<Output = Result<(BackendTx, BackendRx), BackendError>> + Send>>;

struct Backend<'a> {
    context: &'a CallContext,
    info: CallInfo,
    account_sid: String,
    call_sid: String,
    url: String,
    format: crate::audio::AudioFormat,
    tx: Option<BackendTx>,
    rx: Option<BackendRx>,
    connecting: Option<Connecting>,
    retry_at: Option<Instant>,
    down_since: Option<Instant>,
    backoff: Backoff,
    holding: bool,
    ever_connected: bool,
}

impl Backend<'_> {
    fn connect(&mut self) {
        let settings = self.context.backend.clone();
        let url = self.url.clone();
        let info = self.info.clone();
        let ids = StreamIds {
            account_sid: self.account_sid.clone(),
            call_sid: self.call_sid.clone(),
            stream_sid: random_sid("MZ"),
        };
        let format = self.format;
        self.connecting = Some(Box::pin(async move {
            backend::connect(&settings, &url, &info, &ids, format).await
        }));
    }
}

async fn recv_backend(rx: &mut Option<BackendRx>) -> BackendEvent {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn connected(
    connecting: &mut Option<Connecting>,
) -> Result<(BackendTx, BackendRx), BackendError> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn at(instant: Option<Instant>) {
    match instant {
        Some(instant) => tokio::time::sleep_until(instant).await,
        None => std::future::pending().await,
    }
}

/// Relays until something ends the call.
pub(super) async fn run(parts: Parts<'_>) -> (RelayEnd, Leftovers) {
    let Parts {
        context,
        entry,
        mut caller,
        bridge,
        mut leg,
        mut commands,
        ids,
        info,
        url,
    } = parts;
    let stats = entry.stats().clone();
    let metrics = entry.metrics().clone();
    let policy = &context.policy;
    let mut playout: Playout<String> = Playout::new(leg.format);
    let mut backend = Backend {
        context,
        info: info.clone(),
        account_sid: ids.stream.account_sid.clone(),
        call_sid: ids.stream.call_sid.clone(),
        url: url.to_owned(),
        format: leg.format,
        tx: None,
        rx: None,
        connecting: None,
        retry_at: None,
        down_since: Some(Instant::now()),
        backoff: Backoff::new(RECONNECT_BACKOFF.0, RECONNECT_BACKOFF.1),
        holding: false,
        ever_connected: false,
    };
    backend.connect();
    let mut dropped_reported = 0;
    let end = loop {
        let failover_at = backend
            .down_since
            .map(|since| since + policy.failover_after);
        tokio::select! {
            () = context.hangup_all.cancelled() => break RelayEnd::Shutdown,
            command = commands.recv() => match command {
                Some(CallCommand::Hangup) => break RelayEnd::Hangup("hangup_requested"),
                Some(CallCommand::Transfer { endpoint }) => {
                    break RelayEnd::Transfer { endpoint, failover: false }
                }
                // The registry keeps the sender while the call is registered.
                None => break RelayEnd::Hangup("gateway_error"),
            },
            event = caller.events.next_event() => {
                let Some(event) = event else { break RelayEnd::CallerGone("channel_gone") };
                if let Some(reason) = departure(&event) {
                    break RelayEnd::CallerGone(reason);
                }
                if let Event::ChannelDtmfReceived(dtmf) = event.as_ref() {
                    if let Some(digit) = dtmf.digit.chars().next() {
                        tracing::debug!(%digit, "DTMF");
                        entry.publish_dtmf(digit);
                        if let Some(tx) = backend.tx.as_mut() {
                            match tx.send_dtmf(digit).await {
                                Ok(()) => {}
                                // A key the protocol has no name for is not a lost socket.
                                Err(BackendError::InvalidDigit { .. }) => {
                                    tracing::debug!(%digit, "DTMF digit not forwarded");
                                }
                                Err(error) => {
                                    lose(&mut backend, &mut playout, entry, &bridge, &error.to_string()).await;
                                }
                            }
                        }
                    }
                }
            }
            input = leg.rx.recv() => match input {
                Some(MediaInput::Audio(frame)) => {
                    let arrived = Instant::now();
                    CallStats::bump(&stats.frames_in);
                    let mut forwarded = None;
                    if let Some(tx) = backend.tx.as_mut() {
                        match tx.send_audio(&frame).await {
                            Ok(()) => {
                                CallStats::bump(&stats.frames_to_backend);
                                forwarded = Some(arrived.elapsed());
                            }
                            Err(error) => {
                                lose(&mut backend, &mut playout, entry, &bridge, &error.to_string()).await;
                            }
                        }
                    }
                    metrics.frame_in(forwarded);
                }
                Some(MediaInput::Ended { reason }) => {
                    tracing::info!(%reason, "media channel ended");
                    break RelayEnd::Hangup("media_ended");
                }
                None => break RelayEnd::Hangup("media_ended"),
            },
            event = recv_backend(&mut backend.rx) => match event {
                BackendEvent::Audio(audio) => playout.push_audio_at(&audio, Instant::now()),
                BackendEvent::Mark(name) => playout.push_mark(name),
                BackendEvent::Clear => {
                    let marks = playout.clear();
                    if let Err(error) = leg.tx.flush().await {
                        tracing::debug!(%error, "flush failed");
                    }
                    if let Some(tx) = backend.tx.as_mut() {
                        for mark in marks {
                            if let Err(error) = tx.send_mark(&mark, false).await {
                                lose(&mut backend, &mut playout, entry, &bridge, &error.to_string()).await;
                                break;
                            }
                        }
                    }
                }
                BackendEvent::Hangup { reason } => {
                    tracing::info!(?reason, "the backend hangs up");
                    break RelayEnd::Hangup("backend_hangup");
                }
                BackendEvent::Transfer { extension, context: dialplan } => {
                    break RelayEnd::Continue {
                        context: dialplan.unwrap_or_else(|| policy.transfer_context.clone()),
                        extension,
                    };
                }
                BackendEvent::Transcript(data) => entry.publish_transcript(&data),
                BackendEvent::Closed(BackendClose::Normal) => {
                    tracing::info!("the backend closed the conversation");
                    backend.tx = None;
                    break RelayEnd::Hangup("backend_closed");
                }
                BackendEvent::Closed(BackendClose::Abnormal(reason)) => {
                    lose(&mut backend, &mut playout, entry, &bridge, &reason).await;
                }
            },
            output = playout.next() => match output {
                Output::Frame { audio, spurt_start } => {
                    if let Err(error) = leg.tx.send_frame(&audio, spurt_start).await {
                        tracing::info!(%error, "cannot send audio to Asterisk");
                        break RelayEnd::Hangup("media_ended");
                    }
                    CallStats::bump(&stats.frames_out);
                    let due = playout.last_due().unwrap_or_else(Instant::now);
                    metrics.frame_out(Instant::now().saturating_duration_since(due));
                }
                Output::Mark(name) => {
                    if let Some(tx) = backend.tx.as_mut() {
                        if let Err(error) = tx.send_mark(&name, true).await {
                            lose(&mut backend, &mut playout, entry, &bridge, &error.to_string()).await;
                        }
                    }
                }
            },
            result = connected(&mut backend.connecting) => {
                backend.connecting = None;
                match result {
                    Ok((tx, rx)) => {
                        tracing::info!(reconnected = backend.ever_connected, "backend connected");
                        if backend.ever_connected || backend.holding {
                            metrics.backend_reconnected();
                        }
                        backend.tx = Some(tx);
                        backend.rx = Some(rx);
                        backend.down_since = None;
                        backend.ever_connected = true;
                        backend.backoff.reset();
                        CallStats::bump(&stats.backend_connects);
                        if std::mem::take(&mut backend.holding) {
                            let _ = bridge.stop_moh().await;
                        }
                        entry.set_backend_state(BackendState::Connected);
                        entry.set_status(CallStatus::Active);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "backend unreachable");
                        metrics.backend_connect_failed();
                        if !backend.ever_connected && !backend.holding {
                            entry.count_backend_failure();
                        }
                        hold(&mut backend, entry, &bridge).await;
                        backend.retry_at = Some(Instant::now() + backend.backoff.next().unwrap_or(RECONNECT_BACKOFF.1));
                    }
                }
            },
            () = at(backend.retry_at) => {
                backend.retry_at = None;
                backend.connect();
            },
            () = at(failover_at) => {
                tracing::warn!(after = ?policy.failover_after, "backend away too long");
                break match &policy.fallback_endpoint {
                    Some(endpoint) => {
                        metrics.backend_failover();
                        RelayEnd::Transfer { endpoint: endpoint.clone(), failover: true }
                    }
                    None => RelayEnd::Hangup("backend_unavailable"),
                };
            },
        }
        let dropped = playout.dropped_frames();
        if dropped != dropped_reported {
            stats.frames_dropped.fetch_add(
                dropped - dropped_reported,
                std::sync::atomic::Ordering::Relaxed,
            );
            metrics.frames_out_dropped(dropped - dropped_reported);
            dropped_reported = dropped;
        }
    };
    let leftovers = Leftovers {
        caller,
        bridge,
        leg,
        backend: backend.tx.take(),
        commands,
    };
    (end, leftovers)
}

/// The backend socket is gone: drop its queued audio, hold the caller, reconnect.
async fn lose(
    backend: &mut Backend<'_>,
    playout: &mut Playout<String>,
    entry: &CallEntry,
    bridge: &BridgeHandle,
    reason: &str,
) {
    // A send fails as soon as the bot's close frame has arrived, before the receiving
    // half has finished the closing handshake and reported `Closed(Normal)`: the bot
    // ended the conversation, which that event will say. Stop sending and wait for it.
    if backend
        .tx
        .as_ref()
        .is_some_and(|tx| tx.ended() == Some(BackendClose::Normal))
        && backend.rx.is_some()
    {
        tracing::debug!("the backend is closing normally: nothing more is sent to it");
        backend.tx = None;
        return;
    }
    tracing::warn!(%reason, "backend connection lost");
    entry.metrics().backend_lost();
    backend.tx = None;
    backend.rx = None;
    playout.clear();
    backend.down_since.get_or_insert_with(Instant::now);
    hold(backend, entry, bridge).await;
    backend.retry_at = Some(Instant::now() + backend.backoff.next().unwrap_or(RECONNECT_BACKOFF.1));
}

/// Puts the caller on hold (once) while the backend is away.
async fn hold(backend: &mut Backend<'_>, entry: &CallEntry, bridge: &BridgeHandle) {
    entry.set_backend_state(BackendState::Reconnecting);
    entry.set_status(CallStatus::OnHold);
    if backend.holding {
        return;
    }
    backend.holding = true;
    if let Some(class) = &backend.context.policy.hold_music {
        if let Err(error) = bridge.start_moh(Some(class)).await {
            tracing::debug!(error = %error.chain(), "cannot start hold music");
        }
    }
}
