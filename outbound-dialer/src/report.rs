//! The per-attempt report (`--report FILE`): CSV, a JSON array or JSON Lines, chosen by
//! the file's extension.
//!
//! Records are written as they come, never held together, into a temporary file beside
//! the report that is renamed over it at the end: a reader (or a crash) sees the old
//! report or the new one, never half of one.
//!
//! CSV columns: `number`, the per-number data columns, `attempt`, `outcome`, `cause`,
//! `cause_text`, `message`, `originated_at`, `answered_at`, `target_connected_at`,
//! `ended_at` (ISO 8601 UTC), `ring_seconds`, `talk_seconds`, `recording`, `channel_id`.
//! JSON rows carry the same fields, with the data as an object under `data`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt as _};
use serde::Serialize;

use crate::outcome::{Outcome, cause_text};
use crate::record::{AttemptRecord, UnixMillis};

/// An error from where the records come from (the store).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// The columns after the data columns, in order.
const TAIL_COLUMNS: [&str; 13] = [
    "attempt",
    "outcome",
    "cause",
    "cause_text",
    "message",
    "originated_at",
    "answered_at",
    "target_connected_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "recording",
    "channel_id",
];

/// The report's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// `.csv`: a header line, then a row per attempt.
    Csv,
    /// `.json`: one JSON array of attempt objects.
    Json,
    /// `.jsonl`: one JSON object per line.
    Jsonl,
}

impl ReportFormat {
    /// The format a report path asks for, by its extension (any case).
    ///
    /// # Errors
    /// [`ReportError::UnknownFormat`] for any other extension, or none.
    pub fn of_path(path: &Path) -> Result<Self, ReportError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(ReportFormat::Csv),
            Some("json") => Ok(ReportFormat::Json),
            Some("jsonl") => Ok(ReportFormat::Jsonl),
            _ => Err(ReportError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }
}

/// What a finished report holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Where it is.
    #[serde(serialize_with = "path_text")]
    pub path: PathBuf,
    /// Its format.
    pub format: ReportFormat,
    /// Attempts written.
    pub rows: u64,
}

/// A path as text even when it is not UTF-8, so that a status answer never fails on it.
fn path_text<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&path.display())
}

/// Why a report was not written; the previous report, if any, is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The path's extension names no format.
    #[error(
        "--report {}: the file name must end in .csv, .json or .jsonl",
        path.display()
    )]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
    },
    /// The file could not be written or put in place.
    #[error("--report {}: cannot write the report", path.display())]
    Write {
        /// The report's path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The records could not be read.
    #[error("--report {}: cannot read the attempts to report", path.display())]
    Records {
        /// The report's path.
        path: PathBuf,
        /// The store's error.
        #[source]
        source: SourceError,
    },
}

/// Writes `records` to `path` in the format its extension names, `data_columns` (in
/// order) after `number`.
///
/// A data column named like a fixed column (`outcome`, ...) is written as `data_outcome`
/// in CSV, so that every header name stays unique. A record without an outcome (still
/// in progress) has an empty `outcome`.
///
/// # Errors
/// The format is unknown, or the file cannot be written; nothing is left behind.
pub fn write(
    path: &Path,
    records: impl IntoIterator<Item = AttemptRecord>,
    data_columns: &[String],
) -> Result<ReportSummary, ReportError> {
    write_results(
        path,
        records.into_iter().map(Ok::<_, SourceError>),
        data_columns,
    )
}

/// [`write()`] for records read from an async store; the file is written on a blocking
/// thread while the stream is read here.
///
/// # Errors
/// As [`write()`], and [`ReportError::Records`] when the stream yields an error.
pub async fn write_stream<S, E>(
    path: &Path,
    records: S,
    data_columns: &[String],
) -> Result<ReportSummary, ReportError>
where
    S: Stream<Item = Result<AttemptRecord, E>>,
    E: Into<SourceError>,
{
    // Fail before reading the store when the format is wrong.
    ReportFormat::of_path(path)?;
    // Bounded, so that a slow disk holds the store back instead of filling memory.
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<AttemptRecord, SourceError>>(256);
    let writer_path = path.to_owned();
    let columns = data_columns.to_vec();
    let writer = tokio::task::spawn_blocking(move || {
        write_results(
            &writer_path,
            std::iter::from_fn(|| receiver.blocking_recv()),
            &columns,
        )
    });
    let mut records = std::pin::pin!(records);
    while let Some(record) = records.next().await {
        let failed = record.is_err();
        // A closed channel means the writer has already failed; its error says why.
        if sender.send(record.map_err(Into::into)).await.is_err() || failed {
            break;
        }
    }
    drop(sender);
    match writer.await {
        Ok(result) => result,
        Err(join) => Err(ReportError::Write {
            path: path.to_owned(),
            source: io::Error::other(join.to_string()),
        }),
    }
}

