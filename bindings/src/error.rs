//! The public error: a few cases a screen can act on. The core's rich error is
//! mapped here; its message goes along for logs and for showing.

use menqian_core::Error as Core;

#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum MenqianError {
    /// A value the user typed or the app passed is not acceptable; `field`
    /// names it (e.g. `contact.phone`).
    #[error("{field}: {reason}")]
    InvalidInput { field: String, reason: String },
    /// Not on this phone (not synced yet, or never existed).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The scanned code is not one of this district's signboards.
    #[error("{reason}")]
    BadQrCode { reason: String },
    /// Submitting needs a result for these items.
    #[error("items without a result: {}", codes.join(", "))]
    IncompleteInspection { codes: Vec<String> },
    /// A failed item needs photo evidence.
    #[error("item {code} needs a photo")]
    PhotoRequired { code: String },
    /// The record cannot change any more (a submitted inspection, an ended patrol)
    /// or the item does not belong to it.
    #[error("{reason}")]
    NotAllowed { reason: String },
    /// The server could not be reached: work stays on the phone, try later.
    #[error("{reason}")]
    Offline { reason: String },
    /// The station's certificate is not the one this phone trusts (another
    /// server, expired, or not from the CA pinned at enrollment). Nothing was
    /// sent and nothing is lost; check the address, or enroll again.
    #[error("{reason}")]
    Untrusted { reason: String },
    /// The server no longer accepts this phone: enroll again.
    #[error("{reason}")]
    Unauthorized { reason: String },
    /// The server refused what the phone sent, and said why.
    #[error("{reason}")]
    Rejected { reason: String },
    /// The server failed; nothing was lost, try later.
    #[error("{reason}")]
    Server { reason: String },
    /// The photo cannot be used (not a JPEG, too large, damaged): take it again.
    #[error("{reason}")]
    BadPhoto { reason: String },
    /// The user cancelled; what finished stays finished.
    #[error("cancelled")]
    Cancelled,
    /// The phone's database or a file failed, or data is damaged.
    #[error("{reason}")]
    Storage { reason: String },
}

impl From<Core> for MenqianError {
    fn from(e: Core) -> Self {
        let reason = e.to_string();
        match e {
            Core::InvalidInput { field, reason } => MenqianError::InvalidInput { field, reason },
            Core::NotFound { kind, id } => MenqianError::NotFound {
                what: format!("{kind} {id}"),
            },
            Core::Qr(_) => MenqianError::BadQrCode { reason },
            Core::IncompleteInspection { codes } => MenqianError::IncompleteInspection { codes },
            Core::PhotoRequired { code } => MenqianError::PhotoRequired { code },
            Core::InspectionSubmitted { .. }
            | Core::UnknownItem { .. }
            | Core::ItemNotApplicable { .. }
            | Core::PatrolEnded { .. } => MenqianError::NotAllowed { reason },
            Core::NotAllowed { reason } => MenqianError::NotAllowed { reason },
            Core::Offline { .. } => MenqianError::Offline { reason },
            Core::Unauthorized { .. } => MenqianError::Unauthorized { reason },
            Core::Untrusted { reason } => MenqianError::Untrusted { reason },
            Core::Refused { .. } | Core::Rejected { .. } | Core::AreaChanged { .. } => {
                MenqianError::Rejected { reason }
            }
            Core::Server { .. } => MenqianError::Server { reason },
            Core::Cancelled => MenqianError::Cancelled,
            Core::Photo(_) => MenqianError::BadPhoto { reason },
            Core::MissingDependencies { .. }
            | Core::Corrupt { .. }
            | Core::DatabaseTooNew { .. }
            | Core::Sqlite(_)
            | Core::Automerge(_)
            | Core::Io(_) => MenqianError::Storage { reason },
        }
    }
}

impl MenqianError {
    /// What a screen shows, in Chinese: the one home of these texts, read by
    /// both apps through [`problem_text`].
    pub fn text(&self) -> String {
        use MenqianError::*;
        match self {
            InvalidInput { field, reason } => format!("{field}：{reason}"),
            NotFound { what } => format!("未找到：{what}"),
            BadQrCode { reason } => format!("无法识别的门牌码：{reason}"),
            IncompleteInspection { codes } => format!("还有未检查的项目：{}", codes.join("、")),
            PhotoRequired { code } => format!("不合格项目 {code} 需要拍照取证"),
            NotAllowed { reason } => reason.clone(),
            Offline { reason } => format!("网络不可用，记录已保存在手机上：{reason}"),
            Untrusted { reason } => {
                format!("服务器证书不可信，未发送任何数据，记录仍保存在手机上：{reason}")
            }
            Unauthorized { reason } => format!("设备未授权，请重新登记：{reason}"),
            Rejected { reason } => format!("服务器拒绝：{reason}"),
            Server { reason } => format!("服务器出错，稍后再试：{reason}"),
            BadPhoto { reason } => format!("照片无法使用，请重拍：{reason}"),
            Cancelled => "已取消".to_string(),
            Storage { reason } => format!("手机存储出错：{reason}"),
        }
    }
}

/// The Chinese text a screen shows for `error` (Kotlin `Problem.text`, Swift
/// `Problem.text`).
#[uniffi::export]
pub fn problem_text(error: MenqianError) -> String {
    error.text()
}

/// What a progress listener's failure becomes: the core ignores it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed { reason: e.reason }
    }
}

pub(crate) fn invalid(field: &str, e: impl std::fmt::Display) -> MenqianError {
    MenqianError::InvalidInput {
        field: field.to_string(),
        reason: e.to_string(),
    }
}
