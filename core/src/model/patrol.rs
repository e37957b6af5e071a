//! Patrol logs (巡查轨迹): a user's walk, as GPS track points.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackPoint {
    pub at: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
}

impl TrackPoint {
    pub fn validate(&self, field: &str) -> Result<()> {
        super::geo::GpsFix {
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            at: self.at,
        }
        .validate(field)
    }

    fn encode(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{},{:.7},{:.7},{:.1}",
            self.at.timestamp_millis(),
            self.lat,
            self.lon,
            self.accuracy_m
        );
    }

    fn decode(s: &str) -> Result<TrackPoint> {
        let bad = || Error::invalid("track", format!("bad track point `{s}`"));
        let mut parts = s.split(',');
        let mut next = || parts.next().ok_or_else(bad);
        let ms: i64 = next()?.parse().map_err(|_| bad())?;
        let lat: f64 = next()?.parse().map_err(|_| bad())?;
        let lon: f64 = next()?.parse().map_err(|_| bad())?;
        let accuracy_m: f64 = next()?.parse().map_err(|_| bad())?;
        let at = DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
        Ok(TrackPoint {
            at,
            lat,
            lon,
            accuracy_m,
        })
    }
}

/// Points travel in chunks: one appended string per `append_track` call, so an
/// 8-hour walk at 1 Hz is a few thousand list entries, not 28,800 maps.
pub(crate) fn encode_chunk(points: &[TrackPoint]) -> String {
    let mut out = String::with_capacity(points.len() * 40);
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        p.encode(&mut out);
    }
    out
}

/// Decodes encoded chunks into one track sorted by time.
pub(crate) fn decode_chunks<'a>(chunks: impl Iterator<Item = &'a str>) -> Result<Vec<TrackPoint>> {
    let mut points = Vec::new();
    for chunk in chunks.filter(|c| !c.is_empty()) {
        for p in chunk.split(';') {
            points.push(TrackPoint::decode(p)?);
        }
    }
    points.sort_by_key(|p| p.at);
    Ok(points)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patrol {
    #[serde(skip)]
    pub id: String,
    pub user: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub started_at: DateTime<Utc>,
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<DateTime<Utc>>,
    /// Encoded chunks, see [`Patrol::points`].
    #[serde(default)]
    pub chunks: Vec<String>,
    /// The device's clocks when the patrol started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<crate::evidence::time::RecordTime>,
}

impl Patrol {
    /// The track in time order.
    pub fn points(&self) -> Result<Vec<TrackPoint>> {
        decode_chunks(self.chunks.iter().map(String::as_str))
    }
}
