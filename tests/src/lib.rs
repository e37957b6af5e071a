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

/// Merges into `stores[to]` what `stores[from]` has after `cursor` (its feed
/// position `to` last read up to); returns the new cursor.
pub fn merge_between(
    stores: &mut [menqian_core::Store],
    from: usize,
    to: usize,
    cursor: u64,
) -> u64 {
    if from == to {
        return cursor;
    }
    let (src, dst) = if from < to {
        let (l, r) = stores.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = stores.split_at_mut(from);
        (&r[0], &mut l[to])
    };
    match dst.merge_from(src, cursor) {
        Ok((next, _)) => next,
        Err(e) => panic!("merging store {from} into {to} failed: {e}"),
    }
}
