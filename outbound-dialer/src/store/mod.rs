//! The campaign store: the number list, every attempt, every outcome and every call's
//! events, in one SQLite file per campaign (the default) or one MySQL/MariaDB database per
//! campaign, so that a run killed at any moment resumes without losing an outcome or
//! dialling a number twice.
//!
//! The rules that make that hold:
//! - an attempt row (with its channel id) is committed before its originate is sent, in
//!   the same transaction that marks the number `dialing`; a restart finds it in
//!   [`Store::unfinished`] (or, with several dialers, [`Store::orphaned`] once its dialer's
//!   lease has run out) and reconciles it by that id (adopt the live channel, or
//!   [`Store::finish`] it as [`Outcome::Interrupted`]); [`Store::next_pending`] and
//!   [`Store::claim`] never return a number that has an attempt, and
//!   [`Store::begin_attempt`] refuses one;
//! - every write is one transaction, committed (and on SQLite synced) before the method
//!   returns;
//! - an ended attempt is never rewritten.
//!
//! Several dialers on one campaign (MySQL only): each registers itself
//! ([`Store::register_dialer`]) with a lease it renews ([`Store::renew`]); it claims
//! pending numbers in short `SELECT ... FOR UPDATE SKIP LOCKED` transactions
//! ([`Store::claim`]), the claims carrying its id and lease; a claim whose lease ran out is
//! anyone's again, and the number's row is locked while its attempt is written, so a number
//! is started once. SQLite keeps one dialer per file (a lock file refuses a second).
//!
//! Backends: the statements in `sql.rs` are shared; `sqlite.rs` and `mysql.rs` hold what
//! differs (connection set-up, the write lock, the conflict clause, row locks, DDL). Each
//! method is written once and compiled for both pools by `on_backend!`.

mod embedded;
mod lock;
mod mysql;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt as _, TryStreamExt as _, stream};
use sqlx::Row as _;
use sqlx::mysql::{MySqlPool, MySqlQueryResult, MySqlRow};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteQueryResult, SqliteRow};

pub use mysql::MySqlTarget;

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

/// What went wrong with the store; every message names the file (or the database, its
/// password hidden).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file cannot be opened or created as an SQLite database, or the MySQL server
    /// cannot be reached or refuses the login.
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
        "{} is not an outbound-dialer campaign store (it is not SQLite, or holds another program's tables): give --db another file or database",
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
    /// Another process has the file open (another dialer of this campaign): an SQLite
    /// campaign has one dialer at a time.
    #[error(
        "the campaign store {} is in use by another outbound-dialer (it holds {}): an SQLite campaign has one dialer at a time; stop that one first, give --db another file, or keep the campaign in MySQL/MariaDB (--db mysql://...) to run several dialers on it",
        .path.display(),
        lock::lock_path(.path).display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The file (or database) belongs to another campaign: one campaign per store.
    #[error(
        "the campaign store {} belongs to campaign {found:?}, not {expected:?}: give --db another file (or database), or run campaign {found:?}",
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
    /// The number is being dialled, done, or claimed by another running dialer; dialling
    /// it is refused.
    #[error(
        "campaign store {}: number {number_id} is {state}, not pending: it is not dialled again",
        .path.display()
    )]
    NotPending {
        /// The file.
        path: PathBuf,
        /// The number.
        number_id: NumberId,
        /// Its state (`dialing`, `done`, or `claimed by <dialer>`).
        state: String,
    },
    /// The number is on the do-not-call list (the `dnc` table): no attempt is begun.
    #[error(
        "campaign store {}: number {number_id} is on the do-not-call list (from {from}): it is not dialled",
        .path.display()
    )]
    OnDnc {
        /// The file.
        path: PathBuf,
        /// The number.
        number_id: NumberId,
        /// Where the DNC entry came from (`dnc.source`).
        from: String,
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
    /// The dialer running it ([`Store::dialer_id`]), when recorded.
    pub dialer: Option<String>,
    /// The Asterisk (ARI URL) it was dialled through, when recorded.
    pub asterisk: Option<String>,
    /// When a live callee was there ([`Store::live`]): a restarted dialer counts the
    /// `--abandon-after` limit of a callee still waiting for its target from it.
    pub live_at: Option<UnixMillis>,
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

impl Ending {
    /// An end with `outcome` at `ended_at`, no cause or message known.
    pub fn new(outcome: Outcome, ended_at: UnixMillis) -> Self {
        Ending {
            outcome,
            cause: None,
            cause_text: None,
            message: None,
            ended_at,
        }
    }
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
    /// Attempts ended in the last minute, by any dialer.
    pub ended_last_minute: u64,
    /// When the first of them ended.
    pub first_end_in_minute: Option<UnixMillis>,
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_millis_now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Where a campaign's store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (one dialer at a time).
    Sqlite(PathBuf),
    /// A MySQL/MariaDB database (several dialers may share it).
    MySql(MySqlTarget),
}

impl Location {
    /// How errors and logs name it (a MySQL password is never shown).
    pub fn shown(&self) -> PathBuf {
        match self {
            Location::Sqlite(path) => path.clone(),
            Location::MySql(target) => PathBuf::from(target.to_string()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => path.display().fmt(f),
            Location::MySql(target) => target.fmt(f),
        }
    }
}

/// How long a dialer's claims and calls stay its own without a renewal, unless told
/// otherwise ([`DialerInfo::lease`]).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// What a dialer tells the store about itself ([`Store::register_dialer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialerInfo {
    /// Its Stasis application.
    pub app: String,
    /// Its Asterisk (ARI base URL): a call can only be picked up through it.
    pub asterisk: String,
    /// Its concurrency limit.
    pub max_cc: u32,
    /// How long its claims last without a renewal; it renews well within it.
    pub lease: Duration,
}

/// A number on the do-not-call list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    /// The number, normalised.
    pub number: String,
    /// Where it came from (a file name, `api`, `operator`).
    pub source: String,
    /// When it was added.
    pub added_at: UnixMillis,
}

/// A dialer as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialerRow {
    /// Its id ([`Store::dialer_id`]).
    pub id: String,
    /// Its Stasis application.
    pub app: String,
    /// Its Asterisk (ARI base URL).
    pub asterisk: String,
    /// Its host name.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// Its concurrency limit.
    pub max_cc: i64,
    /// Its lease runs until then.
    pub lease_until: UnixMillis,
}

/// A state change of a call, for the `call_events` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventKind {
    /// The originate was accepted by Asterisk.
    Originated,
    /// The callee rings.
    Ringing,
    /// The callee answered.
    Answered,
    /// Callee and target are bridged.
    Bridged,
    /// The bridge is being recorded (detail: the recording's name).
    Recording,
    /// The attempt ended (cause, detail: the outcome and message).
    Ended,
    /// A dialer picked up an attempt another dialer (or an earlier run) left.
    Reconciled,
}

impl CallEventKind {
    /// The name stored in `call_events.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallEventKind::Originated => "originated",
            CallEventKind::Ringing => "ringing",
            CallEventKind::Answered => "answered",
            CallEventKind::Bridged => "bridged",
            CallEventKind::Recording => "recording",
            CallEventKind::Ended => "ended",
            CallEventKind::Reconciled => "reconciled",
        }
    }
}

/// One row of `call_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// The attempt.
    pub attempt_id: AttemptId,
    /// When.
    pub at: UnixMillis,
    /// What (a [`CallEventKind`] name; later versions may add kinds).
    pub kind: String,
    /// Q.850 cause, for `ended`.
    pub cause: Option<i64>,
    /// Details: the recording name, the outcome and message, who reconciled.
    pub detail: Option<String>,
    /// The dialer that wrote it.
    pub dialer: Option<String>,
}

/// Held while a dialer imports the list ([`Store::import_lock`]); release it when done.
pub struct ImportLock(Option<mysql::ImportLock>);

