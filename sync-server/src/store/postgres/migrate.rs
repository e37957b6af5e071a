//! `migrate`: moves an embedded station (its data directory's two SQLite
//! files and its photos) into PostgreSQL, for a district that joins a city's
//! station. The accounts are copied table by table in one transaction; the
//! change feed is pushed in its order, so every change keeps its position and
//! the phones' cursors stay good; the photos are linked (or copied) into the
//! new read model's photo directory.

use std::path::Path;

use menqian_core::ApplyReport;
use postgres::types::ToSql;
use rusqlite::types::Value;

use super::{Conn, PgSyncStore};
use crate::store::{SqliteSyncStore, StoreError, StoreResult, SyncStore};

/// The accounts' tables and the columns both schemas have, parents first.
const TABLES: &[(&str, &[&str])] = &[
    (
        "users",
        &[
            "id",
            "name",
            "role",
            "area",
            "area_epoch",
            "password_hash",
            "created_at",
        ],
    ),
    (
        "enrollment_codes",
        &["code_hash", "user_id", "expires_at", "used_at"],
    ),
    (
        "devices",
        &[
            "id",
            "user_id",
            "name",
            "actor",
            "token_hash",
            "enrolled_at",
            "revoked_at",
            "area_epoch",
            "last_seen_at",
        ],
    ),
    ("device_blobs", &["device_id", "hash"]),
    (
        "sessions",
        &["token_hash", "user_id", "csrf", "created_at", "expires_at"],
    ),
    (
        "receipts",
        &["token_hash", "case_id", "phone", "created_at"],
    ),
    (
        "steward_requests",
        &["id", "lane", "name", "phone", "created_at", "user_id"],
    ),
    (
        "alert_sources",
        &[
            "id",
            "kind",
            "shop_id",
            "lat",
            "lon",
            "secret",
            "created_at",
        ],
    ),
    (
        "reminders",
        &[
            "id", "shop_id", "category", "source", "first_at", "last_at", "deadline", "alerts",
            "case_id",
        ],
    ),
    (
        "alerts",
        &[
            "source",
            "alert_id",
            "reminder_id",
            "at",
            "received_at",
            "photo",
        ],
    ),
    ("open311_keys", &["key_hash", "name", "created_at"]),
];

/// Tables whose ids PostgreSQL generates: their sequences continue after
/// the copied ids.
const GENERATED_IDS: &[&str] = &["steward_requests", "reminders"];

/// What a migration moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// Rows per accounts table.
    pub rows: Vec<(&'static str, u64)>,
    /// Changes pushed into the feed.
    pub changes: u64,
    /// The feed's last position, the same in both stores.
    pub head: u64,
    /// Photo and thumbnail files linked or copied.
    pub photos: u64,
}

/// Moves the station in `dir` into the empty database at `url`. The
/// station must be stopped. `progress` hears the changes moved so far.
pub fn to_postgres(
    dir: &Path,
    url: &str,
    qr_hosts: Vec<String>,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<Moved> {
    let mut sqlite = SqliteSyncStore::open(dir, qr_hosts.clone())?;
    let mut pg = PgSyncStore::open(url, dir, qr_hosts)?;
    let mut conn = Conn::open(url)?;
    let used: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM feed)",
            &[],
        )?
        .get(0);
    if used {
        return Err(StoreError::Conflict(
            "this database holds a station already: migrate into an empty one".into(),
        ));
    }
    let mut moved = Moved {
        rows: copy_accounts(&dir.join("accounts.sqlite"), &mut conn)?,
        ..Moved::default()
    };
    let mut cursor = 0;
    loop {
        let batch = sqlite.documents().changes_since(cursor, 1_000)?;
        let ApplyReport { applied, .. } = pg.import_changes(&batch.changes)?;
        moved.changes += applied as u64;
        cursor = batch.cursor;
        progress(moved.changes);
        if !batch.more {
            break;
        }
    }
    pg.refresh()?;
    moved.head = pg.head()?;
    let expected = sqlite.documents().feed_head()?;
    if moved.head != expected {
        return Err(StoreError::Conflict(format!(
            "the feed moved to position {} but the station's ended at {expected}: phones would pull from the wrong place",
            moved.head
        )));
    }
    moved.photos = link_tree(
        sqlite.documents().blobs().root(),
        pg.documents().blobs().root(),
    )?;
    Ok(moved)
}

/// Copies every accounts table, in one transaction.
fn copy_accounts(path: &Path, conn: &mut Conn) -> StoreResult<Vec<(&'static str, u64)>> {
    let sqlite = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut tx = conn.transaction()?;
    let mut counts = Vec::new();
    for (table, columns) in TABLES {
        let types: Vec<String> = columns
            .iter()
            .map(|c| {
                tx.query_one(
                    "SELECT data_type FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                    &[table, c],
                )
                .map(|r| r.get(0))
            })
            .collect::<Result<_, _>>()?;
        let list = columns.join(", ");
        let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = tx.prepare(&format!(
            "INSERT INTO {table} ({list}) OVERRIDING SYSTEM VALUE VALUES ({})",
            params.join(", ")
        ))?;
        let mut select = sqlite.prepare(&format!("SELECT {list} FROM {table}"))?;
        let mut rows = select.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
            for (i, kind) in types.iter().enumerate() {
                values.push(convert(table, columns[i], kind, row.get(i)?)?);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
            tx.execute(&insert, &refs)?;
            n += 1;
        }
        counts.push((*table, n));
    }
    for table in GENERATED_IDS {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} HAVING max(id) IS NOT NULL"
            ),
            &[],
        )?;
    }
    tx.commit()?;
    Ok(counts)
}

/// One SQLite value as the PostgreSQL column's type wants it.
fn convert(
    table: &str,
    column: &'static str,
    kind: &str,
    value: Value,
) -> StoreResult<Box<dyn ToSql + Sync>> {
    let wrong = || StoreError::Invalid {
        field: column,
        reason: format!("{table}.{column} holds a value that is not a {kind}"),
    };
    Ok(match (kind, value) {
        ("bigint", Value::Integer(i)) => Box::new(Some(i)),
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("text", Value::Text(t)) => Box::new(Some(t)),
        ("text", Value::Null) => Box::new(None::<String>),
        ("bytea", Value::Blob(b)) => Box::new(Some(b)),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        ("double precision", Value::Real(f)) => Box::new(Some(f)),
        ("double precision", Value::Integer(i)) => Box::new(Some(i as f64)),
        ("double precision", Value::Null) => Box::new(None::<f64>),
        _ => return Err(wrong()),
    })
}

/// Links (or, across file systems, copies) every finished photo under
/// `from` to the same place under `to` (not unfinished uploads); returns how
/// many.
fn link_tree(from: &Path, to: &Path) -> StoreResult<u64> {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    std::fs::create_dir_all(to).map_err(menqian_core::Error::from)?;
    for entry in entries {
        let entry = entry.map_err(menqian_core::Error::from)?;
        if entry.file_name() == "partial" {
            continue;
        }
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(menqian_core::Error::from)?;
        if kind.is_dir() {
            n += link_tree(&source, &target)?;
        } else if kind.is_file() && !target.exists() {
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target).map_err(menqian_core::Error::from)?;
            }
            n += 1;
        }
    }
    Ok(n)
}
