//! Who may write what. The sync server checks every pushed change against these
//! rules before accepting it (`Store::apply_changes_as`); they live in the core
//! because they are domain rules, the same wherever the check runs.

use serde::{Deserialize, Serialize};

use crate::model::case::Case;
use crate::model::inspection::Inspection;
use crate::model::patrol::Patrol;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 城管执法队员
    Officer,
    /// 街巷长
    LaneChief,
    /// 小巷管家 (volunteer)
    Steward,
    /// 中队 / 街道 supervisor
    Supervisor,
    /// 区级管理员
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::LaneChief => "lane_chief",
            Role::Steward => "steward",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Officer,
            Role::LaneChief,
            Role::Steward,
            Role::Supervisor,
            Role::Admin,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Officer => "执法队员",
            Role::LaneChief => "街巷长",
            Role::Steward => "小巷管家",
            Role::Supervisor => "督导员",
            Role::Admin => "管理员",
        }
    }
}

/// The authenticated author of a pushed batch: a user on one enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub user: String,
    pub role: Role,
    /// The Automerge actor id (hex) bound to the device at enrollment.
    pub actor: String,
}

/// What a reader may receive from the server's feed and snapshots.
///
/// Today the split is by role and authorship, which never changes over a
/// document's life. Filtering by area (a steward's lanes, an officer's
/// subdistrict) and public-field views of shops are designed in
/// docs/adr/0006-partial-replication.md and not built yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every document.
    Everything,
    /// The registry, checklists and categories, plus the reader's own reports
    /// and patrols: no inspections, no one else's reports or patrols.
    OwnWork { user: String },
}

impl Visibility {
    pub fn for_reader(role: Role, user: &str) -> Visibility {
        match role {
            Role::Steward => Visibility::OwnWork {
                user: user.to_string(),
            },
            Role::Officer | Role::LaneChief | Role::Supervisor | Role::Admin => {
                Visibility::Everything
            }
        }
    }

    /// The user to filter by, or `None` for everything (bound as `?user` in
    /// [`VISIBLE_DOC`]).
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Visibility::Everything => None,
            Visibility::OwnWork { user } => Some(user),
        }
    }
}

/// SQL: is document `{doc}` visible to the reader bound as `:user`?
pub(crate) const VISIBLE_DOC: &str = "(:user IS NULL
    OR {doc} LIKE 'shop/%' OR {doc} LIKE 'tmpl/%' OR {doc} LIKE 'cat/%'
    OR {doc} IN (SELECT id FROM cases WHERE reported_by = :user)
    OR {doc} IN (SELECT id FROM patrols WHERE user = :user))";

/// A document's state before and after a pushed batch, as entities.
pub(crate) enum Touched<'a> {
    Shop,
    Template,
    Category,
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

/// Why `writer` may not make this change to a document, or `None` if it may.
pub(crate) fn refusal(writer: &Writer, touched: &Touched<'_>) -> Option<String> {
    use Role::*;
    let role = writer.role;
    let me = writer.user.as_str();
    match touched {
        Touched::Shop => matches!(role, Steward | LaneChief)
            .then(|| format!("a {} may not change the shop registry", role.as_str())),
        Touched::Template | Touched::Category => (role != Admin)
            .then(|| "only an administrator publishes checklists and categories".to_string()),
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
        Touched::Case { before, after } => {
            if before.is_none() && after.reported_by != me {
                return Some("a report is filed under its reporter's own name".to_string());
            }
            if role == Steward && before.is_some() {
                return Some("a steward reports cases but does not move them".to_string());
            }
            if before.is_some_and(|b| !same_report(b, after)) {
                return Some(
                    "a filed report does not change; add a status step instead".to_string(),
                );
            }
            // Concurrent steps may merge in anywhere in the list: the new ones are
            // those the list had no equal of before.
            let mut old: Vec<_> = before
                .map(|b| b.history.iter().collect())
                .unwrap_or_default();
            let new_steps =
                after
                    .history
                    .iter()
                    .filter(|step| match old.iter().position(|o| o == step) {
                        Some(i) => {
                            old.swap_remove(i);
                            false
                        }
                        None => true,
                    });
            new_steps
                .collect::<Vec<_>>()
                .iter()
                .any(|step| step.by != me)
                .then(|| "a status step is signed by the user who makes it".to_string())
        }
        Touched::Patrol { before, after } => (after.user != me
            || before.is_some_and(|b| b.user != me))
        .then(|| "a patrol log is written only by the user who walked it".to_string()),
    }
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
}
