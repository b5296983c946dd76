//! The calls the gateway holds, and the ones that ended recently, in memory for the API.
//!
//! A call task registers itself ([`Calls::register`]) and gets a [`CallEntry`]: it updates
//! the call's status through it (each change is published on the [`EventBus`]) and counts
//! frames on its lock-free [`CallStats`]. The API reads [`CallSnapshot`]s and sends
//! [`CallCommand`]s to the task. When the task finishes (or the entry is dropped, e.g. by a
//! task that failed), the call moves to the bounded list of ended calls.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::call_log::{CallLog, CallRecord, TRANSCRIPT_LINES_KEPT};
use crate::events::{EventBus, EventKind, timestamp};
use crate::metrics::Metrics;

/// Commands queued per call at most (the API answers 409 beyond).
const COMMAND_QUEUE: usize = 8;

/// Whether the gateway answered the call or placed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A caller called in.
    Inbound,
    /// Placed through `POST /api/calls/originate`.
    Outbound,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallStatus {
    /// An originated call that has not been answered yet.
    Ringing,
    /// Answered; the bridge, media and backend are being set up.
    Answered,
    /// Audio flows between the caller and the backend.
    Active,
    /// The backend is away; the caller hears hold music while the gateway reconnects.
    OnHold,
    /// Being handed to another endpoint (transfer or fallback).
    Transferring,
    /// Over.
    Ended,
}

/// The state of a call's backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendState {
    /// Not connected yet.
    Connecting,
    /// Connected; audio flows.
    Connected,
    /// Lost; the gateway is reconnecting.
    Reconnecting,
    /// Given up on; the call went to the fallback endpoint (or was hung up).
    FailedOver,
    /// Closed (the call is over, or the bot ended it).
    Closed,
}

/// What the API can ask of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallCommand {
    /// Hang the call up.
    Hangup,
    /// Blind-transfer the caller to `endpoint` (the AI leg is removed).
    Transfer {
        /// A dial string (`PJSIP/100`, `Local/777@default`).
        endpoint: String,
    },
}

/// Why a command was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No call has this id (active or recently ended).
    #[error("no call with id {0}")]
    NotFound(String),
    /// The call is over.
    #[error("call {0} has already ended")]
    Ended(String),
    /// The call is busy with earlier commands.
    #[error("call {0} is busy with earlier commands")]
    Busy(String),
}

/// Counters a call task updates without taking the registry's lock.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Frames from Asterisk (the caller's audio).
    pub frames_in: AtomicU64,
    /// Frames sent to Asterisk (the backend's audio).
    pub frames_out: AtomicU64,
    /// Frames from Asterisk forwarded to the backend.
    pub frames_to_backend: AtomicU64,
    /// Frames of backend audio dropped (queue full, or cleared by barge-in).
    pub frames_dropped: AtomicU64,
    /// Backend connections made (the first, and each reconnection).
    pub backend_connects: AtomicU64,
}

impl CallStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A call as the API shows it (seed fields first, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSnapshot {
    /// The gateway's id of the call (also the Twilio `callSid` the bot sees).
    pub call_id: String,
    /// The caller's Asterisk channel.
    pub channel_id: String,
    /// The Asterisk server the call is on (the name of its `--ari-url`).
    pub server: String,
    /// The caller's number (for an outbound call: our caller id).
    pub caller_number: String,
    /// The number dialled (for an outbound call: the number called).
    pub called_number: String,
    /// Where the call is.
    pub status: CallStatus,
    /// When the call arrived (RFC 3339).
    pub start_time: String,
    /// Seconds since it arrived (or until it ended).
    pub duration: u64,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The backend connection.
    pub backend_state: BackendState,
    /// The media transport toward Asterisk (`websocket`, `rtp`, `audiosocket`).
    pub media: &'static str,
    /// Frames from Asterisk.
    pub frames_in: u64,
    /// Frames to Asterisk.
    pub frames_out: u64,
    /// Backend connections made.
    pub backend_connects: u64,
    /// When it was answered (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_time: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Why it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The call's recording (`--record`): its file name in `--recordings-dir`, once saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Why the call's recording was not saved, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_error: Option<String>,
}

/// What a call task tells the registry when it starts.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// The call's id (its Twilio `callSid`).
    pub call_id: String,
    /// The caller's channel.
    pub channel_id: String,
    /// The Asterisk server the channel is on (calls are keyed by server and channel).
    pub server: String,
    /// The caller's number.
    pub caller_number: String,
    /// The dialled number.
    pub called_number: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The media transport's name.
    pub media: &'static str,
    /// Where it starts (`Answered` for inbound, `Ringing` for outbound).
    pub status: CallStatus,
}

