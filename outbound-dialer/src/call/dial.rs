//! Dialling the callee: originate with the attempt's deterministic id, then wait until it
//! answers (StasisStart) or ends (ChannelDestroyed with its Q.850 cause).

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::channels::Originate;
use ari_client::{AppConnection, ChannelHandle, Delivery, StreamEnd, WaitFailure};

use super::{AttemptLog, CallEnd, CallPlan, CallSettings, now_ms};
use crate::outcome::{Outcome, cause_text};
use crate::store::CallEventKind;

/// Past the ring time, how long Asterisk may take to report the end.
const END_GRACE: Duration = Duration::from_secs(15);

/// What dialling came to.
pub(super) enum Dialled {
    /// The callee answered (at this time) and is in the app.
    Answered(ChannelHandle, i64),
    /// The attempt is over.
    Ended(super::CallEnd),
    /// Asterisk was unreachable; nothing was sent.
    NotSent,
    /// The originate may have been sent and the channel could not be looked up: look
    /// again later, never originate again.
    LookUpAgain,
}

pub(super) fn ended(outcome: Outcome, cause: Option<i64>, message: Option<String>) -> CallEnd {
    CallEnd {
        outcome,
        cause,
        cause_text: cause.map(|c| cause_text(c).to_owned()),
        message,
        ended_at: now_ms(),
        live_at: None,
        connected_at: None,
    }
}

