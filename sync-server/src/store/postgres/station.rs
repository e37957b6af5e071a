//! One station instance on PostgreSQL: the accounts and the authoritative
//! documents in the database, and a disposable read model beside them — a
//! core [`Store`] fed from the database's feed, the way a phone keeps one. The
//! console, the public pages, visibility, scores and the plan read it, so
//! every instance computes what every phone computes. It is rebuilt from
//! the feed when missing.
//!
//! Writes are never checked against the read model: a device's push is
//! merged under the document's lock in PostgreSQL; the station's own writes
//! (a sweep, a citizen's report) are made on the read model like a phone's
//! edits and pushed the same way ([`SyncStore::publish`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use menqian_core::wire::WireBatch;
use menqian_core::{ApplyReport, DocChange, GroupedPush, Incoming, Store, StoreConfig, Writer};

use super::{PgAccounts, PgDocuments, PgPush, Sequencer};
use crate::store::{
    Accounts, AccountsRead, Device, StoreError, StoreResult, SyncRead, SyncStore, User,
};

/// Feed changes the read model applies at a time.
const CATCH_UP_PAGE: u32 = 2_000;

/// The writer's handle of one instance.
pub struct PgSyncStore {
    accounts: PgAccounts,
    docs: Mutex<PgDocuments>,
    model: Store,
    path: PathBuf,
    config: StoreConfig,
    url: String,
    /// Places what a push's own run did not (see [`Sequencer`]).
    _sequencer: Sequencer,
    authority: std::sync::Arc<PgAuthority>,
}

/// Connections one instance merges groups of pushes on, at most: the
/// station runs as many committer threads. Pushes beyond them wait for the
/// next group (a city's bursts reach a thousand at once, and PostgreSQL
/// refuses connections past `max_connections`: docs/operations.md).
pub const PUSH_CONNECTIONS: usize = 4;

/// Groups of pushes merged on connections of their own, beside the
/// instance's writer.
pub struct PgAuthority {
    url: String,
    pool: Mutex<Pool>,
    /// Signalled when a connection is given back or closed.
    freed: std::sync::Condvar,
}

/// The push connections: those idle, and how many are open in all.
struct Pool {
    idle: Vec<PgDocuments>,
    open: usize,
}

impl std::fmt::Debug for PgAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuthority").finish_non_exhaustive()
    }
}

impl crate::store::Authority for PgAuthority {
    fn groups_at_once(&self) -> usize {
        PUSH_CONNECTIONS
    }

    fn push_group(&self, group: Vec<GroupedPush>) -> StoreResult<Vec<StoreResult<ApplyReport>>> {
        let mut docs = self.take()?;
        let (pushes, _) = pg_pushes(group);
        let answers = docs.push_group(pushes);
        // Given back whatever the group's fate: a failed transaction rolled
        // back, and a connection PostgreSQL closed opens again at its next
        // use.
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .idle
            .push(docs);
        self.freed.notify_one();
        answers
    }
}

impl PgAuthority {
    fn new(url: &str) -> PgAuthority {
        PgAuthority {
            url: url.to_string(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: std::sync::Condvar::new(),
        }
    }

    /// An idle connection, a new one while fewer than [`PUSH_CONNECTIONS`]
    /// are open, or else the next one given back.
    fn take(&self) -> StoreResult<PgDocuments> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(docs) = pool.idle.pop() {
                return Ok(docs);
            }
            if pool.open < PUSH_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                let opened = PgDocuments::open(&self.url);
                if opened.is_err() {
                    self.pool.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                    self.freed.notify_one();
                }
                return opened;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// How often the background sequencer looks for changes without positions.
const SEQUENCER_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// A reader's handle: its own connections, the read model read-only.
pub struct PgReader {
    accounts: Box<dyn AccountsRead>,
    docs: Mutex<PgDocuments>,
    model: Store,
}

impl std::fmt::Debug for PgSyncStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSyncStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PgReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReader").finish_non_exhaustive()
    }
}

