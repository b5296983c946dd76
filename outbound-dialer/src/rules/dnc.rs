//! Do-not-call: a DNC file (one number per line; `#` starts a comment; blank lines are
//! skipped; numbers normalised as the number list's, so `+1 (212) 555-0100` and
//! `12125550100` are one number). The dialer loads it into the store's `dnc` table at
//! start and again when the file changes; the table is what is checked at import (counted
//! and logged) and right before each originate, so a number added to the file or the
//! table mid-campaign is not dialled either. DNC numbers get the outcome `dnc`.

use std::collections::HashSet;
use std::io::{BufRead as _, Read as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::numbers::normalize;

/// Longest DNC line read (longer ones are reported and skipped).
const MAX_LINE: usize = 4096;

/// Why the DNC file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DncError {
    /// It cannot be read.
    #[error("the do-not-call file {path}: {source} (check --dnc-file / DIALER_DNC_FILE)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A line of the DNC file that holds no number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDncLine {
    /// 1-based line.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// The do-not-call numbers, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DncList {
    numbers: HashSet<String>,
}

impl DncList {
    /// Reads a DNC list; bad lines are returned, not fatal (a DNC list errs on the side
    /// of the callee: every readable number in it counts).
    pub fn read(input: impl std::io::Read) -> Result<(DncList, Vec<BadDncLine>), std::io::Error> {
        let mut reader = std::io::BufReader::new(input);
        let mut numbers = HashSet::new();
        let mut bad = Vec::new();
        let mut buffer = Vec::new();
        let mut line_no = 0_u64;
        loop {
            buffer.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buffer)?;
            if read == 0 {
                break;
            }
            line_no += 1;
            if buffer.len() > MAX_LINE && !buffer.ends_with(b"\n") {
                // Read through the rest of an over-long line.
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest)?;
                bad.push(BadDncLine {
                    line: line_no,
                    reason: format!("longer than {MAX_LINE} bytes"),
                });
                continue;
            }
            let text = String::from_utf8_lossy(&buffer);
            let text = text.trim_start_matches('\u{feff}');
            let text = text.split('#').next().unwrap_or("").trim();
            // A CSV-like line keeps its first column (DNC exports often carry a date).
            let text = text.split([',', ';', '\t']).next().unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            match normalize(text) {
                Ok(number) => {
                    numbers.insert(number);
                }
                Err(error) => bad.push(BadDncLine {
                    line: line_no,
                    reason: error.to_string(),
                }),
            }
        }
        Ok((DncList { numbers }, bad))
    }

    /// A list of the given (normalised) numbers.
    pub fn of<I: IntoIterator<Item = S>, S: Into<String>>(numbers: I) -> Self {
        DncList {
            numbers: numbers.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether a normalised number is on the list.
    pub fn contains(&self, number: &str) -> bool {
        self.numbers.contains(number)
    }

    /// Its numbers, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.numbers.iter().map(String::as_str)
    }

    /// How many numbers it holds.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// A DNC file, re-read when it changes.
#[derive(Debug)]
pub struct DncFile {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    list: DncList,
}

impl DncFile {
    /// Reads `path`; its bad lines are logged.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn open(path: &Path) -> Result<DncFile, DncError> {
        let mut file = DncFile {
            path: path.to_owned(),
            modified: None,
            len: 0,
            list: DncList::default(),
        };
        file.load()?;
        Ok(file)
    }

    fn load(&mut self) -> Result<(), DncError> {
        let error = |source| DncError::Read {
            path: self.path.clone(),
            source,
        };
        let handle = std::fs::File::open(&self.path).map_err(error)?;
        let meta = handle.metadata().map_err(error)?;
        let (list, bad) = DncList::read(handle).map_err(error)?;
        for line in &bad {
            tracing::warn!(file = %self.path.display(), line = line.line, reason = %line.reason, "do-not-call line skipped");
        }
        self.modified = meta.modified().ok();
        self.len = meta.len();
        self.list = list;
        Ok(())
    }

    /// Re-reads the file if it changed since the last read; returns whether it did. A
    /// file that became unreadable keeps the last list (and says so): numbers never leave
    /// the list by accident.
    pub fn refresh(&mut self) -> bool {
        let changed = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.modified().ok() != self.modified || meta.len() != self.len,
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "cannot check the do-not-call file; keeping its last contents");
                false
            }
        };
        if !changed {
            return false;
        }
        match self.load() {
            Ok(()) => {
                tracing::info!(file = %self.path.display(), numbers = self.list.len(), "do-not-call file re-read");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "keeping the do-not-call list read before");
                false
            }
        }
    }

    /// The list as last read.
    pub fn list(&self) -> &DncList {
        &self.list
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_normalised_like_the_number_list() {
        let text = "# do not call\n+1 (212) 555-0100\n\n  44 20 7946 0000  # asked 2026-01-02\r\n2125550199,2026-02-01\nnot a number\n12\n";
        let (list, bad) = DncList::read(text.as_bytes()).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.contains("12125550100"));
        assert!(list.contains("442079460000"));
        assert!(list.contains("2125550199"));
        assert!(!list.contains("12125550199"));
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![6, 7],
            "{bad:?}"
        );
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_next_read() {
        let mut text = "1".repeat(MAX_LINE + 10);
        text.push_str("\n3000\n");
        let (list, bad) = DncList::read(text.as_bytes()).unwrap();
        assert!(list.contains("3000"));
        assert_eq!(list.len(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 1);
    }

    #[test]
    fn binary_junk_does_not_fail_the_list() {
        let junk: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let (list, _bad) = DncList::read(&junk[..]).unwrap();
        assert!(list.len() <= 100);
    }

    #[test]
    fn the_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnc.txt");
        std::fs::write(&path, "1000\n").unwrap();
        let mut file = DncFile::open(&path).unwrap();
        assert!(file.list().contains("1000"));
        assert!(!file.list().contains("2000"));
        assert!(!file.refresh(), "unchanged");
        std::fs::write(&path, "1000\n2000\n").unwrap();
        assert!(file.refresh());
        assert!(file.list().contains("2000"));
        // Gone: the last list stays.
        std::fs::remove_file(&path).unwrap();
        assert!(!file.refresh());
        assert!(file.list().contains("2000"));
        let missing = DncFile::open(&dir.path().join("nope.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("--dnc-file") && missing.contains("nope.txt"),
            "{missing}"
        );
    }
}
