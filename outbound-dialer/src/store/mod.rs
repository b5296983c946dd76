//! The campaign store: one SQLite file per campaign holding the number list, every
//! attempt and every outcome, so that a run killed at any moment resumes without losing an
//! outcome or dialling a number twice.
//!
//! The rules that make that hold:
//! - an attempt row (with its channel id) is committed before its originate is sent, in
//!   the same transaction that marks the number `dialing`; a restart finds it in
//!   [`Store::unfinished`] and reconciles it by that id (adopt the live channel, or
//!   [`Store::finish`] it as [`Outcome::Interrupted`]); [`Store::next_pending`] never
//!   returns a number that has an attempt, and [`Store::begin_attempt`] refuses one;
//! - every write is one transaction, committed and synced before the method returns;
//! - an ended attempt is never rewritten.
//!
//! Backends: SQLite is the only one today. Its particulars are in `sqlite.rs`; the
//! statements in `sql.rs` are portable, so a MySQL backend adds a module beside it and
//! turns the pools here into an enum over both.

mod lock;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt as _, TryStreamExt as _, stream};
use sqlx::Row as _;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};

use crate::numbers::{NumberEntry, normalize};
use crate::outcome::Outcome;
use crate::record::{AttemptRecord, UnixMillis};
use crate::status::RunState;

/// Numbers [`Store::import`] reads and commits per transaction: large enough that commits
/// are rare, small enough that memory does not depend on the list.
pub const IMPORT_BATCH: usize = 10_000;
/// Attempts fetched per query by [`Store::attempts`].
const ATTEMPTS_PAGE: i64 = 1_000;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A number's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumberId(pub i64);

/// An attempt's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub i64);

impl fmt::Display for NumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What went wrong with the store; every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file cannot be opened or created as an SQLite database.
    #[error("cannot open the campaign store {}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The file is not a campaign store (not SQLite, or another program's database).
    #[error(
        "{} is not an outbound-dialer campaign store (it is not SQLite, or holds another program's tables): give --db another file",
        .path.display()
    )]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The file's schema is newer than this program knows.
    #[error(
        "the campaign store {} has schema version {version}, newer than this outbound-dialer: run a newer version",
        .path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The unknown version found.
        version: i64,
    },
    /// Another process has the file open (another dialer of this campaign).
    #[error(
        "the campaign store {} is in use by another outbound-dialer (it holds {}): stop that one first, or give --db another file",
        .path.display(),
        lock::lock_path(.path).display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The file belongs to another campaign.
    #[error(
        "the campaign store {} belongs to campaign {found:?}, not {expected:?}: give --db another file, or run campaign {found:?}",
        .path.display()
    )]
    OtherCampaign {
        /// The file.
        path: PathBuf,
        /// The campaign stored in it.
        found: String,
        /// The campaign asked for.
        expected: String,
    },
    /// A query failed.
    #[error("campaign store {}: cannot {action}", .path.display())]
    Query {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The import's input failed part-way; the batches before it are stored.
    #[error("campaign store {}: the import stopped because its input failed", .path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// The input's error.
        #[source]
        source: Cause,
    },
    /// No number has this id.
    #[error("campaign store {}: no number has id {number_id}", .path.display())]
    UnknownNumber {
        /// The file.
        path: PathBuf,
        /// The id asked for.
        number_id: NumberId,
    },
    /// No attempt has this id.
    #[error("campaign store {}: no attempt has id {attempt_id}", .path.display())]
    UnknownAttempt {
        /// The file.
        path: PathBuf,
        /// The id asked for.
        attempt_id: AttemptId,
    },
    /// The number is being dialled or done; dialling it again is refused.
    #[error(
        "campaign store {}: number {number_id} is {state}, not pending: it is not dialled again",
        .path.display()
    )]
    NotPending {
        /// The file.
        path: PathBuf,
        /// The number.
        number_id: NumberId,
        /// Its state (`dialing` or `done`).
        state: String,
    },
    /// Another attempt already has this channel id.
    #[error("campaign store {}: channel id {channel_id:?} belongs to another attempt", .path.display())]
    ChannelIdTaken {
        /// The file.
        path: PathBuf,
        /// The id.
        channel_id: String,
    },
    /// A stored value this program does not accept (edited by hand, or a newer writer).
    #[error("campaign store {}: {what} {value:?} is not valid", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// The value found.
        value: String,
    },
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Numbers added to the campaign.
    pub inserted: u64,
    /// Numbers dropped because the campaign had them already (repeated in the input, or
    /// imported by an earlier run).
    pub duplicates: u64,
}

