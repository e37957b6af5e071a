//! The core's figures (issue 2), measured in a release build:
//!
//!     cargo bench -p menqian-tests --bench core
//!
//! Prints one line per figure; docs/benchmarks.md records the results. Store
//! files are kept under target/bench-data so the 300,000-shop store is built once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use menqian_core::{ItemOutcome, ItemResult, NewInspection, ShopCode, Store};
use menqian_fixtures as fx;
use menqian_tests::fixtures_config;

const BIG: usize = 300_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-probe") {
        return rss_probe(Path::new(&args[i + 1]));
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir)?;

    // 1. Import the district into an empty store.
    let district = fx::registry(fx::DISTRICT_SHOPS)?;
    let mut times = Vec::new();
    let path = dir.join("district.sqlite");
    for _ in 0..3 {
        remove_store(&path);
        let mut store = Store::open(&path, fixtures_config())?;
        let t = Instant::now();
        store.import_registry(district.clone())?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "import {} shops into an empty store: median {:.2?} (runs {:?})",
        district.len(),
        times[1],
        times
    );

    // 2. Bytes on disk per shop, indexes included (WAL checkpointed into the file).
    {
        let mut store = Store::open(&path, fixtures_config())?;
        store.import_templates(fx::templates()?)?;
        store.import_categories(fx::categories()?)?;
    }
    checkpoint(&path)?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "bytes on disk per shop: {:.0} ({} bytes for {} shops)",
        bytes as f64 / district.len() as f64,
        bytes,
        district.len()
    );

    // 3. Resident memory with the district open and 100 random lookups done.
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .arg("--rss-probe")
        .arg(&path)
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // 4. Submitting a 6-item inspection (winter: 扫雪铲冰 applies).
    let mut store = Store::open(&path, fixtures_config())?;
    let mut submit = Vec::new();
    let mut record = Vec::new();
    let winter = Utc
        .with_ymd_and_hms(2026, 12, 10, 2, 0, 0)
        .single()
        .ok_or("date")?;
    for i in 0..500 {
        let shop = &district[(i * 37) % district.len()];
        let id = store.start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-bench".into(),
            started_at: winter,
            fix: None,
        })?;
        let items = store.inspection(&id)?.applicable;
        assert_eq!(items.len(), 6);
        for code in &items {
            let t = Instant::now();
            store.record_item(
                &id,
                code,
                ItemResult {
                    outcome: ItemOutcome::Pass,
                    note: None,
                    photos: vec![],
                },
            )?;
            record.push(t.elapsed());
        }
        let t = Instant::now();
        store.submit_inspection(&id, winter + chrono::Duration::minutes(5))?;
        submit.push(t.elapsed());
    }
    println!("submit a 6-item inspection: {}", stats(&mut submit));
    println!("record one item: {}", stats(&mut record));
    drop(store);

    // 5. QR lookup and name search in a 300,000-shop store.
    let big = dir.join("store-300k.sqlite");
    if !big.exists() {
        let t = Instant::now();
        let tmp = dir.join("store-300k.partial.sqlite");
        remove_store(&tmp);
        let all = fx::registry(BIG)?;
        let mut store = Store::open(&tmp, fixtures_config())?;
        for chunk in all.chunks(25_000) {
            store.import_registry(chunk.to_vec())?;
        }
        drop(store);
        checkpoint(&tmp)?;
        std::fs::rename(&tmp, &big)?;
        println!("(built the {BIG}-shop store in {:.1?})", t.elapsed());
    }
    let all = fx::registry(BIG)?;
    let store = Store::open(&big, fixtures_config())?;
    let mut rng = 0x1234_5678_u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    // Warm the page cache first: the figures are for an app in use, not the
    // first read after the phone boots.
    for shop in all.iter().step_by(7) {
        store.shop_by_code(&shop.code)?;
    }
    store.search_shops("超市", 50)?;
    let mut lookups = Vec::new();
    for _ in 0..20_000 {
        let shop = &all[next(all.len())];
        let link = ShopCode::parse(&shop.code)?.link(fx::DEMO_HOST);
        let t = Instant::now();
        let found = store.scan(&link)?;
        lookups.push(t.elapsed());
        assert_eq!(found.code, shop.code);
    }
    println!("QR lookup, {BIG} shops: {}", stats(&mut lookups));

    let mut searches = Vec::new();
    let mut by_length: [Vec<Duration>; 4] = Default::default();
    let mut hits = 0usize;
    for i in 0..3_000 {
        let shop = &all[next(all.len())];
        let source: Vec<char> = if i % 3 == 0 {
            shop.address.chars().collect()
        } else {
            shop.name.chars().collect()
        };
        let len = 1 + i % 4; // 1- to 4-character queries
        let start = next(source.len().saturating_sub(len).max(1));
        let q: String = source.iter().skip(start).take(len).collect();
        let t = Instant::now();
        let found = store.search_shops(&q, 50)?;
        searches.push(t.elapsed());
        by_length[q.chars().count().clamp(1, 4) - 1].push(t.elapsed());
        hits += found.len();
    }
    println!(
        "name/address search (1–4 characters, 50 results), {BIG} shops: {} ({:.1} results/query)",
        stats(&mut searches),
        hits as f64 / 3_000.0
    );
    for (i, samples) in by_length.iter_mut().enumerate() {
        if !samples.is_empty() {
            println!("  {}-character queries: {}", i + 1, stats(samples));
        }
    }
    Ok(())
}

fn rss_probe(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path, fixtures_config())?;
    let shops = fx::registry(fx::DISTRICT_SHOPS)?;
    let codes: Vec<String> = shops.iter().map(|s| s.code.clone()).collect();
    drop(shops);
    let before = rss_kib("VmRSS")?;
    for i in 0..100 {
        let code = &codes[(i * 7919) % codes.len()];
        store.shop_by_code(code)?;
        store.search_shops(&code[8..10], 20)?;
    }
    println!(
        "resident memory, district open + 100 random lookups: {:.1} MiB (peak {:.1} MiB; {:.1} MiB before the lookups)",
        rss_kib("VmRSS")? as f64 / 1024.0,
        rss_kib("VmHWM")? as f64 / 1024.0,
        before as f64 / 1024.0
    );
    Ok(())
}

fn rss_kib(field: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or("no such field")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad line")?.parse()?)
}

fn stats(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!(
        "p50 {:.3?}, p99 {:.3?}, max {:.3?} (n = {})",
        at(0.5),
        at(0.99),
        samples[samples.len() - 1],
        samples.len()
    )
}

fn checkpoint(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    Ok(Store::open(path, fixtures_config())?.checkpoint()?)
}

fn remove_store(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
