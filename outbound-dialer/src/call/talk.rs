//! An answered callee: bridge it, bring in the target, record, and wait for either leg
//! to end; then tear everything down. A target that does not come, or does not come
//! within `--abandon-after` (2 s) of the callee's live moment, means the target attempt is
//! hung up and the callee hears a short identification message and is hung up
//! (`target_failed`, an abandoned call).

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::{PlaybackFinished, StasisStart};
use ari_client::model::models::{HangupReason, IfExists};
use ari_client::model::operations::{bridges, channels::Originate};
use ari_client::{
    AppConnection, BridgeHandle, ChannelHandle, RecordOptions, RecordingHandle, StreamEnd,
    WaitFailure,
};

use super::dial::{ended, final_cause, hang_up};
use super::{AttemptLog, CallEnd, CallPlan, CallSettings, LogError, now_ms};
use crate::outcome::Outcome;

/// How long the target-failed message may play.
const MESSAGE_WITHIN: Duration = Duration::from_secs(15);

/// An answered callee and what exists around it.
pub(super) struct Answered {
    callee: ChannelHandle,
    /// Picked up after a restart with the bridge, target and recording in place.
    connected: Option<(BridgeHandle, ChannelHandle, RecordingHandle)>,
    /// Picked up after a restart, the callee was gone: its end was not seen.
    callee_gone: bool,
    /// When the live callee was there (answer or AMD verdict; after a restart, the stored
    /// one): the `--abandon-after` limit counts from it. `None`: no limit.
    live_at: Option<i64>,
}

impl Answered {
    pub(super) fn new(callee: ChannelHandle) -> Self {
        Answered {
            callee,
            connected: None,
            callee_gone: false,
            live_at: None,
        }
    }

    /// The 2 s to connect a target count from `at`.
    pub(super) fn live_at(mut self, at: i64) -> Self {
        self.live_at = Some(at);
        self
    }

    /// A callee picked up after a restart that still waits for a target (neither
    /// connected nor gone): it needs a live moment for its abandon limit.
    pub(super) fn waits_for_target(&self) -> bool {
        self.connected.is_none() && !self.callee_gone
    }

    /// The callee's channel.
    pub(super) fn callee(&self) -> &ChannelHandle {
        &self.callee
    }

    /// Picks up a call stored as answered (or connected) after a restart. What is
    /// missing of bridge and target is made again; a callee that is gone shows in
    /// [`talk`] as an interrupted end. A callee never connected keeps the stored live
    /// moment (`plan.live_at`), so its abandon limit is not restarted; one that was
    /// connected before has none (the rule held for it).
    pub(super) async fn adopt(
        connection: &AppConnection,
        plan: &CallPlan,
        was_connected: bool,
    ) -> Self {
        // Subscribed before asking, so an end between the two is not missed.
        let callee = connection.channel(plan.ids.callee.as_str());
        let callee_gone = matches!(callee.get().await, Err(error) if error.is_not_found());
        if callee_gone {
            let target = connection.channel(plan.ids.target.as_str());
            hang_up(&target, HangupReason::Normal).await;
            let _ = connection.bridge(plan.ids.bridge.as_str()).destroy().await;
            return Answered {
                callee,
                connected: None,
                callee_gone: true,
                live_at: None,
            };
        }
        if was_connected {
            let bridge = connection.bridge(plan.ids.bridge.as_str());
            let target = connection.channel(plan.ids.target.as_str());
            let recording = connection.recording(plan.ids.recording.as_str());
            let target_lookup = target.get().await;
            if matches!(&target_lookup, Err(error) if error.is_not_found()) {
                // The target left while the dialer was down: the call is over (either
                // leg's end ends it), so the callee is hung up.
                hang_up(&callee, HangupReason::Normal).await;
                let _ = bridge.destroy().await;
                return Answered {
                    callee,
                    connected: None,
                    callee_gone: true,
                    live_at: None,
                };
            }
            let target_up = target_lookup.is_ok();
            if target_up && bridge.get().await.is_ok() {
                return Answered {
                    callee,
                    connected: Some((bridge, target, recording)),
                    callee_gone: false,
                    live_at: None,
                };
            }
        }
        // A half-made target is made again from scratch (the bridge is reused): wait
        // for the old one to be gone, since its id is the new one's.
        let mut target = connection.channel(plan.ids.target.as_str());
        if target.get().await.is_ok() {
            hang_up(&target, HangupReason::Normal).await;
            let _ = final_cause(&mut target).await;
        }
        Answered {
            live_at: if was_connected { None } else { plan.live_at },
            ..Answered::new(callee)
        }
    }
}