/// A number to dial next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNumber {
    /// Its row id, for [`Store::begin_attempt`].
    pub id: NumberId,
    /// The normalised number.
    pub number: String,
    /// Its line's other columns, for the call's channel variables.
    pub data: BTreeMap<String, String>,
}

/// Where an attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptState {
    /// Written, originate sent or about to be.
    Dialing,
    /// The callee answered.
    Answered,
    /// The target joined the bridge.
    Connected,
    /// Over, with an outcome.
    Ended,
}

impl AttemptState {
    /// The name stored in the `attempts.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Dialing => "dialing",
            AttemptState::Answered => "answered",
            AttemptState::Connected => "connected",
            AttemptState::Ended => "ended",
        }
    }

    fn parse(name: &str) -> Option<AttemptState> {
        [
            AttemptState::Dialing,
            AttemptState::Answered,
            AttemptState::Connected,
            AttemptState::Ended,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One stored attempt with its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Its row id, for the methods that update it.
    pub id: AttemptId,
    /// Its number's row id.
    pub number_id: NumberId,
    /// Its state.
    pub state: AttemptState,
    /// Everything known about it.
    pub record: AttemptRecord,
}

/// How an attempt ended, for [`Store::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The outcome.
    pub outcome: Outcome,
    /// Q.850 cause of the callee's channel, when known.
    pub cause: Option<i64>,
    /// Asterisk's text for the cause.
    pub cause_text: Option<String>,
    /// Asterisk's message (a refused originate, an interruption).
    pub message: Option<String>,
    /// When it ended.
    pub ended_at: UnixMillis,
}

/// Counts for the progress display and the API, from aggregate queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Numbers in the campaign.
    pub total: u64,
    /// Numbers not dialled yet.
    pub pending: u64,
    /// Numbers with an attempt in progress.
    pub in_progress: u64,
    /// Numbers whose last attempt has ended.
    pub done: u64,
    /// Ended attempts by outcome; every outcome is present, zero when none.
    pub by_outcome: BTreeMap<Outcome, u64>,
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_millis_now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// An open campaign store.
///
/// Writes go through one connection, so the dialer's own writes queue in the pool instead
/// of contending for SQLite's lock; reads (counts, the report, the next numbers) use two
/// others and never wait for a write, thanks to WAL.
///
/// One process at a time: opening takes a lock that a second dialer on the same file
/// gets [`StoreError::InUse`] for (other programs can still read the file with SQLite).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    campaign: String,
    writer: SqlitePool,
    reader: SqlitePool,
    lock: lock::CampaignLock,
}

