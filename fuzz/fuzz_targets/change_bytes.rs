//! One change's bytes: the station's limits check, then Automerge's parser
//! only for what the check lets through, then applying it to a document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use menqian_core::DocChange;

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = menqian_core::limits::check_change(data) else {
        return;
    };
    assert!(ops <= menqian_core::limits::MAX_CHANGE_OPS);
    let changes = vec![DocChange {
        doc_id: format!("case/{}", "0".repeat(32)),
        bytes: data.to_vec(),
    }];
    if let Ok(decoded) = menqian_core::decode_pushed(changes) {
        let mut doc = automerge::AutoCommit::new();
        let _ = doc.apply_changes(decoded.into_iter().map(|c| c.change));
    }
});
