//! Whole documents as a device receives them in snapshot pages: id grammar,
//! Automerge's loader, the entity read and its index rows.
//!
//! As in `change_bytes`, libFuzzer's aborting panic hook is replaced by a
//! silent one: a panic the core catches (Automerge's loader panics on some
//! malformed documents) is a refusal, as at the station; a panic that escapes
//! the core still aborts and is a finding.
#![no_main]

use std::sync::{Mutex, Once};

use libfuzzer_sys::fuzz_target;
use menqian_core::{DocChange, Store, StoreConfig};

static STORE: Mutex<Option<Store>> = Mutex::new(None);
static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    // The first byte picks a kind; the rest is the document.
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let id = match kind % 4 {
        0 => format!("case/{}", "1".repeat(32)),
        1 => format!("insp/{}", "2".repeat(32)),
        2 => format!("patrol/{}", "3".repeat(32)),
        _ => "rules/district".to_string(),
    };
    let mut guard = STORE.lock().unwrap_or_else(|p| p.into_inner());
    let store = guard.get_or_insert_with(|| {
        Store::open(":memory:", StoreConfig::default()).expect("an in-memory store")
    });
    let _ = store.load_documents(&[DocChange {
        doc_id: id,
        bytes: bytes.to_vec(),
    }]);
});
