//! Evidence figures (issue 5), in a release build:
//!
//!     cargo bench -p menqian-tests --bench evidence
//!
//! 1. The photo pipeline (decode, orient, resize, watermark, encode, thumbnail,
//!    hash) on three real camera photos, side by side in one run with libvips
//!    (`vipsthumbnail`, 1600 px, then its 320 px thumbnail from that output,
//!    as ours is made; its work without process start-ups taken as the
//!    difference between one process given the photo 5 times and once) and
//!    ImageMagick (`convert`, the same two outputs), and the pipeline's peak
//!    RSS in a fresh process.
//! 2. An 8-hour patrol at 1 Hz: filter + simplify + coverage of 50 lanes.
//!
//! Needs `libvips-tools` and `imagemagick` (apt): `bash scripts/system-deps.sh
//! --bench` installs them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use menqian_core::GeoPoint;
use menqian_core::evidence::photo::{self, PhotoLimits};
use menqian_core::evidence::watermark::Stamp;

const PHOTOS: &[&str] = &[
    "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg",
    "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
    "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
];
const RUNS: usize = 5;
/// Copies of a photo one `vipsthumbnail` process is given, to take its
/// start-up out of its time.
const COPIES: usize = 5;

fn stamp() -> Stamp {
    Stamp {
        at: Utc
            .with_ymd_and_hms(2026, 11, 23, 6, 5, 9)
            .single()
            .unwrap_or_default(),
        place: "右安门街道 富义街东一巷".into(),
        position: Some(GeoPoint::new(39.871234, 116.371234)),
        inspector: "王磊".into(),
        shop: Some("老王烧饼（FT-000123）".into()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-probe") {
        return rss_probe(&args[i + 1]);
    }
    let only_tracks = args.iter().any(|a| a == "tracks");
    if !only_tracks {
        photos()?;
    }
    tracks();
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) -> Result<Duration, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let status = cmd.status()?;
    let took = t.elapsed();
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(took)
}

fn photos() -> Result<(), Box<dyn std::error::Error>> {
    let out = tempfile::tempdir()?;
    let o = |name: &str| out.path().join(name).display().to_string();
    let exe = std::env::current_exe()?;
    // vips' own work on a photo, without its process start-up: one
    // `vipsthumbnail` given the photo once and one given it COPIES times;
    // the difference over COPIES − 1 is what each photo costs inside the
    // process (start-up and library initialisation paid once). The same for
    // its 320 px thumbnail from its 1600 px output.
    let copies = tempfile::tempdir()?;
    let vips_alone = |inputs: &[std::path::PathBuf],
                      size: &str,
                      outdir: &Path|
     -> Result<Duration, Box<dyn std::error::Error>> {
        run(Command::new("vipsthumbnail")
            .args(inputs)
            .args(["--size", size, "-o"])
            .arg(format!("{}/%s-{size}.jpg[Q=80,strip]", outdir.display())))
    };
    for path in PHOTOS {
        let bytes = std::fs::read(path)?;
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (mut ours, mut vips, mut magick) = (Vec::new(), Vec::new(), Vec::new());
        let mut vips_work = Vec::new();
        let inputs: Vec<std::path::PathBuf> = (0..COPIES)
            .map(|k| copies.path().join(format!("in{k}.jpg")))
            .collect();
        for input in &inputs {
            std::fs::write(input, &bytes)?;
        }
        let big: Vec<std::path::PathBuf> = (0..COPIES)
            .map(|k| copies.path().join(format!("in{k}-1600.jpg")))
            .collect();
        let mut last = None;
        for _ in 0..RUNS {
            // Ours: reading the file is part of the job.
            let t = Instant::now();
            let input = std::fs::read(path)?;
            let p = photo::process(&input, &stamp(), &PhotoLimits::default())?;
            ours.push(t.elapsed());
            last = Some(p);

            vips.push(
                run(Command::new("vipsthumbnail")
                    .arg(path)
                    .args(["--size", "1600", "-o"])
                    .arg(format!("{}[Q=80,strip]", o("vips-1600.jpg"))))?
                    // Its thumbnail from its own 1600 px output, as ours is
                    // made from ours (not a second decode of the original).
                    + run(Command::new("vipsthumbnail")
                        .arg(o("vips-1600.jpg"))
                        .args(["--size", "320", "-o"])
                        .arg(format!("{}[Q=80,strip]", o("vips-320.jpg"))))?,
            );
            let many = vips_alone(&inputs, "1600", copies.path())?
                + vips_alone(&big, "320", copies.path())?;
            let one = vips_alone(&inputs[..1], "1600", copies.path())?
                + vips_alone(&big[..1], "320", copies.path())?;
            vips_work.push(many.saturating_sub(one) / (COPIES as u32 - 1));
            // ImageMagick with its shrink-on-load hint (jpeg:size), as its
            // documentation advises for thumbnails.
            magick.push(
                run(Command::new("/usr/bin/convert")
                    .args(["-define", "jpeg:size=3200x3200"])
                    .arg(path)
                    .args([
                        "-auto-orient",
                        "-resize",
                        "1600x1600",
                        "-strip",
                        "-quality",
                        "80",
                    ])
                    .arg(o("im-1600.jpg")))?
                    + run(Command::new("/usr/bin/convert")
                        .args(["-define", "jpeg:size=640x640"])
                        .arg(path)
                        .args([
                            "-auto-orient",
                            "-thumbnail",
                            "320x320",
                            "-strip",
                            "-quality",
                            "80",
                        ])
                        .arg(o("im-320.jpg")))?,
            );
        }
        let rss = Command::new(&exe).args(["--rss-probe", path]).output()?;
        let rss = String::from_utf8_lossy(&rss.stdout).trim().to_string();
        let (ours, vips, magick) = (median(ours), median(vips), median(magick));
        let vips_work = median(vips_work);
        let p = last.ok_or("no run")?;
        if let Ok(dir) = std::env::var("MENQIAN_BENCH_KEEP") {
            std::fs::write(
                Path::new(&dir).join(format!("evidence-{name}")),
                &p.evidence,
            )?;
        }
        println!(
            "{name} ({:.1} MB, {} → {}×{} {} KB + thumb {} KB): ours {:.1} ms, vipsthumbnail {:.1} ms, convert {:.1} ms; ours/vips {:.2}; vips' work without start-ups {:.1} ms, ours/that {:.2}; ours/convert {:.2}; peak RSS {rss}",
            bytes.len() as f64 / 1e6,
            bytes.len(),
            p.width,
            p.height,
            p.evidence.len() / 1024,
            p.thumb.len() / 1024,
            ms(ours),
            ms(vips),
            ms(magick),
            ms(ours) / ms(vips),
            ms(vips_work),
            ms(ours) / ms(vips_work),
            ms(ours) / ms(magick),
        );
    }
    Ok(())
}

