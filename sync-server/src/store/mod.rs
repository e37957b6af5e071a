//! The server's storage, behind traits a second backend implements without
//! an escape hatch: [`Accounts`] (users, devices, sessions, sources …) and
//! [`SyncStore`] (the merged documents and their change feed). The embedded
//! backend keeps both in SQLite files ([`sqlite`]); [`postgres`] keeps the
//! accounts in PostgreSQL. `tests/conformance.rs` runs one suite against every
//! backend.

pub mod periodic;
pub mod postgres;
pub mod sqlite;

pub use sqlite::{SqliteAccounts, SqliteSyncStore};

use chrono::{DateTime, Duration, Utc};
use menqian_core::wire::WireBatch;
use menqian_core::{
    ApplyReport, Area, DocChange, GroupedPush, Incoming, PushBases, Role, Store, Visibility, Writer,
};
use sha2::{Digest, Sha256};

/// Each SQLite handle's page cache, in MiB, and a memory map four times that
/// ([`menqian_core::StoreConfig::cache_mib`]).
pub const CACHE_MIB: u32 = 64;

/// What the server's storage can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Core(#[from] menqian_core::Error),
    #[error("accounts database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
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
    /// A city's instance follows another history of the feed than the
    /// database now holds (see `PgDocuments::check_followed`).
    #[error("{0}")]
    Diverged(String),
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

/// Accounts' reads: what a request that only reads needs (see
/// [`SyncStore::reader`]). Every backend answers them the same way.
pub trait AccountsRead: Send {
    /// The device and user a bearer token belongs to; revoked devices are refused.
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)>;
    /// Every user, by id.
    fn users(&self) -> StoreResult<Vec<User>>;
    /// Every device, in enrollment order.
    fn devices(&self) -> StoreResult<Vec<Device>>;
    /// A user and their password hash (`None`: no password, cannot sign in).
    fn password_hash(&self, user_id: &str) -> StoreResult<(User, Option<String>)>;
    /// A number that changes whenever who a token belongs to changes (a
    /// device revoked, a user moved), by this process or another: remembered
    /// authentications are good while it stays the same.
    fn accounts_version(&self) -> StoreResult<i64>;
    /// The user of a console session and its CSRF token, if the session is
    /// open at `now`.
    fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<(User, String)>>;
    /// A registered camera or sensor.
    fn alert_source(&self, id: &str) -> StoreResult<Option<AlertSource>>;
    /// The city system an Open311 API key was issued to.
    fn open311_client(&self, key: &str) -> StoreResult<Option<String>>;
    /// A shop's reminders that did not become cases, seen since `since`.
    fn reminders_of(&self, shop_id: &str, since: DateTime<Utc>) -> StoreResult<Vec<Reminder>>;
    /// How many reminders there are (for tests and figures).
    fn reminder_count(&self) -> StoreResult<i64>;
    /// The snapshots of a reminder's alerts, the latest three, oldest first.
    fn reminder_photos(&self, reminder: i64) -> StoreResult<Vec<String>>;
    /// Residents' requests to become stewards, newest first.
    fn steward_requests(&self) -> StoreResult<Vec<StewardRequest>>;
    /// The case a receipt token leads to.
    fn receipt(&self, token: &str) -> StoreResult<Option<String>>;
    /// The phone numbers citizens left with their reports of `case_id`
    /// (staff only).
    fn receipt_phones(&self, case_id: &str) -> StoreResult<Vec<String>>;
    /// Whether a record this device pushed refers to the photo or thumbnail.
    fn may_upload(&self, device_id: &str, hash: &str) -> StoreResult<bool>;
}

