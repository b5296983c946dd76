//! How swagger types become Rust types: base types, typed ids, string enums and the
//! parameter shapes the spec gets wrong.

use std::collections::BTreeMap;

use crate::names::pascal;
use crate::spec::{Parameter, Property};

/// A Rust type in generated code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// `String`
    String,
    /// `i64` (ARI's `int` and `long`: some `int` fields, such as SSRCs, exceed `i32`)
    I64,
    /// `f64`
    F64,
    /// `bool`
    Bool,
    /// `crate::Timestamp` (ARI's `Date`)
    Timestamp,
    /// `serde_json::Value` (ARI's `object`: any JSON)
    Json,
    /// `crate::operation::Variables` (key/value pairs sent in a body)
    Variables,
    /// A typed id from `crate::ids`.
    Id(&'static str),
    /// A string enum in `crate::models`.
    Enum(String),
    /// A model struct in `crate::models`.
    Model(String),
    /// `Vec<T>`
    List(Box<Ty>),
    /// `Vec<u8>` (a binary response)
    Bytes,
}

impl Ty {
    /// The type as written in generated code.
    pub fn rust(&self) -> String {
        match self {
            Ty::String => "String".to_owned(),
            Ty::I64 => "i64".to_owned(),
            Ty::F64 => "f64".to_owned(),
            Ty::Bool => "bool".to_owned(),
            Ty::Timestamp => "crate::Timestamp".to_owned(),
            Ty::Json => "serde_json::Value".to_owned(),
            Ty::Variables => "crate::operation::Variables".to_owned(),
            Ty::Id(name) => format!("crate::ids::{name}"),
            Ty::Enum(name) | Ty::Model(name) => format!("crate::models::{name}"),
            Ty::List(inner) => format!("Vec<{}>", inner.rust()),
            Ty::Bytes => "Vec<u8>".to_owned(),
        }
    }

    /// The model this type refers to, directly or as a list element.
    pub fn model(&self) -> Option<&str> {
        match self {
            Ty::Model(name) => Some(name),
            Ty::List(inner) => inner.model(),
            _ => None,
        }
    }
}

/// Why a swagger type has no Rust type.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {message}")]
pub struct TypeError {
    /// Where (model.property or resource.operation.parameter).
    pub place: String,
    /// What is wrong.
    pub message: String,
}

/// Typed ids of model properties: (model, property) → id type.
const MODEL_IDS: &[(&str, &str, &str)] = &[
    ("Channel", "id", "ChannelId"),
    ("Bridge", "id", "BridgeId"),
    ("Bridge", "channels", "ChannelId"),
    ("Playback", "id", "PlaybackId"),
    ("LiveRecording", "name", "RecordingName"),
    ("StoredRecording", "name", "RecordingName"),
    ("Sound", "id", "SoundId"),
    ("Application", "name", "ApplicationName"),
    ("Application", "channel_ids", "ChannelId"),
    ("Application", "bridge_ids", "BridgeId"),
    ("Application", "device_names", "DeviceName"),
    ("Endpoint", "channel_ids", "ChannelId"),
    ("DeviceState", "name", "DeviceName"),
    ("Mailbox", "name", "MailboxName"),
    ("Module", "name", "ModuleName"),
];

/// Typed ids of parameters by name, in every operation.
const PARAM_IDS: &[(&str, &str)] = &[
    ("channelId", "ChannelId"),
    ("otherChannelId", "ChannelId"),
    ("snoopId", "ChannelId"),
    ("bridgeId", "BridgeId"),
    ("playbackId", "PlaybackId"),
    ("recordingName", "RecordingName"),
    ("destinationRecordingName", "RecordingName"),
    ("soundId", "SoundId"),
    ("applicationName", "ApplicationName"),
    ("deviceName", "DeviceName"),
    ("mailboxName", "MailboxName"),
    ("moduleName", "ModuleName"),
];

