//! A pushed body: the batch frame, each change checked as the station checks
//! it, then decoded for applying.
#![no_main]

use libfuzzer_sys::fuzz_target;
use menqian_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = wire::decode_checked(data, menqian_core::store::check_incoming) {
        let _ = menqian_core::decode_pushed(batch.changes);
    }
});
