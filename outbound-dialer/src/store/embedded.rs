//! Migrations compiled into the binary, one list per dialect with the same versions:
//! version N means the same schema in SQLite and in MySQL.

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Version, description and DDL, oldest first. A released migration is never edited (its
/// checksum is stored); a change is a new file.
pub(super) type Migrations = &'static [(i64, &'static str, &'static str)];

#[derive(Debug)]
struct Embedded(Migrations);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
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

/// The migrator that brings a store to the current schema.
pub(super) async fn migrator(list: Migrations) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(list)).await
}
