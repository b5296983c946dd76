//! Handles on ARI objects: the object's id, the operations on it, and a stream of the
//! events that concern it and no other.
//!
//! Creating operations take a client-chosen id (one is generated when none is given) and
//! subscribe *before* the request is sent, so an event Asterisk raises before its answer
//! arrives (`StasisStart` of an originated channel, say) is never missed. A handle's event
//! stream ends after the object's last event (`ChannelDestroyed`, `BridgeDestroyed`,
//! `PlaybackFinished`, `RecordingFinished`/`RecordingFailed`), when a resync after a
//! reconnect finds the object gone, or when the connection closes; that frees its
//! subscription, and so does dropping the handle.
//!
//! Methods take their required arguments as parameters and the optional ones as a
//! `Default` options struct ([`RecordOptions`], [`SnoopOptions`], [`DialOptions`],
//! [`DialplanTarget`]).

mod bridge;
mod channel;
mod options;
mod playback;
mod recording;

use ari_model::models::{Channel, Playback};
use ari_model::operations::{applications, bridges, channels};
use ari_model::{BridgeId, ChannelId, PlaybackId, RecordingName};

pub use bridge::BridgeHandle;
pub use channel::ChannelHandle;
pub use options::{DialOptions, DialplanTarget, RecordOptions, SnoopOptions};
pub use playback::PlaybackHandle;
pub use recording::{RecordingHandle, wav_is_whole};

use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::Object;

/// A new random id for an object this client creates: `prefix-` and 32 hex digits
/// (128 random bits). All such ids have one length, so none is a prefix of another
/// (Asterisk answers 409 for an id that prefixes a live channel's).
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

