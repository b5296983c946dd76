//! Handles on ARI objects: the object's id, the operations on it, and a stream of the
//! events that concern it and no other.
//!
//! Creating operations take a client-chosen id (one is generated when none is given) and
//! subscribe *before* the request is sent, so an event Asterisk raises before its answer
//! arrives (`StasisStart` of an originated channel, say) is never missed. A handle's event
//! stream ends after the object's last event (`ChannelDestroyed`, `BridgeDestroyed`,
//! `PlaybackFinished`, `RecordingFinished`/`RecordingFailed`), which frees its
//! subscription; dropping the handle frees it too.

use ari_model::models::{Bridge, Channel, LiveRecording, Playback};
use ari_model::operations::{applications, bridges, channels, playbacks, recordings};
use ari_model::{BridgeId, ChannelId, Event, PlaybackId, RecordingName};

use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::{Object, ObjectEvents};

/// A new random id for an object this client creates (128 random bits, hex).
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// A channel: its operations and its events.
pub struct ChannelHandle {
    connection: AppConnection,
    id: ChannelId,
    /// The channel's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AppConnection {
    /// A handle on an existing channel, subscribed from now on.
    pub fn channel(&self, id: impl Into<ChannelId>) -> ChannelHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Channel(id.clone()));
        ChannelHandle {
            connection: self.clone(),
            id,
            events,
        }
    }

    /// A handle on an existing bridge, listening from now on. Its events reach this
    /// connection only if an app of it is subscribed to the bridge (bridges made with
    /// [`AppConnection::create_bridge`] are).
    pub fn bridge(&self, id: impl Into<BridgeId>) -> BridgeHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Bridge(id.clone()));
        BridgeHandle {
            connection: self.clone(),
            id,
            events,
        }
    }

    /// Originates a channel into this connection's first app (unless `params` names
    /// another): the id is `params.channel_id` or a new one, subscribed before the
    /// request goes out.
    ///
    /// # Errors
    /// As [`crate::Channels::originate`].
    pub async fn originate(&self, params: channels::Originate) -> Result<ChannelHandle, Error> {
        let mut params = params;
        let id = params
            .channel_id
            .clone()
            .unwrap_or_else(|| ChannelId::new(new_id("chan")));
        params.channel_id = Some(id.clone());
        if params.app.is_none() && params.extension.is_none() && params.context.is_none() {
            params.app = Some(self.app().to_owned());
        }
        let handle = self.channel(id);
        self.client().channels().originate(params).await?;
        Ok(handle)
    }

    /// Creates a channel without dialing it (`channels/create`), subscribed first.
    ///
    /// Asterisk answers before the channel has entered the app: wait for its
    /// `StasisStart` (`handle.events.wait_for("StasisStart")`) before `dial` or other
    /// operations that need it there, or they fail with 409.
    ///
    /// # Errors
    /// As [`crate::Channels::create`].
    pub async fn create_channel(&self, params: channels::Create) -> Result<ChannelHandle, Error> {
        let mut params = params;
        let id = params
            .channel_id
            .clone()
            .unwrap_or_else(|| ChannelId::new(new_id("chan")));
        params.channel_id = Some(id.clone());
        let handle = self.channel(id);
        self.client().channels().create(params).await?;
        Ok(handle)
    }

    /// Creates an external media channel (RTP, AudioSocket or WebSocket), subscribed
    /// first: it enters Stasis asynchronously.
    ///
    /// # Errors
    /// As [`crate::Channels::external_media`].
    pub async fn external_media(
        &self,
        params: channels::ExternalMedia,
    ) -> Result<(ChannelHandle, Channel), Error> {
        let mut params = params;
        let id = params
            .channel_id
            .clone()
            .unwrap_or_else(|| ChannelId::new(new_id("media")));
        params.channel_id = Some(id.clone());
        let handle = self.channel(id);
        let channel = self.client().channels().external_media(params).await?;
        Ok((handle, channel))
    }

    /// Creates a bridge with a client-chosen id and subscribes this connection's first
    /// app to it: a bridge made over REST belongs to no app, so without the subscription
    /// its own events (`BridgeDestroyed`, ...) would never arrive.
    ///
    /// # Errors
    /// As [`crate::Bridges::create`] and [`crate::Applications::subscribe`].
    pub async fn create_bridge(&self, params: bridges::Create) -> Result<BridgeHandle, Error> {
        let mut params = params;
        let id = params
            .bridge_id
            .clone()
            .unwrap_or_else(|| BridgeId::new(new_id("bridge")));
        params.bridge_id = Some(id.clone());
        let handle = self.bridge(id.clone());
        self.client().bridges().create(params).await?;
        let subscribe = applications::Subscribe::new(self.app(), [format!("bridge:{id}")]);
        self.client().applications().subscribe(subscribe).await?;
        Ok(handle)
    }
}