impl ImportLock {
    /// Lets the next dialer import (it will find the list imported).
    pub async fn release(self) {
        if let Some(lock) = self.0 {
            lock.release().await;
        }
    }
}

impl fmt::Debug for ImportLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImportLock")
    }
}

/// The pools of one backend.
#[derive(Debug, Clone)]
enum Backend {
    /// Writes go through one connection, so the dialer's own writes queue in the pool
    /// instead of contending for SQLite's lock; reads use two others and never wait for a
    /// write, thanks to WAL.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    /// InnoDB locks rows: one pool for everything.
    MySql { pool: MySqlPool },
}

/// Runs `$body` with `$w` the pool for writes, `$r` the pool for reads and `$d` the
/// backend's dialect module (`sqlite` or `mysql`): one method body, compiled for both.
macro_rules! on_backend {
    ($store:expr, $w:ident, $r:ident, $d:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite {
                writer: $w,
                reader: $r,
            } => {
                #[allow(unused_imports)]
                use self::sqlite as $d;
                $body
            }
            Backend::MySql { pool: $w } => {
                #[allow(unused_variables)]
                let $r = $w;
                #[allow(unused_imports)]
                use self::mysql as $d;
                $body
            }
        }
    };
}

/// Typed reads of a row's columns, for both backends' rows.
trait Fields {
    fn int(&self, index: usize) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, index: usize) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, index: usize) -> Result<String, sqlx::Error>;
    fn opt_text(&self, index: usize) -> Result<Option<String>, sqlx::Error>;
}

macro_rules! impl_fields {
    ($row:ty) => {
        impl Fields for $row {
            fn int(&self, index: usize) -> Result<i64, sqlx::Error> {
                self.try_get(index)
            }
            fn opt_int(&self, index: usize) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(index)
            }
            fn text(&self, index: usize) -> Result<String, sqlx::Error> {
                self.try_get(index)
            }
            fn opt_text(&self, index: usize) -> Result<Option<String>, sqlx::Error> {
                self.try_get(index)
            }
        }
    };
}
impl_fields!(SqliteRow);
impl_fields!(MySqlRow);

/// The id of the row an `INSERT` made, for both backends.
trait InsertedId {
    fn inserted_id(&self) -> i64;
}

impl InsertedId for SqliteQueryResult {
    fn inserted_id(&self) -> i64 {
        self.last_insert_rowid()
    }
}

impl InsertedId for MySqlQueryResult {
    fn inserted_id(&self) -> i64 {
        i64::try_from(self.last_insert_id()).unwrap_or(i64::MAX)
    }
}

/// Who this store's dialer is; shared by the store's clones.
#[derive(Debug)]
struct Me {
    /// Unique per opened store: host, pid, and random bits.
    id: String,
    /// Set by [`Store::register_dialer`].
    info: Mutex<Option<DialerInfo>>,
}

impl Me {
    fn new() -> Me {
        use std::hash::{BuildHasher as _, Hasher as _};
        let host = host_name();
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let random = hasher.finish() as u32;
        let mut id = format!("{host}-{}-{random:08x}", std::process::id());
        id.truncate(100);
        Me {
            id,
            info: Mutex::new(None),
        }
    }

    fn info(&self) -> Option<DialerInfo> {
        self.info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lease(&self) -> Duration {
        self.info().map_or(DEFAULT_LEASE, |info| info.lease)
    }

    fn asterisk(&self) -> Option<String> {
        self.info().map(|info| info.asterisk)
    }
}

/// This machine's name, for dialer ids (`/etc/hostname`, `$HOSTNAME`, or `host`).
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(60)
        .collect();
    if name.is_empty() {
        "host".to_owned()
    } else {
        name
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// An open campaign store.
///
/// SQLite: one process at a time; opening takes a lock that a second dialer on the same
/// file gets [`StoreError::InUse`] for (other programs can still read the file with
/// SQLite). MySQL: any number of dialers, each claiming its numbers.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    campaign: String,
    backend: Backend,
    lock: Option<lock::CampaignLock>,
    me: Arc<Me>,
}

impl Store {
    /// Opens the campaign's SQLite store at `path`, creating it if missing and bringing its
    /// schema up to date.
    ///
    /// # Errors
    /// A file that cannot be opened, is not a store, has a newer schema, or belongs to
    /// another campaign; [`StoreError::InUse`] while another dialer has it open.
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
            return Err(migrate_error(path, error));
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let store = Store {
            path: path.to_owned(),
            campaign: campaign.to_owned(),
            backend: Backend::Sqlite { writer, reader },
            lock: Some(lock),
            me: Arc::new(Me::new()),
        };
        store.ready().await?;
        Ok(store)
    }

    /// Opens the campaign's MySQL/MariaDB store (the database must exist), bringing its
    /// schema up to date; several dialers may have it open.
    ///
    /// # Errors
    /// A server that cannot be reached or refuses the login, a missing database, one that
    /// is not a store, has a newer schema, or belongs to another campaign.
    pub async fn open_mysql(target: &MySqlTarget, campaign: &str) -> Result<Store, StoreError> {
        let path = PathBuf::from(target.to_string());
        let options = target.options().map_err(|message| StoreError::Open {
            path: path.clone(),
            source: message.into(),
        })?;
        let pool = mysql::connect(options).await.map_err(|source| {
            let source: Cause = if mysql::is_unknown_database(&source) {
                format!("{source} (create it first: CREATE DATABASE ...; then GRANT the dialer's user on it)").into()
            } else {
                source.into()
            };
            StoreError::Open {
                path: path.clone(),
                source,
            }
        })?;
        let open_error = |source: sqlx::Error| StoreError::Open {
            path: path.clone(),
            source: source.into(),
        };
        if mysql::is_foreign(&pool).await.map_err(open_error)? {
            pool.close().await;
            return Err(StoreError::NotAStore { path });
        }
        if let Err(error) = mysql::migrate(&pool).await {
            pool.close().await;
            return Err(migrate_error(&path, error));
        }
        let store = Store {
            path,
            campaign: campaign.to_owned(),
            backend: Backend::MySql { pool },
            lock: None,
            me: Arc::new(Me::new()),
        };
        store.ready().await?;
        Ok(store)
    }

