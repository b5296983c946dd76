//! The store against real SQLite files in a temporary directory: import and dedupe,
//! resume after reopening, the attempt life cycle, idempotent outcomes, counts, the
//! report's stream, and refusals (another campaign, not a store, tampered rows).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::path::Path;

use futures::TryStreamExt as _;
use outbound_dialer::numbers::{NumberEntry, Source};
use outbound_dialer::outcome::Outcome;
use outbound_dialer::status::RunState;
use outbound_dialer::store::{Attempt, AttemptState, Ending, NumberId, Store, StoreError};

fn entry(line: u64, number: &str) -> Result<NumberEntry, Infallible> {
    Ok(NumberEntry {
        line,
        number: number.to_owned(),
        data: BTreeMap::new(),
    })
}

async fn store_with(dir: &Path, numbers: &[&str]) -> Store {
    let store = Store::open(&dir.join("c.sqlite"), "spring").await.unwrap();
    let lines = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| entry(i as u64 + 1, n));
    store.import(lines).await.unwrap();
    store
}

/// A store with one number and a first attempt at it.
async fn one_attempt(dir: &Path) -> (Store, Attempt) {
    let store = store_with(dir, &["5551001"]).await;
    let number = store.next_pending(1).await.unwrap().remove(0);
    let attempt = store
        .begin_attempt(number.id, |n| format!("x-{n}"))
        .await
        .unwrap();
    (store, attempt)
}

#[tokio::test]
async fn import_counts_inserted_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.sqlite"), "spring")
        .await
        .unwrap();
    let first: Vec<_> = (0..25_000u64)
        .map(|i| entry(i + 1, &format!("555{:07}", i % 20_000)))
        .collect();
    let summary = store.import(first).await.unwrap();
    assert_eq!((summary.inserted, summary.duplicates), (20_000, 5_000));
    let again = store
        .import([entry(1, "5550000001"), entry(2, "5559999999")])
        .await
        .unwrap();
    assert_eq!((again.inserted, again.duplicates), (1, 1));
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.total, counts.pending, counts.in_progress),
        (20_001, 20_001, 0)
    );
    assert!(counts.by_outcome.values().all(|&n| n == 0));
    assert_eq!(counts.by_outcome.len(), Outcome::ALL.len());
    let next = store.next_pending(3).await.unwrap();
    let numbers: Vec<&str> = next.iter().map(|p| p.number.as_str()).collect();
    assert_eq!(numbers, ["5550000000", "5550000001", "5550000002"]);
}

#[tokio::test]
async fn a_csv_file_imports_with_its_data_through_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.csv");
    let mut file = std::fs::File::create(&list).unwrap();
    file.write_all(b"\xEF\xBB\xBFname;phone;lang\r\nAlice;+1 555 100 1000;fr\r\nbad;1000&Local/x;en\r\nBob;(555) 200-2000;de\r\nAlice again;15551001000;fr\r\n")
        .unwrap();
    drop(file);
    let source = Source::File(list);
    let mut input = source.open().unwrap();
    let mut invalid = Vec::new();
    let store = Store::open(&dir.path().join("c.sqlite"), "spring")
        .await
        .unwrap();
    let summary = store
        .import(input.entries(|bad| invalid.push(bad.line)))
        .await
        .unwrap();
    let read = input.finish().unwrap();
    assert_eq!((read.entries, read.invalid), (3, 1));
    assert_eq!(invalid, [3]);
    assert_eq!((summary.inserted, summary.duplicates), (2, 1));
    let next = store.next_pending(10).await.unwrap();
    assert_eq!(next.len(), 2);
    assert_eq!(next[0].number, "15551001000");
    assert_eq!(
        next[0].data,
        BTreeMap::from([
            ("lang".to_owned(), "fr".to_owned()),
            ("name".to_owned(), "Alice".to_owned())
        ])
    );
    assert_eq!(next[1].number, "5552002000");
}

