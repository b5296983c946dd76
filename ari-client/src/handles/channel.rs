//! [`ChannelHandle`]: a channel's operations and events.

use ari_model::ChannelId;
use ari_model::models::{Channel, HangupReason};
use ari_model::operations::channels;

use super::options::apply_record_options;
use super::{
    DialOptions, DialplanTarget, PlaybackHandle, RecordOptions, RecordingHandle, SnoopOptions,
    new_id,
};
use crate::connection::AppConnection;
use crate::error::Error;
use crate::router::ObjectEvents;

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

impl ChannelHandle {
    pub(crate) fn new(connection: AppConnection, id: ChannelId, events: ObjectEvents) -> Self {
        ChannelHandle {
            connection,
            id,
            events,
        }
    }

    /// The channel's id.
    pub fn id(&self) -> &ChannelId {
        &self.id
    }

    /// The connection the handle belongs to.
    pub fn connection(&self) -> &AppConnection {
        &self.connection
    }

    fn channels(&self) -> crate::resources::Channels<'_> {
        self.connection.client().channels()
    }

    /// The channel as Asterisk sees it now.
    ///
    /// # Errors
    /// 404 when it is gone.
    pub async fn get(&self) -> Result<Channel, Error> {
        self.channels()
            .get(channels::Get::new(self.id.clone()))
            .await
    }

    /// Answers the channel.
    ///
    /// # Errors
    /// 404/409/412 as the spec documents.
    pub async fn answer(&self) -> Result<(), Error> {
        self.channels()
            .answer(channels::Answer::new(self.id.clone()))
            .await
    }

    /// Indicates ringing.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::ring`].
    pub async fn ring(&self) -> Result<(), Error> {
        self.channels()
            .ring(channels::Ring::new(self.id.clone()))
            .await
    }

    /// Hangs the channel up with `reason` (`HangupReason::Normal` for normal clearing,
    /// `Busy`, `Congestion`, ...: Asterisk maps it to a Q.850 cause).
    ///
    /// # Errors
    /// 404 when it is already gone.
    pub async fn hangup(&self, reason: HangupReason) -> Result<(), Error> {
        let params = channels::Hangup::new(self.id.clone()).reason(reason);
        self.channels().hangup(params).await
    }

    /// Hangs the channel up with a Q.850 cause code (e.g. 17 busy, 21 rejected).
    ///
    /// # Errors
    /// As [`ChannelHandle::hangup`]; 400 for a code Asterisk does not accept.
    pub async fn hangup_with_cause(&self, cause: u16) -> Result<(), Error> {
        let params = channels::Hangup::new(self.id.clone()).reason_code(cause.to_string());
        self.channels().hangup(params).await
    }

    /// Sets a channel variable (or function, such as `CALLERID(num)`).
    ///
    /// # Errors
    /// As [`crate::resources::Channels::set_channel_var`].
    pub async fn set_variable(&self, name: &str, value: &str) -> Result<(), Error> {
        let params = channels::SetChannelVar::new(self.id.clone(), name).value(value);
        self.channels().set_channel_var(params).await
    }

    /// Reads a channel variable (or function).
    ///
    /// # Errors
    /// 404 when the channel or variable does not exist.
    pub async fn variable(&self, name: &str) -> Result<String, Error> {
        let params = channels::GetChannelVar::new(self.id.clone(), name);
        Ok(self.channels().get_channel_var(params).await?.value)
    }

    /// Plays `media` (e.g. `sound:hello-world`, `tone:ring`) on the channel; the returned
    /// handle is subscribed before the request goes out.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::play_with_id`].
    pub async fn play(&self, media: &str) -> Result<PlaybackHandle, Error> {
        let group = self.channels();
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
    /// As [`crate::resources::Channels::record`] (409 when a recording of that name is
    /// running, 422 when it exists and `if_exists` is `fail`).
    pub async fn record(
        &self,
        name: &str,
        format: &str,
        options: RecordOptions,
    ) -> Result<RecordingHandle, Error> {
        let mut params = channels::Record::new(self.id.clone(), name, format);
        params.terminate_on = apply_record_options!(params, options);
        let handle = self.connection.recording_creating(name.into());
        self.channels().record(params).await?;
        handle.events.created();
        Ok(handle)
    }

    /// Starts a snoop channel on this one, into this connection's first app unless the
    /// options name another; the snoop's handle is subscribed before the request.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::snoop_channel_with_id`].
    pub async fn snoop(&self, options: SnoopOptions) -> Result<ChannelHandle, Error> {
        let SnoopOptions {
            spy,
            whisper,
            snoop_id,
            app,
            app_args,
        } = options;
        let snoop_id = snoop_id.unwrap_or_else(|| ChannelId::new(new_id("snoop")));
        let app = app.unwrap_or_else(|| self.connection.app().to_owned());
        let mut params = channels::SnoopChannelWithId::new(self.id.clone(), snoop_id.clone(), app);
        params.spy = spy;
        params.whisper = whisper;
        params.app_args = app_args;
        let handle = self.connection.channel_creating(snoop_id);
        self.channels().snoop_channel_with_id(params).await?;
        handle.events.created();
        Ok(handle)
    }

    /// Dials a channel made with [`AppConnection::create_channel`] (after its
    /// `StasisStart`).
    ///
    /// # Errors
    /// As [`crate::resources::Channels::dial`].
    pub async fn dial(&self, options: DialOptions) -> Result<(), Error> {
        let DialOptions { caller, timeout } = options;
        let mut params = channels::Dial::new(self.id.clone());
        params.caller = caller;
        params.timeout = timeout;
        self.channels().dial(params).await
    }

    /// Sends the channel back to the dialplan: after the `Stasis()` that brought it
    /// (`DialplanTarget::default()`), or to the given place. It leaves the app
    /// (`StasisEnd`); the handle's stream goes on until the channel ends.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::continue_in_dialplan`].
    pub async fn continue_in_dialplan(&self, target: DialplanTarget) -> Result<(), Error> {
        let DialplanTarget {
            context,
            extension,
            priority,
            label,
        } = target;
        let mut params = channels::ContinueInDialplan::new(self.id.clone());
        params.context = context;
        params.extension = extension;
        params.priority = priority;
        params.label = label;
        self.channels().continue_in_dialplan(params).await
    }

    /// Moves the channel to `endpoint` (e.g. `PJSIP/agent`): a blind transfer out of
    /// the app.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::redirect`] (422 for an unknown endpoint).
    pub async fn redirect(&self, endpoint: &str) -> Result<(), Error> {
        self.channels()
            .redirect(channels::Redirect::new(self.id.clone(), endpoint))
            .await
    }

    /// Plays music on hold (`class`: a musiconhold.conf class; `None`: the default).
    ///
    /// # Errors
    /// As [`crate::resources::Channels::start_moh`].
    pub async fn start_moh(&self, class: Option<&str>) -> Result<(), Error> {
        let mut params = channels::StartMoh::new(self.id.clone());
        params.moh_class = class.map(str::to_owned);
        self.channels().start_moh(params).await
    }

    /// Stops music on hold.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::stop_moh`].
    pub async fn stop_moh(&self) -> Result<(), Error> {
        self.channels()
            .stop_moh(channels::StopMoh::new(self.id.clone()))
            .await
    }

    /// Sends DTMF digits (`0-9`, `*`, `#`, `A-D`; `,` pauses half a second).
    ///
    /// # Errors
    /// As [`crate::resources::Channels::send_dtmf`].
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), Error> {
        self.channels()
            .send_dtmf(channels::SendDTMF::new(self.id.clone()).dtmf(digits))
            .await
    }
}
