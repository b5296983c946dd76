//! The per-attempt report as files: CSV, JSON and JSON Lines read back, failures, and a
//! large streamed report.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use outbound_dialer::outcome::Outcome;
use outbound_dialer::record::AttemptRecord;
use outbound_dialer::report::{self, ReportError, ReportFormat};
use serde_json::Value;

/// A fresh, empty directory for one test.
fn directory(test: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("report_files")
        .join(test);
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path).unwrap();
    path
}

/// The names in `directory`, to see that no temporary file is left.
fn names(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn columns() -> Vec<String> {
    vec!["name".to_owned(), "note".to_owned()]
}

fn answered() -> AttemptRecord {
    AttemptRecord {
        number: "+15550100".to_owned(),
        data: BTreeMap::from([
            ("name".to_owned(), "Doe, Jane".to_owned()),
            ("note".to_owned(), "said \"call back\"\nafter 5".to_owned()),
        ]),
        attempt: 1,
        outcome: Some(Outcome::Answered),
        cause: Some(16),
        cause_text: None,
        message: None,
        originated_at: Some(1_714_566_896_789),
        answered_at: Some(1_714_566_900_000),
        target_connected_at: Some(1_714_566_901_500),
        ended_at: Some(1_714_566_960_250),
        channel_id: "spring-0000001-1".to_owned(),
        target_channel_id: Some("spring-0000001-1-target".to_owned()),
        bridge_id: Some("spring-0000001-1-bridge".to_owned()),
        recording_name: Some("spring-0000001-1".to_owned()),
        recording_file: Some("spring/+15550100-1.wav".to_owned()),
    }
}

fn busy() -> AttemptRecord {
    AttemptRecord {
        number: "+15550101".to_owned(),
        data: BTreeMap::from([("name".to_owned(), "Roe".to_owned())]),
        attempt: 2,
        outcome: Some(Outcome::Busy),
        cause: Some(17),
        cause_text: Some("User busy".to_owned()),
        message: None,
        originated_at: Some(1_714_566_896_000),
        answered_at: None,
        target_connected_at: None,
        ended_at: Some(1_714_566_899_120),
        channel_id: "spring-0000002-2".to_owned(),
        target_channel_id: None,
        bridge_id: None,
        recording_name: None,
        recording_file: None,
    }
}

#[test]
fn csv_has_the_header_and_quoted_values() {
    let directory = directory("csv");
    let path = directory.join("report.csv");
    let summary = report::write(&path, [answered(), busy()], &columns()).unwrap();
    assert_eq!(summary.rows, 2);
    assert_eq!(summary.format, ReportFormat::Csv);
    assert_eq!(summary.path, path);
    assert_eq!(names(&directory), ["report.csv"]);

    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "number",
            "name",
            "note",
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
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let field = |row: &csv::StringRecord, name: &str| {
        let index = header.iter().position(|column| column == name).unwrap();
        row[index].to_owned()
    };
    let first = &rows[0];
    assert_eq!(field(first, "number"), "+15550100");
    assert_eq!(field(first, "name"), "Doe, Jane");
    assert_eq!(field(first, "note"), "said \"call back\"\nafter 5");
    assert_eq!(field(first, "attempt"), "1");
    assert_eq!(field(first, "outcome"), "answered");
    assert_eq!(field(first, "cause"), "16");
    // Filled in from the cause when the event carried no text.
    assert_eq!(field(first, "cause_text"), "Normal Clearing");
    assert_eq!(field(first, "message"), "");
    assert_eq!(field(first, "originated_at"), "2024-05-01T12:34:56.789Z");
    assert_eq!(field(first, "answered_at"), "2024-05-01T12:35:00.000Z");
    assert_eq!(
        field(first, "target_connected_at"),
        "2024-05-01T12:35:01.500Z"
    );
    assert_eq!(field(first, "ended_at"), "2024-05-01T12:36:00.250Z");
    assert_eq!(field(first, "ring_seconds"), "3.211");
    assert_eq!(field(first, "talk_seconds"), "60.250");
    assert_eq!(field(first, "recording"), "spring/+15550100-1.wav");
    assert_eq!(field(first, "channel_id"), "spring-0000001-1");

    let second = &rows[1];
    assert_eq!(field(second, "note"), "", "a missing data value is empty");
    assert_eq!(field(second, "outcome"), "busy");
    assert_eq!(field(second, "cause_text"), "User busy");
    assert_eq!(field(second, "answered_at"), "");
    assert_eq!(field(second, "ring_seconds"), "3.120");
    assert_eq!(field(second, "talk_seconds"), "");
    assert_eq!(field(second, "recording"), "");
}

#[test]
fn a_data_column_named_like_a_fixed_one_is_renamed() {
    let directory = directory("collision");
    let path = directory.join("report.csv");
    let mut record = busy();
    record
        .data
        .insert("outcome".to_owned(), "was busy".to_owned());
    report::write(&path, [record], &["outcome".to_owned()]).unwrap();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[1], "data_outcome");
    assert_eq!(header.iter().filter(|name| *name == "outcome").count(), 1);
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!((&row[1], &row[3]), ("was busy", "busy"));
}

