//! A typed async client for the Asterisk REST Interface (ARI).
#![warn(missing_docs)]

#[cfg(feature = "clap")]
pub mod cli;
pub mod credentials;

pub use ari_model as model;
pub use credentials::Credentials;
