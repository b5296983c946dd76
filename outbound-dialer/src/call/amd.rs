//! Answering-machine detection (`--amd`): the answered callee goes through the AMD dialplan
//! context (`asterisk_conf/extensions.conf`, `[dialer-amd]`: `AMD()` then back into Stasis
//! with `amd,${AMDSTATUS},${AMDCAUSE}`); a machine is told the optional message and hung
//! up (outcome `machine`), a person (or an unsure verdict) goes on to the target.

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::PlaybackFinished;
use ari_client::model::models::HangupReason;
use ari_client::{AppConnection, ChannelHandle, DialplanTarget};

use super::dial::{ended, final_cause, hang_up};
use super::{CallEnd, CallSettings, now_ms};
use crate::outcome::Outcome;
use crate::record::UnixMillis;

/// Longest AMD may take (amd.conf's total_analysis_time is 5 s) plus the dialplan hops.
const AMD_WITHIN: Duration = Duration::from_secs(15);

/// The callee's return into the app from the AMD context (StasisStart with `amd` first),
/// or its end, within [`AMD_WITHIN`].
async fn back_from_amd(
    callee: &mut ChannelHandle,
) -> Result<std::sync::Arc<Event>, ari_client::Error> {
    callee
        .events
        .within(AMD_WITHIN)
        .wait_until(|event| match event {
            Event::StasisStart(start) => start.args.first().is_some_and(|a| a == "amd"),
            Event::ChannelDestroyed(_) => true,
            _ => false,
        })
        .await
}
/// The AMD context of the bundled dialplan, when a restarted dialer runs without `--amd`.
const DEFAULT_CONTEXT: &str = "dialer-amd";
/// Longest the machine message may play.
const MESSAGE_WITHIN: Duration = Duration::from_secs(60);

/// What detection came to.
pub(super) enum Verdict {
    /// A person (or AMD was not sure): connect, counting the 2 s from this moment.
    Human(UnixMillis),
    /// The call is over (a machine, or the callee hung up during detection).
    Ended(CallEnd),
}

/// Sends the callee through AMD and waits for it to come back into the app.
pub(super) async fn detect(
    settings: &CallSettings,
    amd: &crate::rules::args::AmdSettings,
    callee: &mut ChannelHandle,
) -> Verdict {
    if let Err(error) = callee.set_variable("DIALER_APP", &settings.app).await {
        tracing::warn!(error = %error.chain(), "cannot set DIALER_APP; connecting without AMD");
        return Verdict::Human(now_ms());
    }
    if let Err(error) = callee
        .continue_in_dialplan(DialplanTarget::extension(amd.context.as_str(), "s"))
        .await
    {
        // Still in the app: connect it rather than lose a live callee.
        tracing::warn!(error = %error.chain(), context = %amd.context, "cannot send the callee to AMD; connecting without it");
        return Verdict::Human(now_ms());
    }
    let back = back_from_amd(callee).await;
    let (status, amd_cause) = match back {
        Ok(event) => match event.as_ref() {
            Event::StasisStart(start) => (
                start.args.get(1).cloned().unwrap_or_default(),
                start.args.get(2).cloned().unwrap_or_default(),
            ),
            Event::ChannelDestroyed(destroyed) => {
                return Verdict::Ended(CallEnd {
                    live_at: None,
                    ..ended(
                        Outcome::Answered,
                        Some(destroyed.cause),
                        Some("the callee hung up during answering-machine detection".to_owned()),
                    )
                });
            }
            // The wait stops on the two events above only.
            _ => return Verdict::Human(now_ms()),
        },
        Err(error) => {
            tracing::warn!(%error, "no AMD verdict; hanging up");
            hang_up(callee, HangupReason::Normal).await;
            let cause = final_cause(callee).await;
            return Verdict::Ended(ended(
                Outcome::Error,
                cause,
                Some(format!(
                    "answering-machine detection gave no verdict: {error}"
                )),
            ));
        }
    };
    conclude(Some(amd), callee, &status, &amd_cause, now_ms()).await
}

/// Acts on AMD's verdict: a machine hears the message (when there is one) and is hung
/// up; anyone else goes on to the target, live from `live_at`.
async fn conclude(
    amd: Option<&crate::rules::args::AmdSettings>,
    callee: &mut ChannelHandle,
    status: &str,
    amd_cause: &str,
    live_at: UnixMillis,
) -> Verdict {
    tracing::info!(amd_status = %status, %amd_cause, "answering-machine detection");
    match status {
        "MACHINE" => {
            if let Some(message) = amd.and_then(|amd| amd.machine_message.as_ref()) {
                match callee.play(message).await {
                    Ok(mut playback) => {
                        let _ = playback
                            .events
                            .within(MESSAGE_WITHIN)
                            .wait_for::<PlaybackFinished>()
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error.chain(), "cannot play the machine message")
                    }
                }
            }
            hang_up(callee, HangupReason::Normal).await;
            let cause = final_cause(callee).await;
            Verdict::Ended(ended(
                Outcome::Machine,
                cause,
                Some(if amd_cause.is_empty() {
                    "answering machine (AMD)".to_owned()
                } else {
                    format!("answering machine (AMD: {amd_cause})")
                }),
            ))
        }
        // HUMAN, NOTSURE: a person may be there; HANGUP is caught above as the channel's end.
        _ => Verdict::Human(live_at),
    }
}