#[tokio::test]
async fn an_input_error_stops_the_import_after_the_stored_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("c.sqlite"), "spring")
        .await
        .unwrap();
    let lines = (0..3u64)
        .map(|i| {
            Ok(NumberEntry {
                line: i + 1,
                number: format!("555000{i}"),
                data: BTreeMap::new(),
            })
        })
        .chain([Err(std::io::Error::other("disk gone"))]);
    let error = store.import(lines).await.unwrap_err();
    assert!(matches!(error, StoreError::Input { .. }), "{error}");
    assert!(error.to_string().contains("c.sqlite"), "{error}");
}

#[tokio::test]
async fn reopening_resumes_numbers_attempts_status_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let store = store_with(dir.path(), &["5551001", "5551002", "5551003"]).await;
    assert_eq!(store.input_fingerprint().await.unwrap(), None);
    store.set_input_fingerprint("file:v1:abc").await.unwrap();
    store.set_status(RunState::Running).await.unwrap();
    let next = store.next_pending(2).await.unwrap();
    let first = store
        .begin_attempt(next[0].id, |n| format!("spring-1-{n}"))
        .await
        .unwrap();
    let second = store
        .begin_attempt(next[1].id, |n| format!("spring-2-{n}"))
        .await
        .unwrap();
    store
        .finish(first.id, &Ending::new(Outcome::Busy, 5))
        .await
        .unwrap();
    store.close().await;

    let store = Store::open(&path, "spring").await.unwrap();
    assert_eq!(store.status().await.unwrap(), RunState::Running);
    assert_eq!(
        store.input_fingerprint().await.unwrap().as_deref(),
        Some("file:v1:abc")
    );
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, second.id);
    assert_eq!(unfinished[0].state, AttemptState::Dialing);
    assert_eq!(unfinished[0].record.channel_id, "spring-2-1");
    assert_eq!(unfinished[0].record.number, "5551002");
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.total,
            counts.pending,
            counts.in_progress,
            counts.done
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(counts.by_outcome[&Outcome::Busy], 1);
    let next = store.next_pending(10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].number, "5551003");
}

#[tokio::test]
async fn a_file_of_another_campaign_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    Store::open(&path, "spring").await.unwrap().close().await;
    let error = Store::open(&path, "autumn").await.unwrap_err();
    assert!(matches!(&error, StoreError::OtherCampaign { found, .. } if found == "spring"));
    let message = error.to_string();
    assert!(
        message.contains("c.sqlite") && message.contains("\"spring\""),
        "{message}"
    );
}

#[tokio::test]
async fn one_dialer_at_a_time_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let first = Store::open(&path, "spring").await.unwrap();
    let clone = first.clone();
    let error = Store::open(&path, "spring").await.unwrap_err();
    assert!(matches!(error, StoreError::InUse { .. }), "{error:?}");
    assert!(error.to_string().contains("c.sqlite.lock"), "{error}");
    drop(first);
    // A clone keeps the lock; closing releases it for every clone.
    assert!(Store::open(&path, "spring").await.is_err());
    clone.close().await;
    Store::open(&path, "spring").await.unwrap().close().await;
}

#[tokio::test]
async fn files_that_are_not_stores_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.sqlite");
    let bytes: Vec<u8> = (0u32..8192)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    std::fs::write(&junk, &bytes).unwrap();
    let error = Store::open(&junk, "spring").await.unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");
    assert_eq!(std::fs::read(&junk).unwrap(), bytes);

    let foreign = dir.path().join("foreign.sqlite");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&foreign)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let error = Store::open(&foreign, "spring").await.unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");
    assert!(error.to_string().contains("foreign.sqlite"));
}

