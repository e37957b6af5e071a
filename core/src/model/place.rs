//! Where a record was made: the geofence check of an inspection against the
//! shop's zone, the GCJ-02 coordinates Chinese maps (AMap, Tencent) draw in,
//! and the local metric frame both use.

use geo::{Distance, Euclidean};
use serde::{Deserialize, Serialize};

use super::geo::{GeoPoint, GpsFix, Zone};

/// Mean Earth radius (m), for the local frame.
const EARTH_R: f64 = 6_371_008.8;

/// A local east/north frame in metres around an origin: equirectangular, which
/// over a street's few hundred metres errs by far less than a GPS fix.
#[derive(Debug, Clone, Copy)]
pub struct LocalFrame {
    origin: GeoPoint,
    cos_lat: f64,
}

impl LocalFrame {
    pub fn new(origin: GeoPoint) -> Self {
        LocalFrame {
            origin,
            cos_lat: origin.lat.to_radians().cos(),
        }
    }

    /// (east, north) in metres.
    pub fn project(&self, p: GeoPoint) -> geo::Coord<f64> {
        geo::Coord {
            x: (p.lon - self.origin.lon).to_radians() * EARTH_R * self.cos_lat,
            y: (p.lat - self.origin.lat).to_radians() * EARTH_R,
        }
    }

    /// The point at (east, north) metres.
    pub fn unproject(&self, c: geo::Coord<f64>) -> GeoPoint {
        GeoPoint::new(
            self.origin.lat + (c.y / EARTH_R).to_degrees(),
            self.origin.lon + (c.x / (EARTH_R * self.cos_lat)).to_degrees(),
        )
    }
}

/// The default allowance beyond the fix's own accuracy: 30 m.
pub const DEFAULT_GEOFENCE_MARGIN_M: f64 = 30.0;

/// How far an inspection's GPS fix was from the shop's zone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    /// Metres from the fix to the zone (0 inside it).
    pub distance_m: f64,
    /// The fix's own accuracy radius (m).
    pub accuracy_m: f64,
    /// The allowance used (m).
    pub margin_m: f64,
    /// Farther than accuracy + margin: 不在现场 (not on site).
    pub flagged: bool,
}

impl Geofence {
    pub fn check(fix: &GpsFix, zone: &Zone, margin_m: f64) -> Geofence {
        let frame = LocalFrame::new(fix.point());
        let ring: Vec<geo::Coord<f64>> = zone.points().iter().map(|p| frame.project(*p)).collect();
        let polygon = geo::Polygon::new(geo::LineString::new(ring), vec![]);
        let distance = Euclidean.distance(&geo::Point::new(0.0, 0.0), &polygon);
        let distance_m = (distance * 10.0).round() / 10.0;
        Geofence {
            distance_m,
            accuracy_m: fix.accuracy_m,
            margin_m,
            flagged: distance_m > fix.accuracy_m + margin_m,
        }
    }
}

// GCJ-02 (国测局坐标, "Mars coordinates"): WGS-84 with the published
// obfuscation polynomial on the Krasovsky 1940 ellipsoid. Outside mainland
// China's bounding box maps use WGS-84 unchanged.
const KRASOVSKY_A: f64 = 6_378_245.0;
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;

/// Whether GCJ-02 applies at this point (the usual bounding box).
pub fn in_china(p: GeoPoint) -> bool {
    (72.004..=137.8347).contains(&p.lon) && (0.8293..=55.8271).contains(&p.lat)
}

