//! The officer's day and a shop's standing: today's route, the rectification
//! ledger, credit grade and stars, the red flag, and moving cases.

use menqian_core as core;
use menqian_core::{GeoPoint, Role};

use crate::MenqianStore;
use crate::error::{MenqianError, invalid};
use crate::views::{self, CaseState};

type Result<T, E = MenqianError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum WhistleKind {
    /// 紧急哨
    Urgent,
    /// 常规哨
    Routine,
}

impl From<WhistleKind> for core::Whistle {
    fn from(w: WhistleKind) -> Self {
        match w {
            WhistleKind::Urgent => core::Whistle::Urgent,
            WhistleKind::Routine => core::Whistle::Routine,
        }
    }
}

/// One move on a case, as the case screen makes it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CaseMoveInput {
    pub to: CaseState,
    pub by: String,
    /// The role enrollment returned: officer, lane_chief, supervisor, admin.
    pub role: String,
    pub at_ms: i64,
    pub note: Option<String>,
    /// A dispatch names a department code from the district's rules …
    pub department: Option<String>,
    /// … and blows a whistle.
    pub whistle: Option<WhistleKind>,
}

/// One stop of today's route.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PlanStopView {
    pub shop_id: String,
    pub code: String,
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    /// 整改复查 / 首次检查 / 到期检查
    pub reason: String,
    /// A–D
    pub grade: String,
    pub stars: u8,
    pub leg_m: f64,
}

/// A shop on the officer's list that holds the red flag.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ExemptShop {
    pub shop_id: String,
    pub name: String,
    /// 流动红旗 · 免检一周
    pub badge: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DayPlanView {
    /// Beijing date, e.g. 2026-11-23.
    pub date: String,
    pub stops: Vec<PlanStopView>,
    pub exempt: Vec<ExemptShop>,
    /// Due shops beyond today's capacity.
    pub left_for_later: u32,
    pub walk_m: f64,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StandingView {
    pub shop_id: String,
    /// A–D, and its label (A级 守信 …).
    pub grade: String,
    pub grade_label: String,
    pub stars: u8,
    pub credit_score: u32,
    /// Holds the red flag: 免检一周.
    pub exempt: bool,
    pub last_week_score: Option<u32>,
    pub last_week_rank: Option<u32>,
    pub street_shops: Option<u32>,
    pub open_items: u32,
    pub next_due_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LedgerStepView {
    /// e.g. 复查仍不合格.
    pub label: String,
    pub at_ms: i64,
    pub by: String,
    pub case_id: Option<String>,
}

/// A rectification item (整改事项) with its history.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RectificationView {
    pub id: String,
    pub shop_id: String,
    pub item: String,
    pub item_text: String,
    pub deadline_ms: i64,
    /// 整改中 / 已逾期 / 已升级派遣 / 已整改
    pub state: String,
    pub closed: bool,
    pub on_time: Option<bool>,
    pub case_id: Option<String>,
    pub steps: Vec<LedgerStepView>,
}

impl From<core::store::ledger::RectificationItem> for RectificationView {
    fn from(i: core::store::ledger::RectificationItem) -> Self {
        RectificationView {
            on_time: i.on_time(),
            closed: i.closed_at.is_some(),
            state: i.state.label_zh().to_string(),
            deadline_ms: i.deadline.timestamp_millis(),
            steps: i
                .steps
                .into_iter()
                .map(|s| LedgerStepView {
                    label: s.kind.label_zh().to_string(),
                    at_ms: s.at.timestamp_millis(),
                    by: s.by,
                    case_id: s.case_id,
                })
                .collect(),
            id: i.id,
            shop_id: i.shop_id,
            item: i.item,
            item_text: i.item_text,
            case_id: i.case_id,
        }
    }
}

#[uniffi::export]
impl MenqianStore {
    /// Moves a case along the workflow (受理, 派遣 with a whistle, 处置, 核查, 结案).
    pub fn move_case(&self, id: String, m: CaseMoveInput) -> Result<()> {
        let role = Role::parse(&m.role).ok_or_else(|| invalid("role", "not a role"))?;
        let step = core::CaseMove {
            to: m.to.into(),
            by: m.by,
            role,
            at: views::time("at_ms", m.at_ms)?,
            note: m.note,
            department: m.department,
            whistle: m.whistle.map(Into::into),
        };
        Ok(self.store().move_case(&id, step)?)
    }

    /// Today's list for an officer standing at (lat, lon): due shops of the
    /// subdistrict (all on the phone when `None`) in walking order, and the
    /// red-flag holders left off it.
    pub fn today_plan(
        &self,
        subdistrict: Option<String>,
        lat: f64,
        lon: f64,
        now_ms: i64,
    ) -> Result<DayPlanView> {
        let now = views::time("now_ms", now_ms)?;
        let plan = self
            .store()
            .plan_day(subdistrict.as_deref(), GeoPoint::new(lat, lon), now)?;
        Ok(DayPlanView {
            date: plan.date,
            stops: plan
                .stops
                .into_iter()
                .map(|s| PlanStopView {
                    shop_id: s.shop_id,
                    code: s.code,
                    name: s.name,
                    address: s.address,
                    lat: s.location.lat,
                    lon: s.location.lon,
                    reason: s.reason.label_zh().to_string(),
                    grade: s.grade.as_str().to_string(),
                    stars: s.stars,
                    leg_m: s.leg_m,
                })
                .collect(),
            exempt: plan
                .exempt
                .into_iter()
                .map(|(shop_id, name)| ExemptShop {
                    shop_id,
                    name,
                    badge: core::store::RED_FLAG_BADGE_ZH.to_string(),
                })
                .collect(),
            left_for_later: plan.left_for_later,
            walk_m: plan.walk_m,
        })
    }

    /// A shop's credit grade, stars, red flag and last week's place.
    pub fn shop_standing(&self, shop_id: String, now_ms: i64) -> Result<StandingView> {
        let now = views::time("now_ms", now_ms)?;
        let s = self.store().standing(&shop_id, now)?;
        Ok(StandingView {
            shop_id: s.shop_id,
            grade: s.credit.grade.as_str().to_string(),
            grade_label: s.credit.grade.label_zh().to_string(),
            stars: s.credit.stars,
            credit_score: s.credit.score,
            exempt: s.exempt,
            last_week_score: s.last_week.as_ref().map(|r| r.score.score),
            last_week_rank: s.last_week.as_ref().map(|r| r.rank),
            street_shops: s.last_week.as_ref().map(|r| r.of),
            open_items: s.open_items,
            next_due_ms: s.next_due.map(|t| t.timestamp_millis()),
        })
    }

    /// The rectification ledger of one shop (all of it), or the open items of
    /// every shop on the phone, soonest deadline first.
    pub fn rectifications(
        &self,
        shop_id: Option<String>,
        now_ms: i64,
    ) -> Result<Vec<RectificationView>> {
        let now = views::time("now_ms", now_ms)?;
        let store = self.store();
        let items = match &shop_id {
            Some(shop) => {
                store.rectification_ledger(core::store::ledger::Scope::Shop(shop), now)?
            }
            None => store.open_rectifications(None, now)?,
        };
        Ok(items.into_iter().map(Into::into).collect())
    }
}
