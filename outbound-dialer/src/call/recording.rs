//! Saving a call's recording: download it from Asterisk (it may be on another host) into
//! the recordings directory, verify the file, and only then delete it from Asterisk.

use std::path::Path;
use std::time::Duration;

use ari_client::RecordingHandle;

use super::{AttemptLog, CallSettings, LogError};

/// How long one download may take (a stalled connection must not hold a campaign).
const DOWNLOAD_WITHIN: Duration = Duration::from_secs(300);

/// How long Asterisk may take to close the recording after the bridge went.
const FINISH_WITHIN: Duration = Duration::from_secs(10);

/// Waits for the recording to finish, downloads, verifies, records the file name in
/// the store, and deletes the copy on Asterisk when configured. A failure is logged and
/// the file is left on Asterisk (a restart tries again): the call's outcome is stored
/// already.
pub(super) async fn save(
    settings: &CallSettings,
    log: &dyn AttemptLog,
    attempt_id: i64,
    recording: &mut RecordingHandle,
    live: bool,
) -> Result<(), LogError> {
    let name = recording.name().to_string();
    // A live recording ends when its bridge does; a stored one has ended already.
    if live {
        wait_finished(recording).await;
    }
    let file_name = format!("{name}.{}", settings.recording_format);
    save_file(settings, log, attempt_id, recording, &file_name).await
}

async fn wait_finished(recording: &mut RecordingHandle) {
    let _ = recording
        .events
        .within(FINISH_WITHIN)
        .wait_until(|e| {
            matches!(
                e,
                ari_client::model::Event::RecordingFinished(_)
                    | ari_client::model::Event::RecordingFailed(_)
            )
        })
        .await;
}

async fn save_file(
    settings: &CallSettings,
    log: &dyn AttemptLog,
    attempt_id: i64,
    recording: &RecordingHandle,
    file_name: &str,
) -> Result<(), LogError> {
    let name = recording.name();
    match download(settings, recording, file_name).await {
        Ok(bytes) => {
            tracing::info!(file = %file_name, bytes, "recording saved");
            log.recording_saved(attempt_id, file_name).await?;
            if settings.delete_after_download {
                if let Err(error) = recording.delete_stored().await {
                    tracing::warn!(error = %error.chain(), "cannot delete the recording from Asterisk");
                }
            }
        }
        Err(message) => tracing::warn!(recording = %name, %message, "recording not saved"),
    }
    Ok(())
}

async fn download(
    settings: &CallSettings,
    recording: &RecordingHandle,
    file_name: &str,
) -> Result<u64, String> {
    let dir = &settings.recordings_dir;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Unique, so two savers of one recording never write the same file.
    let partial = dir.join(format!("{file_name}.{}.part", ari_client::new_id("dl")));
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let downloaded = tokio::time::timeout(DOWNLOAD_WITHIN, recording.download(&mut file)).await;
    let bytes = match downloaded {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!("download failed: {}", error.chain()));
        }
        Err(_) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!(
                "download did not finish within {DOWNLOAD_WITHIN:?}"
            ));
        }
    };
    file.sync_all()
        .await
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
    drop(file);
    verify(&partial, &settings.recording_format, bytes).await?;
    let path = dir.join(file_name);
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|e| format!("cannot move the recording to {}: {e}", path.display()))?;
    Ok(bytes)
}

/// The download is whole: the size on disk is what arrived, and a WAV's header says
/// as much data as the file holds.
async fn verify(path: &Path, format: &str, bytes: u64) -> Result<(), String> {
    let on_disk = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read back {}: {e}", path.display()))?
        .len();
    if on_disk != bytes || bytes == 0 {
        return Err(format!(
            "{} holds {on_disk} bytes, {bytes} arrived",
            path.display()
        ));
    }
    if format == "wav" {
        let head = tokio::fs::read(path)
            .await
            .map_err(|e| format!("cannot read back {}: {e}", path.display()))?;
        wav_is_whole(&head).map_err(|why| format!("{}: {why}", path.display()))?;
    }
    Ok(())
}

/// Checks a RIFF/WAVE file's chunk sizes against its length.
pub(crate) fn wav_is_whole(file: &[u8]) -> Result<(), &'static str> {
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
