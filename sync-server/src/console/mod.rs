//! The station's web console for supervisors and administrators (issue 14):
//! who may sign in and their passwords so far; sessions, pages and exports
//! follow.

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
