//! Why imports build each new document as one change (docs/adr/0004):
//!
//!     cargo run --release -p menqian-tests --example automerge_costs
//!
//! Times creating a 15-field document by `put` calls against applying the same
//! content as one prebuilt change, and loading it.
use std::time::Instant;

use automerge::{AutoCommit, Change, ROOT, transaction::Transactable};

const N: usize = 5_000;

fn per_doc(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6 / N as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for fields in [1usize, 5, 15] {
        let t = Instant::now();
        for _ in 0..N {
            let mut d = AutoCommit::new();
            for k in 0..fields {
                d.put(ROOT, format!("k{k}"), "富义街23号 value")?;
            }
            d.commit();
            std::hint::black_box(d);
        }
        println!(
            "{fields:>2} puts + commit: {:6.1} µs per document",
            per_doc(t)
        );
    }
    let mut base = AutoCommit::new();
    for k in 0..15 {
        base.put(ROOT, format!("k{k}"), "富义街23号 value")?;
    }
    base.commit();
    let bytes = base
        .get_last_local_change()
        .ok_or("no change")?
        .raw_bytes()
        .to_vec();
    let t = Instant::now();
    for _ in 0..N {
        let mut d = AutoCommit::new();
        d.apply_changes([Change::from_bytes(bytes.clone())?])?;
        std::hint::black_box(d);
    }
    println!(
        "one 15-op change applied: {:6.1} µs per document",
        per_doc(t)
    );
    let saved = base.save();
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(AutoCommit::load(&saved)?);
    }
    println!("load a saved 15-field document: {:6.1} µs", per_doc(t));
    Ok(())
}
