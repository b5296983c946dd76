//! The events connection on the real lab: markers, per-object streams that never leak
//! other objects' events, subscribe-before-create, lag signals, REST over WebSocket.

mod common;

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::events::StasisStart;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::{asterisk, channels};
use ari_client::{Client, Credentials, StreamEnd, Update};
use common::{WAIT, app, client, local_call, next_matching};
use futures::StreamExt as _;

#[tokio::test]
async fn started_connection_announces_connected() {
    let client = client().await;
    let (_connection, mut updates) = client
        .app_connection([ari_lab::unique_name("ev-start")])
        .start();
    // The subscriber came with the connection, so it sees the very first update.
    let first = tokio::time::timeout(WAIT, updates.next()).await.unwrap();
    assert!(matches!(first, Some(Update::Connected)), "{first:?}");
}

#[tokio::test]
async fn wrong_credentials_fail_the_first_connect_with_401() {
    let lab = ari_lab::Lab::get().await;
    let client = Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), "wrong"))
        .build()
        .unwrap();
    let error = client
        .app_connection(["ev-denied"])
        .connect()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401), "{error}");
    assert!(error.is_unauthorized());
}

#[tokio::test]
async fn stasis_start_is_seen_even_when_it_beats_the_originate_answer() {
    // The handle subscribes before the POST: StasisStart of a Local channel arrives ~1 ms
    // after it, often before the HTTP answer.
    let connection = app("ev-race").await;
    for _ in 0..20 {
        let mut channel = connection
            .originate(channels::Originate::new("Local/answer@lab").formats("ulaw"))
            .await
            .unwrap();
        let start = channel
            .events
            .within(WAIT)
            .wait_for::<StasisStart>()
            .await
            .unwrap();
        assert_eq!(start.channel.id, *channel.id());
        channel.hangup(HangupReason::Normal).await.unwrap();
    }
}

#[tokio::test]
async fn object_streams_carry_only_their_objects_events() {
    let connection = app("ev-leak").await;
    let mut first = local_call(&connection, "answer").await;
    let mut second = local_call(&connection, "answer").await;
    first.set_variable("WHO", "first").await.unwrap();
    second.set_variable("WHO", "second").await.unwrap();
    first.hangup(HangupReason::Normal).await.unwrap();
    second.hangup(HangupReason::Normal).await.unwrap();
    for (handle, name) in [(&mut first, "first"), (&mut second, "second")] {
        let id = handle.id().clone();
        let mut seen = Vec::new();
        while let Some(event) = tokio::time::timeout(WAIT, handle.events.next_event())
            .await
            .unwrap()
        {
            assert!(
                event.channel_ids().contains(&id.as_str()),
                "{name} got another channel's event: {event:?}"
            );
            if let Event::ChannelVarset(varset) = event.as_ref() {
                if varset.variable == "WHO" {
                    assert_eq!(varset.value, name);
                }
            }
            seen.push(event.kind().to_owned());
        }
        assert_eq!(
            seen.last().map(String::as_str),
            Some("ChannelDestroyed"),
            "{name}: {seen:?}"
        );
        assert_eq!(handle.events.ended(), Some(StreamEnd::LastEvent));
    }
    // Both subscriptions ended with their channels: nothing is left registered.
    assert_eq!(connection.object_subscriptions(), 0);
}

