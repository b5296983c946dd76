//! The generator of `ari-model`: reads Asterisk's ARI api-docs and writes Rust.
#![warn(missing_docs)]

pub mod client;
pub mod compat;
pub mod fixups;
pub mod format;
pub mod generate;
pub mod names;
pub mod spec;
pub mod types;

use std::path::Path;

/// Formatted generated files, by the directory they belong in.
#[derive(Debug)]
pub struct Formatted {
    /// Files of `ari-model/src/generated/`.
    pub model: Vec<(String, String)>,
    /// Files of `ari-client/src/generated/`.
    pub client: Vec<(String, String)>,
    /// Coverage of the spec.
    pub coverage: generate::Coverage,
    /// Operations reachable as client methods.
    pub client_operations: usize,
}

fn format_all(files: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    files
        .into_iter()
        .map(|(name, source)| {
            format::rustfmt(&name, &source)
                .map(|f| (name, f))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Loads the table from `api_docs/compat.json` and the spec of the release it names as
/// primary from `api_docs/<primary>/`, and generates formatted files.
///
/// # Errors
/// Any failure to load, map or format, as text.
pub fn generate_formatted(api_docs: &Path) -> Result<Formatted, String> {
    let compat = compat::Compat::load(&api_docs.join("compat.json")).map_err(|e| e.to_string())?;
    let spec = spec::Spec::load(&api_docs.join(&compat.primary)).map_err(|e| e.to_string())?;
    let output = generate::generate(&spec, &compat).map_err(|e| e.to_string())?;
    Ok(Formatted {
        model: format_all(output.files)?,
        client: format_all(output.client_files)?,
        coverage: output.coverage,
        client_operations: output.client_operations,
    })
}
