//! Helpers shared by the cross-crate tests and the benchmarks.

use menqian_core::{Shop, StoreConfig};

/// A store configuration that accepts the demo district's signboard links.
pub fn fixtures_config() -> StoreConfig {
    StoreConfig {
        qr_hosts: vec![menqian_fixtures::DEMO_HOST.to_string()],
        durable: false,
        publish_listings: false,
        ..StoreConfig::default()
    }
}

/// The first `n` shops of the demo district.
pub fn shop_pool(n: usize) -> Vec<Shop> {
    match menqian_fixtures::registry(n) {
        Ok(shops) => shops,
        Err(e) => panic!("the demo registry generator failed: {e}"),
    }
}
