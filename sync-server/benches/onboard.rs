//! Onboarding the 21,728-shop district: its ledger as an XLSX and as a GBK
//! CSV (no codes, points in GCJ-02 as an AMap picker gives them), read,
//! checked (the dry run) and imported into an empty station store, as
//! `registry import` does; then the whole district's signboards printed by
//! the station binary (`signboards --out`), timed with its peak memory
//! (GNU time's maximum resident set). Files and stores under
//! `target/tmp/bench-data/onboard`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failed run

use std::path::Path;
use std::time::Instant;

use menqian_core::Shop;
use menqian_core::model::place::wgs84_to_gcj02;
use menqian_core::onboard::{Datum, LedgerOptions};
use menqian_sync_server::registry::{Charset, read_table};
use menqian_sync_server::{SqliteSyncStore, SyncStore as _};

const HEADER: [&str; 10] = [
    "序号",
    "单位名称",
    "经营地址",
    "负责人",
    "联系电话",
    "所属街道",
    "路段",
    "业态",
    "经度",
    "纬度",
];

fn cells(i: usize, s: &Shop) -> [String; 10] {
    let p = wgs84_to_gcj02(s.zone.centroid());
    [
        (i + 1).to_string(),
        s.name.clone(),
        s.address.clone(),
        s.contact.person.clone(),
        s.contact.phone.clone(),
        s.subdistrict.clone().unwrap_or_default(),
        s.street.clone(),
        "餐饮".into(),
        format!("{:.7}", p.lon),
        format!("{:.7}", p.lat),
    ]
}

fn write_xlsx(shops: &[Shop], path: &Path) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .merge_range(
            0,
            0,
            0,
            9,
            "丰台区门前三包责任单位台账",
            &rust_xlsxwriter::Format::new(),
        )
        .unwrap();
    for (c, h) in HEADER.iter().enumerate() {
        sheet.write_string(1, c as u16, *h).unwrap();
    }
    for (i, s) in shops.iter().enumerate() {
        for (c, v) in cells(i, s).iter().enumerate() {
            let row = (i + 2) as u32;
            match v.parse::<f64>() {
                Ok(n) if c == 0 || c >= 8 => sheet.write_number(row, c as u16, n).unwrap(),
                _ => sheet.write_string(row, c as u16, v).unwrap(),
            };
        }
    }
    book.save(path).unwrap();
}

fn write_gbk_csv(shops: &[Shop], path: &Path) {
    let mut text = HEADER.join(",") + "\n";
    for (i, s) in shops.iter().enumerate() {
        text += &cells(i, s).join(",");
        text.push('\n');
    }
    let (bytes, _, bad) = encoding_rs::GBK.encode(&text);
    assert!(!bad);
    std::fs::write(path, &bytes).unwrap();
}

/// Reads, plans and (unless `dry`) imports `file` into a new store: the
/// seconds for each step.
fn run(file: &Path, dir: &Path, dry: bool) -> (f64, f64, f64, usize) {
    let _ = std::fs::remove_dir_all(dir);
    let mut station = SqliteSyncStore::open(dir, vec![menqian_fixtures::DEMO_HOST.into()]).unwrap();
    let docs = station.documents();
    let t = Instant::now();
    let table = read_table(file, None, Charset::Auto).unwrap();
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut options = LedgerOptions::new(chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
    options.datum = Datum::Gcj02;
    options.district = Some(menqian_fixtures::DISTRICT_CODE);
    let plan = docs.plan_ledger(&table.rows, &options).unwrap();
    assert!(!plan.refused(), "{:?}", plan.refusals().next());
    let check = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if !dry {
        let r = docs.import_ledger(&plan, |_, _| true).unwrap();
        assert_eq!(r.created, menqian_fixtures::DISTRICT_SHOPS);
    }
    (read, check, t.elapsed().as_secs_f64(), plan.created)
}

fn main() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-data/onboard");
    std::fs::create_dir_all(&base).unwrap();
    let shops = menqian_fixtures::registry(menqian_fixtures::DISTRICT_SHOPS).unwrap();
    let xlsx = base.join("ledger.xlsx");
    let csv = base.join("ledger-gbk.csv");
    write_xlsx(&shops, &xlsx);
    write_gbk_csv(&shops, &csv);
    println!(
        "ledger: {} rows; XLSX {:.1} MB, GBK CSV {:.1} MB",
        shops.len(),
        std::fs::metadata(&xlsx).unwrap().len() as f64 / 1e6,
        std::fs::metadata(&csv).unwrap().len() as f64 / 1e6
    );
    println!("| file | run | read s | check s | write s | total s | shops |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let rounds: usize = if std::env::args().any(|a| a == "--print-only") {
        0
    } else {
        3
    };
    for round in 1..=rounds {
        for (name, file) in [("XLSX", &xlsx), ("GBK CSV", &csv)] {
            for dry in [true, false] {
                let (read, check, write, n) = run(file, &base.join("store"), dry);
                println!(
                    "| {name} | {} #{round} | {read:.2} | {check:.2} | {write:.2} | {:.2} | {n} |",
                    if dry { "dry run" } else { "import" },
                    read + check + write
                );
            }
        }
    }
    print_all(&base, &csv);
}

/// Prints the district's boards with the station binary: (seconds, peak
/// RSS in MB, file bytes).
fn print(store: &Path, layout: &str, out: &Path) -> (f64, f64, u64) {
    let t = Instant::now();
    let run = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak-kb %M"])
        .arg(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args([
            "--data",
            store.to_str().unwrap(),
            "signboards",
            "--layout",
            layout,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let kb: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-kb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    (secs, kb / 1024.0, std::fs::metadata(out).unwrap().len())
}

fn print_all(base: &Path, csv: &Path) {
    let store = base.join("print");
    if !store.join("station.sqlite").exists() {
        run(csv, &store, false);
        let mut s =
            SqliteSyncStore::open(&store, vec![menqian_fixtures::DEMO_HOST.into()]).unwrap();
        let docs = s.documents();
        docs.import_templates(menqian_fixtures::templates().unwrap())
            .unwrap();
        docs.import_categories(menqian_fixtures::categories().unwrap())
            .unwrap();
    }
    println!("| layout | run | seconds | peak RSS MB | file MB | KB per board |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for round in 1..=2 {
        for layout in ["board", "a4"] {
            let out = base.join(format!("boards-{layout}.pdf"));
            let (secs, mb, bytes) = print(&store, layout, &out);
            println!(
                "| {layout} | #{round} | {secs:.1} | {mb:.0} | {:.1} | {:.1} |",
                bytes as f64 / 1e6,
                bytes as f64 / 1e3 / menqian_fixtures::DISTRICT_SHOPS as f64
            );
        }
    }
}
