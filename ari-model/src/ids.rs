//! Typed ids of ARI objects: a `ChannelId` cannot be passed where a `BridgeId` is meant.
//!
//! Each is a transparent newtype over `String` (serialised as the bare string) with
//! `Display`, `AsRef<str>`, `Borrow<str>` (so maps keyed by id are looked up by `&str`) and
//! conversions from `String` and `&str`.

use std::borrow::Borrow;
use std::fmt;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                $name(id.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

define_id!(
    /// Id of a channel (`Channel.id`, Asterisk's Uniqueid, or one the client chose).
    ChannelId
);
define_id!(
    /// Id of a bridge (`Bridge.id`).
    BridgeId
);
define_id!(
    /// Id of a playback (`Playback.id`).
    PlaybackId
);
define_id!(
    /// Name of a live or stored recording (`LiveRecording.name`, `StoredRecording.name`).
    RecordingName
);
define_id!(
    /// Id of a sound file (`Sound.id`), e.g. `hello-world`.
    SoundId
);
define_id!(
    /// Name of a Stasis application (`Application.name`).
    ApplicationName
);
define_id!(
    /// Name of a device state (`DeviceState.name`), e.g. `Stasis:agent1`.
    DeviceName
);
define_id!(
    /// Name of a mailbox (`Mailbox.name`).
    MailboxName
);
define_id!(
    /// Name of an Asterisk module (`Module.name`), e.g. `res_ari.so`.
    ModuleName
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn ids_are_transparent_strings() {
        let id: ChannelId = serde_json::from_str("\"1700000000.42\"").unwrap();
        assert_eq!(id, "1700000000.42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1700000000.42\"");
        assert_eq!(id.to_string(), "1700000000.42");
    }

    #[test]
    fn maps_keyed_by_id_are_looked_up_by_str() {
        let mut calls = HashMap::new();
        calls.insert(ChannelId::from("a"), 1);
        assert_eq!(calls.get("a"), Some(&1));
    }
}