/// Runs the pipeline once in a fresh process and prints its peak RSS.
fn rss_probe(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let input = std::fs::read(path)?;
    let p = photo::process(&input, &stamp(), &PhotoLimits::default())?;
    drop((input, p));
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string();
    let mb = hwm.parse::<f64>().map(|kb| kb / 1024.0).unwrap_or(f64::NAN);
    println!("{mb:.1} MiB");
    Ok(())
}

/// An 8-hour patrol at 1 Hz over a grid of 50 lanes (300 m long, 50 m apart):
/// the officer walks the first 30 lanes end to end and back at 1.2 m/s, with
/// ±3 m of GPS noise, a 1-in-500 jump and a 1-in-200 poor fix.
fn tracks() {
    use menqian_core::TrackPoint;
    use menqian_core::model::track::{self, LaneLine, TrackRules};
    let (lat0, lon0): (f64, f64) = (39.87, 116.36);
    let m_lat = 1.0 / 111_195.0;
    let m_lon = m_lat / lat0.to_radians().cos();
    let lanes: Vec<LaneLine> = (0..50)
        .map(|i| LaneLine {
            name: format!("巷{i:02}"),
            line: vec![
                GeoPoint::new(lat0 + f64::from(i) * 50.0 * m_lat, lon0),
                GeoPoint::new(lat0 + f64::from(i) * 50.0 * m_lat, lon0 + 300.0 * m_lon),
            ],
        })
        .collect();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0
    };
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 23, 0, 30, 0)
        .single()
        .unwrap_or_default();
    // The route: along lane i, then 50 m north to lane i+1, then back.
    let mut route = Vec::new();
    for i in 0..30 {
        let y = f64::from(i) * 50.0;
        let (a, b): (f64, f64) = if i % 2 == 0 {
            (0.0, 300.0)
        } else {
            (300.0, 0.0)
        };
        route.push((a, y));
        route.push((b, y));
    }
    let mut points = Vec::with_capacity(28_800);
    let (mut leg, mut along) = (0usize, 0.0f64);
    for s in 0..28_800i64 {
        let (a, b) = (route[leg % route.len()], route[(leg + 1) % route.len()]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt().max(1.0);
        let t = (along / len).min(1.0);
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        let jump = if s % 500 == 499 { 800.0 } else { 0.0 };
        points.push(TrackPoint {
            at: t0 + chrono::Duration::seconds(s),
            lat: lat0 + (y + (rnd() - 0.5) * 6.0 + jump) * m_lat,
            lon: lon0 + (x + (rnd() - 0.5) * 6.0) * m_lon,
            accuracy_m: if s % 200 == 7 {
                120.0
            } else {
                5.0 + rnd() * 10.0
            },
        });
        along += 1.2;
        if along >= len {
            along -= len;
            leg += 1;
        }
    }
    let rules = TrackRules::default();
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..21 {
        let t = Instant::now();
        report = Some(track::analyse(&points, &lanes, &rules));
        times.push(t.elapsed());
    }
    let Some(r) = report else { return };
    let covered = r.lanes.iter().filter(|l| l.covered > 0.9).count();
    let untouched = r.lanes.iter().filter(|l| l.covered == 0.0).count();
    println!(
        "patrol {} points over 50 lanes: filter + simplify + coverage median {:.2} ms (min {:.2}); dropped {} poor + {} jumps; {} points kept after simplify; {:.1} km in {} s; lanes ≥ 90 % covered {}, untouched {}",
        r.points_in,
        ms(median(times.clone())),
        ms(times.iter().copied().min().unwrap_or_default()),
        r.dropped_inaccurate,
        r.dropped_jumps,
        r.track.len(),
        r.distance_m / 1000.0,
        r.duration_s,
        covered,
        untouched
    );
}
