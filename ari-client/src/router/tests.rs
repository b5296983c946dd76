use std::time::Duration;

use ari_model::events::{ChannelDestroyed, ChannelVarset, StasisStart};
use futures::StreamExt as _;

use super::*;
use crate::error::{Error, WaitFailure};

/// Every await in these tests is on data already queued: a second is a generous bound.
async fn soon<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(1), future)
        .await
        .expect("an update already queued was delivered")
}

fn event(json: &str) -> Update {
    Update::Event(Arc::new(Event::from_json_str(json).unwrap()))
}

fn channel_event(kind: &str, id: &str) -> Update {
    event(&format!(
        r#"{{"type":"{kind}","application":"a","timestamp":"2026-01-01T00:00:00.000+0000","cause":16,"cause_txt":"Normal Clearing","args":[],"channel":{{"id":"{id}","name":"n","state":"Up","protocol_id":"","caller":{{"name":"","number":""}},"connected":{{"name":"","number":""}},"accountcode":"","dialplan":{{"context":"c","exten":"e","priority":1,"app_name":"","app_data":""}},"creationtime":"2026-01-01T00:00:00.000+0000","language":"en"}},"variable":"V","value":"1"}}"#
    ))
}

#[tokio::test]
async fn events_reach_only_their_objects_and_streams_end_after_the_last() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    let mut b = router.subscribe(Object::Channel("b".into()));
    router.dispatch(&channel_event("ChannelVarset", "a"));
    router.dispatch(&channel_event("ChannelDestroyed", "a"));
    router.dispatch(&channel_event("ChannelVarset", "b"));
    assert_eq!(soon(a.next_event()).await.unwrap().kind(), "ChannelVarset");
    assert_eq!(
        soon(a.next_event()).await.unwrap().kind(),
        "ChannelDestroyed"
    );
    assert!(
        soon(a.next_event()).await.is_none(),
        "ends after its last event"
    );
    assert_eq!(a.ended(), Some(StreamEnd::LastEvent));
    assert_eq!(soon(b.next_event()).await.unwrap().channel_ids(), ["b"]);
    assert_eq!(b.ended(), None);
    assert_eq!(router.len(), 1);
    drop(b);
    assert_eq!(
        router.len(),
        0,
        "dropping the stream frees the subscription"
    );
}

#[tokio::test]
async fn a_full_queue_becomes_a_lag_signal() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    for _ in 0..QUEUE + 10 {
        router.dispatch(&channel_event("ChannelVarset", "a"));
    }
    assert!(matches!(
        a.next().await,
        Some(Update::Lagged { missed: 10 })
    ));
    assert!(matches!(soon(a.next()).await, Some(Update::Event(_))));
}

#[tokio::test]
async fn markers_reach_everyone_and_close_ends_with_closed() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Bridge("x".into()));
    router.dispatch(&Update::Reconnected);
    assert!(matches!(soon(a.next()).await, Some(Update::Reconnected)));
    router.close();
    assert!(soon(a.next()).await.is_none());
    assert_eq!(a.ended(), Some(StreamEnd::Closed));
}

#[tokio::test]
async fn typed_waits_return_the_event_or_say_why_it_never_came() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    router.dispatch(&channel_event("ChannelVarset", "a"));
    router.dispatch(&channel_event("StasisStart", "a"));
    let start: StasisStart = soon(a.wait_for::<StasisStart>()).await.unwrap();
    assert_eq!(start.channel.id.as_str(), "a");

    // The channel ends before the awaited event: the wait says so instead of hanging.
    router.dispatch(&channel_event("ChannelDestroyed", "a"));
    let error = soon(a.wait_for::<ChannelVarset>()).await.unwrap_err();
    assert_eq!(
        error.wait_failure(),
        Some(WaitFailure::Ended(StreamEnd::LastEvent))
    );
    assert!(
        error
            .to_string()
            .contains("channel a: ChannelVarset did not come"),
        "{error}"
    );

    let mut b = router.subscribe(Object::Channel("b".into()));
    router.dispatch(&channel_event("ChannelVarset", "b"));
    let varset = soon(b.wait_until(|e| matches!(e, Event::ChannelVarset(v) if v.value == "1")))
        .await
        .unwrap();
    assert_eq!(varset.kind(), "ChannelVarset");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_ends_a_wait() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    let error = a
        .within(Duration::from_secs(3))
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::NotReceived { failure: WaitFailure::Deadline(d), .. } if d == Duration::from_secs(3)
    ));
    // The stream is still usable after a timed-out wait.
    router.dispatch(&channel_event("ChannelDestroyed", "a"));
    a.within(Duration::from_secs(1))
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_resync_ends_the_streams_of_objects_it_did_not_find_but_not_of_newer_ones() {
    let router = Arc::new(Router::default());
    let mut kept = router.subscribe(Object::Channel("kept".into()));
    let mut gone = router.subscribe(Object::Channel("gone".into()));
    let mut gone_playback = router.subscribe(Object::Playback("p".into()));
    router.dispatch(&Update::Reconnected);
    let mark = router.mark();
    // Subscribed after the state was read: its object may be newer than the snapshot.
    let mut newer = router.subscribe(Object::Bridge("newer".into()));
    let mut live = Live::default();
    live.channels.insert("kept".into());
    let absent = router.absent(&live, mark);
    assert_eq!(absent.len(), 2, "{absent:?}");
    router.resynced(&Update::Resynced(Arc::default()), &absent, mark);

    for stream in [&mut gone, &mut gone_playback] {
        assert!(matches!(
            soon(stream.next()).await,
            Some(Update::Reconnected)
        ));
        assert!(matches!(
            soon(stream.next()).await,
            Some(Update::Resynced(_))
        ));
        let error = soon(stream.wait_for::<StasisStart>()).await.unwrap_err();
        assert_eq!(
            error.wait_failure(),
            Some(WaitFailure::Ended(StreamEnd::Vanished))
        );
    }
    assert!(matches!(soon(kept.next()).await, Some(Update::Reconnected)));
    for stream in [&mut kept, &mut newer] {
        assert!(matches!(
            soon(stream.next()).await,
            Some(Update::Resynced(_))
        ));
        assert_eq!(stream.ended(), None);
    }
    assert_eq!(router.len(), 2);
}