#[tokio::test]
async fn a_slow_subscriber_is_told_it_lagged() {
    let client = client().await;
    let connection = client
        .app_connection([ari_lab::unique_name("ev-lag")])
        .buffer(16)
        .connect()
        .await
        .unwrap();
    let mut slow = connection.updates();
    // A subscriber that keeps up, to know when all 60 changes have arrived (a lag it
    // might still suffer counts as arrived: only this app's changes are in the stream).
    let mut reader = connection.updates();
    let all_arrived = tokio::spawn(async move {
        let mut arrived = 0;
        while arrived < 60 {
            match reader.next().await {
                Some(Update::Event(e)) if e.kind() == "DeviceStateChanged" => arrived += 1,
                Some(Update::Lagged { missed }) => arrived += missed,
                Some(_) => {}
                None => panic!("the update stream ended"),
            }
        }
    });
    let device = format!("Stasis:{}", ari_client::new_id("lag"));
    let name = connection.app().to_owned();
    client
        .applications()
        .subscribe(ari_client::model::operations::applications::Subscribe::new(
            name.as_str(),
            [format!("deviceState:{device}")],
        ))
        .await
        .unwrap();
    // 60 device state changes while nobody reads `slow`.
    for i in 0..60 {
        let state = if i % 2 == 0 { "BUSY" } else { "NOT_INUSE" };
        let params = ari_client::model::operations::device_states::Update::new(
            device.as_str(),
            ari_client::model::models::DeviceStateValue::from(state),
        );
        client.device_states().update(params).await.unwrap();
    }
    tokio::time::timeout(WAIT, all_arrived)
        .await
        .expect("all 60 device state changes arrived")
        .unwrap();
    let missed = next_matching(&mut slow, |u| match u {
        Update::Lagged { missed } => Some(*missed),
        _ => None,
    })
    .await;
    // 16 updates fit; the other 44 (and more) were missed, never silently.
    assert!(missed >= 44, "missed {missed}");
    // After the lag signal the subscriber goes on receiving.
    let next = tokio::time::timeout(WAIT, slow.next()).await.unwrap();
    assert!(matches!(next, Some(Update::Event(_))), "{next:?}");
    client
        .device_states()
        .delete(ari_client::model::operations::device_states::Delete::new(
            device.as_str(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn rest_over_websocket_sends_operations_on_the_events_socket() {
    let http = client().await;
    let connection = http
        .app_connection([ari_lab::unique_name("ev-rows")])
        .rest_over_websocket(true)
        .connect()
        .await
        .unwrap();
    let client = connection.rest_client().clone();
    let mut updates = connection.updates();
    let info = client
        .asterisk()
        .get_info(asterisk::GetInfo::new())
        .await
        .unwrap();
    assert!(info.system.unwrap().version.starts_with("22."));
    // The answer came as a RESTResponse event on the socket, not over HTTP.
    next_matching(&mut updates, |u| match u {
        Update::Event(e) => {
            matches!(e.as_ref(), Event::RESTResponse(r) if r.uri.starts_with("asterisk/info"))
                .then_some(())
        }
        _ => None,
    })
    .await;
    let missing = client
        .channels()
        .get(channels::Get::new("no-such-channel"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    // Operations with query parameters and bodies work the same way.
    let mut channel = connection
        .originate(
            channels::Originate::new("Local/answer@lab")
                .formats("ulaw")
                .variables([("FROM_WS", "yes")]),
        )
        .await
        .unwrap();
    channel
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap();
    assert_eq!(channel.variable("FROM_WS").await.unwrap(), "yes");
    channel.hangup(HangupReason::Normal).await.unwrap();
    // The REST route belongs to its connection: once closed, requests fail at once.
    connection.close();
    let closed = tokio::time::timeout(WAIT, client.asterisk().ping(asterisk::Ping::new()))
        .await
        .expect("a request on a closed connection fails at once")
        .unwrap_err();
    assert!(matches!(closed, ari_client::Error::Closed), "{closed}");
}

#[tokio::test]
async fn two_connections_on_one_client_each_carry_their_own_requests() {
    let http = client().await;
    let first = http
        .app_connection([ari_lab::unique_name("ev-two-a")])
        .connect()
        .await
        .unwrap();
    let second = http
        .app_connection([ari_lab::unique_name("ev-two-b")])
        .connect()
        .await
        .unwrap();
    let (mut first_updates, mut second_updates) = (first.updates(), second.updates());
    // Each asks for something else; each socket's first answer must be its own request's.
    first
        .rest_client()
        .asterisk()
        .get_info(asterisk::GetInfo::new())
        .await
        .unwrap();
    second
        .rest_client()
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap();
    for (connection, updates, uri) in [
        (&first, &mut first_updates, "asterisk/info"),
        (&second, &mut second_updates, "asterisk/ping"),
    ] {
        let answer = next_matching(updates, |u| match u {
            Update::Event(e) => match e.as_ref() {
                Event::RESTResponse(r) => Some((r.uri.clone(), e.application().map(str::to_owned))),
                _ => None,
            },
            _ => None,
        })
        .await;
        assert!(
            answer.0.starts_with(uri),
            "{}: first answer was {answer:?}",
            connection.app()
        );
        assert_eq!(answer.1.as_deref(), Some(connection.app()));
    }
}

#[tokio::test]
async fn closing_a_connection_ends_its_update_streams_and_later_handles() {
    let connection = app("ev-close").await;
    let mut updates = connection.updates();
    let clone = connection.clone();
    connection.close();
    // A clone keeps the connection's state alive, but not its streams.
    let ended = tokio::time::timeout(WAIT, async { while updates.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the update stream did not end after close()");
    let mut late = clone.channel("ev-close-late");
    let error = late
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap_err();
    assert_eq!(
        error.wait_failure(),
        Some(ari_client::WaitFailure::Ended(StreamEnd::Closed)),
        "{error}"
    );
}

#[tokio::test]
async fn incoming_channels_come_with_a_handle_that_misses_nothing() {
    // A channel the app did not create (here originated over plain HTTP, as the
    // dialplan's Stasis() would send it) is offered with a handle whose events start
    // with its StasisStart; one the connection created itself is not offered.
    let connection = app("ev-incoming").await;
    let mut incoming = connection.incoming_channels();
    let rest = ari_lab::rest::Rest::new(ari_lab::Lab::get().await);
    let outside = ari_lab::unique_name("ev-incoming-outside");
    let response = rest
        .post(&format!(
            "/channels?endpoint=Local/hello@lab&app={}&channelId={outside}&formats=ulaw",
            connection.app()
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text);
    let mut offered = tokio::time::timeout(WAIT, incoming.next_channel())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offered.channel.id().as_str(), outside);
    assert_eq!(offered.start.channel.id.as_str(), outside);
    // hello-world ends the call by itself: its end arrives on the handle, after the
    // StasisStart the handle got first.
    let first = offered.channel.events.next_event().await.unwrap();
    assert!(matches!(first.as_ref(), Event::StasisStart(_)), "{first:?}");
    offered
        .channel
        .events
        .within(Duration::from_secs(15))
        .wait_until(|event| matches!(event, Event::StasisEnd(_)))
        .await
        .unwrap();

    let mut own = connection
        .originate(channels::Originate::new("Local/answer@lab").formats("ulaw"))
        .await
        .unwrap();
    own.events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap();
    own.hangup(HangupReason::Normal).await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(500), incoming.next_channel()).await;
    assert!(more.is_err(), "a created channel was offered: {more:?}");
}

#[tokio::test]
async fn event_sources_bring_every_channels_events_without_device_states() {
    // What a watcher of every channel needs, without subscribeAll's device states (an
    // app subscribed to them can deadlock Asterisk's ARI as its socket closes:
    // asterisk/asterisk#2170).
    let client = client().await;
    let name = ari_lab::unique_name("ev-sources");
    let watcher = client
        .app_connection([name.clone()])
        .event_sources(["channel:"])
        .connect()
        .await
        .unwrap();
    let mut updates = watcher.updates();
    let registered = client
        .applications()
        .get(ari_client::model::operations::applications::Get::new(
            name.as_str(),
        ))
        .await
        .unwrap();
    assert!(registered.device_names.is_empty(), "{registered:?}");
    assert!(
        registered
            .channel_ids
            .iter()
            .any(|id| id.as_str() == "__AST_CHANNEL_ALL_TOPIC"),
        "subscribed to all channels: {registered:?}"
    );
    // A channel of another app (and so not of the watcher's objects) is seen.
    let other = app("ev-sources-other").await;
    let mut channel = local_call(&other, "answer").await;
    let id = channel.id().clone();
    next_matching(&mut updates, |update| match update {
        Update::Event(event) => match event.as_ref() {
            Event::ChannelCreated(created) if created.channel.id == id => Some(()),
            _ => None,
        },
        _ => None,
    })
    .await;
    channel.hangup(HangupReason::Normal).await.unwrap();
    let _ = channel
        .events
        .within(WAIT)
        .wait_until(|e| matches!(e, Event::ChannelDestroyed(_)))
        .await;

    // A source Asterisk does not know fails the connect, naming the subscription.
    let error = client
        .app_connection([ari_lab::unique_name("ev-sources-bad")])
        .event_sources(["nonsense:x"])
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error.status(), Some(400 | 404 | 422)),
        "{}",
        error.chain()
    );
}
