//! Imports the district once, for profiling: `cargo run --release -p menqian-tests --example import_profile`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let shops = menqian_fixtures::registry(menqian_fixtures::DISTRICT_SHOPS)?;
    let mut store = menqian_core::Store::open(
        dir.path().join("p.sqlite"),
        menqian_tests::fixtures_config(),
    )?;
    let t = std::time::Instant::now();
    store.import_registry(shops)?;
    println!("import: {:.2?}", t.elapsed());
    Ok(())
}
