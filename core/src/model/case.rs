//! Problems (问题) reported by officers, stewards, citizens, cameras or the 12345
//! hotline; each becomes a case that moves through a status history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::geo::GeoPoint;
use super::role::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseSource {
    /// 巡查发现
    Inspection,
    /// 小巷管家随手拍
    Steward,
    /// 市民反映
    Citizen,
    /// 智能摄像头
    Camera,
    /// 12345 热线
    Hotline,
    /// 逾期未整改: a rectification item past its deadline, escalated by the
    /// district platform.
    Rectification,
}

impl CaseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseSource::Inspection => "inspection",
            CaseSource::Steward => "steward",
            CaseSource::Citizen => "citizen",
            CaseSource::Camera => "camera",
            CaseSource::Hotline => "hotline",
            CaseSource::Rectification => "rectification",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            CaseSource::Inspection => "巡查发现",
            CaseSource::Steward => "小巷管家",
            CaseSource::Citizen => "市民反映",
            CaseSource::Camera => "智能摄像头",
            CaseSource::Hotline => "12345热线",
            CaseSource::Rectification => "逾期未整改",
        }
    }
}

/// How urgently a dispatched department is summoned (吹哨).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Whistle {
    /// 紧急哨
    Urgent,
    /// 常规哨
    Routine,
}

impl Whistle {
    pub fn as_str(self) -> &'static str {
        match self {
            Whistle::Urgent => "urgent",
            Whistle::Routine => "routine",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Whistle::Urgent => "紧急哨",
            Whistle::Routine => "常规哨",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// 已上报
    Reported,
    /// 已受理
    Accepted,
    /// 不予受理
    Rejected,
    /// 已派遣
    Dispatched,
    /// 处置中
    InProgress,
    /// 待核查
    AwaitingVerification,
    /// 已结案
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Reported => "reported",
            CaseStatus::Accepted => "accepted",
            CaseStatus::Rejected => "rejected",
            CaseStatus::Dispatched => "dispatched",
            CaseStatus::InProgress => "in_progress",
            CaseStatus::AwaitingVerification => "awaiting_verification",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            CaseStatus::Reported => "已上报",
            CaseStatus::Accepted => "已受理",
            CaseStatus::Rejected => "不予受理",
            CaseStatus::Dispatched => "已派遣",
            CaseStatus::InProgress => "处置中",
            CaseStatus::AwaitingVerification => "待核查",
            CaseStatus::Closed => "已结案",
        }
    }
}

/// One step in a case's history: who moved it where, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: CaseStatus,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: DateTime<Utc>,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The role the mover acted in; the workflow decides by it whether the step
    /// takes effect (a step without one never does, but the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A dispatch names the department (its code in the district's rules) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// … and blows an urgent or a routine whistle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whistle: Option<Whistle>,
}

/// One move a user makes on a case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseMove {
    pub to: CaseStatus,
    pub by: String,
    pub role: Role,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
    /// Needed to dispatch.
    pub department: Option<String>,
    pub whistle: Option<Whistle>,
}

/// A later report of the same problem, kept on the case it duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedReport {
    pub source: CaseSource,
    pub reported_by: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub reported_at: DateTime<Utc>,
    pub location: GeoPoint,
    #[serde(default)]
    pub photos: Vec<String>,
    pub description: String,
    /// The photos of `photos`, by blob hash.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub evidence: crate::evidence::Evidence,
}

/// Which moves each role may make (from, to, roles). The workflow is the same
/// in every district; what districts change (deadlines, departments) is in
/// [`crate::model::rules::DistrictRules`].
pub const WORKFLOW: &[(CaseStatus, CaseStatus, &[Role])] = {
    use CaseStatus::*;
    use Role::*;
    &[
        (Reported, Accepted, &[LaneChief, Supervisor, Admin]),
        (Reported, Rejected, &[LaneChief, Supervisor, Admin]),
        (Accepted, Dispatched, &[LaneChief, Supervisor, Admin]),
        (Dispatched, Dispatched, &[LaneChief, Supervisor, Admin]),
        (
            Dispatched,
            InProgress,
            &[Officer, LaneChief, Supervisor, Admin],
        ),
        (
            InProgress,
            AwaitingVerification,
            &[Officer, LaneChief, Supervisor, Admin],
        ),
        (AwaitingVerification, Closed, &[Supervisor, Admin]),
        (AwaitingVerification, InProgress, &[Supervisor, Admin]),
    ]
};

/// May `role` move a case from `from` to `to`?
pub fn may_move(from: CaseStatus, to: CaseStatus, role: Role) -> bool {
    WORKFLOW
        .iter()
        .any(|(f, t, roles)| *f == from && *t == to && roles.contains(&role))
}

/// The moves `role` may make from `from`, in workflow order: the buttons a
/// console or a phone shows on a case.
pub fn moves_from(from: CaseStatus, role: Role) -> Vec<CaseStatus> {
    WORKFLOW
        .iter()
        .filter(|(f, _, roles)| *f == from && roles.contains(&role))
        .map(|(_, t, _)| *t)
        .collect()
}

