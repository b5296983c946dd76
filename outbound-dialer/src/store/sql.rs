//! The store's statements. They are plain SQL with `?` placeholders that SQLite and MySQL
//! both accept, so a second backend reuses them; what differs per database lives in its
//! own module (`sqlite.rs`): connection set-up, the write lock, conflict clauses, DDL.

/// The attempt columns (`a`) and their number's (`n`), in the order `decode_attempt` reads.
macro_rules! attempt_select {
    () => {
        "SELECT a.id, a.number_id, a.attempt, a.channel_id, a.state, a.outcome, a.cause, \
         a.cause_text, a.message, a.originated_at, a.answered_at, a.target_connected_at, \
         a.ended_at, a.target_channel_id, a.bridge_id, a.recording_name, a.recording_file, \
         n.number, n.data \
         FROM attempts a JOIN numbers n ON n.id = a.number_id"
    };
}

pub(super) const CAMPAIGN: &str =
    "SELECT name, status, input_fingerprint FROM campaign WHERE id = 1";
pub(super) const INSERT_CAMPAIGN: &str = "INSERT INTO campaign (id, name, status, input_fingerprint, created_at, updated_at) \
     VALUES (1, ?, ?, NULL, ?, ?)";
pub(super) const SET_STATUS: &str = "UPDATE campaign SET status = ?, updated_at = ? WHERE id = 1";
pub(super) const SET_FINGERPRINT: &str =
    "UPDATE campaign SET input_fingerprint = ?, updated_at = ? WHERE id = 1";

/// Followed by `(?, ?, ?)` once per row and the backend's ignore-duplicates clause.
pub(super) const INSERT_NUMBERS: &str = "INSERT INTO numbers (number, data, line) VALUES ";
pub(super) const INSERT_NUMBERS_ROW: &str = "(?, ?, ?)";

pub(super) const NEXT_PENDING: &str =
    "SELECT id, number, data FROM numbers WHERE state = 'pending' ORDER BY id LIMIT ?";
pub(super) const NUMBER_FOR_ATTEMPT: &str = "SELECT number, data, state, \
     (SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE number_id = ?) \
     FROM numbers WHERE id = ?";
pub(super) const INSERT_ATTEMPT: &str = "INSERT INTO attempts (number_id, attempt, channel_id, state, originated_at) \
     VALUES (?, ?, ?, 'dialing', ?)";
pub(super) const SET_NUMBER_DIALING: &str =
    "UPDATE numbers SET state = 'dialing' WHERE id = ? AND state = 'pending'";
pub(super) const REQUEUE: &str =
    "UPDATE numbers SET state = 'pending' WHERE id = ? AND state = 'done'";
pub(super) const NUMBER_EXISTS: &str = "SELECT 1 FROM numbers WHERE id = ?";
/// An attempt that never reached Asterisk is taken back: its number is pending again.
pub(super) const VOID_ATTEMPT_NUMBER: &str = "UPDATE numbers SET state = 'pending' \
     WHERE id = (SELECT number_id FROM attempts WHERE id = ? AND state = 'dialing')";
pub(super) const VOID_ATTEMPT: &str = "DELETE FROM attempts WHERE id = ? AND state = 'dialing'";

pub(super) const ANSWERED: &str =
    "UPDATE attempts SET state = 'answered', answered_at = ? WHERE id = ? AND state = 'dialing'";
pub(super) const CONNECTED: &str = "UPDATE attempts SET state = 'connected', target_connected_at = ?, \
     target_channel_id = ?, bridge_id = ?, recording_name = ? \
     WHERE id = ? AND state IN ('dialing', 'answered')";
pub(super) const FINISH: &str = "UPDATE attempts SET state = 'ended', outcome = ?, cause = ?, cause_text = ?, \
     message = ?, ended_at = ? WHERE id = ? AND state <> 'ended'";
pub(super) const SET_NUMBER_DONE: &str =
    "UPDATE numbers SET state = 'done' WHERE id = (SELECT number_id FROM attempts WHERE id = ?)";
pub(super) const SET_RECORDING_FILE: &str = "UPDATE attempts SET recording_file = ? WHERE id = ?";
pub(super) const ATTEMPT_EXISTS: &str = "SELECT 1 FROM attempts WHERE id = ?";

pub(super) const ATTEMPT_BY_ID: &str = concat!(attempt_select!(), " WHERE a.id = ?");
pub(super) const UNFINISHED: &str = concat!(
    attempt_select!(),
    " WHERE a.state IN ('dialing', 'answered', 'connected') ORDER BY a.id"
);
/// Ended attempts whose recording started but was never saved (a crash mid-download).
pub(super) const UNSAVED_RECORDINGS: &str = concat!(
    attempt_select!(),
    " WHERE a.state = 'ended' AND a.recording_name IS NOT NULL AND a.recording_file IS NULL \
     ORDER BY a.id"
);
/// Keyset paging in (number_id, attempt) order: the first condition is the index range,
/// the second skips what the previous page returned.
pub(super) const ATTEMPTS_PAGE: &str = concat!(
    attempt_select!(),
    " WHERE a.number_id >= ? AND (a.number_id > ? OR a.attempt > ?) \
     ORDER BY a.number_id, a.attempt LIMIT ?"
);

pub(super) const COUNT_NUMBERS: &str = "SELECT state, COUNT(*) FROM numbers GROUP BY state";
pub(super) const COUNT_OUTCOMES: &str =
    "SELECT outcome, COUNT(*) FROM attempts WHERE state = 'ended' GROUP BY outcome";