#[test]
fn json_is_an_array_that_parses_back() {
    let directory = directory("json");
    let path = directory.join("report.json");
    let summary = report::write(&path, [answered(), busy()], &columns()).unwrap();
    assert_eq!((summary.rows, summary.format), (2, ReportFormat::Json));
    let rows: Vec<Value> = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        serde_json::json!({
            "number": "+15550100",
            "data": { "name": "Doe, Jane", "note": "said \"call back\"\nafter 5" },
            "attempt": 1,
            "outcome": "answered",
            "cause": 16,
            "cause_text": "Normal Clearing",
            "message": null,
            "originated_at": "2024-05-01T12:34:56.789Z",
            "answered_at": "2024-05-01T12:35:00.000Z",
            "target_connected_at": "2024-05-01T12:35:01.500Z",
            "ended_at": "2024-05-01T12:36:00.250Z",
            "ring_seconds": 3.211,
            "talk_seconds": 60.25,
            "recording": "spring/+15550100-1.wav",
            "channel_id": "spring-0000001-1",
        })
    );
    assert_eq!(rows[1]["outcome"], "busy");
    assert_eq!(rows[1]["talk_seconds"], Value::Null);

    let empty = directory.join("empty.json");
    report::write(&empty, [], &columns()).unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&fs::read(&empty).unwrap()).unwrap();
    assert!(rows.is_empty());
}

#[test]
fn jsonl_is_an_object_a_line() {
    let directory = directory("jsonl");
    let path = directory.join("report.jsonl");
    report::write(&path, [answered(), busy()], &columns()).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["data"]["note"], "said \"call back\"\nafter 5");
    assert_eq!(rows[1]["number"], "+15550101");
}

#[test]
fn an_unknown_extension_names_the_flag_and_writes_nothing() {
    let directory = directory("extension");
    let path = directory.join("report.txt");
    let error = report::write(&path, [busy()], &columns()).unwrap_err();
    assert!(
        matches!(error, ReportError::UnknownFormat { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains("--report"), "{text}");
    assert!(text.contains("report.txt"), "{text}");
    assert!(names(&directory).is_empty());
}

#[test]
fn an_unwritable_path_is_an_error_naming_it() {
    let directory = directory("unwritable");
    let missing = directory.join("no-such-directory").join("report.csv");
    let error = report::write(&missing, [busy()], &columns()).unwrap_err();
    assert!(matches!(error, ReportError::Write { .. }), "{error}");
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
    let cause = std::error::Error::source(&error).expect("the I/O error is the source");
    assert!(!cause.to_string().is_empty());

    // The report's path is a directory: the rename fails, and nothing is left behind.
    let occupied = directory.join("taken.csv");
    fs::create_dir(&occupied).unwrap();
    let error = report::write(&occupied, [busy()], &columns()).unwrap_err();
    assert!(error.to_string().contains("taken.csv"), "{error}");
    assert_eq!(names(&directory), ["taken.csv"]);
}

#[test]
fn a_new_report_replaces_the_old_whole() {
    let directory = directory("replace");
    let path = directory.join("report.csv");
    report::write(&path, [answered(), busy()], &columns()).unwrap();
    report::write(&path, [busy()], &columns()).unwrap();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    assert_eq!(reader.records().count(), 1);
    assert_eq!(names(&directory), ["report.csv"]);
}

#[tokio::test]
async fn a_failing_store_leaves_the_old_report() {
    let directory = directory("store_fails");
    let path = directory.join("report.jsonl");
    report::write(&path, [answered()], &columns()).unwrap();
    let before = fs::read(&path).unwrap();

    let records = futures::stream::iter([
        Ok(busy()),
        Err(std::io::Error::other("database is locked")),
        Ok(busy()),
    ]);
    let error = report::write_stream(&path, records, &columns())
        .await
        .unwrap_err();
    assert!(matches!(error, ReportError::Records { .. }), "{error}");
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "database is locked"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(names(&directory), ["report.jsonl"]);
}

#[tokio::test]
async fn a_large_report_streams_from_the_store() {
    const ROWS: u64 = 200_000;
    let directory = directory("large");
    let path = directory.join("report.csv");
    // Made one at a time as the writer asks, as a store's cursor would.
    let records = futures::stream::iter(0..ROWS).map(|index| {
        let mut record = busy();
        record.number = format!("+1555{index:07}");
        Ok::<_, std::io::Error>(record)
    });
    let summary = report::write_stream(&path, records, &columns())
        .await
        .unwrap();
    assert_eq!(summary.rows, ROWS);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let mut count = 0;
    let mut last = String::new();
    for row in reader.records() {
        last = row.unwrap()[0].to_owned();
        count += 1;
    }
    assert_eq!(count, ROWS);
    assert_eq!(last, format!("+1555{:07}", ROWS - 1));
}
