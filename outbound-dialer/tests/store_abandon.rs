//! `Store::abandon_counts` (store v5, `attempts.live_at`): the campaign's live-answered and
//! abandoned calls per UTC day, which every dialer of a campaign throttles on — on SQLite
//! and on the lab's MariaDB.

mod store_fixture;

use std::time::Duration;

use chrono::NaiveDate;
use outbound_dialer::outcome::Outcome;
use outbound_dialer::rules::abandon::{ABANDON_AFTER, AbandonCounts};
use outbound_dialer::rules::clock::from_unix_millis;
use outbound_dialer::store::{AttemptId, Ending, Store, unix_millis_now};
use store_fixture::Fixture;

const DAY: i64 = 86_400_000;

/// How far one attempt got: answered at `live` (and live then, unless a machine),
/// connected `connect_after` ms later, ended with `outcome` (or still up).
struct Call {
    live: Option<i64>,
    connect_after: Option<i64>,
    outcome: Option<Outcome>,
}

async fn make(store: &Store, number_index: usize, call: Call, answered: i64) -> AttemptId {
    let claimed = store.claim(100).await.unwrap();
    let number = claimed
        .iter()
        .find(|n| n.number == format!("{}", 1001 + number_index))
        .unwrap_or_else(|| panic!("number {number_index} claimable: {claimed:?}"))
        .id;
    let attempt = store
        .begin_attempt(number, |n| format!("ab-{}-{n}", number.0))
        .await
        .unwrap();
    store.answered(attempt.id, answered).await.unwrap();
    if let Some(live) = call.live {
        assert!(store.live(attempt.id, live).await.unwrap());
        if let Some(after) = call.connect_after {
            store
                .connected(attempt.id, live + after, "t", "b", Some("r"))
                .await
                .unwrap();
        }
    }
    if let Some(outcome) = call.outcome {
        store
            .finish(attempt.id, &Ending::new(outcome, answered + 10_000))
            .await
            .unwrap();
    }
    attempt.id
}

fn day(ms: i64) -> NaiveDate {
    from_unix_millis(ms).date_naive()
}

async fn live_and_abandoned_calls_are_counted_per_day(fixture: Fixture) {
    let numbers: Vec<String> = (1001..=1010).map(|n| n.to_string()).collect();
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let store = fixture.with(&numbers).await;
    let now = unix_millis_now();
    let today = now - now.rem_euclid(DAY) + 3_600_000;
    let yesterday = today - DAY;
    let long_ago = today - 40 * DAY;
    let calls = [
        // Connected 1.5 s after the answer: live, not abandoned.
        (today, Some(today), Some(1_500), Some(Outcome::Answered)),
        // Connected 2.5 s after it: abandoned (late).
        (today, Some(today), Some(2_500), Some(Outcome::Answered)),
        // No target: abandoned.
        (today, Some(today), None, Some(Outcome::TargetFailed)),
        // AMD heard a machine: answered but never live.
        (today, None, None, Some(Outcome::Machine)),
        // Still talking, connected in time: its fate is known, counted.
        (today, Some(today), Some(800), None),
        // Still waiting for its target: not counted until it is connected or ends.
        (today, Some(today), None, None),
        // AMD's verdict came 3 s after the answer; connected 1 s after it: in time.
        (
            today,
            Some(today + 3_000),
            Some(1_000),
            Some(Outcome::Answered),
        ),
        // Yesterday, abandoned.
        (
            yesterday,
            Some(yesterday),
            None,
            Some(Outcome::TargetFailed),
        ),
        // Before the 30-day window, abandoned.
        (long_ago, Some(long_ago), None, Some(Outcome::TargetFailed)),
    ];
    let mut made = Vec::new();
    for (index, (answered, live, connect_after, outcome)) in calls.into_iter().enumerate() {
        let call = Call {
            live,
            connect_after,
            outcome,
        };
        made.push((make(&store, index, call, answered).await, live));
    }
    // The live moment comes back with the attempt: a restarted dialer counts a waiting
    // callee's abandon limit from it.
    for (id, live) in &made {
        assert_eq!(store.attempt(*id).await.unwrap().live_at, *live, "{id:?}");
    }
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 2, "{unfinished:?}");
    assert!(
        unfinished.iter().all(|a| a.live_at == Some(today)),
        "{unfinished:?}"
    );
    // A number that was never answered (busy) counts nowhere.
    let busy = store.claim(100).await.unwrap()[0].id;
    let attempt = store
        .begin_attempt(busy, |n| format!("ab-{}-{n}", busy.0))
        .await
        .unwrap();
    store
        .finish(attempt.id, &Ending::new(Outcome::Busy, now))
        .await
        .unwrap();
    assert!(
        !store.live(attempt.id, now).await.unwrap(),
        "an ended attempt is not made live"
    );

    let window = today - 29 * DAY - 3_600_000;
    let counts = store.abandon_counts(window, ABANDON_AFTER).await.unwrap();
    let expected = [
        (
            day(yesterday),
            AbandonCounts {
                live: 1,
                abandoned: 1,
            },
        ),
        (
            day(today),
            AbandonCounts {
                live: 5,
                abandoned: 2,
            },
        ),
    ];
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), expected);
    // From the beginning, the old day too; with a 3 s limit the late call is in time.
    let all = store
        .abandon_counts(0, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        all[&day(long_ago)],
        AbandonCounts {
            live: 1,
            abandoned: 1
        }
    );
    assert_eq!(
        all[&day(today)],
        AbandonCounts {
            live: 5,
            abandoned: 1
        }
    );
    // Only today: one range of the index.
    let recent = store
        .abandon_counts(today - 3_600_000, ABANDON_AFTER)
        .await
        .unwrap();
    assert_eq!(recent.keys().copied().collect::<Vec<_>>(), [day(today)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    live_and_abandoned_calls_are_counted_per_day(Fixture::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb() {
    live_and_abandoned_calls_are_counted_per_day(Fixture::mariadb("abandon")).await;
}
