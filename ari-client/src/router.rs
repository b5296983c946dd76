//! Per-object delivery: the reader hands each event to the subscribers of exactly the
//! objects it concerns, found by id in a map, instead of waking every subscriber.
//!
//! Each subscriber has a bounded queue; when it is full the event is counted as missed
//! and the subscriber gets [`Update::Lagged`] before its next update — the reader never
//! waits. A subscription ends after its object's last event, and is removed when its
//! [`ObjectEvents`] is dropped, so nothing accumulates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use ari_model::{BridgeId, ChannelId, Event, PlaybackId, RecordingName};
use futures::Stream;
use tokio::sync::mpsc;

use crate::connection::Update;

/// Updates one subscriber may have waiting before further ones count as missed.
const QUEUE: usize = 1024;

/// An object whose events a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Object {
    Channel(ChannelId),
    Bridge(BridgeId),
    Playback(PlaybackId),
    Recording(RecordingName),
}

impl Object {
    fn kind(&self) -> usize {
        match self {
            Object::Channel(_) => 0,
            Object::Bridge(_) => 1,
            Object::Playback(_) => 2,
            Object::Recording(_) => 3,
        }
    }

    fn key(&self) -> &str {
        match self {
            Object::Channel(id) => id.as_str(),
            Object::Bridge(id) => id.as_str(),
            Object::Playback(id) => id.as_str(),
            Object::Recording(name) => name.as_str(),
        }
    }

    /// Whether `event` is the object's last.
    fn ends_with(&self, event: &Event) -> bool {
        match (self, event) {
            (Object::Channel(id), Event::ChannelDestroyed(e)) => e.channel.id == *id,
            (Object::Bridge(id), Event::BridgeDestroyed(e)) => e.bridge.id == *id,
            (Object::Playback(id), Event::PlaybackFinished(e)) => e.playback.id == *id,
            (Object::Recording(name), Event::RecordingFinished(e)) => e.recording.name == *name,
            (Object::Recording(name), Event::RecordingFailed(e)) => e.recording.name == *name,
            _ => false,
        }
    }
}

/// The channel or bridge a playback or recording plays to or records (`channel:ID`).
fn target(event: &Event) -> Option<(usize, &str)> {
    let uri = match event {
        Event::PlaybackStarted(e) => &e.playback.target_uri,
        Event::PlaybackContinuing(e) => &e.playback.target_uri,
        Event::PlaybackFinished(e) => &e.playback.target_uri,
        Event::RecordingStarted(e) => &e.recording.target_uri,
        Event::RecordingFinished(e) => &e.recording.target_uri,
        Event::RecordingFailed(e) => &e.recording.target_uri,
        _ => return None,
    };
    let (kind, id) = uri.split_once(':')?;
    match kind {
        "channel" => Some((0, id)),
        "bridge" => Some((1, id)),
        _ => None,
    }
}

struct Route {
    id: u64,
    object: Object,
    sender: mpsc::Sender<Update>,
    missed: Arc<AtomicU64>,
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    /// By object kind (channel, bridge, playback, recording), then id.
    by_kind: [HashMap<String, Vec<Route>>; 4],
}

/// The subscriptions of one app connection.
#[derive(Default)]
pub(crate) struct Router {
    routes: Mutex<Routes>,
}

enum Outcome {
    Kept,
    Remove,
}

