//! The due-inspection planner: which shops an officer visits today, and in
//! which order (a walking route from where the officer stands).

use serde::Serialize;

use crate::model::geo::GeoPoint;
use crate::model::place::LocalFrame;
use crate::model::rules::Grade;

/// Why a shop is on today's list, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 复查: a rectification item's deadline has come.
    Recheck,
    /// 从未检查: never inspected.
    NeverInspected,
    /// 到期检查: its grade's interval has passed since the last inspection.
    Due,
}

impl Reason {
    pub fn label_zh(self) -> &'static str {
        match self {
            Reason::Recheck => "整改复查",
            Reason::NeverInspected => "首次检查",
            Reason::Due => "到期检查",
        }
    }
}

/// A shop that could be visited today, before ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub shop_id: String,
    pub code: String,
    pub location: GeoPoint,
    pub reason: Reason,
    pub grade: Grade,
    /// Days since the shop fell due (re-checks: since the earliest deadline);
    /// larger is more urgent.
    pub days_overdue: i64,
}

/// Today's most urgent candidates, at most `limit`: re-checks first, then
/// never inspected, then due; within those the longest overdue, the worse
/// grade, then the shop code.
pub fn choose(mut candidates: Vec<Candidate>, limit: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        a.reason
            .cmp(&b.reason)
            .then(b.days_overdue.cmp(&a.days_overdue))
            .then(b.grade.cmp(&a.grade))
            .then(a.code.cmp(&b.code))
    });
    candidates.truncate(limit);
    candidates
}

/// A walking order: indexes into the stops, and the path lengths (m) of the
/// nearest-neighbour start and of the improved route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub order: Vec<usize>,
    pub nearest_neighbour_m: f64,
    pub length_m: f64,
}

/// Orders `stops` into an open walking path from `start`: nearest neighbour,
/// then 2-opt (reverse a stretch whenever that shortens the path) until no
/// reversal helps, then Or-opt (move one stop elsewhere) likewise, repeated
/// while either finds a gain. Straight-line distances in a local metric frame.
pub fn route(start: GeoPoint, stops: &[GeoPoint]) -> Route {
    let frame = LocalFrame::new(start);
    // Position 0 is the officer; 1.. are the stops.
    let mut pts = Vec::with_capacity(stops.len() + 1);
    pts.push(geo::Coord { x: 0.0, y: 0.0 });
    pts.extend(stops.iter().map(|p| frame.project(*p)));
    let d = |a: usize, b: usize| -> f64 {
        let (p, q) = (pts[a], pts[b]);
        (p.x - q.x).hypot(p.y - q.y)
    };
    // Nearest neighbour.
    let mut path = vec![0usize];
    let mut left: Vec<usize> = (1..pts.len()).collect();
    while !left.is_empty() {
        let here = path[path.len() - 1];
        let (k, _) = left
            .iter()
            .enumerate()
            .fold((0, f64::INFINITY), |best, (k, &s)| {
                let dist = d(here, s);
                if dist < best.1 { (k, dist) } else { best }
            });
        path.push(left.swap_remove(k));
    }
    let length = |path: &[usize]| path.windows(2).map(|w| d(w[0], w[1])).sum::<f64>();
    let nearest_neighbour_m = length(&path);
    const EPS: f64 = 1e-9;
    let n = path.len();
    let mut improved = true;
    let mut rounds = 0;
    while improved && rounds < 100 {
        improved = false;
        rounds += 1;
        // 2-opt on an open path with a fixed start: reversing path[i..=j]
        // replaces edges (i-1, i) and (j, j+1) (the latter absent at the end).
        for i in 1..n.saturating_sub(1) {
            for j in i + 1..n {
                let (a, b, c) = (path[i - 1], path[i], path[j]);
                let before = d(a, b) + if j + 1 < n { d(c, path[j + 1]) } else { 0.0 };
                let after = d(a, c) + if j + 1 < n { d(b, path[j + 1]) } else { 0.0 };
                if after + EPS < before {
                    path[i..=j].reverse();
                    improved = true;
                }
            }
        }
        // Or-opt: move one stop to between two others.
        for i in 1..n {
            let s = path[i];
            let prev = path[i - 1];
            let next = path.get(i + 1).copied();
            let removed_gain =
                d(prev, s) + next.map_or(0.0, |x| d(s, x)) - next.map_or(0.0, |x| d(prev, x));
            let mut best: Option<(usize, f64)> = None;
            for k in 0..n {
                // Insert after position k (k ≠ i, i-1).
                if k == i || k + 1 == i {
                    continue;
                }
                let (a, b) = (path[k], path.get(k + 1).copied());
                let added = d(a, s) + b.map_or(0.0, |x| d(s, x)) - b.map_or(0.0, |x| d(a, x));
                if added + EPS < removed_gain && best.is_none_or(|(_, g)| added < g) {
                    best = Some((k, added));
                }
            }
            if let Some((k, _)) = best {
                path.remove(i);
                let at = if k < i { k + 1 } else { k };
                path.insert(at, s);
                improved = true;
            }
        }
    }
    Route {
        order: path[1..].iter().map(|&p| p - 1).collect(),
        nearest_neighbour_m,
        length_m: length(&path),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test
    use super::*;
    use proptest::prelude::*;

    fn at(east_m: f64, north_m: f64) -> GeoPoint {
        LocalFrame::new(GeoPoint::new(39.866, 116.35)).unproject(geo::Coord {
            x: east_m,
            y: north_m,
        })
    }

    #[test]
    fn two_opt_untangles_what_nearest_neighbour_crosses() {
        // Along one lane: nearest neighbour zigzags 10 m east, 30 m west,
        // 60 m east, 120 m west (220 m); all of the east first, then the west, is 160 m.
        let start = at(0.0, 0.0);
        let stops = [at(10.0, 0.0), at(-20.0, 0.0), at(40.0, 0.0), at(-80.0, 0.0)];
        let r = route(start, &stops);
        let mut seen = r.order.clone();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
        assert!((r.nearest_neighbour_m - 220.0).abs() < 0.01, "{r:?}");
        assert!((r.length_m - 160.0).abs() < 0.01, "{r:?}");
        // Both shortest orders end at the far west stop.
        assert_eq!(r.order[3], 3);
    }

    #[test]
    fn choose_takes_rechecks_then_new_then_longest_due() {
        let c = |code: &str, reason, grade, days| Candidate {
            shop_id: code.into(),
            code: code.into(),
            location: at(0.0, 0.0),
            reason,
            grade,
            days_overdue: days,
        };
        let chosen = choose(
            vec![
                c("d", Reason::Due, Grade::A, 9),
                c("c", Reason::Due, Grade::D, 2),
                c("b", Reason::NeverInspected, Grade::B, 0),
                c("a", Reason::Recheck, Grade::A, 0),
                c("e", Reason::Due, Grade::D, 9),
            ],
            4,
        );
        let codes: Vec<&str> = chosen.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["a", "b", "e", "d"]);
    }

    proptest! {
        #[test]
        fn the_route_visits_every_stop_once_and_never_loses_to_nearest_neighbour(
            pts in prop::collection::vec((-800.0f64..800.0, -800.0f64..800.0), 0..40)
        ) {
            let stops: Vec<GeoPoint> = pts.iter().map(|(e, n)| at(*e, *n)).collect();
            let r = route(at(0.0, 0.0), &stops);
            let mut seen = r.order.clone();
            seen.sort();
            prop_assert_eq!(seen, (0..stops.len()).collect::<Vec<_>>());
            prop_assert!(r.length_m <= r.nearest_neighbour_m + 1e-6);
        }
    }
}
