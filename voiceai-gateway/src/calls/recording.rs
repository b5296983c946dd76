//! Recording calls (`--record`): a bridge recording (the caller and the AI mixed) from the
//! moment both are bridged to the call's end, then downloaded through ari-client into
//! `--recordings-dir` and deleted from Asterisk, so Asterisk's disk does not fill up.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ari_client::model::models::IfExists;
use ari_client::model::operations::recordings;
use ari_client::{AppConnection, BridgeHandle, RecordOptions, RecordingHandle};

/// The flag of the directory.
pub const DIR_FLAG: &str = "--recordings-dir";

/// Its variable.
pub const DIR_VARIABLE: &str = "VOICEAI_RECORDINGS_DIR";

/// The recordings' format (Asterisk writes 16-bit PCM WAV at the bridge's rate).
pub const FORMAT: &str = "wav";

/// How long Asterisk may take to close the file once the recording was stopped (it takes
/// milliseconds; bounded well inside the drain's teardown grace).
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// How long one download may take (a stalled transfer must not hold the call's end
/// forever).
const DOWNLOAD_WITHIN: Duration = Duration::from_secs(120);

/// The recordings directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{DIR_FLAG} ({DIR_VARIABLE}): {} is not a writable directory: {message}", path.display())]
pub struct RecordingsDirError {
    /// The directory.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// Creates `dir` when missing and checks that a file can be written in it (at startup, so
/// a wrong directory is a clear error, not a failure at the end of every call).
///
/// # Errors
/// When it cannot be created or written to; the message names the flag and variable.
pub fn check_dir(dir: &Path) -> Result<(), RecordingsDirError> {
    let error = |message: String| RecordingsDirError {
        path: dir.to_owned(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| error(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".{}.write-check", ari_client::new_id("voiceai")));
    std::fs::write(&probe, b"").map_err(|e| error(format!("cannot write a file in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The recording's name on Asterisk and, with [`FORMAT`], its file name here: the time the
/// call was bridged (so files sort by time) and the call id (so it is unique).
pub fn name_for(call_id: &str, at: SystemTime) -> String {
    // 2026-12-01T11:35:06Z -> 20261201-113506
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = stamp.split_at(stamp.len().min(8));
    format!("{date}-{time}-{call_id}")
}

/// Whether `name` is one the gateway gives its recordings ([`name_for`]:
/// `YYYYMMDD-HHMMSS-CA<32 hex digits>`), so that only its own are ever recovered.
pub fn is_ours(name: &str) -> bool {
    let bytes = name.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    bytes.len() == 8 + 1 + 6 + 1 + 34
        && digits(0..8)
        && bytes[8] == b'-'
        && digits(9..15)
        && bytes[15] == b'-'
        && &bytes[16..18] == b"CA"
        && bytes[18..].iter().all(u8::is_ascii_hexdigit)
}

/// Saves the gateway's recordings left on Asterisk (a download that failed, a gateway
/// that was killed mid-call): each stored recording with one of the gateway's names
/// ([`is_ours`]) that is not being recorded is downloaded into `dir` and deleted on
/// Asterisk. Runs at startup; returns how many were saved.
pub async fn recover(app: &AppConnection, dir: &Path) -> usize {
    let client = app.client();
    let stored = match client
        .recordings()
        .list_stored(recordings::ListStored::new())
        .await
    {
        Ok(stored) => stored,
        Err(error) => {
            tracing::info!(error = %error.chain(), "cannot list the recordings left on Asterisk (they are looked for at the next start)");
            return 0;
        }
    };
    let mut saved = 0;
    for recording in stored {
        let name = recording.name.to_string();
        if recording.format != FORMAT || !is_ours(&name) {
            continue;
        }
        // A live one belongs to a call in progress (another gateway's, on a shared
        // Asterisk): its own gateway saves it.
        match client
            .recordings()
            .get_live(recordings::GetLive::new(recording.name.clone()))
            .await
        {
            Err(error) if error.is_not_found() => {}
            _ => continue,
        }
        let handle = app.recording(recording.name.clone());
        let path = dir.join(format!("{name}.{FORMAT}"));
        match tokio::time::timeout(DOWNLOAD_WITHIN, handle.download_to_file(&path)).await {
            Ok(Ok(bytes)) => {
                tracing::info!(file = %path.display(), bytes, "recording left on Asterisk saved");
                if let Err(error) = handle.delete_stored().await {
                    tracing::warn!(error = %error.chain(), recording = %name, "cannot delete the recording from Asterisk");
                }
                saved += 1;
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error.chain(), recording = %name, "recording left on Asterisk not saved");
            }
            Err(_) => {
                tracing::warn!(recording = %name, "recording left on Asterisk: download timed out")
            }
        }
    }
    saved
}

/// Starts recording `bridge` as `name` (never overwriting a stored recording).
///
/// # Errors
/// Why Asterisk refused, for the call's record.
pub async fn start(bridge: &BridgeHandle, name: &str) -> Result<RecordingHandle, String> {
    bridge
        .record(
            name,
            FORMAT,
            RecordOptions::default().if_exists(IfExists::Fail),
        )
        .await
        .map_err(|error| format!("cannot start the recording: {}", error.chain()))
}

/// Stops the recording (the call is over); one that has stopped already is fine.
pub async fn stop(recording: &RecordingHandle) {
    if let Err(error) = recording.stop().await {
        // 404: it has stopped already (the bridge went first).
        if !error.is_not_found() {
            tracing::debug!(error = %error.chain(), "cannot stop the recording");
        }
    }
}

/// Waits for the stopped recording to be closed, downloads it into `dir` and deletes the
/// stored copy on Asterisk. Returns the file name, or why it was not saved (a recording
/// that could not be downloaded stays on Asterisk, and the message names it).
pub async fn save(mut recording: RecordingHandle, dir: &Path) -> Result<String, String> {
    let name = recording.name().to_string();
    match recording
        .events
        .within(FINISH_WITHIN)
        .wait_until(|e| {
            matches!(
                e,
                ari_client::model::Event::RecordingFinished(_)
                    | ari_client::model::Event::RecordingFailed(_)
            )
        })
        .await
    {
        Ok(event) => {
            if let ari_client::model::Event::RecordingFailed(failed) = event.as_ref() {
                let cause = failed.recording.cause.clone().unwrap_or_default();
                return Err(format!("Asterisk failed to record: {cause}"));
            }
        }
        // A lost event is no proof the file is missing: try the download anyway.
        Err(error) => tracing::debug!(%error, "recording end not seen"),
    }
    let file_name = format!("{name}.{FORMAT}");
    let path = dir.join(&file_name);
    let downloaded = tokio::time::timeout(DOWNLOAD_WITHIN, recording.download_to_file(&path)).await;
    match downloaded {
        Ok(Ok(bytes)) => {
            tracing::info!(file = %path.display(), bytes, "recording saved");
            if let Err(error) = recording.delete_stored().await {
                tracing::warn!(error = %error.chain(), recording = %name, "cannot delete the recording from Asterisk");
            }
            Ok(file_name)
        }
        Ok(Err(error)) => Err(format!(
            "download failed (kept on Asterisk as {name}): {}",
            error.chain()
        )),
        Err(_) => Err(format!(
            "download did not finish within {DOWNLOAD_WITHIN:?} (kept on Asterisk as {name})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_carry_the_call_id() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_124_906);
        let name = name_for("CA0123", at);
        assert_eq!(name, "20261201-113506-CA0123");
    }

    #[test]
    fn only_the_gateway_s_own_names_are_recognised() {
        let name = name_for("CA0123456789abcdef0123456789abcdef", SystemTime::now());
        assert!(is_ours(&name), "{name}");
        for other in [
            "dialer-11309087-000000000001-001",
            "20261201-113506-CA0123",
            "20261201-113506-XX0123456789abcdef0123456789abcdef",
            "2026120a-113506-CA0123456789abcdef0123456789abcdef",
            "20261201-113506-CA0123456789abcdef0123456789abcdeg",
            "",
        ] {
            assert!(!is_ours(other), "{other}");
        }
    }

    #[test]
    fn a_missing_directory_is_created_and_a_file_in_its_place_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        check_dir(&nested).unwrap();
        assert!(nested.is_dir());
        assert_eq!(
            std::fs::read_dir(&nested).unwrap().count(),
            0,
            "no probe left"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let error = check_dir(&file).unwrap_err().to_string();
        assert!(
            error.contains("--recordings-dir (VOICEAI_RECORDINGS_DIR)") && error.contains("file"),
            "{error}"
        );
    }
}
