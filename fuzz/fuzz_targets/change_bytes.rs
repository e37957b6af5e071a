//! One change's bytes down a device's push path: the limits check, the id and
//! operation counts, Automerge's parser, then applying it to a stored case
//! under a writer bound to the change's own actor, as the station applies a
//! push.
//!
//! Automerge 0.12 panics on some malformed changes that pass its parser
//! (docs/security.md). The station runs every Automerge call on foreign bytes
//! under `catch_unwind` and answers such a push with `bad_change`; so does
//! this harness. libFuzzer's panic hook would abort at the first caught panic,
//! so it is replaced by a silent one: a panic that escapes the core still
//! aborts (libfuzzer-sys catches it and calls `abort`), and only such a panic,
//! an out-of-bounds read or a hang is a finding. Run an artifact with the
//! normal hook (`cargo fuzz run change_bytes <file>` after removing the
//! `set_hook` line) to see where Automerge panicked.
#![no_main]

use std::sync::{Mutex, Once};

use libfuzzer_sys::fuzz_target;
use menqian_core::{DocChange, Role, Store, StoreConfig, Writer};

/// The store, and how many inputs it has taken: it is replaced now and then so
/// the one case it holds does not grow without end.
static STORE: Mutex<Option<(Store, u32)>> = Mutex::new(None);
static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Ok(ops) = menqian_core::limits::check_change(data) else {
        return;
    };
    assert!(ops <= menqian_core::limits::MAX_CHANGE_OPS);
    let changes = vec![DocChange {
        doc_id: format!("case/{}", "0".repeat(32)),
        bytes: data.to_vec(),
    }];
    let Ok(decoded) = menqian_core::decode_pushed(changes) else {
        return;
    };
    let Some(actor) = decoded.first().map(|c| c.change.actor_id().to_hex_string()) else {
        return;
    };
    let writer = Writer {
        user: "steward-1".into(),
        role: Role::Steward,
        actor,
    };
    let mut guard = STORE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_some_and(|(_, n)| *n >= 1_000) {
        *guard = None;
    }
    let (store, n) = guard.get_or_insert_with(|| {
        (
            Store::open(":memory:", StoreConfig::default()).expect("an in-memory store"),
            0,
        )
    });
    *n += 1;
    let _ = store.apply_decoded_as(decoded, &writer, chrono::Utc::now());
});
