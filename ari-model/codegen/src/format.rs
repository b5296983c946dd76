//! Formats generated source with rustfmt, so the checked-in code is what `cargo fmt` keeps.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Why formatting failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// rustfmt could not be run.
    #[error("cannot run rustfmt (install it with `rustup component add rustfmt`): {0}")]
    Spawn(#[source] std::io::Error),
    /// rustfmt rejected the source: a generator bug.
    #[error("rustfmt rejected generated {file}: {message}")]
    Rejected {
        /// Which file.
        file: String,
        /// rustfmt's complaint.
        message: String,
    },
}

/// Formats `source` (the content of `file`) with the 2024 edition style.
///
/// # Errors
/// When rustfmt is missing or the source does not parse.
pub fn rustfmt(file: &str, source: &str) -> Result<String, FormatError> {
    let mut child = Command::new(std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into()))
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FormatError::Spawn)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| FormatError::Spawn(std::io::Error::other("no stdin")))?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(FormatError::Spawn)?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(FormatError::Rejected {
            file: file.to_owned(),
            message: String::from_utf8_lossy(&output.stderr)
                .chars()
                .take(4000)
                .collect(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
