//! Who may write what. The sync server checks every pushed change against these
//! rules before accepting it (`Store::apply_changes_as`); they live in the core
//! because they are domain rules, the same wherever the check runs.

use crate::model::case::CaseStatus::Reported;
use crate::model::case::{Case, CaseSource, may_ever_move_to};
use crate::model::inspection::Inspection;
use crate::model::patrol::Patrol;
pub use crate::model::role::Role;

/// The authenticated author of a pushed batch: a user on one enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub user: String,
    pub role: Role,
    /// The Automerge actor id (hex) bound to the device at enrollment.
    pub actor: String,
}

/// Where a user works: what the server sends them is cut to this area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    /// The whole district the station serves.
    District,
    /// One subdistrict (街道), e.g. 右安门街道.
    Subdistrict(String),
    /// Some lanes (街巷), e.g. a steward's 富义街东一巷.
    Lanes(Vec<String>),
}

impl Area {
    /// The area as people read it: 全区, a subdistrict's name, or its lanes.
    pub fn label_zh(&self) -> String {
        match self {
            Area::District => "全区".into(),
            Area::Subdistrict(name) => name.clone(),
            Area::Lanes(lanes) => format!("街巷：{}", lanes.join("、")),
        }
    }

    /// Parses `district`, `subdistrict:<name>` or `lanes:<lane>,<lane>…`
    /// (a full-width ：or ，is accepted too).
    pub fn parse(text: &str) -> std::result::Result<Area, String> {
        let text = text.trim();
        if text == "district" {
            return Ok(Area::District);
        }
        let (kind, rest) = text.split_once([':', '：']).ok_or_else(|| {
            format!(
                "`{text}` is not an area: use district, subdistrict:<name> or lanes:<lane>,<lane>"
            )
        })?;
        let names: Vec<String> = rest
            .split([',', '，'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if names.iter().any(|n| n.chars().count() > 50) {
            return Err("an area name is at most 50 characters".into());
        }
        match (kind.trim(), names.as_slice()) {
            ("subdistrict", [one]) => Ok(Area::Subdistrict(one.clone())),
            ("subdistrict", _) => Err("name exactly one subdistrict".into()),
            ("lanes", []) => Err("name at least one lane".into()),
            ("lanes", _) if names.len() > 200 => Err("at most 200 lanes".into()),
            ("lanes", _) => Ok(Area::Lanes(names)),
            (other, _) => Err(format!(
                "unknown area kind `{other}`: use district, subdistrict or lanes"
            )),
        }
    }
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Area::District => f.write_str("district"),
            Area::Subdistrict(name) => write!(f, "subdistrict:{name}"),
            Area::Lanes(lanes) => write!(f, "lanes:{}", lanes.join(",")),
        }
    }
}

/// What a reader may receive from the server's feed and snapshots
/// (docs/adr/0006-partial-replication.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every document (stores merging with each other; tests).
    Everything,
    /// A user: checklists, categories and their own reports and patrols, plus
    /// what lies in their area. A steward (`public_only`) gets the public
    /// listings of the area's shops; everyone else gets the shops themselves,
    /// their inspections and cases, and, with the whole district, every patrol.
    Reader {
        user: String,
        public_only: bool,
        area: Area,
    },
}

impl Visibility {
    pub fn for_reader(role: Role, user: &str, area: &Area) -> Visibility {
        Visibility::Reader {
            user: user.to_string(),
            public_only: role == Role::Steward,
            area: area.clone(),
        }
    }

