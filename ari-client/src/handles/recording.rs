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

    /// Downloads the stored file to `path` atomically: into a temporary file next to it
    /// (unique, so two savers never share one), synced to disk, checked whole (the byte
    /// count on disk is what arrived, none is empty, and a `.wav` file's RIFF size matches
    /// its length), then renamed to `path`. On any failure the temporary file is removed
    /// and `path` is left as it was. Returns the byte count. The directory must exist.
    ///
    /// # Errors
    /// As [`RecordingHandle::download`]; [`Error::Write`] when the file cannot be
    /// written, synced, checked or renamed (the message names the path).
    pub async fn download_to_file(&self, path: &std::path::Path) -> Result<u64, Error> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(format!(".{}.part", super::new_id("dl")));
        // Removed however this ends short of the rename: an error, or the future dropped
        // (a caller's timeout).
        let partial = PartialFile(std::path::PathBuf::from(partial));
        self.download_into(path, &partial.0).await
    }

    async fn download_into(
        &self,
        path: &std::path::Path,
        partial: &std::path::Path,
    ) -> Result<u64, Error> {
        let fail = |what: &str, at: &std::path::Path, error: std::io::Error| Error::Write {
            operation: "recordings.getStoredFile".to_owned(),
            source: std::io::Error::new(error.kind(), format!("{what} {}: {error}", at.display())),
        };
        let mut file = tokio::fs::File::create(partial)
            .await
            .map_err(|e| fail("cannot create", partial, e))?;
        let bytes = self.download(&mut file).await?;
        file.sync_all()
            .await
            .map_err(|e| fail("cannot sync", partial, e))?;
        drop(file);
        let on_disk = tokio::fs::read(partial)
            .await
            .map_err(|e| fail("cannot read back", partial, e))?;
        let is_wav = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("wav"));
        let whole = if on_disk.len() as u64 != bytes || bytes == 0 {
            Err(format!("holds {} bytes, {bytes} arrived", on_disk.len()))
        } else if is_wav {
            wav_is_whole(&on_disk).map_err(str::to_owned)
        } else {
            Ok(())
        };
        if let Err(why) = whole {
            return Err(fail(
                "incomplete download in",
                partial,
                std::io::Error::new(std::io::ErrorKind::InvalidData, why),
            ));
        }
        tokio::fs::rename(partial, path)
            .await
            .map_err(|e| fail("cannot rename the download to", path, e))?;
        Ok(bytes)
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

/// A download's temporary file, removed when dropped (after the rename there is nothing
/// left to remove).
struct PartialFile(std::path::PathBuf);

impl Drop for PartialFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks a RIFF/WAVE file's size field against its length (a truncated download fails).
///
/// # Errors
/// What is wrong, when the file is not a whole WAV file.
pub fn wav_is_whole(file: &[u8]) -> Result<(), &'static str> {
    if file.len() < 44 || &file[..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err("not a WAV file");
    }
    let riff = u32::from_le_bytes([file[4], file[5], file[6], file[7]]) as usize;
    if riff + 8 != file.len() {
        return Err("the RIFF size does not match the file's length (truncated?)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(data: usize) -> Vec<u8> {
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&u32::try_from(36 + data).unwrap().to_le_bytes());
        file.extend_from_slice(b"WAVEfmt ");
        file.extend_from_slice(&[0; 20]);
        file.extend_from_slice(b"data");
        file.extend_from_slice(&u32::try_from(data).unwrap().to_le_bytes());
        file.extend(std::iter::repeat_n(0u8, data));
        file
    }

    #[test]
    fn a_whole_wav_passes_and_a_truncated_one_does_not() {
        assert!(wav_is_whole(&wav(1600)).is_ok());
        let mut cut = wav(1600);
        cut.truncate(1000);
        assert!(wav_is_whole(&cut).is_err());
        assert!(wav_is_whole(b"garbage").is_err());
    }
}
