//! The station on PostgreSQL (issue 17), for a city whose station runs as
//! several instances against one database: the accounts ([`PgAccounts`]) and
//! the authoritative documents with their change feed ([`PgDocuments`]).
//!
//! The store runs on blocking threads, so this uses the synchronous client.

mod accounts;
mod documents;
pub mod migrate;
mod station;

pub use accounts::PgAccounts;
pub use documents::{FeedPage, PgDocuments, PgPush, Sequencer};
pub use station::{PUSH_CONNECTIONS, PgReader, PgSyncStore};

use postgres::{Client, NoTls};

use super::StoreResult;

/// One connection of the synchronous client. That client drives its own
/// small runtime, which may not start or stop on a thread that drives the
/// station's: connections are opened on the store's blocking threads, and
/// one dropped where the station's runtime runs is closed on a thread of its
/// own. A connection PostgreSQL closed (a restart) is opened again.
pub(crate) struct Conn {
    /// Always `Some` but while dropping.
    client: Option<Client>,
    url: String,
}

impl Conn {
    pub(crate) fn open(url: &str) -> StoreResult<Conn> {
        Ok(Conn {
            client: Some(Client::connect(url, NoTls)?),
            url: url.to_string(),
        })
    }

    /// Opens the connection again if it was closed; whether it was.
    pub(crate) fn reopen_if_closed(&mut self) -> StoreResult<bool> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(false);
        }
        self.client = Some(Client::connect(&self.url, NoTls)?);
        Ok(true)
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        match &self.client {
            Some(c) => c,
            None => unreachable!("a connection is used only before it is dropped"),
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.client {
            Some(c) => c,
            None => unreachable!("a connection is used only before it is dropped"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

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
    (
        3,
        include_str!("../../../migrations/postgres/0003_views.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_feed_order.sql"),
    ),
];

/// An arbitrary, fixed key: instances starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6d65_6e71_6961_6e01;

/// Brings the database's schema up to date, in one transaction.
fn migrate(client: &mut Client) -> StoreResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let fresh: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NULL", &[])?
        .get(0);
    if fresh {
        tx.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")?;
    }
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

/// A group commit gives every push its answer; should one be missing, its
/// push fails as the store's own fault (the phone tries again, and a push
/// tried again is applied once).
fn no_answer() -> super::StoreError {
    menqian_core::Error::Io(std::io::Error::other("a push of a group has no answer")).into()
}
