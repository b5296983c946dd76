//! `numbers.not_before` (store v3), what the campaign rules keep in the store: a number
//! outside its calling window is deferred, a retry is requeued for a time, and claims skip
//! both until then — on SQLite and on the lab's MariaDB.

mod store_fixture;

use std::time::Duration;

use outbound_dialer::outcome::Outcome;
use outbound_dialer::store::{Ending, PendingNumber, unix_millis_now};
use store_fixture::Fixture;

fn ids(numbers: &[PendingNumber]) -> Vec<i64> {
    numbers.iter().map(|n| n.id.0).collect()
}

async fn deferred_and_retried_numbers_wait_for_their_time(fixture: Fixture) {
    let store = fixture.with(&["1001", "1002", "1003"]).await;
    let claimed = store.claim(10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let (first, second, third) = (claimed[0].id, claimed[1].id, claimed[2].id);
    assert_eq!(store.next_not_before().await.unwrap(), None);

    // Outside its window for a minute: not claimed (by anyone) until then.
    let open = unix_millis_now() + 60_000;
    assert!(store.defer(first, open).await.unwrap());
    assert_eq!(ids(&store.claim(10).await.unwrap()), [second.0, third.0]);
    assert_eq!(store.next_not_before().await.unwrap(), Some(open));
    // A window that has opened: claimable again.
    assert!(store.defer(first, unix_millis_now() - 1).await.unwrap());
    assert_eq!(
        ids(&store.claim(10).await.unwrap()),
        [first.0, second.0, third.0]
    );
    assert_eq!(store.next_not_before().await.unwrap(), None);

    // A busy number retried in 1 s: a new attempt once due, not before.
    let attempt = store
        .begin_attempt(third, |n| format!("nb-{}-{n}", third.0))
        .await
        .unwrap();
    assert!(
        !store.defer(third, open).await.unwrap(),
        "only pending numbers wait"
    );
    let ended = unix_millis_now();
    store
        .finish(
            attempt.id,
            &Ending {
                outcome: Outcome::Busy,
                cause: Some(17),
                cause_text: None,
                message: None,
                ended_at: ended,
            },
        )
        .await
        .unwrap();
    assert!(!store.requeue_at(first, ended).await.unwrap(), "not done");
    let due = ended + 1000;
    assert!(store.requeue_at(third, due).await.unwrap());
    assert_eq!(ids(&store.claim(10).await.unwrap()), [first.0, second.0]);
    assert_eq!(store.next_not_before().await.unwrap(), Some(due));
    let wait = u64::try_from(due - unix_millis_now()).unwrap_or(0) + 50;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(
        ids(&store.claim(10).await.unwrap()),
        [first.0, second.0, third.0]
    );
    let retry = store
        .begin_attempt(third, |n| format!("nb-{}-{n}", third.0))
        .await
        .unwrap();
    assert_eq!(retry.record.attempt, 2, "a retry is a new attempt row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    deferred_and_retried_numbers_wait_for_their_time(Fixture::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb() {
    deferred_and_retried_numbers_wait_for_their_time(Fixture::mariadb("notbefore")).await;
}
