//! The store's `dnc` table on the lab, through the real binary: a number an operator
//! INSERTs into the table while the campaign runs is never dialled (Asterisk creates no
//! channel for it, read from its own events) and gets the outcome `dnc`, with no
//! `originated_at`, while the numbers around it are called.

mod common;

use std::time::Duration;

use common::{Campaign, Watcher, output_text};

/// As an operator would: a plain INSERT into the campaign's store, beside the dialer.
async fn operator_adds(db: &std::path::Path, number: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("INSERT INTO dnc (number, source, added_at) VALUES (?, 'operator', 0)")
        .bind(number)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_number_added_to_the_dnc_table_mid_campaign_is_never_dialled() {
    ari_lab::Lab::get().await;
    // One call at a time: 4001 rings 3 s before it answers, so 1002's turn comes well
    // after the operator's INSERT; 1003 shows the campaign goes on after the skip.
    let mut campaign = Campaign::new("dnc-table", &["4001", "1002", "1003"]);
    campaign
        .set("DIALER_DB", "campaign.sqlite")
        .set("MAX_CC", "1");
    let db = campaign.dir.join("campaign.sqlite");
    let prefix = campaign.callee_prefix();
    let watcher = Watcher::start(prefix.clone()).await;
    let first = format!("{prefix}{:012}-", 1);
    let second = format!("{prefix}{:012}-", 2);
    let insert = async {
        watcher
            .until(Duration::from_secs(30), "the first call", |s| {
                s.created.keys().any(|id| id.starts_with(&first))
            })
            .await;
        operator_adds(&db, "1002").await;
        let seen = watcher.state().created.keys().cloned().collect::<Vec<_>>();
        assert!(
            !seen.iter().any(|id| id.starts_with(&second)),
            "1002 was dialled before the operator added it: {seen:?}"
        );
    };
    let (output, ()) = tokio::join!(campaign.run(), insert);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let outcomes = campaign.outcomes();
    assert_eq!(outcomes["4001"], "answered", "{text}");
    assert_eq!(outcomes["1002"], "dnc", "{text}");
    assert_eq!(outcomes["1003"], "answered", "{text}");
    let row = campaign
        .report()
        .into_iter()
        .find(|row| row["number"] == "1002")
        .unwrap();
    assert_eq!(row["originated_at"], "", "nothing was sent: {row:?}");
    assert!(row["message"].contains("do-not-call"), "{row:?}");
    // Asterisk created channels for 4001 and 1003, none for 1002.
    let state = watcher.state();
    assert_eq!(state.created.len(), 2, "{state:?}");
    assert!(
        !state.created.keys().any(|id| id.starts_with(&second)),
        "{state:?}"
    );
}
