//! The generator of `ari-model`: reads Asterisk's ARI api-docs and writes Rust.
#![warn(missing_docs)]

pub mod fixups;
pub mod spec;