fn deliver(route: &Route, update: &Update) -> Outcome {
    match route.sender.try_send(update.clone()) {
        Ok(()) => Outcome::Kept,
        Err(mpsc::error::TrySendError::Full(_)) => {
            route.missed.fetch_add(1, Ordering::Relaxed);
            Outcome::Kept
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Outcome::Remove,
    }
}

impl Router {
    /// Subscribes to `object`'s updates from now on.
    pub(crate) fn subscribe(self: &Arc<Self>, object: Object) -> ObjectEvents {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let missed = Arc::new(AtomicU64::new(0));
        let id = match self.routes.lock() {
            Ok(mut routes) => {
                routes.next_id += 1;
                let id = routes.next_id;
                let route = Route {
                    id,
                    object: object.clone(),
                    sender,
                    missed: missed.clone(),
                };
                routes.by_kind[object.kind()]
                    .entry(object.key().to_owned())
                    .or_default()
                    .push(route);
                id
            }
            // A poisoned lock means a panic elsewhere; the stream simply ends.
            Err(_) => 0,
        };
        ObjectEvents {
            receiver,
            missed,
            router: Arc::downgrade(self),
            object,
            id,
        }
    }

    fn unsubscribe(&self, object: &Object, id: u64) {
        if let Ok(mut routes) = self.routes.lock() {
            let map = &mut routes.by_kind[object.kind()];
            if let Some(list) = map.get_mut(object.key()) {
                list.retain(|route| route.id != id);
                if list.is_empty() {
                    map.remove(object.key());
                }
            }
        }
    }

    /// How many subscriptions are live (for tests of leaks).
    pub(crate) fn len(&self) -> usize {
        self.routes.lock().map_or(0, |routes| {
            routes
                .by_kind
                .iter()
                .map(|m| m.values().map(Vec::len).sum::<usize>())
                .sum()
        })
    }

    /// Hands `update` to whoever it concerns: an event to its objects' subscribers, a
    /// connection marker to everyone.
    pub(crate) fn dispatch(&self, update: &Update) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        match update {
            Update::Event(event) => {
                let mut keys: Vec<(usize, &str)> = Vec::with_capacity(4);
                keys.extend(event.channel_ids().into_iter().map(|id| (0, id)));
                keys.extend(event.bridge_ids().into_iter().map(|id| (1, id)));
                keys.extend(event.playback_ids().into_iter().map(|id| (2, id)));
                keys.extend(event.recording_names().into_iter().map(|id| (3, id)));
                keys.extend(target(event));
                keys.sort_unstable();
                keys.dedup();
                for (kind, key) in keys {
                    let map = &mut routes.by_kind[kind];
                    let Some(list) = map.get_mut(key) else {
                        continue;
                    };
                    list.retain(|route| {
                        matches!(deliver(route, update), Outcome::Kept)
                            && !route.object.ends_with(event)
                    });
                    if list.is_empty() {
                        map.remove(key);
                    }
                }
            }
            Update::Disconnected { .. }
            | Update::Reconnected
            | Update::Resynced(_)
            | Update::ResyncFailed { .. }
            | Update::Lagged { .. } => {
                for map in &mut routes.by_kind {
                    map.retain(|_, list| {
                        list.retain(|route| matches!(deliver(route, update), Outcome::Kept));
                        !list.is_empty()
                    });
                }
            }
            Update::Connected | Update::Undecodable { .. } => {}
        }
    }

    /// Ends every subscription (the connection is closed).
    pub(crate) fn close(&self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.by_kind.iter_mut().for_each(HashMap::clear);
        }
    }
}

/// The updates of one object: its events, and the connection markers
/// (`Disconnected`, `Reconnected`, `Resynced`, `Lagged`) that tell what may be missing.
/// Ends after the object's last event; dropping it ends the subscription.
pub struct ObjectEvents {
    receiver: mpsc::Receiver<Update>,
    missed: Arc<AtomicU64>,
    router: Weak<Router>,
    object: Object,
    id: u64,
}

impl ObjectEvents {
    /// The next update; `None` after the object's last event or when the connection
    /// closes.
    pub async fn next(&mut self) -> Option<Update> {
        std::future::poll_fn(|cx| self.poll_update(cx)).await
    }

    fn poll_update(&mut self, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        let missed = self.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            return Poll::Ready(Some(Update::Lagged { missed }));
        }
        self.receiver.poll_recv(cx)
    }

    /// The next event of the object, skipping connection markers; `None` after its
    /// last event or when the connection closes.
    pub async fn next_event(&mut self) -> Option<Arc<Event>> {
        while let Some(update) = self.next().await {
            if let Update::Event(event) = update {
                return Some(event);
            }
        }
        None
    }

    /// The next event of type `kind` (e.g. `"StasisStart"`), skipping others; `None`
    /// when the stream ends first.
    pub async fn wait_for(&mut self, kind: &str) -> Option<Arc<Event>> {
        while let Some(event) = self.next_event().await {
            if event.kind() == kind {
                return Some(event);
            }
        }
        None
    }
}

impl Stream for ObjectEvents {
    type Item = Update;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        self.get_mut().poll_update(cx)
    }
}

impl Drop for ObjectEvents {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade() {
            router.unsubscribe(&self.object, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Update {
        Update::Event(Arc::new(Event::from_json_str(json).unwrap()))
    }

    fn channel_event(kind: &str, id: &str) -> Update {
        event(&format!(
            r#"{{"type":"{kind}","application":"a","timestamp":"2026-01-01T00:00:00.000+0000","cause":16,"cause_txt":"Normal Clearing","channel":{{"id":"{id}","name":"n","state":"Up","protocol_id":"","caller":{{"name":"","number":""}},"connected":{{"name":"","number":""}},"accountcode":"","dialplan":{{"context":"c","exten":"e","priority":1,"app_name":"","app_data":""}},"creationtime":"2026-01-01T00:00:00.000+0000","language":"en"}},"variable":"V","value":"1"}}"#
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
        assert_eq!(a.next_event().await.unwrap().kind(), "ChannelVarset");
        assert_eq!(a.next_event().await.unwrap().kind(), "ChannelDestroyed");
        assert!(a.next_event().await.is_none(), "ends after its last event");
        assert_eq!(b.next_event().await.unwrap().channel_ids(), ["b"]);
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
        assert!(matches!(a.next().await, Some(Update::Event(_))));
    }

    #[tokio::test]
    async fn markers_reach_everyone() {
        let router = Arc::new(Router::default());
        let mut a = router.subscribe(Object::Bridge("x".into()));
        router.dispatch(&Update::Reconnected);
        assert!(matches!(a.next().await, Some(Update::Reconnected)));
        router.close();
        assert!(a.next().await.is_none());
    }
}
