//! One attempt at one number, from originate to the stored outcome: dial the callee
//! through the trunk, and once answered bridge it to the target, record the bridge, wait
//! for either leg to end, tear everything down and download the recording.
//!
//! Progress is written through an [`AttemptLog`] (the store) before the next step that
//! depends on it, so a crash at any point leaves a record a restart can reconcile.

mod amd;
mod dial;
mod recording;
mod talk;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ari_client::AppConnection;
use futures::future::BoxFuture;
use tracing::Instrument as _;

use crate::ids::AttemptIds;
use crate::outcome::Outcome;
use crate::record::UnixMillis;

/// The settings every call of a campaign shares.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Stasis app the callee and target enter.
    pub app: String,
    /// PJSIP trunk endpoint.
    pub trunk: String,
    /// Dial string of the target.
    pub target: String,
    /// Caller id presented to callees.
    pub caller_id: Option<String>,
    /// Ring time before no answer.
    pub call_timeout: Duration,
    /// How long the target may take to answer.
    pub target_timeout: Duration,
    /// Played to a callee whose target failed or did not come in time (abandoned).
    pub target_failed_sound: String,
    /// How long a live callee waits for the target before it is abandoned (the target
    /// attempt hung up, the message played); `None`: up to `target_timeout`.
    pub abandon_after: Option<Duration>,
    /// Recording format.
    pub recording_format: String,
    /// Longest recording.
    pub max_recording: Duration,
    /// Where recordings are downloaded to.
    pub recordings_dir: PathBuf,
    /// Delete recordings from Asterisk after a verified download.
    pub delete_after_download: bool,
    /// Answering-machine detection, when on.
    pub amd: Option<crate::rules::args::AmdSettings>,
}

/// How far a call had got, as the store knows it: where a call picks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Nothing sent yet: originate.
    New,
    /// The originate may have been sent (a restart): adopt the callee if it exists.
    Dialing,
    /// The callee answered (the store has when); bridge and target may be half made.
    Answered,
    /// Callee and target were bridged and recorded.
    Connected,
}

/// One attempt to make or pick up.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The store's id of the attempt.
    pub attempt_id: i64,
    /// The number (normalised: digits only).
    pub number: String,
    /// Channel variables for the callee (the number's other input columns).
    pub variables: BTreeMap<String, String>,
    /// The attempt's Asterisk ids.
    pub ids: AttemptIds,
    /// Where to start.
    pub stage: Stage,
    /// When the store says a live callee was there (a restart's plan; `None` for a new
    /// attempt): a callee still waiting for its target is cut `--abandon-after` from it.
    pub live_at: Option<UnixMillis>,
}

/// How an attempt ended, as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEnd {
    /// The outcome.
    pub outcome: Outcome,
    /// Q.850 cause of the callee's channel, when known.
    pub cause: Option<i64>,
    /// Asterisk's text for it.
    pub cause_text: Option<String>,
    /// What went wrong, in words, for `error`, `interrupted` and `target_failed`.
    pub message: Option<String>,
    /// When it ended.
    pub ended_at: UnixMillis,
    /// When a live callee was there (the answer, or AMD's verdict): the target must be
    /// connected within 2 s of it or the call counts as abandoned. `None`: not live
    /// answered (or picked up after a restart).
    pub live_at: Option<UnixMillis>,
    /// When the target was connected, if it was.
    pub connected_at: Option<UnixMillis>,
}

/// What became of a plan.
// One per call, moved once: boxing the end would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CallResult {
    /// The attempt ended; its outcome is stored. Its recording, when there is one, is
    /// still on Asterisk: [`save_recording`] it (after freeing the call's slot: the
    /// download is not a call).
    Ended(CallEnd, Option<Recording>),
    /// Nothing reached Asterisk (it was unreachable): the same attempt, same ids, may be
    /// sent again later without any risk of a second call.
    NotSent,
    /// The originate may have reached Asterisk but its channel could not be looked up
    /// (Asterisk unreachable): look it up again later (stage `Dialing`), never resend.
    LookUpAgain,
}