impl AppConnection {
    /// A handle on an existing channel, subscribed from now on.
    pub fn channel(&self, id: impl Into<ChannelId>) -> ChannelHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Channel(id.clone()));
        ChannelHandle::new(self.clone(), id, events)
    }

    /// A handle on an existing bridge, listening from now on. Its events reach this
    /// connection only if an app of it is subscribed to the bridge (bridges made with
    /// [`AppConnection::create_bridge`] are).
    pub fn bridge(&self, id: impl Into<BridgeId>) -> BridgeHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Bridge(id.clone()));
        BridgeHandle::new(self.clone(), id, events)
    }

    /// A handle on an existing bridge, with this connection's first app subscribed to
    /// it so its events arrive (e.g. a bridge this program made before a restart).
    ///
    /// # Errors
    /// As [`crate::resources::Applications::subscribe`] (404/422 when the bridge does not
    /// exist).
    pub async fn follow_bridge(&self, id: impl Into<BridgeId>) -> Result<BridgeHandle, Error> {
        let id = id.into();
        let handle = self.bridge(id.clone());
        let subscribe = applications::Subscribe::new(self.app(), [format!("bridge:{id}")]);
        self.client().applications().subscribe(subscribe).await?;
        Ok(handle)
    }

    /// A handle on a playback, subscribed from now on.
    pub fn playback(&self, id: impl Into<PlaybackId>) -> PlaybackHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Playback(id.clone()));
        PlaybackHandle::new(self.clone(), id, events)
    }

    /// A handle on a live recording, subscribed from now on.
    pub fn recording(&self, name: impl Into<RecordingName>) -> RecordingHandle {
        let name = name.into();
        let events = self.router().subscribe(Object::Recording(name.clone()));
        RecordingHandle::new(self.clone(), name, events)
    }

    /// Handles on objects about to be created: subscribed now, and not judged by a
    /// resync until the creating request has answered (`events.created()`).
    pub(crate) fn channel_creating(&self, id: ChannelId) -> ChannelHandle {
        let events = self
            .router()
            .subscribe_creating(Object::Channel(id.clone()));
        ChannelHandle::new(self.clone(), id, events)
    }

    pub(crate) fn bridge_creating(&self, id: BridgeId) -> BridgeHandle {
        let events = self.router().subscribe_creating(Object::Bridge(id.clone()));
        BridgeHandle::new(self.clone(), id, events)
    }

    pub(crate) fn playback_creating(&self, id: PlaybackId) -> PlaybackHandle {
        let events = self
            .router()
            .subscribe_creating(Object::Playback(id.clone()));
        PlaybackHandle::new(self.clone(), id, events)
    }

    pub(crate) fn recording_creating(&self, name: RecordingName) -> RecordingHandle {
        let events = self
            .router()
            .subscribe_creating(Object::Recording(name.clone()));
        RecordingHandle::new(self.clone(), name, events)
    }

    /// Originates a channel into this connection's first app (unless `params` names
    /// another app or a dialplan target). Its id is `params.channel_id` when given
    /// (keep such ids prefix-free: see [`crate::Delivery`]) or a new one; the handle is
    /// subscribed before the request goes out. The channel enters Stasis when answered:
    /// wait for `StasisStart`.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::originate`].
    pub async fn originate(&self, params: channels::Originate) -> Result<ChannelHandle, Error> {
        let mut params = params;
        let id = params
            .channel_id
            .get_or_insert_with(|| ChannelId::new(new_id("chan")))
            .clone();
        if params.app.is_none() && params.extension.is_none() && params.context.is_none() {
            params.app = Some(self.app().to_owned());
        }
        let handle = self.channel_creating(id);
        self.client().channels().originate(params).await?;
        handle.events.created();
        Ok(handle)
    }

    /// Creates a channel without dialing it (`channels/create`), subscribed first; its
    /// id is `params.channel_id` or a new one.
    ///
    /// Asterisk answers before the channel has entered the app: wait for its
    /// `StasisStart` (`handle.events.wait_for::<StasisStart>()`) before `dial` or other
    /// operations that need it there, or they fail with 409.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::create`].
    pub async fn create_channel(&self, params: channels::Create) -> Result<ChannelHandle, Error> {
        let mut params = params;
        let id = params
            .channel_id
            .get_or_insert_with(|| ChannelId::new(new_id("chan")))
            .clone();
        let handle = self.channel_creating(id);
        self.client().channels().create(params).await?;
        handle.events.created();
        Ok(handle)
    }

    /// Creates an external media channel (RTP, AudioSocket or WebSocket), subscribed
    /// first (it enters Stasis asynchronously); its id is `params.channel_id` or a new
    /// one. Returns the handle and the channel as created (its variables carry the
    /// media addresses).
    ///
    /// # Errors
    /// As [`crate::resources::Channels::external_media`].
    pub async fn external_media(
        &self,
        params: channels::ExternalMedia,
    ) -> Result<(ChannelHandle, Channel), Error> {
        let mut params = params;
        let id = params
            .channel_id
            .get_or_insert_with(|| ChannelId::new(new_id("media")))
            .clone();
        let handle = self.channel_creating(id);
        let channel = self.client().channels().external_media(params).await?;
        handle.events.created();
        Ok((handle, channel))
    }

    /// Creates a bridge (its id is `params.bridge_id` or a new one) and subscribes this
    /// connection's first app to it: a bridge made over REST belongs to no app, and
    /// without the subscription its own events (`BridgeDestroyed`, ...) would never
    /// arrive.
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::create`] and
    /// [`crate::resources::Applications::subscribe`].
    pub async fn create_bridge(&self, params: bridges::Create) -> Result<BridgeHandle, Error> {
        let mut params = params;
        let id = params
            .bridge_id
            .get_or_insert_with(|| BridgeId::new(new_id("bridge")))
            .clone();
        let handle = self.bridge_creating(id.clone());
        self.client().bridges().create(params).await?;
        handle.events.created();
        let subscribe = applications::Subscribe::new(self.app(), [format!("bridge:{id}")]);
        self.client().applications().subscribe(subscribe).await?;
        Ok(handle)
    }

    /// Subscribes to a new playback id, then asks for the playback with `request`.
    pub(crate) async fn start_playback<F>(
        &self,
        request: impl FnOnce(PlaybackId) -> F,
    ) -> Result<PlaybackHandle, Error>
    where
        F: std::future::Future<Output = Result<Playback, Error>>,
    {
        let id = PlaybackId::new(new_id("play"));
        let handle = self.playback_creating(id.clone());
        request(id).await?;
        handle.events.created();
        Ok(handle)
    }
}
