//! Who a user is in the district's work: the roles the access rules
//! (`crate::access`) and a case's history speak of.

use serde::{Deserialize, Serialize};

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