/// Why the progress of a call could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("storing the call's progress failed: {0}")]
pub struct LogError(pub String);

/// Where a call writes its progress: the store, durable when each returns.
pub trait AttemptLog: Send + Sync {
    /// The callee answered.
    fn answered(&self, attempt_id: i64, at: UnixMillis) -> BoxFuture<'_, Result<(), LogError>>;
    /// Callee and target are bridged and the recording runs.
    fn connected<'a>(
        &'a self,
        attempt_id: i64,
        at: UnixMillis,
        ids: &'a AttemptIds,
    ) -> BoxFuture<'a, Result<(), LogError>>;
    /// A live callee is there (the answer, or AMD's verdict): the abandon rate counts
    /// from `at`.
    fn live(&self, attempt_id: i64, at: UnixMillis) -> BoxFuture<'_, Result<(), LogError>>;
    /// The attempt ended.
    fn finished<'a>(
        &'a self,
        attempt_id: i64,
        end: &'a CallEnd,
    ) -> BoxFuture<'a, Result<(), LogError>>;
    /// The recording is in the recordings directory as `file`.
    fn recording_saved<'a>(
        &'a self,
        attempt_id: i64,
        file: &'a str,
    ) -> BoxFuture<'a, Result<(), LogError>>;
    /// A state change that only the call's event log keeps (`originated`, `ringing`);
    /// the call goes on whether it is stored or not.
    fn event(
        &self,
        attempt_id: i64,
        kind: crate::store::CallEventKind,
        at: UnixMillis,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        let _ = (attempt_id, kind, at);
        Box::pin(async { Ok(()) })
    }
}

/// Now, as the store keeps time.
pub fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs one attempt to its end and stores the outcome (and the recording).
///
/// # Errors
/// [`LogError`] when the store refused a write: the call is torn down first, so
/// nothing is left running that the store does not know about.
pub async fn run(
    connection: &AppConnection,
    settings: &CallSettings,
    log: &dyn AttemptLog,
    plan: CallPlan,
    callee_gone: CalleeGone,
) -> Result<CallResult, LogError> {
    let span = tracing::info_span!(
        "call",
        number = %plan.number,
        channel_id = %plan.ids.callee,
        attempt_id = plan.attempt_id
    );
    async move {
        let answered = match plan.stage {
            Stage::New | Stage::Dialing => match dial::dial(connection, settings, &plan, log).await
            {
                dial::Dialled::Answered(mut callee, at) => {
                    if let Err(error) = log.answered(plan.attempt_id, at).await {
                        // Nothing may run that the store does not know of.
                        dial::hang_up(&callee, ari_client::model::models::HangupReason::Normal)
                            .await;
                        return Err(error);
                    }
                    let live_at = match &settings.amd {
                        Some(amd) => match amd::detect(settings, amd, &mut callee).await {
                            amd::Verdict::Human(at) => at,
                            amd::Verdict::Ended(end) => {
                                log.finished(plan.attempt_id, &end).await?;
                                return Ok(CallResult::Ended(end, None));
                            }
                        },
                        None => at,
                    };
                    if let Err(error) = log.live(plan.attempt_id, live_at).await {
                        dial::hang_up(&callee, ari_client::model::models::HangupReason::Normal)
                            .await;
                        return Err(error);
                    }
                    talk::Answered::new(callee).live_at(live_at)
                }
                dial::Dialled::Ended(end) => {
                    log.finished(plan.attempt_id, &end).await?;
                    return Ok(CallResult::Ended(end, None));
                }
                dial::Dialled::NotSent => return Ok(CallResult::NotSent),
                dial::Dialled::LookUpAgain => return Ok(CallResult::LookUpAgain),
            },
            // A callee the stopped dialer sent through AMD gets its verdict first.
            Stage::Answered => match amd::resume(connection, settings, &plan).await {
                amd::Resumed::NotInAmd => {
                    let answered = talk::Answered::adopt(connection, &plan, false).await;
                    match plan.live_at {
                        // Live before the restart: its limit counts from then.
                        Some(_) => answered,
                        None if !answered.waits_for_target() => answered,
                        // Its live moment is not stored (a verdict that came while the
                        // dialer was down, or a stop between the answer and its write):
                        // live from now, for its limit and the abandon rate.
                        None => {
                            let at = now_ms();
                            if let Err(error) = log.live(plan.attempt_id, at).await {
                                dial::hang_up(
                                    answered.callee(),
                                    ari_client::model::models::HangupReason::Normal,
                                )
                                .await;
                                return Err(error);
                            }
                            answered.live_at(at)
                        }
                    }
                }
                amd::Resumed::Human(callee, live_at) => {
                    if let Err(error) = log.live(plan.attempt_id, live_at).await {
                        dial::hang_up(&callee, ari_client::model::models::HangupReason::Normal)
                            .await;
                        return Err(error);
                    }
                    talk::Answered::new(callee).live_at(live_at)
                }
                amd::Resumed::Ended(end) => {
                    log.finished(plan.attempt_id, &end).await?;
                    return Ok(CallResult::Ended(end, None));
                }
            },
            Stage::Connected => talk::Answered::adopt(connection, &plan, true).await,
        };
        let (end, recording) =
            talk::talk(connection, settings, log, &plan, answered, callee_gone).await?;
        log.finished(plan.attempt_id, &end).await?;
        let recording = recording.map(|handle| Recording {
            attempt_id: plan.attempt_id,
            handle,
        });
        Ok(CallResult::Ended(end, recording))
    }
    .instrument(span)
    .await
}

