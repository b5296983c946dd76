//! Bad input files, end to end: opened through `numbers::Source`, imported into a real
//! store. Nothing panics, invalid lines are reported with their line numbers, and a file
//! without a valid number stops the run with a message naming the file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use outbound_dialer::numbers::{LineError, NumbersError, Source};
use outbound_dialer::store::Store;

/// Imports `list` into a fresh store: the import's counts, the invalid lines' numbers and
/// reasons, and the read's verdict.
async fn import(dir: &Path, list: &Path) -> Result<(u64, Vec<(u64, LineError)>), NumbersError> {
    let mut input = Source::File(list.to_owned()).open()?;
    let store = Store::open(&dir.join("c.sqlite"), "bad").await.unwrap();
    let mut invalid = Vec::new();
    let summary = store
        .import(input.entries(|bad| invalid.push((bad.line, bad.reason))))
        .await
        .unwrap();
    store.close().await;
    input.finish()?;
    Ok((summary.inserted, invalid))
}

#[tokio::test]
async fn binary_junk_is_invalid_lines_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("junk.bin");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let junk: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    std::fs::write(&list, junk).unwrap();
    let error = import(dir.path(), &list).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, NumbersError::NoValidNumber { invalid, .. } if invalid > 0),
        "{message}"
    );
    assert!(
        message.starts_with("no valid number in ") && message.contains("junk.bin"),
        "{message}"
    );
}

#[tokio::test]
async fn a_ten_megabyte_line_among_valid_crlf_lines() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("long.txt");
    let mut out = BufWriter::new(File::create(&list).unwrap());
    out.write_all(b"5551001\r\n").unwrap();
    let chunk = [b'5'; 64 * 1024];
    for _ in 0..160 {
        out.write_all(&chunk).unwrap();
    }
    out.write_all(b"\r\n5551002\r\nnot a number\r\n5551001\r\n")
        .unwrap();
    drop(out);
    let (inserted, invalid) = import(dir.path(), &list).await.unwrap();
    assert_eq!(inserted, 2);
    assert_eq!(invalid.len(), 2, "{invalid:?}");
    assert!(matches!(invalid[0], (2, LineError::TooLong { len, .. }) if len == 160 * 64 * 1024));
    assert!(matches!(invalid[1], (4, LineError::Number(_))));
}

#[tokio::test]
async fn empty_and_headless_files_name_the_file_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"# nothing yet\r\n\r\n").unwrap();
    let message = import(dir.path(), &empty).await.unwrap_err().to_string();
    assert!(
        message.contains("OUTBOUND_NUMBER_FILE=") && message.contains("empty.txt"),
        "{message}"
    );
    assert!(message.contains("has no numbers"), "{message}");

    let headless = dir.path().join("people.csv");
    std::fs::write(&headless, b"name;email\nAlice;a@example.com\n").unwrap();
    let message = import(dir.path(), &headless).await.unwrap_err().to_string();
    assert!(
        message.contains("people.csv") && message.contains("name, email"),
        "{message}"
    );
}