    /// SQL over the `cases` table (not aliased): the cases this reader may
    /// see. The rule of [`visible_doc`] for cases, written for each kind of
    /// reader so that SQLite reads a subdistrict's or lanes' cases from
    /// their index and walks a list in report order without building a
    /// set first. Bound by [`ReaderBindings::for_statement`].
    pub(crate) fn cases_sql(&self) -> &'static str {
        match self {
            Visibility::Everything => "1",
            Visibility::Reader {
                public_only: true, ..
            } => "reported_by = :user",
            Visibility::Reader { area, .. } => match area {
                Area::District => "1",
                Area::Subdistrict(_) => "(area_sub = :sub OR reported_by = :user)",
                Area::Lanes(_) => {
                    "(area_lane IN (SELECT value FROM json_each(:lanes)) OR reported_by = :user)"
                }
            },
        }
    }

    /// The values bound to [`visible_doc`]'s parameters.
    pub(crate) fn bindings(&self) -> ReaderBindings {
        match self {
            Visibility::Everything => ReaderBindings {
                all: true,
                ..ReaderBindings::default()
            },
            Visibility::Reader {
                user,
                public_only,
                area,
            } => ReaderBindings {
                all: false,
                user: Some(user.clone()),
                public: *public_only,
                subdistrict: match area {
                    Area::Subdistrict(s) => Some(s.clone()),
                    _ => None,
                },
                lanes: match area {
                    Area::Lanes(l) => serde_json::to_string(l).ok(),
                    _ => None,
                },
            },
        }
    }
}

impl Area {
    /// Does this area hold all of `other` (a reader of this area sees what
    /// a reader of `other` sees)?
    pub fn covers(&self, other: &Area) -> bool {
        match (self, other) {
            (Area::District, _) => true,
            (Area::Subdistrict(a), Area::Subdistrict(b)) => a == b,
            (Area::Lanes(mine), Area::Lanes(theirs)) => theirs.iter().all(|l| mine.contains(l)),
            _ => false,
        }
    }

    /// The values bound to [`IN_AREA`]'s `:sub` and `:lanes`.
    pub(crate) fn bindings(&self) -> (Option<String>, Option<String>) {
        match self {
            Area::District => (None, None),
            Area::Subdistrict(s) => (Some(s.clone()), None),
            Area::Lanes(l) => (None, serde_json::to_string(l).ok()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct ReaderBindings {
    all: bool,
    user: Option<String>,
    public: bool,
    subdistrict: Option<String>,
    /// A JSON array of lane names.
    lanes: Option<String>,
}

impl ReaderBindings {
    /// Named parameters for a statement using [`visible_doc`], plus `extra`.
    pub(crate) fn with<'a>(
        &'a self,
        extra: &[(&'a str, &'a dyn rusqlite::ToSql)],
    ) -> Vec<(&'a str, &'a dyn rusqlite::ToSql)> {
        let mut out: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
            (":all", &self.all),
            (":user", &self.user),
            (":public", &self.public),
            (":sub", &self.subdistrict),
            (":lanes", &self.lanes),
        ];
        out.extend_from_slice(extra);
        out
    }

    /// [`ReaderBindings::with`], less the names `stmt` does not use (a
    /// statement written for one kind of reader, or with only the filters
    /// set).
    pub(crate) fn for_statement<'a>(
        &'a self,
        stmt: &rusqlite::Statement<'_>,
        extra: &[(&'a str, &'a dyn rusqlite::ToSql)],
    ) -> Vec<(&'a str, &'a dyn rusqlite::ToSql)> {
        self.with(extra)
            .into_iter()
            .filter(|(name, _)| matches!(stmt.parameter_index(name), Ok(Some(_))))
            .collect()
    }
}

/// SQL: the shops (alias `s`) in the reader's area.
pub(crate) const IN_AREA: &str = "(:sub IS NULL OR s.subdistrict = :sub)
    AND (:lanes IS NULL OR s.lane IN (SELECT value FROM json_each(:lanes)))";

/// SQL: is document `{doc}` visible to the reader bound by
/// [`ReaderBindings::with`]? A case lies where its shop does, or, without a
/// shop in the registry, where it was reported: the `area_sub` and
/// `area_lane` columns the index keeps (migration 0010), read from their
/// indexes. Area membership is read from the index tables as they are now; a
/// document that moved into the area is healed by the client fetching it
/// whole (docs/protocol.md).
pub(crate) fn visible_doc(doc: &str) -> String {
    format!(
        "(:all = 1
    OR (:public = 0 AND :sub IS NULL AND :lanes IS NULL AND {doc} NOT LIKE 'pub/%')
    OR {doc} LIKE 'tmpl/%' OR {doc} LIKE 'cat/%' OR {doc} LIKE 'rules/%'
    OR {doc} IN (SELECT id FROM cases WHERE reported_by = :user)
    OR {doc} IN (SELECT id FROM patrols WHERE user = :user)
    OR (:public = 1 AND {doc} LIKE 'pub/%'
        AND {doc} IN (SELECT 'pub/' || s.code FROM shops s WHERE {IN_AREA}))
    OR (:public = 0 AND {doc} LIKE 'shop/%' AND {doc} IN (SELECT s.id FROM shops s WHERE {IN_AREA}))
    OR (:public = 0 AND {doc} LIKE 'insp/%' AND {doc} IN (
        SELECT i.id FROM inspections i JOIN shops s ON s.id = i.shop_id WHERE {IN_AREA}))
    OR (:public = 0 AND {doc} LIKE 'case/%' AND {doc} IN (
        SELECT id FROM cases WHERE area_sub = :sub
        UNION ALL SELECT id FROM cases WHERE area_lane IN (SELECT value FROM json_each(:lanes)))))"
    )
}

