//! The server's storage, behind one trait so a PostgreSQL backend can follow the
//! embedded SQLite one; `tests/conformance.rs` runs the same suite against every
//! backend.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use menqian_core::store::migrations::{self, Migration};
use menqian_core::wire::WireBatch;
use menqian_core::{
    ApplyReport, Area, DocChange, Incoming, Role, Store, StoreConfig, Visibility, Writer,
};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// What the server's storage can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Core(#[from] menqian_core::Error),
    #[error("accounts database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{kind} not found: {id}")]
    NotFound { kind: &'static str, id: String },
    /// The user was moved to another area since this device bootstrapped.
    #[error("{0}")]
    AreaChanged(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The area the user works in: what the server sends their devices.
    pub area: Area,
    /// Bumped each time the area changes.
    pub area_epoch: i64,
}

impl User {
    pub fn new(id: &str, name: &str, role: Role, area: Area) -> User {
        User {
            id: id.to_string(),
            name: name.to_string(),
            role,
            area,
            area_epoch: 0,
        }
    }

    /// What this user's devices receive.
    pub fn visibility(&self) -> Visibility {
        Visibility::for_reader(self.role, &self.id, &self.area)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub actor: String,
    pub revoked: bool,
    /// The user's area epoch this device last bootstrapped for.
    pub area_epoch: i64,
    /// When it last reached the station, as last written (Unix ms).
    pub last_seen_ms: Option<i64>,
}

/// What a device gets when it enrolls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub device_id: String,
    /// Shown once; the server keeps only its hash.
    pub token: String,
    pub user: User,
}

/// A signed-in console user's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The cookie's value: shown once; the store keeps only its hash.
    pub token: String,
    /// What every form of this session must carry back.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// The server's storage: accounts and the merged change feed.
pub trait SyncStore: Send {
    fn add_user(&mut self, user: &User) -> StoreResult<()>;
    fn users(&self) -> StoreResult<Vec<User>>;
    /// Moves a user to another area; their devices reload from a snapshot at
    /// their next sync.
    fn set_area(&mut self, user_id: &str, area: &Area) -> StoreResult<()>;
    /// A one-time code for `user_id` to enroll a device with, valid for `ttl`.
    fn issue_enrollment(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<String>;
    /// Redeems a code: binds `actor` to a new device and returns its token.
    fn enroll(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled>;
    /// The device and user a bearer token belongs to; revoked devices are refused.
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)>;
    fn revoke_device(&mut self, device_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    fn devices(&self) -> StoreResult<Vec<Device>>;
    /// Notes when devices last reached the station (Unix ms; an earlier time
    /// than the one kept changes nothing).
    fn record_seen(&mut self, seen: &[(String, i64)]) -> StoreResult<()>;
    /// Sets (or with `None` removes) a user's console password, as a PHC
    /// string the caller hashed; ends the user's sessions.
    fn set_password_hash(&mut self, user_id: &str, phc: Option<&str>) -> StoreResult<()>;
    /// A user and their password hash (`None`: no password, cannot sign in).
    fn password_hash(&self, user_id: &str) -> StoreResult<(User, Option<String>)>;
    /// Opens a console session for `user_id`, valid for `ttl`.
    fn open_session(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<Session>;
    /// Ends a session (no error if it had ended).
    fn close_session(&mut self, token: &str) -> StoreResult<()>;
    /// Registers a camera or sensor; returns the secret its alerts are
    /// signed with.
    fn add_alert_source(
        &mut self,
        id: &str,
        kind: &str,
        shop_id: Option<&str>,
        location: Option<menqian_core::GeoPoint>,
        now: DateTime<Utc>,
    ) -> StoreResult<String>;
    /// Records `source`'s alert `alert_id` about `category` at `shop_id`,
    /// once: a new reminder (deadline `minutes` from `at`) or a repeat on
    /// the shop's open reminder of that category.
    fn record_alert(
        &mut self,
        alert: &AlertEvent<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecorded>;
    /// Issues an Open311 API key to a city system named `name`.
    fn add_open311_key(&mut self, name: &str, now: DateTime<Utc>) -> StoreResult<String>;
    /// The snapshots of a reminder's alerts, the latest three, oldest first.
    fn reminder_photos(&self, reminder: i64) -> StoreResult<Vec<String>>;
    /// Notes the case a reminder became.
    fn set_reminder_case(&mut self, reminder: i64, case_id: &str) -> StoreResult<()>;
    /// Records a resident's request to become `lane`'s steward.
    fn add_steward_request(
        &mut self,
        lane: &str,
        name: &str,
        phone: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// Approves a request: creates the steward `user_id` for its lane.
    fn approve_steward(&mut self, request: i64, user_id: &str) -> StoreResult<User>;
    /// Records a citizen's receipt for `case_id` (with the phone number they
    /// left for staff, if any): the token of the receipt link.
    fn add_receipt(
        &mut self,
        case_id: &str,
        phone: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<String>;
    /// Applies a pushed batch, all or nothing, durable before it returns.
    fn push(
        &mut self,
        writer: &Writer,
        changes: &[DocChange],
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport> {
        self.push_decoded(writer, menqian_core::decode_pushed(changes.to_vec())?, now)
    }
    /// [`SyncStore::push`] of a batch decoded and checked beforehand (outside
    /// any lock). The device bound to the writer's actor may then upload the
    /// photos its records refer to.
    fn push_decoded(
        &mut self,
        writer: &Writer,
        changes: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport>;
    /// A handle for reads that runs beside this one: requests that only read
    /// (authentication, pull, snapshot pages, downloads) use these and never
    /// wait for a push.
    fn reader(&self) -> StoreResult<Box<dyn SyncRead>>;
    /// Marks a device as loading a snapshot for its user's current area.
    fn bootstrap(&mut self, device: &Device, user: &User) -> StoreResult<()>;
    /// Accepted changes after `cursor` that the user may see, in server order,
    /// at most `limit`. [`StoreError::AreaChanged`] when the device must reload.
    fn pull(&self, device: &Device, user: &User, cursor: u64, limit: u32)
    -> StoreResult<WireBatch>;
    /// Whole documents after `after` (by id) for a new device; `cursor` is the
    /// feed head the page covers at least, `remaining` the documents left. The
    /// first page (`after` = `None`) brings the device up to the user's area.
    fn snapshot(
        &mut self,
        device: &Device,
        user: &User,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<WireBatch>;
    /// The named documents, whole, those of them the user may see.
    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch>;
    /// The merged documents, for loading reference data and for tests.
    fn documents(&mut self) -> &mut Store;
}

/// Reads beside the writer (see [`SyncStore::reader`]).
pub trait SyncRead: Send {
    /// The device and user a bearer token belongs to; revoked devices are refused.
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)>;
    /// See [`SyncStore::pull`].
    fn pull(&self, device: &Device, user: &User, cursor: u64, limit: u32)
    -> StoreResult<WireBatch>;
    /// A snapshot page after [`SyncStore::bootstrap`] (see [`SyncStore::snapshot`]).
    fn snapshot_page(&self, user: &User, after: Option<&str>, limit: u32)
    -> StoreResult<WireBatch>;
    /// See [`SyncStore::documents_by_id`].
    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch>;
    /// Whether a record the user may see refers to the photo or thumbnail.
    fn blob_visible(&self, hash: &str, user: &User) -> StoreResult<bool>;
    /// Whether a record this device pushed refers to the photo or thumbnail.
    fn may_upload(&self, device_id: &str, hash: &str) -> StoreResult<bool>;
    /// The documents, read-only: for work that only reads, such as finding
    /// what a sweep must do.
    fn documents(&self) -> &Store;
    /// A number that changes whenever accounts change (a device revoked, a
    /// user moved), by this process or another: remembered authentications
    /// are good while it stays the same.
    fn accounts_version(&self) -> StoreResult<i64>;
    /// The user of a console session and its CSRF token, if the session is
    /// open at `now`.
    fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<(User, String)>>;
    /// See [`SyncStore::users`]: for pages, without the writer.
    fn users(&self) -> StoreResult<Vec<User>>;
    /// See [`SyncStore::devices`].
    fn devices(&self) -> StoreResult<Vec<Device>>;
    /// A registered camera or sensor.
    fn alert_source(&self, id: &str) -> StoreResult<Option<AlertSource>>;
    /// The city system an Open311 API key was issued to.
    fn open311_client(&self, key: &str) -> StoreResult<Option<String>>;
    /// A shop's reminders that did not become cases, seen since `since`.
    fn reminders_of(&self, shop_id: &str, since: DateTime<Utc>) -> StoreResult<Vec<Reminder>>;
    /// How many reminders there are (for tests and figures).
    fn reminder_count(&self) -> StoreResult<i64>;
    /// Residents' requests to become stewards, newest first.
    fn steward_requests(&self) -> StoreResult<Vec<StewardRequest>>;
    /// The case a receipt token leads to.
    fn receipt(&self, token: &str) -> StoreResult<Option<String>>;
    /// The phone numbers citizens left with their reports of `case_id`
    /// (staff only).
    fn receipt_phones(&self, case_id: &str) -> StoreResult<Vec<String>>;
}

/// The embedded backend: `station.sqlite` (the core store, durable) and
/// `accounts.sqlite` in one data directory.
pub struct SqliteSyncStore {
    store: Store,
    accounts: Connection,
    dir: std::path::PathBuf,
    config: StoreConfig,
}

/// A read-only pair of connections beside the writer's.
pub struct SqliteReader {
    store: Store,
    accounts: Connection,
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
        sql: include_str!("../migrations/0001_accounts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/0002_areas.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/0003_device_blobs.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/0004_console.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/0005_last_seen.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/0006_receipts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/0007_steward_requests.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/0008_alerts.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/0009_open311.sql"),
        rebuilds_index: false,
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/0010_alert_snapshots.sql"),
        rebuilds_index: false,
    },
];

/// A camera or sensor an administrator registered.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSource {
    pub id: String,
    /// `camera` or `sensor`.
    pub kind: String,
    /// The shop it watches; else its alerts go to the shop nearest to where
    /// they say (or to `location`).
    pub shop_id: Option<String>,
    pub location: Option<menqian_core::GeoPoint>,
    pub secret: String,
}

/// A reminder to a shop from a camera's or sensor's alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub id: i64,
    pub shop_id: String,
    pub category: String,
    pub source: String,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub alerts: i64,
    pub case_id: Option<String>,
}

/// One alert, as recorded: `source`'s event `alert_id` about `category` at
/// `shop_id`, seen `at`; a new reminder's deadline is `minutes` after it.
#[derive(Debug, Clone, Copy)]
pub struct AlertEvent<'a> {
    pub source: &'a str,
    pub alert_id: &'a str,
    pub shop_id: &'a str,
    pub category: &'a str,
    pub at: DateTime<Utc>,
    pub minutes: u32,
    /// The snapshot's evidence photo, registered in the station's store.
    pub photo: Option<&'a str>,
}

/// What recording an alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertRecorded {
    /// The source sent this alert id before.
    Duplicate,
    /// A new reminder to the shop.
    Reminded(Reminder),
    /// The problem seen again while a reminder is open; `due` when it is
    /// past the reminder's deadline (and has no case yet).
    Again { reminder: Reminder, due: bool },
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardRequest {
    pub id: i64,
    pub lane: String,
    pub name: String,
    pub phone: String,
    pub at: DateTime<Utc>,
    /// The user made when it was approved.
    pub user_id: Option<String>,
}

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
        let config = StoreConfig {
            qr_hosts,
            durable: true,
            publish_listings: true,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.join("station.sqlite"), config.clone())?;
        let mut accounts = Connection::open(dir.join("accounts.sqlite"))?;
        accounts.pragma_update(None, "journal_mode", "WAL")?;
        accounts.pragma_update(None, "synchronous", "FULL")?;
        accounts.pragma_update(None, "foreign_keys", true)?;
        migrations::apply(&mut accounts, ACCOUNT_MIGRATIONS, i64::MAX)?;
        Ok(SqliteSyncStore {
            store,
            accounts,
            dir: dir.to_path_buf(),
            config,
        })
    }

    fn user(&self, id: &str) -> StoreResult<User> {
        user_by_id(&self.accounts, id)
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

fn pull(
    store: &Store,
    device: &Device,
    user: &User,
    cursor: u64,
    limit: u32,
) -> StoreResult<WireBatch> {
    if device.area_epoch < user.area_epoch {
        return Err(StoreError::AreaChanged(format!(
            "{} now works in {}: reload from a snapshot",
            user.id, user.area
        )));
    }
    let reader = user.visibility();
    let batch = store.visible_changes_since(cursor, limit, &reader)?;
    let remaining = store.count_visible_changes_since(batch.cursor, &reader)?;
    Ok(WireBatch {
        cursor: batch.cursor,
        more: batch.more,
        remaining,
        changes: batch.changes,
    })
}

fn snapshot_page(
    store: &Store,
    user: &User,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<WireBatch> {
    let reader = user.visibility();
    let page = store.visible_snapshot_page(after, limit, &reader)?;
    let last = page.docs.last().map(|d| d.doc_id.clone());
    let remaining = store.count_documents_after(last.as_deref().or(after), &reader)?;
    Ok(WireBatch {
        cursor: page.feed_head,
        more: page.more,
        remaining,
        changes: page.docs,
    })
}

fn documents_by_id(store: &Store, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
    let docs = store.visible_documents(ids, &user.visibility())?;
    Ok(WireBatch {
        cursor: 0,
        more: false,
        remaining: 0,
        changes: docs,
    })
}

impl SyncRead for SqliteReader {
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)> {
        authenticate(&self.accounts, token)
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        list_users(&self.accounts)
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        list_devices(&self.accounts)
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        pull(&self.store, device, user, cursor, limit)
    }

    fn snapshot_page(
        &self,
        user: &User,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        snapshot_page(&self.store, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        documents_by_id(&self.store, user, ids)
    }

    fn blob_visible(&self, hash: &str, user: &User) -> StoreResult<bool> {
        Ok(self.store.blob_visible(hash, &user.visibility())?)
    }

    fn documents(&self) -> &Store {
        &self.store
    }

    fn accounts_version(&self) -> StoreResult<i64> {
        Ok(self
            .accounts
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<(User, String)>> {
        let found: Option<(String, String)> = self
            .accounts
            .prepare_cached(
                "SELECT user_id, csrf FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![hash(token), now.timestamp_millis()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match found {
            None => Ok(None),
            Some((user, csrf)) => Ok(Some((user_by_id(&self.accounts, &user)?, csrf))),
        }
    }

    fn alert_source(&self, id: &str) -> StoreResult<Option<AlertSource>> {
        Ok(self
            .accounts
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

    fn reminders_of(&self, shop_id: &str, since: DateTime<Utc>) -> StoreResult<Vec<Reminder>> {
        let mut stmt = self.accounts.prepare_cached(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders
             WHERE shop_id = ?1 AND case_id IS NULL AND last_at >= ?2 ORDER BY first_at DESC LIMIT 20"
        ))?;
        let rows = stmt.query_map(
            params![shop_id, since.timestamp_millis()],
            reminder_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn open311_client(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .accounts
            .prepare_cached("SELECT name FROM open311_keys WHERE key_hash = ?1")?
            .query_row([hash(key)], |r| r.get(0))
            .optional()?)
    }

    fn reminder_count(&self) -> StoreResult<i64> {
        Ok(self
            .accounts
            .query_row("SELECT count(*) FROM reminders", [], |r| r.get(0))?)
    }

    fn steward_requests(&self) -> StoreResult<Vec<StewardRequest>> {
        let mut stmt = self.accounts.prepare_cached(
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
            .accounts
            .prepare_cached("SELECT case_id FROM receipts WHERE token_hash = ?1")?
            .query_row([hash(token)], |r| r.get(0))
            .optional()?)
    }

    fn receipt_phones(&self, case_id: &str) -> StoreResult<Vec<String>> {
        let mut stmt = self.accounts.prepare_cached(
            "SELECT phone FROM receipts WHERE case_id = ?1 AND phone IS NOT NULL ORDER BY created_at",
        )?;
        let rows = stmt.query_map([case_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn may_upload(&self, device_id: &str, hash: &str) -> StoreResult<bool> {
        Ok(self
            .accounts
            .prepare_cached("SELECT 1 FROM device_blobs WHERE device_id = ?1 AND hash = ?2")?
            .query_row([device_id, hash], |_| Ok(()))
            .optional()?
            .is_some())
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
fn text(field: &'static str, value: &str, max: usize) -> StoreResult<String> {
    menqian_core::model::required_text(field, value, max).map_err(|e| StoreError::Invalid {
        field,
        reason: match e {
            menqian_core::Error::InvalidInput { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

pub(crate) fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Enrollment codes: 8 characters without look-alikes (0/O, 1/I), easy to read
/// aloud or type from a supervisor's screen.
fn new_code() -> String {
    use menqian_core::enrollment::{CODE_ALPHABET as ALPHABET, CODE_LEN};
    let mut bytes = [0u8; CODE_LEN];
    rand::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    menqian_core::hex::encode(&bytes)
}

impl SyncStore for SqliteSyncStore {
    fn add_user(&mut self, user: &User) -> StoreResult<()> {
        let valid_id = !user.id.is_empty()
            && user.id.len() <= 64
            && user
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid_id {
            return Err(StoreError::Invalid {
                field: "id",
                reason: "1–64 ASCII letters, digits, '-', '_' or '.'".into(),
            });
        }
        let name = text("name", &user.name, 50)?;
        let inserted = self.accounts.execute(
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

    fn users(&self) -> StoreResult<Vec<User>> {
        list_users(&self.accounts)
    }

    fn set_area(&mut self, user_id: &str, area: &Area) -> StoreResult<()> {
        let n = self.accounts.execute(
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
        self.accounts.execute(
            "INSERT INTO enrollment_codes (code_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            params![hash(&code), user_id, (now + ttl).timestamp_millis()],
        )?;
        Ok(code)
    }

    fn enroll(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled> {
        let actor = actor.trim().to_ascii_lowercase();
        if actor.len() < 2
            || actor.len() > 128
            || !actor.chars().all(|c| c.is_ascii_hexdigit())
            || !actor.len().is_multiple_of(2)
        {
            return Err(StoreError::Invalid {
                field: "actor",
                reason: "an Automerge actor id in hex".into(),
            });
        }
        let name = text("device_name", device_name, 100)?;
        // The station's own actor signs its writes, and an actor already in
        // the feed made changes someone else is answerable for.
        if self.store.actor_in_feed(&actor)? {
            return Err(StoreError::Conflict(
                "this actor id already has changes at the station: make a new one".into(),
            ));
        }
        let code = code.trim().to_ascii_uppercase();
        let tx = self.accounts.transaction()?;
        let found: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT user_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
                [hash(&code)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let user_id = match found {
            None => return Err(StoreError::Unauthorized("unknown enrollment code".into())),
            Some((_, _, Some(_))) => {
                return Err(StoreError::Unauthorized(
                    "this enrollment code was used already".into(),
                ));
            }
            Some((_, expires, None)) if expires < now.timestamp_millis() => {
                return Err(StoreError::Unauthorized(
                    "this enrollment code has expired".into(),
                ));
            }
            Some((user, _, None)) => user,
        };
        let taken: bool = tx.query_row(
            "SELECT count(*) > 0 FROM devices WHERE actor = ?1",
            [&actor],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Conflict(
                "this actor id is bound to another device".into(),
            ));
        }
        let device_id = format!("dev-{}", &new_token()[..16]);
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

    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)> {
        authenticate(&self.accounts, token)
    }

    fn revoke_device(&mut self, device_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let n = self.accounts.execute(
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

    fn devices(&self) -> StoreResult<Vec<Device>> {
        list_devices(&self.accounts)
    }

    fn record_seen(&mut self, seen: &[(String, i64)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let tx = self.accounts.transaction()?;
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
        let tx = self.accounts.transaction()?;
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

    fn password_hash(&self, user_id: &str) -> StoreResult<(User, Option<String>)> {
        let user = self.user(user_id)?;
        let phc = self.accounts.query_row(
            "SELECT password_hash FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )?;
        Ok((user, phc))
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
        self.accounts
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
        let tx = self.accounts.transaction()?;
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
        self.accounts
            .prepare_cached(
                "INSERT INTO open311_keys (key_hash, name, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![hash(&key), name, now.timestamp_millis()])?;
        Ok(key)
    }

    fn reminder_photos(&self, reminder: i64) -> StoreResult<Vec<String>> {
        let mut stmt = self.accounts.prepare_cached(
            "SELECT photo FROM alerts WHERE reminder_id = ?1 AND photo IS NOT NULL
             ORDER BY at DESC LIMIT 3",
        )?;
        let mut photos = stmt
            .query_map([reminder], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        photos.reverse();
        let mut seen = std::collections::HashSet::new();
        photos.retain(|p| seen.insert(p.clone()));
        Ok(photos)
    }

    fn set_reminder_case(&mut self, reminder: i64, case_id: &str) -> StoreResult<()> {
        self.accounts
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
        self.accounts
            .prepare_cached(
                "INSERT INTO steward_requests (lane, name, phone, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![lane, name, phone, now.timestamp_millis()])?;
        Ok(self.accounts.last_insert_rowid())
    }

    fn approve_steward(&mut self, request: i64, user_id: &str) -> StoreResult<User> {
        let found: Option<(String, String, Option<String>)> = self
            .accounts
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
        self.accounts
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
        self.accounts
            .prepare_cached(
                "INSERT INTO receipts (token_hash, case_id, phone, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![hash(&token), case_id, phone, now.timestamp_millis()])?;
        Ok(token)
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
        let tx = self.accounts.transaction()?;
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
        self.accounts
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [hash(token)])?;
        Ok(())
    }

    fn push_decoded(
        &mut self,
        writer: &Writer,
        changes: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport> {
        let mut docs: Vec<String> = changes.iter().map(|c| c.doc_id.clone()).collect();
        docs.sort();
        docs.dedup();
        let report = self.store.apply_decoded_as(changes, writer, now)?;
        // What this device may now upload: the photos its records refer to.
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let blobs = self.store.blobs_referenced_by(&refs)?;
        if !blobs.is_empty() {
            let tx = self.accounts.transaction()?;
            {
                let mut allow = tx.prepare_cached(
                    "INSERT OR IGNORE INTO device_blobs (device_id, hash)
                     SELECT id, ?2 FROM devices WHERE actor = ?1",
                )?;
                for hash in &blobs {
                    allow.execute(params![writer.actor, hash])?;
                }
            }
            tx.commit()?;
        }
        Ok(report)
    }

    fn reader(&self) -> StoreResult<Box<dyn SyncRead>> {
        let store = Store::open_reader(self.dir.join("station.sqlite"), self.config.clone())?;
        let accounts = Connection::open_with_flags(
            self.dir.join("accounts.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        accounts.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Box::new(SqliteReader { store, accounts }))
    }

    fn bootstrap(&mut self, device: &Device, user: &User) -> StoreResult<()> {
        if device.area_epoch != user.area_epoch {
            self.accounts.execute(
                "UPDATE devices SET area_epoch = ?1 WHERE id = ?2",
                params![user.area_epoch, device.id],
            )?;
        }
        Ok(())
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        pull(&self.store, device, user, cursor, limit)
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
        snapshot_page(&self.store, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        documents_by_id(&self.store, user, ids)
    }

    fn documents(&mut self) -> &mut Store {
        &mut self.store
    }
}
