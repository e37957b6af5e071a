//! Strangers' photos: a citizen's 随手拍 and a camera's snapshot go through
//! the core's photo pipeline (size and pixel limits read from the header
//! before anything is decoded, EXIF dropped, re-encoded at 1600 px with a
//! watermark and a 320 px thumbnail), a few at a time: the pipeline is the
//! station's most expensive work per byte received.

use std::time::Duration;

use menqian_core::evidence::PhotoError;
use menqian_core::evidence::photo::{self, PhotoLimits, ProcessedPhoto};
use menqian_core::evidence::watermark::Stamp;

use crate::sync::Station;

/// A citizen's or a camera's photo file, at most.
pub const MAX_PHOTO_BYTES: usize = 20 * 1024 * 1024;
/// How long a photo waits for its turn before the station says it is busy.
const TURN_WAIT: Duration = Duration::from_secs(20);
/// Photo-sized bodies (a citizen's photo, a camera's snapshot) held in
/// memory at once: each is read whole before the pipeline, so without this
/// bound many strangers' uploads at once could take gigabytes.
pub const BODIES_AT_ONCE: usize = 8;

/// Why a received photo was not processed.
#[derive(Debug)]
pub enum Refused {
    /// Every turn was taken for [`TURN_WAIT`].
    Busy,
    /// Not a photo the pipeline takes (its message is in Chinese).
    Bad(PhotoError),
    /// The pipeline's task failed.
    Failed,
}

/// The limits for strangers' photos: the core's, with [`MAX_PHOTO_BYTES`].
pub fn limits() -> PhotoLimits {
    PhotoLimits {
        max_file_bytes: MAX_PHOTO_BYTES as u64,
        ..PhotoLimits::default()
    }
}

/// Processes `jpeg` watermarked with `stamp`, on a blocking thread, once one
/// of the station's photo turns (one per core) is free.
pub async fn process(
    station: &Station,
    jpeg: Vec<u8>,
    stamp: Stamp,
) -> Result<ProcessedPhoto, Refused> {
    let turn = tokio::time::timeout(TURN_WAIT, station.photo_turns.acquire())
        .await
        .map_err(|_| Refused::Busy)?
        .map_err(|_| Refused::Failed)?;
    let done = tokio::task::spawn_blocking(move || photo::process(&jpeg, &stamp, &limits()))
        .await
        .map_err(|_| Refused::Failed)?;
    drop(turn);
    done.map_err(Refused::Bad)
}

/// A place for one photo-sized body in memory, once one is free (waiting
/// at most as long as for a pipeline turn): held until the photo is
/// processed or refused.
pub async fn hold_body(station: &Station) -> Result<tokio::sync::OwnedSemaphorePermit, Refused> {
    tokio::time::timeout(TURN_WAIT, station.photo_bodies.clone().acquire_owned())
        .await
        .map_err(|_| Refused::Busy)?
        .map_err(|_| Refused::Failed)
}

/// How many photos may be in the pipeline at once: one per core.
pub fn turns() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