/// SQL: the ids after `:after` (one column, `id`) that a reader bound to an
/// area may see, the same set as [`visible_doc`], gathered from the index
/// rows of that area (its shops, their inspections, its cases) and the
/// reader's own reports and patrols, so that a subdistrict's snapshot costs
/// what the subdistrict holds rather than what the city holds. `None` for
/// readers who see nearly every document (everything, or the whole district
/// but the public listings): for them a walk of the documents in id order is
/// the cheaper plan. Bound by [`ReaderBindings::for_statement`].
pub(crate) fn area_ids_after(reader: &Visibility) -> Option<String> {
    let Visibility::Reader {
        public_only, area, ..
    } = reader
    else {
        return None;
    };
    if !*public_only && *area == Area::District {
        return None;
    }
    let shops_in_area = match area {
        Area::District => "1",
        Area::Subdistrict(_) => "s.subdistrict = :sub",
        Area::Lanes(_) => "s.lane IN (SELECT value FROM json_each(:lanes))",
    };
    let mut parts: Vec<String> = ["tmpl/", "cat/", "rules/"]
        .iter()
        .map(|prefix| {
            // Every id under `prefix`: from it up to the next character after its slash.
            let end = prefix.replace('/', "0");
            format!(
                "SELECT id FROM documents WHERE id > :after AND id >= '{prefix}' AND id < '{end}'"
            )
        })
        .collect();
    parts.push("SELECT id FROM cases WHERE reported_by = :user AND id > :after".into());
    parts.push("SELECT id FROM patrols WHERE user = :user AND id > :after".into());
    if *public_only {
        parts.push(format!(
            "SELECT 'pub/' || s.code FROM shops s WHERE {shops_in_area} AND 'pub/' || s.code > :after"
        ));
    } else {
        parts.push(format!(
            "SELECT s.id FROM shops s WHERE {shops_in_area} AND s.id > :after AND s.id LIKE 'shop/%'"
        ));
        parts.push(format!(
            "SELECT i.id FROM shops s JOIN inspections i ON i.shop_id = s.id
             WHERE {shops_in_area} AND i.id > :after AND i.id LIKE 'insp/%'"
        ));
        parts.push(match area {
            Area::Lanes(_) => {
                "SELECT id FROM cases WHERE area_lane IN (SELECT value FROM json_each(:lanes))
                 AND id > :after AND id LIKE 'case/%'"
                    .into()
            }
            _ => "SELECT id FROM cases WHERE area_sub = :sub AND id > :after AND id LIKE 'case/%'"
                .into(),
        });
    }
    Some(parts.join("\n    UNION "))
}

/// A document's state before and after a pushed batch, as entities.
pub(crate) enum Touched<'a> {
    Shop,
    Listing,
    Template,
    Category,
    Rules,
    Inspection {
        before: Option<&'a Inspection>,
        after: &'a Inspection,
    },
    Case {
        before: Option<&'a Case>,
        after: &'a Case,
    },
    Patrol {
        before: Option<&'a Patrol>,
        after: &'a Patrol,
    },
}

/// May `role` change the shop registry (a shop's name, address, contact …)?
/// Officers, supervisors and administrators; not stewards or lane chiefs.
pub fn may_edit_registry(role: Role) -> bool {
    !matches!(role, Role::Steward | Role::LaneChief)
}

