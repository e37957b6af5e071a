//! The core's rich error. The bindings crate maps it onto a small public enum a
//! phone screen can act on; nothing here carries personal data (names, phones).

use crate::qr::QrError;

/// Every fallible core operation returns this. A returned error means nothing was
/// written: each operation runs in one SQLite transaction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument failed validation; `field` names it the way the caller passed it.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },

    /// The record does not exist in this store (not yet synced, or never existed).
    #[error("{kind} not found: {id}")]
    NotFound { kind: &'static str, id: String },

    /// A scanned code could not be read as one of this district's shop codes.
    #[error("QR code: {0}")]
    Qr(#[from] QrError),

    /// A submitted inspection is evidence: it never changes afterwards.
    #[error("inspection {id} was submitted and can no longer change")]
    InspectionSubmitted { id: String },

    /// The checklist item code is not part of the inspection's template.
    #[error("item {code} is not in checklist {template}")]
    UnknownItem { template: String, code: String },

    /// The item is in the template but does not apply to this shop or season.
    #[error("item {code} does not apply to this inspection")]
    ItemNotApplicable { code: String },

    /// Submitting needs a result for every applicable item.
    #[error("items without a result: {}", codes.join(", "))]
    IncompleteInspection { codes: Vec<String> },

    /// A failed item whose template demands evidence has no photo.
    #[error("failed item {code} needs photo evidence")]
    PhotoRequired { code: String },

    /// The workflow does not let this role make this move now (e.g. a steward
    /// closing a case, or accepting one already rejected).
    #[error("not allowed: {reason}")]
    NotAllowed { reason: String },

    /// The patrol was already stopped.
    #[error("patrol {id} has ended")]
    PatrolEnded { id: String },

    /// A change batch refers to changes this store has not seen: pull from the
    /// cursor you last completed, in order.
    #[error("change batch for {doc_id} depends on {missing} change(s) this store does not have")]
    MissingDependencies { doc_id: String, missing: usize },

    /// The sync server refused a pushed batch: nothing of it was applied.
    #[error("change {index} to {doc_id} refused: {reason}")]
    Refused {
        index: usize,
        doc_id: String,
        reason: String,
    },

    /// The sync server could not be reached (after retries): work stays queued.
    #[error("offline: {reason}")]
    Offline { reason: String },

    /// The station's TLS certificate is not one this device trusts (another
    /// station, expired, or from another authority than the one pinned at
    /// enrollment). Nothing was sent; retrying does not help.
    #[error("station not trusted: {reason}")]
    Untrusted { reason: String },

    /// The server does not accept this device's token (revoked or unknown):
    /// enroll again.
    #[error("not authorized: {reason}")]
    Unauthorized { reason: String },

    /// The server refused what this device sent and said why.
    #[error("rejected by the server: {reason}")]
    Rejected { reason: String },

    /// The server failed (5xx) even after retries.
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },

    /// The server moved this user to another area since this device last
    /// pulled; syncing again reloads from a snapshot (`sync` does it once itself).
    #[error("your area changed: {reason}")]
    AreaChanged { reason: String },

    /// The caller cancelled the sync; what finished before stays finished.
    #[error("sync cancelled")]
    Cancelled,

    /// A photo was refused (not a JPEG, too large, corrupt): nothing was stored.
    #[error("photo: {0}")]
    Photo(#[from] PhotoError),

    /// Bytes that should be an Automerge change or document could not be read.
    #[error("corrupt data for {id}: {reason}")]
    Corrupt { id: String, reason: String },

    /// The database file is from a newer version of the app.
    #[error("database version {found} is newer than this app supports ({supported})")]
    DatabaseTooNew { found: i64, supported: i64 },

    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("document engine: {0}")]
    Automerge(#[from] automerge::AutomergeError),

    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub fn corrupt(id: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            id: id.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a photo was refused. Nothing is stored when a photo is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error("不是 JPEG 照片 (not a JPEG file)")]
    NotJpeg,
    #[error("照片文件过大：{bytes} 字节，上限 {limit} (file too large)")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("照片像素过多：{width}×{height}，上限 {limit} 像素 (too many pixels)")]
    TooManyPixels { width: u64, height: u64, limit: u64 },
    #[error("照片已损坏或不完整：{reason} (corrupt or truncated)")]
    Corrupt { reason: String },
    #[error("照片处理失败：{reason}")]
    Codec { reason: String },
}

impl PhotoError {
    #[cfg(feature = "photos")]
    pub(crate) fn corrupt(e: impl std::fmt::Display) -> Self {
        PhotoError::Corrupt {
            reason: e.to_string(),
        }
    }

    #[cfg(feature = "photos")]
    pub(crate) fn decoder(e: impl std::fmt::Display) -> Self {
        PhotoError::Codec {
            reason: e.to_string(),
        }
    }
}