impl ChannelHandle {
    /// The channel's id.
    pub fn id(&self) -> &ChannelId {
        &self.id
    }

    /// The connection the handle belongs to.
    pub fn connection(&self) -> &AppConnection {
        &self.connection
    }

    /// The channel as Asterisk sees it now.
    ///
    /// # Errors
    /// 404 when it is gone.
    pub async fn get(&self) -> Result<Channel, Error> {
        self.connection
            .client()
            .channels()
            .get(channels::Get::new(self.id.clone()))
            .await
    }

    /// Answers the channel.
    ///
    /// # Errors
    /// 404/409/412 as the spec documents.
    pub async fn answer(&self) -> Result<(), Error> {
        self.connection
            .client()
            .channels()
            .answer(channels::Answer::new(self.id.clone()))
            .await
    }

    /// Indicates ringing.
    ///
    /// # Errors
    /// As [`crate::Channels::ring`].
    pub async fn ring(&self) -> Result<(), Error> {
        self.connection
            .client()
            .channels()
            .ring(channels::Ring::new(self.id.clone()))
            .await
    }

    /// Hangs the channel up (normal clearing).
    ///
    /// # Errors
    /// 404 when it is already gone.
    pub async fn hangup(&self) -> Result<(), Error> {
        self.connection
            .client()
            .channels()
            .hangup(channels::Hangup::new(self.id.clone()))
            .await
    }

    /// Hangs the channel up with parameters (reason, Q.850 cause).
    ///
    /// # Errors
    /// As [`crate::Channels::hangup`].
    pub async fn hangup_with(&self, params: channels::Hangup) -> Result<(), Error> {
        let mut params = params;
        params.channel_id = self.id.clone();
        self.connection.client().channels().hangup(params).await
    }

    /// Sets a channel variable (or function, such as `CALLERID(num)`).
    ///
    /// # Errors
    /// As [`crate::Channels::set_channel_var`].
    pub async fn set_variable(&self, name: &str, value: &str) -> Result<(), Error> {
        let params = channels::SetChannelVar::new(self.id.clone(), name).value(value);
        self.connection
            .client()
            .channels()
            .set_channel_var(params)
            .await
    }

    /// Reads a channel variable (or function).
    ///
    /// # Errors
    /// 404 when the channel or variable does not exist.
    pub async fn variable(&self, name: &str) -> Result<String, Error> {
        let params = channels::GetChannelVar::new(self.id.clone(), name);
        Ok(self
            .connection
            .client()
            .channels()
            .get_channel_var(params)
            .await?
            .value)
    }

    /// Plays `media` (e.g. `sound:hello-world`, `tone:ring`) on the channel; the returned
    /// handle is subscribed before the request goes out.
    ///
    /// # Errors
    /// As [`crate::Channels::play_with_id`].
    pub async fn play(&self, media: &str) -> Result<PlaybackHandle, Error> {
        let group = self.connection.client().channels();
        self.connection
            .start_playback(|id| {
                group.play_with_id(channels::PlayWithId::new(self.id.clone(), id, [media]))
            })
            .await
    }

    /// Records the channel to `name` in `format` (e.g. `wav`); stop it with the handle.
    /// A channel runs one command at a time: while it records it cannot play. Record
    /// a bridge or a snoop channel to play and record at once.
    ///
    /// # Errors
    /// As [`crate::Channels::record`] (409 when a recording of that name is running).
    pub async fn record(&self, params: channels::Record) -> Result<RecordingHandle, Error> {
        let mut params = params;
        params.channel_id = self.id.clone();
        let handle = self.connection.recording(params.name.clone());
        self.connection.client().channels().record(params).await?;
        Ok(handle)
    }

