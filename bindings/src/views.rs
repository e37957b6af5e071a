//! What crosses the boundary: plain records and enums, converted from the
//! core's types. Labels a screen shows are in Chinese.

use chrono::{DateTime, Utc};
use menqian_core as core;

use crate::error::{MenqianError, invalid};

pub(crate) fn time(field: &str, ms: i64) -> Result<DateTime<Utc>, MenqianError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| invalid(field, "not a time"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Phase {
    Import,
    Push,
    Pull,
    /// Photo upload, after the records; `done`/`total` are bytes.
    Photos,
}

/// A shop's page.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ShopView {
    pub id: String,
    /// The signboard code.
    pub code: String,
    pub name: String,
    pub address: String,
    /// e.g. 沿街商户.
    pub category: String,
    /// Empty on a steward's phone: listings carry no contact.
    pub contact_person: String,
    pub contact_phone: String,
    pub subdistrict: Option<String>,
    pub street: String,
    pub lane: Option<String>,
    /// e.g. 学校周边.
    pub tags: Vec<String>,
    pub open: bool,
    /// The signed responsibility letter's version, if any.
    pub letter: Option<String>,
    /// The zone's centre, WGS-84.
    pub lat: f64,
    pub lon: f64,
}

impl From<core::Shop> for ShopView {
    fn from(s: core::Shop) -> Self {
        let centre = s.zone.centroid();
        ShopView {
            id: s.id(),
            category: s.category.label_zh().to_string(),
            contact_person: s.contact.person,
            contact_phone: s.contact.phone,
            tags: s.tags.iter().map(|t| t.label_zh().to_string()).collect(),
            open: s.status == core::ShopStatus::Active,
            letter: s.letter.map(|l| l.version),
            lat: centre.lat,
            lon: centre.lon,
            code: s.code,
            name: s.name,
            address: s.address,
            subdistrict: s.subdistrict,
            street: s.street,
            lane: s.lane,
        }
    }
}

/// A line of a shop list.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ShopRow {
    pub id: String,
    pub code: String,
    pub name: String,
    pub address: String,
    pub street: String,
    pub lane: Option<String>,
    pub open: bool,
    pub lat: f64,
    pub lon: f64,
}

