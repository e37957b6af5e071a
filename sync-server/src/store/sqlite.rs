//! The embedded backend: `station.sqlite` (the core store, durable) and
//! `accounts.sqlite` in one data directory.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use menqian_core::store::migrations::{self, Migration};
use menqian_core::wire::WireBatch;
use menqian_core::{
    ApplyReport, Area, GroupedPush, Incoming, PushBases, Role, Store, StoreConfig, Writer,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::periodic::Periodic;
use super::{
    Accounts, AccountsRead, AlertEvent, AlertRecorded, AlertSource, CACHE_MIB, Device, Enrolled,
    Reminder, Session, StewardRequest, StoreError, StoreResult, SyncRead, SyncStore, User,
    checked_user_id, code_refusal, hash, latest_photos, new_code, new_device_id, new_token, text,
};

/// The embedded backend's documents and feed (`station.sqlite`, the core
/// store, durable), with accounts beside them: `accounts.sqlite` in the same
/// directory unless [`SqliteSyncStore::open_with`] was given others.
pub struct SqliteSyncStore {
    store: Store,
    accounts: Box<dyn Accounts>,
    dir: std::path::PathBuf,
    config: StoreConfig,
    /// Copies the WAL back into the database beside the writer.
    _checkpoints: Periodic,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The WAL's length, in pages, past which a checkpoint makes the next commit
/// start it over (64 MiB of 4 KiB pages).
const WAL_RESTART_PAGES: i64 = 16_384;

/// Checkpoints the documents' WAL every [`CHECKPOINT_EVERY`] on a connection
/// of its own, so commits never do it (`StoreConfig::background_checkpoints`).
/// A passive checkpoint copies what no reader still needs and blocks nobody,
/// but under a steady stream of commits it never catches up with the last
/// one, and the WAL would grow for ever (and every read with it). So once
/// the WAL passes [`WAL_RESTART_PAGES`], a restarting checkpoint holds new
/// commits back for the few pages left, and the next commit writes the WAL
/// from its start again.
fn checkpoints(path: &Path) -> StoreResult<Periodic> {
    let mut conn = Connection::open(path)?;
    menqian_core::wait_for_locks(&mut conn)?;
    let checkpoint = move |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            r.get::<_, i64>(1)
        })
    };
    let periodic = Periodic::start("checkpoints", CHECKPOINT_EVERY, move || {
        let done = checkpoint("PASSIVE").and_then(|pages| {
            if pages > WAL_RESTART_PAGES {
                checkpoint("RESTART")?;
            }
            Ok(())
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "checkpointing the documents' WAL");
        }
    })
    .map_err(menqian_core::Error::from)?;
    Ok(periodic)
}

/// A read-only pair of handles beside the writer's.
pub struct SqliteReader {
    store: Store,
    accounts: Box<dyn AccountsRead>,
}

/// The accounts in `accounts.sqlite`.
pub struct SqliteAccounts {
    conn: Connection,
    path: std::path::PathBuf,
}

impl std::fmt::Debug for SqliteAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAccounts")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReader").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SqliteSyncStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSyncStore").finish_non_exhaustive()
    }
}

/// The accounts database's schema, through the core's migration runner.
const ACCOUNT_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/sqlite/0001_accounts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/sqlite/0002_areas.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/sqlite/0003_device_blobs.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/sqlite/0004_console.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/sqlite/0005_last_seen.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/sqlite/0006_receipts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/sqlite/0007_steward_requests.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/sqlite/0008_alerts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 9,
        sql: include_str!("../../migrations/sqlite/0009_open311.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 10,
        sql: include_str!("../../migrations/sqlite/0010_alert_snapshots.sql"),
        rebuilds_index: false,
    },
];

const REMINDER_COLUMNS: &str =
    "id, shop_id, category, source, first_at, last_at, deadline, alerts, case_id";

fn reminder_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reminder> {
    let t = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok(Reminder {
        id: r.get(0)?,
        shop_id: r.get(1)?,
        category: r.get(2)?,
        source: r.get(3)?,
        first_at: t(r.get(4)?),
        last_at: t(r.get(5)?),
        deadline: t(r.get(6)?),
        alerts: r.get(7)?,
        case_id: r.get(8)?,
    })
}