fn write_results<E: Into<SourceError>>(
    path: &Path,
    records: impl Iterator<Item = Result<AttemptRecord, E>>,
    data_columns: &[String],
) -> Result<ReportSummary, ReportError> {
    let format = ReportFormat::of_path(path)?;
    let write_error = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = Temporary::create(path).map_err(write_error)?;
    let mut out = BufWriter::new(&temporary.file);
    let rows = match format {
        ReportFormat::Csv => write_csv(&mut out, records, data_columns),
        ReportFormat::Json | ReportFormat::Jsonl => {
            write_json(&mut out, records, format == ReportFormat::Json)
        }
    }
    .map_err(|error| match error {
        Failure::Io(source) => write_error(source),
        Failure::Records(source) => ReportError::Records {
            path: path.to_owned(),
            source,
        },
    })?;
    out.flush().map_err(write_error)?;
    drop(out);
    temporary.persist().map_err(write_error)?;
    Ok(ReportSummary {
        path: path.to_owned(),
        format,
        rows,
    })
}

/// Why writing rows stopped.
enum Failure {
    Io(io::Error),
    Records(SourceError),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Io(error)
    }
}

impl From<csv::Error> for Failure {
    fn from(error: csv::Error) -> Self {
        Failure::Io(error.into())
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Self {
        Failure::Io(error.into())
    }
}

/// The CSV names of the data columns: unique, none equal to a fixed column's.
fn data_headers(data_columns: &[String]) -> Vec<String> {
    let mut taken: BTreeSet<&str> = TAIL_COLUMNS.into_iter().collect();
    taken.insert("number");
    let mut headers = Vec::with_capacity(data_columns.len());
    for column in data_columns {
        let mut name = column.clone();
        while taken.contains(name.as_str()) || headers.contains(&name) {
            name.insert_str(0, "data_");
        }
        headers.push(name);
    }
    headers
}

fn write_csv<E: Into<SourceError>>(
    out: impl Write,
    records: impl Iterator<Item = Result<AttemptRecord, E>>,
    data_columns: &[String],
) -> Result<u64, Failure> {
    let mut csv = csv::Writer::from_writer(out);
    let headers = data_headers(data_columns);
    csv.write_record(
        std::iter::once("number")
            .chain(headers.iter().map(String::as_str))
            .chain(TAIL_COLUMNS),
    )?;
    let mut rows = 0;
    for record in records {
        let record = record.map_err(|error| Failure::Records(error.into()))?;
        let row = Row::of(&record);
        let data = data_columns
            .iter()
            .map(|column| record.data.get(column).map_or("", String::as_str));
        let text = |value: Option<String>| value.unwrap_or_default();
        let tail = [
            record.attempt.to_string(),
            text(row.outcome.map(|outcome| outcome.as_str().to_owned())),
            text(row.cause.map(|cause| cause.to_string())),
            text(row.cause_text.map(str::to_owned)),
            text(row.message.map(str::to_owned)),
            text(row.originated_at.map(|at| at.to_string())),
            text(row.answered_at.map(|at| at.to_string())),
            text(row.target_connected_at.map(|at| at.to_string())),
            text(row.ended_at.map(|at| at.to_string())),
            text(record.ring_ms().map(seconds_text)),
            text(record.talk_ms().map(seconds_text)),
            text(row.recording.map(str::to_owned)),
            record.channel_id.clone(),
        ];
        csv.write_record(
            std::iter::once(record.number.as_str())
                .chain(data)
                .chain(tail.iter().map(String::as_str)),
        )?;
        rows += 1;
    }
    csv.flush()?;
    Ok(rows)
}

fn write_json<E: Into<SourceError>>(
    mut out: impl Write,
    records: impl Iterator<Item = Result<AttemptRecord, E>>,
    array: bool,
) -> Result<u64, Failure> {
    if array {
        out.write_all(b"[")?;
    }
    let mut rows = 0;
    for record in records {
        let record = record.map_err(|error| Failure::Records(error.into()))?;
        if array {
            out.write_all(if rows == 0 { b"\n" } else { b",\n" })?;
        }
        serde_json::to_writer(&mut out, &Row::of(&record))?;
        if !array {
            out.write_all(b"\n")?;
        }
        rows += 1;
    }
    if array {
        out.write_all(if rows == 0 { b"]\n" } else { b"\n]\n" })?;
    }
    Ok(rows)
}

/// One attempt as the report shows it.
#[derive(Serialize)]
struct Row<'a> {
    number: &'a str,
    data: &'a BTreeMap<String, String>,
    attempt: u32,
    outcome: Option<Outcome>,
    cause: Option<i64>,
    cause_text: Option<&'a str>,
    message: Option<&'a str>,
    originated_at: Option<Utc>,
    answered_at: Option<Utc>,
    target_connected_at: Option<Utc>,
    ended_at: Option<Utc>,
    ring_seconds: Option<f64>,
    talk_seconds: Option<f64>,
    recording: Option<&'a str>,
    channel_id: &'a str,
}