/// Typed ids of parameters whose name alone does not say: (resource, operation, parameter).
const OPERATION_PARAM_IDS: &[(&str, &str, &str, &str)] = &[
    ("bridges", "addChannel", "channel", "ChannelId"),
    ("bridges", "removeChannel", "channel", "ChannelId"),
    ("bridges", "record", "name", "RecordingName"),
    ("channels", "record", "name", "RecordingName"),
    ("channels", "dial", "caller", "ChannelId"),
];

/// Names of string enums of model properties: (model, property) → enum.
const MODEL_ENUMS: &[(&str, &str, &str)] = &[
    ("Bridge", "bridge_type", "BridgeType"),
    ("Channel", "state", "ChannelState"),
    ("DeviceState", "state", "DeviceStateValue"),
    ("Endpoint", "state", "EndpointState"),
    ("ContactInfo", "contact_status", "ContactStatus"),
    ("Playback", "state", "PlaybackState"),
    ("LiveRecording", "state", "RecordingState"),
];

/// Names of string enums of parameters: (resource or "*", operation or "*", parameter) → enum.
const PARAM_ENUMS: &[(&str, &str, &str, &str)] = &[
    ("asterisk", "getInfo", "only", "InfoSection"),
    ("*", "*", "ifExists", "IfExists"),
    ("*", "*", "terminateOn", "TerminateOn"),
    ("channels", "hangup", "reason", "HangupReason"),
    ("channels", "mute", "direction", "MuteDirection"),
    ("channels", "unmute", "direction", "MuteDirection"),
    ("channels", "externalMedia", "direction", "MediaDirection"),
    (
        "channels",
        "externalMedia",
        "encapsulation",
        "MediaEncapsulation",
    ),
    ("channels", "externalMedia", "transport", "MediaTransport"),
    (
        "channels",
        "externalMedia",
        "connection_type",
        "MediaConnectionType",
    ),
    ("*", "*", "spy", "SnoopDirection"),
    ("*", "*", "whisper", "SnoopDirection"),
    ("deviceStates", "update", "deviceState", "DeviceStateValue"),
    ("playbacks", "control", "operation", "PlaybackOperation"),
];

/// A string enum and where it is used.
#[derive(Debug, Clone, Default)]
pub struct EnumDef {
    /// Values in first-seen order.
    pub values: Vec<String>,
    /// Places that use it, e.g. `Channel.state`.
    pub uses: Vec<String>,
}

/// Collects enums as types are resolved, merging the values of same-named ones.
#[derive(Debug, Default)]
pub struct Enums {
    /// Enums by name.
    pub defs: BTreeMap<String, EnumDef>,
}

impl Enums {
    fn add(&mut self, name: &str, values: &[String], place: String) {
        let def = self.defs.entry(name.to_owned()).or_default();
        for value in values {
            if !def.values.contains(value) {
                def.values.push(value.clone());
            }
        }
        if !def.uses.contains(&place) {
            def.uses.push(place);
        }
    }
}

fn base(type_name: &str, place: &str, models: &[&str]) -> Result<Ty, TypeError> {
    if let Some(inner) = type_name
        .strip_prefix("List[")
        .and_then(|t| t.strip_suffix(']'))
    {
        return Ok(Ty::List(Box::new(base(inner, place, models)?)));
    }
    Ok(match type_name {
        "string" => Ty::String,
        "int" | "long" => Ty::I64,
        "double" => Ty::F64,
        "boolean" => Ty::Bool,
        "Date" => Ty::Timestamp,
        "object" => Ty::Json,
        name if models.contains(&name) => Ty::Model(name.to_owned()),
        other => {
            return Err(TypeError {
                place: place.to_owned(),
                message: format!("unknown type {other:?}"),
            });
        }
    })
}

/// Puts `id` in place of the strings of `ty` (`string` or `List[string]`).
fn with_id(ty: Ty, id: &'static str, place: &str) -> Result<Ty, TypeError> {
    match ty {
        Ty::String => Ok(Ty::Id(id)),
        Ty::List(inner) if *inner == Ty::String => Ok(Ty::List(Box::new(Ty::Id(id)))),
        other => Err(TypeError {
            place: place.to_owned(),
            message: format!("id {id} on a non-string type {other:?}"),
        }),
    }
}

