//! Claiming broadcast channels on the real lab: `StasisBroadcast` (the lab's
//! `Local/broadcast-<app>@lab`) offers a channel to one app; its claim wins and the
//! channel enters Stasis for it, a second claim is taken, a channel not broadcast is not
//! offered, and an unclaimed channel goes on in the dialplan.

mod common;

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::CallBroadcast;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::channels;
use ari_client::{Claim, Update};
use common::{WAIT, app, next_matching};

/// Originates `Local/broadcast-<claimer>@lab` from the app of `caller`; returns the
/// handle of the Local channel's ;1 half and the id chosen for its ;2 half (the one
/// broadcast).
async fn broadcast_to(
    caller: &ari_client::AppConnection,
    claimer: &str,
) -> (ari_client::ChannelHandle, String) {
    let other = ari_lab::unique_name("bc-leg2");
    let params = channels::Originate::new(format!("Local/broadcast-{claimer}@lab"))
        .formats("ulaw")
        .other_channel_id(other.as_str());
    let leg = caller.originate(params).await.expect("originate");
    (leg, other)
}

#[tokio::test]
async fn the_first_claim_wins_and_the_channel_enters_stasis_for_the_winner() {
    let claimer = app("bc-claim").await;
    let caller = app("bc-caller").await;
    let mut updates = claimer.updates();
    let mut incoming = claimer.incoming_channels();
    let (leg, broadcast_id) = broadcast_to(&caller, claimer.app()).await;

    let broadcast: CallBroadcast = next_matching(&mut updates, |update| match update {
        Update::Event(event) => match event.as_ref() {
            Event::CallBroadcast(b) if b.channel.id.as_str() == broadcast_id => {
                Some(CallBroadcast::clone(b))
            }
            _ => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(broadcast.application, claimer.app());

    assert_eq!(
        claimer.claim_broadcast(&broadcast).await.unwrap(),
        Claim::Won
    );
    let channel = tokio::time::timeout(WAIT, incoming.next_channel())
        .await
        .expect("StasisStart of the claimed channel")
        .expect("the incoming stream is open");
    assert_eq!(channel.channel.id().as_str(), broadcast_id);
    assert_eq!(channel.start.application, claimer.app());
    assert_eq!(
        channel.start.args,
        ["lab", claimer.app()],
        "StasisBroadcast's args"
    );

    // Claimed already: a second claim (any app's) is taken, not won.
    let again = caller
        .claim(broadcast_id.as_str(), caller.app())
        .await
        .unwrap();
    assert_eq!(again, Claim::Taken);
    assert!(!again.won());

    channel.channel.hangup(HangupReason::Normal).await.unwrap();
    let _ = leg.hangup(HangupReason::Normal).await;
}

#[tokio::test]
async fn a_channel_not_broadcast_is_not_offered_and_an_unclaimed_one_goes_on() {
    let claimer = app("bc-late").await;
    let caller = app("bc-caller").await;
    let unknown = claimer
        .claim(ari_lab::unique_name("bc-none"), claimer.app())
        .await
        .unwrap();
    assert_eq!(unknown, Claim::NotOffered);

    let mut updates = claimer.updates();
    let (leg, broadcast_id) = broadcast_to(&caller, claimer.app()).await;
    next_matching(&mut updates, |update| match update {
        Update::Event(event) => matches!(
            event.as_ref(),
            Event::CallBroadcast(b) if b.channel.id.as_str() == broadcast_id
        )
        .then_some(()),
        _ => None,
    })
    .await;
    // Nobody claims within the 2 s: the dialplan goes on (answers), and a claim after
    // that is not offered any more.
    let rest = caller.client();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = rest
            .channels()
            .get_channel_var(channels::GetChannelVar::new(
                broadcast_id.as_str(),
                "STASISSTATUS",
            ))
            .await
            .map(|v| v.value)
            .unwrap_or_default();
        if status == "TIMEOUT" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "STASISSTATUS is {status:?}, not TIMEOUT, {WAIT:?} after the broadcast"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = claimer
        .claim(broadcast_id.as_str(), claimer.app())
        .await
        .unwrap();
    assert_eq!(late, Claim::NotOffered);
    let _ = leg.hangup(HangupReason::Normal).await;
}