/// Told once the callee's channel is gone (hung up), before the rest of the teardown:
/// the campaign frees the call's slot then, so the next number is dialled at once.
pub struct CalleeGone(Option<Box<dyn FnOnce() + Send>>);

impl CalleeGone {
    /// Runs `then` once the callee is gone (or when the call's task ends).
    pub fn new(then: impl FnOnce() + Send + 'static) -> Self {
        CalleeGone(Some(Box::new(then)))
    }

    /// Nothing to do (tests, recordings saved after a restart).
    pub fn ignore() -> Self {
        CalleeGone(None)
    }

    pub(crate) fn now(&mut self) {
        if let Some(then) = self.0.take() {
            then();
        }
    }
}

impl Drop for CalleeGone {
    fn drop(&mut self) {
        self.now();
    }
}

impl std::fmt::Debug for CalleeGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalleeGone")
            .field("told", &self.0.is_none())
            .finish()
    }
}

/// A call's recording, left on Asterisk until saved.
#[derive(Debug)]
pub struct Recording {
    attempt_id: i64,
    handle: ari_client::RecordingHandle,
}

/// Downloads a finished call's recording into the recordings directory, verifies it,
/// stores its file name, and deletes it from Asterisk when configured.
///
/// # Errors
/// [`LogError`] when the file name cannot be stored.
pub async fn save_recording(
    settings: &CallSettings,
    log: &dyn AttemptLog,
    recording: Recording,
) -> Result<(), LogError> {
    let Recording {
        attempt_id,
        mut handle,
    } = recording;
    recording::save(settings, log, attempt_id, &mut handle, true).await
}

/// Downloads the recording of an attempt that ended while the dialer was down.
///
/// # Errors
/// As [`run`].
pub async fn save_recording_of_ended(
    connection: &AppConnection,
    settings: &CallSettings,
    log: &dyn AttemptLog,
    attempt_id: i64,
    recording_name: &str,
) -> Result<(), LogError> {
    let mut recording = connection.recording(recording_name);
    recording::save(settings, log, attempt_id, &mut recording, false).await
}
