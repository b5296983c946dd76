//! What is MySQL's (and MariaDB's) own in the store: where the server is and how to log in,
//! connection settings, the conflict clause, row locks, the schema's DDL, the check that a
//! database is a store at all, and the import's lock. `sqlite.rs` is its twin; the
//! statements in `sql.rs` serve both.
//!
//! Several dialers may share one campaign here: they claim numbers with
//! `SELECT ... FOR UPDATE SKIP LOCKED` in short transactions under READ COMMITTED (rows
//! another dialer is claiming are skipped, not waited for; InnoDB keeps no gap locks).

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Executor as _, MySql, Row as _};

use sqlx::migrate::Migrator;

/// Versions and DDL, oldest first (the same versions as SQLite's).
const MIGRATIONS: super::embedded::Migrations = &[
    (
        1,
        "campaign numbers attempts",
        include_str!("migrations/mysql/0001_campaign_numbers_attempts.sql"),
    ),
    (
        2,
        "claims dialers call events",
        include_str!("migrations/mysql/0002_claims_dialers_call_events.sql"),
    ),
    (
        3,
        "not before",
        include_str!("migrations/mysql/0003_not_before.sql"),
    ),
    (4, "dnc", include_str!("migrations/mysql/0004_dnc.sql")),
    (
        5,
        "live at",
        include_str!("migrations/mysql/0005_live_at.sql"),
    ),
];

/// A write transaction: InnoDB locks rows as they are written.
pub(super) const BEGIN_WRITE: &str = "BEGIN";
/// Starts the multi-row number insert: a number already stored is skipped, not an error.
pub(super) const INSERT_NUMBERS_VERB: &str = "INSERT IGNORE";
/// `INSERT IGNORE` does it all.
pub(super) const IGNORE_DUPLICATE_NUMBERS: &str = "";
/// Locks the row read until the transaction ends.
pub(super) const LOCK_ROW: &str = " FOR UPDATE";
/// Locks the rows read, skipping those another transaction holds.
pub(super) const LOCK_ROWS_SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// A claim of unclaimed candidates reads them through (claimed_by, id), so that a row
/// another dialer claimed since is not in its range (see `sql::CLAIM_LOCK`).
pub(super) const BY_CLAIMER: &str = " FORCE INDEX (numbers_claimed_by)";
/// Any other claim reads its candidates by primary key: through a secondary index, InnoDB
/// keeps the lock of a row the `WHERE` rejects until the transaction ends.
pub(super) const BY_PRIMARY_KEY: &str = " FORCE INDEX (PRIMARY)";
/// MySQL's limit on placeholders per statement is 65535; three per number row.
pub(super) const ROWS_PER_INSERT: usize = 2000;

/// Connections per dialer: the calls' writes, the claims, the status and the report.
const POOL_SIZE: u32 = 8;

/// ER_BAD_DB_ERROR: the database does not exist.
const UNKNOWN_DATABASE: u16 = 1049;

/// Where a MySQL/MariaDB campaign store is. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub enum MySqlTarget {
    /// `mysql://USER:PASSWORD@HOST:PORT/DATABASE` (`--db` or `DATABASE_URL`).
    Url(String),
    /// The seed's `MYSQL_HOST`, `MYSQL_PORT`, `MYSQL_USER`, `MYSQL_PASSWORD`,
    /// `MYSQL_DATABASE`.
    Parts {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// User.
        user: String,
        /// Password, if any.
        password: Option<String>,
        /// Database (schema).
        database: String,
    },
}

impl MySqlTarget {
    /// Whether `text` is a MySQL URL (`mysql://` or `mariadb://`).
    pub fn is_url(text: &str) -> bool {
        text.starts_with("mysql://") || text.starts_with("mariadb://")
    }

    /// The connection options; the URL's own parameters (`ssl-mode`, ...) are kept.
    ///
    /// # Errors
    /// A URL sqlx cannot read, or one without a database.
    pub fn options(&self) -> Result<MySqlConnectOptions, String> {
        let options = match self {
            MySqlTarget::Url(url) => {
                let url = url
                    .strip_prefix("mariadb://")
                    .map_or_else(|| url.clone(), |rest| format!("mysql://{rest}"));
                MySqlConnectOptions::from_str(&url).map_err(|e| e.to_string())?
            }
            MySqlTarget::Parts {
                host,
                port,
                user,
                password,
                database,
            } => {
                let options = MySqlConnectOptions::new()
                    .host(host)
                    .port(*port)
                    .username(user)
                    .database(database);
                match password {
                    Some(password) => options.password(password),
                    None => options,
                }
            }
        };
        match options.get_database() {
            Some(name) if !name.is_empty() => Ok(options.charset("utf8mb4")),
            _ => Err("names no database (mysql://USER:PASSWORD@HOST:PORT/DATABASE)".to_owned()),
        }
    }
}

impl fmt::Display for MySqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MySqlTarget::Url(url) => f.write_str(&redact(url)),
            MySqlTarget::Parts {
                host,
                port,
                user,
                database,
                ..
            } => write!(f, "mysql://{user}@{host}:{port}/{database}"),
        }
    }
}