/// The Rust type of a model property.
///
/// # Errors
/// When the swagger type is unknown.
pub fn property_type(
    model: &str,
    name: &str,
    property: &Property,
    models: &[&str],
    enums: &mut Enums,
) -> Result<Ty, TypeError> {
    let place = format!("{model}.{name}");
    if let Some(values) = property
        .allowable_values
        .as_ref()
        .filter(|v| v.value_type == "LIST")
    {
        let enum_name = MODEL_ENUMS
            .iter()
            .find(|(m, p, _)| *m == model && *p == name)
            .map_or_else(
                || format!("{model}{}", pascal(name)),
                |(_, _, e)| (*e).to_owned(),
            );
        enums.add(&enum_name, &values.values, format!("`{place}`"));
        let ty = Ty::Enum(enum_name);
        return Ok(if property.type_name.starts_with("List[") {
            Ty::List(Box::new(ty))
        } else {
            ty
        });
    }
    let ty = base(&property.type_name, &place, models)?;
    match MODEL_IDS.iter().find(|(m, p, _)| *m == model && *p == name) {
        Some((_, _, id)) => with_id(ty, id, &place),
        None => Ok(ty),
    }
}

/// How a body parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// As a key of the body object: `{"variables": {...}}`.
    Field,
    /// As the whole body.
    Whole,
}

/// The Rust type and body shape of an operation parameter.
///
/// # Errors
/// When the swagger type is unknown.
pub fn parameter_type(
    resource: &str,
    operation: &str,
    parameter: &Parameter,
    models: &[&str],
    enums: &mut Enums,
) -> Result<(Ty, BodyShape), TypeError> {
    let name = parameter.name.as_str();
    let place = format!("{resource}.{operation}({name})");
    let element = if let Some(values) = parameter
        .allowable_values
        .as_ref()
        .filter(|v| v.value_type == "LIST")
    {
        let enum_name = PARAM_ENUMS
            .iter()
            .find(|(r, o, p, _)| {
                (*r == resource || *r == "*") && (*o == operation || *o == "*") && *p == name
            })
            .map_or_else(
                || format!("{}{}", pascal(operation), pascal(name)),
                |(_, _, _, e)| (*e).to_owned(),
            );
        enums.add(
            &enum_name,
            &values.values,
            format!("`{name}` of {resource}.{operation}"),
        );
        Ty::Enum(enum_name)
    } else if parameter.data_type == "containers" || parameter.data_type == "object" {
        let (ty, shape) =
            crate::fixups::body_parameter(resource, operation, name, &parameter.data_type)
                .ok_or_else(|| TypeError {
                    place: place.clone(),
                    message: format!("no shape for {} body", parameter.data_type),
                })?;
        return Ok((ty, shape));
    } else {
        let ty = base(&parameter.data_type, &place, models)?;
        let id = OPERATION_PARAM_IDS
            .iter()
            .find(|(r, o, p, _)| *r == resource && *o == operation && *p == name)
            .map(|(_, _, _, id)| *id)
            .or_else(|| {
                PARAM_IDS
                    .iter()
                    .find(|(p, _)| *p == name)
                    .map(|(_, id)| *id)
            });
        match id {
            Some(id) => with_id(ty, id, &place)?,
            None => ty,
        }
    };
    let ty = if parameter.allow_multiple {
        Ty::List(Box::new(element))
    } else {
        element
    };
    Ok((ty, BodyShape::Field))
}

/// The Rust type of an operation's `responseClass`; `None` for `void`.
///
/// # Errors
/// When the class is unknown.
pub fn response_type(place: &str, class: &str, models: &[&str]) -> Result<Option<Ty>, TypeError> {
    match class {
        "void" => Ok(None),
        "binary" => Ok(Some(Ty::Bytes)),
        other => base(other, place, models).map(Some),
    }
}
