//! Problems (问题) reported by officers, stewards, citizens, cameras or the 12345
//! hotline; each becomes a case that moves through a status history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::geo::GeoPoint;

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
}

impl CaseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseSource::Inspection => "inspection",
            CaseSource::Steward => "steward",
            CaseSource::Citizen => "citizen",
            CaseSource::Camera => "camera",
            CaseSource::Hotline => "hotline",
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
}

impl Case {
    /// The current status: the last step of the merged history.
    pub fn status(&self) -> CaseStatus {
        self.history
            .last()
            .map_or(CaseStatus::Reported, |s| s.status)
    }
}