/// What a move is called where a user makes it (受理, 派遣, 核查结案 …).
pub fn move_label_zh(from: CaseStatus, to: CaseStatus) -> &'static str {
    use CaseStatus::*;
    match (from, to) {
        (_, Accepted) => "受理",
        (_, Rejected) => "不予受理",
        (Dispatched, Dispatched) => "改派",
        (_, Dispatched) => "派遣",
        (AwaitingVerification, InProgress) => "退回",
        (_, InProgress) => "开始处置",
        (_, AwaitingVerification) => "处置完毕，提请核查",
        (_, Closed) => "核查结案",
        (_, Reported) => "上报",
    }
}

/// May `role` make a move to `to` from some status? (What the server checks of
/// a pushed step: whether it takes effect is decided when the history is replayed.)
pub fn may_ever_move_to(to: CaseStatus, role: Role) -> bool {
    WORKFLOW
        .iter()
        .any(|(_, t, roles)| *t == to && roles.contains(&role))
}

/// Does this step take effect from `from`? A dispatch also needs a department
/// and a whistle.
pub fn step_allowed(from: CaseStatus, step: &StatusChange) -> bool {
    step.role.is_some_and(|r| may_move(from, step.status, r))
        && (step.status != CaseStatus::Dispatched
            || (step.department.is_some() && step.whistle.is_some()))
}

/// The merged history replayed under the workflow: which steps took effect
/// and where the case is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub status: CaseStatus,
    /// Per history step: did it take effect? A step made offline that another
    /// person's concurrent move overtook stays in the history, without effect.
    pub effective: Vec<bool>,
    /// The last effective dispatch: department code, whistle, when.
    pub dispatch: Option<(String, Whistle, DateTime<Utc>)>,
    /// When the current status was reached.
    pub since: DateTime<Utc>,
}

/// Replays `history` in its merged order (the same on every device: Automerge
/// orders concurrent appends deterministically, and causally later steps come
/// after what their author had seen). The first step is the report; every
/// other step takes effect only if the workflow allows it from the status the
/// effective steps before it reached.
pub fn replay(history: &[StatusChange], reported_at: DateTime<Utc>) -> Replay {
    let mut out = Replay {
        status: CaseStatus::Reported,
        effective: Vec::with_capacity(history.len()),
        dispatch: None,
        since: reported_at,
    };
    for (i, step) in history.iter().enumerate() {
        let ok = if i == 0 {
            step.status == CaseStatus::Reported
        } else {
            step_allowed(out.status, step)
        };
        out.effective.push(ok);
        if ok {
            out.status = step.status;
            out.since = step.at;
            if let (CaseStatus::Dispatched, Some(d), Some(w)) =
                (step.status, &step.department, step.whistle)
            {
                out.dispatch = Some((d.clone(), w, step.at));
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    pub source: CaseSource,
    /// A code from the category table (e.g. `0504` 店外经营).
    pub category: String,
    pub location: GeoPoint,
    pub shop_id: Option<String>,
    pub photos: Vec<String>,
    pub description: String,
    pub deadline: Option<DateTime<Utc>>,
    pub reported_by: String,
    pub reported_at: DateTime<Utc>,
    /// Where a report not at a shop lies; a report at a shop takes the shop's,
    /// and one with neither takes the nearest shop's (within 2 km). Decides
    /// which officers receive the case.
    pub subdistrict: Option<String>,
    pub lane: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    #[serde(skip)]
    pub id: String,
    pub source: CaseSource,
    pub category: String,
    pub location: GeoPoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_id: Option<String>,
    #[serde(default)]
    pub photos: Vec<String>,
    pub description: String,
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<DateTime<Utc>>,
    pub reported_by: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub reported_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdistrict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Append-only: concurrent moves made offline are all kept, in the same order
    /// on every device.
    pub history: Vec<StatusChange>,
    /// The photos of `photos`, by blob hash.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub evidence: crate::evidence::Evidence,
    /// The device's clocks when the report was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<crate::evidence::time::RecordTime>,
    /// Later reports of the same problem (same category, near, soon after):
    /// append-only, each signed by its reporter. Always written, even empty, so
    /// that concurrent first links append to one list.
    #[serde(default)]
    pub linked: Vec<LinkedReport>,
    /// For an escalated rectification item: the ledger entry (`<inspection id>#<item>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectification: Option<String>,
}

impl Case {
    /// Its free text and names, each with where it is and the most characters
    /// its form takes: what the station holds a device's record to.
    pub(crate) fn bounded_texts(&self) -> Vec<(String, &str, usize)> {
        use super::{MAX_NOTE_CHARS, MAX_PLACE_CHARS};
        let mut texts = vec![(
            "description".to_string(),
            self.description.as_str(),
            MAX_NOTE_CHARS,
        )];
        for (field, name) in [("subdistrict", &self.subdistrict), ("lane", &self.lane)] {
            if let Some(name) = name {
                texts.push((field.to_string(), name, MAX_PLACE_CHARS));
            }
        }
        for (i, step) in self.history.iter().enumerate() {
            if let Some(note) = &step.note {
                texts.push((format!("history.{i}.note"), note, MAX_NOTE_CHARS));
            }
        }
        for (i, report) in self.linked.iter().enumerate() {
            texts.push((
                format!("linked.{i}.description"),
                &report.description,
                MAX_NOTE_CHARS,
            ));
        }
        texts
    }

    /// The current status: the merged history replayed under the workflow.
    pub fn status(&self) -> CaseStatus {
        self.replay().status
    }

    pub fn replay(&self) -> Replay {
        replay(&self.history, self.reported_at)
    }
}
