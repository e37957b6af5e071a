//! The station's web console for supervisors and administrators (issue 14):
//! who may sign in and their passwords so far; sessions, pages and exports
//! follow.

mod case;
mod cases;
mod ledger;
pub mod password;
mod people;
mod rankings;
pub mod web;

use menqian_core::Role;

/// Who may sign in to the console: supervisors, lane chiefs (for their own
/// lanes) and administrators; officers and stewards work on their phones.
pub fn may_sign_in(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::LaneChief | Role::Admin)
}

/// One CSV field: quoted, quotes doubled, and a leading `=`, `+`, `-` or `@`
/// defused so a spreadsheet shows text instead of running a formula.
pub(crate) fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}
