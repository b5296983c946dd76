//! Decoding support for [`crate::Event`]: the error type, the fast text path, and the
//! id lookups for events of types this crate does not know.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::EventIds;

/// Why an event could not be decoded: the event type, the path of the offending field
/// (`channel.caller.number`; empty for the whole event) and serde's message.
///
/// Only events of a type this crate knows fail this way; unknown types become
/// [`crate::Event::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDecodeError {
    /// The event's `type`, or empty when it has none.
    pub kind: String,
    /// Dotted path of the field that failed.
    pub path: String,
    /// What was wrong with it.
    pub message: String,
}

impl fmt::Display for EventDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "ARI event"
        } else {
            &self.kind
        };
        if self.path.is_empty() || self.path == "." {
            write!(f, "cannot decode {kind}: {}", self.message)
        } else {
            write!(
                f,
                "cannot decode {kind}: field `{}`: {}",
                self.path, self.message
            )
        }
    }
}

impl std::error::Error for EventDecodeError {}

impl EventDecodeError {
    pub(crate) fn new(kind: &str, path: impl Into<String>, message: impl fmt::Display) -> Self {
        EventDecodeError {
            kind: kind.to_owned(),
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Just the discriminator, read without decoding the rest.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

/// The `type` when it is the first member and holds no escapes, as Asterisk writes it
/// (`{"type":"StasisStart",...`): found without scanning the rest of the event.
fn leading_kind(text: &str) -> Option<&str> {
    let rest = text
        .trim_start()
        .strip_prefix('{')?
        .trim_start()
        .strip_prefix("\"type\"")?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes().get(end) == Some(&b'"')).then(|| &rest[..end])
}

/// The event's `type`, read from text.
pub(crate) fn peek_kind(text: &str) -> Result<Cow<'_, str>, EventDecodeError> {
    if let Some(kind) = leading_kind(text) {
        return Ok(Cow::Borrowed(kind));
    }
    let tag: Tag<'_> = serde_json::from_str(text).map_err(|e| EventDecodeError::new("", "", e))?;
    tag.kind
        .ok_or_else(|| EventDecodeError::new("", "type", "missing field `type`"))
}

/// Decodes a known event type from text; on failure, decodes again to find the field.
pub(crate) fn decode_str<T: DeserializeOwned>(
    kind: &str,
    text: &str,
) -> Result<T, EventDecodeError> {
    match serde_json::from_str(text) {
        Ok(event) => Ok(event),
        Err(first) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
                Err(error) => Err(EventDecodeError::new(
                    kind,
                    error.path().to_string(),
                    error.into_inner(),
                )),
                Ok(_) => Err(EventDecodeError::new(kind, "", first)),
            }
        }
    }
}

/// Decodes a known event type from a JSON tree, naming the failing field.
pub(crate) fn decode_value<T: DeserializeOwned>(
    kind: &str,
    value: Value,
) -> Result<T, EventDecodeError> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| EventDecodeError::new(kind, error.path().to_string(), error.into_inner()))
}

/// A string field of a raw event.
pub(crate) fn raw_str<'a>(raw: &'a Value, field: &str) -> Option<&'a str> {
    raw.get(field).and_then(Value::as_str)
}

/// Which kind of ARI object a JSON object of an unknown event looks like.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    Channel,
    Bridge,
    Playback,
    Recording,
}

impl Shape {
    fn matches(self, object: &Map<String, Value>) -> bool {
        let has = |key: &str| object.contains_key(key);
        match self {
            Shape::Channel => has("id") && has("name") && has("state") && has("caller"),
            Shape::Bridge => has("id") && has("bridge_type") && has("channels"),
            Shape::Playback => has("id") && has("media_uri") && has("target_uri"),
            Shape::Recording => has("name") && has("format") && has("target_uri"),
        }
    }

    fn id_field(self) -> &'static str {
        match self {
            Shape::Recording => "name",
            _ => "id",
        }
    }
}

/// Ids of the top-level objects of an unknown event that look like `shape`
/// (a channel has `id`, `name`, `state`, `caller`; a bridge `id`, `bridge_type`,
/// `channels`; ...), so that events added by a newer Asterisk still reach the objects they
/// concern.
pub(crate) fn raw_ids(raw: &Value, shape: Shape) -> EventIds<'_> {
    let Some(object) = raw.as_object() else {
        return EventIds::new();
    };
    object
        .values()
        .filter_map(Value::as_object)
        .filter(|candidate| shape.matches(candidate))
        .filter_map(|candidate| candidate.get(shape.id_field()).and_then(Value::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_type_is_read_without_a_parse() {
        assert_eq!(
            leading_kind(r#"{"type":"Dial","timestamp":"x"}"#),
            Some("Dial")
        );
        assert_eq!(leading_kind(r#" { "type" : "Dial" }"#), Some("Dial"));
        assert_eq!(leading_kind(r#"{"timestamp":"x","type":"Dial"}"#), None);
        assert_eq!(leading_kind(r#"{"type":"Di\u0061l"}"#), None);
        assert_eq!(leading_kind(r#"{"type":12}"#), None);
        assert_eq!(leading_kind(r#"{"type":"unterminated"#), None);
        // The slow path still finds it anywhere.
        assert_eq!(
            peek_kind(r#"{"timestamp":"x","type":"Dial"}"#).unwrap(),
            "Dial"
        );
        assert_eq!(peek_kind(r#"{"type":"Di\u0061l"}"#).unwrap(), "Dial");
    }
}
