//! Places. Everything is stored in WGS-84 (what GPS reports); conversion to the
//! GCJ-02 coordinates of Chinese consumer maps happens at the display edge.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use geo::{Centroid, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A WGS-84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Self {
        GeoPoint { lat, lon }
    }

    /// Rejects NaN, infinities and anything off the globe.
    pub fn validate(&self, field: &str) -> Result<()> {
        if !self.lat.is_finite() || !(-90.0..=90.0).contains(&self.lat) {
            return Err(Error::invalid(
                format!("{field}.lat"),
                format!("latitude {} is outside -90..90", self.lat),
            ));
        }
        if !self.lon.is_finite() || !(-180.0..=180.0).contains(&self.lon) {
            return Err(Error::invalid(
                format!("{field}.lon"),
                format!("longitude {} is outside -180..180", self.lon),
            ));
        }
        Ok(())
    }
}

/// One GPS reading as the phone reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    /// Horizontal accuracy radius in metres (68 % confidence, as Android and iOS report it).
    pub accuracy_m: f64,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: DateTime<Utc>,
}

impl GpsFix {
    pub fn validate(&self, field: &str) -> Result<()> {
        GeoPoint::new(self.lat, self.lon).validate(field)?;
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return Err(Error::invalid(
                format!("{field}.accuracy_m"),
                "accuracy must be a non-negative number of metres",
            ));
        }
        Ok(())
    }

    pub fn point(&self) -> GeoPoint {
        GeoPoint::new(self.lat, self.lon)
    }
}

/// A responsibility zone (门前责任区): a closed WGS-84 ring, first point repeated last.
///
/// In documents it is one string, so concurrent edits pick one whole polygon
/// instead of interleaving the vertices of two.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone(Vec<GeoPoint>);

impl Zone {
    /// Validates: at least three distinct corners, closed, on the globe, not
    /// self-intersecting. Coordinates are rounded to 7 decimals (≈ 1 cm), the
    /// precision they are stored with, so a zone reads back exactly as written.
    pub fn new(ring: Vec<GeoPoint>) -> Result<Zone> {
        const FIELD: &str = "zone";
        let ring: Vec<GeoPoint> = ring
            .into_iter()
            .map(|p| GeoPoint::new(round7(p.lat), round7(p.lon)))
            .collect();
        if ring.len() < 4 {
            return Err(Error::invalid(
                FIELD,
                format!(
                    "a closed ring needs at least 4 points (3 corners and the first again), got {}",
                    ring.len()
                ),
            ));
        }
        for (i, p) in ring.iter().enumerate() {
            p.validate(&format!("{FIELD}[{i}]"))?;
        }
        if ring.first() != ring.last() {
            return Err(Error::invalid(
                FIELD,
                "the ring is not closed: its last point must repeat its first",
            ));
        }
        let polygon = to_geo_polygon(&ring);
        if !polygon.is_valid() {
            return Err(Error::invalid(
                FIELD,
                "the ring is degenerate or crosses itself",
            ));
        }
        Ok(Zone(ring))
    }

    pub fn points(&self) -> &[GeoPoint] {
        &self.0
    }

    pub fn centroid(&self) -> GeoPoint {
        match to_geo_polygon(&self.0).centroid() {
            Some(c) => GeoPoint::new(c.y(), c.x()),
            None => self.0[0],
        }
    }

    pub fn to_geo(&self) -> geo::Polygon<f64> {
        to_geo_polygon(&self.0)
    }

    /// The stored form: `lon,lat;lon,lat;…` with 7 decimals (≈ 1 cm).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 24);
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            let _ = write!(out, "{:.7},{:.7}", p.lon, p.lat);
        }
        out
    }

    pub fn decode(s: &str) -> Result<Zone> {
        let mut ring = Vec::new();
        for (i, pair) in s.split(';').enumerate() {
            let (lon, lat) = pair
                .split_once(',')
                .ok_or_else(|| Error::invalid("zone", format!("point {i} is not `lon,lat`")))?;
            let parse = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| Error::invalid("zone", format!("point {i} has a bad number")))
            };
            ring.push(GeoPoint::new(parse(lat)?, parse(lon)?));
        }
        Zone::new(ring)
    }
}

pub(crate) fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

fn to_geo_polygon(ring: &[GeoPoint]) -> geo::Polygon<f64> {
    let coords: Vec<geo::Coord<f64>> = ring
        .iter()
        .map(|p| geo::Coord { x: p.lon, y: p.lat })
        .collect();
    geo::Polygon::new(geo::LineString::new(coords), vec![])
}

impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Zone::decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<GeoPoint> {
        vec![
            GeoPoint::new(39.866, 116.36),
            GeoPoint::new(39.866, 116.3601),
            GeoPoint::new(39.86604, 116.3601),
            GeoPoint::new(39.86604, 116.36),
            GeoPoint::new(39.866, 116.36),
        ]
    }

    #[test]
    fn zone_round_trips_through_its_string() -> Result<()> {
        let z = Zone::new(square())?;
        let back = Zone::decode(&z.encode())?;
        assert_eq!(back, z);
        let c = z.centroid();
        assert!((c.lat - 39.86602).abs() < 1e-6 && (c.lon - 116.36005).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn open_short_and_crossing_rings_are_refused() {
        let mut open = square();
        open.pop();
        open.push(GeoPoint::new(39.8661, 116.3602));
        assert!(matches!(Zone::new(open), Err(Error::InvalidInput { .. })));
        assert!(Zone::new(square()[..3].to_vec()).is_err());
        let bow_tie = vec![
            GeoPoint::new(0.0, 0.0),
            GeoPoint::new(1.0, 1.0),
            GeoPoint::new(0.0, 1.0),
            GeoPoint::new(1.0, 0.0),
            GeoPoint::new(0.0, 0.0),
        ];
        assert!(Zone::new(bow_tie).is_err());
        let mut off_globe = square();
        off_globe[1].lat = 91.0;
        let err = Zone::new(off_globe).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid zone[1].lat: latitude 91 is outside -90..90")
        );
    }

    #[test]
    fn fixes_need_finite_non_negative_accuracy() {
        let fix = GpsFix {
            lat: 39.9,
            lon: 116.4,
            accuracy_m: f64::NAN,
            at: Utc::now(),
        };
        assert!(fix.validate("fix").is_err());
        assert!(GeoPoint::new(f64::INFINITY, 0.0).validate("p").is_err());
    }
}
