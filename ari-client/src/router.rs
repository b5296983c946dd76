//! Per-object delivery: the reader hands each event to the subscribers of exactly the
//! objects it concerns, found by id in a map, instead of waking every subscriber.
//!
//! Each subscriber has a bounded queue; when it is full the event is counted as missed
//! and the subscriber gets [`Update::Lagged`] before its next update — the reader never
//! waits. A subscription ends after its object's last event, when a resync finds the
//! object gone, or when the connection closes ([`StreamEnd`] says which), and is
//! removed when its [`ObjectEvents`] is dropped, so nothing accumulates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use ari_model::{BridgeId, ChannelId, Event, PlaybackId, RecordingName};
use tokio::sync::mpsc;

use crate::connection::{Live, Update};
use crate::error::StreamEnd;

mod waits;

pub use waits::Within;

/// Updates one subscriber may have waiting before further ones count as missed.
const QUEUE: usize = 1024;

/// Most (kind, id) keys one event can concern: a BridgeAttendedTransfer names eight
/// channels and two bridges; unknown events may name more, delivered in further rounds.
const MAX_KEYS: usize = 16;

/// An object whose events a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Object {
    Channel(ChannelId),
    Bridge(BridgeId),
    Playback(PlaybackId),
    Recording(RecordingName),
}

const CHANNEL: usize = 0;
const BRIDGE: usize = 1;
const PLAYBACK: usize = 2;
const RECORDING: usize = 3;