/// Bridges, records and waits for the end. Returns the end and the recording to save.
pub(super) async fn talk(
    connection: &AppConnection,
    settings: &CallSettings,
    log: &dyn AttemptLog,
    plan: &CallPlan,
    answered: Answered,
    mut on_callee_gone: super::CalleeGone,
) -> Result<(CallEnd, Option<RecordingHandle>), LogError> {
    let Answered {
        mut callee,
        connected,
        callee_gone,
        live_at,
    } = answered;
    if callee_gone {
        let end = ended(
            Outcome::Interrupted,
            None,
            Some("the call ended while the dialer was not watching".to_owned()),
        );
        // A call that was connected was recorded: the file may wait on Asterisk.
        let recording = Some(connection.recording(plan.ids.recording.as_str()));
        return Ok((end, recording));
    }
    let mut connected_at = None;
    let (bridge, mut target, mut recording) = match connected {
        Some(parts) => parts,
        None => match connect(connection, settings, plan, &mut callee, live_at).await {
            Ok((parts, at)) => {
                connected_at = Some(at);
                if let Err(error) = log.connected(plan.attempt_id, at, &plan.ids).await {
                    // Nothing may run that the store does not know of.
                    let (bridge, target, _) = &parts;
                    hang_up(target, HangupReason::Normal).await;
                    hang_up(&callee, HangupReason::Normal).await;
                    let _ = bridge.destroy().await;
                    return Err(error);
                }
                parts
            }
            Err(end) => {
                let end = CallEnd { live_at, ..end };
                return Ok((end, None));
            }
        },
    };
    let mut bridge = bridge;
    // Either leg's end (or its leaving the app) ends the call.
    let first_end = tokio::select! {
        callee_end = leg_end(&mut callee) => Leg::Callee(callee_end),
        target_end = leg_end(&mut target) => Leg::Target(target_end),
    };
    hang_up(&target, HangupReason::Normal).await;
    hang_up(&callee, HangupReason::Normal).await;
    let callee_cause = match &first_end {
        Leg::Callee(LegEnd::Destroyed(cause)) => Some(*cause),
        _ => final_cause(&mut callee).await,
    };
    // The callee's channel is destroyed (as Asterisk's own events count it): its slot
    // may go to the next number while the rest is torn down.
    on_callee_gone.now();
    // End the recording while its bridge exists: the app hears of a bridge's recording
    // through its subscription to the bridge, which goes with it.
    finish_recording(&mut recording).await;
    match bridge.destroy().await {
        Ok(()) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => tracing::warn!(error = %error.chain(), "cannot destroy the bridge"),
    }
    let _ = bridge
        .events
        .within(Duration::from_secs(5))
        .wait_until(|e| matches!(e, Event::BridgeDestroyed(_)))
        .await;
    let end = match first_end {
        Leg::Callee(LegEnd::Vanished) | Leg::Target(LegEnd::Vanished) => ended(
            Outcome::Interrupted,
            callee_cause,
            Some("the call was gone after a reconnect (Asterisk restarted?)".to_owned()),
        ),
        Leg::Callee(LegEnd::Closed) | Leg::Target(LegEnd::Closed) => ended(
            Outcome::Interrupted,
            callee_cause,
            Some("the dialer stopped watching the call".to_owned()),
        ),
        _ => ended(Outcome::Answered, callee_cause, None),
    };
    let end = CallEnd {
        live_at,
        connected_at,
        ..end
    };
    Ok((end, Some(recording)))
}