/// A resident's request to become a lane's steward.
/// Every user, by id.
fn list_users(accounts: &Connection) -> StoreResult<Vec<User>> {
    let mut stmt = accounts
        .prepare_cached("SELECT id, name, role, area, area_epoch FROM users ORDER BY id")?;
    let rows = stmt.query_map([], user_from_row)?;
    rows.map(|r| r?).collect()
}

/// Every device, in enrollment order.
fn list_devices(accounts: &Connection) -> StoreResult<Vec<Device>> {
    let mut stmt = accounts.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id"
    ))?;
    let rows = stmt.query_map([], device_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl SqliteSyncStore {
    pub fn open(dir: &Path, qr_hosts: Vec<String>) -> StoreResult<SqliteSyncStore> {
        std::fs::create_dir_all(dir).map_err(menqian_core::Error::from)?;
        let accounts = SqliteAccounts::open(&dir.join("accounts.sqlite"))?;
        SqliteSyncStore::open_with(dir, qr_hosts, Box::new(accounts))
    }

    /// The documents in `dir`, with `accounts` kept elsewhere.
    pub fn open_with(
        dir: &Path,
        qr_hosts: Vec<String>,
        accounts: Box<dyn Accounts>,
    ) -> StoreResult<SqliteSyncStore> {
        std::fs::create_dir_all(dir).map_err(menqian_core::Error::from)?;
        let config = StoreConfig {
            qr_hosts,
            durable: true,
            publish_listings: true,
            cache_mib: CACHE_MIB,
            background_checkpoints: true,
            ..StoreConfig::default()
        };
        let path = dir.join("station.sqlite");
        let store = Store::open(&path, config.clone())?;
        Ok(SqliteSyncStore {
            store,
            accounts,
            dir: dir.to_path_buf(),
            config,
            _checkpoints: checkpoints(&path)?,
        })
    }
}

impl SqliteAccounts {
    /// Opens (and migrates) the accounts database at `path`.
    pub fn open(path: &Path) -> StoreResult<SqliteAccounts> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrations::apply(&mut conn, ACCOUNT_MIGRATIONS, i64::MAX)?;
        Ok(SqliteAccounts {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn user(&self, id: &str) -> StoreResult<User> {
        user_by_id(&self.conn, id)
    }
}

fn user_by_id(accounts: &Connection, id: &str) -> StoreResult<User> {
    accounts
        .prepare_cached("SELECT id, name, role, area, area_epoch FROM users WHERE id = ?1")?
        .query_row([id], user_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "user",
            id: id.to_string(),
        })?
}

fn authenticate(accounts: &Connection, token: &str) -> StoreResult<(Device, User)> {
    let device = accounts
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = ?1"
        ))?
        .query_row([hash(token)], device_from_row)
        .optional()?
        .ok_or_else(|| StoreError::Unauthorized("unknown token".into()))?;
    if device.revoked {
        return Err(StoreError::Unauthorized(
            "this device's token was revoked".into(),
        ));
    }
    let user = user_by_id(accounts, &device.user_id)?;
    Ok((device, user))
}

impl SyncRead for SqliteReader {
    fn accounts(&self) -> &dyn AccountsRead {
        self.accounts.as_ref()
    }

    fn push_bases(&self, push: &GroupedPush) -> StoreResult<Option<PushBases>> {
        Ok(self.store.push_bases(push)?)
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        super::pull(&self.store, device, user, cursor, limit)
    }

    fn snapshot_page(
        &self,
        user: &User,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        super::snapshot_page(&self.store, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        super::documents_by_id(&self.store, user, ids)
    }

    fn blob_visible(&self, hash: &str, user: &User) -> StoreResult<bool> {
        Ok(self.store.blob_visible(hash, &user.visibility())?)
    }

    fn documents(&self) -> &Store {
        &self.store
    }
}

impl AccountsRead for SqliteAccounts {
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)> {
        authenticate(&self.conn, token)
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        list_users(&self.conn)
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        list_devices(&self.conn)
    }