fn lock(docs: &Mutex<PgDocuments>) -> MutexGuard<'_, PgDocuments> {
    docs.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgSyncStore {
    /// Connects to `url`, and opens (or builds) this instance's read model in
    /// `dir`, caught up with the feed.
    pub fn open(url: &str, dir: &Path, qr_hosts: Vec<String>) -> StoreResult<PgSyncStore> {
        std::fs::create_dir_all(dir).map_err(menqian_core::Error::from)?;
        let accounts = PgAccounts::open(url)?;
        let mut docs = PgDocuments::open(url)?;
        // The read model is disposable: a lost tail is pulled again.
        let config = StoreConfig {
            qr_hosts,
            durable: false,
            publish_listings: false,
            cache_mib: super::super::CACHE_MIB,
            ..StoreConfig::default()
        };
        let path = dir.join("read-model.sqlite");
        let mut model = Store::open(&path, config.clone())?;
        let (cursor, followed) = model.followed()?;
        match docs.check_followed(cursor, followed.as_deref()) {
            Ok(()) => {}
            Err(StoreError::Diverged(why)) => {
                drop(model);
                let aside = set_aside(&path)?;
                tracing::error!(%why, aside = %aside.display(), "building the read model again");
                model = Store::open(&path, config.clone())?;
            }
            Err(e) => return Err(e),
        }
        let mut store = PgSyncStore {
            accounts,
            docs: Mutex::new(docs),
            model,
            path,
            config,
            url: url.to_string(),
            _sequencer: Sequencer::start(url, SEQUENCER_EVERY)?,
            authority: std::sync::Arc::new(PgAuthority::new(url)),
        };
        // Writes of this instance that did not reach the database before it
        // stopped go now.
        store.publish()?;
        store.catch_up()?;
        Ok(store)
    }

    /// Follows the feed after the read model's cursor; returns how many
    /// changes were new to it. The read model takes each document of a page
    /// as PostgreSQL holds it, with the view the instance that merged it
    /// wrote, rather than merging every change again (ADR 0017).
    pub fn catch_up(&mut self) -> StoreResult<usize> {
        let mut applied = 0;
        loop {
            let (cursor, followed) = self.model.followed()?;
            let (page, docs) = {
                let mut feed = lock(&self.docs);
                let page = feed.entries_since(cursor, followed.as_deref(), CATCH_UP_PAGE)?;
                let mut ids: Vec<&str> = page.entries.iter().map(|e| e.doc_id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                let docs = feed.documents(&ids)?;
                (page, docs)
            };
            if page.entries.is_empty() {
                return Ok(applied);
            }
            applied += self
                .model
                .follow_authority(&page.entries, &docs, page.cursor)?
                .applied;
            if !page.more {
                return Ok(applied);
            }
        }
    }

    /// Pushes changes from another store as the station's own (a station
    /// moved here, [`super::migrate`]), in their order.
    pub fn import_changes(&mut self, changes: &[DocChange]) -> StoreResult<ApplyReport> {
        let incoming = menqian_core::decode_changes(changes)?;
        lock(&self.docs).push(None, incoming, Utc::now())
    }

    /// This instance's photo directory.
    pub fn photos(&self) -> &menqian_core::evidence::blobs::BlobDir {
        self.model.blobs()
    }

    /// The feed's last position.
    pub fn head(&self) -> StoreResult<u64> {
        lock(&self.docs).head()
    }

    /// How far the read model is behind the feed, in changes.
    pub fn lag(&self) -> StoreResult<u64> {
        lag(&self.model, &self.docs)
    }
}

/// A group's pushes as the database takes them, and each push's writer
/// with the documents it changes (for [`SyncStore::accepted`]).
fn pg_pushes(group: Vec<GroupedPush>) -> (Vec<PgPush>, Vec<(Writer, Vec<String>)>) {
    group
        .into_iter()
        .map(|p| {
            let touched = (p.writer.clone(), p.doc_ids());
            let push = PgPush {
                writer: Some(p.writer),
                changes: p.changes,
                received: p.received_at,
            };
            (push, touched)
        })
        .unzip()
}

/// The shops among these document ids, each once.
fn shops_among<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut shops: Vec<String> = ids
        .filter(|id| id.starts_with("shop/"))
        .map(str::to_string)
        .collect();
    shops.sort();
    shops.dedup();
    shops
}

