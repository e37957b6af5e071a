//! The station on PostgreSQL (issue 17), for a city whose station runs as
//! several instances against one database: the accounts ([`PgAccounts`]) and
//! the authoritative documents with their change feed ([`PgDocuments`]).
//!
//! The store runs on blocking threads, so this uses the synchronous client.

mod accounts;
mod documents;
mod station;

pub use accounts::PgAccounts;
pub use documents::{FeedPage, PgDocuments, Sequencer};
pub use station::{PgReader, PgSyncStore};

use postgres::Client;

use super::StoreResult;

/// The schema, one migration per version, shared by every table the station
/// keeps in the database; one that is newer than these is refused, as the
/// embedded store refuses one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_accounts.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_documents.sql"),
    ),
];

/// An arbitrary, fixed key: instances starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6d65_6e71_6961_6e01;

/// Brings the database's schema up to date, in one transaction.
fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let current: i64 = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(menqian_core::Error::DatabaseTooNew {
            found: current,
            supported: known,
        }
        .into());
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql)?;
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[version])?;
    }
    tx.commit()?;
    Ok(())
}