impl fmt::Debug for MySqlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MySqlTarget({self})")
    }
}

/// The URL with its password (if any) replaced by `***`.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A pool whose connections read committed data and lock only the rows they touch.
pub(super) async fn connect(options: MySqlConnectOptions) -> Result<MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection
                    .execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                connection
                    .execute("SET SESSION innodb_lock_wait_timeout = 20")
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// Whether a connection failed because the database does not exist.
pub(super) fn is_unknown_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|e| e.number() == UNKNOWN_DATABASE)
}

/// Whether the database holds tables but no migration history: some other program's
/// database, which the migrations must not touch.
pub(super) async fn is_foreign(pool: &MySqlPool) -> Result<bool, sqlx::Error> {
    let tables: Vec<String> = sqlx::query(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()?;
    Ok(!tables.is_empty() && !tables.iter().any(|name| name == "_sqlx_migrations"))
}

/// The migrator that brings a database to the current schema.
async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    super::embedded::migrator(MIGRATIONS).await
}

/// Brings the database to the current schema under a named lock of our own: dialers starting together migrate one after another (sqlx's
/// own lock let three of them apply version 1 at once), and the later ones find it done.
pub(super) async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = migrator().await?;
    let mut connection = pool.acquire().await?;
    let got: Option<i64> =
        sqlx::query("SELECT GET_LOCK(CONCAT('outbound-dialer-migrate:', DATABASE()), 120)")
            .fetch_one(&mut *connection)
            .await?
            .try_get(0)?;
    if got != Some(1) {
        return Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(
            "another dialer held the migration lock for 120 s".to_owned(),
        )));
    }
    // Run on another connection of the pool: the lock is this session's, and holds for
    // the others' sessions all the same.
    let migrated = migrator.run(pool).await;
    let released = sqlx::query("DO RELEASE_LOCK(CONCAT('outbound-dialer-migrate:', DATABASE()))")
        .execute(&mut *connection)
        .await;
    if released.is_err() {
        // A closed session frees its locks.
        drop(connection.detach());
    }
    migrated
}

/// The import's lock: held on one connection (named locks belong to a session), so the
/// dialers of a campaign starting together import its list once, one after another.
pub(super) struct ImportLock(Option<PoolConnection<MySql>>);

/// How long a dialer waits for another's import.
const IMPORT_WAIT_SECONDS: i64 = 600;

impl ImportLock {
    pub(super) async fn acquire(pool: &MySqlPool) -> Result<ImportLock, sqlx::Error> {
        let mut connection = pool.acquire().await?;
        let got: Option<i64> =
            sqlx::query("SELECT GET_LOCK(CONCAT('outbound-dialer-import:', DATABASE()), ?)")
                .bind(IMPORT_WAIT_SECONDS)
                .fetch_one(&mut *connection)
                .await?
                .try_get(0)?;
        if got != Some(1) {
            return Err(sqlx::Error::Protocol(format!(
                "another dialer held the import lock for {IMPORT_WAIT_SECONDS} s"
            )));
        }
        Ok(ImportLock(Some(connection)))
    }

    pub(super) async fn release(mut self) {
        if let Some(mut connection) = self.0.take() {
            let released =
                sqlx::query("DO RELEASE_LOCK(CONCAT('outbound-dialer-import:', DATABASE()))")
                    .execute(&mut *connection)
                    .await;
            if released.is_err() {
                // A closed session frees its locks.
                drop(connection.detach());
            }
        }
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        // Not released (an error path): closing the session frees the lock, where
        // returning it to the pool would keep it held.
        if let Some(connection) = self.0.take() {
            drop(connection.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("mysql://dialer:s3cret@127.0.0.1:3306/calls"),
            "mysql://dialer:***@127.0.0.1:3306/calls"
        );
        assert_eq!(
            redact("mysql://dialer@127.0.0.1/calls"),
            "mysql://dialer@127.0.0.1/calls"
        );
        assert_eq!(
            redact("mysql://a:b@c@127.0.0.1/d?ssl-mode=disabled"),
            "mysql://a:***@127.0.0.1/d?ssl-mode=disabled"
        );
        let target = MySqlTarget::Url("mysql://u:pw-123@127.0.0.1:3306/db".into());
        assert!(!format!("{target} {target:?}").contains("pw-123"));
        let parts = MySqlTarget::Parts {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "u".into(),
            password: Some("pw-123".into()),
            database: "db".into(),
        };
        assert!(!format!("{parts} {parts:?}").contains("pw-123"));
        assert!(parts.options().is_ok());
    }

    #[test]
    fn a_url_needs_a_database() {
        assert!(
            MySqlTarget::Url("mysql://u:p@127.0.0.1:3306".into())
                .options()
                .is_err()
        );
        assert!(
            MySqlTarget::Url("mariadb://u:p@127.0.0.1:3306/x".into())
                .options()
                .is_ok()
        );
    }
}
