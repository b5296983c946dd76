//! The per-call event log on the lab, the same campaign in SQLite and in MariaDB: one
//! `call_events` row per state change (originated, ringing, answered, bridged, recording,
//! ended with its cause), in order, and the same outcomes in both stores.

mod common;

use common::Campaign;
use outbound_dialer::store::{AttemptId, Location, MySqlTarget, Store};

/// Ring 3 s then answer; answer at once (no ringing); busy.
const NUMBERS: [&str; 3] = ["4001", "1001", "2001"];

fn expected(number: &str) -> (&'static str, &'static [&'static str], Option<i64>) {
    match number {
        "4001" => (
            "answered",
            &[
                "originated",
                "ringing",
                "answered",
                "bridged",
                "recording",
                "ended",
            ],
            Some(16),
        ),
        "1001" => (
            "answered",
            &["originated", "answered", "bridged", "recording", "ended"],
            Some(16),
        ),
        _ => ("busy", &["originated", "ended"], Some(17)),
    }
}

async fn run_and_check(campaign: &Campaign, location: Location) {
    let output = campaign.run().await;
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let store = Store::open_at(&location, &campaign.name).await.unwrap();
    for id in 1..=3 {
        let attempt = store.attempt(AttemptId(id)).await.unwrap();
        let number = attempt.record.number.clone();
        let (outcome, kinds, cause) = expected(&number);
        assert_eq!(
            attempt.record.outcome.map(|o| o.as_str()),
            Some(outcome),
            "{number}: {attempt:?}"
        );
        let events = store.events(attempt.id).await.unwrap();
        let got: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(got, kinds, "{number}'s events: {events:?}");
        let ended = events.last().unwrap();
        assert_eq!(ended.cause, cause, "{number}: {ended:?}");
        assert!(
            events.windows(2).all(|w| w[0].at <= w[1].at),
            "{number}: in time order: {events:?}"
        );
        assert_eq!(ended.at, attempt.record.ended_at.unwrap());
        if number == "4001" {
            let rang = events[1].at - events[0].at;
            let answered = events[2].at - events[0].at;
            assert!(
                answered >= 2_500 && rang < answered,
                "rings, then answers after ~3 s: {events:?}"
            );
        }
    }
    store.close().await;
}

#[tokio::test]
async fn every_state_change_of_every_call_is_a_row_in_sqlite() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-events", &NUMBERS);
    campaign.set("CALL_TIMEOUT", "8").set("MAX_CC", "3");
    let location = Location::Sqlite(campaign.dir.join(format!("{}.sqlite", campaign.name)));
    run_and_check(&campaign, location).await;
}

#[tokio::test]
async fn every_state_change_of_every_call_is_a_row_in_mariadb() {
    ari_lab::Lab::get().await;
    let db = ari_lab::mariadb::MariaDb::get().database("events");
    let mut campaign = Campaign::new("dl-events-my", &NUMBERS);
    campaign
        .set("CALL_TIMEOUT", "8")
        .set("MAX_CC", "3")
        .set("DIALER_DB", &db.url);
    run_and_check(&campaign, Location::MySql(MySqlTarget::Url(db.url.clone()))).await;
}
