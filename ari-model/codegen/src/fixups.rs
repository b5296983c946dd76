//! Fixes for mistakes in Asterisk's api-docs, applied to the raw JSON before decoding.
//!
//! Each fix is a named function that says what the spec gets wrong and what Asterisk
//! really does; the generator never relies on a hand edit of the input.

use serde_json::Value;

use crate::types::{BodyShape, Ty};

/// Applies every fix to one resource file (`name` is its stem, e.g. `channels`).
pub fn apply(name: &str, resource: &mut Value) {
    for_each_operation(resource, |operation| {
        error_codes_written_as_strings(operation);
        mute_direction_default_not_applied(name, operation);
        for parameter in parameters(operation) {
            description_key_misspelt(parameter);
            drop_editor_notes(parameter);
        }
    });
}

fn for_each_operation(resource: &mut Value, mut fix: impl FnMut(&mut Value)) {
    let Some(apis) = resource.get_mut("apis").and_then(Value::as_array_mut) else {
        return;
    };
    for api in apis {
        let Some(operations) = api.get_mut("operations").and_then(Value::as_array_mut) else {
            continue;
        };
        operations.iter_mut().for_each(&mut fix);
    }
}

fn parameters(operation: &mut Value) -> impl Iterator<Item = &mut Value> {
    operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// channels.json `move` lists `"code": "404"` (a string); the server sends a numeric
/// HTTP status like every other operation.
pub fn error_codes_written_as_strings(operation: &mut Value) {
    let Some(errors) = operation
        .get_mut("errorResponses")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for error in errors {
        if let Some(code) = error
            .get("code")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u16>().ok())
        {
            error["code"] = Value::from(code);
        }
    }
}

/// channels.json `mute`/`unmute` document `direction` as optional with a default of
/// `both`, but Asterisk answers 400 "Direction is required" when it is left out
/// (seen on 22.10.1): the generated parameter is required.
pub fn mute_direction_default_not_applied(resource: &str, operation: &mut Value) {
    let nickname = operation
        .get("nickname")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if resource != "channels" || !matches!(nickname, "mute" | "unmute") {
        return;
    }
    for parameter in parameters(operation) {
        if parameter.get("name").and_then(Value::as_str) == Some("direction") {
            parameter["required"] = Value::Bool(true);
        }
    }
}

/// endpoints.json `sendMessage*` spells the `variables` body parameter's description key
/// `descriptioni`.
pub fn description_key_misspelt(parameter: &mut Value) {
    let Some(object) = parameter.as_object_mut() else {
        return;
    };
    if let Some(text) = object.remove("descriptioni") {
        object.entry("description").or_insert(text);
    }
}

/// sounds.json `list` carries an editor's `__note` on a parameter: not part of the API.
pub fn drop_editor_notes(parameter: &mut Value) {
    if let Some(object) = parameter.as_object_mut() {
        object.remove("__note");
    }
}

/// The type of a body parameter. The spec calls two different shapes `containers` and
/// does not say how `object` travels; Asterisk's request parsers
/// (res/ari/resource_*.c) read:
/// - `variables`: `{"variables": {"NAME": "value", ...}}` (the spec says a list);
/// - `fields` (asterisk.updateObject): `{"fields": [{"attribute": .., "value": ..}]}`;
/// - `filter` (applications.filter): the whole body is the filter object,
///   `{"allowed": [{"type": ..}], "disallowed": [..]}`.
pub fn body_parameter(
    _resource: &str,
    _operation: &str,
    name: &str,
    data_type: &str,
) -> Option<(Ty, BodyShape)> {
    match (name, data_type) {
        ("variables", "containers") => Some((Ty::Variables, BodyShape::Field)),
        ("fields", "containers") => Some((
            Ty::List(Box::new(Ty::Model("ConfigTuple".to_owned()))),
            BodyShape::Field,
        )),
        ("filter", "object") => Some((Ty::Json, BodyShape::Whole)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_error_codes_become_numbers() {
        let mut op = json!({"errorResponses": [{"code": "404", "reason": "x"}, {"code": 409, "reason": "y"}]});
        error_codes_written_as_strings(&mut op);
        assert_eq!(op["errorResponses"][0]["code"], 404);
        assert_eq!(op["errorResponses"][1]["code"], 409);
    }

    #[test]
    fn mute_direction_becomes_required() {
        let mut op =
            json!({"nickname": "mute", "parameters": [{"name": "direction", "required": false}]});
        mute_direction_default_not_applied("channels", &mut op);
        assert_eq!(op["parameters"][0]["required"], true);
        let mut other =
            json!({"nickname": "mute", "parameters": [{"name": "direction", "required": false}]});
        mute_direction_default_not_applied("bridges", &mut other);
        assert_eq!(other["parameters"][0]["required"], false);
    }

    #[test]
    fn misspelt_description_is_kept_under_its_name() {
        let mut p = json!({"name": "variables", "descriptioni": "text"});
        description_key_misspelt(&mut p);
        assert_eq!(p, json!({"name": "variables", "description": "text"}));
    }
}
