//! The store's statements. They are plain SQL with `?` placeholders that SQLite and MySQL
//! both accept, so both backends run them; what differs per database lives in its own
//! module (`sqlite.rs`, `mysql.rs`): connection set-up, the write lock, the conflict
//! clause, row locks, DDL.

/// The attempt columns (`a`) and their number's (`n`), in the order `decode_attempt` reads.
macro_rules! attempt_select {
    () => {
        "SELECT a.id, a.number_id, a.attempt, a.channel_id, a.state, a.outcome, a.cause, \
         a.cause_text, a.message, a.originated_at, a.answered_at, a.target_connected_at, \
         a.ended_at, a.target_channel_id, a.bridge_id, a.recording_name, a.recording_file, \
         n.number, n.data, a.dialer, a.asterisk, a.live_at \
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

/// After the backend's `INSERT` (or `INSERT IGNORE`), followed by `(?, ?, ?)` once per
/// row and the backend's ignore-duplicates clause.
pub(super) const INSERT_NUMBERS: &str = " INTO numbers (number, data, line) VALUES ";
pub(super) const INSERT_NUMBERS_ROW: &str = "(?, ?, ?)";

pub(super) const NEXT_PENDING: &str = "SELECT id, number, data FROM numbers \
     WHERE state = 'pending' AND (not_before IS NULL OR not_before <= ?) ORDER BY id LIMIT ?";
/// A pending number nobody holds: unclaimed, or claimed by the asking dialer (first `?`),
/// or by one that stopped or whose lease ran out (second `?`: now), and not waiting for a
/// time (third `?`: now; a retry's delay, a calling window). The subquery reads `dialers`
/// without locking it.
macro_rules! claimable {
    () => {
        "state = 'pending' AND (claimed_by IS NULL OR claimed_by = ? OR claimed_by NOT IN \
         (SELECT id FROM dialers WHERE stopped_at IS NULL AND lease_until >= ?)) \
         AND (not_before IS NULL OR not_before <= ?)"
    };
}

/// The first claimable numbers in list order and their claimer (NULL: none), read without
/// locking anything: the candidates of a claim.
pub(super) const CLAIM_CANDIDATES: &str = concat!(
    "SELECT id, claimed_by FROM numbers WHERE ",
    claimable!(),
    " ORDER BY id LIMIT ?"
);
/// The claim's locking read: the candidates still claimable, in list order, skipping those
/// another dialer is claiming (the backend's row-lock clause, `FOR UPDATE SKIP LOCKED` on
/// MySQL, ends it), so dialers claiming at once get other rows and none waits. It must also
/// leave alone the rows another dialer claimed after the candidates were read, which that
/// dialer starts at once: InnoDB locks a row before it checks the `WHERE`, and through a
/// secondary index it keeps the lock of a row it then rejects until the claim commits
/// (MariaDB, left to itself, read these rows through `numbers_state_id`, and a dialer's
/// `begin_attempt` of a number it had just claimed waited for another's claim). Hence
/// two forms, each after `CLAIM_LOCK`, an index hint of the backend's, `?` once per
/// candidate:
/// - candidates all unclaimed (the usual case): [`CLAIM_LOCK_UNCLAIMED`] by the backend's
///   `BY_CLAIMER` index (claimed_by, id), then [`CLAIM_LOCK_UNCLAIMED_TAIL`]: a row claimed
///   since has left the `claimed_by IS NULL` range, so it is never locked, not even for
///   a moment;
/// - some candidates claimed (this dialer's unstarted claims, a gone dialer's):
///   [`CLAIM_LOCK_IDS`] by the backend's `BY_PRIMARY_KEY`, then [`CLAIM_LOCK_TAIL`]: a
///   rejected row's lock goes at once, though a row claimed since is locked for that
///   moment.
pub(super) const CLAIM_LOCK: &str = "SELECT id, number, data FROM numbers";
/// See [`CLAIM_LOCK`].
pub(super) const CLAIM_LOCK_UNCLAIMED: &str = " WHERE claimed_by IS NULL AND id IN (";
/// See [`CLAIM_LOCK`]: `state` and `not_before` as in `claimable!` (first `?`: now).
pub(super) const CLAIM_LOCK_UNCLAIMED_TAIL: &str = ") AND state = 'pending' \
     AND (not_before IS NULL OR not_before <= ?) ORDER BY id LIMIT ?";
/// See [`CLAIM_LOCK`].
pub(super) const CLAIM_LOCK_IDS: &str = " WHERE id IN (";
/// See [`CLAIM_LOCK`].
pub(super) const CLAIM_LOCK_TAIL: &str = concat!(") AND ", claimable!(), " ORDER BY id LIMIT ?");
/// Followed by `?` once per claimed row, comma separated, and `)`. By primary key only:
/// the rows are this transaction's already.
pub(super) const CLAIM: &str = "UPDATE numbers SET claimed_by = ? WHERE id IN (";
/// Followed by the backend's row-lock clause: the number's row stays locked until the
/// attempt is written, so two dialers cannot both start it.
pub(super) const NUMBER_FOR_ATTEMPT: &str = "SELECT number, data, state, \
     (SELECT COALESCE(MAX(attempt), 0) FROM attempts WHERE number_id = ?), claimed_by, \
     (SELECT lease_until FROM dialers WHERE id = numbers.claimed_by AND stopped_at IS NULL), \
     (SELECT source FROM dnc WHERE dnc.number = numbers.number) \
     FROM numbers WHERE id = ?";
pub(super) const INSERT_ATTEMPT: &str = "INSERT INTO attempts (number_id, attempt, channel_id, state, originated_at, dialer, asterisk) \
     VALUES (?, ?, ?, 'dialing', ?, ?, ?)";
pub(super) const SET_NUMBER_DIALING: &str = "UPDATE numbers SET state = 'dialing', claimed_by = ? \
     WHERE id = ? AND state = 'pending'";
pub(super) const REQUEUE: &str = "UPDATE numbers SET state = 'pending', claimed_by = NULL \
     WHERE id = ? AND state = 'done'";
pub(super) const NUMBER_EXISTS: &str = "SELECT 1 FROM numbers WHERE id = ?";
/// A done number back in the queue, not to be claimed before `not_before` (a retry).
pub(super) const REQUEUE_AT: &str = "UPDATE numbers SET state = 'pending', claimed_by = NULL, \
     not_before = ? WHERE id = ? AND state = 'done'";
/// A pending number let go until `not_before` (outside its calling window).
pub(super) const DEFER: &str =
    "UPDATE numbers SET claimed_by = NULL, not_before = ? WHERE id = ? AND state = 'pending'";
/// The next time a waiting number may be claimed.
pub(super) const NEXT_NOT_BEFORE: &str =
    "SELECT MIN(not_before) FROM numbers WHERE state = 'pending' AND not_before > ?";
/// An attempt that never reached Asterisk is taken back: its number is pending again.
pub(super) const VOID_ATTEMPT_NUMBER: &str = "UPDATE numbers SET state = 'pending' \
     WHERE id = (SELECT number_id FROM attempts WHERE id = ? AND state = 'dialing')";
pub(super) const VOID_ATTEMPT_EVENTS: &str = "DELETE FROM call_events \
     WHERE attempt_id = (SELECT id FROM attempts WHERE id = ? AND state = 'dialing')";
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
/// An ended attempt's number back in the queue for a retry, not claimed before `?`.
pub(super) const SET_NUMBER_RETRY: &str = "UPDATE numbers SET state = 'pending', claimed_by = NULL, \
     not_before = ? WHERE id = (SELECT number_id FROM attempts WHERE id = ?)";
pub(super) const SET_RECORDING_FILE: &str = "UPDATE attempts SET recording_file = ? WHERE id = ?";
pub(super) const ATTEMPT_EXISTS: &str = "SELECT 1 FROM attempts WHERE id = ?";

/// Unfinished attempts of dialers that are gone (lease run out, stopped, unknown), and of
/// none; never the asking dialer's own.
pub(super) const ORPHANED: &str = concat!(
    attempt_select!(),
    " LEFT JOIN dialers d ON d.id = a.dialer \
     WHERE a.state IN ('dialing', 'answered', 'connected') \
     AND (a.dialer IS NULL OR (a.dialer <> ? AND (d.id IS NULL OR d.lease_until < ?))) \
     ORDER BY a.id"
);
/// Moves an unfinished attempt to another dialer, if it still has the dialer it had.
pub(super) const TAKE_OVER: &str = "UPDATE attempts SET dialer = ?, asterisk = COALESCE(asterisk, ?) \
     WHERE id = ? AND state <> 'ended' AND COALESCE(dialer, '') = ?";

pub(super) const INSERT_DIALER: &str = "INSERT INTO dialers (id, app, asterisk, host, pid, max_cc, started_at, lease_until) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
pub(super) const UPDATE_DIALER: &str = "UPDATE dialers SET app = ?, asterisk = ?, max_cc = ?, lease_until = ?, stopped_at = NULL \
     WHERE id = ?";
pub(super) const RENEW_DIALER: &str =
    "UPDATE dialers SET lease_until = ? WHERE id = ? AND stopped_at IS NULL";
pub(super) const STOP_DIALER: &str =
    "UPDATE dialers SET lease_until = ?, stopped_at = ? WHERE id = ?";
/// Every dialer is gone (and so are their claims): run when SQLite's lock proves no other
/// process has the file.
pub(super) const STOP_ALL_DIALERS: &str = "UPDATE dialers SET lease_until = ?, stopped_at = COALESCE(stopped_at, ?) WHERE lease_until >= ? OR stopped_at IS NULL";
/// The dialers alive now (their lease runs), with their Asterisk.
pub(super) const LIVE_DIALERS: &str = "SELECT id, app, asterisk, host, pid, max_cc, lease_until FROM dialers \
     WHERE stopped_at IS NULL AND lease_until >= ? ORDER BY started_at, id";

pub(super) const INSERT_EVENT: &str = "INSERT INTO call_events (attempt_id, at, kind, cause, detail, dialer) VALUES (?, ?, ?, ?, ?, ?)";
pub(super) const EVENTS_OF: &str = "SELECT attempt_id, at, kind, cause, detail, dialer FROM call_events \
     WHERE attempt_id = ? ORDER BY id";

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

/// Whether a number is pending or being dialled: one index probe, however large the list.
pub(super) const ANY_OPEN_NUMBER: &str =
    "SELECT 1 FROM numbers WHERE state IN ('pending', 'dialing') LIMIT 1";
pub(super) const COUNT_NUMBERS: &str = "SELECT state, COUNT(*) FROM numbers GROUP BY state";
pub(super) const COUNT_OUTCOMES: &str =
    "SELECT outcome, COUNT(*) FROM attempts WHERE state = 'ended' GROUP BY outcome";
/// Attempts ended since a time, and the first of them: the campaign's pace.
pub(super) const RECENT_ENDS: &str =
    "SELECT COUNT(*), MIN(ended_at) FROM attempts WHERE ended_at >= ?";

/// After the backend's `INSERT` (or `INSERT IGNORE`), followed by `(?, ?, ?)` once per
/// row and the backend's ignore-duplicates clause (`dnc`'s key is `number` too): a number
/// already on the list keeps its first source and time.
pub(super) const INSERT_DNC: &str = " INTO dnc (number, source, added_at) VALUES ";
pub(super) const INSERT_DNC_ROW: &str = "(?, ?, ?)";
/// One primary-key probe: whether a number is on the do-not-call list.
pub(super) const IS_DNC: &str = "SELECT source FROM dnc WHERE number = ?";
pub(super) const COUNT_DNC: &str = "SELECT COUNT(*) FROM dnc";
/// One do-not-call entry by its number: where it came from, when (Unix ms).
pub(super) const DNC_ENTRY: &str = "SELECT source, added_at FROM dnc WHERE number = ?";
/// Takes a number off the do-not-call list.
pub(super) const DELETE_DNC: &str = "DELETE FROM dnc WHERE number = ?";
/// Pending numbers of the list that are on the do-not-call list (counted at import).
pub(super) const COUNT_PENDING_DNC: &str =
    "SELECT COUNT(*) FROM numbers n JOIN dnc d ON d.number = n.number WHERE n.state = 'pending'";
/// An attempt that never reached Asterisk and never will (a DNC number): ended at once,
/// no `originated_at`.
pub(super) const INSERT_ATTEMPT_WITHOUT_CALL: &str = "INSERT INTO attempts (number_id, attempt, channel_id, state, outcome, cause, cause_text, message, ended_at, dialer, asterisk) \
     VALUES (?, ?, ?, 'ended', ?, ?, ?, ?, ?, ?, ?)";
pub(super) const SET_NUMBER_DONE_WITHOUT_CALL: &str = "UPDATE numbers SET state = 'done', claimed_by = ? \
     WHERE id = ? AND state = 'pending'";

/// When a live callee was there (the answer, or AMD's verdict): the abandon rate counts
/// from it.
pub(super) const SET_LIVE: &str =
    "UPDATE attempts SET live_at = ? WHERE id = ? AND state <> 'ended'";
/// Live-answered attempts whose fate is known (ended, or connected) and the abandoned ones
/// (no target, or one connected more than the first `?` ms after the live moment), per UTC
/// day of the live moment, from the second `?` on. `%` and `COUNT(CASE ...)` give integers
/// in both dialects; the index `attempts_live` covers the whole query.
pub(super) const ABANDON_BY_DAY: &str = "SELECT live_at - live_at % 86400000, COUNT(*), \
     COUNT(CASE WHEN target_connected_at IS NULL OR target_connected_at - live_at > ? THEN 1 END) \
     FROM attempts WHERE live_at >= ? AND (state = 'ended' OR target_connected_at IS NOT NULL) \
     GROUP BY live_at - live_at % 86400000 ORDER BY 1";