struct ActiveCall {
    snapshot: CallSnapshot,
    started: Instant,
    stats: Arc<CallStats>,
    commands: mpsc::Sender<CallCommand>,
    /// For the call log: the backend's URL and its transcripts (kept only with a log).
    backend_url: Option<String>,
    transcripts: Vec<serde_json::Value>,
}

impl ActiveCall {
    fn snapshot(&self) -> CallSnapshot {
        let mut snapshot = self.snapshot.clone();
        snapshot.duration = self.started.elapsed().as_secs();
        snapshot.frames_in = self.stats.frames_in.load(Ordering::Relaxed);
        snapshot.frames_out = self.stats.frames_out.load(Ordering::Relaxed);
        snapshot.backend_connects = self.stats.backend_connects.load(Ordering::Relaxed);
        snapshot
    }
}

#[derive(Default)]
struct State {
    active: HashMap<String, ActiveCall>,
    ended: VecDeque<CallSnapshot>,
    started_recently: VecDeque<Instant>,
    calls_total: u64,
    backend_failures: u64,
}

struct Inner {
    state: Mutex<State>,
    events: EventBus,
    ended_kept: usize,
    call_log: OnceLock<CallLog>,
    metrics: Arc<Metrics>,
}

/// The registry of calls; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("active", &self.active_count())
            .finish_non_exhaustive()
    }
}

/// Gateway-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStats {
    /// Calls up now.
    pub active_calls: usize,
    /// Calls that started in the last minute.
    pub calls_per_minute: usize,
    /// Calls since the gateway started.
    pub calls_total: u64,
    /// Backend connections lost or refused since the gateway started.
    pub backend_failures: u64,
}

