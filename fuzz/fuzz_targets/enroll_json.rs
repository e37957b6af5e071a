//! An enrollment body, parsed as the station parses it and redeemed against
//! a real accounts database (with one outstanding code).
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use menqian_sync_server::http::EnrollRequest;
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

static STORE: Mutex<Option<(tempfile::TempDir, SqliteSyncStore)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<EnrollRequest>(data) else {
        return;
    };
    let mut guard = STORE.lock().unwrap_or_else(|p| p.into_inner());
    let (_, store) = guard.get_or_insert_with(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut store = SqliteSyncStore::open(dir.path(), vec![]).expect("a store");
        store
            .add_user(&User::new(
                "officer-1",
                "王伟",
                menqian_core::Role::Officer,
                menqian_core::Area::District,
            ))
            .expect("a user");
        store
            .issue_enrollment("officer-1", chrono::Utc::now(), chrono::Duration::days(3650))
            .expect("a code");
        (dir, store)
    });
    if let Ok(enrolled) = store.enroll(&req.code, &req.actor, &req.device_name, chrono::Utc::now()) {
        // Whatever was accepted is printable and bound to one device.
        let device = store
            .devices()
            .expect("devices")
            .into_iter()
            .find(|d| d.id == enrolled.device_id)
            .expect("the new device");
        assert!(!device.name.chars().any(char::is_control));
    }
});