    fn accounts_version(&self) -> StoreResult<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<(User, String)>> {
        let found: Option<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT user_id, csrf FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![hash(token), now.timestamp_millis()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match found {
            None => Ok(None),
            Some((user, csrf)) => Ok(Some((user_by_id(&self.conn, &user)?, csrf))),
        }
    }

    fn alert_source(&self, id: &str) -> StoreResult<Option<AlertSource>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, kind, shop_id, lat, lon, secret FROM alert_sources WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let (lat, lon): (Option<f64>, Option<f64>) = (r.get(3)?, r.get(4)?);
                Ok(AlertSource {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    shop_id: r.get(2)?,
                    location: lat.zip(lon).map(|(a, b)| menqian_core::GeoPoint::new(a, b)),
                    secret: r.get(5)?,
                })
            })
            .optional()?)
    }

    fn open311_client(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name FROM open311_keys WHERE key_hash = ?1")?
            .query_row([hash(key)], |r| r.get(0))
            .optional()?)
    }

    fn reminders_of(&self, shop_id: &str, since: DateTime<Utc>) -> StoreResult<Vec<Reminder>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders
             WHERE shop_id = ?1 AND case_id IS NULL AND last_at >= ?2 ORDER BY first_at DESC LIMIT 20"
        ))?;
        let rows = stmt.query_map(
            params![shop_id, since.timestamp_millis()],
            reminder_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn reminder_count(&self) -> StoreResult<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM reminders", [], |r| r.get(0))?)
    }

    fn steward_requests(&self) -> StoreResult<Vec<StewardRequest>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, lane, name, phone, created_at, user_id FROM steward_requests
             ORDER BY id DESC LIMIT 500",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StewardRequest {
                id: r.get(0)?,
                lane: r.get(1)?,
                name: r.get(2)?,
                phone: r.get(3)?,
                at: DateTime::from_timestamp_millis(r.get(4)?).unwrap_or_default(),
                user_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn receipt(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT case_id FROM receipts WHERE token_hash = ?1")?
            .query_row([hash(token)], |r| r.get(0))
            .optional()?)
    }

    fn receipt_phones(&self, case_id: &str) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT phone FROM receipts WHERE case_id = ?1 AND phone IS NOT NULL ORDER BY created_at",
        )?;
        let rows = stmt.query_map([case_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn may_upload(&self, device_id: &str, hash: &str) -> StoreResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM device_blobs WHERE device_id = ?1 AND hash = ?2")?
            .query_row([device_id, hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn password_hash(&self, user_id: &str) -> StoreResult<(User, Option<String>)> {
        let user = self.user(user_id)?;
        let phc = self.conn.query_row(
            "SELECT password_hash FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )?;
        Ok((user, phc))
    }

    fn reminder_photos(&self, reminder: i64) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT photo FROM alerts WHERE reminder_id = ?1 AND photo IS NOT NULL
             ORDER BY at DESC LIMIT 3",
        )?;
        let photos = stmt
            .query_map([reminder], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(latest_photos(photos))
    }
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<User>> {
    let role: String = r.get(2)?;
    let Some(role) = Role::parse(&role) else {
        return Ok(Err(StoreError::Invalid {
            field: "role",
            reason: format!("unknown role {role}"),
        }));
    };
    let area: String = r.get(3)?;
    let area = match Area::parse(&area) {
        Ok(a) => a,
        Err(reason) => {
            return Ok(Err(StoreError::Invalid {
                field: "area",
                reason,
            }));
        }
    };
    Ok(Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role,
        area,
        area_epoch: r.get(4)?,
    }))
}

const DEVICE_COLUMNS: &str =
    "id, user_id, name, actor, revoked_at IS NOT NULL, area_epoch, last_seen_at";

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        actor: r.get(3)?,
        revoked: r.get(4)?,
        area_epoch: r.get(5)?,
        last_seen_ms: r.get(6)?,
    })
}

/// A name as people type it: trimmed, 1 to `max` characters, no control
/// characters (the core's rule for every name).
impl Accounts for SqliteAccounts {
    fn reader(&self) -> StoreResult<Box<dyn AccountsRead>> {
        let mut conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        menqian_core::wait_for_locks(&mut conn)?;
        Ok(Box::new(SqliteAccounts {
            conn,
            path: self.path.clone(),
        }))
    }