#[tokio::test]
async fn begin_attempt_is_one_transaction_and_never_dials_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["5551001", "5551002"]).await;
    let next = store.next_pending(10).await.unwrap();
    let (a, b) = (next[0].id, next[1].id);

    let first = store
        .begin_attempt(a, |n| format!("c-{}-{n}", a.0))
        .await
        .unwrap();
    assert_eq!(first.record.attempt, 1);
    assert_eq!(first.record.channel_id, format!("c-{}-1", a.0));
    assert!(first.record.originated_at.is_some());
    assert_eq!(store.next_pending(10).await.unwrap().len(), 1);

    // A stale list does not dial the number again.
    let again = store
        .begin_attempt(a, |n| format!("c-{}-{n}", a.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, StoreError::NotPending { state, .. } if state == "dialing"),
        "{again}"
    );

    // A taken channel id rolls the whole attempt back: the other number stays pending.
    let taken = store
        .begin_attempt(b, |_| first.record.channel_id.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(taken, StoreError::ChannelIdTaken { .. }),
        "{taken}"
    );
    let pending = store.next_pending(10).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [b]);
    assert_eq!(store.unfinished().await.unwrap().len(), 1);

    store
        .finish(first.id, &Ending::new(Outcome::NoAnswer, 9))
        .await
        .unwrap();
    let done = store
        .begin_attempt(a, |n| format!("c-{}-{n}", a.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&done, StoreError::NotPending { state, .. } if state == "done"),
        "{done}"
    );

    // A deliberate retry is a new attempt row with its own channel id.
    assert!(store.requeue(a).await.unwrap());
    assert!(!store.requeue(a).await.unwrap());
    let second = store
        .begin_attempt(a, |n| format!("c-{}-{n}", a.0))
        .await
        .unwrap();
    assert_eq!(second.record.attempt, 2);
    assert_ne!(second.record.channel_id, first.record.channel_id);
    assert_ne!(second.id, first.id);

    let unknown = store
        .begin_attempt(NumberId(999), |n| n.to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, StoreError::UnknownNumber { .. }),
        "{unknown}"
    );
}

#[tokio::test]
async fn finishing_twice_keeps_the_first_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (store, attempt) = one_attempt(dir.path()).await;
    let busy = Ending {
        cause: Some(17),
        cause_text: Some("User busy".into()),
        ..Ending::new(Outcome::Busy, 100)
    };
    assert!(store.finish(attempt.id, &busy).await.unwrap());
    assert!(
        !store
            .finish(attempt.id, &Ending::new(Outcome::Interrupted, 200))
            .await
            .unwrap()
    );
    assert!(!store.answered(attempt.id, 300).await.unwrap());
    assert!(
        !store
            .connected(attempt.id, 300, "t", "b", None)
            .await
            .unwrap()
    );
    let stored = store.attempt(attempt.id).await.unwrap();
    assert_eq!(stored.state, AttemptState::Ended);
    assert_eq!(stored.record.outcome, Some(Outcome::Busy));
    assert_eq!(stored.record.ended_at, Some(100));
    assert_eq!(stored.record.cause, Some(17));
    assert_eq!(stored.record.answered_at, None);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.by_outcome[&Outcome::Busy], 1);
    assert_eq!(counts.by_outcome[&Outcome::Interrupted], 0);

    let missing = outbound_dialer::store::AttemptId(77);
    assert!(matches!(
        store.finish(missing, &busy).await.unwrap_err(),
        StoreError::UnknownAttempt { .. }
    ));
    assert!(matches!(
        store
            .set_recording_file(missing, "x.wav")
            .await
            .unwrap_err(),
        StoreError::UnknownAttempt { .. }
    ));
}