/// Stops a recording and waits (briefly) for Asterisk to close its file.
async fn finish_recording(recording: &mut RecordingHandle) {
    match recording.stop().await {
        Ok(()) => {}
        // It ended by itself (the channels left the bridge) or never started.
        Err(error) if error.is_not_found() => {}
        Err(error) => tracing::warn!(error = %error.chain(), "cannot stop the recording"),
    }
    let _ = recording
        .events
        .within(Duration::from_secs(3))
        .wait_until(|e| matches!(e, Event::RecordingFinished(_) | Event::RecordingFailed(_)))
        .await;
}

/// Bridge, target, recording, and when the target joined the bridge; or the end of a call
/// whose target did not come (in time: `settings.abandon_after` from `live_at`).
async fn connect(
    connection: &AppConnection,
    settings: &CallSettings,
    plan: &CallPlan,
    callee: &mut ChannelHandle,
    live_at: Option<i64>,
) -> Result<((BridgeHandle, ChannelHandle, RecordingHandle), i64), CallEnd> {
    let failed = |message: String| ended(Outcome::TargetFailed, None, Some(message));
    let created = connection
        .create_bridge(
            bridges::Create::new()
                .r#type("mixing")
                .bridge_id(plan.ids.bridge.as_str()),
        )
        .await;
    let bridge = match created {
        Ok(bridge) => Ok(bridge),
        // This attempt's bridge from before a restart: it is ours, use it.
        Err(error) if error.is_conflict() => connection
            .follow_bridge(plan.ids.bridge.as_str())
            .await
            .map_err(|e| format!("cannot use the existing bridge: {}", e.chain())),
        Err(error) => Err(format!("cannot create the bridge: {}", error.chain())),
    };
    let bridge = match bridge {
        Ok(bridge) => bridge,
        Err(message) => {
            // The callee answered into a call that cannot go on: end it, say why.
            hang_up(callee, HangupReason::Normal).await;
            let cause = final_cause(callee).await;
            let _ = connection.bridge(plan.ids.bridge.as_str()).destroy().await;
            return Err(ended(Outcome::TargetFailed, cause, Some(message)));
        }
    };
    if let Err(error) = bridge.add_channels([callee.id().clone()]).await {
        hang_up(callee, HangupReason::Normal).await;
        let _ = bridge.destroy().await;
        return Err(failed(format!(
            "cannot bridge the callee: {}",
            error.chain()
        )));
    }
    // A live callee waits for the target this long from its live moment (not from now:
    // the bridge and the originate took some of it, and after a restart the time the
    // dialer was down).
    let left = live_at.zip(settings.abandon_after).map(|(at, after)| {
        let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        at.saturating_add(after_ms).saturating_sub(now_ms()).max(0)
    });
    if left == Some(0) {
        // Its limit passed (the dialer was down meanwhile): no target is rung for a
        // callee already abandoned.
        let message = format!(
            "{}; it had passed before a target was dialled",
            abandoned(settings)
        );
        return Err(abandon(callee, &bridge, settings, message).await);
    }
    let abandon_at =
        left.map(|left| tokio::time::Instant::now() + Duration::from_millis(left.unsigned_abs()));
    let target_params = Originate::new(settings.target.as_str())
        .app(settings.app.as_str())
        .channel_id(plan.ids.target.as_str())
        // The callee's codecs carry over (Asterisk takes an originator or formats, not both).
        .originator(callee.id().as_str())
        .timeout(i64::try_from(settings.target_timeout.as_secs()).unwrap_or(600));
    let target = match connection.originate(target_params).await {
        Ok(target) => Some(target),
        Err(error) => {
            tracing::warn!(error = %error.chain(), "the target cannot be originated");
            if error.delivery() != ari_client::Delivery::NotSent {
                // It may exist and ring: no agent gets a call nobody is on.
                hang_up(
                    &connection.channel(plan.ids.target.as_str()),
                    HangupReason::Normal,
                )
                .await;
            }
            None
        }
    };
    let Some(mut target) = target else {
        return Err(abandon(
            callee,
            &bridge,
            settings,
            "the target could not be dialled".to_owned(),
        )
        .await);
    };
    let too_late = async {
        match abandon_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    // The target answers, fails, does not come in time, or the callee leaves first.
    let outcome = tokio::select! {
        answered = target.events.within(settings.target_timeout).wait_until(|e| matches!(e, Event::StasisStart(_) | Event::ChannelDestroyed(_))) => match answered {
            Ok(event) if event.downcast::<StasisStart>().is_some() => Ok(()),
            Ok(_) => Err("the target did not answer".to_owned()),
            Err(error) => Err(format!("the target did not answer: {error}")),
        },
        gone = leg_end(callee) => Err(match gone {
            LegEnd::Vanished => "the call was gone after a reconnect".to_owned(),
            _ => "the callee hung up before the target answered".to_owned(),
        }),
        () = too_late => Err(abandoned(settings)),
    };
    if let Err(message) = outcome {
        hang_up(&target, HangupReason::Normal).await;
        return Err(abandon(callee, &bridge, settings, message).await);
    }
    if let Err(error) = bridge.add_channels([target.id().clone()]).await {
        hang_up(&target, HangupReason::Normal).await;
        return Err(abandon(
            callee,
            &bridge,
            settings,
            format!("cannot bridge the target: {}", error.chain()),
        )
        .await);
    }
    // The moment the callee hears the target: the abandon rule's "connected".
    let joined_at = now_ms();
    let options = RecordOptions::default()
        .max_duration_seconds(i64::try_from(settings.max_recording.as_secs()).unwrap_or(i64::MAX))
        .if_exists(IfExists::Fail);
    let recording = match bridge
        .record(&plan.ids.recording, &settings.recording_format, options)
        .await
    {
        Ok(recording) => recording,
        Err(error) => {
            // The call goes on unrecorded rather than being dropped.
            tracing::warn!(error = %error.chain(), "the recording did not start");
            connection.recording(plan.ids.recording.as_str())
        }
    };
    Ok(((bridge, target, recording), joined_at))
}

/// Why a callee was cut at its abandon limit.
fn abandoned(settings: &CallSettings) -> String {
    format!(
        "abandoned: no target connected within {} s of the callee's {} (--abandon-after)",
        settings.abandon_after.unwrap_or_default().as_secs_f64(),
        if settings.amd.is_some() {
            "AMD verdict"
        } else {
            "answer"
        }
    )
}

/// The callee answered but no target came: play the message, hang up, say why.
async fn abandon(
    callee: &mut ChannelHandle,
    bridge: &BridgeHandle,
    settings: &CallSettings,
    message: String,
) -> CallEnd {
    tracing::warn!(%message, "target failed: the callee hears the message and is hung up");
    if let Ok(mut playback) = bridge.play(&settings.target_failed_sound).await {
        let _ = playback
            .events
            .within(MESSAGE_WITHIN)
            .wait_for::<PlaybackFinished>()
            .await;
    }
    hang_up(callee, HangupReason::Normal).await;
    let cause = final_cause(callee).await;
    let _ = bridge.destroy().await;
    ended(Outcome::TargetFailed, cause, Some(message))
}

/// How a leg ended.
enum LegEnd {
    /// ChannelDestroyed, with its cause.
    Destroyed(i64),
    /// It left the app (StasisEnd) while still up.
    LeftApp,
    /// Gone after a reconnect.
    Vanished,
    /// The connection closed.
    Closed,
}

enum Leg {
    Callee(LegEnd),
    Target(LegEnd),
}

async fn leg_end(channel: &mut ChannelHandle) -> LegEnd {
    loop {
        match channel
            .events
            .wait_until(|e| matches!(e, Event::ChannelDestroyed(_) | Event::StasisEnd(_)))
            .await
        {
            Ok(event) => {
                return match event.as_ref() {
                    Event::ChannelDestroyed(d) => LegEnd::Destroyed(d.cause),
                    _ => LegEnd::LeftApp,
                };
            }
            Err(error) => match error.wait_failure() {
                Some(WaitFailure::Ended(StreamEnd::Vanished)) => return LegEnd::Vanished,
                // Dropped events: ask whether it still exists.
                Some(WaitFailure::Lagged(_)) => {
                    if channel.get().await.is_err() {
                        return LegEnd::Vanished;
                    }
                }
                _ => return LegEnd::Closed,
            },
        }
    }
}
