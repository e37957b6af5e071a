//! A real sync server on an ephemeral 127.0.0.1 port, and enrolled devices with
//! their own SQLite files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use chrono::{Duration, Utc};
use menqian_core::client::{RetryPolicy, SyncClient};
use menqian_core::{Role, Store, StoreConfig};
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

pub const HOST: &str = menqian_fixtures::DEMO_HOST;

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The demo street, checklists, categories and four users.
pub fn seed(dir: &std::path::Path) {
    seed_with(dir, menqian_fixtures::STREET_SHOPS);
}

/// The first `shops` of the demo district, checklists, categories, four users.
pub fn seed_with(dir: &std::path::Path, shops: usize) {
    let mut s = SqliteSyncStore::open(dir, vec![HOST.into()]).unwrap();
    let docs = s.documents();
    docs.import_templates(menqian_fixtures::templates().unwrap())
        .unwrap();
    docs.import_categories(menqian_fixtures::categories().unwrap())
        .unwrap();
    docs.import_registry(menqian_fixtures::registry(shops).unwrap())
        .unwrap();
    for (id, role) in [
        ("officer-1", Role::Officer),
        ("officer-2", Role::Officer),
        ("steward-1", Role::Steward),
        ("supervisor-1", Role::Supervisor),
    ] {
        s.add_user(&User {
            id: id.into(),
            name: id.into(),
            role,
            area: "丰台区".into(),
        })
        .unwrap();
    }
}

impl TestServer {
    /// A seeded server (demo street, checklists, categories, four users).
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        Self::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> TestServer {
        let path = dir.path().to_path_buf();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let store = SqliteSyncStore::open(&path, vec![HOST.into()]).unwrap();
                menqian_sync_server::serve(listener, Box::new(store), async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Opens the server's data directly (another connection), e.g. to issue codes.
    pub fn admin(&self) -> SqliteSyncStore {
        SqliteSyncStore::open(self.dir.path(), vec![HOST.into()]).unwrap()
    }

    pub fn code_for(&self, user: &str) -> String {
        self.admin()
            .issue_enrollment(user, Utc::now(), Duration::hours(1))
            .unwrap()
    }

    /// A token for `user` on a throwaway device (for raw HTTP requests).
    pub fn token_for(&self, user: &str) -> String {
        let code = self.code_for(user);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("x.sqlite"), StoreConfig::default()).unwrap();
        SyncClient::new(&self.url, None)
            .unwrap()
            .enroll(&code, &store, "throwaway")
            .unwrap()
            .token
    }

    /// The server's merged documents as JSON.
    pub fn documents(&self) -> Vec<(String, serde_json::Value)> {
        self.admin().documents().documents_json().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Device {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub client: SyncClient,
    pub device_id: String,
    pub token: String,
}

impl Device {
    /// A new phone, enrolled as `user` on `url`.
    pub fn enroll(url: &str, code: &str, name: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path().join("phone.sqlite"),
            StoreConfig {
                qr_hosts: vec![HOST.into()],
                durable: false,
            },
        )
        .unwrap();
        let anonymous = SyncClient::new(url, None).unwrap();
        let e = anonymous.enroll(code, &store, name).unwrap();
        let mut client = SyncClient::new(url, Some(e.token.clone())).unwrap();
        client.retry = RetryPolicy {
            attempts: 3,
            first_delay: std::time::Duration::from_millis(20),
            max_delay: std::time::Duration::from_millis(100),
        };
        Device {
            dir,
            store,
            client,
            device_id: e.device_id,
            token: e.token,
        }
    }

    pub fn sync(&mut self) -> menqian_core::Result<menqian_core::client::SyncReport> {
        self.store.sync(&self.client, None, &Default::default())
    }

    pub fn client_token(&self) -> Option<String> {
        Some(self.token.clone())
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("phone.sqlite")
    }
}

/// The server's documents a steward may see: the registry, checklists and
/// categories, and their own reports and patrols.
pub fn visible_to_steward(
    docs: Vec<(String, serde_json::Value)>,
    user: &str,
) -> Vec<(String, serde_json::Value)> {
    docs.into_iter()
        .filter(|(id, doc)| match id.split_once('/').map(|(k, _)| k) {
            Some("shop" | "tmpl" | "cat") => true,
            Some("case") => doc["reported_by"] == user,
            Some("patrol") => doc["user"] == user,
            _ => false,
        })
        .collect()
}

/// Records every applicable item of an open inspection as passed.
pub fn pass_every_item(store: &mut Store, inspection: &str) {
    for code in store.inspection(inspection).unwrap().applicable {
        let pass = menqian_core::ItemResult {
            outcome: menqian_core::ItemOutcome::Pass,
            note: None,
            photos: vec![],
        };
        store.record_item(inspection, &code, pass).unwrap();
    }
}
