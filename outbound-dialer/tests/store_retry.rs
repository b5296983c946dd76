//! `Store::finish_or_retry`: an attempt's end and its number's retry are one write, so a
//! crash between them cannot leave the number done without its retry — on SQLite and on
//! the lab's MariaDB.

mod store_fixture;

use outbound_dialer::outcome::Outcome;
use outbound_dialer::store::{AttemptState, Ending, PendingNumber, unix_millis_now};
use store_fixture::Fixture;

fn ids(numbers: &[PendingNumber]) -> Vec<i64> {
    numbers.iter().map(|n| n.id.0).collect()
}

async fn an_end_with_a_retry_requeues_its_number_at_once(fixture: Fixture) {
    let store = fixture.with(&["2001", "2002"]).await;
    let claimed = store.claim(10).await.unwrap();
    let (busy, other) = (claimed[0].id, claimed[1].id);
    let attempt = store
        .begin_attempt(busy, |n| format!("fr-{}-{n}", busy.0))
        .await
        .unwrap();
    let ended = unix_millis_now();
    let due = ended + 60_000;
    let end = Ending::new(Outcome::Busy, ended);
    assert!(
        store
            .finish_or_retry(attempt.id, &end, Some(due))
            .await
            .unwrap()
    );
    // Ended, and its number waits for the retry (nothing left for a second write).
    assert_eq!(
        store.attempt(attempt.id).await.unwrap().state,
        AttemptState::Ended
    );
    assert_eq!(store.next_not_before().await.unwrap(), Some(due));
    assert_eq!(ids(&store.claim(10).await.unwrap()), [other.0]);
    // An attempt ends once: ending it again schedules nothing (a later due is ignored).
    assert!(
        !store
            .finish_or_retry(attempt.id, &end, Some(due + 1))
            .await
            .unwrap()
    );
    assert_eq!(store.next_not_before().await.unwrap(), Some(due));
    // Without a retry the number is done, as `finish`.
    let last = store
        .begin_attempt(other, |n| format!("fr-{}-{n}", other.0))
        .await
        .unwrap();
    assert!(
        store
            .finish_or_retry(last.id, &Ending::new(Outcome::Busy, ended), None)
            .await
            .unwrap()
    );
    assert_eq!(store.counts().await.unwrap().pending, 1, "the retry only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    an_end_with_a_retry_requeues_its_number_at_once(Fixture::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb() {
    an_end_with_a_retry_requeues_its_number_at_once(Fixture::mariadb("finishretry")).await;
}