    /// Starts a snoop channel on this one (into this connection's app unless `params`
    /// says otherwise); subscribed before the request.
    ///
    /// # Errors
    /// As [`crate::Channels::snoop_channel_with_id`].
    pub async fn snoop(
        &self,
        params: channels::SnoopChannelWithId,
    ) -> Result<ChannelHandle, Error> {
        let mut params = params;
        params.channel_id = self.id.clone();
        let handle = self.connection.channel(params.snoop_id.clone());
        self.connection
            .client()
            .channels()
            .snoop_channel_with_id(params)
            .await?;
        Ok(handle)
    }

    /// Dials a channel made with `channels/create`.
    ///
    /// # Errors
    /// As [`crate::Channels::dial`].
    pub async fn dial(&self, params: channels::Dial) -> Result<(), Error> {
        let mut params = params;
        params.channel_id = self.id.clone();
        self.connection.client().channels().dial(params).await
    }

    /// Sends the channel back to the dialplan.
    ///
    /// # Errors
    /// As [`crate::Channels::continue_in_dialplan`].
    pub async fn continue_in_dialplan(
        &self,
        params: channels::ContinueInDialplan,
    ) -> Result<(), Error> {
        let mut params = params;
        params.channel_id = self.id.clone();
        self.connection
            .client()
            .channels()
            .continue_in_dialplan(params)
            .await
    }
}

/// A bridge: its operations and its events.
pub struct BridgeHandle {
    connection: AppConnection,
    id: BridgeId,
    /// The bridge's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl std::fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl BridgeHandle {
    /// The bridge's id.
    pub fn id(&self) -> &BridgeId {
        &self.id
    }

    /// The bridge as Asterisk sees it now.
    ///
    /// # Errors
    /// 404 when it is gone.
    pub async fn get(&self) -> Result<Bridge, Error> {
        self.connection
            .client()
            .bridges()
            .get(bridges::Get::new(self.id.clone()))
            .await
    }

    /// Adds channels to the bridge.
    ///
    /// # Errors
    /// As [`crate::Bridges::add_channel`] (422 when a channel is not in Stasis yet).
    pub async fn add_channels<I, C>(&self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = C>,
        C: Into<ChannelId>,
    {
        let params = bridges::AddChannel::new(self.id.clone(), channels);
        self.connection.client().bridges().add_channel(params).await
    }

    /// Removes channels from the bridge.
    ///
    /// # Errors
    /// As [`crate::Bridges::remove_channel`].
    pub async fn remove_channels<I, C>(&self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = C>,
        C: Into<ChannelId>,
    {
        let params = bridges::RemoveChannel::new(self.id.clone(), channels);
        self.connection
            .client()
            .bridges()
            .remove_channel(params)
            .await
    }

    /// Plays `media` to everyone in the bridge.
    ///
    /// # Errors
    /// As [`crate::Bridges::play_with_id`].
    pub async fn play(&self, media: &str) -> Result<PlaybackHandle, Error> {
        let group = self.connection.client().bridges();
        self.connection
            .start_playback(|id| {
                group.play_with_id(bridges::PlayWithId::new(self.id.clone(), id, [media]))
            })
            .await
    }

    /// Records the bridge's mixed audio.
    ///
    /// # Errors
    /// As [`crate::Bridges::record`].
    pub async fn record(&self, params: bridges::Record) -> Result<RecordingHandle, Error> {
        let mut params = params;
        params.bridge_id = self.id.clone();
        let handle = self.connection.recording(params.name.clone());
        self.connection.client().bridges().record(params).await?;
        Ok(handle)
    }

    /// Destroys the bridge (its channels stay up, outside any bridge).
    ///
    /// # Errors
    /// 404 when it is already gone.
    pub async fn destroy(&self) -> Result<(), Error> {
        self.connection
            .client()
            .bridges()
            .destroy(bridges::Destroy::new(self.id.clone()))
            .await
    }
}

/// A playback: its controls and its events.
pub struct PlaybackHandle {
    connection: AppConnection,
    id: PlaybackId,
    /// The playback's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl AppConnection {
    /// Subscribes to a new playback id, then asks for the playback with `request`.
    async fn start_playback<F>(
        &self,
        request: impl FnOnce(PlaybackId) -> F,
    ) -> Result<PlaybackHandle, Error>
    where
        F: std::future::Future<Output = Result<Playback, Error>>,
    {
        let id = PlaybackId::new(new_id("play"));
        let handle = self.playback(id.clone());
        request(id).await?;
        Ok(handle)
    }

    /// A handle on a playback, subscribed from now on.
    pub fn playback(&self, id: impl Into<PlaybackId>) -> PlaybackHandle {
        let id = id.into();
        let events = self.router().subscribe(Object::Playback(id.clone()));
        PlaybackHandle {
            connection: self.clone(),
            id,
            events,
        }
    }

    /// A handle on a live recording, subscribed from now on.
    pub fn recording(&self, name: impl Into<RecordingName>) -> RecordingHandle {
        let name = name.into();
        let events = self.router().subscribe(Object::Recording(name.clone()));
        RecordingHandle {
            connection: self.clone(),
            name,
            events,
        }
    }
}

impl PlaybackHandle {
    /// The playback's id.
    pub fn id(&self) -> &PlaybackId {
        &self.id
    }

    /// The playback now.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn get(&self) -> Result<Playback, Error> {
        self.connection
            .client()
            .playbacks()
            .get(playbacks::Get::new(self.id.clone()))
            .await
    }

    /// Stops it.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn stop(&self) -> Result<(), Error> {
        self.connection
            .client()
            .playbacks()
            .stop(playbacks::Stop::new(self.id.clone()))
            .await
    }

