//! Answering-machine detection (`--amd`): the answered callee goes through the AMD dialplan
//! context (`asterisk_conf/extensions.conf`, `[dialer-amd]`: `AMD()` then back into Stasis
//! with `amd,${AMDSTATUS},${AMDCAUSE}`); a machine is told the optional message and hung
//! up (outcome `machine`), a person (or an unsure verdict) goes on to the target.

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::PlaybackFinished;
use ari_client::model::models::HangupReason;
use ari_client::{ChannelHandle, DialplanTarget};

use super::dial::{ended, final_cause, hang_up};
use super::{CallEnd, CallSettings, now_ms};
use crate::outcome::Outcome;
use crate::record::UnixMillis;

/// Longest AMD may take (amd.conf's total_analysis_time is 5 s) plus the dialplan hops.
const AMD_WITHIN: Duration = Duration::from_secs(15);
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
    let back = callee
        .events
        .within(AMD_WITHIN)
        .wait_until(|event| match event {
            Event::StasisStart(start) => start.args.first().is_some_and(|a| a == "amd"),
            Event::ChannelDestroyed(_) => true,
            _ => false,
        })
        .await;
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
    tracing::info!(amd_status = %status, %amd_cause, "answering-machine detection");
    match status.as_str() {
        "MACHINE" => {
            if let Some(message) = &amd.machine_message {
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
        _ => Verdict::Human(now_ms()),
    }
}
