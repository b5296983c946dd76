//! The generator of `ari-model`: reads Asterisk's ARI api-docs and writes Rust.
#![warn(missing_docs)]

pub mod compat;
pub mod fixups;
pub mod format;
pub mod generate;
pub mod names;
pub mod spec;
pub mod types;

use std::path::Path;

/// Loads the spec and the table from `api_docs` and generates formatted files.
///
/// # Errors
/// Any failure to load, map or format, as text.
pub fn generate_formatted(
    api_docs: &Path,
) -> Result<(Vec<(String, String)>, generate::Coverage), String> {
    let spec = spec::Spec::load(api_docs).map_err(|e| e.to_string())?;
    let compat = compat::Compat::load(&api_docs.join("compat.json")).map_err(|e| e.to_string())?;
    let output = generate::generate(&spec, &compat).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    for (name, source) in output.files {
        let formatted = format::rustfmt(&name, &source).map_err(|e| e.to_string())?;
        files.push((name, formatted));
    }
    Ok((files, output.coverage))
}