    /// Pauses, resumes, restarts, rewinds or fast-forwards it.
    ///
    /// # Errors
    /// As [`crate::Playbacks::control`].
    pub async fn control(
        &self,
        operation: ari_model::models::PlaybackOperation,
    ) -> Result<(), Error> {
        self.connection
            .client()
            .playbacks()
            .control(playbacks::Control::new(self.id.clone(), operation))
            .await
    }

    /// Waits until the playback has finished (`PlaybackFinished`); returns its final
    /// state, or `None` if the connection closed first.
    pub async fn finished(&mut self) -> Option<Playback> {
        match self.events.wait_for("PlaybackFinished").await.as_deref() {
            Some(Event::PlaybackFinished(finished)) => Some(finished.playback.clone()),
            _ => None,
        }
    }
}

/// A live recording, and then the stored one it becomes.
pub struct RecordingHandle {
    connection: AppConnection,
    name: RecordingName,
    /// The recording's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl RecordingHandle {
    /// The recording's name.
    pub fn name(&self) -> &RecordingName {
        &self.name
    }

    /// The live recording now.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn get(&self) -> Result<LiveRecording, Error> {
        self.connection
            .client()
            .recordings()
            .get_live(recordings::GetLive::new(self.name.clone()))
            .await
    }

    /// Stops recording and keeps the file.
    ///
    /// # Errors
    /// 404 when it is not recording.
    pub async fn stop(&self) -> Result<(), Error> {
        self.connection
            .client()
            .recordings()
            .stop(recordings::Stop::new(self.name.clone()))
            .await
    }

    /// Stops recording and discards the file.
    ///
    /// # Errors
    /// 404 when it is not recording.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.connection
            .client()
            .recordings()
            .cancel(recordings::Cancel::new(self.name.clone()))
            .await
    }

    /// Waits until the recording has finished or failed; returns its final state, or
    /// `None` if the connection closed first.
    pub async fn finished(&mut self) -> Option<LiveRecording> {
        while let Some(event) = self.events.next_event().await {
            match event.as_ref() {
                Event::RecordingFinished(e) => return Some(e.recording.clone()),
                Event::RecordingFailed(e) => return Some(e.recording.clone()),
                _ => {}
            }
        }
        None
    }

    /// Streams the stored file into `writer` (after the recording finished); returns
    /// the byte count. The file is never held in memory whole.
    ///
    /// # Errors
    /// 404 when there is no stored recording of that name; write errors.
    pub async fn download<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
        &self,
        writer: &mut W,
    ) -> Result<u64, Error> {
        let params = recordings::GetStoredFile::new(self.name.clone());
        self.connection
            .client()
            .recordings()
            .get_stored_file(params, writer)
            .await
    }

    /// Deletes the stored file.
    ///
    /// # Errors
    /// 404 when there is none.
    pub async fn delete_stored(&self) -> Result<(), Error> {
        self.connection
            .client()
            .recordings()
            .delete_stored(recordings::DeleteStored::new(self.name.clone()))
            .await
    }
}
