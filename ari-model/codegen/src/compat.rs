//! The compatibility table: which Asterisk releases have each model, property and
//! operation, and where each property is required.
//!
//! It is derived from the specs of the releases vendored in `ari-model/api-docs/<release>/`
//! (`--derive-compat`) and committed as `ari-model/api-docs/compat.json`, the generator's
//! second input: generating reads the one primary release's spec and this table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::{Spec, SpecError};

/// The table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compat {
    /// Release the code is generated from (its api-docs are `ari-model/api-docs/<primary>/`).
    pub primary: String,
    /// Every release checked, oldest first.
    pub versions: Vec<String>,
    /// ARI version of each release.
    pub ari_versions: BTreeMap<String, String>,
    /// Models by id.
    pub models: BTreeMap<String, ModelCompat>,
    /// Operations by `resource.nickname`.
    pub operations: BTreeMap<String, Presence>,
}

/// Where a model exists, and its properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCompat {
    /// Releases that have the model.
    pub versions: Vec<String>,
    /// Properties by wire name.
    pub properties: BTreeMap<String, PropertyCompat>,
}

/// Where a property exists and where it is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyCompat {
    /// Releases whose model has the property.
    pub versions: Vec<String>,
    /// Releases whose spec marks it required.
    pub required_in: Vec<String>,
}

/// Releases that have an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// Releases that have it.
    pub versions: Vec<String>,
}

/// Why the table could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// A release's spec did not load.
    #[error("release {release}: {source}")]
    Spec {
        /// The release directory name.
        release: String,
        /// Why.
        #[source]
        source: SpecError,
    },
    /// The directory has no release subdirectories, or not the primary one.
    #[error("{0}")]
    Layout(String),
    /// The table file is unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

fn sorted(set: BTreeSet<String>) -> Vec<String> {
    let mut versions: Vec<String> = set.into_iter().collect();
    versions.sort_by_key(|v| version_key(v));
    versions
}

impl Compat {
    /// Derives the table from `dir/<release>/` spec directories.
    ///
    /// # Errors
    /// When a release does not load, or `primary` is not among them.
    pub fn derive(dir: &Path, primary: &str) -> Result<Compat, CompatError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CompatError::Layout(format!("cannot list {}: {e}", dir.display())))?;
        let mut releases: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("resources.json").is_file())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        releases.sort_by_key(|v| version_key(v));
        if !releases.iter().any(|r| r == primary) {
            return Err(CompatError::Layout(format!(
                "{} has no release {primary} (found {releases:?})",
                dir.display()
            )));
        }
        let mut specs = Vec::new();
        for release in &releases {
            let spec = Spec::load(&dir.join(release)).map_err(|source| CompatError::Spec {
                release: release.clone(),
                source,
            })?;
            specs.push((release.clone(), spec));
        }
        Ok(Compat::from_specs(primary, &specs))
    }

    /// Derives the table from loaded specs.
    pub fn from_specs(primary: &str, specs: &[(String, Spec)]) -> Compat {
        /// Releases having a property, and releases requiring it.
        type PropertySeen = (BTreeSet<String>, BTreeSet<String>);
        let mut models: BTreeMap<String, (BTreeSet<String>, BTreeMap<String, PropertySeen>)> =
            BTreeMap::new();
        let mut operations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut ari_versions = BTreeMap::new();
        for (release, spec) in specs {
            ari_versions.insert(release.clone(), spec.api_version.clone());
            for (id, model) in spec.models() {
                let entry = models.entry(id.to_owned()).or_default();
                entry.0.insert(release.clone());
                for (name, property) in &model.properties {
                    let property_entry = entry.1.entry(name.clone()).or_default();
                    property_entry.0.insert(release.clone());
                    if property.required {
                        property_entry.1.insert(release.clone());
                    }
                }
            }
            for (resource, _, operation) in spec.operations() {
                operations
                    .entry(format!("{}.{}", resource.name, operation.nickname))
                    .or_default()
                    .insert(release.clone());
            }
        }
        Compat {
            primary: primary.to_owned(),
            versions: sorted(specs.iter().map(|(r, _)| r.clone()).collect()),
            ari_versions,
            models: models
                .into_iter()
                .map(|(id, (versions, properties))| {
                    let properties = properties
                        .into_iter()
                        .map(|(name, (versions, required))| {
                            (
                                name,
                                PropertyCompat {
                                    versions: sorted(versions),
                                    required_in: sorted(required),
                                },
                            )
                        })
                        .collect();
                    (
                        id,
                        ModelCompat {
                            versions: sorted(versions),
                            properties,
                        },
                    )
                })
                .collect(),
            operations: operations
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        Presence {
                            versions: sorted(v),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Reads the committed table.
    ///
    /// # Errors
    /// When the file is missing or malformed.
    pub fn load(path: &Path) -> Result<Compat, CompatError> {
        let file_error = |message: String| CompatError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))
    }

    /// The table as committed: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Whether `property` of `model` must be present: every release that has the model
    /// has the property and requires it. `None` when the table does not know the model.
    pub fn required(&self, model: &str, property: &str) -> Option<bool> {
        let model = self.models.get(model)?;
        let property = model.properties.get(property)?;
        Some(
            model
                .versions
                .iter()
                .all(|v| property.required_in.contains(v)),
        )
    }

    /// A doc sentence when `versions` is not every release checked.
    pub fn availability(&self, versions: &[String]) -> Option<String> {
        if versions.len() == self.versions.len() {
            return None;
        }
        let checked = self.versions.join(", ");
        Some(format!(
            "Only in Asterisk {} (of the releases checked: {checked}).",
            versions.join(", ")
        ))
    }

    /// Releases that have a model.
    pub fn model_versions(&self, model: &str) -> &[String] {
        self.models
            .get(model)
            .map_or(&[], |m| m.versions.as_slice())
    }

    /// Releases that have a model's property.
    pub fn property_versions(&self, model: &str, property: &str) -> &[String] {
        self.models
            .get(model)
            .and_then(|m| m.properties.get(property))
            .map_or(&[], |p| p.versions.as_slice())
    }

    /// Releases that have an operation.
    pub fn operation_versions(&self, resource: &str, nickname: &str) -> &[String] {
        self.operations
            .get(&format!("{resource}.{nickname}"))
            .map_or(&[], |p| p.versions.as_slice())
    }
}