/// The station's accounts: users, devices and their tokens, console
/// sessions, cameras and sensors with their reminders, Open311 keys,
/// citizens' receipts and stewards' requests. The embedded backend keeps them
/// in `accounts.sqlite` ([`SqliteAccounts`]), a city in PostgreSQL
/// ([`postgres::PgAccounts`]); `tests/conformance.rs` holds both to one suite.
pub trait Accounts: AccountsRead {
    /// A handle for reads beside this one.
    fn reader(&self) -> StoreResult<Box<dyn AccountsRead>>;
    fn add_user(&mut self, user: &User) -> StoreResult<()>;
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
    /// Redeems a code for a checked `actor` ([`checked_actor`]) that has no
    /// changes at the station: binds it to a new device and returns its token.
    fn redeem_enrollment(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled>;
    fn revoke_device(&mut self, device_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Notes that a device loads a snapshot for its user's area `epoch`.
    fn set_device_epoch(&mut self, device_id: &str, epoch: i64) -> StoreResult<()>;
    /// Notes when devices last reached the station (Unix ms; an earlier time
    /// than the one kept changes nothing).
    fn record_seen(&mut self, seen: &[(String, i64)]) -> StoreResult<()>;
    /// Lets the device bound to `actor` upload these photos and thumbnails
    /// (its accepted records refer to them).
    fn allow_uploads(&mut self, actor: &str, hashes: &[String]) -> StoreResult<()>;
    /// [`Accounts::allow_uploads`] for several devices at once (a group
    /// commit's pushes): `(actor, hashes)` each. One transaction where the
    /// backend can.
    fn allow_uploads_all(&mut self, grants: &[(String, Vec<String>)]) -> StoreResult<()> {
        grants
            .iter()
            .try_for_each(|(actor, hashes)| self.allow_uploads(actor, hashes))
    }
    /// Sets (or with `None` removes) a user's console password, as a PHC
    /// string the caller hashed; ends the user's sessions.
    fn set_password_hash(&mut self, user_id: &str, phc: Option<&str>) -> StoreResult<()>;
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
}

/// Where a store merges pushes when that can happen beside the instance's
/// writer: a city's database, where groups of pushes to different documents
/// go side by side. [`SyncStore::accepted`] then follows, with the writer.
pub trait Authority: Send + Sync {
    /// How many groups it merges side by side, at most.
    fn groups_at_once(&self) -> usize;
    /// The authoritative half of [`SyncStore::push_group`]: each push all
    /// or nothing, the group in one commit; each push's answer, in order.
    fn push_group(&self, group: Vec<GroupedPush>) -> StoreResult<Vec<StoreResult<ApplyReport>>>;
}

/// Each push of a group that was applied, with its writer and documents
/// (`touched`, in the group's order): what [`SyncStore::accepted`] takes.
pub(crate) fn accepted_pushes(
    touched: Vec<(Writer, Vec<String>)>,
    answers: &[StoreResult<ApplyReport>],
) -> Vec<(Writer, Vec<String>)> {
    touched
        .into_iter()
        .zip(answers)
        .filter(|(_, a)| a.is_ok())
        .map(|(t, _)| t)
        .collect()
}

/// The server's storage: its [`Accounts`] and the merged documents with
/// their change feed.
pub trait SyncStore: Send {
    /// The accounts, for writing.
    fn accounts(&mut self) -> &mut dyn Accounts;
    /// The accounts, for reading on the writer's handle.
    fn accounts_read(&self) -> &dyn AccountsRead;
    /// Whether the feed holds changes by this Automerge actor.
    fn actor_has_changes(&self, actor: &str) -> StoreResult<bool>;
    /// Redeems an enrollment code: binds `actor` to a new device and returns
    /// its token. The station's own actor signs its writes, and an actor
    /// already in the feed made changes someone else is answerable for:
    /// both are refused.
    fn enroll(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled> {
        let actor = checked_actor(actor)?;
        if self.actor_has_changes(&actor)? {
            return Err(StoreError::Conflict(
                "this actor id already has changes at the station: make a new one".into(),
            ));
        }
        self.accounts()
            .redeem_enrollment(code, &actor, device_name, now)
    }
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
    /// Several devices' decoded batches at once (group commit): one durable
    /// commit for all where the backend can, each batch still all or nothing
    /// on its own and answered on its own. The outer error means none was
    /// applied. By default, one after another.
    fn push_group(
        &mut self,
        group: Vec<GroupedPush>,
    ) -> StoreResult<Vec<StoreResult<ApplyReport>>> {
        Ok(group
            .into_iter()
            .map(|p| self.push_decoded(&p.writer, p.changes, p.received_at))
            .collect())
    }
    /// Sends the station's own changes made through [`SyncStore::documents`]
    /// to the authoritative store. The embedded backend's documents are the
    /// authority, so there is nothing to send; a city's instance pushes them
    /// like a phone's. The station calls this after every write.
    fn publish(&mut self) -> StoreResult<()> {
        Ok(())
    }
    /// Whether other instances may share the authoritative store, so that
    /// this one must follow what they accept ([`SyncStore::refresh`]).
    fn shared(&self) -> bool {
        false
    }
    /// Brings the documents up to date with what other instances accepted
    /// (nothing to do when there are no others).
    fn refresh(&mut self) -> StoreResult<()> {
        Ok(())
    }
    /// Whether this instance runs the district's sweep: one instance at a
    /// time when several share the store (the only one otherwise).
    fn lead_sweep(&mut self) -> StoreResult<bool> {
        Ok(true)
    }
    /// Where pushes may be merged without this handle (see [`Authority`]);
    /// `None` when only this handle merges them.
    fn authority(&self) -> Option<std::sync::Arc<dyn Authority>> {
        None
    }
    /// What follows a group of pushes an [`Authority`] merged (each writer
    /// with the documents its push changed): the device bound to each
    /// writer's actor may upload the photos its documents refer to.
    fn accepted(&mut self, _pushes: &[(Writer, Vec<String>)]) -> StoreResult<()> {
        Ok(())
    }
    /// A handle for reads that runs beside this one: requests that only read
    /// (authentication, pull, snapshot pages, downloads) use these and never
    /// wait for a push.
    fn reader(&self) -> StoreResult<Box<dyn SyncRead>>;
    /// Marks a device as loading a snapshot for its user's current area.
    fn bootstrap(&mut self, device: &Device, user: &User) -> StoreResult<()> {
        if device.area_epoch != user.area_epoch {
            self.accounts()
                .set_device_epoch(&device.id, user.area_epoch)?;
        }
        Ok(())
    }
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
    /// The accounts, read-only.
    fn accounts(&self) -> &dyn AccountsRead;
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
    /// The documents, read-only: for work that only reads, such as finding
    /// what a sweep must do.
    fn documents(&self) -> &Store;
    /// How many accepted changes the documents this instance reads lag
    /// behind (always 0 when they are the authority).
    fn lag(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// What the documents a push touches hold now, when these documents are
    /// the ones the push is written into: the push can then be merged
    /// beside the writer ([`GroupedPush::premerge`]). `None` otherwise.
    fn push_bases(&self, _push: &GroupedPush) -> StoreResult<Option<PushBases>> {
        Ok(None)
    }
}

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

pub(crate) fn text(field: &'static str, value: &str, max: usize) -> StoreResult<String> {
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
pub(crate) fn new_code() -> String {
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

/// A user id: 1–64 ASCII letters, digits, '-', '_' or '.'.
pub(crate) fn checked_user_id(id: &str) -> StoreResult<()> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "id",
            reason: "1–64 ASCII letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// An Automerge actor id as a device sends it, lower-cased: hex, 1 to 64 bytes.
pub fn checked_actor(actor: &str) -> StoreResult<String> {
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
    Ok(actor)
}

/// Why an enrollment code that is not good now is refused: `None` when it
/// is unknown, else when it was used (`None`: not used, so it expired).
pub(crate) fn code_refusal(used: Option<Option<i64>>) -> StoreError {
    StoreError::Unauthorized(
        match used {
            None => "unknown enrollment code",
            Some(Some(_)) => "this enrollment code was used already",
            Some(None) => "this enrollment code has expired",
        }
        .into(),
    )
}

/// The device id a new enrollment gets.
pub(crate) fn new_device_id() -> String {
    format!("dev-{}", &new_token()[..16])
}

/// The latest three snapshots, oldest first, each once, from the newest first.
pub(crate) fn latest_photos(mut newest_first: Vec<String>) -> Vec<String> {
    newest_first.reverse();
    let mut seen = std::collections::HashSet::new();
    newest_first.retain(|p| seen.insert(p.clone()));
    newest_first
}

/// A device that loaded its user's earlier area reloads from a snapshot
/// before it pulls.
pub(crate) fn current_area(device: &Device, user: &User) -> StoreResult<()> {
    if device.area_epoch < user.area_epoch {
        return Err(StoreError::AreaChanged(format!(
            "{} now works in {}: reload from a snapshot",
            user.id, user.area
        )));
    }
    Ok(())
}

/// What the read model answers a device's pull with: accepted changes after
/// `cursor` the user may see.
pub(crate) fn pull(
    store: &Store,
    device: &Device,
    user: &User,
    cursor: u64,
    limit: u32,
) -> StoreResult<WireBatch> {
    current_area(device, user)?;
    let reader = user.visibility();
    let batch = store.visible_changes_since(cursor, limit, &reader)?;
    let remaining = store.count_visible_changes_since(batch.cursor, &reader)?;
    Ok(WireBatch {
        cursor: batch.cursor,
        more: batch.more,
        remaining,
        changes: batch.changes,
        views: Vec::new(),
    })
}

pub(crate) fn snapshot_page(
    store: &Store,
    user: &User,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<WireBatch> {
    let reader = user.visibility();
    let page = store.visible_snapshot_page(after, limit, &reader)?;
    let last = page.docs.last().map(|d| d.doc_id.clone());
    // The last page leaves nothing to count; counting runs the page's
    // query again (a subdistrict's bootstrap is usually one page).
    let remaining = match page.more {
        true => store.count_documents_after(last.as_deref().or(after), &reader)?,
        false => 0,
    };
    Ok(WireBatch {
        cursor: page.feed_head,
        more: page.more,
        remaining,
        changes: page.docs,
        views: page.views,
    })
}

pub(crate) fn documents_by_id(
    store: &Store,
    user: &User,
    ids: &[String],
) -> StoreResult<WireBatch> {
    let docs = store.visible_documents(ids, &user.visibility())?;
    Ok(WireBatch {
        cursor: 0,
        more: false,
        remaining: 0,
        changes: docs,
        views: Vec::new(),
    })
}
