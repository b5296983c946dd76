//! Data types of the Asterisk REST Interface (ARI): models, events and operation
//! parameters, generated from Asterisk's own api-docs. No I/O: `ari-client` does that.
#![warn(missing_docs)]

pub mod version;

pub use version::{AsteriskVersion, Feature};
