//! UniFFI bindings for the phone apps: thin wrappers over `menqian-core` (each a
//! few lines; the logic stays in the core), a small error enum a screen can act
//! on, a progress listener and cancellation. Times cross as milliseconds since
//! the Unix epoch; photos cross as file paths in and SHA-256 names out, never
//! as pixels.
//!
//! `MenqianStore` is one phone's store. It is safe to call from any thread: calls
//! take turns on one SQLite connection (a sync holds it while it runs).

mod duty;
mod error;
mod views;

use std::sync::{Arc, Mutex, MutexGuard};

use menqian_client::DeviceSync as _;
use menqian_client::{CancelToken, SyncListener, SyncPhase, SyncProgress};
use menqian_core::{EnrollmentLink, GeoPoint, NewCase, NewInspection, Shop, Store, StoreConfig};

pub use error::{ListenerError, MenqianError};
pub use views::*;

uniffi::setup_scaffolding!();

type Result<T, E = MenqianError> = std::result::Result<T, E>;

/// Receives progress of a sync or an import. Return `false` to stop the work
/// at its next step (as `MenqianError::Cancelled`; what finished stays). An
/// exception thrown here is caught and ignored: it cannot stop or damage the work.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    fn on_progress(&self, phase: Phase, done: u64, total: u64) -> Result<bool, ListenerError>;
}

/// The phone's monotonic boot clock, for the clock evidence records carry:
/// Android `SystemClock.elapsedRealtime()` with `Settings.Global.BOOT_COUNT`;
/// iOS the continuous clock with the boot time. Without one, the core reads
/// Linux's `/proc` (Android) and iOS records carry no monotonic evidence. A
/// clock that throws counts as no reading for that record.
#[uniffi::export(with_foreign)]
pub trait DeviceClock: Send + Sync {
    /// Changes on every boot.
    fn boot_id(&self) -> Result<String, ListenerError>;
    /// Milliseconds since boot, counting sleep.
    fn since_boot_ms(&self) -> Result<i64, ListenerError>;
}

/// Cancels a running sync from another thread: it stops at the next page or
/// retry wait with `MenqianError::Cancelled`.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelHandle(CancelToken);

