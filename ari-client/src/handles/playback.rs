//! [`PlaybackHandle`]: a playback's controls and events.

use ari_model::PlaybackId;
use ari_model::events::PlaybackFinished;
use ari_model::models::{Playback, PlaybackOperation};
use ari_model::operations::playbacks;

use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::ObjectEvents;

/// A playback: its controls and its events.
pub struct PlaybackHandle {
    connection: AppConnection,
    id: PlaybackId,
    /// The playback's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl std::fmt::Debug for PlaybackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PlaybackHandle {
    pub(super) fn new(connection: AppConnection, id: PlaybackId, events: ObjectEvents) -> Self {
        PlaybackHandle {
            connection,
            id,
            events,
        }
    }

    /// The playback's id.
    pub fn id(&self) -> &PlaybackId {
        &self.id
    }

    fn playbacks(&self) -> crate::resources::Playbacks<'_> {
        self.connection.client().playbacks()
    }

    /// The playback now.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn get(&self) -> Result<Playback, Error> {
        self.playbacks()
            .get(playbacks::Get::new(self.id.clone()))
            .await
    }

    /// Stops it.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn stop(&self) -> Result<(), Error> {
        self.playbacks()
            .stop(playbacks::Stop::new(self.id.clone()))
            .await
    }

    /// Pauses, resumes, restarts, rewinds or fast-forwards it.
    ///
    /// # Errors
    /// As [`crate::resources::Playbacks::control`].
    pub async fn control(&self, operation: PlaybackOperation) -> Result<(), Error> {
        self.playbacks()
            .control(playbacks::Control::new(self.id.clone(), operation))
            .await
    }

    /// Waits until the playback has finished (`PlaybackFinished`) and returns its final
    /// state. Bound it with `handle.events.within(..)` for a deadline.
    ///
    /// # Errors
    /// [`Error::NotReceived`] when the stream ends first (the playback was gone after a
    /// reconnect, or the connection closed).
    pub async fn finished(&mut self) -> Result<Playback, Error> {
        Ok(self.events.wait_for::<PlaybackFinished>().await?.playback)
    }
}
