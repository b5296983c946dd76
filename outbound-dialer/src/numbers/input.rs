//! Where the numbers come from: `OUTBOUND_NUMBER` or `OUTBOUND_NUMBER_FILE`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::reader::{HeaderError, NumberReader};
use super::{InvalidLine, InvalidNumber, Line, NumberEntry, normalize};

/// The variable that holds one number to dial.
pub const NUMBER_VAR: &str = "OUTBOUND_NUMBER";
/// The variable that names a file of numbers.
pub const FILE_VAR: &str = "OUTBOUND_NUMBER_FILE";

/// Why the campaign has no numbers to dial; each message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NumbersError {
    /// Neither variable is set.
    #[error(
        "no numbers to dial: set {NUMBER_VAR} to one number or {FILE_VAR} to a file of numbers"
    )]
    NoSource,
    /// Both variables are set.
    #[error("both {NUMBER_VAR} and {FILE_VAR} are set: set only one of them")]
    BothSources,
    /// `OUTBOUND_NUMBER` is not a number.
    #[error("{NUMBER_VAR}={value:?} cannot be dialled: the number {reason}")]
    BadNumber {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: InvalidNumber,
    },
    /// The file cannot be opened.
    #[error("cannot open {FILE_VAR}={}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the file failed part-way.
    #[error("cannot read {FILE_VAR}={}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of numbers (empty, or a header without a number column).
    #[error("{FILE_VAR}={} {problem}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header or content.
        problem: HeaderError,
    },
    /// Every line of the file was invalid.
    #[error("no valid number in {} ({invalid} invalid lines)", .path.display())]
    NoValidNumber {
        /// The file.
        path: PathBuf,
        /// Its invalid lines.
        invalid: u64,
    },
}

/// Where the numbers come from, chosen from the two variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `OUTBOUND_NUMBER`: one number, already normalised.
    Number(String),
    /// `OUTBOUND_NUMBER_FILE`: a plain list or a CSV file.
    File(PathBuf),
}

impl Source {
    /// The source from the variables' values; an empty value counts as unset.
    ///
    /// # Errors
    /// Neither or both set, or a single number that [`normalize`] refuses.
    pub fn new(number: Option<&str>, file: Option<&Path>) -> Result<Source, NumbersError> {
        let number = number.filter(|value| !value.trim().is_empty());
        let file = file.filter(|path| !path.as_os_str().is_empty());
        match (number, file) {
            (None, None) => Err(NumbersError::NoSource),
            (Some(_), Some(_)) => Err(NumbersError::BothSources),
            (Some(value), None) => {
                normalize(value)
                    .map(Source::Number)
                    .map_err(|reason| NumbersError::BadNumber {
                        value: value.to_owned(),
                        reason,
                    })
            }
            (None, Some(path)) => Ok(Source::File(path.to_owned())),
        }
    }

    /// The source from `OUTBOUND_NUMBER` and `OUTBOUND_NUMBER_FILE` in the environment.
    ///
    /// # Errors
    /// As [`Source::new`]; a value that is not Unicode is refused as a number.
    pub fn from_env() -> Result<Source, NumbersError> {
        let number = std::env::var_os(NUMBER_VAR).map(|value| value.to_string_lossy().into_owned());
        let file = std::env::var_os(FILE_VAR).map(PathBuf::from);
        Source::new(number.as_deref(), file.as_deref())
    }

    /// A short text that changes when the input changes: the caller stores it with the
    /// imported numbers and skips the import on resume while it is the same. A file is
    /// read once through for it (about 0.1 s for a million numbers).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn fingerprint(&self) -> Result<String, NumbersError> {
        let path = match self {
            Source::Number(number) => return Ok(format!("number:{number}")),
            Source::File(path) => path,
        };
        let mut file = File::open(path).map_err(|source| NumbersError::Open {
            path: path.clone(),
            source,
        })?;
        // FNV-1a: stable across Rust releases (std's hasher is not), and fast enough.
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        let mut len = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NumbersError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            };
            for &byte in &chunk[..n] {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
            len += n as u64;
        }
        Ok(format!("file:v1:bytes={len}:fnv1a64={hash:016x}"))
    }

    /// Opens the input for reading; a file's format is detected here.
    ///
    /// # Errors
    /// A file that is missing, unreadable, empty, or has a header without a number
    /// column.
    pub fn open(&self) -> Result<NumberInput, NumbersError> {
        let path = match self {
            Source::Number(number) => {
                return Ok(NumberInput {
                    inner: Inner::One(Some(NumberEntry {
                        line: 0,
                        number: number.clone(),
                        data: Default::default(),
                    })),
                });
            }
            Source::File(path) => path,
        };
        let file = File::open(path).map_err(|source| NumbersError::Open {
            path: path.clone(),
            source,
        })?;
        let reader =
            NumberReader::new(BufReader::with_capacity(64 * 1024, file)).map_err(|problem| {
                match problem {
                    HeaderError::Read(source) => NumbersError::Read {
                        path: path.clone(),
                        source,
                    },
                    problem => NumbersError::Format {
                        path: path.clone(),
                        problem,
                    },
                }
            })?;
        Ok(NumberInput {
            inner: Inner::File {
                path: path.clone(),
                reader: Box::new(reader),
            },
        })
    }
}

