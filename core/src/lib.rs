//! Menqian's core: the shop registry, checklist templates, inspections, cases and
//! patrol logs as small Automerge documents stored in SQLite, with index tables
//! for the screens and a change feed for merging stores.
//!
//! It knows nothing of FFI, HTTP or UI: the bindings crate wraps it for Kotlin
//! and Swift, the sync server embeds it. See `ARCHITECTURE.md`.

pub mod access;
pub mod doc;
pub mod enrollment;
pub mod error;
pub mod evidence;
pub mod hex;
pub mod ids;
pub mod limits;
pub mod model;
pub mod onboard;
pub mod qr;
pub mod scores;
pub mod store;
pub mod wire;

pub use access::{Area, Role, Visibility, Writer};
pub use enrollment::EnrollmentLink;
pub use error::{Error, Result};
pub use model::case::{
    Case, CaseMove, CaseSource, CaseStatus, LinkedReport, NewCase, StatusChange, Whistle,
};
pub use model::category::Category;
pub use model::geo::{GeoPoint, GpsFix, Zone};
pub use model::inspection::{Inspection, ItemOutcome, ItemResult, NewInspection, Verdict};
pub use model::patrol::TrackPoint;
pub use model::period::{Period, PeriodKind};
pub use model::rules::{DistrictRules, Grade};
pub use model::shop::{Contact, Letter, Shop, ShopCategory, ShopPatch, ShopStatus, ShopTag};
pub use model::template::{ChecklistItem, ChecklistTemplate, Duty};
pub use qr::{QrError, ShopCode};
pub use store::{
    ApplyReport, AuthorityDoc, CaseFilter, CaseOrder, CaseSummary, ChangeBatch, DayPlan, DocChange,
    FeedEntry, Filed, GroupedPush, ImportReport, Incoming, InspectionRef, LaneBoard, LaneChiefWeek,
    MergedDoc, MergedPush, NewChange, Overview, PlanStop, PublicLookup, PublicShop, PushBases,
    ShopSummary, Signboard, SpanFigures, Standing, StewardScore, Store, StoreConfig, Submitted,
    Sweep, SweepReport, SyncCursors, decode_changes, decode_pushed, group_by_document,
    merge_pushed, wait_for_locks,
};