/// How far the read model is behind the feed; an error when the feed is no
/// longer the history it followed.
fn lag(model: &Store, docs: &Mutex<PgDocuments>) -> StoreResult<u64> {
    let (cursor, followed) = model.followed()?;
    let mut docs = lock(docs);
    docs.check_followed(cursor, followed.as_deref())?;
    Ok(docs.head()?.saturating_sub(cursor))
}

/// Moves a read model (and its WAL) aside, under a name of its own, rather
/// than delete what may be the only copy of writes that did not reach the
/// database; answers where.
fn set_aside(path: &Path) -> StoreResult<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3f");
    let aside = path.with_extension(format!("diverged-{stamp}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&from, &to).map_err(menqian_core::Error::from)?;
        }
    }
    Ok(aside)
}

/// A device's pull: the feed's changes after `cursor` that the user may see,
/// up to where the read model knows every document's visibility.
fn pull(
    model: &Store,
    docs: &Mutex<PgDocuments>,
    device: &Device,
    user: &User,
    cursor: u64,
    limit: u32,
) -> StoreResult<WireBatch> {
    crate::store::current_area(device, user)?;
    let (upto, followed) = model.followed()?;
    let reader = user.visibility();
    let limit = limit.max(1) as usize;
    let mut docs = lock(docs);
    // The read model decides what the user may see: not from another history.
    docs.check_followed(upto, followed.as_deref())?;
    let mut changes = Vec::new();
    let mut at = cursor;
    'pages: while at < upto {
        let page = docs.changes_between(at, upto, CATCH_UP_PAGE)?;
        let mut ids: Vec<&str> = page
            .changes
            .iter()
            .map(|(_, c)| c.doc_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let visible = model.visible_ids(&ids, &reader)?;
        for (pos, change) in &page.changes {
            if visible.contains(&change.doc_id) {
                if changes.len() == limit {
                    break 'pages;
                }
                changes.push(change.clone());
            }
            at = *pos;
        }
        if !page.more {
            break;
        }
    }
    let counts = docs.counts_between(at, upto)?;
    let ids: Vec<&str> = counts.iter().map(|(id, _)| id.as_str()).collect();
    let visible = model.visible_ids(&ids, &reader)?;
    let remaining: u64 = counts
        .iter()
        .filter(|(id, _)| visible.contains(id))
        .map(|(_, n)| n)
        .sum();
    Ok(WireBatch {
        cursor: at,
        more: remaining > 0,
        remaining,
        changes,
        views: Vec::new(),
    })
}

/// A snapshot page of the read model, whose cursor is the feed position the
/// read model has applied (so the device pulls on from there): none from a
/// read model of another history than the database's.
fn snapshot_page(
    model: &Store,
    docs: &Mutex<PgDocuments>,
    user: &User,
    after: Option<&str>,
    limit: u32,
) -> StoreResult<WireBatch> {
    let (pulled, followed) = model.followed()?;
    lock(docs).check_followed(pulled, followed.as_deref())?;
    let mut page = crate::store::snapshot_page(model, user, after, limit)?;
    page.cursor = pulled;
    Ok(page)
}

impl SyncStore for PgSyncStore {
    fn accounts(&mut self) -> &mut dyn Accounts {
        &mut self.accounts
    }

    fn accounts_read(&self) -> &dyn AccountsRead {
        &self.accounts
    }

    fn actor_has_changes(&self, actor: &str) -> StoreResult<bool> {
        if self.model.actor_id() == actor {
            return Ok(true);
        }
        lock(&self.docs).actor_has_changes(actor)
    }

