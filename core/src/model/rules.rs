//! A district's rules (考核规则) as data: rectification deadlines per problem
//! category, which department handles what, whistle deadlines, duplicate
//! linking, scoring, the red flag, stars, credit grades and the daily plan.
//!
//! The administrator publishes them as one document (`rules/district`) that
//! every device receives; until one is published the defaults below apply.
//! Everything computed from them is deterministic: two devices holding the same
//! documents compute the same ledger, scores, ranks, grades and plans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::required_text;
use crate::error::{Error, Result};

/// The document id of the district's rules.
pub const RULES_DOC: &str = "rules/district";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistrictRules {
    /// Shown to users ("2026 版"); informational.
    pub name: String,
    pub rectification: RectificationRules,
    /// Who handles escalated and dispatched cases.
    pub departments: Vec<Department>,
    pub whistles: WhistleRules,
    pub duplicates: DuplicateRule,
    pub scoring: ScoringRules,
    pub red_flag: RedFlagRule,
    pub black_list: BlackListRule,
    /// The credit score a shop needs for 5, 4, 3 and 2 stars (below the last: 1).
    pub stars: [u32; 4],
    pub grades: GradeRules,
    pub stewards: StewardPoints,
    pub lane_chiefs: LaneChiefRules,
    pub planner: PlannerRules,
    /// What the printed signboards (公示牌) say of the district.
    #[serde(default)]
    pub signboard: SignboardRules,
    /// How long a shop has after a camera's or sensor's reminder before a
    /// repeat of it becomes a dispatched case.
    #[serde(default)]
    pub alerts: AlertRules,
}

/// Minutes after a camera's reminder before the problem, seen again, is a
/// case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRules {
    pub default_minutes: u32,
    /// Per problem category code, e.g. `0504` 店外经营 → 15.
    #[serde(default)]
    pub minutes_by_category: BTreeMap<String, u32>,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            default_minutes: 30,
            minutes_by_category: [("0504".to_string(), 15), ("0107".to_string(), 60)]
                .into_iter()
                .collect(),
        }
    }
}

impl AlertRules {
    /// The minutes a shop has to put `category` right after a reminder.
    pub fn minutes(&self, category: &str) -> u32 {
        self.minutes_by_category
            .get(category)
            .copied()
            .unwrap_or(self.default_minutes)
    }
}

/// The district's name and the number citizens call, on every signboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignboardRules {
    /// e.g. 丰台区城市管理委员会.
    pub issuer: String,
    /// 监督电话, e.g. 12345.
    pub hotline: String,
}

impl Default for SignboardRules {
    fn default() -> Self {
        SignboardRules {
            issuer: "丰台区城市管理委员会".into(),
            hotline: "12345".into(),
        }
    }
}

/// How long a shop has to put a failed item right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RectificationRules {
    /// Whole days after the Beijing day of the failure; the deadline is the end
    /// of that day. 0 means the same day (当日整改).
    pub default_days: u32,
    /// Per problem category code (e.g. `0504` 店外经营 → 0, `0202` 牌匾 → 7).
    pub days_by_category: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Department {
    /// e.g. `huanwei`.
    pub code: String,
    /// e.g. 区环卫中心.
    pub name: String,
    /// Category codes it handles.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Category groups it handles (e.g. 市容环境), when no department names
    /// the code itself.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// 紧急哨 / 常规哨: how long a department has once the whistle is blown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WhistleRules {
    pub urgent_hours: u32,
    pub routine_hours: u32,
}

/// A new report of the same category this near an open case, within this
/// time of it, is linked to that case instead of opening another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DuplicateRule {
    pub radius_m: f64,
    pub window_hours: u32,
}

/// A shop's score for a week or month, 0–100: the mean of its inspection
/// scores in the period, less penalties.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoringRules {
    /// The base when the shop was not inspected in the period.
    pub uninspected_base: u32,
    /// Per valid report (citizen, steward, camera, hotline) about the shop.
    pub report_penalty: u32,
    pub report_penalty_cap: u32,
    /// Per rectification item put right after its deadline.
    pub late_penalty: u32,
    /// Per rectification item past its deadline and still open at the period's end.
    pub overdue_penalty: u32,
}

/// 流动红旗: the best shops of each street win it for the next week, and are
/// not inspected that week (免检一周).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RedFlagRule {
    pub per_street: u32,
    /// A winner scored at least this, was inspected that week, had no valid
    /// report and no rectification item open at the week's end.
    pub min_score: u32,
}

/// 黑榜: the worst shops of each street scoring below a bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlackListRule {
    pub per_street: u32,
    pub below: u32,
}