fn originate(settings: &CallSettings, plan: &CallPlan) -> Originate {
    let mut params = Originate::new(format!("PJSIP/{}@{}", plan.number, settings.trunk))
        .app(settings.app.as_str())
        .channel_id(plan.ids.callee.as_str())
        .timeout(i64::try_from(settings.call_timeout.as_secs()).unwrap_or(600));
    if let Some(caller_id) = &settings.caller_id {
        params = params.caller_id(caller_id.as_str());
    }
    if !plan.variables.is_empty() {
        params = params.variables(plan.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    params
}

/// Originates (or, for a plan that may have been sent before, adopts) the callee and
/// waits for its answer or end.
pub(super) async fn dial(
    connection: &AppConnection,
    settings: &CallSettings,
    plan: &CallPlan,
    log: &dyn AttemptLog,
) -> Dialled {
    let callee = if plan.stage == super::Stage::Dialing {
        match adopt(connection, plan).await {
            Adopted::Ringing(handle) => handle,
            Adopted::Up(handle) => return Dialled::Answered(handle, now_ms()),
            Adopted::Gone(end) => return Dialled::Ended(end),
            Adopted::Unreachable => return Dialled::LookUpAgain,
        }
    } else {
        match connection.originate(originate(settings, plan)).await {
            Ok(handle) => {
                note(log, plan, CallEventKind::Originated).await;
                handle
            }
            Err(error) if error.delivery() == Delivery::NotSent => {
                tracing::warn!(error = %error.chain(), "originate not sent; the attempt will be sent again");
                return Dialled::NotSent;
            }
            // 409: this very id exists, so an earlier send of this attempt went through.
            Err(error) if error.is_conflict() => match adopt(connection, plan).await {
                Adopted::Ringing(handle) => handle,
                Adopted::Up(handle) => return Dialled::Answered(handle, now_ms()),
                Adopted::Gone(end) => return Dialled::Ended(end),
                Adopted::Unreachable => return Dialled::LookUpAgain,
            },
            Err(error) if error.delivery() == Delivery::Unknown => {
                // It may have gone through: never send it twice.
                match adopt(connection, plan).await {
                    Adopted::Ringing(handle) => handle,
                    Adopted::Up(handle) => return Dialled::Answered(handle, now_ms()),
                    Adopted::Gone(_) | Adopted::Unreachable => {
                        return Dialled::Ended(ended(
                            Outcome::Error,
                            None,
                            Some(format!(
                                "the originate may have reached Asterisk but its channel is gone ({}); not dialled again",
                                error.chain()
                            )),
                        ));
                    }
                }
            }
            Err(error) => {
                return Dialled::Ended(ended(
                    Outcome::Error,
                    None,
                    Some(error.chain().to_string()),
                ));
            }
        }
    };
    wait_for_answer(callee, settings.call_timeout + END_GRACE, log, plan).await
}

/// Adds a state change to the call's event log; a failure is logged, the call goes on.
async fn note(log: &dyn AttemptLog, plan: &CallPlan, kind: CallEventKind) {
    if let Err(error) = log.event(plan.attempt_id, kind, now_ms()).await {
        tracing::warn!(%error, event = kind.as_str(), "cannot store a call event");
    }
}

/// What a channel found by id (after a restart or an uncertain originate) is.
enum Adopted {
    /// It rings: wait for it as usual.
    Ringing(ChannelHandle),
    /// It is up (answered while we did not look).
    Up(ChannelHandle),
    /// It does not exist (any more).
    Gone(CallEnd),
    /// Asterisk cannot be asked now.
    Unreachable,
}

async fn adopt(connection: &AppConnection, plan: &CallPlan) -> Adopted {
    // Subscribed before asking, so its end cannot slip between the two.
    let handle = connection.channel(plan.ids.callee.as_str());
    match handle.get().await {
        Ok(channel) if channel.state == ari_client::model::models::ChannelState::Up => {
            tracing::info!("adopted a callee that is up");
            Adopted::Up(handle)
        }
        Ok(_) => {
            tracing::info!("adopted a ringing callee");
            Adopted::Ringing(handle)
        }
        Err(error) if error.is_not_found() => Adopted::Gone(ended(
            Outcome::Interrupted,
            None,
            Some("the call ended while the dialer was not watching; not dialled again".to_owned()),
        )),
        Err(error) => {
            tracing::warn!(error = %error.chain(), "cannot look up the callee");
            Adopted::Unreachable
        }
    }
}

async fn wait_for_answer(
    mut callee: ChannelHandle,
    within: Duration,
    log: &dyn AttemptLog,
    plan: &CallPlan,
) -> Dialled {
    let deadline = tokio::time::Instant::now() + within;
    let mut rang = false;
    let waited = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let waited = callee
            .events
            .within(left)
            .wait_until(|event| match event {
                Event::StasisStart(_) | Event::ChannelDestroyed(_) => true,
                Event::ChannelStateChange(change) => {
                    !rang
                        && change.channel.state == ari_client::model::models::ChannelState::Ringing
                }
                _ => false,
            })
            .await;
        if matches!(&waited, Ok(event) if matches!(event.as_ref(), Event::ChannelStateChange(_))) {
            rang = true;
            note(log, plan, CallEventKind::Ringing).await;
            continue;
        }
        break waited;
    };
    match waited {
        Ok(event) => match event.as_ref() {
            Event::ChannelDestroyed(destroyed) => {
                let outcome = Outcome::of_unanswered_cause(destroyed.cause);
                let message = (outcome == Outcome::Error)
                    .then(|| format!("the call ended before an answer: {}", destroyed.cause_txt));
                Dialled::Ended(CallEnd {
                    outcome,
                    cause: Some(destroyed.cause),
                    cause_text: Some(destroyed.cause_txt.clone()),
                    message,
                    ended_at: now_ms(),
                    live_at: None,
                    connected_at: None,
                })
            }
            _ => Dialled::Answered(callee, now_ms()),
        },
        Err(error) => match error.wait_failure() {
            Some(WaitFailure::Deadline(_)) => {
                // Asterisk did not end it at the originate timeout: end it ourselves.
                let _ = callee.hangup(HangupReason::NoAnswer).await;
                let cause = final_cause(&mut callee).await;
                Dialled::Ended(ended(Outcome::NoAnswer, cause.or(Some(19)), None))
            }
            Some(WaitFailure::Lagged(_)) => match callee.get().await {
                Ok(channel) if channel.state == ari_client::model::models::ChannelState::Up => {
                    Dialled::Answered(callee, now_ms())
                }
                Ok(_) => Box::pin(wait_for_answer(callee, within, log, plan)).await,
                Err(_) => Dialled::Ended(ended(
                    Outcome::Error,
                    None,
                    Some("events were lost while the call rang and it is gone".to_owned()),
                )),
            },
            Some(WaitFailure::Ended(StreamEnd::Vanished)) => Dialled::Ended(ended(
                Outcome::Interrupted,
                None,
                Some("the call was gone after a reconnect (Asterisk restarted?)".to_owned()),
            )),
            _ => Dialled::Ended(ended(
                Outcome::Interrupted,
                None,
                Some(format!("the dialer stopped watching: {error}")),
            )),
        },
    }
}

/// The cause of a channel that is ending, from its ChannelDestroyed (within a few
/// seconds), when it comes.
pub(super) async fn final_cause(channel: &mut ChannelHandle) -> Option<i64> {
    match channel
        .events
        .within(Duration::from_secs(10))
        .wait_for::<ari_client::model::events::ChannelDestroyed>()
        .await
    {
        Ok(destroyed) => Some(destroyed.cause),
        Err(_) => None,
    }
}

/// Hangs `channel` up unless it is already gone.
pub(super) async fn hang_up(channel: &ChannelHandle, reason: HangupReason) {
    match channel.hangup(reason).await {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => {
            tracing::warn!(error = %error.chain(), channel_id = %channel.id(), "hang-up failed")
        }
    }
}