impl Calls {
    /// An empty registry that keeps the last `ended_kept` ended calls and publishes on
    /// `events`.
    pub fn new(events: EventBus, ended_kept: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                events,
                ended_kept,
                call_log: OnceLock::new(),
                metrics: Arc::new(Metrics::new()),
            }),
        }
    }

    /// Appends every call that ends from now on to `log` (`--call-log`); set once.
    pub fn set_call_log(&self, log: CallLog) {
        let _ = self.inner.call_log.set(log);
    }

    /// The bus this registry publishes on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The gateway's metrics (one registry per call registry, so per gateway).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call and publishes `call_started`; the task reads its commands from the
    /// receiver.
    pub fn register(&self, call: NewCall) -> (CallEntry, mpsc::Receiver<CallCommand>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let stats = Arc::new(CallStats::default());
        let now = SystemTime::now();
        let snapshot = CallSnapshot {
            call_id: call.call_id.clone(),
            channel_id: call.channel_id.clone(),
            server: call.server.clone(),
            caller_number: call.caller_number.clone(),
            called_number: call.called_number.clone(),
            status: call.status,
            start_time: timestamp(now),
            duration: 0,
            direction: call.direction,
            backend_state: BackendState::Connecting,
            media: call.media,
            frames_in: 0,
            frames_out: 0,
            backend_connects: 0,
            answer_time: (call.status != CallStatus::Ringing).then(|| timestamp(now)),
            end_time: None,
            end_reason: None,
            recording: None,
            recording_error: None,
        };
        {
            let mut state = self.state();
            let started = Instant::now();
            state.started_recently.push_back(started);
            state.calls_total += 1;
            self.inner
                .metrics
                .call_started(call.direction == Direction::Outbound);
            state.active.insert(
                call.call_id.clone(),
                ActiveCall {
                    snapshot,
                    started,
                    stats: stats.clone(),
                    commands,
                    backend_url: None,
                    transcripts: Vec::new(),
                },
            );
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Started<'a> {
            call_id: &'a str,
            channel_id: &'a str,
            server: &'a str,
            caller_number: &'a str,
            called_number: &'a str,
            direction: Direction,
            // Added after the seed's fields, for the monitor page.
            media: &'a str,
            status: CallStatus,
        }
        self.inner.events.publish(
            EventKind::CallStarted,
            Some(&call.call_id),
            &Started {
                call_id: &call.call_id,
                channel_id: &call.channel_id,
                server: &call.server,
                caller_number: &call.caller_number,
                called_number: &call.called_number,
                direction: call.direction,
                media: call.media,
                status: call.status,
            },
        );
        let entry = CallEntry {
            calls: self.clone(),
            call_id: call.call_id,
            channel_id: call.channel_id,
            stats,
            finished: false,
        };
        (entry, receiver)
    }

    /// The active calls, oldest first.
    pub fn active(&self) -> Vec<CallSnapshot> {
        let state = self.state();
        let mut calls: Vec<(Instant, CallSnapshot)> = state
            .active
            .values()
            .map(|call| (call.started, call.snapshot()))
            .collect();
        calls.sort_by_key(|(started, _)| *started);
        calls.into_iter().map(|(_, call)| call).collect()
    }

    /// How many calls are up.
    pub fn active_count(&self) -> usize {
        self.state().active.len()
    }

    /// The ids of the active calls' channels.
    pub fn active_channels(&self) -> Vec<(String, String)> {
        self.state()
            .active
            .values()
            .map(|call| {
                (
                    call.snapshot.call_id.clone(),
                    call.snapshot.channel_id.clone(),
                )
            })
            .collect()
    }

    /// The ids and caller's channels of the active calls on `server`.
    pub fn channels_on(&self, server: &str) -> Vec<(String, String)> {
        self.state()
            .active
            .values()
            .filter(|call| call.snapshot.server == server)
            .map(|call| {
                (
                    call.snapshot.call_id.clone(),
                    call.snapshot.channel_id.clone(),
                )
            })
            .collect()
    }

    /// The active call on `server` whose caller's channel is `channel_id`, if any.
    pub fn find_channel(&self, server: &str, channel_id: &str) -> Option<CallSnapshot> {
        self.state()
            .active
            .values()
            .find(|call| call.snapshot.server == server && call.snapshot.channel_id == channel_id)
            .map(ActiveCall::snapshot)
    }

    /// A call by id, active or among the recently ended.
    pub fn get(&self, call_id: &str) -> Option<CallSnapshot> {
        let state = self.state();
        if let Some(call) = state.active.get(call_id) {
            return Some(call.snapshot());
        }
        state
            .ended
            .iter()
            .rev()
            .find(|call| call.call_id == call_id)
            .cloned()
    }

    /// The recently ended calls, newest last.
    pub fn ended(&self) -> Vec<CallSnapshot> {
        self.state().ended.iter().cloned().collect()
    }

    /// Queues `command` for the active call `call_id`.
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for an unknown id, [`CommandError::Ended`] for a call
    /// that is over, [`CommandError::Busy`] when its queue is full.
    pub fn command(&self, call_id: &str, command: CallCommand) -> Result<(), CommandError> {
        let state = self.state();
        let Some(call) = state.active.get(call_id) else {
            return Err(if state.ended.iter().any(|call| call.call_id == call_id) {
                CommandError::Ended(call_id.to_owned())
            } else {
                CommandError::NotFound(call_id.to_owned())
            });
        };
        call.commands
            .try_send(command)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => CommandError::Busy(call_id.to_owned()),
                mpsc::error::TrySendError::Closed(_) => CommandError::Ended(call_id.to_owned()),
            })
    }

    /// The gateway-wide counters.
    pub fn stats(&self) -> GatewayStats {
        let mut state = self.state();
        let minute_ago = Instant::now().checked_sub(Duration::from_secs(60));
        while let (Some(first), Some(limit)) = (state.started_recently.front(), minute_ago) {
            if *first >= limit {
                break;
            }
            state.started_recently.pop_front();
        }
        GatewayStats {
            active_calls: state.active.len(),
            calls_per_minute: state.started_recently.len(),
            calls_total: state.calls_total,
            backend_failures: state.backend_failures,
        }
    }

    /// Publishes every active call's `media_stats` and the gateway's `stats` (the
    /// gateway calls this every second).
    pub fn publish_stats(&self) {
        let events = &self.inner.events;
        if events.subscribers() == 0 {
            return;
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct MediaStats<'a> {
            call_id: &'a str,
            channel_id: &'a str,
            frames_in: u64,
            frames_out: u64,
            backend_state: BackendState,
            status: CallStatus,
        }
        for call in self.active() {
            events.publish(
                EventKind::MediaStats,
                Some(&call.call_id),
                &MediaStats {
                    call_id: &call.call_id,
                    channel_id: &call.channel_id,
                    frames_in: call.frames_in,
                    frames_out: call.frames_out,
                    backend_state: call.backend_state,
                    status: call.status,
                },
            );
        }
        events.publish(EventKind::Stats, None, &self.stats());
    }

    fn update(&self, call_id: &str, change: impl FnOnce(&mut CallSnapshot)) {
        if let Some(call) = self.state().active.get_mut(call_id) {
            change(&mut call.snapshot);
        }
    }

    fn finish(&self, call_id: &str, reason: &str) -> Option<CallSnapshot> {
        let mut state = self.state();
        let call = state.active.remove(call_id)?;
        self.inner
            .metrics
            .call_ended(reason, call.started.elapsed());
        let mut snapshot = call.snapshot();
        snapshot.status = CallStatus::Ended;
        if snapshot.backend_state != BackendState::FailedOver {
            snapshot.backend_state = BackendState::Closed;
        }
        snapshot.end_time = Some(timestamp(SystemTime::now()));
        snapshot.end_reason = Some(reason.to_owned());
        state.ended.push_back(snapshot.clone());
        while state.ended.len() > self.inner.ended_kept {
            state.ended.pop_front();
        }
        drop(state);
        if let Some(log) = self.inner.call_log.get() {
            log.log(CallRecord {
                call: snapshot.clone(),
                backend_url: call.backend_url,
                frames_to_backend: call.stats.frames_to_backend.load(Ordering::Relaxed),
                frames_dropped: call.stats.frames_dropped.load(Ordering::Relaxed),
                transcripts: call.transcripts,
            });
        }
        Some(snapshot)
    }
}

