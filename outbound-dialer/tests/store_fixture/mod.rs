//! The two stores a store test body runs on: an SQLite file in a temporary directory, and
//! a database of its own on the tests' MariaDB (ari-lab), so one body checks both.

// Each test file uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use outbound_dialer::numbers::NumberEntry;
use outbound_dialer::store::{DialerInfo, Location, MySqlTarget, Store};

/// The campaign every fixture store holds.
pub(crate) const CAMPAIGN: &str = "spring";
/// The app of the dialer [`Fixture::with`] registers.
pub(crate) const APP: &str = "app-a";

/// Where one test's store lives.
pub(crate) enum Fixture {
    Sqlite(tempfile::TempDir),
    MySql(ari_lab::mariadb::TestDatabase),
}

impl Fixture {
    /// An SQLite file in a fresh temporary directory.
    pub(crate) fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh database named after `name` on the tests' MariaDB.
    pub(crate) fn mariadb(name: &str) -> Fixture {
        Fixture::MySql(ari_lab::mariadb::MariaDb::get().database(name))
    }

    /// What `--db` would say for it.
    pub(crate) fn location(&self) -> Location {
        match self {
            Fixture::Sqlite(dir) => Location::Sqlite(dir.path().join("c.sqlite")),
            Fixture::MySql(db) => Location::MySql(MySqlTarget::Url(db.url.clone())),
        }
    }

    /// Whether several dialers may share it (MySQL).
    pub(crate) fn shared(&self) -> bool {
        matches!(self, Fixture::MySql(_))
    }

    /// The campaign's store, opened (migrated) as a dialer would.
    pub(crate) async fn open(&self) -> Store {
        Store::open_at(&self.location(), CAMPAIGN).await.unwrap()
    }

    /// A store with these numbers, its dialer ([`APP`], 30 s lease) registered.
    pub(crate) async fn with(&self, numbers: &[&str]) -> Store {
        let store = self.open().await;
        let lines = numbers
            .iter()
            .enumerate()
            .map(|(i, n)| entry(i as u64 + 1, n));
        store.import(lines).await.unwrap();
        store.register_dialer(&info(APP, 30_000)).await.unwrap();
        store
    }
}

/// A line of the number list.
pub(crate) fn entry(line: u64, number: &str) -> Result<NumberEntry, Infallible> {
    Ok(NumberEntry {
        line,
        number: number.to_owned(),
        data: BTreeMap::new(),
    })
}

/// A dialer of `app` with a lease of `lease_ms`.
pub(crate) fn info(app: &str, lease_ms: u64) -> DialerInfo {
    DialerInfo {
        app: app.to_owned(),
        asterisk: "http://127.0.0.1:8088".to_owned(),
        max_cc: 4,
        lease: Duration::from_millis(lease_ms),
    }
}