#[tokio::test]
async fn an_answered_call_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let (store, attempt) = one_attempt(dir.path()).await;
    assert!(store.answered(attempt.id, 1_000).await.unwrap());
    assert!(!store.answered(attempt.id, 1_001).await.unwrap());
    assert!(
        store
            .connected(
                attempt.id,
                1_500,
                "x-1-target",
                "x-1-bridge",
                Some("x-1-rec")
            )
            .await
            .unwrap()
    );
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished[0].state, AttemptState::Connected);
    assert_eq!(
        unfinished[0].record.bridge_id.as_deref(),
        Some("x-1-bridge")
    );
    let done = Ending {
        cause: Some(16),
        cause_text: Some("Normal Clearing".into()),
        message: None,
        ..Ending::new(Outcome::Answered, 9_000)
    };
    assert!(store.finish(attempt.id, &done).await.unwrap());
    store
        .set_recording_file(attempt.id, "spring/x-1-rec.wav")
        .await
        .unwrap();
    let record = store.attempt(attempt.id).await.unwrap().record;
    assert_eq!(record.answered_at, Some(1_000));
    assert_eq!(record.target_connected_at, Some(1_500));
    assert_eq!(record.ended_at, Some(9_000));
    assert_eq!(record.target_channel_id.as_deref(), Some("x-1-target"));
    assert_eq!(record.recording_name.as_deref(), Some("x-1-rec"));
    assert_eq!(record.recording_file.as_deref(), Some("spring/x-1-rec.wav"));
    assert_eq!(record.cause_text.as_deref(), Some("Normal Clearing"));
    assert_eq!(record.talk_ms(), Some(8_000));
    assert!(store.unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_report_stream_pages_in_number_and_attempt_order() {
    let dir = tempfile::tempdir().unwrap();
    let numbers: Vec<String> = (0..1_000).map(|i| format!("555{i:04}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let store = store_with(dir.path(), &refs).await;
    let outcomes = [Outcome::Busy, Outcome::NoAnswer, Outcome::Congestion];
    let mut ids = Vec::new();
    loop {
        let batch = store.next_pending(100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for pending in batch {
            let attempt = store
                .begin_attempt(pending.id, |n| format!("r-{}-{n}", pending.id))
                .await
                .unwrap();
            let outcome = outcomes[(pending.id.0 % 3) as usize];
            store
                .finish(attempt.id, &Ending::new(outcome, 1))
                .await
                .unwrap();
            ids.push(pending.id);
        }
    }
    // Retries of three numbers: their second attempts have the highest row ids but come
    // right after their first in the report.
    for &id in &[ids[0], ids[500], ids[999]] {
        store.requeue(id).await.unwrap();
        let attempt = store
            .begin_attempt(id, |n| format!("r-{id}-{n}"))
            .await
            .unwrap();
        store
            .finish(attempt.id, &Ending::new(Outcome::Answered, 2))
            .await
            .unwrap();
    }
    let report: Vec<_> = store.attempts().try_collect().await.unwrap();
    assert_eq!(report.len(), 1_003);
    let order: Vec<(String, u32)> = report
        .iter()
        .map(|r| (r.number.clone(), r.attempt))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert_eq!((report[0].attempt, report[1].attempt), (1, 2));
    assert_eq!(report[1].outcome, Some(Outcome::Answered));
    assert_eq!(
        (report[1_001].number.as_str(), report[1_002].attempt),
        ("5550999", 2)
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.done, 1_000);
    assert_eq!(counts.by_outcome[&Outcome::Answered], 3);
    assert_eq!(counts.by_outcome.values().sum::<u64>(), 1_003);
}

#[tokio::test]
async fn a_tampered_number_never_leaves_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["5551001"]).await;
    store.close().await;
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("c.sqlite")),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE numbers SET number = '100&Local/x@default'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = Store::open(&dir.path().join("c.sqlite"), "spring")
        .await
        .unwrap();
    let error = store.next_pending(1).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Corrupt { what: "number", .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_unsent_attempt_taken_back_leaves_its_number_pending_and_an_answered_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &["5552001", "5552002"]).await;
    let next = store.next_pending(10).await.unwrap();
    let unsent = store
        .begin_attempt(next[0].id, |n| format!("u-{n}"))
        .await
        .unwrap();
    let answered = store
        .begin_attempt(next[1].id, |n| format!("a-{n}"))
        .await
        .unwrap();
    store.answered(answered.id, 1).await.unwrap();
    assert!(store.void_attempt(unsent.id).await.unwrap());
    // Only an attempt still dialling can be taken back.
    assert!(!store.void_attempt(answered.id).await.unwrap());
    assert!(!store.void_attempt(unsent.id).await.unwrap());
    let pending = store.next_pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, next[0].id);
    // It is dialled again as attempt 1, with the same id as before: nothing of it ever
    // reached Asterisk.
    let again = store
        .begin_attempt(next[0].id, |n| format!("u-{n}"))
        .await
        .unwrap();
    assert_eq!(
        (again.record.attempt, again.record.channel_id.as_str()),
        (1, "u-1")
    );
    assert_eq!(store.unfinished().await.unwrap().len(), 2);
}
