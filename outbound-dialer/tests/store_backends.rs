//! The same store tests on both backends: an SQLite file in a temporary directory and a
//! database of its own on the real MariaDB that `ari_lab::mariadb` runs. Import and dedupe,
//! the attempt life cycle with its `call_events` rows, resuming after a reopen, claims
//! and leases, taking over a gone dialer's calls, and dialers claiming at once without
//! ever starting a number twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

mod store_fixture;

use futures::TryStreamExt as _;
use outbound_dialer::numbers::NumberEntry;
use outbound_dialer::outcome::Outcome;
use outbound_dialer::status::RunState;
use outbound_dialer::store::{AttemptState, CallEventKind, Ending, MySqlTarget, Store, StoreError};
use store_fixture::{Fixture, entry, info};

/// Each body runs once per backend, as `<name>::sqlite` and `<name>::mariadb`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Fixture::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name(super::Fixture::mariadb("store")).await;
            }
        })*
    };
}

on_both!(
    import_dedupes_and_counts,
    the_attempt_life_cycle_writes_one_event_per_state_change,
    a_reopened_store_resumes,
    a_number_is_begun_once_and_a_retry_is_a_new_attempt_row,
    claims_are_disjoint_and_return_to_the_pool_when_their_lease_runs_out,
    a_gone_dialers_calls_are_taken_over_once,
    dialers_claiming_at_once_start_every_number_once,
);

/// Polls `check` (a store query) until it yields something, within ten seconds: for
/// leases running out, which no event announces.
async fn within_lease<T, F, Fut>(mut check: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = check().await;
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn import_dedupes_and_counts(fixture: Fixture) {
    let store = fixture.open().await;
    let first: Vec<_> = (0..25_000u64)
        .map(|i| entry(i + 1, &format!("555{:07}", i % 20_000)))
        .collect();
    let summary = store.import(first).await.unwrap();
    assert_eq!((summary.inserted, summary.duplicates), (20_000, 5_000));
    let mut data = BTreeMap::new();
    data.insert("name".to_owned(), "Zoë \"Z\" O'Hara".to_owned());
    let again = store
        .import([
            entry(1, "5550000001"),
            Ok(NumberEntry {
                line: 2,
                number: "5559999999".to_owned(),
                data: data.clone(),
            }),
        ])
        .await
        .unwrap();
    assert_eq!((again.inserted, again.duplicates), (1, 1));
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.total,
            counts.pending,
            counts.in_progress,
            counts.done
        ),
        (20_001, 20_001, 0, 0)
    );
    assert!(counts.by_outcome.values().all(|&n| n == 0));
    assert_eq!(counts.by_outcome.len(), Outcome::ALL.len());
    let next = store.next_pending(3).await.unwrap();
    let numbers: Vec<&str> = next.iter().map(|p| p.number.as_str()).collect();
    assert_eq!(numbers, ["5550000000", "5550000001", "5550000002"]);
    let all = store.next_pending(30_000).await.unwrap();
    assert_eq!(all.last().unwrap().number, "5559999999");
    assert_eq!(
        all.last().unwrap().data,
        data,
        "per-number data round-trips"
    );
    store.close().await;
}