#[uniffi::export]
impl CancelHandle {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// One phone's store.
#[derive(Debug, uniffi::Object)]
pub struct MenqianStore {
    store: Mutex<Store>,
}

/// Shops per import step: progress is reported between steps.
const IMPORT_STEP: usize = 2_000;

impl MenqianStore {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic cannot leave a half-written transaction (SQLite rolls it back
        // when it is dropped), so a poisoned lock is still a sound store.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[uniffi::export]
impl MenqianStore {
    /// Opens (creating if needed) the store at `path`. `qr_hosts` are the
    /// district's signboard hosts; a link to any other host is refused.
    #[uniffi::constructor]
    pub fn open(path: String, qr_hosts: Vec<String>) -> Result<Arc<Self>> {
        let config = StoreConfig {
            qr_hosts,
            ..StoreConfig::default()
        };
        Ok(Arc::new(MenqianStore {
            store: Mutex::new(Store::open(path, config)?),
        }))
    }

    /// This phone's Automerge actor id, bound to it at enrollment.
    pub fn actor_id(&self) -> String {
        self.store().actor_id()
    }

    /// Imports a registry (a JSON array of shops, the fixtures' format). Every
    /// shop is checked first: one bad record imports nothing. Progress goes to
    /// `listener` in steps of 2,000 shops; each step commits on its own, and
    /// importing the same list again finishes an interrupted import.
    pub fn import_registry_json(
        &self,
        json: String,
        listener: Option<Arc<dyn ProgressListener>>,
    ) -> Result<ImportSummary> {
        let shops: Vec<Shop> =
            serde_json::from_str(&json).map_err(|e| error::invalid("json", e))?;
        let r = self
            .store()
            .import_registry_in_steps(shops, IMPORT_STEP, |done, total| {
                keep_going(listener.as_deref(), Phase::Import, done, total)
            })?;
        Ok(ImportSummary::from(r))
    }

    /// Imports checklist templates (JSON array); returns how many versions were new.
    pub fn import_templates_json(&self, json: String) -> Result<u32> {
        let t = serde_json::from_str(&json).map_err(|e| error::invalid("json", e))?;
        Ok(self.store().import_templates(t)? as u32)
    }

    /// Imports the category table (JSON array).
    pub fn import_categories_json(&self, json: String) -> Result<()> {
        let c = serde_json::from_str(&json).map_err(|e| error::invalid("json", e))?;
        Ok(self.store().import_categories(c)?)
    }

    /// The shop behind a scanned signboard QR payload.
    pub fn scan(&self, payload: String) -> Result<ShopView> {
        Ok(ShopView::from(self.store().scan(&payload)?))
    }

    /// A shop by its typed code (the fallback when a signboard is unreadable).
    pub fn shop_by_code(&self, code: String) -> Result<ShopView> {
        Ok(ShopView::from(self.store().shop_by_code(&code)?))
    }

    pub fn shop(&self, id: String) -> Result<ShopView> {
        Ok(ShopView::from(self.store().shop(&id)?))
    }

    /// Shops whose name or address contains `text` (Chinese substring search).
    pub fn search_shops(&self, text: String, limit: u32) -> Result<Vec<ShopRow>> {
        let rows = self.store().search_shops(&text, limit)?;
        Ok(rows.into_iter().map(ShopRow::from).collect())
    }

    /// The shops on a street, or on one of its lanes.
    pub fn shops_on(&self, street: String, lane: Option<String>) -> Result<Vec<ShopRow>> {
        let rows = self.store().shops_on(&street, lane.as_deref())?;
        Ok(rows.into_iter().map(ShopRow::from).collect())
    }

    pub fn templates(&self) -> Result<Vec<TemplateRef>> {
        let rows = self.store().templates()?;
        Ok(rows
            .into_iter()
            .map(|(id, version, name)| TemplateRef { id, version, name })
            .collect())
    }

    pub fn categories(&self) -> Result<Vec<CategoryRow>> {
        let rows = self.store().categories()?;
        Ok(rows.into_iter().map(CategoryRow::from).collect())
    }

    /// Starts an inspection of a shop with a checklist (its newest version);
    /// the items that apply to this shop and month are fixed now.
    pub fn start_inspection(
        &self,
        shop_id: String,
        template_id: String,
        inspector: String,
        started_at_ms: i64,
        fix: Option<Fix>,
    ) -> Result<String> {
        let new = NewInspection {
            shop_id,
            template_id,
            template_version: None,
            inspector,
            started_at: views::time("started_at_ms", started_at_ms)?,
            fix: fix.map(Fix::into_core).transpose()?,
        };
        Ok(self.store().start_inspection(new)?)
    }

    /// An inspection with its checklist items (text, weight) and results so far.
    pub fn inspection(&self, id: String) -> Result<InspectionView> {
        Ok(InspectionView::new(self.store().inspection_sheet(&id)?))
    }

    /// Turns a camera JPEG into evidence: oriented, 1600 px, watermarked with
    /// time, place, coordinates, the taker and the shop; EXIF removed; stored
    /// with its thumbnail until sync uploads them. Put the returned hash in an
    /// item's or a report's photos. The camera file can be deleted afterwards.
    pub fn capture_photo(
        &self,
        path: String,
        taken_by: String,
        at_ms: i64,
        fix: Option<Fix>,
        shop_id: Option<String>,
        place: Option<String>,
    ) -> Result<PhotoView> {
        let capture = menqian_core::store::Capture {
            at: views::time("at_ms", at_ms)?,
            fix: fix.map(Fix::into_core).transpose()?,
            taken_by,
            shop_id,
            place,
        };
        let photo = self
            .store()
            .capture_photo(std::path::Path::new(&path), capture)?;
        Ok(photo.into())
    }

    /// The file of a photo or thumbnail on this phone, to show it.
    pub fn photo_path(&self, hash: String) -> Result<String> {
        Ok(self.store().blob_path(&hash)?.display().to_string())
    }

    /// Photos and thumbnails still waiting for upload.
    pub fn pending_photos(&self) -> Result<u64> {
        Ok(self.store().pending_blobs()?.len() as u64)
    }

    /// Uses the app's boot clock for records' clock evidence (see `DeviceClock`).
    pub fn set_device_clock(&self, clock: Arc<dyn DeviceClock>) {
        self.store().set_uptime_source(Arc::new(move || {
            Some(menqian_core::evidence::time::Uptime {
                boot_id: clock.boot_id().ok()?,
                ms: clock.since_boot_ms().ok()?,
            })
        }));
    }

    /// What the clocks say about an inspection's, report's or patrol's time.
    pub fn time_check(&self, record_id: String) -> Result<TimeVerdict> {
        Ok(self.store().time_check(&record_id)?.into())
    }

    /// A patrol's track with implausible points dropped, simplified and
    /// measured, and how much of each lane it passed it covered.
    pub fn patrol_summary(&self, patrol_id: String) -> Result<PatrolSummary> {
        use menqian_core::model::track::{self, TrackRules};
        let (report, lanes) = self
            .store()
            .patrol_report_near(&patrol_id, &TrackRules::default())?;
        Ok(PatrolSummary {
            recorded: report.points_in as u64,
            points: report.track.len() as u64,
            dropped: (report.dropped_inaccurate + report.dropped_jumps) as u64,
            distance_m: report.distance_m,
            duration_s: report.duration_s,
            lanes: report
                .lanes
                .iter()
                .map(|l| LaneCovered {
                    name: l.name.clone(),
                    length_m: l.length_m,
                    covered: l.covered,
                })
                .collect(),
            geojson: track::to_geojson(&report, &lanes, &patrol_id).to_string(),
        })
    }

    /// Records one item's result; `photos` are hashes from `capture_photo`.
    pub fn record_item(
        &self,
        inspection_id: String,
        code: String,
        outcome: Outcome,
        note: Option<String>,
        photos: Vec<String>,
    ) -> Result<()> {
        let result = menqian_core::ItemResult {
            outcome: outcome.into(),
            note,
            photos,
        };
        Ok(self.store().record_item(&inspection_id, &code, result)?)
    }

    /// Submits: computes the score and verdict; the inspection never changes again.
    pub fn submit_inspection(&self, id: String, ended_at_ms: i64) -> Result<SubmitResult> {
        let at = views::time("ended_at_ms", ended_at_ms)?;
        Ok(SubmitResult::from(self.store().submit_inspection(&id, at)?))
    }

    /// Files a problem report (随手拍, inspection finding …); returns its id.
    pub fn report_case(&self, report: CaseReport) -> Result<String> {
        let new = NewCase {
            source: report.source.into(),
            category: report.category,
            location: GeoPoint::new(report.lat, report.lon),
            shop_id: report.shop_id,
            photos: report.photos,
            description: report.description,
            deadline: None,
            reported_by: report.reported_by,
            reported_at: views::time("reported_at_ms", report.reported_at_ms)?,
            subdistrict: None,
            lane: None,
        };
        Ok(self.store().report_case(new)?)
    }

    /// Cases (newest first), in one status or all.
    pub fn cases(&self, status: Option<CaseState>, limit: u32) -> Result<Vec<CaseRow>> {
        let rows = self.store().cases(status.map(Into::into), limit)?;
        Ok(rows.into_iter().map(CaseRow::from).collect())
    }

    pub fn start_patrol(&self, user: String, at_ms: i64) -> Result<String> {
        let at = views::time("at_ms", at_ms)?;
        Ok(self.store().start_patrol(&user, at)?)
    }

    /// The patrol a (re)started recorder writes to: the user's open patrol if
    /// it began within 12 hours (the app was killed mid-patrol), else a new
    /// one; older open patrols are closed at their last point.
    pub fn resume_or_start_patrol(&self, user: String, at_ms: i64) -> Result<PatrolStart> {
        let at = views::time("at_ms", at_ms)?;
        let (id, resumed) = self.store().resume_or_start_patrol(&user, at)?;
        Ok(PatrolStart { id, resumed })
    }

    /// Stores what the patrol recorder buffered: points that can never be
    /// stored (a cached fix from before the start, a broken reading) are
    /// dropped, not refused. Returns how many were dropped.
    pub fn record_fixes(&self, patrol_id: String, points: Vec<TrackFix>) -> Result<u32> {
        let total = points.len();
        let points: Vec<_> = points
            .into_iter()
            .filter_map(|p| p.into_core().ok())
            .collect();
        let unreadable = total - points.len();
        let dropped = self.store().record_fixes(&patrol_id, &points)?;
        Ok(u32::try_from(dropped + unreadable).unwrap_or(u32::MAX))
    }

    /// Appends GPS points as they arrive (from the foreground location service).
    pub fn append_track(&self, patrol_id: String, points: Vec<TrackFix>) -> Result<()> {
        let points = points
            .into_iter()
            .map(TrackFix::into_core)
            .collect::<Result<Vec<_>>>()?;
        Ok(self.store().append_track(&patrol_id, &points)?)
    }

    pub fn stop_patrol(&self, patrol_id: String, at_ms: i64) -> Result<()> {
        let at = views::time("at_ms", at_ms)?;
        Ok(self.store().stop_patrol(&patrol_id, at)?)
    }

    /// Enrolls this phone with the station's address and a one-time code as
    /// typed. Over https the station's certificate must come from a public CA;
    /// a station with a private CA is enrolled through its link
    /// ([`MenqianStore::enroll_link`]). Keep the returned token in the
    /// platform's secure storage.
    pub fn enroll(
        &self,
        server_url: String,
        code: String,
        device_name: String,
    ) -> Result<Enrollment> {
        let link = EnrollmentLink::new(&server_url, &code, None)?;
        self.enroll_with(link, device_name)
    }

    /// Enrolls this phone through the link the station prints and shows as a
    /// QR code (`https://…/enroll?code=…&ca=…`). With a CA pin, the station's
    /// CA certificate is fetched, checked against the pin and kept: from then
    /// on this phone trusts that CA alone for its station.
    pub fn enroll_link(&self, link: String, device_name: String) -> Result<Enrollment> {
        self.enroll_with(EnrollmentLink::parse(&link)?, device_name)
    }

    /// Pushes this phone's changes and pulls everyone else's. Safe to interrupt
    /// anywhere and to call again: nothing is lost or applied twice.
    pub fn sync(
        &self,
        server_url: String,
        token: String,
        listener: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelHandle>>,
    ) -> Result<SyncSummary> {
        let mut store = self.store();
        let client = store.sync_client(&server_url, &token)?;
        let cancel = cancel.map(|c| c.0.clone()).unwrap_or_default();
        let adapter = listener.map(|l| Adapter(l, cancel.clone()));
        let report = store.sync(
            &client,
            adapter.as_ref().map(|a| a as &dyn SyncListener),
            &cancel,
        )?;
        Ok(SyncSummary {
            pushed: report.pushed,
            pulled: report.pulled,
            photos_uploaded: report.photos_uploaded,
        })
    }

    /// Changes made on this phone that the server has not acknowledged yet.
    pub fn pending_changes(&self) -> Result<u64> {
        let store = self.store();
        let pushed = store.sync_cursors()?.pushed;
        Ok(store.count_changes_since(pushed, true)?)
    }

    /// Folds the write-ahead log into the database; call when the app idles.
    pub fn checkpoint(&self) -> Result<()> {
        Ok(self.store().checkpoint()?)
    }
}

/// WGS-84 (what GPS reports and the store keeps) to GCJ-02, for drawing on
/// AMap or Tencent maps. Outside mainland China the point is unchanged.
#[uniffi::export]
pub fn wgs84_to_gcj02(lat: f64, lon: f64) -> MapPoint {
    let p = menqian_core::model::place::wgs84_to_gcj02(GeoPoint::new(lat, lon));
    MapPoint {
        lat: p.lat,
        lon: p.lon,
    }
}

/// GCJ-02 (a point picked on AMap or Tencent) back to WGS-84, within 1 mm.
#[uniffi::export]
pub fn gcj02_to_wgs84(lat: f64, lon: f64) -> MapPoint {
    let p = menqian_core::model::place::gcj02_to_wgs84(GeoPoint::new(lat, lon));
    MapPoint {
        lat: p.lat,
        lon: p.lon,
    }
}

impl MenqianStore {
    fn enroll_with(&self, link: EnrollmentLink, device_name: String) -> Result<Enrollment> {
        let e = self.store().enroll(&link, &device_name)?;
        Ok(Enrollment {
            server_url: link.server_url,
            device_id: e.device_id,
            token: e.token,
            user_id: e.user_id,
            role: e.role,
        })
    }
}

/// Tells the listener; `false` only when it asked to stop (a listener that
/// throws is ignored and the work goes on).
fn keep_going(
    listener: Option<&dyn ProgressListener>,
    phase: Phase,
    done: u64,
    total: u64,
) -> bool {
    listener.is_none_or(|l| l.on_progress(phase, done, total).unwrap_or(true))
}

/// The core's listener, forwarding to the app's; a `false` cancels the sync.
struct Adapter(Arc<dyn ProgressListener>, CancelToken);

impl SyncListener for Adapter {
    fn on_progress(&self, p: SyncProgress) -> std::result::Result<(), String> {
        let phase = match p.phase {
            SyncPhase::Push => Phase::Push,
            SyncPhase::Pull => Phase::Pull,
            SyncPhase::Photos => Phase::Photos,
        };
        if !keep_going(Some(self.0.as_ref()), phase, p.done, p.total) {
            self.1.cancel();
        }
        Ok(())
    }
}
