//! The store as the calls' [`AttemptLog`].

use futures::FutureExt as _;
use futures::future::BoxFuture;

use crate::call::{AttemptLog, CallEnd, LogError};
use crate::ids::AttemptIds;
use crate::record::UnixMillis;
use crate::rules::clock::from_unix_millis;
use crate::rules::retry::RetryPolicy;
use crate::store::{AttemptId, Ending, Store};

/// Writes a call's progress to the campaign's store.
pub(super) struct StoreLog {
    pub(super) store: Store,
    /// Retries are stored with the attempt's end, in its transaction.
    pub(super) retry: RetryPolicy,
}

fn failed(error: crate::store::StoreError) -> LogError {
    LogError(error.to_string())
}

impl AttemptLog for StoreLog {
    fn answered(&self, attempt_id: i64, at: UnixMillis) -> BoxFuture<'_, Result<(), LogError>> {
        async move {
            self.store
                .answered(AttemptId(attempt_id), at)
                .await
                .map(drop)
                .map_err(failed)
        }
        .boxed()
    }

    fn live(&self, attempt_id: i64, at: UnixMillis) -> BoxFuture<'_, Result<(), LogError>> {
        async move {
            self.store
                .live(AttemptId(attempt_id), at)
                .await
                .map(drop)
                .map_err(failed)
        }
        .boxed()
    }

    fn connected<'a>(
        &'a self,
        attempt_id: i64,
        at: UnixMillis,
        ids: &'a AttemptIds,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            self.store
                .connected(
                    AttemptId(attempt_id),
                    at,
                    &ids.target,
                    &ids.bridge,
                    Some(&ids.recording),
                )
                .await
                .map(drop)
                .map_err(failed)
        }
        .boxed()
    }

    fn finished<'a>(
        &'a self,
        attempt_id: i64,
        end: &'a CallEnd,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            let ending = Ending {
                outcome: end.outcome,
                cause: end.cause,
                cause_text: end.cause_text.clone(),
                message: end.message.clone(),
                ended_at: end.ended_at,
            };
            // Whether (and when) the number is dialled again is stored with the end: a
            // crash between the two would lose the retry.
            let retry_at = if self.retry.enabled() {
                let attempt = self
                    .store
                    .attempt(AttemptId(attempt_id))
                    .await
                    .map_err(failed)?
                    .record
                    .attempt;
                let ended = from_unix_millis(end.ended_at.max(crate::store::unix_millis_now()));
                self.retry
                    .next_attempt_at(end.outcome, attempt, ended)
                    .map(|due| due.timestamp_millis())
            } else {
                None
            };
            self.store
                .finish_or_retry(AttemptId(attempt_id), &ending, retry_at)
                .await
                .map(drop)
                .map_err(failed)
        }
        .boxed()
    }

    fn event(
        &self,
        attempt_id: i64,
        kind: crate::store::CallEventKind,
        at: UnixMillis,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        async move {
            self.store
                .event(AttemptId(attempt_id), kind, at, None)
                .await
                .map_err(failed)
        }
        .boxed()
    }

    fn recording_saved<'a>(
        &'a self,
        attempt_id: i64,
        file: &'a str,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            self.store
                .set_recording_file(AttemptId(attempt_id), file)
                .await
                .map_err(failed)
        }
        .boxed()
    }
}
