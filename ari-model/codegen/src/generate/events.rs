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
    /// Zero or one id (an optional field): a statement that pushes it onto `ids`.
    Optional(String),
    /// Any number of ids (a list): a statement that extends `ids` with them.
    Many(String),
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
    Some(match (field.required, many) {
        (true, false) => IdSource::One(single.replace("{x}", &target)),
        (true, true) => IdSource::Many(format!("ids.extend({});", single.replace("{x}", &target))),
        (false, false) => IdSource::Optional(format!(
            "if let Some(x) = &{target} {{ ids.push({}); }}",
            single.replace("{x}", "x")
        )),
        (false, true) => IdSource::Many(format!(
            "if let Some(x) = &{target} {{ ids.extend({}); }}",
            single.replace("{x}", "x")
        )),
    })
}

/// One of the id accessors of `Event`, and where its ids come from.
#[derive(Clone, Copy)]
struct IdAccessor {
    /// The method, e.g. `channel_ids`.
    name: &'static str,
    /// The model whose ids it returns, e.g. `Channel`.
    model: &'static str,
    /// The typed id of that model, e.g. `ChannelId`.
    id_type: &'static str,
    /// The model's id field (`id`, or `name` for recordings).
    id_field: &'static str,
    /// The `event_support::Shape` that finds such objects in an unknown event.
    shape: &'static str,
    /// The first line of its doc.
    doc: &'static str,
}

/// Writes one id accessor; returns the most ids it can return for an event without list
/// fields (lists may go past `EventIds`'s inline space, which then spills to the heap).
fn write_ids_accessor(out: &mut String, structs: &[StructDef], accessor: &IdAccessor) -> usize {
    let IdAccessor {
        name,
        model,
        id_type,
        id_field,
        shape,
        doc,
    } = *accessor;
    let _ = writeln!(
        out,
        "    /// {doc}\n    ///\n    /// For an [`Event::Unknown`], the ids of its top-level objects shaped like a {model}."
    );
    let _ = writeln!(
        out,
        "    pub fn {name}(&self) -> EventIds<'_> {{\n        match self {{"
    );
    let _ = writeln!(
        out,
        "            Event::Unknown {{ raw, .. }} => raw_ids(raw, Shape::{shape}),"
    );
    let mut any_without = false;
    let mut most = 0;
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
        let mut ones = Vec::new();
        let mut statements = Vec::new();
        for source in &sources {
            match source {
                IdSource::One(expression) => ones.push(expression.as_str()),
                IdSource::Optional(statement) | IdSource::Many(statement) => {
                    statements.push(statement.as_str());
                }
            }
        }
        let bounded = sources
            .iter()
            .filter(|s| !matches!(s, IdSource::Many(_)))
            .count();
        most = most.max(bounded);
        let initial = if ones.is_empty() {
            "EventIds::new()".to_owned()
        } else {
            format!("EventIds::from([{}])", ones.join(", "))
        };
        if statements.is_empty() {
            let _ = writeln!(out, "            Event::{}(e) => {initial},", def.name);
            continue;
        }
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
        out.push_str("            _ => EventIds::new(),\n");
    }
    out.push_str("        }\n    }\n\n");
    most
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
    out.push_str("use crate::{EventIds, EventType};\n");
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

    let mut max_ids = 0;
    for accessor in [
        IdAccessor {
            name: "channel_ids",
            model: "Channel",
            id_type: "ChannelId",
            id_field: "id",
            shape: "Channel",
            doc: "Ids of the channels the event concerns (e.g. a `Dial`'s caller, peer and forwarded channel).",
        },
        IdAccessor {
            name: "bridge_ids",
            model: "Bridge",
            id_type: "BridgeId",
            id_field: "id",
            shape: "Bridge",
            doc: "Ids of the bridges the event concerns.",
        },
        IdAccessor {
            name: "playback_ids",
            model: "Playback",
            id_type: "PlaybackId",
            id_field: "id",
            shape: "Playback",
            doc: "Ids of the playbacks the event concerns.",
        },
        IdAccessor {
            name: "recording_names",
            model: "LiveRecording",
            id_type: "RecordingName",
            id_field: "name",
            shape: "Recording",
            doc: "Names of the recordings the event concerns.",
        },
    ] {
        max_ids = max_ids.max(write_ids_accessor(&mut out, structs, &accessor));
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
    out.push_str("        serde::Serialize::serialize(&fields, serializer)\n    }\n}\n\n");
    out.push_str(
        "/// The most ids one accessor (`channel_ids()`, ...) of a known event returns when\n",
    );
    out.push_str("/// none of its fields is a list: what `EventIds` holds without allocating.\n");
    let _ = writeln!(out, "pub(crate) const MAX_EVENT_IDS: usize = {max_ids};");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(wire: &str, ty: Ty, required: bool) -> Field {
        Field {
            wire: wire.to_owned(),
            ident: wire.to_owned(),
            ty,
            required,
            doc: String::new(),
        }
    }

    fn channel() -> Ty {
        Ty::Model("Channel".to_owned())
    }

    const CHANNELS: IdAccessor = IdAccessor {
        name: "channel_ids",
        model: "Channel",
        id_type: "ChannelId",
        id_field: "id",
        shape: "Channel",
        doc: "Ids of the channels.",
    };

    #[test]
    fn the_inline_bound_counts_single_ids_and_lists_extend() {
        let structs = [
            StructDef {
                name: "Three".to_owned(),
                doc: String::new(),
                fields: vec![
                    field("a", channel(), true),
                    field("b", channel(), false),
                    field("c", Ty::Id("ChannelId"), false),
                    field("bridge", Ty::Model("Bridge".to_owned()), true),
                ],
            },
            StructDef {
                name: "WithList".to_owned(),
                doc: String::new(),
                fields: vec![
                    field("first", channel(), true),
                    field("all", Ty::List(Box::new(channel())), true),
                ],
            },
        ];
        let mut out = String::new();
        assert_eq!(write_ids_accessor(&mut out, &structs, &CHANNELS), 3);
        assert!(
            out.contains("let mut ids = EventIds::from([e.a.id.as_str()]);"),
            "{out}"
        );
        assert!(
            out.contains("if let Some(x) = &e.b { ids.push(x.id.as_str()); }"),
            "{out}"
        );
        assert!(
            out.contains("if let Some(x) = &e.c { ids.push(x.as_str()); }"),
            "{out}"
        );
        assert!(
            out.contains("ids.extend(e.all.iter().map(|item| item.id.as_str()));"),
            "{out}"
        );
        assert!(!out.contains("bridge"), "{out}");
        // Every event has a channel: no fallback arm.
        assert!(!out.contains("_ => EventIds::new()"), "{out}");
    }
}