impl Store {
    /// Opens the campaign's store at `path`, creating it if missing and bringing its
    /// schema up to date.
    ///
    /// # Errors
    /// A file that cannot be opened, is not a store, has a newer schema, or belongs to
    /// another campaign.
    pub async fn open(path: &Path, campaign: &str) -> Result<Store, StoreError> {
        let open_error = |source: sqlx::Error| {
            if sqlite::is_not_a_database(&source) {
                StoreError::NotAStore {
                    path: path.to_owned(),
                }
            } else {
                StoreError::Open {
                    path: path.to_owned(),
                    source: source.into(),
                }
            }
        };
        let lock = match lock::CampaignLock::acquire(path) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                return Err(StoreError::InUse {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: path.to_owned(),
                    source: source.into(),
                });
            }
        };
        let options = sqlite::options(path);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        if sqlite::is_foreign(&writer).await.map_err(open_error)? {
            writer.close().await;
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
            });
        }
        let migrated = match sqlite::migrator().await {
            Ok(migrator) => migrator.run(&writer).await,
            Err(error) => Err(error),
        };
        if let Err(error) = migrated {
            writer.close().await;
            return Err(match error {
                sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::NewerSchema {
                    path: path.to_owned(),
                    version,
                },
                error => StoreError::Open {
                    path: path.to_owned(),
                    source: error.into(),
                },
            });
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let store = Store {
            path: path.to_owned(),
            campaign: campaign.to_owned(),
            writer,
            reader,
            lock,
        };
        if let Err(error) = store.claim_campaign().await {
            store.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// Writes the campaign row of a new file, or checks that an old file is this
    /// campaign's.
    async fn claim_campaign(&self) -> Result<(), StoreError> {
        let action = "read the campaign row";
        let mut tx = self.write_tx(action).await?;
        let found = sqlx::query(sql::CAMPAIGN)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.query_error(action))?;
        match found {
            Some(row) => {
                let found: String = row.try_get(0).map_err(self.query_error(action))?;
                if found != self.campaign {
                    return Err(StoreError::OtherCampaign {
                        path: self.path.clone(),
                        found,
                        expected: self.campaign.clone(),
                    });
                }
            }
            None => {
                let now = unix_millis_now();
                sqlx::query(sql::INSERT_CAMPAIGN)
                    .bind(&self.campaign)
                    .bind(RunState::Idle.as_str())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query_error("write the campaign row"))?;
            }
        }
        tx.commit().await.map_err(self.query_error(action))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The campaign's name.
    pub fn campaign(&self) -> &str {
        &self.campaign
    }

    /// Closes the connections (SQLite checkpoints the WAL when the last one closes) and
    /// lets another process open the file; every clone of this store is closed with it.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        self.lock.release();
    }

    fn query_error(&self, action: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            action,
            source: source.into(),
        }
    }

    fn corrupt(&self, what: &'static str, value: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
            value: value.into(),
        }
    }

    async fn write_tx(
        &self,
        action: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer
            .begin_with(sqlite::BEGIN_WRITE)
            .await
            .map_err(self.query_error(action))
    }

    /// Adds the input's numbers, skipping those the campaign has already. Reads the input
    /// [`IMPORT_BATCH`] entries at a time and commits each batch, so memory does not grow
    /// with the list and an interrupted import is simply run again.
    ///
    /// The input is read on the calling task: a local file, read at start-up.
    ///
    /// # Errors
    /// An input error (after the batches before it were stored) or a failed write.
    pub async fn import<I, E>(&self, entries: I) -> Result<ImportSummary, StoreError>
    where
        I: IntoIterator<Item = Result<NumberEntry, E>>,
        E: Into<Cause>,
    {
        let action = "import numbers";
        let full_insert = insert_numbers_sql(sqlite::ROWS_PER_INSERT);
        let mut summary = ImportSummary::default();
        let mut entries = entries.into_iter();
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        loop {
            let mut failed = None;
            for entry in entries.by_ref() {
                match entry {
                    Ok(entry) => batch.push(entry),
                    Err(error) => {
                        failed = Some(error.into());
                        break;
                    }
                }
                if batch.len() == IMPORT_BATCH {
                    break;
                }
            }
            if let Some(source) = failed {
                return Err(StoreError::Input {
                    path: self.path.clone(),
                    source,
                });
            }
            if batch.is_empty() {
                return Ok(summary);
            }
            let mut tx = self.write_tx(action).await?;
            while !batch.is_empty() {
                let rows = batch.len().min(sqlite::ROWS_PER_INSERT);
                let tail;
                let statement = if rows == sqlite::ROWS_PER_INSERT {
                    full_insert.as_str()
                } else {
                    tail = insert_numbers_sql(rows);
                    tail.as_str()
                };
                let mut query = sqlx::query(statement);
                for entry in batch.drain(..rows) {
                    query = query
                        .bind(entry.number)
                        .bind(data_json(&entry.data))
                        .bind(i64::try_from(entry.line).unwrap_or(i64::MAX));
                }
                let inserted = query
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query_error(action))?
                    .rows_affected();
                summary.inserted += inserted;
                summary.duplicates += rows as u64 - inserted;
            }
            tx.commit().await.map_err(self.query_error(action))?;
        }
    }

    /// The fingerprint of the input last imported completely, if any.
    ///
    /// # Errors
    /// A failed read.
    pub async fn input_fingerprint(&self) -> Result<Option<String>, StoreError> {
        let action = "read the input fingerprint";
        let row = sqlx::query(sql::CAMPAIGN)
            .fetch_one(&self.reader)
            .await
            .map_err(self.query_error(action))?;
        row.try_get(2).map_err(self.query_error(action))
    }

    /// Records that the input with this fingerprint is imported completely; set it after
    /// [`Store::import`] returns, so that an interrupted import is redone.
    ///
    /// # Errors
    /// A failed write.
    pub async fn set_input_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        sqlx::query(sql::SET_FINGERPRINT)
            .bind(fingerprint)
            .bind(unix_millis_now())
            .execute(&self.writer)
            .await
            .map_err(self.query_error("write the input fingerprint"))?;
        Ok(())
    }

    /// The campaign's run state as stored.
    ///
    /// # Errors
    /// A failed read or an unknown state name.
    pub async fn status(&self) -> Result<RunState, StoreError> {
        let action = "read the campaign status";
        let row = sqlx::query(sql::CAMPAIGN)
            .fetch_one(&self.reader)
            .await
            .map_err(self.query_error(action))?;
        let name: String = row.try_get(1).map_err(self.query_error(action))?;
        [
            RunState::Idle,
            RunState::Running,
            RunState::Paused,
            RunState::Stopping,
            RunState::Finished,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
        .ok_or_else(|| self.corrupt("campaign status", name))
    }

    /// Stores the campaign's run state, for other tools to see.
    ///
    /// # Errors
    /// A failed write.
    pub async fn set_status(&self, state: RunState) -> Result<(), StoreError> {
        sqlx::query(sql::SET_STATUS)
            .bind(state.as_str())
            .bind(unix_millis_now())
            .execute(&self.writer)
            .await
            .map_err(self.query_error("write the campaign status"))?;
        Ok(())
    }

    /// Up to `limit` numbers that have never been dialled, in list order. Calling it again
    /// before [`Store::begin_attempt`] returns the same numbers.
    ///
    /// # Errors
    /// A failed read, or a stored number that is not a valid number (never dialled).
    pub async fn next_pending(&self, limit: u32) -> Result<Vec<PendingNumber>, StoreError> {
        let action = "read the next numbers";
        let rows = sqlx::query(sql::NEXT_PENDING)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(self.query_error(action))?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0).map_err(self.query_error(action))?;
                let number: String = row.try_get(1).map_err(self.query_error(action))?;
                let data: String = row.try_get(2).map_err(self.query_error(action))?;
                Ok(PendingNumber {
                    id: NumberId(id),
                    number: self.checked_number(number)?,
                    data: self.decode_data(&data)?,
                })
            })
            .collect()
    }

    /// The file is the last gate before a dial string: a row edited by hand must not carry
    /// anything but digits to an originate.
    fn checked_number(&self, number: String) -> Result<String, StoreError> {
        match normalize(&number) {
            Ok(normalized) if normalized == number => Ok(number),
            _ => Err(self.corrupt("number", number)),
        }
    }

    fn decode_data(&self, data: &str) -> Result<BTreeMap<String, String>, StoreError> {
        serde_json::from_str(data).map_err(|_| self.corrupt("number data", data))
    }

    /// Writes attempt N+1 at a pending number, state `dialing`, with the channel id
    /// `channel_id_of(N+1)`, and marks the number `dialing`, in one transaction. Call it
    /// before sending the originate: the id on disk is what a restart reconciles.
    ///
    /// # Errors
    /// [`StoreError::NotPending`] for a number being dialled or done (so a stale list does
    /// not dial twice), [`StoreError::ChannelIdTaken`], an unknown number, a failed write.
    pub async fn begin_attempt(
        &self,
        number_id: NumberId,
        channel_id_of: impl FnOnce(u32) -> String,
    ) -> Result<Attempt, StoreError> {
        let action = "begin an attempt";
        let error = self.query_error(action);
        let mut tx = self.write_tx(action).await?;
        let row = sqlx::query(sql::NUMBER_FOR_ATTEMPT)
            .bind(number_id.0)
            .bind(number_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(&error)?
            .ok_or_else(|| StoreError::UnknownNumber {
                path: self.path.clone(),
                number_id,
            })?;
        let number: String = row.try_get(0).map_err(&error)?;
        let data: String = row.try_get(1).map_err(&error)?;
        let state: String = row.try_get(2).map_err(&error)?;
        let last: i64 = row.try_get(3).map_err(&error)?;
        let number = self.checked_number(number)?;
        let data = self.decode_data(&data)?;
        if state != "pending" {
            return Err(StoreError::NotPending {
                path: self.path.clone(),
                number_id,
                state,
            });
        }
        let attempt =
            u32::try_from(last + 1).map_err(|_| self.corrupt("attempt", last.to_string()))?;
        let channel_id = channel_id_of(attempt);
        let originated_at = unix_millis_now();
        let inserted = sqlx::query(sql::INSERT_ATTEMPT)
            .bind(number_id.0)
            .bind(i64::from(attempt))
            .bind(&channel_id)
            .bind(originated_at)
            .execute(&mut *tx)
            .await;
        let id = match inserted {
            Ok(done) => AttemptId(done.last_insert_rowid()),
            Err(source) if is_unique_violation(&source) => {
                return Err(StoreError::ChannelIdTaken {
                    path: self.path.clone(),
                    channel_id,
                });
            }
            Err(source) => return Err(error(source)),
        };
        sqlx::query(sql::SET_NUMBER_DIALING)
            .bind(number_id.0)
            .execute(&mut *tx)
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(Attempt {
            id,
            number_id,
            state: AttemptState::Dialing,
            record: AttemptRecord {
                number,
                data,
                attempt,
                outcome: None,
                cause: None,
                cause_text: None,
                message: None,
                originated_at: Some(originated_at),
                answered_at: None,
                target_connected_at: None,
                ended_at: None,
                channel_id,
                target_channel_id: None,
                bridge_id: None,
                recording_name: None,
                recording_file: None,
            },
        })
    }

    /// Puts a done number back in the queue, for a deliberate retry: its next
    /// [`Store::begin_attempt`] writes attempt N+1. Returns false if the number is not done.
    ///
    /// # Errors
    /// An unknown number or a failed write.
    pub async fn requeue(&self, number_id: NumberId) -> Result<bool, StoreError> {
        let query = sqlx::query(sql::REQUEUE).bind(number_id.0);
        self.update_row(query, sql::NUMBER_EXISTS, number_id.0, "requeue a number")
            .await?
            .ok_or_else(|| StoreError::UnknownNumber {
                path: self.path.clone(),
                number_id,
            })
    }

    /// Runs an update of one row: whether it changed the row (an update guarded by the
    /// row's state changes nothing once the row is past it), `None` if there is no such row.
    async fn update_row<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
        exists: &'static str,
        id: i64,
        action: &'static str,
    ) -> Result<Option<bool>, StoreError> {
        let changed = query
            .execute(&self.writer)
            .await
            .map_err(self.query_error(action))?
            .rows_affected();
        if changed > 0 {
            return Ok(Some(true));
        }
        let found = sqlx::query(exists)
            .bind(id)
            .fetch_optional(&self.writer)
            .await
            .map_err(self.query_error(action))?;
        Ok(found.map(|_| false))
    }

    async fn update_attempt<'q>(
        &self,
        attempt_id: AttemptId,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
        action: &'static str,
    ) -> Result<bool, StoreError> {
        self.update_row(query, sql::ATTEMPT_EXISTS, attempt_id.0, action)
            .await?
            .ok_or_else(|| StoreError::UnknownAttempt {
                path: self.path.clone(),
                attempt_id,
            })
    }

    /// Records that the callee answered; false if the attempt was already past `dialing`.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn answered(
        &self,
        attempt_id: AttemptId,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(sql::ANSWERED).bind(at).bind(attempt_id.0);
        self.update_attempt(attempt_id, query, "record an answer")
            .await
    }

    /// Records that the target joined the bridge, with the ids a restart needs to find the
    /// call's other parts; false if the attempt was already connected or ended.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn connected(
        &self,
        attempt_id: AttemptId,
        at: UnixMillis,
        target_channel_id: &str,
        bridge_id: &str,
        recording_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(sql::CONNECTED)
            .bind(at)
            .bind(target_channel_id)
            .bind(bridge_id)
            .bind(recording_name)
            .bind(attempt_id.0);
        self.update_attempt(attempt_id, query, "record a connection")
            .await
    }

    /// Ends the attempt with its outcome and marks its number `done`, in one transaction.
    /// An attempt that has ended already keeps its outcome: returns false and changes
    /// nothing.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn finish(&self, attempt_id: AttemptId, ending: &Ending) -> Result<bool, StoreError> {
        let action = "record an outcome";
        let error = self.query_error(action);
        let mut tx = self.write_tx(action).await?;
        let changed = sqlx::query(sql::FINISH)
            .bind(ending.outcome.as_str())
            .bind(ending.cause)
            .bind(ending.cause_text.as_deref())
            .bind(ending.message.as_deref())
            .bind(ending.ended_at)
            .bind(attempt_id.0)
            .execute(&mut *tx)
            .await
            .map_err(&error)?
            .rows_affected();
        if changed == 0 {
            let exists = sqlx::query(sql::ATTEMPT_EXISTS)
                .bind(attempt_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&error)?
                .is_some();
            if !exists {
                return Err(StoreError::UnknownAttempt {
                    path: self.path.clone(),
                    attempt_id,
                });
            }
            return Ok(false);
        }
        sqlx::query(sql::SET_NUMBER_DONE)
            .bind(attempt_id.0)
            .execute(&mut *tx)
            .await
            .map_err(&error)?;
        tx.commit().await.map_err(&error)?;
        Ok(true)
    }

    /// Records the downloaded recording's file (relative to the recordings directory).
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn set_recording_file(
        &self,
        attempt_id: AttemptId,
        file: &str,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(sql::SET_RECORDING_FILE)
            .bind(file)
            .bind(attempt_id.0);
        self.update_attempt(attempt_id, query, "record a recording file")
            .await
            .map(drop)
    }

    /// One attempt by id.
    ///
    /// # Errors
    /// An unknown attempt or a failed read.
    pub async fn attempt(&self, attempt_id: AttemptId) -> Result<Attempt, StoreError> {
        let action = "read an attempt";
        let row = sqlx::query(sql::ATTEMPT_BY_ID)
            .bind(attempt_id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(self.query_error(action))?
            .ok_or_else(|| StoreError::UnknownAttempt {
                path: self.path.clone(),
                attempt_id,
            })?;
        self.decode_attempt(&row, action)
    }

    /// Attempts that have not ended, oldest first: what a restart reconciles.
    ///
    /// # Errors
    /// A failed read.
    pub async fn unfinished(&self) -> Result<Vec<Attempt>, StoreError> {
        self.attempts_where(sql::UNFINISHED, "read the unfinished attempts")
            .await
    }

    /// The attempts a parameterless attempt query selects.
    async fn attempts_where(
        &self,
        query: &'static str,
        action: &'static str,
    ) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(query)
            .fetch_all(&self.reader)
            .await
            .map_err(self.query_error(action))?;
        rows.iter()
            .map(|row| self.decode_attempt(row, action))
            .collect()
    }

    /// Takes back an attempt whose originate certainly never reached Asterisk (it was
    /// unreachable, then the run stopped): the number is pending again, as if the attempt
    /// had never begun. Returns whether there was such an attempt.
    ///
    /// # Errors
    /// A failed write.
    pub async fn void_attempt(&self, attempt_id: AttemptId) -> Result<bool, StoreError> {
        let action = "take back an unsent attempt";
        let error = self.query_error(action);
        let mut tx = self.write_tx(action).await?;
        sqlx::query(sql::VOID_ATTEMPT_NUMBER)
            .bind(attempt_id.0)
            .execute(&mut *tx)
            .await
            .map_err(&error)?;
        let removed = sqlx::query(sql::VOID_ATTEMPT)
            .bind(attempt_id.0)
            .execute(&mut *tx)
            .await
            .map_err(&error)?
            .rows_affected();
        tx.commit().await.map_err(&error)?;
        Ok(removed > 0)
    }

    /// Ended attempts whose recording is on Asterisk but not downloaded (the dialer died
    /// during the download, or Asterisk was unreachable): a resumed run fetches them.
    ///
    /// # Errors
    /// A failed read.
    pub async fn unsaved_recordings(&self) -> Result<Vec<Attempt>, StoreError> {
        self.attempts_where(sql::UNSAVED_RECORDINGS, "read the unsaved recordings")
            .await
    }

    /// Every attempt in (number, attempt) order, read a page at a time, for the report.
    pub fn attempts(&self) -> impl Stream<Item = Result<AttemptRecord, StoreError>> + Send + '_ {
        let start = Some((0i64, 0i64));
        stream::try_unfold(start, move |after| async move {
            let Some((number_id, attempt)) = after else {
                return Ok(None);
            };
            let action = "read the attempts";
            let rows = sqlx::query(sql::ATTEMPTS_PAGE)
                .bind(number_id)
                .bind(number_id)
                .bind(attempt)
                .bind(ATTEMPTS_PAGE)
                .fetch_all(&self.reader)
                .await
                .map_err(self.query_error(action))?;
            let page = rows
                .iter()
                .map(|row| self.decode_attempt(row, action))
                .collect::<Result<Vec<_>, _>>()?;
            let next = match page.last() {
                Some(last) if page.len() as i64 == ATTEMPTS_PAGE => {
                    Some((last.number_id.0, i64::from(last.record.attempt)))
                }
                Some(_) => None,
                None => return Ok(None),
            };
            Ok(Some((page, next)))
        })
        .map_ok(|page| stream::iter(page.into_iter().map(|attempt| Ok(attempt.record))))
        .try_flatten()
        .boxed()
    }

    /// Numbers by state and ended attempts by outcome, read in one snapshot.
    ///
    /// # Errors
    /// A failed read or an unknown stored outcome.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let action = "count numbers and outcomes";
        let error = self.query_error(action);
        let mut tx = self.reader.begin().await.map_err(&error)?;
        let states = sqlx::query(sql::COUNT_NUMBERS)
            .fetch_all(&mut *tx)
            .await
            .map_err(&error)?;
        let outcomes = sqlx::query(sql::COUNT_OUTCOMES)
            .fetch_all(&mut *tx)
            .await
            .map_err(&error)?;
        tx.rollback().await.map_err(&error)?;
        let mut counts = Counts {
            total: 0,
            pending: 0,
            in_progress: 0,
            done: 0,
            by_outcome: Outcome::ALL.iter().map(|&outcome| (outcome, 0)).collect(),
        };
        for row in &states {
            let state: String = row.try_get(0).map_err(&error)?;
            let count = count_of(row).map_err(&error)?;
            counts.total += count;
            match state.as_str() {
                "pending" => counts.pending = count,
                "dialing" => counts.in_progress = count,
                "done" => counts.done = count,
                _ => return Err(self.corrupt("number state", state)),
            }
        }
        for row in &outcomes {
            let name: String = row.try_get(0).map_err(&error)?;
            let outcome: Outcome = name
                .parse()
                .map_err(|_| self.corrupt("outcome", name.as_str()))?;
            *counts.by_outcome.entry(outcome).or_default() += count_of(row).map_err(&error)?;
        }
        Ok(counts)
    }

    fn decode_attempt(&self, row: &SqliteRow, action: &'static str) -> Result<Attempt, StoreError> {
        let error = self.query_error(action);
        let text = |index: usize| row.try_get::<Option<String>, _>(index).map_err(&error);
        let int = |index: usize| row.try_get::<Option<i64>, _>(index).map_err(&error);
        let state: String = row.try_get(4).map_err(&error)?;
        let state =
            AttemptState::parse(&state).ok_or_else(|| self.corrupt("attempt state", state))?;
        let outcome = match text(5)? {
            None => None,
            Some(name) => Some(
                name.parse()
                    .map_err(|_| self.corrupt("outcome", name.as_str()))?,
            ),
        };
        let attempt: i64 = row.try_get(2).map_err(&error)?;
        let data: String = row.try_get(18).map_err(&error)?;
        Ok(Attempt {
            id: AttemptId(row.try_get(0).map_err(&error)?),
            number_id: NumberId(row.try_get(1).map_err(&error)?),
            state,
            record: AttemptRecord {
                number: row.try_get(17).map_err(&error)?,
                data: self.decode_data(&data)?,
                attempt: u32::try_from(attempt)
                    .map_err(|_| self.corrupt("attempt", attempt.to_string()))?,
                outcome,
                cause: int(6)?,
                cause_text: text(7)?,
                message: text(8)?,
                originated_at: int(9)?,
                answered_at: int(10)?,
                target_connected_at: int(11)?,
                ended_at: int(12)?,
                channel_id: row.try_get(3).map_err(&error)?,
                target_channel_id: text(13)?,
                bridge_id: text(14)?,
                recording_name: text(15)?,
                recording_file: text(16)?,
            },
        })
    }
}

fn count_of(row: &SqliteRow) -> Result<u64, sqlx::Error> {
    let count: i64 = row.try_get(1)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}

fn insert_numbers_sql(rows: usize) -> String {
    let mut statement = String::with_capacity(
        sql::INSERT_NUMBERS.len() + rows * (sql::INSERT_NUMBERS_ROW.len() + 2) + 40,
    );
    statement.push_str(sql::INSERT_NUMBERS);
    for row in 0..rows {
        if row > 0 {
            statement.push_str(", ");
        }
        statement.push_str(sql::INSERT_NUMBERS_ROW);
    }
    statement.push_str(sqlite::IGNORE_DUPLICATE_NUMBERS);
    statement
}

fn data_json(data: &BTreeMap<String, String>) -> String {
    if data.is_empty() {
        return "{}".to_owned();
    }
    // A map of strings always serialises.
    serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned())
}
