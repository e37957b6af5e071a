//! Evidence: photos (pipeline, watermark), the content-addressed blob store
//! they live in, and the trusted-time stamp every record carries.

pub mod blobs;
#[cfg(feature = "photos")]
pub mod jpeg;
#[cfg(feature = "photos")]
mod parallel;
#[cfg(feature = "photos")]
pub mod photo;
#[cfg(feature = "photos")]
mod resample;
pub mod time;
#[cfg(feature = "photos")]
pub mod watermark;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::error::PhotoError;
use crate::error::{Error, Result};
use crate::model::geo::GpsFix;
use time::RecordTime;

/// Lower-case hex SHA-256: a blob's name everywhere.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

/// Whether `s` is a blob name: 64 lower-case hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn validate_hash(field: &str, s: &str) -> Result<()> {
    if is_hash(s) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "a photo is named by its SHA-256: 64 lower-case hex digits",
        ))
    }
}

/// What a record keeps about each photo it refers to: the photo itself is a
/// blob named by `hash`; this travels in the record's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoMeta {
    /// The 320 px thumbnail's blob.
    pub thumb: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// The camera's own capture time (EXIF), if it wrote one.
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub taken_at: Option<DateTime<Utc>>,
    /// The camera's EXIF position, if it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif_lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif_lon: Option<f64>,
    /// The phone's GPS fix when the photo was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<GpsFix>,
    /// When the app took it, with the clock evidence.
    pub time: RecordTime,
}

/// Photo metadata by blob hash, as records hold it.
pub type Evidence = BTreeMap<String, PhotoMeta>;
