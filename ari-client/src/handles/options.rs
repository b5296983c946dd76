//! Optional arguments of handle operations, each a `Default` struct: required arguments
//! are the methods' own parameters.

use ari_model::ChannelId;
use ari_model::models::{IfExists, SnoopDirection, TerminateOn};

/// Options of [`crate::ChannelHandle::record`] and [`crate::BridgeHandle::record`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOptions {
    /// Stop after this many seconds (Asterisk's default: no limit).
    pub max_duration_seconds: Option<i64>,
    /// Stop after this many seconds of silence (default: never).
    pub max_silence_seconds: Option<i64>,
    /// What to do when a stored recording of that name exists (Asterisk's default:
    /// fail).
    pub if_exists: Option<IfExists>,
    /// Play a beep first.
    pub beep: Option<bool>,
    /// DTMF that ends the recording (channels only).
    pub terminate_on: Option<TerminateOn>,
}

impl RecordOptions {
    /// At most `seconds` long.
    #[must_use]
    pub fn max_duration_seconds(mut self, seconds: i64) -> Self {
        self.max_duration_seconds = Some(seconds);
        self
    }

    /// Ends after `seconds` of silence.
    #[must_use]
    pub fn max_silence_seconds(mut self, seconds: i64) -> Self {
        self.max_silence_seconds = Some(seconds);
        self
    }

    /// What to do when the name is taken.
    #[must_use]
    pub fn if_exists(mut self, if_exists: IfExists) -> Self {
        self.if_exists = Some(if_exists);
        self
    }

    /// Beep first.
    #[must_use]
    pub fn beep(mut self, beep: bool) -> Self {
        self.beep = Some(beep);
        self
    }

    /// DTMF that ends it (channels only).
    #[must_use]
    pub fn terminate_on(mut self, terminate_on: TerminateOn) -> Self {
        self.terminate_on = Some(terminate_on);
        self
    }
}

/// Sets the optional fields of a `record` operation's parameters from [`RecordOptions`]
/// (channels' and bridges' parameter structs share these field names).
macro_rules! apply_record_options {
    ($params:ident, $options:expr) => {{
        let RecordOptions {
            max_duration_seconds,
            max_silence_seconds,
            if_exists,
            beep,
            terminate_on,
        } = $options;
        $params.max_duration_seconds = max_duration_seconds;
        $params.max_silence_seconds = max_silence_seconds;
        $params.if_exists = if_exists;
        $params.beep = beep;
        terminate_on
    }};
}
pub(super) use apply_record_options;

/// Options of [`crate::ChannelHandle::snoop`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnoopOptions {
    /// Audio to hear from the channel (default: none).
    pub spy: Option<SnoopDirection>,
    /// Audio to inject into the channel (default: none).
    pub whisper: Option<SnoopDirection>,
    /// The snoop channel's id (default: a new one).
    pub snoop_id: Option<ChannelId>,
    /// The Stasis app the snoop channel enters (default: the connection's first).
    pub app: Option<String>,
    /// Arguments for the app.
    pub app_args: Option<String>,
}

impl SnoopOptions {
    /// Hear `direction` of the channel's audio.
    #[must_use]
    pub fn spy(mut self, direction: SnoopDirection) -> Self {
        self.spy = Some(direction);
        self
    }

    /// Speak into `direction` of the channel's audio.
    #[must_use]
    pub fn whisper(mut self, direction: SnoopDirection) -> Self {
        self.whisper = Some(direction);
        self
    }

    /// Use this id for the snoop channel.
    #[must_use]
    pub fn snoop_id(mut self, id: impl Into<ChannelId>) -> Self {
        self.snoop_id = Some(id.into());
        self
    }

    /// Send the snoop channel into another app.
    #[must_use]
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Arguments for the app.
    #[must_use]
    pub fn app_args(mut self, args: impl Into<String>) -> Self {
        self.app_args = Some(args.into());
        self
    }
}

/// Options of [`crate::ChannelHandle::dial`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialOptions {
    /// The channel that is calling (its caller id and variables carry over).
    pub caller: Option<ChannelId>,
    /// Seconds to ring before giving up (Asterisk's default: forever).
    pub timeout: Option<i64>,
}

impl DialOptions {
    /// Calling on behalf of `caller`.
    #[must_use]
    pub fn caller(mut self, caller: impl Into<ChannelId>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// Ring at most `seconds`.
    #[must_use]
    pub fn timeout(mut self, seconds: i64) -> Self {
        self.timeout = Some(seconds);
        self
    }
}

/// Where [`crate::ChannelHandle::continue_in_dialplan`] sends the channel: by default
/// the priority after the `Stasis()` that brought it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialplanTarget {
    /// Context.
    pub context: Option<String>,
    /// Extension.
    pub extension: Option<String>,
    /// Priority.
    pub priority: Option<i64>,
    /// Label (instead of a priority).
    pub label: Option<String>,
}

impl DialplanTarget {
    /// `extension@context`, priority 1.
    pub fn extension(context: impl Into<String>, extension: impl Into<String>) -> Self {
        DialplanTarget {
            context: Some(context.into()),
            extension: Some(extension.into()),
            priority: Some(1),
            label: None,
        }
    }

    /// At priority `priority` instead.
    #[must_use]
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = Some(priority);
        self.label = None;
        self
    }

    /// At label `label` instead of a priority.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self.priority = None;
        self
    }
}