fn offset(lat: f64, lon: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let x = lon - 105.0;
    let y = lat - 35.0;
    let mut d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    d_lat += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    d_lat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    d_lat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    d_lon += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    d_lon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    d_lon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    let rad = lat.to_radians();
    let magic = 1.0 - KRASOVSKY_EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    d_lat = (d_lat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    d_lon = (d_lon * 180.0) / (KRASOVSKY_A / sqrt_magic * rad.cos() * PI);
    (d_lat, d_lon)
}

/// WGS-84 → GCJ-02, for drawing on AMap or Tencent maps.
pub fn wgs84_to_gcj02(p: GeoPoint) -> GeoPoint {
    if !in_china(p) {
        return p;
    }
    let (d_lat, d_lon) = offset(p.lat, p.lon);
    GeoPoint::new(p.lat + d_lat, p.lon + d_lon)
}

/// GCJ-02 → WGS-84 (a point picked on a Chinese map). The forward transform
/// has no closed inverse; this iterates it to below 1e-9° (≈ 0.1 mm), which
/// the forward check in the tests confirms.
pub fn gcj02_to_wgs84(g: GeoPoint) -> GeoPoint {
    if !in_china(g) {
        return g;
    }
    let mut w = g;
    for _ in 0..30 {
        let f = wgs84_to_gcj02(w);
        let (e_lat, e_lon) = (f.lat - g.lat, f.lon - g.lon);
        w = GeoPoint::new(w.lat - e_lat, w.lon - e_lon);
        if e_lat.abs() < 1e-10 && e_lon.abs() < 1e-10 {
            break;
        }
    }
    w
}

// BD-09 (百度坐标): GCJ-02 with Baidu's further rotation and offset.
const BD_X_PI: f64 = std::f64::consts::PI * 3000.0 / 180.0;

/// GCJ-02 → BD-09, for Baidu maps.
pub fn gcj02_to_bd09(g: GeoPoint) -> GeoPoint {
    let (x, y) = (g.lon, g.lat);
    let z = (x * x + y * y).sqrt() + 0.00002 * (y * BD_X_PI).sin();
    let theta = y.atan2(x) + 0.000003 * (x * BD_X_PI).cos();
    GeoPoint::new(z * theta.sin() + 0.006, z * theta.cos() + 0.0065)
}

/// WGS-84 → BD-09.
pub fn wgs84_to_bd09(p: GeoPoint) -> GeoPoint {
    if !in_china(p) {
        return p;
    }
    gcj02_to_bd09(wgs84_to_gcj02(p))
}

/// BD-09 → WGS-84 (a point picked on a Baidu map): the forward transform
/// inverted by iteration, as for GCJ-02.
pub fn bd09_to_wgs84(b: GeoPoint) -> GeoPoint {
    if !in_china(b) {
        return b;
    }
    let mut g = GeoPoint::new(b.lat - 0.006, b.lon - 0.0065);
    for _ in 0..30 {
        let f = gcj02_to_bd09(g);
        let (e_lat, e_lon) = (f.lat - b.lat, f.lon - b.lon);
        g = GeoPoint::new(g.lat - e_lat, g.lon - e_lon);
        if e_lat.abs() < 1e-10 && e_lon.abs() < 1e-10 {
            break;
        }
    }
    gcj02_to_wgs84(g)
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dl = (b.lat - a.lat).to_radians();
    let dn = (b.lon - a.lon).to_radians();
    let h = (dl / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dn / 2.0).sin().powi(2);
    2.0 * EARTH_R * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    // Published pairs: googollee/eviltransform's test table (WGS-84 → GCJ-02,
    // Shanghai, Shenzhen, Beijing) and wandergis/coordtransform's README
    // example (116.404, 39.915).
    const PAIRS: &[(f64, f64, f64, f64)] = &[
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
        (39.915, 116.404, 39.91640428150164, 116.41024449916938),
    ];

    #[test]
    fn wgs84_to_gcj02_matches_the_published_pairs() {
        for &(lat, lon, g_lat, g_lon) in PAIRS {
            let g = wgs84_to_gcj02(GeoPoint::new(lat, lon));
            let err = distance_m(g, GeoPoint::new(g_lat, g_lon));
            assert!(err < 0.001, "({lat}, {lon}): off by {err} m");
        }
    }

    #[test]
    fn bd09_matches_a_published_pair_and_inverts() {
        // wandergis/coordtransform's test pair: GCJ-02 (116.404, 39.915) is
        // BD-09 (116.41036949371029, 39.92133699351021).
        let b = gcj02_to_bd09(GeoPoint::new(39.915, 116.404));
        assert!((b.lat - 39.92133699351021).abs() < 1e-9, "{b:?}");
        assert!((b.lon - 116.41036949371029).abs() < 1e-9, "{b:?}");
        let p = GeoPoint::new(39.8661, 116.3451);
        assert!(distance_m(bd09_to_wgs84(wgs84_to_bd09(p)), p) < 0.001);
    }

    #[test]
    fn gcj02_to_wgs84_inverts_within_a_millimetre() {
        for &(lat, lon, g_lat, g_lon) in PAIRS {
            let w = gcj02_to_wgs84(GeoPoint::new(g_lat, g_lon));
            let err = distance_m(w, GeoPoint::new(lat, lon));
            assert!(err < 0.001, "({g_lat}, {g_lon}): off by {err} m");
        }
        // Across Beijing on a 1 km grid, the round trip stays under 1 mm.
        let mut worst = 0.0f64;
        for i in 0..40 {
            for j in 0..40 {
                let p = GeoPoint::new(39.7 + f64::from(i) * 0.009, 116.1 + f64::from(j) * 0.012);
                worst = worst.max(distance_m(gcj02_to_wgs84(wgs84_to_gcj02(p)), p));
            }
        }
        assert!(worst < 0.001, "worst round trip {worst} m");
    }

    #[test]
    fn outside_china_coordinates_are_unchanged() {
        let tokyo = GeoPoint::new(35.6812, 139.7671);
        assert_eq!(wgs84_to_gcj02(tokyo), tokyo);
        assert_eq!(gcj02_to_wgs84(tokyo), tokyo);
    }

    #[test]
    fn the_geofence_flags_a_fix_beyond_its_accuracy_and_the_margin() {
        // A 10 m × 10 m zone.
        let o = GeoPoint::new(39.866, 116.36);
        let north = 10.0 / 111_195.0;
        let east = north / o.lat.to_radians().cos();
        let zone = Zone::new(vec![
            o,
            GeoPoint::new(o.lat, o.lon + east),
            GeoPoint::new(o.lat + north, o.lon + east),
            GeoPoint::new(o.lat + north, o.lon),
            o,
        ])
        .expect("zone");
        let fix = |metres_south: f64, accuracy_m: f64| GpsFix {
            lat: o.lat - metres_south / 111_195.0,
            lon: o.lon + east / 2.0,
            accuracy_m,
            at: Utc::now(),
        };
        let inside = Geofence::check(&fix(-5.0, 5.0), &zone, 30.0);
        assert_eq!(inside.distance_m, 0.0);
        assert!(!inside.flagged);
        let near = Geofence::check(&fix(40.0, 12.0), &zone, 30.0);
        assert!((near.distance_m - 40.0).abs() < 0.3, "{near:?}");
        assert!(!near.flagged, "40 m ≤ 12 + 30");
        let far = Geofence::check(&fix(60.0, 12.0), &zone, 30.0);
        assert!(far.flagged, "60 m > 12 + 30: {far:?}");
        assert!(!Geofence::check(&fix(60.0, 12.0), &zone, 50.0).flagged);
    }
}
