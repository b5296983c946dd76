//! [`BridgeHandle`]: a bridge's operations and events.

use ari_model::models::Bridge;
use ari_model::operations::bridges;
use ari_model::{BridgeId, ChannelId};

use super::options::apply_record_options;
use super::{PlaybackHandle, RecordOptions, RecordingHandle};
use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::ObjectEvents;

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
    pub(super) fn new(connection: AppConnection, id: BridgeId, events: ObjectEvents) -> Self {
        BridgeHandle {
            connection,
            id,
            events,
        }
    }

    /// The bridge's id.
    pub fn id(&self) -> &BridgeId {
        &self.id
    }

    /// The connection the handle belongs to.
    pub fn connection(&self) -> &AppConnection {
        &self.connection
    }

    fn bridges(&self) -> crate::resources::Bridges<'_> {
        self.connection.client().bridges()
    }

    /// The bridge as Asterisk sees it now.
    ///
    /// # Errors
    /// 404 when it is gone.
    pub async fn get(&self) -> Result<Bridge, Error> {
        self.bridges().get(bridges::Get::new(self.id.clone())).await
    }

    /// Adds channels to the bridge.
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::add_channel`] (422 when a channel is not in
    /// Stasis yet).
    pub async fn add_channels<I, C>(&self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = C>,
        C: Into<ChannelId>,
    {
        let params = bridges::AddChannel::new(self.id.clone(), channels);
        self.bridges().add_channel(params).await
    }

    /// Removes channels from the bridge.
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::remove_channel`].
    pub async fn remove_channels<I, C>(&self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = C>,
        C: Into<ChannelId>,
    {
        let params = bridges::RemoveChannel::new(self.id.clone(), channels);
        self.bridges().remove_channel(params).await
    }

    /// Plays `media` to everyone in the bridge.
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::play_with_id`].
    pub async fn play(&self, media: &str) -> Result<PlaybackHandle, Error> {
        let group = self.bridges();
        self.connection
            .start_playback(|id| {
                group.play_with_id(bridges::PlayWithId::new(self.id.clone(), id, [media]))
            })
            .await
    }

    /// Records the bridge's mixed audio to `name` in `format` (e.g. `wav`).
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::record`]; [`Error::Config`] when
    /// `options.terminate_on` is set (it applies to channel recordings only).
    pub async fn record(
        &self,
        name: &str,
        format: &str,
        options: RecordOptions,
    ) -> Result<RecordingHandle, Error> {
        let mut params = bridges::Record::new(self.id.clone(), name, format);
        if apply_record_options!(params, options).is_some() {
            return Err(Error::Config(
                "RecordOptions::terminate_on applies to channels only: a bridge recording ends on no DTMF".into(),
            ));
        }
        let handle = self.connection.recording_creating(name.into());
        self.bridges().record(params).await?;
        handle.events.created();
        Ok(handle)
    }

    /// Plays music on hold to the bridge (`class`: a musiconhold.conf class).
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::start_moh`].
    pub async fn start_moh(&self, class: Option<&str>) -> Result<(), Error> {
        let mut params = bridges::StartMoh::new(self.id.clone());
        params.moh_class = class.map(str::to_owned);
        self.bridges().start_moh(params).await
    }

    /// Stops music on hold.
    ///
    /// # Errors
    /// As [`crate::resources::Bridges::stop_moh`].
    pub async fn stop_moh(&self) -> Result<(), Error> {
        self.bridges()
            .stop_moh(bridges::StopMoh::new(self.id.clone()))
            .await
    }

    /// Destroys the bridge (its channels stay up, outside any bridge).
    ///
    /// # Errors
    /// 404 when it is already gone.
    pub async fn destroy(&self) -> Result<(), Error> {
        self.bridges()
            .destroy(bridges::Destroy::new(self.id.clone()))
            .await
    }
}
