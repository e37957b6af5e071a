//! Issue 6's figures, in a release build:
//!
//!     cargo bench -p menqian-tests --bench scores
//!
//! 1. Weekly scores and rankings (with the red flag and black list) for the
//!    21,728-shop district: goal < 1 s.
//! 2. Today's plan for an officer in the 2,000-shop subdistrict: goal < 50 ms.
//!
//! The store is the demo district with four weeks of generated history (every
//! shop inspected every one to three weeks, 15 % failing an item, re-checks,
//! citizens' and stewards' reports); it is built once under
//! target/bench-data and reused.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use menqian_core::store::Capture;
use menqian_core::{GeoPoint, PeriodKind, Store};
use menqian_fixtures as fx;
use menqian_tests::fixtures_config;

/// Wednesday 2026-11-18, 09:00 Beijing: the plan's "now".
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Days of generated history; `MENQIAN_HISTORY_DAYS=84` fills the whole
/// 12-week credit window (about three times the inspections; 7 minutes to build).
fn history_days() -> i64 {
    std::env::var("MENQIAN_HISTORY_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(28)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let days = history_days();
    let path = dir.join(format!("scores-district-{days}d.sqlite"));
    if !path.exists() {
        build(&dir, &path)?;
    }
    let mut store = Store::open(&path, fixtures_config())?;
    if std::env::args().any(|a| a == "--plan-only") {
        // For profiling the planner alone.
        let shops = fx::registry(fx::SUBDISTRICT_SHOPS)?;
        for _ in 0..50 {
            store.plan_day(Some(fx::SUBDISTRICTS[0]), shops[0].zone.centroid(), now())?;
        }
        return Ok(());
    }
    let (docs, changes) = store.counts()?;
    println!(
        "store: {} shops, {docs} documents, {changes} changes ({days} days of history)",
        fx::DISTRICT_SHOPS
    );

    // 1. Last week's scoreboard for the whole district.
    let last_week = now() - chrono::Duration::days(7);
    let mut times = Vec::new();
    let mut board = None;
    for _ in 0..5 {
        let t = Instant::now();
        board = Some(store.scoreboard(PeriodKind::Week, last_week, None, now())?);
        times.push(t.elapsed());
    }
    let board = board.ok_or("no runs")?;
    report(
        &format!(
            "weekly scores + rankings, {} shops ({} streets, {} red flags, {} on the black list)",
            board.ranked.len(),
            board
                .ranked
                .iter()
                .map(|r| r.score.street.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            board.red_flag.len(),
            board.black_list.len()
        ),
        times,
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        store.scoreboard(PeriodKind::Month, last_week, None, now())?;
        times.push(t.elapsed());
    }
    report("monthly scores + rankings, district", times);

    // 2. An officer's plan in 右安门街道 (the district's first 2,000 shops),
    //    standing at the first shop.
    let shops = fx::registry(fx::SUBDISTRICT_SHOPS)?;
    let position: GeoPoint = shops[0].zone.centroid();
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..21 {
        let t = Instant::now();
        plan = Some(store.plan_day(Some(fx::SUBDISTRICTS[0]), position, now())?);
        times.push(t.elapsed());
    }
    let plan = plan.ok_or("no runs")?;
    report(
        &format!(
            "today's plan, {} shops in {}: {} stops, {} exempt, {} left for later, walk {:.0} m (nearest neighbour {:.0} m)",
            fx::SUBDISTRICT_SHOPS,
            fx::SUBDISTRICTS[0],
            plan.stops.len(),
            plan.exempt.len(),
            plan.left_for_later,
            plan.walk_m,
            plan.nearest_neighbour_m
        ),
        times,
    );
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        store.standing(&shops[7].id(), now())?;
        times.push(t.elapsed());
    }
    report("one shop's standing (credit, stars, red flag)", times);

    // 4. The station's minute when nothing has changed: a whole sweep (the
    //    store was swept when built), and the check that lets it be skipped.
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        last = Some(store.sweep(now(), "system")?);
        times.push(t.elapsed());
    }
    let last = last.ok_or("no runs")?;
    report(
        &format!(
            "district sweep with nothing to do ({} escalated, {} folded)",
            last.escalated.len(),
            last.folded.len()
        ),
        times,
    );
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let due = store.sweep_due(&last, now())?;
        times.push(t.elapsed());
        if due {
            return Err("a sweep that wrote nothing left another due".into());
        }
    }
    report("the check that skips it (sweep_due)", times);
    Ok(())
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{what}: median {median:.2?} (min {:.2?}, max {:.2?}, {} runs)",
        times[0],
        times[times.len() - 1],
        times.len()
    );
}

fn build(dir: &std::path::Path, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = dir.join("scores-building.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let mut store = Store::open(&tmp, fixtures_config())?;
    store.import_templates(fx::templates()?)?;
    store.import_categories(fx::categories()?)?;
    let district = fx::registry(fx::DISTRICT_SHOPS)?;
    store.import_registry(district.clone())?;
    let camera = dir.join("scores-camera.jpg");
    std::fs::write(
        &camera,
        menqian_core::evidence::photo::sample_jpeg(640, 480)?,
    )?;
    let photo = store.capture_photo(
        &camera,
        Capture {
            at: now(),
            fix: None,
            taken_by: "王伟".into(),
            shop_id: None,
            place: None,
        },
    )?;
    let t = Instant::now();
    let stats = fx::history(
        &mut store,
        &district,
        history_days(),
        now(),
        Some(&photo.hash),
    )?;
    // The station escalates what is overdue.
    let swept = store.sweep(now(), "system")?;
    println!(
        "built the bench store: {} inspections, {} failed items, {} reports, {} escalated in {:.1?}",
        stats.inspections,
        stats.failed_items,
        stats.reports,
        swept.escalated.len(),
        t.elapsed()
    );
    store.checkpoint()?;
    drop(store);
    std::fs::rename(&tmp, path)?;
    let blobs_from = menqian_core::store::blob_dir_for(&tmp);
    let _ = std::fs::rename(blobs_from, menqian_core::store::blob_dir_for(path));
    Ok(())
}
