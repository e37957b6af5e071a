//! A real sync server on an ephemeral 127.0.0.1 port, and enrolled devices with
//! their own SQLite files.
#![allow(dead_code)]

pub mod browser;

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use chrono::{Duration, TimeZone, Utc};
use menqian_client::DeviceSync as _;
use menqian_client::{RetryPolicy, SyncClient};
use menqian_core::{Area, NewInspection, Role, Store, StoreConfig};
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

pub const HOST: &str = menqian_fixtures::DEMO_HOST;

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database it keeps its store in, if not SQLite files.
    pub database: Option<String>,
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
    seed_store(&mut s, shops);
}

/// [`seed_with`] into any store.
pub fn seed_store(s: &mut dyn SyncStore, shops: usize) {
    let docs = s.documents();
    docs.import_templates(menqian_fixtures::templates().unwrap())
        .unwrap();
    docs.import_categories(menqian_fixtures::categories().unwrap())
        .unwrap();
    docs.import_registry(menqian_fixtures::registry(shops).unwrap())
        .unwrap();
    for (id, role, area) in users() {
        s.accounts()
            .add_user(&User::new(id, id, role, area))
            .unwrap();
    }
    s.publish().unwrap();
}

/// The seeded users: two officers of 右安门街道 (the whole demo street), a
/// steward of 富义街东一巷, a supervisor and an administrator of the district.
pub fn users() -> Vec<(&'static str, Role, Area)> {
    let home = Area::Subdistrict(menqian_fixtures::SUBDISTRICTS[0].into());
    vec![
        ("officer-1", Role::Officer, home.clone()),
        ("officer-2", Role::Officer, home),
        (
            "steward-1",
            Role::Steward,
            Area::Lanes(vec![menqian_fixtures::DEMO_LANES[0].into()]),
        ),
        ("supervisor-1", Role::Supervisor, Area::District),
        ("admin", Role::Admin, Area::District),
    ]
}

impl TestServer {
    /// A seeded server (demo street, checklists, categories, four users).
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        Self::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> TestServer {
        Self::start_with(dir, menqian_sync_server::Options::default())
    }

