//! Hear what a channel hears or says: a snoop channel recorded through ARI, fetched and
//! parsed when the test stops it.
//!
//! [`Tap::start`] registers a Stasis app of its own (its own events WebSocket), creates a
//! snoop channel on the target (`spy=out`: what the channel hears, i.e. what a SIP caller
//! receives; `spy=in`: what it says), waits for the snoop's StasisStart, and records it
//! into a stored recording. [`Tap::stop`] stops the recording, waits until Asterisk has
//! finished the file, downloads it (`GET /recordings/stored/{name}/file`), deletes the
//! stored recording and the snoop, and returns the audio as a [`Wav`].
//!
//! The target channel can be in any app (or none): the tap's own app never sees the
//! test's events, so it does not disturb the test's event stream.

use std::time::Duration;

use crate::audio::{Wav, parse_wav};
use crate::events::Events;
use crate::rest::{Error, Rest};
use crate::{Lab, unique_name};

/// Which audio of the channel the tap records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spy {
    /// What the channel receives from Asterisk and sends to its peer: what a SIP caller
    /// hears.
    Out,
    /// What the channel sends into Asterisk: what a SIP caller says.
    In,
    /// Both directions mixed.
    Both,
}

impl Spy {
    /// The ARI `spy` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Spy::Out => "out",
            Spy::In => "in",
            Spy::Both => "both",
        }
    }
}

/// How long each ARI step of the tap may take.
const STEP: Duration = Duration::from_secs(10);

/// A running recording of one direction of a channel's audio.
pub struct Tap {
    rest: Rest,
    events: Events,
    snoop_id: String,
    recording: String,
    done: bool,
}

impl Tap {
    /// Starts recording what `channel_id` hears or says, in Asterisk's `wav` format (8 kHz).
    ///
    /// # Errors
    /// When the snoop or the recording cannot be created (e.g. the channel is gone).
    pub async fn start(lab: &Lab, channel_id: &str, spy: Spy) -> Result<Tap, Error> {
        Tap::start_format(lab, channel_id, spy, "wav").await
    }

    /// As [`Tap::start`], recording in `format` (`wav` at 8 kHz, `wav16` at 16 kHz).
    ///
    /// # Errors
    /// As [`Tap::start`].
    pub async fn start_format(
        lab: &Lab,
        channel_id: &str,
        spy: Spy,
        format: &str,
    ) -> Result<Tap, Error> {
        Tap::start_inner(lab, channel_id, spy, format, 0).await
    }

    /// As [`Tap::start`], the recording ending by itself after `seconds` (collect it with
    /// [`Tap::finish`]).
    ///
    /// # Errors
    /// As [`Tap::start`].
    pub async fn start_for(
        lab: &Lab,
        channel_id: &str,
        spy: Spy,
        seconds: u32,
    ) -> Result<Tap, Error> {
        Tap::start_inner(lab, channel_id, spy, "wav", seconds.max(1)).await
    }

    async fn start_inner(
        lab: &Lab,
        channel_id: &str,
        spy: Spy,
        format: &str,
        max_seconds: u32,
    ) -> Result<Tap, Error> {
        let app = unique_name("tap");
        let snoop_id = unique_name("tap-snoop");
        let recording = unique_name("tap-rec");
        let events = Events::connect(lab, &app).await?;
        let rest = Rest::new(lab);
        let snoop = rest
            .post(&format!(
                "/channels/{channel_id}/snoop?spy={}&whisper=none&app={app}&snoopId={snoop_id}",
                spy.as_str()
            ))
            .await?;
        if snoop.status != 200 {
            return Err(format!(
                "snoop on {channel_id} refused: {} {}",
                snoop.status, snoop.text
            )
            .into());
        }
        let mut tap = Tap {
            rest,
            events,
            snoop_id,
            recording,
            done: false,
        };
        let snoop_id = tap.snoop_id.clone();
        tap.events
            .wait_for("StasisStart", STEP, |e| {
                e["channel"]["id"] == snoop_id.as_str()
            })
            .await?;
        let record = tap
            .rest
            .post(&format!(
                "/channels/{snoop_id}/record?name={}&format={format}&ifExists=overwrite&beep=false&terminateOn=none&maxDurationSeconds={max_seconds}",
                tap.recording
            ))
            .await?;
        if record.status != 201 {
            return Err(format!(
                "recording the snoop refused: {} {}",
                record.status, record.text
            )
            .into());
        }
        let name = tap.recording.clone();
        tap.events
            .wait_for("RecordingStarted", STEP, |e| {
                e["recording"]["name"] == name.as_str()
            })
            .await?;
        Ok(tap)
    }

