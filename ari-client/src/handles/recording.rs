//! [`RecordingHandle`]: a live recording, and then the stored one it becomes.

use ari_model::models::LiveRecording;
use ari_model::operations::recordings;
use ari_model::{Event, RecordingName};

use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::ObjectEvents;

/// A live recording, and then the stored one it becomes.
pub struct RecordingHandle {
    connection: AppConnection,
    name: RecordingName,
    /// The recording's updates (subscribed when the handle was made).
    pub events: ObjectEvents,
}

impl std::fmt::Debug for RecordingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RecordingHandle {
    pub(super) fn new(
        connection: AppConnection,
        name: RecordingName,
        events: ObjectEvents,
    ) -> Self {
        RecordingHandle {
            connection,
            name,
            events,
        }
    }

    /// The recording's name.
    pub fn name(&self) -> &RecordingName {
        &self.name
    }

    fn recordings(&self) -> crate::resources::Recordings<'_> {
        self.connection.client().recordings()
    }

    /// The live recording now.
    ///
    /// # Errors
    /// 404 once it has finished.
    pub async fn get(&self) -> Result<LiveRecording, Error> {
        self.recordings()
            .get_live(recordings::GetLive::new(self.name.clone()))
            .await
    }

    /// Stops recording and keeps the file.
    ///
    /// # Errors
    /// 404 when it is not recording.
    pub async fn stop(&self) -> Result<(), Error> {
        self.recordings()
            .stop(recordings::Stop::new(self.name.clone()))
            .await
    }

    /// Stops recording and discards the file.
    ///
    /// # Errors
    /// 404 when it is not recording.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.recordings()
            .cancel(recordings::Cancel::new(self.name.clone()))
            .await
    }

    /// Waits until the recording has finished (`RecordingFinished`) or failed
    /// (`RecordingFailed`: then the state is `failed` and `cause` says why), and returns
    /// its final state. Bound it with `handle.events.within(..)` for a deadline.
    ///
    /// # Errors
    /// [`Error::NotReceived`] when the stream ends first (gone after a reconnect — the
    /// stored file may still exist —, or the connection closed).
    pub async fn finished(&mut self) -> Result<LiveRecording, Error> {
        let event = self
            .events
            .wait_until(|e| matches!(e, Event::RecordingFinished(_) | Event::RecordingFailed(_)))
            .await?;
        match event.as_ref() {
            Event::RecordingFinished(e) => Ok(e.recording.clone()),
            Event::RecordingFailed(e) => Ok(e.recording.clone()),
            _ => Err(Error::Closed),
        }
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
        self.recordings().get_stored_file(params, writer).await
    }

    /// Deletes the stored file.
    ///
    /// # Errors
    /// 404 when there is none.
    pub async fn delete_stored(&self) -> Result<(), Error> {
        self.recordings()
            .delete_stored(recordings::DeleteStored::new(self.name.clone()))
            .await
    }
}