    /// A seeded server whose district sweep runs every `every`.
    pub fn start_sweeping(every: std::time::Duration) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        Self::start_with(
            dir,
            menqian_sync_server::Options {
                sweep_every: every,
                ..Default::default()
            },
        )
    }

    pub fn start_with(dir: tempfile::TempDir, options: menqian_sync_server::Options) -> TestServer {
        Self::start_on(dir, None, options)
    }

    /// A server whose store is in `database` (PostgreSQL) when given, with
    /// its read model in `dir`; else in `dir`'s SQLite files.
    pub fn start_on(
        dir: tempfile::TempDir,
        database: Option<String>,
        options: menqian_sync_server::Options,
    ) -> TestServer {
        let path = dir.path().to_path_buf();
        let url = database.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let store: Box<dyn SyncStore> = match url {
                    Some(url) => tokio::task::spawn_blocking(move || {
                        Box::new(
                            menqian_sync_server::store::postgres::PgSyncStore::open(
                                &url,
                                &path,
                                vec![HOST.into()],
                            )
                            .unwrap(),
                        ) as Box<dyn SyncStore>
                    })
                    .await
                    .unwrap(),
                    None => Box::new(SqliteSyncStore::open(&path, vec![HOST.into()]).unwrap()),
                };
                menqian_sync_server::serve_with(
                    listener,
                    store,
                    async {
                        let _ = stop_rx.await;
                    },
                    options,
                )
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            dir,
            database,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stops the server (as a kill would: in-flight requests are cut) and
    /// starts a new one on the same data, at a new port.
    pub fn restart(self) -> TestServer {
        self.restart_with(menqian_sync_server::Options::default())
    }

    /// [`TestServer::restart`] with other options.
    pub fn restart_with(mut self, options: menqian_sync_server::Options) -> TestServer {
        self.shut_down();
        let dir = tempfile::TempDir::new_in(self.dir.path().parent().unwrap()).unwrap();
        // Move the data into a fresh guard so the old one can drop.
        std::fs::remove_dir(dir.path()).unwrap();
        std::fs::rename(self.dir.path(), dir.path()).unwrap();
        Self::start_on(dir, self.database.clone(), options)
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Opens the server's data directly (another connection), e.g. to issue codes.
    /// The server's store, opened beside it (on PostgreSQL, with a read
    /// model of its own).
    pub fn admin(&self) -> Box<dyn SyncStore> {
        match &self.database {
            Some(url) => Box::new(
                menqian_sync_server::store::postgres::PgSyncStore::open(
                    url,
                    &self.dir.path().join("admin"),
                    vec![HOST.into()],
                )
                .unwrap(),
            ),
            None => Box::new(SqliteSyncStore::open(self.dir.path(), vec![HOST.into()]).unwrap()),
        }
    }

    pub fn code_for(&self, user: &str) -> String {
        self.admin()
            .accounts()
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

    /// The server's documents that `user` may receive, by the rules as stated
    /// in docs/protocol.md, computed here from the documents' JSON: an oracle
    /// independent of the server's SQL.
    pub fn documents_for(&self, user: &str) -> Vec<(String, serde_json::Value)> {
        let u = self
            .admin()
            .accounts()
            .users()
            .unwrap()
            .into_iter()
            .find(|u| u.id == user)
            .unwrap();
        visible_to(self.documents(), &u.id, u.role, &u.area)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shut_down();
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
                publish_listings: false,
                ..StoreConfig::default()
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

    pub fn sync(&mut self) -> menqian_core::Result<menqian_client::SyncReport> {
        self.store.sync(&self.client, None, &Default::default())
    }

    pub fn client_token(&self) -> Option<String> {
        Some(self.token.clone())
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("phone.sqlite")
    }
}

/// Pushes the device's records as its sync would, without uploading photos.
pub fn push_records(url: &str, d: &Device) {
    use menqian_core::wire::{self, WireBatch};
    let changes = d.store.own_changes_since(0, 5_000).unwrap().changes;
    let body = wire::encode(&WireBatch {
        changes,
        ..Default::default()
    })
    .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/push"))
        .bearer_auth(&d.token)
        .header("content-type", wire::CONTENT_TYPE)
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "push: {}", r.text().unwrap());
}

/// One chunk of an upload (`offset` of a `total`-byte photo) PUT to the
/// station at `url`: the status and the answer.
pub fn put_to(
    url: &str,
    token: &str,
    hash: &str,
    offset: usize,
    total: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let sent = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
        .put(format!(
            "{url}/v1/blobs/{hash}?offset={offset}&total={total}"
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send();
    match sent {
        Ok(r) => (
            r.status().as_u16(),
            r.json::<serde_json::Value>().unwrap_or_default(),
        ),
        // The station refuses from the headers and closes without reading
        // the body: a client still writing it may see the pipe break before
        // it reads the answer. Status 0 stands for that.
        Err(e) if e.is_request() => (0, serde_json::json!({ "error": e.to_string() })),
        Err(e) => panic!("{e}"),
    }
}

/// The documents a user may receive (see [`TestServer::documents_for`]).
pub fn visible_to(
    docs: Vec<(String, serde_json::Value)>,
    user: &str,
    role: Role,
    area: &Area,
) -> Vec<(String, serde_json::Value)> {
    let in_area = |sub: &serde_json::Value, lane: &serde_json::Value| match area {
        Area::District => true,
        Area::Subdistrict(s) => sub.as_str() == Some(s),
        Area::Lanes(lanes) => lanes.iter().any(|l| lane.as_str() == Some(l)),
    };
    let shops: std::collections::HashMap<String, serde_json::Value> = docs
        .iter()
        .filter(|(id, _)| id.starts_with("shop/"))
        .map(|(id, d)| (id.clone(), d.clone()))
        .collect();
    let shop_in_area = |id: &serde_json::Value| {
        id.as_str()
            .and_then(|id| shops.get(id))
            .is_some_and(|s| in_area(&s["subdistrict"], &s["lane"]))
    };
    let steward = role == Role::Steward;
    docs.into_iter()
        .filter(|(id, d)| match id.split_once('/').map(|(k, _)| k) {
            Some("tmpl" | "cat" | "rules") => true,
            Some("case") if d["reported_by"] == user => true,
            Some("patrol") if d["user"] == user => true,
            Some("pub") => steward && in_area(&d["subdistrict"], &d["lane"]),
            _ if steward => false,
            _ if *area == Area::District => true,
            Some("shop") => in_area(&d["subdistrict"], &d["lane"]),
            Some("insp") => shop_in_area(&d["shop_id"]),
            Some("case") => match d["shop_id"].as_str().and_then(|s| shops.get(s)) {
                Some(shop) => in_area(&shop["subdistrict"], &shop["lane"]),
                None => in_area(&d["subdistrict"], &d["lane"]),
            },
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

/// An hour of 2026-07-01 (UTC), the test day.
pub fn at(h: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap() + Duration::hours(h)
}

/// Starts an inspection of `shop_id` as `who`, and passes and submits it if `submit`.
pub fn inspect(d: &mut Device, shop_id: &str, who: &str, submit: bool) -> String {
    let id = d
        .store
        .start_inspection(NewInspection {
            shop_id: shop_id.into(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: who.into(),
            started_at: at(1),
            fix: None,
        })
        .unwrap();
    if submit {
        pass_every_item(&mut d.store, &id);
        d.store.submit_inspection(&id, at(2)).unwrap();
    }
    id
}

/// The station binary running as its own process on 127.0.0.1, on a seeded
/// data directory: for what is measured from `/proc` (memory, open files,
/// limits). Killed on drop.
pub struct StationProcess {
    pub url: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub child: std::process::Child,
}

impl StationProcess {
    /// Seeds a data directory and starts the station on it with `args`.
    pub fn start(args: &[&str]) -> StationProcess {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        Self::start_in(dir, args, None)
    }

    /// Starts the station on `dir`, with the soft open-file limit first set
    /// to `nofile` if given (as a shell's `ulimit -Sn` would).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str], nofile: Option<u64>) -> StationProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(dir, port, args, nofile)
    }

    /// [`StationProcess::start_in`] on a given port (a station started
    /// again where it was).
    pub fn start_on(
        dir: tempfile::TempDir,
        port: u16,
        args: &[&str],
        nofile: Option<u64>,
    ) -> StationProcess {
        Self::start_env(dir, port, args, nofile, &[])
    }

    /// [`StationProcess::start_on`] with these environment variables.
    pub fn start_env(
        dir: tempfile::TempDir,
        port: u16,
        args: &[&str],
        nofile: Option<u64>,
        env: &[(&str, &str)],
    ) -> StationProcess {
        Self::start_within(
            dir,
            port,
            args,
            nofile,
            env,
            std::time::Duration::from_secs(30),
        )
    }

    /// [`StationProcess::start_env`], waiting `within` for it to answer (a
    /// city's instance builds its read model before it listens).
    pub fn start_within(
        dir: tempfile::TempDir,
        port: u16,
        args: &[&str],
        nofile: Option<u64>,
        env: &[(&str, &str)],
        within: std::time::Duration,
    ) -> StationProcess {
        let listen = format!("127.0.0.1:{port}");
        let mut command = std::process::Command::new("sh");
        let ulimit = nofile.map_or(String::new(), |n| format!("ulimit -Sn {n} && "));
        command
            .arg("-c")
            .arg(format!("{ulimit}exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_menqian-sync-server"))
            .args(["--data", dir.path().to_str().unwrap(), "--listen", &listen])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = command.spawn().unwrap();
        let station = StationProcess {
            url: format!("http://{listen}"),
            port,
            dir,
            child,
        };
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if station.healthy() {
                return station;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the station did not come up on port {port}");
    }

    /// Waits until `/readyz` answers `200` (a city's instance: its read
    /// model caught up), at most `within`.
    pub fn wait_ready(&self, within: std::time::Duration) {
        let http = reqwest::blocking::Client::new();
        let t = std::time::Instant::now();
        while !http
            .get(format!("{}/readyz", self.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(t.elapsed() < within, "the station never got ready");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// `/healthz` answers `ok` on a new connection within two seconds.
    pub fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.ends_with("ok")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/<pid>/status` in kB (VmRSS, VmHWM).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Resets the peak resident set (VmHWM) to the current one.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }

    /// Open file descriptors.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The soft and hard limits on open files.
    pub fn nofile_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_string(), fields[4].to_string())
    }

    pub fn admin(&self) -> SqliteSyncStore {
        SqliteSyncStore::open(self.dir.path(), vec![HOST.into()]).unwrap()
    }

    pub fn code_for(&self, user: &str) -> String {
        self.admin()
            .accounts()
            .issue_enrollment(user, Utc::now(), Duration::hours(1))
            .unwrap()
    }

    /// A phone enrolled as `user` that has synced once.
    pub fn phone(&self, user: &str) -> Device {
        let mut d = Device::enroll(&self.url, &self.code_for(user), user);
        d.sync().unwrap();
        d
    }
}

impl StationProcess {
    /// Kills the station (SIGKILL) and gives back its data directory and
    /// port, to start it again where it was.
    pub fn kill(mut self) -> (tempfile::TempDir, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.port)
    }
}

impl Drop for StationProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rankings as the CLI prints them and as the console's 考评 page shows
/// them, to compare.
/// (shop code, rank, score, inspections, reports, overdue, late) per row.
pub type Line = (String, u32, u32, u32, u32, u32, u32);

pub fn cli_rankings(station: &StationProcess, what: &str, date: &str) -> Vec<Line> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", station.dir.path().to_str().unwrap()])
        .args(["report", what, "--date", date, "--top", "100000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let n: Vec<u32> = t.iter().take(6).filter_map(|x| x.parse().ok()).collect();
            (n.len() == 6 && t.len() > 6)
                .then(|| (t[6].to_string(), n[0], n[1], n[2], n[3], n[4], n[5]))
        })
        .collect()
}

pub fn page_rankings(html: &str) -> Vec<Line> {
    let cell = |row: &str, class: &str| -> u32 {
        let key = format!("class=\"{class}\">");
        let at = row.find(&key).unwrap() + key.len();
        row[at..row[at..].find('<').unwrap() + at].parse().unwrap()
    };
    html.split("<tr data-shop=\"")
        .skip(1)
        .map(|row| {
            let code = row[..row.find('"').unwrap()].to_string();
            (
                code,
                cell(row, "rank"),
                cell(row, "score"),
                cell(row, "inspections"),
                cell(row, "reports"),
                cell(row, "overdue"),
                cell(row, "late"),
            )
        })
        .collect()
}

/// An officer's report of `category` at `shop` (source 巡查发现), now.
#[allow(dead_code)] // not every test binary reports
pub fn report_at(
    store: &mut Store,
    shop: &menqian_core::Shop,
    category: &str,
    description: &str,
) -> String {
    store
        .report_case(menqian_core::NewCase {
            source: menqian_core::CaseSource::Inspection,
            category: category.into(),
            location: shop.zone.centroid(),
            shop_id: Some(shop.id()),
            photos: vec![],
            description: description.into(),
            deadline: None,
            reported_by: "officer-1".into(),
            reported_at: chrono::Utc::now(),
            subdistrict: None,
            lane: None,
        })
        .unwrap()
}