/// A registered call, held by its task; dropping it without [`CallEntry::finish`] ends
/// the call as `gateway_error`.
pub struct CallEntry {
    calls: Calls,
    call_id: String,
    channel_id: String,
    stats: Arc<CallStats>,
    finished: bool,
}

impl std::fmt::Debug for CallEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEntry")
            .field("call_id", &self.call_id)
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

impl CallEntry {
    /// The call's id.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The caller's channel id.
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// The call's counters.
    pub fn stats(&self) -> &Arc<CallStats> {
        &self.stats
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.calls.metrics()
    }

    /// The bus, for events the task publishes itself.
    pub fn events(&self) -> &EventBus {
        self.calls.events()
    }

    /// Moves the call to `status` (an answer publishes `call_answered`).
    pub fn set_status(&self, status: CallStatus) {
        let mut answered = false;
        self.calls.update(&self.call_id, |call| {
            if call.status == CallStatus::Ringing && status != CallStatus::Ringing {
                call.answer_time = Some(timestamp(SystemTime::now()));
                answered = true;
            }
            call.status = status;
        });
        if answered {
            self.publish_answered();
        }
    }

    /// Publishes `call_answered` (inbound calls are answered by the gateway itself).
    pub fn publish_answered(&self) {
        self.metrics().call_answered();
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Answered<'a> {
            call_id: &'a str,
            channel_id: &'a str,
        }
        self.events().publish(
            EventKind::CallAnswered,
            Some(&self.call_id),
            &Answered {
                call_id: &self.call_id,
                channel_id: &self.channel_id,
            },
        );
    }

    /// Records the backend connection's state and publishes `backend_state`.
    pub fn set_backend_state(&self, state: BackendState) {
        let mut changed = false;
        self.calls.update(&self.call_id, |call| {
            changed = call.backend_state != state;
            call.backend_state = state;
        });
        if matches!(state, BackendState::Reconnecting | BackendState::FailedOver) && changed {
            self.calls.state().backend_failures += 1;
        }
        if changed {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Changed<'a> {
                call_id: &'a str,
                channel_id: &'a str,
                state: BackendState,
            }
            self.events().publish(
                EventKind::BackendState,
                Some(&self.call_id),
                &Changed {
                    call_id: &self.call_id,
                    channel_id: &self.channel_id,
                    state,
                },
            );
        }
    }

    /// Counts a failed backend connection attempt (the first one at call start, before
    /// any reconnection state).
    pub fn count_backend_failure(&self) {
        self.calls.state().backend_failures += 1;
    }

    /// Publishes a `dtmf` event.
    pub fn publish_dtmf(&self, digit: char) {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Dtmf<'a> {
            call_id: &'a str,
            channel_id: &'a str,
            digit: char,
        }
        self.events().publish(
            EventKind::Dtmf,
            Some(&self.call_id),
            &Dtmf {
                call_id: &self.call_id,
                channel_id: &self.channel_id,
                digit,
            },
        );
    }

    /// Records the backend's URL (for the call log, without credentials).
    pub fn set_backend_url(&self, url: &str) {
        if self.calls.inner.call_log.get().is_some() {
            let url = crate::call_log::url_for_log(url);
            if let Some(call) = self.calls.state().active.get_mut(&self.call_id) {
                call.backend_url = Some(url);
            }
        }
    }

    /// Records where the call's recording was saved, or why it was not.
    pub fn set_recording(&self, saved: Result<String, String>) {
        self.calls.update(&self.call_id, |call| match saved {
            Ok(file) => call.recording = Some(file),
            Err(why) => call.recording_error = Some(why),
        });
    }

    /// Publishes a `transcript` event carrying what the backend sent (and keeps it for
    /// the call log, when there is one).
    pub fn publish_transcript(&self, data: &serde_json::Value) {
        if self.calls.inner.call_log.get().is_some() {
            if let Some(call) = self.calls.state().active.get_mut(&self.call_id) {
                if call.transcripts.len() < TRANSCRIPT_LINES_KEPT {
                    call.transcripts.push(data.clone());
                }
            }
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Transcript<'a> {
            call_id: &'a str,
            channel_id: &'a str,
            data: &'a serde_json::Value,
        }
        self.events().publish(
            EventKind::Transcript,
            Some(&self.call_id),
            &Transcript {
                call_id: &self.call_id,
                channel_id: &self.channel_id,
                data,
            },
        );
    }

    /// Ends the call with `reason`, keeps it among the ended calls and publishes
    /// `call_ended`.
    pub fn finish(mut self, reason: &str) {
        self.finish_once(reason);
    }

    fn finish_once(&mut self, reason: &str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let Some(ended) = self.calls.finish(&self.call_id, reason) else {
            return;
        };
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Ended<'a> {
            call_id: &'a str,
            channel_id: &'a str,
            reason: &'a str,
            duration: u64,
            // Added after the seed's fields (`--record`).
            #[serde(skip_serializing_if = "Option::is_none")]
            recording: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            recording_error: Option<&'a str>,
            // The Asterisk server the call was on (several `--ari-url`).
            server: &'a str,
        }
        self.events().publish(
            EventKind::CallEnded,
            Some(&self.call_id),
            &Ended {
                call_id: &self.call_id,
                channel_id: &self.channel_id,
                reason,
                duration: ended.duration,
                recording: ended.recording.as_deref(),
                recording_error: ended.recording_error.as_deref(),
                server: &ended.server,
            },
        );
    }
}

