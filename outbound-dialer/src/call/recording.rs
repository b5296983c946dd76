//! Saving a call's recording: download it from Asterisk (it may be on another host) into
//! the recordings directory, verify the file, and only then delete it from Asterisk.

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
    // ari-client writes a temporary file, checks it whole (a WAV's header against its
    // length) and renames it: the directory never holds a partial recording.
    let path = dir.join(file_name);
    match tokio::time::timeout(DOWNLOAD_WITHIN, recording.download_to_file(&path)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(format!("download failed: {}", error.chain())),
        Err(_) => Err(format!(
            "download did not finish within {DOWNLOAD_WITHIN:?}"
        )),
    }
}
