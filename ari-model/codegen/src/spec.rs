//! The ARI api-docs (swagger 1.1, events in 1.2) as typed data.
//!
//! Loading goes raw JSON → [`crate::fixups`] → strict decode: the generator's input is
//! ours to check, so an unknown key is an error here (it may carry meaning the generator
//! would otherwise drop), unlike the runtime model, which ignores unknown fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fixups;

/// Why the api-docs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not the JSON we expect.
    #[error("{path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Where and why decoding failed.
        #[source]
        source: serde_json::Error,
    },
    /// The listing names a file whose name we cannot understand.
    #[error("resources.json lists {0:?}, expected /api-docs/<name>.{{format}}")]
    BadListing(String),
}

/// All resources of one Asterisk release, in the order resources.json lists them.
#[derive(Debug, Clone)]
pub struct Spec {
    /// ARI version, e.g. `10.0.0`.
    pub api_version: String,
    /// Resource files, e.g. `channels`, `events`.
    pub resources: Vec<Resource>,
}

/// The listing file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Listing {
    #[serde(rename = "_copyright")]
    _copyright: Option<String>,
    #[serde(rename = "_author")]
    _author: Option<String>,
    #[serde(rename = "_svn_revision")]
    _svn_revision: Option<String>,
    api_version: String,
    #[serde(rename = "swaggerVersion")]
    _swagger_version: String,
    #[serde(rename = "basePath")]
    _base_path: String,
    apis: Vec<ListingEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingEntry {
    path: String,
    #[serde(rename = "description")]
    _description: Option<String>,
}

/// One resource file (`channels.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    /// File stem, e.g. `channels` (filled in by the loader).
    #[serde(skip)]
    pub name: String,
    #[serde(rename = "_copyright")]
    _copyright: Option<String>,
    #[serde(rename = "_author")]
    _author: Option<String>,
    #[serde(rename = "_svn_revision")]
    _svn_revision: Option<String>,
    /// ARI version of the file.
    pub api_version: String,
    /// `1.1`, or `1.2` for events.json.
    pub swagger_version: String,
    #[serde(rename = "basePath")]
    _base_path: String,
    /// e.g. `/api-docs/channels.{format}`.
    pub resource_path: String,
    /// Asterisk releases that introduced the resource.
    #[serde(default)]
    pub since: Vec<String>,
    /// Modules that must be loaded for the resource to work.
    #[serde(default)]
    pub requires_modules: Vec<String>,
    /// URL paths and their operations.
    pub apis: Vec<Api>,
    /// Data types, by id.
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
}

/// One URL path.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Api {
    /// Path template under /ari, e.g. `/channels/{channelId}`.
    pub path: String,
    /// What the path is.
    pub description: Option<String>,
    /// Methods on the path.
    pub operations: Vec<Operation>,
}

/// One operation (method on a path).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub http_method: String,
    /// Asterisk releases that introduced the operation (one per branch).
    #[serde(default)]
    pub since: Vec<String>,
    /// One-line summary.
    pub summary: String,
    /// Longer notes.
    pub notes: Option<String>,
    /// Operation name, e.g. `originate`.
    pub nickname: String,
    /// `Channel`, `List[Channel]`, `binary`, `void`, ...
    pub response_class: String,
    /// Parameters in spec order.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Documented error responses.
    #[serde(default)]
    pub error_responses: Vec<ErrorResponse>,
    /// `websocket` for the events socket.
    pub upgrade: Option<String>,
    /// WebSocket subprotocol for the events socket.
    pub websocket_protocol: Option<String>,
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// In the URL path.
    Path,
    /// In the query string.
    Query,
    /// In the JSON body.
    Body,
}

/// One operation parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameter {
    /// Wire name, e.g. `channelId`.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Path, query or body.
    pub param_type: ParamType,
    /// Whether the operation needs it.
    #[serde(default)]
    pub required: bool,
    /// A comma-separated list on the wire.
    #[serde(default)]
    pub allow_multiple: bool,
    /// `string`, `int`, `long`, `boolean`, `containers`, `object`.
    pub data_type: String,
    /// Documented default (applied by Asterisk, not by us).
    pub default_value: Option<serde_json::Value>,
    /// Allowed values or range.
    pub allowable_values: Option<AllowableValues>,
}

/// Allowed values of a parameter or property.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowableValues {
    /// `LIST` or `RANGE`.
    pub value_type: String,
    /// For `LIST`.
    #[serde(default)]
    pub values: Vec<String>,
    /// For `RANGE`.
    pub min: Option<i64>,
    /// For `RANGE`.
    pub max: Option<i64>,
}

/// A documented error response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    /// HTTP status.
    pub code: u16,
    /// What the status means for this operation.
    pub reason: String,
}

/// A data type.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Model {
    /// Name, e.g. `Channel`.
    pub id: String,
    /// What it is.
    pub description: Option<String>,
    /// Fields by wire name.
    #[serde(default)]
    pub properties: BTreeMap<String, Property>,
    /// Models deriving from this one (events.json).
    #[serde(default)]
    pub sub_types: Vec<String>,
    /// The field that names the concrete type (events.json: `type`).
    pub discriminator: Option<String>,
}

/// A model field.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Property {
    /// `string`, `int`, `Date`, `List[Channel]`, a model name, ...
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether Asterisk always sends it.
    #[serde(default)]
    pub required: bool,
    /// What it means.
    pub description: Option<String>,
    /// Allowed values.
    pub allowable_values: Option<AllowableValues>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SpecError::Decode {
        path: path.to_owned(),
        source,
    })
}

impl Resource {
    /// What the resource is: the description of its first path.
    pub fn description(&self) -> String {
        self.apis
            .first()
            .and_then(|a| a.description.clone())
            .unwrap_or_default()
    }
}

impl Spec {
    /// Loads `resources.json` and every resource it lists from `dir`.
    ///
    /// # Errors
    /// When a file is missing or does not have the shape of ARI's api-docs.
    pub fn load(dir: &Path) -> Result<Spec, SpecError> {
        let listing_path = dir.join("resources.json");
        let listing: Listing =
            serde_json::from_value(read_json(&listing_path)?).map_err(|source| {
                SpecError::Decode {
                    path: listing_path.clone(),
                    source,
                }
            })?;
        let mut resources = Vec::new();
        for entry in &listing.apis {
            let name = entry
                .path
                .strip_prefix("/api-docs/")
                .and_then(|rest| rest.strip_suffix(".{format}"))
                .ok_or_else(|| SpecError::BadListing(entry.path.clone()))?;
            let path = dir.join(format!("{name}.json"));
            let mut raw = read_json(&path)?;
            fixups::apply(name, &mut raw);
            let mut resource: Resource =
                serde_json::from_value(raw).map_err(|source| SpecError::Decode {
                    path: path.clone(),
                    source,
                })?;
            resource.name = name.to_owned();
            resources.push(resource);
        }
        Ok(Spec {
            api_version: listing.api_version,
            resources,
        })
    }

    /// Every operation with the path it belongs to, in spec order.
    pub fn operations(&self) -> impl Iterator<Item = (&Resource, &Api, &Operation)> {
        self.resources.iter().flat_map(|r| {
            r.apis
                .iter()
                .flat_map(move |a| a.operations.iter().map(move |o| (r, a, o)))
        })
    }

    /// Every model of every resource, by id (a model defined twice keeps the first).
    pub fn models(&self) -> BTreeMap<&str, &Model> {
        let mut all = BTreeMap::new();
        for resource in &self.resources {
            for (id, model) in &resource.models {
                all.entry(id.as_str()).or_insert(model);
            }
        }
        all
    }
}
