//! The generated model decodes what every supported Asterisk release sends.
//!
//! For each spec vendored in `ari-model/api-docs/<release>/` (18.26.4 … 23.4.1; another
//! directory of releases with `ARI_API_DOCS_DIR`), and every model and event in it, build
//! two JSON objects from *that release's* spec: a minimal one (only the fields it
//! requires, enum fields holding a value no release knows) and a full one (every field,
//! plus a field no release has), and decode both with `ari-model`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ari_model::{Event, EventIds};
use ari_model_codegen::compat::Compat;
use ari_model_codegen::spec::{Model, Property, Spec};
use serde_json::{Map, Value, json};

/// `ari-model/api-docs/`, from the manifest directory cargo gives at run time (a compiled-in
/// path would point a target directory shared between clones at another clone).
fn vendored_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../api-docs")
}

fn specs_dir() -> PathBuf {
    std::env::var_os("ARI_API_DOCS_DIR").map_or_else(vendored_dir, PathBuf::from)
}

#[derive(Clone, Copy, PartialEq)]
enum Fill {
    Minimal,
    Full,
}

fn value_of(
    type_name: &str,
    property: Option<&Property>,
    models: &BTreeMap<&str, &Model>,
    fill: Fill,
    depth: usize,
) -> Value {
    if let Some(inner) = type_name
        .strip_prefix("List[")
        .and_then(|t| t.strip_suffix(']'))
    {
        return json!([value_of(inner, property, models, fill, depth)]);
    }
    if let Some(values) = property.and_then(|p| p.allowable_values.as_ref()) {
        return match fill {
            Fill::Minimal => json!("AValueNoReleaseHas"),
            Fill::Full => json!(values.values.first().cloned().unwrap_or_default()),
        };
    }
    match type_name {
        "string" => json!("1700000000.1"),
        "int" | "long" => json!(4_000_000_000_u64),
        "double" => json!(1.5),
        "boolean" => json!(true),
        "Date" => json!("2026-11-22T04:16:09.015+0000"),
        "object" => json!({"key": "value"}),
        name => match models.get(name) {
            Some(model) if depth < 6 => object_of(name, model, models, fill, depth + 1),
            _ => panic!("type {name} is not in the spec"),
        },
    }
}

fn object_of(
    name: &str,
    model: &Model,
    models: &BTreeMap<&str, &Model>,
    fill: Fill,
    depth: usize,
) -> Value {
    let mut object = Map::new();
    let mut owners = vec![model];
    // Events inherit the fields of their bases.
    if let (Some(message), Some(event)) = (models.get("Message"), models.get("Event")) {
        if event.sub_types.iter().any(|s| s == name) {
            owners.push(event);
            owners.push(message);
        } else if message.sub_types.iter().any(|s| s == name) {
            owners.push(message);
        }
    }
    for owner in owners {
        for (field, property) in &owner.properties {
            if fill == Fill::Full || property.required {
                object.insert(
                    field.clone(),
                    value_of(&property.type_name, Some(property), models, fill, depth),
                );
            }
        }
    }
    if fill == Fill::Full {
        object.insert(
            "a_field_no_release_has".to_owned(),
            json!({"nested": [1, 2, 3]}),
        );
    }
    Value::Object(object)
}

/// Whether every id list of `event` is held inline; records the longest in `most`.
fn ids_inline(event: &Event, most: &mut usize) -> bool {
    let lists = [
        event.channel_ids(),
        event.bridge_ids(),
        event.playback_ids(),
        event.recording_names(),
    ];
    *most = lists.iter().map(|ids| ids.len()).fold(*most, usize::max);
    lists.iter().all(EventIds::is_inline)
}

#[test]
fn every_release_decodes() {
    let dir = specs_dir();
    let mut releases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read the specs at {} ({e}); set ARI_API_DOCS_DIR",
                dir.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("resources.json").is_file())
        .collect();
    releases.sort();
    assert_eq!(
        releases.len(),
        5,
        "expected the five releases in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    let mut decoded = 0;
    let mut most_ids = 0;
    for release in &releases {
        let spec = Spec::load(release).unwrap();
        let models = spec.models();
        let events: Vec<&str> = {
            let message = models["Message"];
            let event = models["Event"];
            message
                .sub_types
                .iter()
                .chain(&event.sub_types)
                .map(String::as_str)
                .filter(|s| *s != "Event")
                .collect()
        };
        for (name, model) in &models {
            if *name == "Message" || *name == "Event" {
                continue;
            }
            for fill in [Fill::Minimal, Fill::Full] {
                let mut object = object_of(name, model, &models, fill, 0);
                let label = format!(
                    "{} {name} ({})",
                    release.display(),
                    if fill == Fill::Full {
                        "full"
                    } else {
                        "minimal"
                    }
                );
                let outcome = if events.contains(name) {
                    object["type"] = json!(name);
                    let text = object.to_string();
                    match Event::from_json_str(&text) {
                        Ok(event) if event.is_unknown() => Err("decoded as Unknown".to_owned()),
                        Ok(event) if event.kind() != *name => {
                            Err(format!("decoded as {}", event.kind()))
                        }
                        Ok(event) if !ids_inline(&event, &mut most_ids) => {
                            Err("ids spilled to the heap".to_owned())
                        }
                        Ok(_) => serde_json::from_str::<Event>(&text)
                            .map(drop)
                            .map_err(|e| format!("via Deserialize: {e}")),
                        Err(error) => Err(error.to_string()),
                    }
                } else {
                    match ari_model::models::validate_model_json(name, &object.to_string()) {
                        Some(result) => result.map_err(|e| e.to_string()),
                        None => Err("no generated type".to_owned()),
                    }
                };
                match outcome {
                    Ok(()) => decoded += 1,
                    Err(error) => failures.push(format!("{label}: {error}")),
                }
            }
        }
    }
    println!(
        "cross-version decode: {decoded} objects decoded, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 5 releases, 2 fills each, minus the two abstract bases per release.
    assert!(decoded > 700, "only {decoded} objects decoded");
    // Full objects fill every optional field: the inline space is exactly what the
    // event with the most ids needs (BridgeAttendedTransfer's eight channels).
    assert_eq!(most_ids, EventIds::INLINE_CAPACITY);
}

#[test]
fn compat_json_is_what_the_vendored_releases_derive() {
    let dir = vendored_dir();
    let committed = Compat::load(&dir.join("compat.json")).unwrap();
    let derived = Compat::derive(&dir, &committed.primary).unwrap();
    assert_eq!(
        derived.versions,
        ["18.26.4", "20.20.1", "21.12.3", "22.10.1", "23.4.1"]
    );
    assert!(
        std::fs::read_to_string(dir.join("compat.json")).unwrap() == derived.to_json(),
        "compat.json is out of date: cargo run -p ari-model-codegen -- --derive-compat"
    );
}