/// What a restarted dialer found of a callee stored as answered.
pub(super) enum Resumed {
    /// Not in (or back from) detection: picked up as any answered call.
    NotInAmd,
    /// Back from detection into this dialer's app, a person (or AMD was not sure):
    /// connect it, live from the verdict.
    Human(ChannelHandle, UnixMillis),
    /// The call is over.
    Ended(CallEnd),
}

/// Picks up a callee that a stopped dialer had sent through AMD: still in detection, it
/// is awaited back into this dialer's app and its verdict acted on; back in the app with
/// a verdict that came while the dialer was down, a machine is hung up and a person is
/// picked up as any answered call. Asterisk's own view of the channel (its dialplan
/// application) says which.
pub(super) async fn resume(
    connection: &AppConnection,
    settings: &CallSettings,
    plan: &super::CallPlan,
) -> Resumed {
    let context = settings
        .amd
        .as_ref()
        .map_or(DEFAULT_CONTEXT, |amd| amd.context.as_str());
    // Subscribed before asking, so its return or end between the two is not missed (its
    // end reaches this app only through a subscription: it is not in Stasis).
    let mut callee = connection.channel(plan.ids.callee.as_str());
    let subscribe = ari_client::model::operations::applications::Subscribe::new(
        connection.app(),
        [format!("channel:{}", plan.ids.callee)],
    );
    let _ = connection
        .client()
        .applications()
        .subscribe(subscribe)
        .await;
    let Ok(channel) = callee.get().await else {
        // Gone (or Asterisk unreachable): picked up as any answered call.
        return Resumed::NotInAmd;
    };
    let place = &channel.dialplan;
    if place.app_name.eq_ignore_ascii_case("Stasis") {
        // Stasis(APP,amd,STATUS,CAUSE): back from detection before this dialer was up.
        let args: Vec<&str> = place.app_data.split(',').map(str::trim).collect();
        if args.get(1) != Some(&"amd") {
            return Resumed::NotInAmd;
        }
        let (status, cause) = (
            args.get(2).copied().unwrap_or(""),
            args.get(3).copied().unwrap_or(""),
        );
        tracing::info!(amd_status = %status, "the callee came back from answering-machine detection while the dialer was down");
        if status != "MACHINE" {
            // A person: the stopped dialer may have begun connecting it (bridge, target
            // ringing), so it is picked up as any answered call, which makes those again.
            return Resumed::NotInAmd;
        }
        return match conclude(settings.amd.as_ref(), &mut callee, status, cause, now_ms()).await {
            // Not for a machine; as a person, it would be picked up as any answered call.
            Verdict::Human(_) => Resumed::NotInAmd,
            Verdict::Ended(end) => Resumed::Ended(end),
        };
    }
    if !(place.app_name.eq_ignore_ascii_case("AMD") || place.context == context) {
        return Resumed::NotInAmd;
    }
    tracing::info!(context = %place.context, "the callee is in answering-machine detection: waiting for its verdict");
    // It returns to the app its DIALER_APP names, which Asterisk lets no one change while
    // the channel is out of Stasis: under another app name this dialer cannot get it
    // back (Asterisk hangs it up when that app is gone), and says so.
    let elsewhere = callee
        .variable("DIALER_APP")
        .await
        .ok()
        .filter(|app| *app != settings.app);
    if let Some(app) = &elsewhere {
        tracing::warn!(returns_to = %app, "the callee returns from answering-machine detection to another app than this dialer's");
    }
    let gone_why = match &elsewhere {
        Some(app) => format!(
            "the dialer stopped during answering-machine detection, which returns the callee to that dialer's app {app}, not this one's ({}); the call ended there",
            settings.app
        ),
        None => "the dialer restarted during answering-machine detection and the call ended before its verdict".to_owned(),
    };
    let back = back_from_amd(&mut callee).await;
    match back {
        Ok(event) => match event.as_ref() {
            Event::StasisStart(start) => {
                let live_at = now_ms();
                let status = start.args.get(1).cloned().unwrap_or_default();
                let cause = start.args.get(2).cloned().unwrap_or_default();
                match conclude(settings.amd.as_ref(), &mut callee, &status, &cause, live_at).await {
                    Verdict::Human(at) => Resumed::Human(callee, at),
                    Verdict::Ended(end) => Resumed::Ended(end),
                }
            }
            Event::ChannelDestroyed(destroyed) => Resumed::Ended(ended(
                Outcome::Interrupted,
                Some(destroyed.cause),
                Some(gone_why),
            )),
            // The wait stops on the two events above only.
            _ => Resumed::NotInAmd,
        },
        Err(error) => {
            tracing::warn!(%error, "no AMD verdict after the restart; hanging up");
            hang_up(&callee, HangupReason::Normal).await;
            let cause = final_cause(&mut callee).await;
            Resumed::Ended(ended(
                Outcome::Interrupted,
                cause,
                Some(format!(
                    "the dialer restarted during answering-machine detection and no verdict came back: {error}"
                )),
            ))
        }
    }
}