impl From<core::ShopSummary> for ShopRow {
    fn from(s: core::ShopSummary) -> Self {
        ShopRow {
            id: s.id,
            code: s.code,
            name: s.name,
            address: s.address,
            street: s.street,
            lane: s.lane,
            open: s.status == core::ShopStatus::Active,
            lat: s.lat,
            lon: s.lon,
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TemplateRef {
    pub id: String,
    pub version: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CategoryRow {
    pub code: String,
    pub name: String,
    pub group: String,
}

impl From<core::Category> for CategoryRow {
    fn from(c: core::Category) -> Self {
        CategoryRow {
            code: c.code,
            name: c.name,
            group: c.group,
        }
    }
}

/// A GPS fix from the phone: WGS-84, accuracy in metres.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub at_ms: i64,
}

impl Fix {
    pub(crate) fn into_core(self) -> Result<core::GpsFix, MenqianError> {
        Ok(core::GpsFix {
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            at: time("fix.at_ms", self.at_ms)?,
        })
    }
}

/// One point of a patrol track.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrackFix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub at_ms: i64,
}

impl TrackFix {
    pub(crate) fn into_core(self) -> Result<core::TrackPoint, MenqianError> {
        Ok(core::TrackPoint {
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            at: time("points.at_ms", self.at_ms)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    /// 合格
    Pass,
    /// 不合格
    Fail,
    /// 不适用
    NotApplicable,
}

impl From<Outcome> for core::ItemOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Pass => core::ItemOutcome::Pass,
            Outcome::Fail => core::ItemOutcome::Fail,
            Outcome::NotApplicable => core::ItemOutcome::NotApplicable,
        }
    }
}

impl From<core::ItemOutcome> for Outcome {
    fn from(o: core::ItemOutcome) -> Self {
        match o {
            core::ItemOutcome::Pass => Outcome::Pass,
            core::ItemOutcome::Fail => Outcome::Fail,
            core::ItemOutcome::NotApplicable => Outcome::NotApplicable,
        }
    }
}

/// A checklist line as the officer reads it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChecklistLine {
    pub code: String,
    pub text: String,
    /// The duty group's name, e.g. 包环境有序.
    pub duty: String,
    pub weight: u32,
    /// A failed result needs a photo.
    pub photo_on_fail: bool,
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
    pub photos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct InspectionView {
    pub id: String,
    pub shop_id: String,
    pub checklist: String,
    pub inspector: String,
    pub started_at_ms: i64,
    /// The applicable items, in checklist order, with their results so far.
    pub lines: Vec<ChecklistLine>,
    pub submitted: bool,
    pub score: Option<u32>,
    /// Metres from the start fix to the shop's zone (none without a fix).
    pub distance_m: Option<f64>,
    /// Farther than the fix's accuracy + the district's margin: 不在现场.
    pub off_site: bool,
}

impl InspectionView {
    /// The core's sheet (which items apply, their duties), as records.
    pub(crate) fn new(sheet: core::store::InspectionSheet) -> Self {
        let i = sheet.inspection;
        let lines = sheet
            .lines
            .into_iter()
            .map(|l| ChecklistLine {
                outcome: l.result.as_ref().map(|r| r.outcome.into()),
                note: l.result.as_ref().and_then(|r| r.note.clone()),
                photos: l.result.map(|r| r.photos).unwrap_or_default(),
                code: l.code,
                text: l.text,
                duty: l.duty,
                weight: l.weight,
                photo_on_fail: l.photo_on_fail,
            })
            .collect();
        InspectionView {
            submitted: i.is_submitted(),
            distance_m: i.geofence.map(|g| g.distance_m),
            off_site: i.geofence.is_some_and(|g| g.flagged),
            id: i.id,
            shop_id: i.shop_id,
            checklist: sheet.checklist,
            inspector: i.inspector,
            started_at_ms: i.started_at.timestamp_millis(),
            lines,
            score: i.score,
        }
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SubmitResult {
    pub score: u32,
    pub passed: bool,
    /// 合格 or 需整改.
    pub verdict: String,
    /// Codes of the failed items: each needs rectification.
    pub failed: Vec<String>,
}

impl From<core::Submitted> for SubmitResult {
    fn from(s: core::Submitted) -> Self {
        SubmitResult {
            score: s.score,
            passed: s.verdict == core::Verdict::Passed,
            verdict: s.verdict.label_zh().to_string(),
            failed: s.failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReportSource {
    Inspection,
    Steward,
    Citizen,
    Camera,
    Hotline,
}

impl From<ReportSource> for core::CaseSource {
    fn from(s: ReportSource) -> Self {
        match s {
            ReportSource::Inspection => core::CaseSource::Inspection,
            ReportSource::Steward => core::CaseSource::Steward,
            ReportSource::Citizen => core::CaseSource::Citizen,
            ReportSource::Camera => core::CaseSource::Camera,
            ReportSource::Hotline => core::CaseSource::Hotline,
        }
    }
}

/// A problem report as the report screen fills it in.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CaseReport {
    pub source: ReportSource,
    /// A code from the category table, e.g. `0504` (店外经营).
    pub category: String,
    pub lat: f64,
    pub lon: f64,
    pub shop_id: Option<String>,
    pub photos: Vec<String>,
    pub description: String,
    pub reported_by: String,
    pub reported_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CaseState {
    Reported,
    Accepted,
    Rejected,
    Dispatched,
    InProgress,
    AwaitingVerification,
    Closed,
}

const CASE_STATES: [(CaseState, core::CaseStatus); 7] = [
    (CaseState::Reported, core::CaseStatus::Reported),
    (CaseState::Accepted, core::CaseStatus::Accepted),
    (CaseState::Rejected, core::CaseStatus::Rejected),
    (CaseState::Dispatched, core::CaseStatus::Dispatched),
    (CaseState::InProgress, core::CaseStatus::InProgress),
    (
        CaseState::AwaitingVerification,
        core::CaseStatus::AwaitingVerification,
    ),
    (CaseState::Closed, core::CaseStatus::Closed),
];

impl From<CaseState> for core::CaseStatus {
    fn from(s: CaseState) -> Self {
        CASE_STATES
            .iter()
            .find(|(b, _)| *b == s)
            .map_or(core::CaseStatus::Reported, |(_, c)| *c)
    }
}

impl From<core::CaseStatus> for CaseState {
    fn from(s: core::CaseStatus) -> Self {
        CASE_STATES
            .iter()
            .find(|(_, c)| *c == s)
            .map_or(CaseState::Reported, |(b, _)| *b)
    }
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CaseRow {
    pub id: String,
    pub category: String,
    pub status: CaseState,
    /// e.g. 已受理.
    pub status_label: String,
    pub lat: f64,
    pub lon: f64,
    pub shop_id: Option<String>,
    pub reported_at_ms: i64,
    pub deadline_ms: Option<i64>,
}

impl From<core::CaseSummary> for CaseRow {
    fn from(c: core::CaseSummary) -> Self {
        CaseRow {
            id: c.id,
            category: c.category,
            status: c.status.into(),
            status_label: c.status.label_zh().to_string(),
            lat: c.location.lat,
            lon: c.location.lon,
            shop_id: c.shop_id,
            reported_at_ms: c.reported_at.timestamp_millis(),
            deadline_ms: c.deadline.map(|d| d.timestamp_millis()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Enrollment {
    /// The station's address to sync with (from the link, or as typed).
    pub server_url: String,
    pub device_id: String,
    /// Keep in the platform's secure storage (Android Keystore, iOS Keychain).
    pub token: String,
    pub user_id: String,
    pub role: String,
}

/// The patrol a recorder writes to, and whether it continues an open one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatrolStart {
    pub id: String,
    pub resumed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    /// This phone's changes the server acknowledged.
    pub pushed: u64,
    /// Changes received that were new here.
    pub pulled: u64,
    /// Photos and thumbnails uploaded whole.
    pub photos_uploaded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ImportSummary {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
}

impl From<core::ImportReport> for ImportSummary {
    fn from(r: core::ImportReport) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        ImportSummary {
            created: n(r.created),
            updated: n(r.updated),
            unchanged: n(r.unchanged),
        }
    }
}

/// A photo taken and stored as evidence (watermarked, 1600 px, EXIF removed).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoView {
    /// Its SHA-256: what an item's or a report's `photos` list holds.
    pub hash: String,
    pub thumb: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// The camera's own capture time (EXIF), if it wrote one.
    pub taken_at_ms: Option<i64>,
}

impl From<menqian_core::store::CapturedPhoto> for PhotoView {
    fn from(p: menqian_core::store::CapturedPhoto) -> Self {
        PhotoView {
            hash: p.hash,
            thumb: p.meta.thumb,
            width: p.meta.width,
            height: p.meta.height,
            bytes: p.meta.bytes,
            taken_at_ms: p.meta.taken_at.map(|t| t.timestamp_millis()),
        }
    }
}

/// What the clocks say about a record's time.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TimeVerdict {
    /// 时间可信 / 时间存疑 / 时间待核验.
    pub label: String,
    pub flagged: bool,
    /// Device clock minus the server's, when known.
    pub skew_ms: Option<i64>,
}

impl From<menqian_core::evidence::time::TimeCheck> for TimeVerdict {
    fn from(c: menqian_core::evidence::time::TimeCheck) -> Self {
        use menqian_core::evidence::time::TimeCheck as T;
        TimeVerdict {
            label: c.label_zh().to_string(),
            flagged: c.is_flagged(),
            skew_ms: match c {
                T::Consistent { skew_ms } | T::Skewed { skew_ms } => Some(skew_ms),
                T::Unverified => None,
            },
        }
    }
}

/// A patrol's cleaned track, measured.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PatrolSummary {
    /// Points stored, as recorded.
    pub recorded: u64,
    /// Points on the cleaned, simplified track.
    pub points: u64,
    pub dropped: u64,
    pub distance_m: f64,
    pub duration_s: i64,
    /// The lanes it passed, with the share of each it covered (within 20 m).
    pub lanes: Vec<LaneCovered>,
    /// The cleaned track and those lanes as GeoJSON (RFC 7946), for a map layer.
    pub geojson: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LaneCovered {
    pub name: String,
    pub length_m: f64,
    /// 0–1.
    pub covered: f64,
}

/// A position on a map.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct MapPoint {
    pub lat: f64,
    pub lon: f64,
}