    /// The id of the snoop channel.
    pub fn snoop_id(&self) -> &str {
        &self.snoop_id
    }

    /// The name of the recording (live until [`Tap::stop`], then stored, then deleted).
    pub fn recording_name(&self) -> &str {
        &self.recording
    }

    /// Waits (up to `within`) for the recording to end by itself — its time given to
    /// [`Tap::start_for`] is up, or the channel hung up — and returns what it holds; the
    /// stored recording and the snoop are deleted.
    ///
    /// # Errors
    /// When it does not end within `within`, or cannot be fetched or parsed.
    pub async fn finish(mut self, within: Duration) -> Result<Wav, Error> {
        self.done = true;
        let name = self.recording.clone();
        let finished = self
            .events
            .wait_for("RecordingFinished", within, |e| {
                e["recording"]["name"] == name.as_str()
            })
            .await;
        if let Err(error) = finished {
            let _ = self
                .rest
                .delete(&format!("/channels/{}", self.snoop_id))
                .await;
            let _ = self
                .rest
                .delete(&format!("/recordings/stored/{name}"))
                .await;
            return Err(error);
        }
        self.collect().await
    }

    /// Stops the recording and returns what it holds; the stored recording and the snoop
    /// are deleted.
    ///
    /// # Errors
    /// When the recording cannot be stopped, fetched or parsed. The recording may have
    /// ended already because the target channel hung up: that is not an error, its file is
    /// still returned.
    pub async fn stop(mut self) -> Result<Wav, Error> {
        self.done = true;
        let name = self.recording.clone();
        let stop = self
            .rest
            .post(&format!("/recordings/live/{name}/stop"))
            .await?;
        match stop.status {
            204 => {
                self.events
                    .wait_for("RecordingFinished", STEP, |e| {
                        e["recording"]["name"] == name.as_str()
                    })
                    .await?;
            }
            // Already over (the snoop went away with its channel).
            404 => {}
            status => {
                return Err(format!("stopping recording {name}: {status} {}", stop.text).into());
            }
        }
        self.collect().await
    }

    /// Downloads the stored recording, deletes it and the snoop.
    async fn collect(&mut self) -> Result<Wav, Error> {
        let name = self.recording.clone();
        let (status, body) = self
            .rest
            .get_bytes(&format!("/recordings/stored/{name}/file"))
            .await?;
        let _ = self
            .rest
            .delete(&format!("/recordings/stored/{name}"))
            .await;
        let _ = self
            .rest
            .delete(&format!("/channels/{}", self.snoop_id))
            .await;
        if status != 200 {
            return Err(format!(
                "fetching recording {name}: {status} {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(parse_wav(&body)?)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped without stop (a failing test): hang the snoop up, which ends the
        // recording, and delete the stored file, in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let rest = self.rest.clone();
            let snoop = self.snoop_id.clone();
            let name = self.recording.clone();
            runtime.spawn(async move {
                let _ = rest.delete(&format!("/channels/{snoop}")).await;
                let _ = rest.post(&format!("/recordings/live/{name}/stop")).await;
                let _ = rest.delete(&format!("/recordings/stored/{name}")).await;
            });
        }
    }
}
