//! Patrol track analysis: drop implausible points, simplify, measure, and work
//! out which lanes the patrol covered; export as GeoJSON (RFC 7946).

use std::collections::HashMap;

use geo::{Distance, Euclidean, SimplifyIdx};
use serde::Serialize;
use serde_json::{Value, json};

use super::geo::GeoPoint;
use super::patrol::TrackPoint;
use super::place::{LocalFrame, distance_m};

/// The rules a track is cleaned and judged by; a district may change them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackRules {
    /// Points less accurate than this (m) are dropped.
    pub max_accuracy_m: f64,
    /// A point reached faster than this from the last kept point (m/s) is a
    /// GPS jump and is dropped. 12 m/s ≈ 43 km/h covers an e-bike patrol.
    pub max_speed_mps: f64,
    /// Simplification tolerance (m, Ramer–Douglas–Peucker).
    pub simplify_m: f64,
    /// A stretch of lane within this distance (m) of the track is covered.
    pub cover_m: f64,
}

impl Default for TrackRules {
    fn default() -> Self {
        TrackRules {
            max_accuracy_m: 50.0,
            max_speed_mps: 12.0,
            simplify_m: 5.0,
            cover_m: 20.0,
        }
    }
}

/// A lane (巷) as a line, for coverage.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneLine {
    pub name: String,
    pub line: Vec<GeoPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneCoverage {
    pub name: String,
    pub length_m: f64,
    /// Share of the lane's length within `cover_m` of the track, 0–1.
    pub covered: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackReport {
    pub points_in: usize,
    pub dropped_inaccurate: usize,
    pub dropped_jumps: usize,
    /// The cleaned, simplified track.
    pub track: Vec<TrackPoint>,
    pub distance_m: f64,
    pub duration_s: i64,
    pub lanes: Vec<LaneCoverage>,
}

/// Cleans a time-ordered track, drops implausible points, simplifies it and
/// measures lane coverage.
pub fn analyse(points: &[TrackPoint], lanes: &[LaneLine], rules: &TrackRules) -> TrackReport {
    let mut dropped_inaccurate = 0;
    let mut dropped_jumps = 0;
    let mut kept: Vec<TrackPoint> = Vec::with_capacity(points.len());
    for p in points {
        // NaN accuracy counts as poor.
        if p.accuracy_m.is_nan() || p.accuracy_m > rules.max_accuracy_m {
            dropped_inaccurate += 1;
            continue;
        }
        if let Some(last) = kept.last() {
            let dt = (p.at - last.at).num_milliseconds() as f64 / 1000.0;
            let d = distance_m(last_point(last), last_point(p));
            if dt <= 0.0 || d / dt > rules.max_speed_mps {
                dropped_jumps += 1;
                continue;
            }
        }
        kept.push(*p);
    }
    let duration_s = match (kept.first(), kept.last()) {
        (Some(a), Some(b)) => (b.at - a.at).num_seconds(),
        _ => 0,
    };
    let Some(first) = kept.first() else {
        return TrackReport {
            points_in: points.len(),
            dropped_inaccurate,
            dropped_jumps,
            track: Vec::new(),
            distance_m: 0.0,
            duration_s: 0,
            lanes: lanes.iter().map(uncovered).collect(),
        };
    };
    let frame = LocalFrame::new(last_point(first));
    let projected: Vec<geo::Coord<f64>> =
        kept.iter().map(|p| frame.project(last_point(p))).collect();
    // Simplify with the indices kept, so the points keep their times.
    let line = geo::LineString::new(projected.clone());
    let simplified = line.simplify_idx(rules.simplify_m);
    let track: Vec<TrackPoint> = simplified.iter().map(|&i| kept[i]).collect();
    let simple: Vec<geo::Coord<f64>> = simplified.iter().map(|&i| projected[i]).collect();
    // Measured on the simplified line: summing raw 1 Hz fixes adds their
    // noise (±3 m a second nearly triples a walk's length).
    let distance_m: f64 = track
        .windows(2)
        .map(|w| distance_m(last_point(&w[0]), last_point(&w[1])))
        .sum();
    let grid = SegmentGrid::new(&simple, rules.cover_m);
    let lanes = lanes
        .iter()
        .map(|l| coverage(l, &frame, &grid, rules.cover_m))
        .collect();
    TrackReport {
        points_in: points.len(),
        dropped_inaccurate,
        dropped_jumps,
        track,
        distance_m,
        duration_s,
        lanes,
    }
}

fn last_point(p: &TrackPoint) -> GeoPoint {
    GeoPoint::new(p.lat, p.lon)
}

fn uncovered(lane: &LaneLine) -> LaneCoverage {
    let length_m = lane.line.windows(2).map(|w| distance_m(w[0], w[1])).sum();
    LaneCoverage {
        name: lane.name.clone(),
        length_m,
        covered: 0.0,
    }
}

/// The line a lane implies when all that is known is where its shops are:
/// through their frontages (zone centroids), along their main direction (least
/// squares), from the first shop to the last. `None` for fewer than two shops
/// or shops all in one place.
pub fn lane_line_through(name: &str, shops: &[GeoPoint]) -> Option<LaneLine> {
    if shops.len() < 2 {
        return None;
    }
    let n = shops.len() as f64;
    let mean = GeoPoint::new(
        shops.iter().map(|p| p.lat).sum::<f64>() / n,
        shops.iter().map(|p| p.lon).sum::<f64>() / n,
    );
    let frame = LocalFrame::new(mean);
    let xy: Vec<geo::Coord<f64>> = shops.iter().map(|p| frame.project(*p)).collect();
    let (sxx, syy, sxy) = xy.iter().fold((0.0, 0.0, 0.0), |(a, b, c), p| {
        (a + p.x * p.x, b + p.y * p.y, c + p.x * p.y)
    });
    let angle = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    let (dx, dy) = (angle.cos(), angle.sin());
    let along = xy.iter().map(|p| p.x * dx + p.y * dy);
    let (lo, hi) = along.fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if hi - lo < 1.0 {
        return None;
    }
    let end = |t: f64| {
        frame.unproject(geo::Coord {
            x: t * dx,
            y: t * dy,
        })
    };
    Some(LaneLine {
        name: name.to_string(),
        line: vec![end(lo), end(hi)],
    })
}

/// Track segments bucketed in square cells of `cell` metres.
struct SegmentGrid {
    cell: f64,
    cells: HashMap<(i64, i64), Vec<geo::Line<f64>>>,
}

impl SegmentGrid {
    fn new(track: &[geo::Coord<f64>], cell: f64) -> Self {
        let mut cells: HashMap<(i64, i64), Vec<geo::Line<f64>>> = HashMap::new();
        let key = |v: f64| (v / cell).floor() as i64;
        let segments: Vec<geo::Line<f64>> = if track.len() == 1 {
            vec![geo::Line::new(track[0], track[0])]
        } else {
            track
                .windows(2)
                .map(|w| geo::Line::new(w[0], w[1]))
                .collect()
        };
        for s in segments {
            let (x0, x1) = (key(s.start.x.min(s.end.x)), key(s.start.x.max(s.end.x)));
            let (y0, y1) = (key(s.start.y.min(s.end.y)), key(s.start.y.max(s.end.y)));
            for x in x0..=x1 {
                for y in y0..=y1 {
                    cells.entry((x, y)).or_default().push(s);
                }
            }
        }
        SegmentGrid { cell, cells }
    }

    /// Whether any track segment lies within `r` (≤ one cell) of `p`.
    fn near(&self, p: geo::Coord<f64>, r: f64) -> bool {
        let (cx, cy) = (
            (p.x / self.cell).floor() as i64,
            (p.y / self.cell).floor() as i64,
        );
        let point = geo::Point::from(p);
        for x in cx - 1..=cx + 1 {
            for y in cy - 1..=cy + 1 {
                if let Some(segs) = self.cells.get(&(x, y))
                    && segs.iter().any(|s| Euclidean.distance(&point, s) <= r)
                {
                    return true;
                }
            }
        }
        false
    }
}

/// Samples the lane every metre or so and measures the covered share.
fn coverage(lane: &LaneLine, frame: &LocalFrame, grid: &SegmentGrid, r: f64) -> LaneCoverage {
    let mut total = 0.0;
    let mut covered = 0.0;
    for w in lane.line.windows(2) {
        let (a, b) = (frame.project(w[0]), frame.project(w[1]));
        let len = ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt();
        let steps = (len / 2.0).ceil().max(1.0) as usize;
        let piece = len / steps as f64;
        for k in 0..steps {
            let t = (k as f64 + 0.5) / steps as f64;
            let p = geo::Coord {
                x: a.x + (b.x - a.x) * t,
                y: a.y + (b.y - a.y) * t,
            };
            if grid.near(p, r) {
                covered += piece;
            }
        }
        total += len;
    }
    LaneCoverage {
        name: lane.name.clone(),
        length_m: (total * 10.0).round() / 10.0,
        covered: if total > 0.0 { covered / total } else { 0.0 },
    }
}

/// The track and the lanes' coverage as a GeoJSON FeatureCollection (RFC 7946:
/// WGS-84, `[lon, lat]`, no `crs` member).
pub fn to_geojson(report: &TrackReport, lanes: &[LaneLine], patrol_id: &str) -> Value {
    let coords = |ps: &mut dyn Iterator<Item = GeoPoint>| -> Vec<[f64; 2]> {
        ps.map(|p| [p.lon, p.lat]).collect()
    };
    let mut features = vec![json!({
        "type": "Feature",
        "geometry": {
            "type": "LineString",
            "coordinates": coords(&mut report.track.iter().map(last_point)),
        },
        "properties": {
            "kind": "patrol",
            "patrol": patrol_id,
            "distance_m": (report.distance_m * 10.0).round() / 10.0,
            "duration_s": report.duration_s,
            "started_at": report.track.first().map(|p| p.at.to_rfc3339()),
            "ended_at": report.track.last().map(|p| p.at.to_rfc3339()),
        },
    })];
    for (lane, cov) in lanes.iter().zip(&report.lanes) {
        features.push(json!({
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": coords(&mut lane.line.iter().copied()),
            },
            "properties": {
                "kind": "lane",
                "name": cov.name,
                "length_m": cov.length_m,
                "covered": (cov.covered * 1000.0).round() / 1000.0,
            },
        }));
    }
    json!({ "type": "FeatureCollection", "features": features })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    const M_LAT: f64 = 1.0 / 111_195.0;

    fn lane(name: &str, north_m: f64) -> LaneLine {
        let m_lon = M_LAT / 39.87f64.to_radians().cos();
        LaneLine {
            name: name.into(),
            line: vec![
                GeoPoint::new(39.87 + north_m * M_LAT, 116.36),
                GeoPoint::new(39.87 + north_m * M_LAT, 116.36 + 200.0 * m_lon),
            ],
        }
    }

    fn walk(north_m: f64, from_m: f64, to_m: f64, start: DateTime<Utc>) -> Vec<TrackPoint> {
        let m_lon = M_LAT / 39.87f64.to_radians().cos();
        (0..=((to_m - from_m) as i64))
            .map(|s| TrackPoint {
                at: start + Duration::seconds(s),
                lat: 39.87 + north_m * M_LAT,
                lon: 116.36 + (from_m + s as f64) * m_lon,
                accuracy_m: 6.0,
            })
            .collect()
    }

    #[test]
    fn jumps_and_poor_fixes_are_dropped_and_coverage_is_measured() {
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).expect("t");
        // Walk 100 m of lane A (at 1 m/s), 5 m off its line.
        let mut points = walk(5.0, 0.0, 100.0, t0);
        // A GPS jump 2 km away, and a fix with 200 m accuracy.
        points[40].lat += 2_000.0 * M_LAT;
        points[60].accuracy_m = 200.0;
        let lanes = vec![lane("甲巷", 0.0), lane("乙巷", 80.0)];
        let r = analyse(&points, &lanes, &TrackRules::default());
        assert_eq!(
            (r.points_in, r.dropped_inaccurate, r.dropped_jumps),
            (101, 1, 1)
        );
        assert!((r.distance_m - 100.0).abs() < 0.5, "{}", r.distance_m);
        assert_eq!(r.duration_s, 100);
        assert!(r.track.len() <= 3, "a straight walk simplifies to its ends");
        // 100 m walked + √(20² − 5²) ≈ 19.4 m reach past the far end, of 200 m.
        assert!(
            (r.lanes[0].covered - 0.597).abs() < 0.01,
            "{:?}",
            r.lanes[0]
        );
        assert_eq!(r.lanes[1].covered, 0.0);

        let gj = to_geojson(&r, &lanes, "patrol-1");
        assert_eq!(gj["type"], "FeatureCollection");
        let f = &gj["features"];
        assert_eq!(f[0]["geometry"]["type"], "LineString");
        let first = &f[0]["geometry"]["coordinates"][0];
        assert!(
            (first[0].as_f64().unwrap_or(0.0) - 116.36).abs() < 1e-9,
            "[lon, lat] order"
        );
        assert_eq!(f[1]["properties"]["name"], "甲巷");
        let covered = f[1]["properties"]["covered"].as_f64().unwrap_or(0.0);
        assert!((covered - 0.597).abs() < 0.01, "{covered}");
    }

    #[test]
    fn a_lane_line_runs_through_its_shops_from_first_to_last() {
        // Shops 10 m apart along a lane running north-east, ±3 m off its line.
        let m_lon = M_LAT / 39.87f64.to_radians().cos();
        let shops: Vec<GeoPoint> = (0..12)
            .map(|i| {
                let t = f64::from(i) * 10.0 / 2f64.sqrt();
                let off = if i % 2 == 0 { 3.0 } else { -3.0 } / 2f64.sqrt();
                GeoPoint::new(39.87 + (t + off) * M_LAT, 116.36 + (t - off) * m_lon)
            })
            .collect();
        let lane = lane_line_through("东一巷", &shops).expect("a line");
        let length: f64 = distance_m(lane.line[0], lane.line[1]);
        assert!((length - 110.0).abs() < 1.0, "{length}");
        assert!(lane_line_through("独门", &shops[..1]).is_none());
    }

    #[test]
    fn an_empty_or_all_bad_track_covers_nothing() {
        let lanes = vec![lane("甲巷", 0.0)];
        let r = analyse(&[], &lanes, &TrackRules::default());
        assert_eq!(r.lanes[0].covered, 0.0);
        assert!((r.lanes[0].length_m - 200.0).abs() < 0.5);
    }
}
