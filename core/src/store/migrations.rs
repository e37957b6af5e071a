//! Numbered SQL migrations, each applied in one transaction, the schema version
//! kept in `PRAGMA user_version`: the one runner for the core's store and for
//! the station's own databases (its accounts), which refuses a database newer
//! than the code that opens it.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// One numbered step of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
    /// The index tables changed shape: rebuild them from the documents.
    pub rebuilds_index: bool,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/0001_documents.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/0002_index.sql"),
        rebuilds_index: true,
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/0003_sync.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/0004_areas.sql"),
        rebuilds_index: true,
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/0005_evidence.sql"),
        rebuilds_index: true,
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/0006_cases_scores.sql"),
        rebuilds_index: true,
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/0007_duplicate_search.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/0008_hardening.sql"),
        rebuilds_index: true,
    },
    Migration {
        version: 9,
        sql: include_str!("../../migrations/0009_console.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 10,
        sql: include_str!("../../migrations/0010_case_area.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 11,
        sql: include_str!("../../migrations/0011_views.sql"),
        // The rebuild writes every document's view.
        rebuilds_index: true,
    },
    Migration {
        version: 12,
        sql: include_str!("../../migrations/0012_lighter_cases.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 13,
        sql: include_str!("../../migrations/0013_case_places.sql"),
        rebuilds_index: false,
    },
];

pub const LATEST_VERSION: i64 = 13;

/// Applies every migration above the database's version, up to `target`.
/// Returns whether the index must be rebuilt.
pub(crate) fn migrate(conn: &mut Connection, target: i64) -> Result<bool> {
    apply(conn, MIGRATIONS, target)
}

/// Applies every one of `migrations` (numbered 1, 2, … in order) above the
/// database's version, up to `target`, each in its own transaction; refuses
/// a database whose version is past the last of them. Returns whether one
/// that was applied asks for the index to be rebuilt.
pub fn apply(conn: &mut Connection, migrations: &[Migration], target: i64) -> Result<bool> {
    let latest = migrations.last().map_or(0, |m| m.version);
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest {
        return Err(Error::DatabaseTooNew {
            found: current,
            supported: latest,
        });
    }
    let mut rebuild = false;
    for m in migrations
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
        rebuild |= m.rebuilds_index;
    }
    Ok(rebuild)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_in_order_and_match_file_names() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST_VERSION));
    }
}