    /// Opens the store at `location` ([`Store::open`] or [`Store::open_mysql`]).
    ///
    /// # Errors
    /// As those.
    pub async fn open_at(location: &Location, campaign: &str) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open(path, campaign).await,
            Location::MySql(target) => Store::open_mysql(target, campaign).await,
        }
    }

    /// The campaign row, and on SQLite the dialers of earlier runs marked gone and their
    /// claims void (the lock proves none of them runs).
    async fn ready(&self) -> Result<(), StoreError> {
        if let Err(error) = self.claim_campaign().await {
            self.close().await;
            return Err(error);
        }
        if let Backend::Sqlite { writer, .. } = &self.backend {
            let now = unix_millis_now();
            let stopped = sqlx::query(sql::STOP_ALL_DIALERS)
                .bind(now - 1)
                .bind(now)
                .bind(now)
                .execute(writer)
                .await
                .map(drop);
            if let Err(source) = stopped {
                self.close().await;
                return Err(self.query_error("mark earlier dialers gone")(source));
            }
        }
        Ok(())
    }

    /// Writes the campaign row of a new store, or checks that an old one is this
    /// campaign's.
    async fn claim_campaign(&self) -> Result<(), StoreError> {
        let action = "read the campaign row";
        on_backend!(self, w, _r, d => {
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(self.query_error(action))?;
            let found = sqlx::query(sql::CAMPAIGN)
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.query_error(action))?;
            match found {
                Some(row) => {
                    let found = row.text(0).map_err(self.query_error(action))?;
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
                    let inserted = sqlx::query(sql::INSERT_CAMPAIGN)
                        .bind(&self.campaign)
                        .bind(RunState::Idle.as_str())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await;
                    match inserted {
                        Ok(_) => {}
                        // Another dialer wrote it at the same moment: check it again.
                        Err(error) if is_unique_violation(&error) => {
                            drop(tx);
                            return Box::pin(self.claim_campaign()).await;
                        }
                        Err(error) => return Err(self.query_error("write the campaign row")(error)),
                    }
                }
            }
            tx.commit().await.map_err(self.query_error(action))
        })
    }

    /// Runs a write transaction again (up to three more times, after 10-80 ms) when MySQL
    /// rolled it back for a deadlock or a lock wait timeout: InnoDB asks its clients to
    /// retry those, and each of these transactions is safe to run again whole.
    async fn retrying<T, F, Fut>(&self, mut once: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut retries = 0u32;
        loop {
            match once().await {
                Err(error) if retries < 3 && self.is_shared() && is_transient(&error) => {
                    retries += 1;
                    tracing::debug!(%error, retries, "MySQL rolled a transaction back; running it again");
                    tokio::time::sleep(Duration::from_millis(10 << retries)).await;
                }
                done => return done,
            }
        }
    }

    /// The file, or the database's URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The campaign's name.
    pub fn campaign(&self) -> &str {
        &self.campaign
    }

    /// Whether several dialers may share this store (MySQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::MySql { .. })
    }

    /// This store's dialer: the claimer id its claims and attempts carry.
    pub fn dialer_id(&self) -> &str {
        &self.me.id
    }

    /// Closes the connections (SQLite checkpoints the WAL when the last one closes) and
    /// lets another process open the file; every clone of this store is closed with it.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::MySql { pool } => pool.close().await,
        }
        if let Some(lock) = &self.lock {
            lock.release();
        }
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
        let rows_per_insert = on_backend!(self, _w, _r, d => d::ROWS_PER_INSERT);
        let full_insert = self.insert_numbers_sql(rows_per_insert);
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
            on_backend!(self, w, _r, d => {
                let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(self.query_error(action))?;
                while !batch.is_empty() {
                    let rows = batch.len().min(rows_per_insert);
                    let tail;
                    let statement = if rows == rows_per_insert {
                        full_insert.as_str()
                    } else {
                        tail = self.insert_numbers_sql(rows);
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
            });
        }
    }

    fn insert_numbers_sql(&self, rows: usize) -> String {
        let (verb, ignore) =
            on_backend!(self, _w, _r, d => (d::INSERT_NUMBERS_VERB, d::IGNORE_DUPLICATE_NUMBERS));
        let mut statement = String::with_capacity(
            verb.len()
                + sql::INSERT_NUMBERS.len()
                + rows * (sql::INSERT_NUMBERS_ROW.len() + 2)
                + 40,
        );
        statement.push_str(verb);
        statement.push_str(sql::INSERT_NUMBERS);
        for row in 0..rows {
            if row > 0 {
                statement.push_str(", ");
            }
            statement.push_str(sql::INSERT_NUMBERS_ROW);
        }
        statement.push_str(ignore);
        statement
    }

    /// Adds do-not-call numbers (normalised; others are skipped) to the store's `dnc` table,
    /// which every dialer of the campaign checks right before each originate. A number
    /// already there keeps its first `source` and time, so loading the same list again
    /// changes nothing; numbers are never removed here. Sorted and written in batches of
    /// [`IMPORT_BATCH`] (each its own transaction, run again on a MySQL deadlock), so
    /// dialers loading the same file at once take row locks in one order. Returns how many
    /// numbers were new.
    ///
    /// # Errors
    /// A failed write (the batches before it stay).
    pub async fn load_dnc<I, S>(&self, numbers: I, source: &str) -> Result<u64, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut numbers: Vec<String> = numbers
            .into_iter()
            .filter_map(|number| normalize(number.as_ref()).ok())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        // The column holds 255 characters (MySQL).
        let source: String = source.chars().take(255).collect();
        let added_at = unix_millis_now();
        let mut added = 0;
        for batch in numbers.chunks(IMPORT_BATCH) {
            added += self
                .retrying(|| self.load_dnc_batch(batch, &source, added_at))
                .await?;
        }
        Ok(added)
    }

    async fn load_dnc_batch(
        &self,
        batch: &[String],
        source: &str,
        added_at: UnixMillis,
    ) -> Result<u64, StoreError> {
        let error = self.query_error("load the do-not-call list");
        let rows_per_insert = on_backend!(self, _w, _r, d => d::ROWS_PER_INSERT);
        let mut added = 0;
        on_backend!(self, w, _r, d => {
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(&error)?;
            for rows in batch.chunks(rows_per_insert) {
                let statement = self.insert_rows_sql(sql::INSERT_DNC, sql::INSERT_DNC_ROW, rows.len());
                let mut query = sqlx::query(&statement);
                for number in rows {
                    query = query.bind(number).bind(source).bind(added_at);
                }
                added += query.execute(&mut *tx).await.map_err(&error)?.rows_affected();
            }
            tx.commit().await.map_err(&error)?;
        });
        Ok(added)
    }

    /// Whether a (normalised) number is on the do-not-call list, and where it came from:
    /// one primary-key probe, so it is asked right before each originate and sees what any
    /// dialer or operator added until then.
    ///
    /// # Errors
    /// A failed read.
    pub async fn is_dnc(&self, number: &str) -> Result<Option<String>, StoreError> {
        let source: Option<String> = on_backend!(self, _w, r, _d => {
            sqlx::query_scalar(sql::IS_DNC)
                .bind(number)
                .fetch_optional(r)
                .await
                .map_err(self.query_error("read the do-not-call list"))?
        });
        Ok(source)
    }

    /// How many numbers the do-not-call list holds.
    ///
    /// # Errors
    /// A failed read.
    pub async fn dnc_count(&self) -> Result<u64, StoreError> {
        self.count_one(sql::COUNT_DNC, "count the do-not-call list")
            .await
    }

    /// One number's do-not-call entry (the number normalised), if it is on the list.
    ///
    /// # Errors
    /// A failed read.
    pub async fn dnc_entry(&self, number: &str) -> Result<Option<DncEntry>, StoreError> {
        let error = self.query_error("read the do-not-call list");
        let entry = on_backend!(self, _w, r, _d => {
            match sqlx::query(sql::DNC_ENTRY)
                .bind(number)
                .fetch_optional(r)
                .await
                .map_err(&error)?
            {
                Some(row) => Some(DncEntry {
                    number: number.to_owned(),
                    source: row.text(0).map_err(&error)?,
                    added_at: row.int(1).map_err(&error)?,
                }),
                None => None,
            }
        });
        Ok(entry)
    }

    /// Takes a (normalised) number off the do-not-call list: dialers may call it again
    /// from their next check on (an attempt already ended as `dnc` stays so). Returns
    /// whether it was on the list.
    ///
    /// # Errors
    /// A failed write.
    pub async fn remove_dnc(&self, number: &str) -> Result<bool, StoreError> {
        let removed = on_backend!(self, w, _r, _d => {
            sqlx::query(sql::DELETE_DNC)
                .bind(number)
                .execute(w)
                .await
                .map_err(self.query_error("remove a number from the do-not-call list"))?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// How many pending numbers of the campaign are on the do-not-call list.
    ///
    /// # Errors
    /// A failed read.
    pub async fn pending_dnc_count(&self) -> Result<u64, StoreError> {
        self.count_one(
            sql::COUNT_PENDING_DNC,
            "count the list's do-not-call numbers",
        )
        .await
    }

    async fn count_one(
        &self,
        statement: &'static str,
        action: &'static str,
    ) -> Result<u64, StoreError> {
        let count: i64 = on_backend!(self, _w, r, _d => {
            sqlx::query_scalar(statement)
                .fetch_one(r)
                .await
                .map_err(self.query_error(action))?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The backend's multi-row insert of `rows` rows into `head`, skipping duplicates.
    fn insert_rows_sql(&self, head: &str, row: &str, rows: usize) -> String {
        let (verb, ignore) =
            on_backend!(self, _w, _r, d => (d::INSERT_NUMBERS_VERB, d::IGNORE_DUPLICATE_NUMBERS));
        let mut statement =
            String::with_capacity(verb.len() + head.len() + rows * (row.len() + 2) + 40);
        statement.push_str(verb);
        statement.push_str(head);
        for index in 0..rows {
            if index > 0 {
                statement.push_str(", ");
            }
            statement.push_str(row);
        }
        statement.push_str(ignore);
        statement
    }

    /// Keeps other dialers of this campaign from importing at the same time (MySQL: a
    /// named lock; SQLite: nothing, one dialer per file). Check [`Store::input_fingerprint`]
    /// after taking it: the one before may have imported the list.
    ///
    /// # Errors
    /// A failed query, or another dialer importing for ten minutes.
    pub async fn import_lock(&self) -> Result<ImportLock, StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(ImportLock(None)),
            Backend::MySql { pool } => mysql::ImportLock::acquire(pool)
                .await
                .map(|lock| ImportLock(Some(lock)))
                .map_err(self.query_error("take the import lock")),
        }
    }

    /// The fingerprint of the input last imported completely, if any.
    ///
    /// # Errors
    /// A failed read.
    pub async fn input_fingerprint(&self) -> Result<Option<String>, StoreError> {
        let action = "read the input fingerprint";
        on_backend!(self, _w, r, _d => {
            let row = sqlx::query(sql::CAMPAIGN)
                .fetch_one(r)
                .await
                .map_err(self.query_error(action))?;
            row.opt_text(2).map_err(self.query_error(action))
        })
    }

    /// Records that the input with this fingerprint is imported completely; set it after
    /// [`Store::import`] returns, so that an interrupted import is redone.
    ///
    /// # Errors
    /// A failed write.
    pub async fn set_input_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        on_backend!(self, w, _r, _d => {
            sqlx::query(sql::SET_FINGERPRINT)
                .bind(fingerprint)
                .bind(unix_millis_now())
                .execute(w)
                .await
                .map_err(self.query_error("write the input fingerprint"))?;
        });
        Ok(())
    }

    /// The campaign's run state as stored.
    ///
    /// # Errors
    /// A failed read or an unknown state name.
    pub async fn status(&self) -> Result<RunState, StoreError> {
        let action = "read the campaign status";
        let name = on_backend!(self, _w, r, _d => {
            let row = sqlx::query(sql::CAMPAIGN)
                .fetch_one(r)
                .await
                .map_err(self.query_error(action))?;
            row.text(1).map_err(self.query_error(action))?
        });
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
        on_backend!(self, w, _r, _d => {
            sqlx::query(sql::SET_STATUS)
                .bind(state.as_str())
                .bind(unix_millis_now())
                .execute(w)
                .await
                .map_err(self.query_error("write the campaign status"))?;
        });
        Ok(())
    }

    /// Up to `limit` numbers that have never been dialled, in list order, claimed or not.
    /// Calling it again before [`Store::begin_attempt`] returns the same numbers. A
    /// dialer sharing the campaign uses [`Store::claim`] instead.
    ///
    /// # Errors
    /// A failed read, or a stored number that is not a valid number (never dialled).
    pub async fn next_pending(&self, limit: u32) -> Result<Vec<PendingNumber>, StoreError> {
        let action = "read the next numbers";
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::NEXT_PENDING)
                .bind(unix_millis_now())
                .bind(i64::from(limit))
                .fetch_all(r)
                .await
                .map_err(self.query_error(action))?;
            rows.iter().map(|row| self.pending_number(row, action)).collect()
        })
    }

    fn pending_number(
        &self,
        row: &impl Fields,
        action: &'static str,
    ) -> Result<PendingNumber, StoreError> {
        let error = self.query_error(action);
        Ok(PendingNumber {
            id: NumberId(row.int(0).map_err(&error)?),
            number: self.checked_number(row.text(1).map_err(&error)?)?,
            data: self.decode_data(&row.text(2).map_err(&error)?)?,
        })
    }

    /// Claims up to `limit` pending numbers no other running dialer holds (unclaimed, or
    /// claimed by a dialer whose lease ran out or that stopped) for this dialer, in list
    /// order, in one short transaction: on MySQL the rows other dialers are claiming at
    /// that moment are skipped (`FOR UPDATE SKIP LOCKED`), never waited for. Numbers this
    /// dialer claimed before and has not started come again. The claims hold while this
    /// dialer's lease runs ([`DialerInfo::lease`], [`Store::renew`]).
    ///
    /// # Errors
    /// A failed query, or a stored number that is not valid.
    pub async fn claim(&self, limit: u32) -> Result<Vec<PendingNumber>, StoreError> {
        self.retrying(|| self.claim_once(limit)).await
    }

    async fn claim_once(&self, limit: u32) -> Result<Vec<PendingNumber>, StoreError> {
        let action = "claim numbers";
        let error = self.query_error(action);
        let now = unix_millis_now();
        on_backend!(self, w, _r, d => {
            // Some spare candidates: others may claim a few of them meanwhile.
            let candidates: Vec<(i64, Option<String>)> = sqlx::query(sql::CLAIM_CANDIDATES)
                .bind(self.dialer_id())
                .bind(now)
                .bind(now)
                .bind(i64::from(limit) * 2 + 8)
                .fetch_all(w)
                .await
                .map_err(&error)?
                .iter()
                .map(|row| Ok((row.int(0)?, row.opt_text(1)?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(&error)?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            // Which locking read: see `sql::CLAIM_LOCK`.
            let unclaimed = candidates.iter().all(|(_, by)| by.is_none());
            let (hint, ids, tail) = if unclaimed {
                (d::BY_CLAIMER, sql::CLAIM_LOCK_UNCLAIMED, sql::CLAIM_LOCK_UNCLAIMED_TAIL)
            } else {
                (d::BY_PRIMARY_KEY, sql::CLAIM_LOCK_IDS, sql::CLAIM_LOCK_TAIL)
            };
            let mut select = format!("{}{hint}{ids}", sql::CLAIM_LOCK);
            for index in 0..candidates.len() {
                select.push_str(if index == 0 { "?" } else { ", ?" });
            }
            select.push_str(tail);
            select.push_str(d::LOCK_ROWS_SKIP_LOCKED);
            let mut query = sqlx::query(&select);
            for (id, _) in &candidates {
                query = query.bind(*id);
            }
            if !unclaimed {
                query = query.bind(self.dialer_id()).bind(now);
            }
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(&error)?;
            let rows = query
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(&error)?;
            if rows.is_empty() {
                // All taken meanwhile: the next claim reads new candidates.
                tx.rollback().await.map_err(&error)?;
                return Box::pin(self.claim_once(limit)).await;
            }
            let mut update = String::from(sql::CLAIM);
            for index in 0..rows.len() {
                update.push_str(if index == 0 { "?" } else { ", ?" });
            }
            update.push(')');
            let mut query = sqlx::query(&update).bind(self.dialer_id());
            let mut numbers = Vec::with_capacity(rows.len());
            for row in &rows {
                let number = self.pending_number(row, action)?;
                query = query.bind(number.id.0);
                numbers.push(number);
            }
            query.execute(&mut *tx).await.map_err(&error)?;
            tx.commit().await.map_err(&error)?;
            Ok(numbers)
        })
    }

    /// Writes this dialer's row (its app, Asterisk, `MAX_CC` and lease) so that others
    /// see it alive; call it before [`Store::claim`].
    ///
    /// # Errors
    /// A failed write.
    pub async fn register_dialer(&self, info: &DialerInfo) -> Result<(), StoreError> {
        *self
            .me
            .info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(info.clone());
        let now = unix_millis_now();
        let action = "register the dialer";
        on_backend!(self, w, _r, _d => {
            let inserted = sqlx::query(sql::INSERT_DIALER)
                .bind(self.dialer_id())
                .bind(&info.app)
                .bind(&info.asterisk)
                .bind(host_name())
                .bind(i64::from(std::process::id()))
                .bind(i64::from(info.max_cc))
                .bind(now)
                .bind(now.saturating_add(millis(info.lease)))
                .execute(w)
                .await;
            match inserted {
                Ok(_) => {}
                // Registered before (serve mode's next run): the row is refreshed.
                Err(error) if is_unique_violation(&error) => {
                    sqlx::query(sql::UPDATE_DIALER)
                        .bind(&info.app)
                        .bind(&info.asterisk)
                        .bind(i64::from(info.max_cc))
                        .bind(now.saturating_add(millis(info.lease)))
                        .bind(self.dialer_id())
                        .execute(w)
                        .await
                        .map_err(self.query_error(action))?;
                }
                Err(error) => return Err(self.query_error(action)(error)),
            }
        });
        Ok(())
    }

    /// Renews this dialer's lease, and with it every claim it holds: one row written,
    /// none of the numbers' (their rows stay free for the claims and attempts of others).
    ///
    /// # Errors
    /// A failed write.
    pub async fn renew(&self) -> Result<(), StoreError> {
        let until = unix_millis_now().saturating_add(millis(self.me.lease()));
        on_backend!(self, w, _r, _d => {
            sqlx::query(sql::RENEW_DIALER)
                .bind(until)
                .bind(self.dialer_id())
                .execute(w)
                .await
                .map_err(self.query_error("renew the dialer's lease"))?;
        });
        Ok(())
    }

    /// This dialer stops: its row says so, which voids its unstarted claims at once (they
    /// are anyone's), and its unfinished attempts, if any, are anyone's to reconcile.
    ///
    /// # Errors
    /// A failed write.
    pub async fn retire(&self) -> Result<(), StoreError> {
        let now = unix_millis_now();
        on_backend!(self, w, _r, _d => {
            sqlx::query(sql::STOP_DIALER)
                .bind(now - 1)
                .bind(now)
                .bind(self.dialer_id())
                .execute(w)
                .await
                .map_err(self.query_error("mark the dialer stopped"))?;
        });
        Ok(())
    }

    /// The dialers whose lease runs now (this one included once registered).
    ///
    /// # Errors
    /// A failed read.
    pub async fn live_dialers(&self) -> Result<Vec<DialerRow>, StoreError> {
        let action = "read the running dialers";
        let error = self.query_error(action);
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::LIVE_DIALERS)
                .bind(unix_millis_now())
                .fetch_all(r)
                .await
                .map_err(&error)?;
            rows.iter()
                .map(|row| {
                    Ok(DialerRow {
                        id: row.text(0)?,
                        app: row.text(1)?,
                        asterisk: row.text(2)?,
                        host: row.text(3)?,
                        pid: row.int(4)?,
                        max_cc: row.int(5)?,
                        lease_until: row.int(6)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(&error)
        })
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
    /// `channel_id_of(N+1)`, and marks the number `dialing` (this dialer's), in one
    /// transaction that holds the number's row. Call it before sending the originate: the
    /// id on disk is what a restart reconciles.
    ///
    /// # Errors
    /// [`StoreError::NotPending`] for a number being dialled, done, or claimed by another
    /// running dialer (so a stale list does not dial twice), [`StoreError::OnDnc`] for a
    /// number on the do-not-call list, [`StoreError::ChannelIdTaken`],
    /// an unknown number, a failed write.
    pub async fn begin_attempt(
        &self,
        number_id: NumberId,
        channel_id_of: impl Fn(u32) -> String,
    ) -> Result<Attempt, StoreError> {
        self.retrying(|| self.begin_attempt_once(number_id, &channel_id_of, None))
            .await
    }

    /// Records an outcome for a pending number that is not dialled (a DNC number): attempt
    /// N+1 written `ended` at once, with no `originated_at` (nothing was sent), and the
    /// number done, under the same checks and row lock as [`Store::begin_attempt`].
    ///
    /// # Errors
    /// As [`Store::begin_attempt`]: [`StoreError::NotPending`] for a number being dialled,
    /// done or claimed by another running dialer, an unknown number, a failed write.
    pub async fn finish_without_call(
        &self,
        number_id: NumberId,
        channel_id_of: impl Fn(u32) -> String,
        ending: &Ending,
    ) -> Result<Attempt, StoreError> {
        self.retrying(|| self.begin_attempt_once(number_id, &channel_id_of, Some(ending)))
            .await
    }

    /// Writes the next attempt of a pending number: `dialing`, or, with `without_call`,
    /// `ended` with that outcome and never originated.
    async fn begin_attempt_once(
        &self,
        number_id: NumberId,
        channel_id_of: &impl Fn(u32) -> String,
        without_call: Option<&Ending>,
    ) -> Result<Attempt, StoreError> {
        let action = if without_call.is_some() {
            "record an outcome without a call"
        } else {
            "begin an attempt"
        };
        let error = self.query_error(action);
        let asterisk = self.me.asterisk();
        on_backend!(self, w, _r, d => {
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(&error)?;
            let select = format!("{}{}", sql::NUMBER_FOR_ATTEMPT, d::LOCK_ROW);
            let row = sqlx::query(&select)
                .bind(number_id.0)
                .bind(number_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&error)?
                .ok_or_else(|| StoreError::UnknownNumber {
                    path: self.path.clone(),
                    number_id,
                })?;
            let number = row.text(0).map_err(&error)?;
            let data = row.text(1).map_err(&error)?;
            let state = row.text(2).map_err(&error)?;
            let last = row.int(3).map_err(&error)?;
            let claimed_by = row.opt_text(4).map_err(&error)?;
            let lease_until = row.opt_int(5).map_err(&error)?;
            let on_dnc = row.opt_text(6).map_err(&error)?;
            let number = self.checked_number(number)?;
            let data = self.decode_data(&data)?;
            if state != "pending" {
                return Err(StoreError::NotPending {
                    path: self.path.clone(),
                    number_id,
                    state,
                });
            }
            if let Some(other) = claimed_by.filter(|by| by != self.dialer_id()) {
                if lease_until.is_some_and(|until| until >= unix_millis_now()) {
                    return Err(StoreError::NotPending {
                        path: self.path.clone(),
                        number_id,
                        state: format!("claimed by {other}"),
                    });
                }
            }
            // The last check before an originate, in the transaction that writes it.
            if let (Some(source), None) = (on_dnc, without_call) {
                return Err(StoreError::OnDnc {
                    path: self.path.clone(),
                    number_id,
                    from: source,
                });
            }
            let attempt =
                u32::try_from(last + 1).map_err(|_| self.corrupt("attempt", last.to_string()))?;
            let channel_id = channel_id_of(attempt);
            let originated_at = unix_millis_now();
            let inserted = match without_call {
                None => sqlx::query(sql::INSERT_ATTEMPT)
                    .bind(number_id.0)
                    .bind(i64::from(attempt))
                    .bind(&channel_id)
                    .bind(originated_at)
                    .bind(self.dialer_id())
                    .bind(asterisk.as_deref()),
                Some(ending) => sqlx::query(sql::INSERT_ATTEMPT_WITHOUT_CALL)
                    .bind(number_id.0)
                    .bind(i64::from(attempt))
                    .bind(&channel_id)
                    .bind(ending.outcome.as_str())
                    .bind(ending.cause)
                    .bind(ending.cause_text.as_deref())
                    .bind(ending.message.as_deref())
                    .bind(ending.ended_at)
                    .bind(self.dialer_id())
                    .bind(asterisk.as_deref()),
            }
            .execute(&mut *tx)
            .await;
            let id = match inserted {
                Ok(done) => AttemptId(done.inserted_id()),
                Err(source) if is_unique_violation(&source) => {
                    return Err(StoreError::ChannelIdTaken {
                        path: self.path.clone(),
                        channel_id,
                    });
                }
                Err(source) => return Err(error(source)),
            };
            let set_number = if without_call.is_some() {
                sql::SET_NUMBER_DONE_WITHOUT_CALL
            } else {
                sql::SET_NUMBER_DIALING
            };
            sqlx::query(set_number)
                .bind(self.dialer_id())
                .bind(number_id.0)
                .execute(&mut *tx)
                .await
                .map_err(&error)?;
            tx.commit().await.map_err(&error)?;
            Ok(Attempt {
                id,
                number_id,
                state: if without_call.is_some() {
                    AttemptState::Ended
                } else {
                    AttemptState::Dialing
                },
                dialer: Some(self.dialer_id().to_owned()),
                asterisk,
                live_at: None,
                record: AttemptRecord {
                    number,
                    data,
                    attempt,
                    outcome: without_call.map(|ending| ending.outcome),
                    cause: without_call.and_then(|ending| ending.cause),
                    cause_text: without_call.and_then(|ending| ending.cause_text.clone()),
                    message: without_call.and_then(|ending| ending.message.clone()),
                    originated_at: without_call.is_none().then_some(originated_at),
                    answered_at: None,
                    target_connected_at: None,
                    ended_at: without_call.map(|ending| ending.ended_at),
                    channel_id,
                    target_channel_id: None,
                    bridge_id: None,
                    recording_name: None,
                    recording_file: None,
                },
            })
        })
    }

    /// Puts a done number back in the queue, for a deliberate retry: its next
    /// [`Store::begin_attempt`] writes attempt N+1. Returns false if the number is not done.
    ///
    /// # Errors
    /// An unknown number or a failed write.
    pub async fn requeue(&self, number_id: NumberId) -> Result<bool, StoreError> {
        let action = "requeue a number";
        let changed = on_backend!(self, w, _r, _d => {
            let changed = sqlx::query(sql::REQUEUE)
                .bind(number_id.0)
                .execute(w)
                .await
                .map_err(self.query_error(action))?
                .rows_affected();
            if changed > 0 {
                Some(true)
            } else {
                sqlx::query(sql::NUMBER_EXISTS)
                    .bind(number_id.0)
                    .fetch_optional(w)
                    .await
                    .map_err(self.query_error(action))?
                    .map(|_| false)
            }
        });
        changed.ok_or_else(|| StoreError::UnknownNumber {
            path: self.path.clone(),
            number_id,
        })
    }

    /// Puts a done number back in the queue for a retry that is not due before
    /// `not_before`: claims skip it until then, and its next [`Store::begin_attempt`]
    /// writes attempt N+1. Returns false if the number is not done.
    ///
    /// # Errors
    /// A failed write.
    pub async fn requeue_at(
        &self,
        number_id: NumberId,
        not_before: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.number_update(sql::REQUEUE_AT, number_id, not_before, "schedule a retry")
            .await
    }

    /// Lets a pending number go until `not_before` (outside its calling window): claims
    /// skip it until then, whichever dialer asks. Returns false if it is not pending.
    ///
    /// # Errors
    /// A failed write.
    pub async fn defer(
        &self,
        number_id: NumberId,
        not_before: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.number_update(sql::DEFER, number_id, not_before, "defer a number")
            .await
    }

    async fn number_update(
        &self,
        statement: &'static str,
        number_id: NumberId,
        at: UnixMillis,
        action: &'static str,
    ) -> Result<bool, StoreError> {
        let changed = on_backend!(self, w, _r, _d => {
            sqlx::query(statement)
                .bind(at)
                .bind(number_id.0)
                .execute(w)
                .await
                .map_err(self.query_error(action))?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// When the next pending number that waits (a retry, a calling window) may be
    /// claimed, if one waits.
    ///
    /// # Errors
    /// A failed read.
    pub async fn next_not_before(&self) -> Result<Option<UnixMillis>, StoreError> {
        let action = "read when the next number may be dialled";
        let now = unix_millis_now();
        let next: Option<i64> = on_backend!(self, _w, r, _d => {
            sqlx::query_scalar(sql::NEXT_NOT_BEFORE)
                .bind(now)
                .fetch_one(r)
                .await
                .map_err(self.query_error(action))?
        });
        Ok(next)
    }

    /// Runs a guarded update of one attempt and, when it changed the row, writes the
    /// call events that go with it, in one transaction. Returns whether it changed the row
    /// (an update guarded by the row's state changes nothing once the row is past it).
    async fn update_attempt(
        &self,
        attempt_id: AttemptId,
        update: Update<'_>,
        events: &[(CallEventKind, UnixMillis, Option<i64>, Option<String>)],
        action: &'static str,
    ) -> Result<bool, StoreError> {
        self.retrying(|| self.update_attempt_once(attempt_id, &update, events, action))
            .await
    }

    async fn update_attempt_once(
        &self,
        attempt_id: AttemptId,
        update: &Update<'_>,
        events: &[(CallEventKind, UnixMillis, Option<i64>, Option<String>)],
        action: &'static str,
    ) -> Result<bool, StoreError> {
        let error = self.query_error(action);
        on_backend!(self, w, _r, d => {
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(&error)?;
            let mut query = sqlx::query(update.statement);
            for value in &update.values {
                query = match value {
                    Value::Int(v) => query.bind(*v),
                    Value::OptInt(v) => query.bind(*v),
                    Value::Text(v) => query.bind(*v),
                    Value::OptText(v) => query.bind(*v),
                };
            }
            query = query.bind(attempt_id.0);
            if let Some(guard) = &update.guard {
                query = query.bind(guard.as_str());
            }
            let changed = query
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
                tx.rollback().await.map_err(&error)?;
                return Ok(false);
            }
            for (kind, at, cause, detail) in events {
                sqlx::query(sql::INSERT_EVENT)
                    .bind(attempt_id.0)
                    .bind(*at)
                    .bind(kind.as_str())
                    .bind(*cause)
                    .bind(detail.as_deref())
                    .bind(self.dialer_id())
                    .execute(&mut *tx)
                    .await
                    .map_err(&error)?;
            }
            if let Some(then) = update.then {
                let mut then = sqlx::query(then);
                if let Some(at) = update.then_at {
                    then = then.bind(at);
                }
                then.bind(attempt_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(&error)?;
            }
            tx.commit().await.map_err(&error)?;
            Ok(true)
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
        let update = Update::new(sql::ANSWERED, vec![Value::Int(at)]);
        let events = [(CallEventKind::Answered, at, None, None)];
        self.update_attempt(attempt_id, update, &events, "record an answer")
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
        let update = Update::new(
            sql::CONNECTED,
            vec![
                Value::Int(at),
                Value::Text(target_channel_id),
                Value::Text(bridge_id),
                Value::OptText(recording_name),
            ],
        );
        let mut events = vec![(CallEventKind::Bridged, at, None, Some(bridge_id.to_owned()))];
        if let Some(name) = recording_name {
            events.push((CallEventKind::Recording, at, None, Some(name.to_owned())));
        }
        self.update_attempt(attempt_id, update, &events, "record a connection")
            .await
    }

    /// Ends the attempt with its outcome and marks its number `done`, in one transaction
    /// with its `ended` event. An attempt that has ended already keeps its outcome:
    /// returns false and changes nothing.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn finish(&self, attempt_id: AttemptId, ending: &Ending) -> Result<bool, StoreError> {
        self.finish_or_retry(attempt_id, ending, None).await
    }

    /// Ends the attempt as [`Store::finish`] does, and with `retry_at` puts its number
    /// back in the queue for a retry not due before then, in the same transaction: a crash
    /// right after the end cannot lose the retry. An attempt that has ended already
    /// changes nothing (false), so a retry is never scheduled twice.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn finish_or_retry(
        &self,
        attempt_id: AttemptId,
        ending: &Ending,
        retry_at: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        let mut update = Update::new(
            sql::FINISH,
            vec![
                Value::Text(ending.outcome.as_str()),
                Value::OptInt(ending.cause),
                Value::OptText(ending.cause_text.as_deref()),
                Value::OptText(ending.message.as_deref()),
                Value::Int(ending.ended_at),
            ],
        );
        match retry_at {
            Some(at) => {
                update.then = Some(sql::SET_NUMBER_RETRY);
                update.then_at = Some(at);
            }
            None => update.then = Some(sql::SET_NUMBER_DONE),
        }
        let mut detail = ending.outcome.as_str().to_owned();
        if let Some(message) = &ending.message {
            detail.push_str(": ");
            detail.push_str(message);
        }
        let events = [(
            CallEventKind::Ended,
            ending.ended_at,
            ending.cause,
            Some(detail),
        )];
        self.update_attempt(attempt_id, update, &events, "record an outcome")
            .await
    }

    /// Records when a live callee was there: the answer, or AMD's verdict (`--amd`); the
    /// campaign's abandon rate ([`Store::abandon_counts`]) counts from it. False if the
    /// attempt has ended.
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn live(&self, attempt_id: AttemptId, at: UnixMillis) -> Result<bool, StoreError> {
        let update = Update::new(sql::SET_LIVE, vec![Value::Int(at)]);
        self.update_attempt(attempt_id, update, &[], "record a live callee")
            .await
    }

    /// The campaign's live-answered and abandoned calls per UTC day, of every dialer,
    /// counting calls whose live moment is at or after `since` (Unix ms) and whose fate is
    /// known (ended, or connected). A call is abandoned when no target was connected
    /// within `abandon_after` of its live moment (the rule's 2 s,
    /// [`crate::rules::abandon::ABANDON_AFTER`]), or never; an AMD machine is not live.
    /// One range scan of a covering index.
    ///
    /// # Errors
    /// A failed read.
    pub async fn abandon_counts(
        &self,
        since: UnixMillis,
        abandon_after: Duration,
    ) -> Result<BTreeMap<chrono::NaiveDate, crate::rules::abandon::AbandonCounts>, StoreError> {
        let error = self.query_error("count live-answered and abandoned calls");
        let rows = on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::ABANDON_BY_DAY)
                .bind(millis(abandon_after))
                .bind(since)
                .fetch_all(r)
                .await
                .map_err(&error)?;
            rows.iter()
                .map(|row| Ok((row.int(0)?, row.int(1)?, row.int(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(&error)?
        });
        Ok(rows
            .into_iter()
            .map(|(day, live, abandoned)| {
                (
                    crate::rules::clock::from_unix_millis(day).date_naive(),
                    crate::rules::abandon::AbandonCounts {
                        live: u64::try_from(live).unwrap_or(0),
                        abandoned: u64::try_from(abandoned).unwrap_or(0),
                    },
                )
            })
            .collect())
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
        let update = Update::new(sql::SET_RECORDING_FILE, vec![Value::Text(file)]);
        self.update_attempt(attempt_id, update, &[], "record a recording file")
            .await
            .map(drop)
    }

    /// Adds a call event that changes no attempt column (`originated`, `ringing`,
    /// `reconciled`).
    ///
    /// # Errors
    /// An unknown attempt or a failed write.
    pub async fn event(
        &self,
        attempt_id: AttemptId,
        kind: CallEventKind,
        at: UnixMillis,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let action = "record a call event";
        let written = on_backend!(self, w, _r, _d => {
            sqlx::query(sql::INSERT_EVENT)
                .bind(attempt_id.0)
                .bind(at)
                .bind(kind.as_str())
                .bind(None::<i64>)
                .bind(detail)
                .bind(self.dialer_id())
                .execute(w)
                .await
                .map(drop)
        });
        match written {
            Ok(()) => Ok(()),
            // The attempt row it refers to is missing (foreign key).
            Err(source) if is_foreign_key_violation(&source) => Err(StoreError::UnknownAttempt {
                path: self.path.clone(),
                attempt_id,
            }),
            Err(source) => Err(self.query_error(action)(source)),
        }
    }

    /// An attempt's call events, oldest first.
    ///
    /// # Errors
    /// A failed read.
    pub async fn events(&self, attempt_id: AttemptId) -> Result<Vec<CallEvent>, StoreError> {
        let error = self.query_error("read call events");
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::EVENTS_OF)
                .bind(attempt_id.0)
                .fetch_all(r)
                .await
                .map_err(&error)?;
            rows.iter()
                .map(|row| {
                    Ok(CallEvent {
                        attempt_id: AttemptId(row.int(0)?),
                        at: row.int(1)?,
                        kind: row.text(2)?,
                        cause: row.opt_int(3)?,
                        detail: row.opt_text(4)?,
                        dialer: row.opt_text(5)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(&error)
        })
    }

    /// One attempt by id.
    ///
    /// # Errors
    /// An unknown attempt or a failed read.
    pub async fn attempt(&self, attempt_id: AttemptId) -> Result<Attempt, StoreError> {
        let action = "read an attempt";
        on_backend!(self, _w, r, _d => {
            let row = sqlx::query(sql::ATTEMPT_BY_ID)
                .bind(attempt_id.0)
                .fetch_optional(r)
                .await
                .map_err(self.query_error(action))?
                .ok_or_else(|| StoreError::UnknownAttempt {
                    path: self.path.clone(),
                    attempt_id,
                })?;
            self.decode_attempt(&row, action)
        })
    }

    /// Attempts that have not ended, oldest first: what a restart reconciles (with one
    /// dialer; several use [`Store::orphaned`]).
    ///
    /// # Errors
    /// A failed read.
    pub async fn unfinished(&self) -> Result<Vec<Attempt>, StoreError> {
        let action = "read the unfinished attempts";
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::UNFINISHED)
                .fetch_all(r)
                .await
                .map_err(self.query_error(action))?;
            rows.iter().map(|row| self.decode_attempt(row, action)).collect()
        })
    }

    /// Unfinished attempts whose dialer is gone (its lease ran out, it stopped, or none is
    /// recorded), never this dialer's own: a dialer on the same Asterisk reconciles them
    /// after [`Store::take_over`].
    ///
    /// # Errors
    /// A failed read.
    pub async fn orphaned(&self) -> Result<Vec<Attempt>, StoreError> {
        let action = "read the attempts of stopped dialers";
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::ORPHANED)
                .bind(self.dialer_id())
                .bind(unix_millis_now())
                .fetch_all(r)
                .await
                .map_err(self.query_error(action))?;
            rows.iter().map(|row| self.decode_attempt(row, action)).collect()
        })
    }

    /// Makes an unfinished attempt this dialer's, if it still belongs to the dialer it had
    /// when read (another dialer may have taken it first), with a `reconciled` event.
    /// Returns whether it is now this dialer's.
    ///
    /// # Errors
    /// A failed write.
    pub async fn take_over(&self, attempt: &Attempt) -> Result<bool, StoreError> {
        let asterisk = self.me.asterisk();
        let from = attempt.dialer.clone().unwrap_or_default();
        let update = Update::new(
            sql::TAKE_OVER,
            vec![
                Value::Text(self.dialer_id()),
                Value::OptText(asterisk.as_deref()),
            ],
        )
        .guarded_by(from.clone());
        let detail = format!(
            "taken over from {}",
            if from.is_empty() {
                "an earlier run"
            } else {
                &from
            }
        );
        let events = [(
            CallEventKind::Reconciled,
            unix_millis_now(),
            None,
            Some(detail),
        )];
        self.update_attempt(attempt.id, update, &events, "take over an attempt")
            .await
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
        on_backend!(self, w, _r, d => {
            let mut tx = w.begin_with(d::BEGIN_WRITE).await.map_err(&error)?;
            sqlx::query(sql::VOID_ATTEMPT_NUMBER)
                .bind(attempt_id.0)
                .execute(&mut *tx)
                .await
                .map_err(&error)?;
            sqlx::query(sql::VOID_ATTEMPT_EVENTS)
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
        })
    }

    /// Ended attempts whose recording is on Asterisk but not downloaded (the dialer died
    /// during the download, or Asterisk was unreachable): a resumed run fetches them.
    ///
    /// # Errors
    /// A failed read.
    pub async fn unsaved_recordings(&self) -> Result<Vec<Attempt>, StoreError> {
        let action = "read the unsaved recordings";
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::UNSAVED_RECORDINGS)
                .fetch_all(r)
                .await
                .map_err(self.query_error(action))?;
            rows.iter().map(|row| self.decode_attempt(row, action)).collect()
        })
    }

    /// A page of attempts after `(number_id, attempt)`, in that order.
    async fn attempts_page(
        &self,
        number_id: i64,
        attempt: i64,
    ) -> Result<Vec<Attempt>, StoreError> {
        let action = "read the attempts";
        on_backend!(self, _w, r, _d => {
            let rows = sqlx::query(sql::ATTEMPTS_PAGE)
                .bind(number_id)
                .bind(number_id)
                .bind(attempt)
                .bind(ATTEMPTS_PAGE)
                .fetch_all(r)
                .await
                .map_err(self.query_error(action))?;
            rows.iter().map(|row| self.decode_attempt(row, action)).collect()
        })
    }

    /// Every attempt in (number, attempt) order, read a page at a time, for the report.
    pub fn attempts(&self) -> impl Stream<Item = Result<AttemptRecord, StoreError>> + Send + '_ {
        let start = Some((0i64, 0i64));
        stream::try_unfold(start, move |after| async move {
            let Some((number_id, attempt)) = after else {
                return Ok(None);
            };
            let page = self.attempts_page(number_id, attempt).await?;
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

    /// Whether any number of the campaign is still pending or being dialled (by any
    /// dialer): cheap, unlike [`Store::counts`].
    ///
    /// # Errors
    /// A failed read.
    pub async fn has_open_numbers(&self) -> Result<bool, StoreError> {
        on_backend!(self, _w, r, _d => {
            sqlx::query(sql::ANY_OPEN_NUMBER)
                .fetch_optional(r)
                .await
                .map(|row| row.is_some())
                .map_err(self.query_error("look for numbers left"))
        })
    }

    /// Numbers by state, ended attempts by outcome and the last minute's ends, of the
    /// whole campaign (every dialer's), read in one snapshot.
    ///
    /// # Errors
    /// A failed read or an unknown stored outcome.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let action = "count numbers and outcomes";
        let error = self.query_error(action);
        let since = unix_millis_now() - 60_000;
        let mut counts = Counts {
            total: 0,
            pending: 0,
            in_progress: 0,
            done: 0,
            by_outcome: Outcome::ALL.iter().map(|&outcome| (outcome, 0)).collect(),
            ended_last_minute: 0,
            first_end_in_minute: None,
        };
        let (states, outcomes) = on_backend!(self, _w, r, _d => {
            let mut tx = r.begin().await.map_err(&error)?;
            let states = sqlx::query(sql::COUNT_NUMBERS)
                .fetch_all(&mut *tx)
                .await
                .map_err(&error)?;
            let outcomes = sqlx::query(sql::COUNT_OUTCOMES)
                .fetch_all(&mut *tx)
                .await
                .map_err(&error)?;
            let recent = sqlx::query(sql::RECENT_ENDS)
                .bind(since)
                .fetch_one(&mut *tx)
                .await
                .map_err(&error)?;
            tx.rollback().await.map_err(&error)?;
            counts.ended_last_minute = u64::try_from(recent.int(0).map_err(&error)?).unwrap_or(0);
            counts.first_end_in_minute = recent.opt_int(1).map_err(&error)?;
            let states = states
                .iter()
                .map(|row| Ok((row.text(0)?, count_of(row)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(&error)?;
            let outcomes = outcomes
                .iter()
                .map(|row| Ok((row.text(0)?, count_of(row)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(&error)?;
            (states, outcomes)
        });
        for (state, count) in states {
            counts.total += count;
            match state.as_str() {
                "pending" => counts.pending = count,
                "dialing" => counts.in_progress = count,
                "done" => counts.done = count,
                _ => return Err(self.corrupt("number state", state)),
            }
        }
        for (name, count) in outcomes {
            let outcome: Outcome = name
                .parse()
                .map_err(|_| self.corrupt("outcome", name.as_str()))?;
            *counts.by_outcome.entry(outcome).or_default() += count;
        }
        Ok(counts)
    }

    fn decode_attempt(
        &self,
        row: &impl Fields,
        action: &'static str,
    ) -> Result<Attempt, StoreError> {
        let error = self.query_error(action);
        let text = |index: usize| row.opt_text(index).map_err(&error);
        let int = |index: usize| row.opt_int(index).map_err(&error);
        let state = row.text(4).map_err(&error)?;
        let state =
            AttemptState::parse(&state).ok_or_else(|| self.corrupt("attempt state", state))?;
        let outcome = match text(5)? {
            None => None,
            Some(name) => Some(
                name.parse()
                    .map_err(|_| self.corrupt("outcome", name.as_str()))?,
            ),
        };
        let attempt = row.int(2).map_err(&error)?;
        let data = row.text(18).map_err(&error)?;
        Ok(Attempt {
            id: AttemptId(row.int(0).map_err(&error)?),
            number_id: NumberId(row.int(1).map_err(&error)?),
            state,
            dialer: text(19)?,
            asterisk: text(20)?,
            live_at: int(21)?,
            record: AttemptRecord {
                number: row.text(17).map_err(&error)?,
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
                channel_id: row.text(3).map_err(&error)?,
                target_channel_id: text(13)?,
                bridge_id: text(14)?,
                recording_name: text(15)?,
                recording_file: text(16)?,
            },
        })
    }
}

/// A value bound to a statement, for updates written once for both backends.
enum Value<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// A guarded update of one attempt: its statement takes `values`, then the attempt's id
/// (and the guard's value, if any); `then` runs after it with the id, in the same
/// transaction.
struct Update<'a> {
    statement: &'static str,
    values: Vec<Value<'a>>,
    guard: Option<String>,
    then: Option<&'static str>,
    /// A time bound before the attempt id in `then` (a retry's `not_before`).
    then_at: Option<i64>,
}

impl<'a> Update<'a> {
    fn new(statement: &'static str, values: Vec<Value<'a>>) -> Update<'a> {
        Update {
            statement,
            values,
            guard: None,
            then: None,
            then_at: None,
        }
    }

    fn guarded_by(mut self, value: String) -> Update<'a> {
        self.guard = Some(value);
        self
    }
}

fn count_of(row: &impl Fields) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.int(1)?).unwrap_or(0))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}

/// A MySQL deadlock (1213) or lock wait timeout (1205): the transaction was rolled back
/// and may simply run again.
fn is_transient(error: &StoreError) -> bool {
    let StoreError::Query { source, .. } = error else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|e| matches!(e.number(), 1205 | 1213))
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_foreign_key_violation())
}

fn migrate_error(path: &Path, error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::NewerSchema {
            path: path.to_owned(),
            version,
        },
        error => StoreError::Open {
            path: path.to_owned(),
            source: error.into(),
        },
    }
}

fn data_json(data: &BTreeMap<String, String>) -> String {
    if data.is_empty() {
        return "{}".to_owned();
    }
    // A map of strings always serialises.
    serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned())
}
