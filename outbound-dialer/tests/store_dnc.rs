//! The store's `dnc` table (store v4), on SQLite and on the lab's MariaDB: a DNC list is
//! loaded idempotently (normalised, first source kept), a number an operator INSERTs is
//! seen at once, 100 000 numbers load in a few seconds, an attempt is never begun for a
//! DNC number, and a DNC number's outcome is an attempt row that never claims to have
//! been originated.

mod store_fixture;

use std::time::{Duration, Instant};

use outbound_dialer::outcome::Outcome;
use outbound_dialer::store::{AttemptState, Ending, StoreError, unix_millis_now};
use store_fixture::Fixture;

impl Fixture {
    /// An operator's own INSERT, outside the dialer.
    async fn operator_adds(&self, number: &str) {
        let statement = format!(
            "INSERT INTO dnc (number, source, added_at) VALUES ('{number}', 'operator', {})",
            unix_millis_now()
        );
        match self {
            Fixture::Sqlite(dir) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("c.sqlite"))
                    .busy_timeout(Duration::from_secs(10));
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                sqlx::query(&statement).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Fixture::MySql(db) => {
                db.sql(&statement).unwrap();
            }
        }
    }
}

async fn the_dnc_table(fixture: Fixture) {
    let store = fixture.with(&["12125550100", "1002", "1003"]).await;
    assert_eq!(store.dnc_count().await.unwrap(), 0);
    assert_eq!(store.is_dnc("1002").await.unwrap(), None);

    // Normalised as the number list; an unusable line is skipped.
    let added = store
        .load_dnc(
            ["+1 (212) 555-0100", "1002", "1002", "not a number"],
            "dnc.txt",
        )
        .await
        .unwrap();
    assert_eq!(added, 2);
    assert_eq!(store.dnc_count().await.unwrap(), 2);
    assert_eq!(store.pending_dnc_count().await.unwrap(), 2);
    assert_eq!(
        store.is_dnc("12125550100").await.unwrap().as_deref(),
        Some("dnc.txt")
    );
    assert_eq!(store.is_dnc("1003").await.unwrap(), None);

    // Loaded again (a restart, another dialer, a changed file): nothing changes but what
    // is new; a number keeps where it first came from.
    let added = store.load_dnc(["1002", "4004"], "api").await.unwrap();
    assert_eq!(added, 1);
    assert_eq!(store.dnc_count().await.unwrap(), 3);
    assert_eq!(
        store.is_dnc("1002").await.unwrap().as_deref(),
        Some("dnc.txt")
    );
    assert_eq!(store.is_dnc("4004").await.unwrap().as_deref(), Some("api"));

    // An operator's INSERT is seen by the next check.
    fixture.operator_adds("1003").await;
    assert_eq!(
        store.is_dnc("1003").await.unwrap().as_deref(),
        Some("operator")
    );
    assert_eq!(store.pending_dnc_count().await.unwrap(), 3);

    // 100 000 numbers, twice (the second time all known).
    let big: Vec<String> = (0..100_000u64).map(|i| format!("3{i:010}")).collect();
    let started = Instant::now();
    assert_eq!(store.load_dnc(&big, "big.txt").await.unwrap(), 100_000);
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(store.load_dnc(&big, "big.txt").await.unwrap(), 0);
    let again = started.elapsed();
    println!("100 000 DNC numbers loaded in {first:?}, again in {again:?}");
    assert!(
        first < Duration::from_secs(30) && again < Duration::from_secs(30),
        "{first:?} / {again:?}"
    );
    assert_eq!(store.dnc_count().await.unwrap(), 100_004);
    assert!(store.is_dnc("30000099999").await.unwrap().is_some());
}

async fn a_dnc_outcome_is_not_an_originate(fixture: Fixture) {
    let store = fixture.with(&["1001", "1002"]).await;
    let claimed = store.claim(10).await.unwrap();
    let (first, second) = (claimed[0].id, claimed[1].id);
    let ended_at = unix_millis_now();
    let ending = Ending {
        outcome: Outcome::Dnc,
        cause: None,
        cause_text: None,
        message: Some("not dialled: on the do-not-call list".to_owned()),
        ended_at,
    };
    // On the list: begin_attempt, the write before an originate, refuses it and writes
    // nothing (the check in the transaction itself).
    store.load_dnc(["1001"], "dnc.txt").await.unwrap();
    match store
        .begin_attempt(first, |n| format!("dnc-{}-{n}", first.0))
        .await
    {
        Err(StoreError::OnDnc { from, .. }) => assert_eq!(from, "dnc.txt"),
        other => panic!("{other:?}"),
    }
    assert!(store.unfinished().await.unwrap().is_empty());
    assert_eq!(store.counts().await.unwrap().pending, 2);
    let attempt = store
        .finish_without_call(first, |n| format!("dnc-{}-{n}", first.0), &ending)
        .await
        .unwrap();
    assert_eq!(attempt.state, AttemptState::Ended);
    assert_eq!(attempt.record.originated_at, None);
    let stored = store.attempt(attempt.id).await.unwrap();
    assert_eq!(stored.state, AttemptState::Ended);
    assert_eq!(stored.record.attempt, 1);
    assert_eq!(stored.record.outcome, Some(Outcome::Dnc));
    assert_eq!(stored.record.originated_at, None, "nothing was sent");
    assert_eq!(stored.record.ended_at, Some(ended_at));
    assert_eq!(
        stored.record.message.as_deref(),
        Some("not dialled: on the do-not-call list")
    );
    // The number is done: never claimed, never started again.
    assert_eq!(
        store
            .claim(10)
            .await
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        [second]
    );
    assert!(matches!(
        store
            .finish_without_call(first, |n| format!("dnc-{}-{n}", first.0), &ending)
            .await,
        Err(StoreError::NotPending { .. })
    ));
    assert!(matches!(
        store
            .begin_attempt(first, |n| format!("dnc-{}-{n}", first.0))
            .await,
        Err(StoreError::NotPending { .. })
    ));
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.done, counts.pending), (1, 1));
    assert_eq!(counts.by_outcome[&Outcome::Dnc], 1);
    assert!(store.unfinished().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnc_table_on_sqlite() {
    the_dnc_table(Fixture::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnc_table_on_mariadb() {
    the_dnc_table(Fixture::mariadb("dnctable")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnc_outcome_without_call_on_sqlite() {
    a_dnc_outcome_is_not_an_originate(Fixture::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnc_outcome_without_call_on_mariadb() {
    a_dnc_outcome_is_not_an_originate(Fixture::mariadb("dncnocall")).await;
}

/// Several dialers of a MySQL campaign load the same file at start at once: no deadlock
/// fails either, and every number is added once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialers_loading_one_list_at_once_on_mariadb() {
    let fixture = Fixture::mariadb("dncshared");
    let first = fixture.with(&["1001"]).await;
    let second = fixture.open().await;
    // Each process reads the file into a hash set: in its own order.
    let list: Vec<String> = (0..30_000u64).map(|i| format!("5{i:010}")).collect();
    let reversed: Vec<String> = list.iter().rev().cloned().collect();
    let (a, b) = tokio::join!(
        first.load_dnc(&list, "dnc.txt"),
        second.load_dnc(&reversed, "dnc.txt")
    );
    assert_eq!(a.unwrap() + b.unwrap(), 30_000);
    assert_eq!(first.dnc_count().await.unwrap(), 30_000);
    assert!(second.is_dnc("50000000000").await.unwrap().is_some());
}