/// Why `writer` may not make this change to a document, or `None` if it may.
pub(crate) fn refusal(writer: &Writer, touched: &Touched<'_>) -> Option<String> {
    use Role::*;
    let role = writer.role;
    let me = writer.user.as_str();
    match touched {
        Touched::Shop => (!may_edit_registry(role))
            .then(|| format!("a {} may not change the shop registry", role.as_str())),
        Touched::Listing => {
            Some("public listings are written only by the station server".to_string())
        }
        Touched::Template | Touched::Category | Touched::Rules => (role != Admin).then(|| {
            "only an administrator publishes checklists, categories and rules".to_string()
        }),
        Touched::Inspection { before, after } => {
            if role == Steward {
                Some("a steward may not write inspections".to_string())
            } else if before.is_some_and(|b| b.is_submitted()) {
                Some("the inspection was submitted and can no longer change".to_string())
            } else if after.inspector != me || before.is_some_and(|b| b.inspector != me) {
                Some("an inspection is written only by its inspector".to_string())
            } else {
                None
            }
        }
        Touched::Case { before, after } => case_refusal(writer, *before, after),
        Touched::Patrol { before, after } => (after.user != me
            || before.is_some_and(|b| b.user != me))
        .then(|| "a patrol log is written only by the user who walked it".to_string()),
    }
}

/// Why `writer` may not make this change to a case, or `None` if it may.
fn case_refusal(writer: &Writer, before: Option<&Case>, after: &Case) -> Option<String> {
    let me = writer.user.as_str();
    if before.is_none() {
        if after.reported_by != me {
            return Some("a report is filed under its reporter's own name".to_string());
        }
        if after.source == CaseSource::Rectification || after.rectification.is_some() {
            return Some("only the district platform escalates rectification items".to_string());
        }
    }
    if before.is_some_and(|b| !same_report(b, after)) {
        return Some("a filed report does not change; add a status step instead".to_string());
    }
    let old_history = before.map(|b| b.history.as_slice()).unwrap_or_default();
    let mut new_steps = appended(old_history, &after.history);
    if before.is_none() {
        // The report's own first step; moves made before the first push (a
        // supervisor filing a hotline call and accepting it offline) follow.
        match after.history.first() {
            Some(first) if first.status == Reported && first.by == me => {
                new_steps.retain(|s| !std::ptr::eq(*s, first));
            }
            _ => return Some("a new report starts with its reporter's 已上报 step".to_string()),
        }
    }
    for step in &new_steps {
        if step.by != me {
            return Some("a status step is signed by the user who makes it".to_string());
        }
        if step.role != Some(writer.role) {
            return Some(format!(
                "a status step names the role its author acts in ({})",
                writer.role.as_str()
            ));
        }
        if !may_ever_move_to(step.status, writer.role) {
            return Some(format!(
                "a {} may not move a case to {}",
                writer.role.as_str(),
                step.status.as_str()
            ));
        }
    }
    let old_links = before.map(|b| b.linked.as_slice()).unwrap_or_default();
    appended(old_links, &after.linked)
        .iter()
        .any(|l| l.reported_by != me)
        .then(|| "a linked report is filed under its reporter's own name".to_string())
}

/// The items of `after` that `before` had no equal of: concurrent appends may
/// merge in anywhere in a list.
fn appended<'a, T: PartialEq>(before: &[T], after: &'a [T]) -> Vec<&'a T> {
    let mut old: Vec<&T> = before.iter().collect();
    after
        .iter()
        .filter(|item| match old.iter().position(|o| o == item) {
            Some(i) => {
                old.swap_remove(i);
                false
            }
            None => true,
        })
        .collect()
}

/// The report itself (everything but the history) is unchanged.
fn same_report(a: &Case, b: &Case) -> bool {
    a.source == b.source
        && a.category == b.category
        && a.location == b.location
        && a.shop_id == b.shop_id
        && a.photos == b.photos
        && a.description == b.description
        && a.deadline == b.deadline
        && a.reported_by == b.reported_by
        && a.reported_at == b.reported_at
        && a.subdistrict == b.subdistrict
        && a.lane == b.lane
        && a.rectification == b.rectification
}
