//! What is SQLite's own in the store: connection settings, the write lock, the conflict
//! clause, the schema's DDL and the check that a file is a store at all. `mysql.rs` is its
//! twin; the statements in `sql.rs` serve both.
//!
//! One process per file: SQLite has no row locks to share a campaign between dialers
//! (`lock.rs` refuses a second one); several dialers need MySQL.

use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

/// Versions and DDL, oldest first (the same versions as MySQL's).
const MIGRATIONS: super::embedded::Migrations = &[
    (
        1,
        "campaign numbers attempts",
        include_str!("migrations/sqlite/0001_campaign_numbers_attempts.sql"),
    ),
    (
        2,
        "claims dialers call events",
        include_str!("migrations/sqlite/0002_claims_dialers_call_events.sql"),
    ),
    (
        3,
        "not before",
        include_str!("migrations/sqlite/0003_not_before.sql"),
    ),
    (4, "dnc", include_str!("migrations/sqlite/0004_dnc.sql")),
    (
        5,
        "live at",
        include_str!("migrations/sqlite/0005_live_at.sql"),
    ),
];

/// SQLite's `BEGIN` takes the write lock at the first write, and a reader that must become
/// a writer then fails at once instead of waiting; `IMMEDIATE` takes it up front, so a
/// busy file (another process writing) is waited for with the busy timeout.
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Starts the multi-row number insert.
pub(super) const INSERT_NUMBERS_VERB: &str = "INSERT";
/// Ends the multi-row number insert: a number already stored is skipped, not an error.
pub(super) const IGNORE_DUPLICATE_NUMBERS: &str = " ON CONFLICT (number) DO NOTHING";
/// Row locks: none, `BEGIN IMMEDIATE` holds the whole file.
pub(super) const LOCK_ROW: &str = "";
/// As [`LOCK_ROW`].
pub(super) const LOCK_ROWS_SKIP_LOCKED: &str = "";
/// No index hints (MySQL's keep a claim off other dialers' rows): SQLite has no row locks.
pub(super) const BY_CLAIMER: &str = "";
/// As [`BY_CLAIMER`].
pub(super) const BY_PRIMARY_KEY: &str = "";

/// SQLite's limit on bound values per statement is 32766; three per number row.
pub(super) const ROWS_PER_INSERT: usize = 1000;

/// SQLite's result code for a file that is not a database.
const SQLITE_NOTADB: &str = "26";

/// How both pools open the file.
///
/// WAL lets other tools and the report read while the dialer writes. `synchronous=FULL`
/// syncs the WAL at every commit: `NORMAL` already survives `kill -9` (committed pages are
/// in the OS cache), but a power cut could drop the last commits, and the attempt row
/// written before an originate must not vanish after the call was made, or the number
/// would look undialled and be called again. It costs one fsync per commit, a few per
/// call, and import commits in large batches.
pub(super) fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
}

/// Whether a connection failed because the file is not an SQLite database.
pub(super) fn is_not_a_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == SQLITE_NOTADB)
}

/// Whether the database holds tables but no migration history: some other program's file,
/// which the migrations must not touch.
pub(super) async fn is_foreign(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()?;
    Ok(!tables.is_empty() && !tables.iter().any(|name| name == "_sqlx_migrations"))
}

/// The migrator that brings a file to the current schema.
pub(super) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    super::embedded::migrator(MIGRATIONS).await
}