    fn set_device_epoch(&mut self, device_id: &str, epoch: i64) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE devices SET area_epoch = ?1 WHERE id = ?2",
            params![epoch, device_id],
        )?;
        Ok(())
    }

    fn allow_uploads(&mut self, actor: &str, hashes: &[String]) -> StoreResult<()> {
        self.allow_uploads_all(&[(actor.to_string(), hashes.to_vec())])
    }

    fn allow_uploads_all(&mut self, grants: &[(String, Vec<String>)]) -> StoreResult<()> {
        if grants.iter().all(|(_, hashes)| hashes.is_empty()) {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut allow = tx.prepare_cached(
                "INSERT OR IGNORE INTO device_blobs (device_id, hash)
                 SELECT id, ?2 FROM devices WHERE actor = ?1",
            )?;
            for (actor, hashes) in grants {
                for hash in hashes {
                    allow.execute(params![actor, hash])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn add_user(&mut self, user: &User) -> StoreResult<()> {
        checked_user_id(&user.id)?;
        let name = text("name", &user.name, 50)?;
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO users (id, name, role, area, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user.id, name, user.role.as_str(), user.area.to_string(), Utc::now().timestamp_millis()],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "user {} exists already",
                user.id
            )));
        }
        Ok(())
    }

    fn set_area(&mut self, user_id: &str, area: &Area) -> StoreResult<()> {
        let n = self.conn.execute(
            "UPDATE users SET area = ?1, area_epoch = area_epoch + 1 WHERE id = ?2 AND area <> ?1",
            params![area.to_string(), user_id],
        )?;
        if n == 0 {
            // Unchanged, or no such user.
            self.user(user_id)?;
        }
        Ok(())
    }

    fn issue_enrollment(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<String> {
        self.user(user_id)?;
        let code = new_code();
        self.conn.execute(
            "INSERT INTO enrollment_codes (code_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            params![hash(&code), user_id, (now + ttl).timestamp_millis()],
        )?;
        Ok(code)
    }

    fn redeem_enrollment(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled> {
        let name = text("device_name", device_name, 100)?;
        let code = code.trim().to_ascii_uppercase();
        let tx = self.conn.transaction()?;
        let found: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT user_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
                [hash(&code)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let user_id = match found {
            Some((user, expires, None)) if expires >= now.timestamp_millis() => user,
            other => return Err(code_refusal(other.map(|f| f.2))),
        };
        let taken: bool = tx.query_row(
            "SELECT count(*) > 0 FROM devices WHERE actor = ?1",
            [actor],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Conflict(
                "this actor id is bound to another device".into(),
            ));
        }
        let device_id = new_device_id();
        let token = new_token();
        tx.execute(
            "UPDATE enrollment_codes SET used_at = ?1 WHERE code_hash = ?2",
            params![now.timestamp_millis(), hash(&code)],
        )?;
        tx.execute(
            "INSERT INTO devices (id, user_id, name, actor, token_hash, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device_id, user_id, name, actor, hash(&token), now.timestamp_millis()],
        )?;
        tx.commit()?;
        Ok(Enrolled {
            device_id,
            token,
            user: self.user(&user_id)?,
        })
    }

    fn revoke_device(&mut self, device_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let n = self.conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2",
            params![now.timestamp_millis(), device_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "device",
                id: device_id.to_string(),
            });
        }
        Ok(())
    }

    fn record_seen(&mut self, seen: &[(String, i64)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE devices SET last_seen_at = max(coalesce(last_seen_at, 0), ?2) WHERE id = ?1",
            )?;
            for (device, at) in seen {
                update.execute(params![device, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn set_password_hash(&mut self, user_id: &str, phc: Option<&str>) -> StoreResult<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            params![phc, user_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "user",
                id: user_id.to_string(),
            });
        }
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        tx.commit()?;
        Ok(())
    }

    fn open_session(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<Session> {
        let session = Session {
            token: new_token(),
            csrf: new_token(),
            expires_at: now + ttl,
        };
        let tx = self.conn.transaction()?;
        // Sessions that ended are dropped as new ones open.
        tx.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [now.timestamp_millis()],
        )?;
        tx.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                hash(&session.token),
                user_id,
                session.csrf,
                now.timestamp_millis(),
                session.expires_at.timestamp_millis()
            ],
        )?;
        tx.commit()?;
        Ok(session)
    }

    fn close_session(&mut self, token: &str) -> StoreResult<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [hash(token)])?;
        Ok(())
    }

    fn add_alert_source(
        &mut self,
        id: &str,
        kind: &str,
        shop_id: Option<&str>,
        location: Option<menqian_core::GeoPoint>,
        now: DateTime<Utc>,
    ) -> StoreResult<String> {
        let secret = new_token();
        self.conn
            .prepare_cached(
                "INSERT INTO alert_sources (id, kind, shop_id, lat, lon, secret, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                kind,
                shop_id,
                location.map(|p| p.lat),
                location.map(|p| p.lon),
                secret,
                now.timestamp_millis()
            ])
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict(format!("source {id} exists already"))
                }
                e => e.into(),
            })?;
        Ok(secret)
    }

    fn record_alert(
        &mut self,
        alert: &AlertEvent<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecorded> {
        let AlertEvent {
            source,
            alert_id,
            shop_id,
            category,
            at,
            minutes,
            photo,
        } = *alert;
        let tx = self.conn.transaction()?;
        let seen: Option<i64> = tx
            .prepare_cached("SELECT reminder_id FROM alerts WHERE source = ?1 AND alert_id = ?2")?
            .query_row([source, alert_id], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(AlertRecorded::Duplicate);
        }
        let open: Option<Reminder> = tx
            .prepare_cached(&format!(
                "SELECT {REMINDER_COLUMNS} FROM reminders
                 WHERE shop_id = ?1 AND category = ?2 AND case_id IS NULL
                 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([shop_id, category], reminder_from_row)
            .optional()?;
        let ms = at.timestamp_millis();
        let out = match open {
            Some(mut r) => {
                tx.prepare_cached(
                    "UPDATE reminders SET last_at = max(last_at, ?2), alerts = alerts + 1 WHERE id = ?1",
                )?
                .execute(params![r.id, ms])?;
                r.alerts += 1;
                r.last_at = r.last_at.max(at);
                let due = at >= r.deadline;
                AlertRecorded::Again { reminder: r, due }
            }
            None => {
                let deadline = at + Duration::minutes(i64::from(minutes));
                tx.prepare_cached(
                    "INSERT INTO reminders (shop_id, category, source, first_at, last_at, deadline, alerts)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1)",
                )?
                .execute(params![shop_id, category, source, ms, deadline.timestamp_millis()])?;
                AlertRecorded::Reminded(Reminder {
                    id: tx.last_insert_rowid(),
                    shop_id: shop_id.to_string(),
                    category: category.to_string(),
                    source: source.to_string(),
                    first_at: at,
                    last_at: at,
                    deadline,
                    alerts: 1,
                    case_id: None,
                })
            }
        };
        let reminder_id = match &out {
            AlertRecorded::Reminded(r) | AlertRecorded::Again { reminder: r, .. } => r.id,
            AlertRecorded::Duplicate => 0,
        };
        tx.prepare_cached(
            "INSERT INTO alerts (source, alert_id, reminder_id, at, received_at, photo)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            source,
            alert_id,
            reminder_id,
            ms,
            now.timestamp_millis(),
            photo
        ])?;
        tx.commit()?;
        Ok(out)
    }

    fn add_open311_key(&mut self, name: &str, now: DateTime<Utc>) -> StoreResult<String> {
        let key = new_token();
        self.conn
            .prepare_cached(
                "INSERT INTO open311_keys (key_hash, name, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![hash(&key), name, now.timestamp_millis()])?;
        Ok(key)
    }

    fn set_reminder_case(&mut self, reminder: i64, case_id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE reminders SET case_id = ?2 WHERE id = ?1")?
            .execute(params![reminder, case_id])?;
        Ok(())
    }

    fn add_steward_request(
        &mut self,
        lane: &str,
        name: &str,
        phone: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO steward_requests (lane, name, phone, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![lane, name, phone, now.timestamp_millis()])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn approve_steward(&mut self, request: i64, user_id: &str) -> StoreResult<User> {
        let found: Option<(String, String, Option<String>)> = self
            .conn
            .prepare_cached("SELECT lane, name, user_id FROM steward_requests WHERE id = ?1")?
            .query_row([request], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((lane, name, done)) = found else {
            return Err(StoreError::NotFound {
                kind: "steward request",
                id: request.to_string(),
            });
        };
        if let Some(user) = done {
            return Err(StoreError::Conflict(format!(
                "request {request} was approved already (user {user})"
            )));
        }
        let user = User::new(user_id, &name, Role::Steward, Area::Lanes(vec![lane]));
        self.add_user(&user)?;
        self.conn
            .prepare_cached("UPDATE steward_requests SET user_id = ?2 WHERE id = ?1")?
            .execute(params![request, user_id])?;
        Ok(user)
    }

    fn add_receipt(
        &mut self,
        case_id: &str,
        phone: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<String> {
        let token = new_token();
        self.conn
            .prepare_cached(
                "INSERT INTO receipts (token_hash, case_id, phone, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![hash(&token), case_id, phone, now.timestamp_millis()])?;
        Ok(token)
    }
}

impl SqliteSyncStore {
    /// What the device of `actor` may now upload: the photos the documents
    /// it pushed refer to.
    fn allow_uploads(&mut self, actor: &str, docs: &[String]) -> StoreResult<()> {
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let blobs = self.store.blobs_referenced_by(&refs)?;
        self.accounts.allow_uploads(actor, &blobs)
    }
}

/// The documents a batch touches, each once.
fn pushed_documents(changes: &[Incoming]) -> Vec<String> {
    let mut docs: Vec<String> = changes.iter().map(|c| c.doc_id.clone()).collect();
    docs.sort();
    docs.dedup();
    docs
}

impl SyncStore for SqliteSyncStore {
    fn accounts(&mut self) -> &mut dyn Accounts {
        self.accounts.as_mut()
    }

    fn accounts_read(&self) -> &dyn AccountsRead {
        self.accounts.as_ref()
    }

    fn actor_has_changes(&self, actor: &str) -> StoreResult<bool> {
        Ok(self.store.actor_in_feed(actor)?)
    }

    fn push_decoded(
        &mut self,
        writer: &Writer,
        changes: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport> {
        let docs = pushed_documents(&changes);
        let report = self.store.apply_decoded_as(changes, writer, now)?;
        self.allow_uploads(&writer.actor, &docs)?;
        Ok(report)
    }

    fn push_group(
        &mut self,
        group: Vec<GroupedPush>,
    ) -> StoreResult<Vec<StoreResult<ApplyReport>>> {
        let pushers: Vec<(String, Vec<String>)> = group
            .iter()
            .map(|p| (p.writer.actor.clone(), pushed_documents(&p.changes)))
            .collect();
        // Every push of the group was checked before any was written, so a
        // failed write is the disk's or the database's, not a device's. In
        // case one push's rows still break a constraint, the group is tried
        // again one push at a time: that push alone is refused.
        let copies = (group.len() > 1).then(|| group.clone());
        let answers = match (self.store.apply_group(group), copies) {
            (Ok(answers), _) => answers,
            (Err(e), Some(copies)) => {
                tracing::warn!(error = %e, pushes = copies.len(), "a group commit failed; applying its pushes one by one");
                return Ok(copies
                    .into_iter()
                    .map(|p| self.push_decoded(&p.writer, p.changes, p.received_at))
                    .collect());
            }
            (Err(e), None) => return Err(e.into()),
        };
        // What each accepted push's records refer to may now be uploaded
        // by its device: one accounts transaction for the whole group.
        let mut grants = Vec::new();
        let mut with_photos = Vec::with_capacity(answers.len());
        for ((actor, docs), answer) in pushers.iter().zip(&answers) {
            let mut blobs = Vec::new();
            if answer.is_ok() {
                let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
                blobs = self.store.blobs_referenced_by(&refs)?;
            }
            with_photos.push(!blobs.is_empty());
            grants.push((actor.clone(), blobs));
        }
        let granted = self.accounts.allow_uploads_all(&grants);
        Ok(answers
            .into_iter()
            .zip(with_photos)
            .map(|(answer, with_photos)| {
                let report = answer?;
                // A device told of a failure here sends its push again:
                // applied already, it is granted then. A push without
                // photos needed no grant.
                if let (true, Err(e)) = (with_photos, &granted) {
                    return Err(menqian_core::Error::Io(std::io::Error::other(format!(
                        "the push was stored, but its photos could not be allowed: {e}"
                    )))
                    .into());
                }
                Ok(report)
            })
            .collect())
    }

    fn reader(&self) -> StoreResult<Box<dyn SyncRead>> {
        let store = Store::open_reader(self.dir.join("station.sqlite"), self.config.clone())?;
        let accounts = self.accounts.reader()?;
        Ok(Box::new(SqliteReader { store, accounts }))
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        super::pull(&self.store, device, user, cursor, limit)
    }

    fn snapshot(
        &mut self,
        device: &Device,
        user: &User,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        if after.is_none() {
            self.bootstrap(device, user)?;
        }
        super::snapshot_page(&self.store, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        super::documents_by_id(&self.store, user, ids)
    }

    fn documents(&mut self) -> &mut Store {
        &mut self.store
    }
}