/// 信用等级 A–D from the credit score (the mean weekly score over a window),
/// and how often each grade is inspected (分级监管).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradeRules {
    /// Weeks of history the credit score averages (ending with the last whole week).
    pub window_weeks: u32,
    /// Lowest credit score for A, B and C; below C is D.
    pub thresholds: [u32; 3],
    /// A rectification escalated to the district in the window caps the grade at this.
    pub escalation_caps_at: Grade,
    /// Days between inspections for A, B, C and D.
    pub interval_days: [u32; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
}

impl Grade {
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Grade::A => "A级 守信",
            Grade::B => "B级 基本守信",
            Grade::C => "C级 失信",
            Grade::D => "D级 严重失信",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// 积分 for lane stewards' reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StewardPoints {
    /// A report accepted (not rejected, not a duplicate).
    pub valid_report: u32,
    /// More when the case it opened was closed.
    pub closed_bonus: u32,
    /// A report linked to a case already open.
    pub linked_report: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LaneChiefRules {
    /// A lane counts as patrolled in a week when the week's patrols came within
    /// reach of at least this share of it.
    pub lane_covered_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlannerRules {
    /// Shops one officer visits in a day; the most urgent are taken first.
    pub daily_stops: u32,
}

impl Default for DistrictRules {
    /// The rules the demo district (丰台区) starts with.
    fn default() -> Self {
        let days = [
            ("0102", 0), // 暴露垃圾
            ("0103", 1), // 积存垃圾渣土
            ("0104", 0), // 道路不洁
            ("0107", 1), // 乱堆物料
            ("0110", 0), // 露天烧烤
            ("0201", 1), // 非法小广告
            ("0202", 7), // 违章张贴悬挂广告牌匾
            ("0501", 0), // 无照经营游商
            ("0504", 0), // 店外经营
            ("0506", 0), // 机动车乱停放
            ("0507", 0), // 非机动车乱停放
            ("L-01", 7), // 未签订门前三包责任书
            ("L-02", 1), // 未按要求扫雪铲冰
            ("L-03", 1), // 共享单车淤积
        ];
        let dept = |code: &str, name: &str, categories: &[&str], groups: &[&str]| Department {
            code: code.into(),
            name: name.into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        DistrictRules {
            name: "丰台区门前三包考核规则（演示）".into(),
            rectification: RectificationRules {
                default_days: 3,
                days_by_category: days.iter().map(|(c, d)| (c.to_string(), *d)).collect(),
            },
            departments: vec![
                dept(
                    "zhifa",
                    "城管执法队",
                    &["0501", "0504", "0110"],
                    &["街面秩序"],
                ),
                dept("huanwei", "区环卫中心", &[], &["市容环境"]),
                dept("guanggao", "城管委广告牌匾科", &[], &["宣传广告"]),
                dept("jiedao", "街道城管科", &[], &["门前责任"]),
            ],
            whistles: WhistleRules {
                urgent_hours: 4,
                routine_hours: 72,
            },
            duplicates: DuplicateRule {
                radius_m: 30.0,
                window_hours: 48,
            },
            scoring: ScoringRules {
                uninspected_base: 90,
                report_penalty: 5,
                report_penalty_cap: 30,
                late_penalty: 5,
                overdue_penalty: 15,
            },
            red_flag: RedFlagRule {
                per_street: 3,
                min_score: 90,
            },
            black_list: BlackListRule {
                per_street: 3,
                below: 60,
            },
            stars: [95, 88, 78, 60],
            grades: GradeRules {
                window_weeks: 12,
                thresholds: [92, 82, 65],
                escalation_caps_at: Grade::C,
                interval_days: [28, 14, 7, 2],
            },
            stewards: StewardPoints {
                valid_report: 2,
                closed_bonus: 3,
                linked_report: 1,
            },
            lane_chiefs: LaneChiefRules {
                lane_covered_share: 0.6,
            },
            planner: PlannerRules { daily_stops: 30 },
            signboard: SignboardRules::default(),
            alerts: AlertRules::default(),
        }
    }
}

impl DistrictRules {
    /// The rules with their texts trimmed, or the first problem
    /// [`DistrictRules::problems`] finds.
    pub fn validated(mut self) -> Result<Self> {
        if let Some((field, reason)) = self.problems().into_iter().next() {
            return Err(Error::invalid(&field, reason));
        }
        self.name = self.name.trim().to_string();
        self.signboard.issuer = self.signboard.issuer.trim().to_string();
        for d in &mut self.departments {
            d.code = d.code.trim().to_string();
            d.name = d.name.trim().to_string();
        }
        Ok(self)
    }

    /// Every field that is not valid, each with why: (field, reason). An
    /// editor shows them all at once.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut check = |ok: bool, field: &str, reason: &str| {
            if !ok {
                out.push((field.to_string(), reason.to_string()));
            }
        };
        let text = |field: &str, value: &str, max: usize| -> Option<(String, String)> {
            required_text(field, value, max).err().map(|e| match e {
                Error::InvalidInput { field, reason } => (field, reason),
                other => (field.to_string(), other.to_string()),
            })
        };
        check(
            (3..=20).contains(&self.signboard.hotline.len())
                && self
                    .signboard
                    .hotline
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-'),
            "rules.signboard.hotline",
            "3 to 20 digits or dashes",
        );
        check(
            self.alerts.default_minutes <= 10_080
                && self
                    .alerts
                    .minutes_by_category
                    .values()
                    .all(|m| *m <= 10_080),
            "rules.alerts",
            "a reminder's time is at most a week (10080 minutes)",
        );
        let r = &self.rectification;
        check(
            r.default_days <= 365 && r.days_by_category.values().all(|d| *d <= 365),
            "rules.rectification",
            "a deadline is at most 365 days",
        );
        check(
            !self.departments.is_empty(),
            "rules.departments",
            "name at least one department: escalated cases go to one",
        );
        let w = self.whistles;
        check(
            w.urgent_hours > 0 && w.routine_hours >= w.urgent_hours,
            "rules.whistles",
            "an urgent whistle has hours, and a routine one at least as many",
        );
        let dup = self.duplicates;
        check(
            dup.radius_m.is_finite() && (0.0..=1_000.0).contains(&dup.radius_m),
            "rules.duplicates.radius_m",
            "between 0 and 1000 m",
        );
        check(
            !self.stars.windows(2).any(|w| w[0] < w[1]) && self.stars[0] <= 100,
            "rules.stars",
            "thresholds for 5, 4, 3, 2 stars, highest first, at most 100",
        );
        let g = self.grades;
        check(
            !g.thresholds.windows(2).any(|w| w[0] < w[1]) && g.thresholds[0] <= 100,
            "rules.grades.thresholds",
            "lowest scores for A, B, C, highest first, at most 100",
        );
        check(
            (1..=104).contains(&g.window_weeks),
            "rules.grades.window_weeks",
            "between 1 and 104 weeks",
        );
        check(
            !g.interval_days.contains(&0),
            "rules.grades.interval_days",
            "every grade is inspected every so many days (at least 1)",
        );
        check(
            (0.0..=1.0).contains(&self.lane_chiefs.lane_covered_share),
            "rules.lane_chiefs.lane_covered_share",
            "a share between 0 and 1",
        );
        check(
            (1..=500).contains(&self.planner.daily_stops),
            "rules.planner.daily_stops",
            "between 1 and 500",
        );
        let mut texts = vec![text("rules.name", &self.name, 100)];
        for (i, d) in self.departments.iter().enumerate() {
            texts.push(text(&format!("rules.departments[{i}].code"), &d.code, 32));
            texts.push(text(&format!("rules.departments[{i}].name"), &d.name, 50));
        }
        texts.push(text("rules.signboard.issuer", &self.signboard.issuer, 40));
        // The name first, as before; then the rest in the rules' order.
        let mut all: Vec<(String, String)> = texts.iter().take(1).flatten().cloned().collect();
        all.extend(out);
        all.extend(texts.into_iter().skip(1).flatten());
        all
    }

    /// Days allowed to rectify a problem of `category` (None: not categorised).
    pub fn rectification_days(&self, category: Option<&str>) -> u32 {
        category
            .and_then(|c| self.rectification.days_by_category.get(c).copied())
            .unwrap_or(self.rectification.default_days)
    }

    /// The department for a category: the one naming the code, else the one
    /// naming its group, else the first.
    pub fn department_for(&self, category: Option<&str>, group: Option<&str>) -> &Department {
        let by_code = category.and_then(|c| {
            self.departments
                .iter()
                .find(|d| d.categories.iter().any(|x| x == c))
        });
        let by_group = || {
            group.and_then(|g| {
                self.departments
                    .iter()
                    .find(|d| d.groups.iter().any(|x| x == g))
            })
        };
        by_code.or_else(by_group).unwrap_or(&self.departments[0])
    }

    pub fn stars_for(&self, score: u32) -> u8 {
        let above = self.stars.iter().take_while(|t| score < **t).count();
        (5 - above) as u8
    }

    pub fn grade_for(&self, credit: u32, escalated: bool) -> Grade {
        let t = self.grades.thresholds;
        let grade = if credit >= t[0] {
            Grade::A
        } else if credit >= t[1] {
            Grade::B
        } else if credit >= t[2] {
            Grade::C
        } else {
            Grade::D
        };
        if escalated {
            grade.max(self.grades.escalation_caps_at)
        } else {
            grade
        }
    }
}