async fn the_attempt_life_cycle_writes_one_event_per_state_change(fixture: Fixture) {
    let store = fixture.with(&["5551001", "5552001"]).await;
    let next = store.claim(10).await.unwrap();
    assert_eq!(next.len(), 2);
    let answered = store
        .begin_attempt(next[0].id, |n| format!("life-a-{n}"))
        .await
        .unwrap();
    assert_eq!(answered.dialer.as_deref(), Some(store.dialer_id()));
    assert_eq!(answered.asterisk.as_deref(), Some("http://127.0.0.1:8088"));
    store
        .event(answered.id, CallEventKind::Originated, 1_000, None)
        .await
        .unwrap();
    store
        .event(answered.id, CallEventKind::Ringing, 1_100, None)
        .await
        .unwrap();
    assert!(store.answered(answered.id, 2_000).await.unwrap());
    assert!(!store.answered(answered.id, 2_001).await.unwrap(), "once");
    assert!(
        store
            .connected(answered.id, 2_500, "life-t", "life-b", Some("life-rec"))
            .await
            .unwrap()
    );
    let end = Ending {
        cause: Some(16),
        cause_text: Some("Normal Clearing".into()),
        ..Ending::new(Outcome::Answered, 9_000)
    };
    assert!(store.finish(answered.id, &end).await.unwrap());
    assert!(
        !store
            .finish(answered.id, &Ending::new(Outcome::Interrupted, 9_500))
            .await
            .unwrap(),
        "an ended attempt keeps its outcome"
    );
    store
        .set_recording_file(answered.id, "life-rec.wav")
        .await
        .unwrap();
    // The same value again changes no row (MySQL counts changed rows): still fine.
    store
        .set_recording_file(answered.id, "life-rec.wav")
        .await
        .unwrap();

    let events = store.events(answered.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "originated",
            "ringing",
            "answered",
            "bridged",
            "recording",
            "ended"
        ]
    );
    let times: Vec<i64> = events.iter().map(|e| e.at).collect();
    assert_eq!(times, [1_000, 1_100, 2_000, 2_500, 2_500, 9_000]);
    let ended = events.last().unwrap();
    assert_eq!(ended.cause, Some(16));
    assert_eq!(ended.detail.as_deref(), Some("answered"));
    assert_eq!(events[4].detail.as_deref(), Some("life-rec"));
    assert!(
        events
            .iter()
            .all(|e| e.dialer.as_deref() == Some(store.dialer_id()))
    );

    let busy = store
        .begin_attempt(next[1].id, |n| format!("life-b-{n}"))
        .await
        .unwrap();
    let end = Ending {
        cause: Some(17),
        cause_text: Some("User busy".into()),
        message: Some("the line is busy".into()),
        ..Ending::new(Outcome::Busy, 3_000)
    };
    store.finish(busy.id, &end).await.unwrap();
    let events = store.events(busy.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].kind.as_str(),
            events[0].cause,
            events[0].detail.as_deref()
        ),
        ("ended", Some(17), Some("busy: the line is busy"))
    );

    let record = store.attempt(answered.id).await.unwrap().record;
    assert_eq!(record.answered_at, Some(2_000));
    assert_eq!(record.target_connected_at, Some(2_500));
    assert_eq!(record.recording_file.as_deref(), Some("life-rec.wav"));
    assert_eq!(record.talk_ms(), Some(7_000));
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.done, 2);
    assert_eq!(counts.by_outcome[&Outcome::Answered], 1);
    assert_eq!(counts.by_outcome[&Outcome::Busy], 1);
    let missing = outbound_dialer::store::AttemptId(987_654);
    assert!(matches!(
        store
            .event(missing, CallEventKind::Ringing, 1, None)
            .await
            .unwrap_err(),
        StoreError::UnknownAttempt { .. }
    ));
    store.close().await;
}

async fn a_reopened_store_resumes(fixture: Fixture) {
    let store = fixture.with(&["5551001", "5551002", "5551003"]).await;
    assert_eq!(store.input_fingerprint().await.unwrap(), None);
    store.set_input_fingerprint("file:v1:abc").await.unwrap();
    store.set_status(RunState::Running).await.unwrap();
    let next = store.claim(2).await.unwrap();
    let first = store
        .begin_attempt(next[0].id, |n| format!("re-1-{n}"))
        .await
        .unwrap();
    let second = store
        .begin_attempt(next[1].id, |n| format!("re-2-{n}"))
        .await
        .unwrap();
    store
        .finish(first.id, &Ending::new(Outcome::Busy, 5))
        .await
        .unwrap();
    store.close().await;

    let store = fixture.open().await;
    assert_eq!(store.status().await.unwrap(), RunState::Running);
    assert_eq!(
        store.input_fingerprint().await.unwrap().as_deref(),
        Some("file:v1:abc")
    );
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, second.id);
    assert_eq!(unfinished[0].state, AttemptState::Dialing);
    assert_eq!(unfinished[0].record.channel_id, "re-2-1");
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
    store.close().await;

    let error = Store::open_at(&fixture.location(), "autumn")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::OtherCampaign { found, .. } if found == "spring"),
        "{error}"
    );
}

