//! Shared set-up of the examples: where ARI is, from flags or the environment.
//!
//! Every example takes `--ari-url`, `--ari-username`, `--ari-password` (or `ARI_URL`,
//! `ARI_USERNAME`, `ARI_PASSWORD`), defaulting to the lab of `asterisk_conf/`.

use std::process::ExitCode;

use ari_client::cli::AriArgs;
use ari_client::{Client, Error};

/// A client from the ARI flags.
///
/// # Errors
/// When the URL or credentials cannot work.
pub fn client(ari: &AriArgs) -> Result<Client, Error> {
    Client::builder(&ari.url)
        .credentials(ari.credentials())
        .build()
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The exit code for an example's outcome, printing the error (prefixed with `name`).
pub fn finish(name: &str, result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}
