//! What is SQLite's own in the store: connection settings, the write lock, the conflict
//! clause, the schema's DDL and the check that a file is a store at all. A MySQL backend
//! gets a module like this one; the statements in `sql.rs` serve both.

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Row as _;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

/// Versions and DDL, oldest first; a released migration is never edited (its checksum is
/// stored), a change is a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "campaign numbers attempts",
    include_str!("migrations/sqlite/0001_campaign_numbers_attempts.sql"),
)];

/// SQLite's `BEGIN` takes the write lock at the first write, and a reader that must become
/// a writer then fails at once instead of waiting; `IMMEDIATE` takes it up front, so a
/// busy file (another process writing) is waited for with the busy timeout.
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Ends the multi-row number insert: a number already stored is skipped, not an error.
pub(super) const IGNORE_DUPLICATE_NUMBERS: &str = " ON CONFLICT (number) DO NOTHING";

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

/// The schema's migrations, embedded in the binary.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        description.into(),
                        MigrationType::Simple,
                        sql.into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator that brings a file to the current schema.
pub(super) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}