impl Object {
    fn kind(&self) -> usize {
        match self {
            Object::Channel(_) => CHANNEL,
            Object::Bridge(_) => BRIDGE,
            Object::Playback(_) => PLAYBACK,
            Object::Recording(_) => RECORDING,
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

    /// Whether the object is among those a resync found.
    fn is_live(&self, live: &Live) -> bool {
        let set = match self {
            Object::Channel(_) => &live.channels,
            Object::Bridge(_) => &live.bridges,
            Object::Playback(_) => &live.playbacks,
            Object::Recording(_) => &live.recordings,
        };
        set.contains(self.key())
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Channel(id) => write!(f, "channel {id}"),
            Object::Bridge(id) => write!(f, "bridge {id}"),
            Object::Playback(id) => write!(f, "playback {id}"),
            Object::Recording(name) => write!(f, "recording {name}"),
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
        "channel" => Some((CHANNEL, id)),
        "bridge" => Some((BRIDGE, id)),
        _ => None,
    }
}

/// The keys of the objects an event concerns, on the stack, deduplicated.
struct Keys<'a> {
    keys: [(usize, &'a str); MAX_KEYS],
    len: usize,
}

impl<'a> Keys<'a> {
    fn push(&mut self, kind: usize, id: &'a str) -> bool {
        if self.keys[..self.len].contains(&(kind, id)) {
            return true;
        }
        if self.len == MAX_KEYS {
            return false;
        }
        self.keys[self.len] = (kind, id);
        self.len += 1;
        true
    }

    fn as_slice(&self) -> &[(usize, &'a str)] {
        &self.keys[..self.len]
    }
}

/// What a route shares with its [`ObjectEvents`]: missed count and why it ended, and
/// what a resync must know before it may end the route.
#[derive(Default)]
struct RouteState {
    missed: AtomicU64,
    /// 0 while open, else a [`StreamEnd`] code.
    end: AtomicU8,
    /// The request creating the object has not answered yet: a resync cannot judge it.
    in_flight: AtomicBool,
    /// The connection generation (reconnects so far) of the last event delivered: an
    /// object heard from since the last reconnect is alive whatever a list said.
    heard: AtomicU64,
}

impl RouteState {
    fn set_end(&self, end: StreamEnd) {
        let code = match end {
            StreamEnd::LastEvent => 1,
            StreamEnd::Vanished => 2,
            StreamEnd::Closed => 3,
        };
        let _ = self
            .end
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn end(&self) -> Option<StreamEnd> {
        match self.end.load(Ordering::SeqCst) {
            1 => Some(StreamEnd::LastEvent),
            2 => Some(StreamEnd::Vanished),
            3 => Some(StreamEnd::Closed),
            _ => None,
        }
    }
}

struct Route {
    id: u64,
    object: Object,
    sender: mpsc::Sender<Update>,
    state: Arc<RouteState>,
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    /// Reconnects so far.
    generation: u64,
    /// The connection is closed: new subscriptions end at once.
    closed: bool,
    /// By object kind (channel, bridge, playback, recording), then id.
    by_kind: [HashMap<String, Vec<Route>>; 4],
}

/// The subscriptions of one app connection.
#[derive(Default)]
pub(crate) struct Router {
    routes: Mutex<Routes>,
    /// Where channels nobody follows go when they enter Stasis (see
    /// [`crate::AppConnection::incoming_channels`]).
    incoming: Mutex<Option<mpsc::Sender<Incoming>>>,
}

/// A channel that entered Stasis unfollowed: its new subscription (which got the
/// `StasisStart` first) and that event.
pub(crate) type Incoming = (ObjectEvents, Arc<Event>);

/// What delivering to one route came to.
enum Outcome {
    Kept,
    Remove,
}

impl Route {
    /// Whether a resync's finding that the object is absent may end this route.
    fn judged_by_resync(&self, mark: u64, generation: u64) -> bool {
        self.id <= mark
            && !self.state.in_flight.load(Ordering::SeqCst)
            && self.state.heard.load(Ordering::SeqCst) < generation
    }
}

fn deliver(route: &Route, update: &Update) -> Outcome {
    match route.sender.try_send(update.clone()) {
        Ok(()) => Outcome::Kept,
        Err(mpsc::error::TrySendError::Full(_)) => {
            route.state.missed.fetch_add(1, Ordering::Relaxed);
            Outcome::Kept
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Outcome::Remove,
    }
}

impl Router {
    /// Subscribes to `object`'s updates from now on.
    pub(crate) fn subscribe(self: &Arc<Self>, object: Object) -> ObjectEvents {
        self.subscribe_with(object, false)
    }

    /// Subscribes to the updates of an object about to be created: until
    /// [`ObjectEvents::created`], a resync does not judge it.
    pub(crate) fn subscribe_creating(self: &Arc<Self>, object: Object) -> ObjectEvents {
        self.subscribe_with(object, true)
    }

    fn subscribe_with(self: &Arc<Self>, object: Object, in_flight: bool) -> ObjectEvents {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let state = Arc::new(RouteState {
            in_flight: AtomicBool::new(in_flight),
            ..RouteState::default()
        });
        let id = match self.routes.lock() {
            Ok(routes) if routes.closed => {
                // The connection is gone: the stream ends at once, saying so.
                state.set_end(StreamEnd::Closed);
                0
            }
            Ok(mut routes) => {
                routes.next_id += 1;
                let id = routes.next_id;
                let route = Route {
                    id,
                    object: object.clone(),
                    sender,
                    state: state.clone(),
                };
                routes.by_kind[object.kind()]
                    .entry(object.key().to_owned())
                    .or_default()
                    .push(route);
                id
            }
            // A poisoned lock means a panic elsewhere; the stream simply ends.
            Err(_) => {
                state.set_end(StreamEnd::Closed);
                0
            }
        };
        ObjectEvents {
            receiver,
            state,
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

    /// Sends channels entering Stasis that no subscription follows to `sink` from now
    /// on (replacing any earlier sink, whose stream then ends).
    pub(crate) fn set_incoming(&self, sink: mpsc::Sender<Incoming>) {
        if let Ok(mut incoming) = self.incoming.lock() {
            *incoming = Some(sink);
        }
    }

    /// Before `update` is dispatched: when it is the `StasisStart` of a channel nobody
    /// follows and an incoming sink is set, subscribes to the channel (so the event and
    /// everything after it reach the new subscription, with no gap) and hands it over.
    /// A full sink drops the offer (the channel is still seen in the broadcast).
    pub(crate) fn offer_incoming(self: &Arc<Self>, update: &Update) {
        let Update::Event(event) = update else {
            return;
        };
        let Event::StasisStart(start) = event.as_ref() else {
            return;
        };
        let Some(sink) = self.incoming.lock().ok().and_then(|sink| sink.clone()) else {
            return;
        };
        let id = start.channel.id.as_str();
        let followed = self
            .routes
            .lock()
            .map_or(true, |routes| routes.by_kind[CHANNEL].contains_key(id));
        if followed {
            return;
        }
        match sink.try_reserve() {
            Ok(permit) => {
                let events = self.subscribe(Object::Channel(start.channel.id.clone()));
                permit.send((events, event.clone()));
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                tracing::warn!(channel = %id, "incoming channel queue full: channel not offered");
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                if let Ok(mut incoming) = self.incoming.lock() {
                    if incoming.as_ref().is_some_and(mpsc::Sender::is_closed) {
                        *incoming = None;
                    }
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

    /// The newest subscription so far: a resync judges only subscriptions up to it,
    /// since later ones may follow objects made after the state was read.
    pub(crate) fn mark(&self) -> u64 {
        self.routes.lock().map_or(0, |routes| routes.next_id)
    }

    /// The playbacks and recordings that subscriptions follow (a resync checks each).
    pub(crate) fn followed_playbacks_and_recordings(
        &self,
    ) -> (Vec<PlaybackId>, Vec<RecordingName>) {
        let Ok(routes) = self.routes.lock() else {
            return (Vec::new(), Vec::new());
        };
        let playbacks = routes.by_kind[PLAYBACK]
            .keys()
            .map(|k| PlaybackId::new(k.as_str()))
            .collect();
        let recordings = routes.by_kind[RECORDING]
            .keys()
            .map(|k| RecordingName::new(k.as_str()))
            .collect();
        (playbacks, recordings)
    }

    /// Hands `update` to whoever it concerns: an event to its objects' subscribers, a
    /// connection marker to everyone.
    pub(crate) fn dispatch(&self, update: &Update) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if matches!(update, Update::Reconnected) {
            routes.generation += 1;
        }
        match update {
            Update::Event(event) => Self::dispatch_event(&mut routes, update, event),
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
            Update::Connected | Update::ReconnectFailed { .. } | Update::Undecodable { .. } => {}
        }
    }

    fn dispatch_event(routes: &mut Routes, update: &Update, event: &Event) {
        let generation = routes.generation;
        let channels = event.channel_ids();
        let bridges = event.bridge_ids();
        let playbacks = event.playback_ids();
        let recordings = event.recording_names();
        let all = channels
            .iter()
            .map(|id| (CHANNEL, *id))
            .chain(bridges.iter().map(|id| (BRIDGE, *id)))
            .chain(playbacks.iter().map(|id| (PLAYBACK, *id)))
            .chain(recordings.iter().map(|id| (RECORDING, *id)))
            .chain(target(event));
        let mut pending = all.peekable();
        while pending.peek().is_some() {
            let mut keys = Keys {
                keys: [(0, ""); MAX_KEYS],
                len: 0,
            };
            while let Some(&(kind, id)) = pending.peek() {
                if !keys.push(kind, id) {
                    break;
                }
                pending.next();
            }
            for &(kind, key) in keys.as_slice() {
                let map = &mut routes.by_kind[kind];
                let Some(list) = map.get_mut(key) else {
                    continue;
                };
                list.retain(|route| {
                    route.state.heard.store(generation, Ordering::SeqCst);
                    if matches!(deliver(route, update), Outcome::Remove) {
                        return false;
                    }
                    if route.object.ends_with(event) {
                        route.state.set_end(StreamEnd::LastEvent);
                        return false;
                    }
                    true
                });
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
    }

    /// The objects a resync may have to end: subscribed up to `mark`, not being
    /// created, not heard from since the last reconnect, and not in the lists read.
    pub(crate) fn absent(&self, live: &Live, mark: u64) -> Vec<Object> {
        let Ok(routes) = self.routes.lock() else {
            return Vec::new();
        };
        let generation = routes.generation;
        let mut absent: Vec<Object> = routes
            .by_kind
            .iter()
            .flat_map(|map| map.values().flatten())
            .filter(|route| route.judged_by_resync(mark, generation) && !route.object.is_live(live))
            .map(|route| route.object.clone())
            .collect();
        absent.dedup();
        absent
    }

    /// Delivers the `Resynced` marker, then ends the subscriptions (up to `mark`) of the
    /// objects confirmed `gone`, unless they were heard from or created meanwhile.
    pub(crate) fn resynced(&self, update: &Update, gone: &[Object], mark: u64) {
        self.dispatch(update);
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let generation = routes.generation;
        for map in &mut routes.by_kind {
            map.retain(|_, list| {
                list.retain(|route| {
                    if route.judged_by_resync(mark, generation) && gone.contains(&route.object) {
                        route.state.set_end(StreamEnd::Vanished);
                        return false;
                    }
                    true
                });
                !list.is_empty()
            });
        }
    }

    /// Ends every subscription (the connection is closed).
    pub(crate) fn close(&self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.closed = true;
            for map in &mut routes.by_kind {
                for route in map.values().flatten() {
                    route.state.set_end(StreamEnd::Closed);
                }
                map.clear();
            }
        }
    }
}

/// The updates of one object: its events, and the connection markers
/// (`Disconnected`, `Reconnected`, `Resynced`, `Lagged`) that tell what may be missing.
/// A [`futures::Stream`] of [`Update`]s that ends after the object's last event, when a
/// resync finds the object gone, or when the connection closes ([`ObjectEvents::ended`]
/// says which); dropping it ends the subscription.
///
/// Wait for what a program needs with [`ObjectEvents::wait_for`] (a typed event),
/// [`ObjectEvents::wait_until`] (a condition), and [`ObjectEvents::within`] for a
/// deadline.
pub struct ObjectEvents {
    receiver: mpsc::Receiver<Update>,
    state: Arc<RouteState>,
    router: Weak<Router>,
    object: Object,
    id: u64,
}

impl std::fmt::Debug for ObjectEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectEvents")
            .field("object", &self.object)
            .field("ended", &self.ended())
            .finish_non_exhaustive()
    }
}

impl ObjectEvents {
    pub(crate) fn poll_update(&mut self, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        let missed = self.state.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            return Poll::Ready(Some(Update::Lagged { missed }));
        }
        self.receiver.poll_recv(cx)
    }

    /// The request that creates the object has been answered: from now on a resync
    /// may judge whether it still exists.
    pub(crate) fn created(&self) {
        self.state.in_flight.store(false, Ordering::SeqCst);
    }

    /// Why the stream ended: `None` while it is open. Updates already queued are still
    /// delivered after it is set.
    pub fn ended(&self) -> Option<StreamEnd> {
        self.state.end()
    }

    /// The next event of the object, skipping connection markers; `None` after its
    /// last event, or when the stream ended otherwise ([`ObjectEvents::ended`]).
    pub async fn next_event(&mut self) -> Option<Arc<Event>> {
        while let Some(update) = std::future::poll_fn(|cx| self.poll_update(cx)).await {
            if let Update::Event(event) = update {
                return Some(event);
            }
        }
        None
    }
}

impl futures::Stream for ObjectEvents {
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
mod tests;