/// Counts of a finished read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    /// Valid numbers read (duplicates included: the store drops those).
    pub entries: u64,
    /// Invalid lines reported and skipped.
    pub invalid: u64,
}

/// An opened input: yields its lines, then [`NumberInput::finish`] says whether it had a
/// number at all.
pub struct NumberInput {
    inner: Inner,
}

enum Inner {
    One(Option<NumberEntry>),
    File {
        path: PathBuf,
        reader: Box<NumberReader<BufReader<File>>>,
    },
}

impl NumberInput {
    /// The valid numbers, handing each invalid line to `on_invalid` (to report it).
    pub fn entries<F: FnMut(InvalidLine)>(
        &mut self,
        mut on_invalid: F,
    ) -> impl Iterator<Item = Result<NumberEntry, NumbersError>> {
        self.filter_map(move |line| match line {
            Ok(Line::Entry(entry)) => Some(Ok(entry)),
            Ok(Line::Invalid(bad)) => {
                on_invalid(bad);
                None
            }
            Err(error) => Some(Err(error)),
        })
    }

    /// The counts, once everything has been read.
    ///
    /// # Errors
    /// [`NumbersError::NoValidNumber`] when no line held a valid number.
    pub fn finish(self) -> Result<ReadSummary, NumbersError> {
        match self.inner {
            Inner::One(_) => Ok(ReadSummary {
                entries: 1,
                invalid: 0,
            }),
            Inner::File { path, reader } => {
                let summary = ReadSummary {
                    entries: reader.entries(),
                    invalid: reader.invalid(),
                };
                if summary.entries == 0 {
                    return Err(NumbersError::NoValidNumber {
                        path,
                        invalid: summary.invalid,
                    });
                }
                Ok(summary)
            }
        }
    }
}

impl Iterator for NumberInput {
    type Item = Result<Line, NumbersError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::One(entry) => entry.take().map(|entry| Ok(Line::Entry(entry))),
            Inner::File { path, reader } => reader.next().map(|line| {
                line.map_err(|source| NumbersError::Read {
                    path: path.clone(),
                    source,
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_variable_must_be_set() {
        assert!(matches!(
            Source::new(None, None),
            Err(NumbersError::NoSource)
        ));
        assert!(matches!(
            Source::new(Some(" "), Some(Path::new(""))),
            Err(NumbersError::NoSource)
        ));
        assert!(matches!(
            Source::new(Some("5551001"), Some(Path::new("x.txt"))),
            Err(NumbersError::BothSources)
        ));
        let message = NumbersError::NoSource.to_string();
        assert!(message.contains("OUTBOUND_NUMBER_FILE"), "{message}");
    }

    #[test]
    fn a_single_number_is_validated() {
        assert_eq!(
            Source::new(Some("+1 (555) 100-1000"), None).unwrap(),
            Source::Number("15551001000".into())
        );
        let error = Source::new(Some("100&Local/x@y"), None).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("OUTBOUND_NUMBER=") && message.contains("'&'"),
            "{message}"
        );
        let mut input = Source::new(Some("5551001"), None).unwrap().open().unwrap();
        let entries: Vec<_> = input.entries(|_| {}).map(Result::unwrap).collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(input.finish().unwrap().entries, 1);
    }

    #[test]
    fn a_missing_file_names_the_path_and_the_variable() {
        let source = Source::new(None, Some(Path::new("/nonexistent/list.csv"))).unwrap();
        let message = source.open().err().unwrap().to_string();
        assert_eq!(
            message,
            "cannot open OUTBOUND_NUMBER_FILE=/nonexistent/list.csv"
        );
    }
}