async fn a_number_is_begun_once_and_a_retry_is_a_new_attempt_row(fixture: Fixture) {
    let store = fixture.with(&["5551001", "5551002"]).await;
    let next = store.next_pending(10).await.unwrap();
    let (a, b) = (next[0].id, next[1].id);
    let first = store
        .begin_attempt(a, |n| format!("once-{}-{n}", a.0))
        .await
        .unwrap();
    let again = store
        .begin_attempt(a, |n| format!("once-{}-{n}", a.0))
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

    store
        .finish(first.id, &Ending::new(Outcome::NoAnswer, 9))
        .await
        .unwrap();
    assert!(store.requeue(a).await.unwrap());
    assert!(!store.requeue(a).await.unwrap());
    let second = store
        .begin_attempt(a, |n| format!("once-{}-{n}", a.0))
        .await
        .unwrap();
    assert_eq!(second.record.attempt, 2);
    assert_ne!(second.id, first.id);
    store
        .finish(second.id, &Ending::new(Outcome::Answered, 20))
        .await
        .unwrap();
    let report: Vec<_> = store.attempts().try_collect().await.unwrap();
    let rows: Vec<(&str, u32, Option<Outcome>)> = report
        .iter()
        .map(|r| (r.number.as_str(), r.attempt, r.outcome))
        .collect();
    assert_eq!(
        rows,
        [
            ("5551001", 1, Some(Outcome::NoAnswer)),
            ("5551001", 2, Some(Outcome::Answered))
        ]
    );
    // An unsent attempt taken back leaves no trace but a pending number.
    let unsent = store
        .begin_attempt(b, |n| format!("once-{}-{n}", b.0))
        .await
        .unwrap();
    store
        .event(unsent.id, CallEventKind::Originated, 30, None)
        .await
        .unwrap();
    assert!(store.void_attempt(unsent.id).await.unwrap());
    assert_eq!(store.next_pending(10).await.unwrap().len(), 1);
    assert!(store.events(unsent.id).await.unwrap().is_empty());
    store.close().await;
}