impl Drop for CallEntry {
    fn drop(&mut self) {
        self.finish_once("gateway_error");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn new_call(id: &str) -> NewCall {
        NewCall {
            call_id: id.to_owned(),
            channel_id: format!("chan-{id}"),
            server: "lab".to_owned(),
            caller_number: "+15550001".to_owned(),
            called_number: "8000".to_owned(),
            direction: Direction::Inbound,
            media: "websocket",
            status: CallStatus::Answered,
        }
    }

    #[tokio::test]
    async fn a_call_lives_commands_reach_it_and_it_ends_with_its_reason() {
        let bus = EventBus::new(64);
        let mut events = bus.subscribe();
        let calls = Calls::new(bus, 10);
        let (entry, mut commands) = calls.register(new_call("CA1"));
        CallStats::bump(&entry.stats().frames_in);
        entry.set_status(CallStatus::Active);
        let active = calls.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].frames_in, 1);
        assert_eq!(active[0].status, CallStatus::Active);
        calls.command("CA1", CallCommand::Hangup).unwrap();
        assert_eq!(commands.recv().await, Some(CallCommand::Hangup));
        assert_eq!(
            calls.command("CA9", CallCommand::Hangup),
            Err(CommandError::NotFound("CA9".into()))
        );
        entry.finish("caller_hangup");
        assert!(calls.active().is_empty());
        let ended = calls.get("CA1").unwrap();
        assert_eq!(ended.status, CallStatus::Ended);
        assert_eq!(ended.end_reason.as_deref(), Some("caller_hangup"));
        assert_eq!(
            calls.command("CA1", CallCommand::Hangup),
            Err(CommandError::Ended("CA1".into()))
        );
        let kinds: Vec<EventKind> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|event| event.kind)
            .collect();
        assert_eq!(kinds, [EventKind::CallStarted, EventKind::CallEnded]);
    }

    #[test]
    fn a_dropped_entry_ends_the_call_and_old_calls_are_forgotten() {
        let calls = Calls::new(EventBus::new(4), 2);
        for id in ["CA1", "CA2", "CA3"] {
            drop(calls.register(new_call(id)));
        }
        let ended: Vec<String> = calls.ended().into_iter().map(|c| c.call_id).collect();
        assert_eq!(ended, ["CA2", "CA3"]);
        assert_eq!(
            calls.get("CA3").unwrap().end_reason.as_deref(),
            Some("gateway_error")
        );
        assert_eq!(calls.stats().calls_total, 3);
        assert_eq!(calls.stats().calls_per_minute, 3);
    }

    #[test]
    fn an_outbound_call_is_answered_once_and_backend_failures_count() {
        let bus = EventBus::new(64);
        let mut events = bus.subscribe();
        let calls = Calls::new(bus, 2);
        let mut call = new_call("CA1");
        call.direction = Direction::Outbound;
        call.status = CallStatus::Ringing;
        let (entry, _commands) = calls.register(call);
        assert_eq!(calls.get("CA1").unwrap().answer_time, None);
        entry.set_status(CallStatus::Answered);
        entry.set_status(CallStatus::Active);
        entry.set_backend_state(BackendState::Connected);
        entry.set_backend_state(BackendState::Reconnecting);
        entry.set_backend_state(BackendState::Reconnecting);
        assert!(calls.get("CA1").unwrap().answer_time.is_some());
        assert_eq!(calls.stats().backend_failures, 1);
        let kinds: Vec<EventKind> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|event| event.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::CallStarted,
                EventKind::CallAnswered,
                EventKind::BackendState,
                EventKind::BackendState
            ]
        );
    }

    #[test]
    fn calls_are_keyed_by_server_and_channel() {
        let calls = Calls::new(EventBus::new(16), 4);
        let on = |id: &str, server: &str| {
            let mut call = new_call(id);
            call.channel_id = "1796126184.674".to_owned();
            call.server = server.to_owned();
            call
        };
        // Two Asterisk servers can hand out the same channel id: two calls.
        let (a, _a_commands) = calls.register(on("CA1", "pbx1"));
        let (_b, _b_commands) = calls.register(on("CA2", "pbx2"));
        assert_eq!(
            calls.channels_on("pbx1"),
            [("CA1".to_owned(), "1796126184.674".to_owned())]
        );
        assert_eq!(calls.channels_on("pbx2")[0].0, "CA2");
        assert!(calls.channels_on("pbx3").is_empty());
        let found = calls.find_channel("pbx2", "1796126184.674").unwrap();
        assert_eq!(
            (found.call_id.as_str(), found.server.as_str()),
            ("CA2", "pbx2")
        );
        assert!(calls.find_channel("pbx3", "1796126184.674").is_none());
        a.finish("caller_hangup");
        assert!(calls.channels_on("pbx1").is_empty());
        assert_eq!(
            calls.get("CA1").unwrap().server,
            "pbx1",
            "ended calls keep it"
        );
    }
}
