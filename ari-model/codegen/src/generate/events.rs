//! `events.rs`: every event struct, and the `Event` enum with its decoders and accessors.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::spec::Model;
use crate::types::Ty;

use super::{Field, GenerateError, StructDef, write_struct};

/// The concrete event types: subtypes of `Message` and `Event` that are not bases.
pub(super) fn concrete_events(
    models: &BTreeMap<&str, &Model>,
) -> Result<Vec<String>, GenerateError> {
    let message = models
        .get("Message")
        .ok_or_else(|| GenerateError::Spec("events.json has no Message".into()))?;
    let mut events = Vec::new();
    for sub in &message.sub_types {
        if sub == "Event" {
            let event = models
                .get("Event")
                .ok_or_else(|| GenerateError::Spec("events.json has no Event".into()))?;
            events.extend(event.sub_types.iter().cloned());
        } else {
            events.push(sub.clone());
        }
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// How a field contributes ids of `model` (`Channel`, `Bridge`, ...) to an accessor.
enum IdSource {
    /// Always exactly one id: an expression.
    One(String),
    /// Zero or more ids: a statement that pushes them onto `ids`.
    Statement(String),
}

fn id_source(field: &Field, model: &str, id_type: &str, id_field: &str) -> Option<IdSource> {
    let target = format!("e.{}", field.ident);
    let (single, many) = match &field.ty {
        Ty::Model(m) if m == model => (format!("{{x}}.{id_field}.as_str()"), false),
        Ty::List(inner) if matches!(inner.as_ref(), Ty::Model(m) if m == model) => (
            format!("{{x}}.iter().map(|item| item.{id_field}.as_str())"),
            true,
        ),
        Ty::Id(id) if *id == id_type => ("{x}.as_str()".to_owned(), false),
        Ty::List(inner) if matches!(inner.as_ref(), Ty::Id(id) if *id == id_type) => {
            ("{x}.iter().map(|item| item.as_str())".to_owned(), true)
        }
        _ => return None,
    };
    let verb = if many { "extend" } else { "push" };
    Some(match (field.required, many) {
        (true, false) => IdSource::One(single.replace("{x}", &target)),
        (true, true) => {
            IdSource::Statement(format!("ids.{verb}({});", single.replace("{x}", &target)))
        }
        (false, _) => IdSource::Statement(format!(
            "if let Some(x) = &{target} {{ ids.{verb}({}); }}",
            single.replace("{x}", "x")
        )),
    })
}

/// `impl EventType for <name>`: the one place the event's wire `type` is written.
fn write_event_type(out: &mut String, name: &str) {
    let _ = writeln!(
        out,
        "impl EventType for {name} {{\n    const KIND: &'static str = {name:?};\n\n    fn from_event(event: &Event) -> Option<&Self> {{\n        match event {{\n            Event::{name}(e) => Some(e),\n            _ => None,\n        }}\n    }}\n}}\n"
    );
}

/// A test-only macro that calls `$callback!(A, B, ...)` with every event type, so that
/// hand-written tests cover each one without a list that falls behind the spec.
fn write_type_list(out: &mut String, structs: &[StructDef]) {
    let names: Vec<&str> = structs.iter().map(|def| def.name.as_str()).collect();
    out.push_str("/// Calls `$callback!(A, B, ...)` with every event type (for tests).\n");
    out.push_str("#[cfg(test)]\nmacro_rules! for_each_event_type {\n");
    let _ = writeln!(
        out,
        "    ($callback:ident) => {{\n        $callback!({})\n    }};\n}}\n",
        names.join(", ")
    );
    out.push_str("#[cfg(test)]\npub(crate) use for_each_event_type;\n\n");
}

pub(super) fn file(header: &str, structs: &[StructDef]) -> String {
    let mut out = String::from(header);
    out.push_str(
        "//! Every ARI event, and [`Event`], which decodes any of them by its `type`.\n\n",
    );
    out.push_str("use crate::EventType;\n");
    out.push_str("use crate::event_support::{EventDecodeError, Shape, decode_str, decode_value, peek_kind, raw_ids, raw_str};\n\n");
    for def in structs {
        write_struct(&mut out, def);
        write_event_type(&mut out, &def.name);
    }
    write_type_list(&mut out, structs);

    out.push_str("/// An ARI event or message, decoded by its `type`.\n///\n");
    out.push_str("/// Types this crate does not know (added by a newer Asterisk) become [`Event::Unknown`]\n");
    out.push_str(
        "/// with the raw JSON; a known type that does not decode is an [`EventDecodeError`]\n",
    );
    out.push_str("/// naming the type and the field.\n");
    out.push_str("#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\npub enum Event {\n");
    for def in structs {
        let first_line = def
            .doc
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("/// ");
        let _ = writeln!(out, "    /// {first_line}");
        let _ = writeln!(out, "    {}(Box<{}>),", def.name, def.name);
    }
    out.push_str("    /// An event of a type this version of the crate does not know.\n");
    out.push_str("    Unknown {\n        /// Its `type`.\n        kind: String,\n        /// The whole event as Asterisk sent it.\n        raw: serde_json::Value,\n    },\n}\n\n");

    out.push_str("impl Event {\n");
    out.push_str("    /// Every event `type` this crate decodes.\n    pub const KNOWN_KINDS: &'static [&'static str] = &[");
    for def in structs {
        let _ = write!(out, "{:?}, ", def.name);
    }
    out.push_str("];\n\n");

    out.push_str(
        "    /// Decodes an event from the text of a WebSocket frame (the fast path).\n    ///\n",
    );
    out.push_str("    /// # Errors\n    /// When the text is not JSON, has no `type`, or is a known type that does not decode.\n");
    out.push_str("    pub fn from_json_str(text: &str) -> Result<Event, EventDecodeError> {\n");
    out.push_str("        let kind = peek_kind(text)?;\n        match kind.as_ref() {\n");
    for def in structs {
        let _ = writeln!(
            out,
            "            {:?} => decode_str(&kind, text).map(|e| Event::{}(Box::new(e))),",
            def.name, def.name
        );
    }
    out.push_str("            _ => {\n                let raw = serde_json::from_str(text).map_err(|e| EventDecodeError::new(&kind, \"\", e))?;\n");
    out.push_str("                Ok(Event::Unknown { kind: kind.into_owned(), raw })\n            }\n        }\n    }\n\n");

    out.push_str("    /// Decodes an event from a JSON tree.\n    ///\n");
    out.push_str("    /// # Errors\n    /// When the value has no `type`, or is a known type that does not decode.\n");
    out.push_str("    pub fn from_json_value(value: serde_json::Value) -> Result<Event, EventDecodeError> {\n");
    out.push_str("        let Some(kind) = value.get(\"type\").and_then(serde_json::Value::as_str).map(str::to_owned) else {\n");
    out.push_str("            return Err(EventDecodeError::new(\"\", \"type\", \"missing field `type`\"));\n        };\n");
    out.push_str("        match kind.as_str() {\n");
    for def in structs {
        let _ = writeln!(
            out,
            "            {:?} => decode_value(&kind, value).map(|e| Event::{}(Box::new(e))),",
            def.name, def.name
        );
    }
    out.push_str("            _ => Ok(Event::Unknown { kind, raw: value }),\n        }\n    }\n\n");

    out.push_str("    /// The ARI `type` of the event, e.g. `StasisStart`.\n    pub fn kind(&self) -> &str {\n        match self {\n");
    for def in structs {
        let _ = writeln!(out, "            Event::{0}(_) => {0}::KIND,", def.name);
    }
    out.push_str("            Event::Unknown { kind, .. } => kind,\n        }\n    }\n\n");

    out.push_str("    /// Whether this is an event type the crate does not know.\n    pub fn is_unknown(&self) -> bool {\n        matches!(self, Event::Unknown { .. })\n    }\n\n");

    for (accessor, wire, doc) in [
        (
            "application",
            "application",
            "The Stasis application the event was sent to.",
        ),
        (
            "timestamp",
            "timestamp",
            "When Asterisk raised the event, as it wrote it (see [`crate::Timestamp`]).",
        ),
        (
            "asterisk_id",
            "asterisk_id",
            "The id of the Asterisk instance that raised the event.",
        ),
    ] {
        let _ = writeln!(
            out,
            "    /// {doc}\n    pub fn {accessor}(&self) -> Option<&str> {{\n        match self {{"
        );
        let _ = writeln!(
            out,
            "            Event::Unknown {{ raw, .. }} => raw_str(raw, {wire:?}),"
        );
        let mut any_missing = false;
        for def in structs {
            match def.fields.iter().find(|f| f.wire == wire) {
                Some(field) if field.required => {
                    let _ = writeln!(
                        out,
                        "            Event::{}(e) => Some(e.{}.as_str()),",
                        def.name, field.ident
                    );
                }
                Some(field) if field.ty == Ty::String => {
                    let _ = writeln!(
                        out,
                        "            Event::{}(e) => e.{}.as_deref(),",
                        def.name, field.ident
                    );
                }
                Some(field) => {
                    let _ = writeln!(
                        out,
                        "            Event::{}(e) => e.{}.as_ref().map(|v| v.as_str()),",
                        def.name, field.ident
                    );
                }
                None => any_missing = true,
            }
        }
        if any_missing {
            out.push_str("            _ => None,\n");
        }
        out.push_str("        }\n    }\n\n");
    }

    for (accessor, model, id_type, id_field, shape, doc) in [
        (
            "channel_ids",
            "Channel",
            "ChannelId",
            "id",
            "Channel",
            "Ids of the channels the event concerns (e.g. a `Dial`'s caller, peer and forwarded channel).",
        ),
        (
            "bridge_ids",
            "Bridge",
            "BridgeId",
            "id",
            "Bridge",
            "Ids of the bridges the event concerns.",
        ),
        (
            "playback_ids",
            "Playback",
            "PlaybackId",
            "id",
            "Playback",
            "Ids of the playbacks the event concerns.",
        ),
        (
            "recording_names",
            "LiveRecording",
            "RecordingName",
            "name",
            "Recording",
            "Names of the recordings the event concerns.",
        ),
    ] {
        let _ = writeln!(
            out,
            "    /// {doc}\n    ///\n    /// For an [`Event::Unknown`], the ids of its top-level objects shaped like a {model}."
        );
        let _ = writeln!(
            out,
            "    pub fn {accessor}(&self) -> Vec<&str> {{\n        match self {{"
        );
        let _ = writeln!(
            out,
            "            Event::Unknown {{ raw, .. }} => raw_ids(raw, Shape::{shape}),"
        );
        let mut any_without = false;
        for def in structs {
            let sources: Vec<IdSource> = def
                .fields
                .iter()
                .filter_map(|f| id_source(f, model, id_type, id_field))
                .collect();
            if sources.is_empty() {
                any_without = true;
                continue;
            }
            let ones: Vec<&str> = sources
                .iter()
                .filter_map(|s| {
                    if let IdSource::One(e) = s {
                        Some(e.as_str())
                    } else {
                        None
                    }
                })
                .collect();
            let statements: Vec<&str> = sources
                .iter()
                .filter_map(|s| {
                    if let IdSource::Statement(t) = s {
                        Some(t.as_str())
                    } else {
                        None
                    }
                })
                .collect();
            if statements.is_empty() {
                let _ = writeln!(
                    out,
                    "            Event::{}(e) => vec![{}],",
                    def.name,
                    ones.join(", ")
                );
                continue;
            }
            let initial = if ones.is_empty() {
                "Vec::new()".to_owned()
            } else {
                format!("vec![{}]", ones.join(", "))
            };
            let _ = writeln!(
                out,
                "            Event::{}(e) => {{\n                let mut ids = {initial};",
                def.name
            );
            for statement in statements {
                let _ = writeln!(out, "                {statement}");
            }
            out.push_str("                ids\n            }\n");
        }
        if any_without {
            out.push_str("            _ => Vec::new(),\n");
        }
        out.push_str("        }\n    }\n\n");
    }
    out.push_str("}\n\n");

    out.push_str("impl<'de> serde::Deserialize<'de> for Event {\n");
    out.push_str("    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {\n");
    out.push_str("        let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;\n");
    out.push_str(
        "        Event::from_json_value(value).map_err(serde::de::Error::custom)\n    }\n}\n\n",
    );

    out.push_str("impl serde::Serialize for Event {\n");
    out.push_str("    /// Serialises the event as Asterisk sent it: its fields plus `type`.\n");
    out.push_str("    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {\n");
    out.push_str("        let fields = match self {\n");
    for def in structs {
        let _ = writeln!(
            out,
            "            Event::{}(e) => serde_json::to_value(e),",
            def.name
        );
    }
    out.push_str("            Event::Unknown { raw, .. } => return serde::Serialize::serialize(raw, serializer),\n        };\n");
    out.push_str("        let mut fields = fields.map_err(serde::ser::Error::custom)?;\n");
    out.push_str("        if let Some(object) = fields.as_object_mut() {\n");
    out.push_str("            object.insert(\"type\".to_owned(), serde_json::Value::from(self.kind()));\n        }\n");
    out.push_str("        serde::Serialize::serialize(&fields, serializer)\n    }\n}\n");
    out
}