async fn claims_are_disjoint_and_return_to_the_pool_when_their_lease_runs_out(fixture: Fixture) {
    let numbers: Vec<String> = (0..10).map(|i| format!("555100{i}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let one = fixture.with(&refs).await;
    let first = one.claim(4).await.unwrap();
    let again = one.claim(4).await.unwrap();
    let ids = |numbers: &[outbound_dialer::store::PendingNumber]| {
        numbers.iter().map(|p| p.id.0).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&again),
        ids(&first),
        "unstarted claims come back to their dialer"
    );
    for number in &first[..2] {
        one.begin_attempt(number.id, |n| format!("c-{}-{n}", number.id))
            .await
            .unwrap();
    }
    let next = one.claim(4).await.unwrap();
    assert_eq!(
        ids(&next),
        [
            first[2].id.0,
            first[3].id.0,
            first[3].id.0 + 1,
            first[3].id.0 + 2
        ],
        "started numbers are never claimed again"
    );
    one.renew().await.unwrap();
    one.retire().await.unwrap();
    one.close().await;
    if !fixture.shared() {
        // SQLite: the next run (the lock proves this one is gone) has them all.
        let next_run = fixture.open().await;
        next_run
            .register_dialer(&info("app-a", 30_000))
            .await
            .unwrap();
        assert_eq!(next_run.claim(100).await.unwrap().len(), 8);
        next_run.close().await;
        return;
    }
    let one = fixture.open().await;
    one.register_dialer(&info("app-a", 30_000)).await.unwrap();
    assert_eq!(
        one.claim(100).await.unwrap().len(),
        8,
        "a retired dialer's claims are anyone's at once"
    );
    one.retire().await.unwrap();
    one.close().await;
    // A second dialer: the first one's live claims are not its; expired ones are.
    let one = fixture.open().await;
    one.register_dialer(&info("app-a", 400)).await.unwrap();
    let held = within_lease(|| async { one.claim(3).await.unwrap() }).await;
    assert_eq!(held.len(), 3);
    let two = fixture.open().await;
    two.register_dialer(&info("app-b", 30_000)).await.unwrap();
    let refused = two
        .begin_attempt(held[0].id, |n| format!("claimed-{n}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::NotPending { state, .. } if state.starts_with("claimed by")),
        "{refused}"
    );
    // The first dialer stops renewing: after its lease its claims are the second's.
    let taken = within_lease(|| async {
        let taken = two.claim(100).await.unwrap();
        if taken.iter().any(|p| p.id == held[0].id) {
            taken
        } else {
            Vec::new()
        }
    })
    .await;
    assert!(
        taken.iter().any(|p| p.id == held[0].id),
        "the expired claim went back to the pool"
    );
    let attempt = two
        .begin_attempt(held[0].id, |n| format!("claimed-{n}"))
        .await
        .unwrap();
    assert_eq!(attempt.dialer.as_deref(), Some(two.dialer_id()));
    // The first dialer's stale list cannot start it any more.
    assert!(matches!(
        one.begin_attempt(held[0].id, |n| format!("claimed-x-{n}"))
            .await
            .unwrap_err(),
        StoreError::NotPending { .. }
    ));
    two.renew().await.unwrap();
    let live: Vec<String> = two
        .live_dialers()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(live.contains(&two.dialer_id().to_owned()), "{live:?}");
    assert!(!live.contains(&one.dialer_id().to_owned()), "{live:?}");
    one.close().await;
    two.close().await;
}

async fn a_gone_dialers_calls_are_taken_over_once(fixture: Fixture) {
    let store = fixture.with(&["5551001", "5551002"]).await;
    store.register_dialer(&info("app-a", 300)).await.unwrap();
    let claimed = store.claim(2).await.unwrap();
    let ringing = store
        .begin_attempt(claimed[0].id, |n| format!("orphan-1-{n}"))
        .await
        .unwrap();
    let talking = store
        .begin_attempt(claimed[1].id, |n| format!("orphan-2-{n}"))
        .await
        .unwrap();
    store.answered(talking.id, 10).await.unwrap();
    assert!(
        store.orphaned().await.unwrap().is_empty(),
        "a dialer's own calls are never orphans"
    );
    if !fixture.shared() {
        // SQLite: the next run of the file (the lock proves the last one is gone) picks
        // them up at once.
        store.close().await;
        let next = fixture.open().await;
        next.register_dialer(&info("app-a", 30_000)).await.unwrap();
        let orphans = next.orphaned().await.unwrap();
        assert_eq!(orphans.len(), 2);
        assert!(next.take_over(&orphans[0]).await.unwrap());
        assert!(!next.take_over(&orphans[0]).await.unwrap(), "once");
        next.close().await;
        return;
    }
    let two = fixture.open().await;
    two.register_dialer(&info("app-b", 30_000)).await.unwrap();
    let three = fixture.open().await;
    three.register_dialer(&info("app-c", 30_000)).await.unwrap();
    let orphans = within_lease(|| async { two.orphaned().await.unwrap() }).await;
    assert_eq!(
        orphans.iter().map(|a| a.id).collect::<Vec<_>>(),
        [ringing.id, talking.id]
    );
    assert_eq!(orphans[1].state, AttemptState::Answered);
    // Two dialers race for the same orphans: each is taken once.
    let (a, b) = tokio::join!(
        async {
            let mut won = Vec::new();
            for orphan in &orphans {
                if two.take_over(orphan).await.unwrap() {
                    won.push(orphan.id);
                }
            }
            won
        },
        async {
            let mut won = Vec::new();
            for orphan in &orphans {
                if three.take_over(orphan).await.unwrap() {
                    won.push(orphan.id);
                }
            }
            won
        }
    );
    assert_eq!(a.len() + b.len(), 2, "{a:?} {b:?}");
    assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
    let events = store.events(ringing.id).await.unwrap();
    assert_eq!(events.last().unwrap().kind, "reconciled");
    assert!(two.orphaned().await.unwrap().is_empty());
    assert!(three.orphaned().await.unwrap().is_empty());
    for store in [store, two, three] {
        store.close().await;
    }
}

async fn dialers_claiming_at_once_start_every_number_once(fixture: Fixture) {
    let n = 600;
    let numbers: Vec<String> = (0..n).map(|i| format!("55520{i:04}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let first = fixture.with(&refs).await;
    // Three dialers on MariaDB (an SQLite file has one dialer: three tasks share it).
    let mut stores = vec![first.clone()];
    for app in ["app-b", "app-c"] {
        if fixture.shared() {
            let store = fixture.open().await;
            store.register_dialer(&info(app, 30_000)).await.unwrap();
            stores.push(store);
        } else {
            stores.push(first.clone());
        }
    }
    let started = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let shared = fixture.shared();
    for (index, store) in stores.iter().enumerate() {
        let (store, started) = (store.clone(), started.clone());
        tasks.spawn(async move {
            loop {
                let claimed = store.claim(7).await.unwrap();
                if claimed.is_empty() {
                    return;
                }
                for number in claimed {
                    let attempt = match store
                        .begin_attempt(number.id, |n| format!("race-{}-{n}", number.id))
                        .await
                    {
                        Ok(attempt) => attempt,
                        // Tasks sharing one dialer see its unstarted claims: one starts it.
                        Err(StoreError::NotPending { .. }) if !shared => continue,
                        Err(error) => panic!("dialer {index}: {error}"),
                    };
                    store
                        .finish(attempt.id, &Ending::new(Outcome::Busy, 1))
                        .await
                        .unwrap();
                    started.lock().unwrap().push((index, number.number));
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let started = started.lock().unwrap().clone();
    let unique: HashSet<&str> = started.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(started.len(), n, "every number started once");
    assert_eq!(unique.len(), n);
    if fixture.shared() {
        for index in 0..3 {
            assert!(
                started.iter().any(|(i, _)| *i == index),
                "dialer {index} got numbers"
            );
        }
    }
    let counts = first.counts().await.unwrap();
    assert_eq!((counts.done, counts.pending), (n as u64, 0));
    let report: Vec<_> = first.attempts().try_collect().await.unwrap();
    assert_eq!(report.len(), n);
    assert!(report.iter().all(|r| r.attempt == 1));
    for store in &stores {
        store.close().await;
    }
}

/// MySQL's own refusals: a database that does not exist (what to do, the password never
/// shown), a wrong password, another program's database.
#[tokio::test]
async fn mariadb_refusals_say_what_to_fix_without_the_password() {
    let server = ari_lab::mariadb::MariaDb::get();
    let missing = MySqlTarget::Url(format!(
        "mysql://{}:{}@127.0.0.1:{}/no_such_database_here",
        server.user, server.password, server.port
    ));
    let error = Store::open_mysql(&missing, "spring").await.unwrap_err();
    let message = outbound_dialer::app::error_chain(&error);
    assert!(matches!(error, StoreError::Open { .. }), "{message}");
    assert!(message.contains("CREATE DATABASE"), "{message}");
    assert!(!message.contains(&server.password), "{message}");
    assert!(message.contains("mysql://lab:***@127.0.0.1:"), "{message}");

    let db = server.database("refusals");
    let wrong = MySqlTarget::Url(format!(
        "mysql://{}:not-the-password@127.0.0.1:{}/{}",
        server.user, server.port, db.name
    ));
    let message =
        outbound_dialer::app::error_chain(&Store::open_mysql(&wrong, "spring").await.unwrap_err());
    assert!(!message.contains("not-the-password"), "{message}");
    assert!(message.contains("Access denied"), "{message}");

    db.sql("CREATE TABLE customers (id INT)").unwrap();
    let foreign = MySqlTarget::Url(db.url.clone());
    let error = Store::open_mysql(&foreign, "spring").await.unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");
    assert!(
        db.sql("SHOW TABLES").unwrap().trim() == "customers",
        "another program's database is left alone"
    );
}