    fn push_decoded(
        &mut self,
        writer: &Writer,
        changes: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport> {
        let push = GroupedPush::new(changes, writer.clone(), now);
        self.push_group(vec![push])?
            .pop()
            .unwrap_or_else(|| Err(super::no_answer()))
    }

    fn push_group(
        &mut self,
        group: Vec<GroupedPush>,
    ) -> StoreResult<Vec<StoreResult<ApplyReport>>> {
        let (pushes, touched) = pg_pushes(group);
        let answers = lock(&self.docs).push_group(pushes)?;
        self.accepted(&crate::store::accepted_pushes(touched, &answers))?;
        Ok(answers)
    }

    fn authority(&self) -> Option<std::sync::Arc<dyn crate::store::Authority>> {
        Some(self.authority.clone())
    }

    fn accepted(&mut self, pushes: &[(Writer, Vec<String>)]) -> StoreResult<()> {
        // The read model takes the pushes (and whatever came before them,
        // other groups merged meanwhile included) now: what each device may
        // upload, and the listings of the shops they changed, are read from
        // there.
        let applied = self.catch_up()?;
        for (writer, doc_ids) in pushes {
            let refs: Vec<&str> = doc_ids.iter().map(String::as_str).collect();
            let blobs = self.model.blobs_referenced_by(&refs)?;
            self.accounts.allow_uploads(&writer.actor, &blobs)?;
        }
        let shops = shops_among(
            pushes
                .iter()
                .flat_map(|(_, ids)| ids.iter().map(String::as_str)),
        );
        if applied > 0 && !shops.is_empty() {
            self.model.publish_listings_of(&shops)?;
            self.publish()?;
        }
        Ok(())
    }

    fn publish(&mut self) -> StoreResult<()> {
        loop {
            let pushed = self.model.sync_cursors()?.pushed;
            let batch = self.model.own_changes_since(pushed, 1_000)?;
            if batch.changes.is_empty() {
                return Ok(());
            }
            // The read model does not publish listings on its own (every
            // instance would): the instance that changed a shop writes its
            // listing, which goes out with a later page.
            let shops = shops_among(batch.changes.iter().map(|c| c.doc_id.as_str()));
            if !shops.is_empty() {
                self.model.publish_listings_of(&shops)?;
            }
            let incoming = menqian_core::decode_changes(&batch.changes)?;
            lock(&self.docs).push(None, incoming, Utc::now())?;
            self.model.set_pushed(batch.cursor)?;
            if !batch.more && shops.is_empty() {
                return Ok(());
            }
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn refresh(&mut self) -> StoreResult<()> {
        self.publish()?;
        self.catch_up()?;
        Ok(())
    }

    fn lead_sweep(&mut self) -> StoreResult<bool> {
        lock(&self.docs).lead_sweep()
    }

    fn reader(&self) -> StoreResult<Box<dyn SyncRead>> {
        Ok(Box::new(PgReader {
            accounts: self.accounts.reader()?,
            docs: Mutex::new(PgDocuments::open(&self.url)?),
            model: Store::open_reader(&self.path, self.config.clone())?,
        }))
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        pull(&self.model, &self.docs, device, user, cursor, limit)
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
        snapshot_page(&self.model, &self.docs, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        crate::store::documents_by_id(&self.model, user, ids)
    }

    fn documents(&mut self) -> &mut Store {
        &mut self.model
    }
}

impl SyncRead for PgReader {
    fn accounts(&self) -> &dyn AccountsRead {
        self.accounts.as_ref()
    }

    fn pull(
        &self,
        device: &Device,
        user: &User,
        cursor: u64,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        pull(&self.model, &self.docs, device, user, cursor, limit)
    }

    fn snapshot_page(
        &self,
        user: &User,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<WireBatch> {
        snapshot_page(&self.model, &self.docs, user, after, limit)
    }

    fn documents_by_id(&self, user: &User, ids: &[String]) -> StoreResult<WireBatch> {
        crate::store::documents_by_id(&self.model, user, ids)
    }

    fn blob_visible(&self, hash: &str, user: &User) -> StoreResult<bool> {
        Ok(self.model.blob_visible(hash, &user.visibility())?)
    }

    fn documents(&self) -> &Store {
        &self.model
    }

    fn lag(&self) -> StoreResult<u64> {
        lag(&self.model, &self.docs)
    }
}