#[tokio::test]
async fn a_resync_spares_objects_heard_from_since_the_reconnect_and_those_being_created() {
    let router = Arc::new(Router::default());
    let mut heard = router.subscribe(Object::Channel("heard".into()));
    let creating = router.subscribe_creating(Object::Channel("creating".into()));
    router.dispatch(&Update::Reconnected);
    let mark = router.mark();
    // The lists were read before this channel's StasisStart: it is not in them.
    router.dispatch(&channel_event("StasisStart", "heard"));
    let live = Live::default();
    assert!(router.absent(&live, mark).is_empty());
    // Even when told they are gone (a stale finding), neither ends.
    let gone = [
        Object::Channel("heard".into()),
        Object::Channel("creating".into()),
    ];
    router.resynced(&Update::Resynced(Arc::default()), &gone, mark);
    assert_eq!(router.len(), 2);
    assert_eq!(heard.ended(), None);
    assert_eq!(creating.ended(), None);
    // Once its create answered, a channel not heard from is judged again.
    creating.created();
    router.dispatch(&Update::Reconnected);
    let mark = router.mark();
    assert_eq!(router.absent(&live, mark).len(), 2);
    let _ = soon(heard.wait_for::<StasisStart>()).await.unwrap();
}

#[tokio::test]
async fn a_subscription_after_close_ends_at_once() {
    let router = Arc::new(Router::default());
    router.close();
    let mut late = router.subscribe(Object::Channel("late".into()));
    let error = soon(late.wait_for::<StasisStart>()).await.unwrap_err();
    assert_eq!(
        error.wait_failure(),
        Some(WaitFailure::Ended(StreamEnd::Closed))
    );
    assert_eq!(router.len(), 0);
}

#[tokio::test]
async fn a_wait_whose_event_may_have_been_dropped_says_so() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    for _ in 0..QUEUE + 3 {
        router.dispatch(&channel_event("ChannelVarset", "a"));
    }
    let error = soon(a.wait_for::<StasisStart>()).await.unwrap_err();
    assert_eq!(error.wait_failure(), Some(WaitFailure::Lagged(3)));
}

#[tokio::test]
async fn an_event_naming_one_channel_twice_is_delivered_once() {
    let router = Arc::new(Router::default());
    let mut a = router.subscribe(Object::Channel("a".into()));
    // A Dial whose caller and peer are the same channel (as for a self-dial).
    let text = channel_event("ChannelVarset", "a");
    let Update::Event(varset) = &text else {
        unreachable!()
    };
    let json = serde_json::to_value(varset.as_ref()).unwrap();
    let mut dial = json.clone();
    dial["type"] = "Dial".into();
    dial["peer"] = json["channel"].clone();
    dial["caller"] = json["channel"].clone();
    dial["dialstatus"] = "".into();
    router.dispatch(&Update::Event(Arc::new(
        Event::from_json_str(&dial.to_string()).unwrap(),
    )));
    router.dispatch(&channel_event("ChannelVarset", "a"));
    assert_eq!(soon(a.next_event()).await.unwrap().kind(), "Dial");
    assert_eq!(soon(a.next_event()).await.unwrap().kind(), "ChannelVarset");
}