impl<'a> Row<'a> {
    fn of(record: &'a AttemptRecord) -> Self {
        Row {
            number: &record.number,
            data: &record.data,
            attempt: record.attempt,
            outcome: record.outcome,
            cause: record.cause,
            // Events do not always carry the text; Asterisk's usual one fills in.
            cause_text: record
                .cause_text
                .as_deref()
                .or_else(|| record.cause.map(cause_text)),
            message: record.message.as_deref(),
            originated_at: record.originated_at.map(Utc),
            answered_at: record.answered_at.map(Utc),
            target_connected_at: record.target_connected_at.map(Utc),
            ended_at: record.ended_at.map(Utc),
            ring_seconds: record.ring_ms().map(|ms| ms as f64 / 1000.0),
            talk_seconds: record.talk_ms().map(|ms| ms as f64 / 1000.0),
            recording: record.recording_file.as_deref(),
            channel_id: &record.channel_id,
        }
    }
}

/// Milliseconds as seconds with three decimals, exactly (no float rounding).
fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// A time as ISO 8601 UTC text, `2024-05-01T12:34:56.789Z`; years outside 0..=9999 get
/// a sign and more digits (ISO 8601's expanded form), so every `i64` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utc(UnixMillis);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            write!(f, "{year:+05}")?;
        }
        write!(
            f,
            "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000
        )
    }
}

impl Serialize for Utc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Year, month and day of a day count from 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`). |days| < 2^37 for any i64 of
/// milliseconds, so no step overflows.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in 1..=31 and 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// A file beside the report that becomes it on [`Temporary::persist`] and is removed
/// otherwise.
struct Temporary {
    file: File,
    path: PathBuf,
    target: PathBuf,
    persisted: bool,
}

impl Temporary {
    fn create(target: &Path) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let file_name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        loop {
            let mut name = OsString::from(".");
            name.push(file_name);
            name.push(format!(
                ".{}-{}.tmp",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let path = directory.join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Temporary {
                        file,
                        path,
                        target: target.to_owned(),
                        persisted: false,
                    });
                }
                // A leftover of a crashed run with the same pid: take the next name.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
        }
    }

    fn persist(mut self) -> io::Result<()> {
        // On disk before the rename, or a power cut could leave an empty report.
        self.file.sync_all()?;
        fs::rename(&self.path, &self.target)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.persisted {
            // Best effort: the error that brought us here is the one worth reporting.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_iso_8601_utc() {
        assert_eq!(Utc(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Utc(1_714_566_896_789).to_string(),
            "2024-05-01T12:34:56.789Z"
        );
        assert_eq!(Utc(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Utc(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            Utc(253_402_300_799_999).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Utc(253_402_300_800_000).to_string(),
            "+10000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Utc(-62_167_219_200_001).to_string(),
            "-0001-12-31T23:59:59.999Z"
        );
        // The extremes print without overflowing.
        assert!(Utc(i64::MAX).to_string().starts_with("+292278994-"));
        assert!(Utc(i64::MIN).to_string().starts_with("-292275055-"));
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // days_from_civil, the inverse, written independently.
        fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
            let year = if month <= 2 { year - 1 } else { year };
            let era = year.div_euclid(400);
            let year_of_era = year.rem_euclid(400);
            let month = i64::from(month);
            let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5
                + i64::from(day)
                - 1;
            let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
            era * 146_097 + day_of_era - 719_468
        }
        for days in -146_097..146_097 {
            let (year, month, day) = civil_from_days(days);
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn seconds_have_three_exact_decimals() {
        assert_eq!(seconds_text(0), "0.000");
        assert_eq!(seconds_text(1_234), "1.234");
        assert_eq!(seconds_text(60_005), "60.005");
        assert_eq!(seconds_text(-1_500), "-1.500");
        assert_eq!(seconds_text(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            ReportFormat::of_path(Path::new("a/report.CSV")).unwrap(),
            ReportFormat::Csv
        );
        assert_eq!(
            ReportFormat::of_path(Path::new("r.json")).unwrap(),
            ReportFormat::Json
        );
        assert_eq!(
            ReportFormat::of_path(Path::new("r.jsonl")).unwrap(),
            ReportFormat::Jsonl
        );
        for bad in ["report.txt", "report", ""] {
            let error = ReportFormat::of_path(Path::new(bad)).unwrap_err();
            assert!(error.to_string().starts_with("--report "), "{error}");
        }
    }

    #[test]
    fn data_columns_never_shadow_fixed_ones() {
        let columns = ["name", "outcome", "data_outcome", "number", "name"].map(String::from);
        assert_eq!(
            data_headers(&columns),
            [
                "name",
                "data_outcome",
                "data_data_outcome",
                "data_number",
                "data_name"
            ]
        );
    }
}
