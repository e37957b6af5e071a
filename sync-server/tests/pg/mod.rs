//! A private PostgreSQL cluster for one test: `initdb` in a temporary
//! directory, `pg_ctl start` on a free port of 127.0.0.1, stopped and removed
//! when the handle drops. Debian's `postgresql` package provides the binaries
//! (scripts/system-deps.sh installs it). As root the server runs as the
//! `postgres` user, which PostgreSQL requires.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Extra server settings.
    settings: String,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/system-deps.sh")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd.args(args).output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory for a cluster, the server's user's.
fn cluster_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    if is_root() {
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// A new cluster, started. `fsync` off: these tests check behaviour, not
    /// durability across a power cut.
    pub fn start() -> PgCluster {
        Self::start_with("-c fsync=off")
    }

    /// A cluster as a deployment runs it (every commit flushed to disk),
    /// with memory for its cache: for benchmarks.
    pub fn start_durable() -> PgCluster {
        Self::start_with("-c shared_buffers=1GB -c max_wal_size=4GB")
    }

    fn start_with(settings: &str) -> PgCluster {
        let bin = bin_dir();
        let dir = cluster_dir("menqian-pg");
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        );
        let cluster = PgCluster {
            dir,
            bin,
            port: free_port(),
            settings: settings.to_string(),
        };
        cluster.restart();
        cluster
    }

    /// A new, empty database in this cluster.
    pub fn database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(name)
    }

    /// The server's processes as they are now, the postmaster first. The
    /// backends it starts later are its children (a benchmark moves these
    /// into a cgroup, and the later ones are born in it).
    pub fn processes(&self) -> Vec<u32> {
        let pid_file =
            std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap();
        let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut all = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces, so after the ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                all.push(pid);
            }
        }
        all
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl PgCluster {
    /// Stops the server as a crash would (`pg_ctl stop -m immediate`).
    pub fn crash(&self) {
        let data = self.dir.path().join("data");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts the server (again after [`PgCluster::crash`]: it recovers
    /// from its write-ahead log).
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 {}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("log");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }
}

impl PgCluster {
    /// Runs a client program (`pg_dump`, …) against this cluster.
    fn client(&self, program: &str, args: &[&str]) {
        let port = self.port.to_string();
        let to = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
        run(&self.bin, program, &[&to[..], args].concat());
    }

    /// A logical backup of `db` (`pg_dump`, custom format), in the cluster's
    /// directory.
    pub fn dump(&self, db: &str) -> PathBuf {
        let file = self.dir.path().join(format!("{db}.dump"));
        self.client("pg_dump", &["-F", "c", "-f", file.to_str().unwrap(), db]);
        file
    }

    /// Replaces `db` with the backup `file`, closing its connections first,
    /// as an administrator restoring a backup would.
    pub fn restore(&self, db: &str, file: &Path) {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        // (Neither may run in a transaction: one statement at a time.)
        admin
            .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        self.client("pg_restore", &["-d", db, file.to_str().unwrap()]);
    }

    /// A streaming-replication standby of this cluster (`pg_basebackup -R`),
    /// started on a port of its own. With `synchronous`, the primary waits
    /// for the standby to have each commit on disk before it answers.
    pub fn standby(&self, synchronous: bool) -> PgCluster {
        let dir = cluster_dir("menqian-pg-standby");
        let data = dir.path().join("data");
        let conninfo = "application_name=standby";
        self.client(
            "pg_basebackup",
            &[
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                // Checkpoint now, not spread over minutes.
                "-c",
                "fast",
                "-d",
                conninfo,
            ],
        );
        let standby = PgCluster {
            dir,
            bin: self.bin.clone(),
            port: free_port(),
            settings: self.settings.clone(),
        };
        standby.restart();
        if synchronous {
            let mut admin =
                postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
            // (ALTER SYSTEM may not share a transaction: two statements.)
            admin
                .batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                .unwrap();
            admin.batch_execute("SELECT pg_reload_conf()").unwrap();
            // Until the standby is streaming, a commit would wait for it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let state: Option<String> = admin
                    .query_opt("SELECT sync_state FROM pg_stat_replication LIMIT 1", &[])
                    .unwrap()
                    .map(|r| r.get(0));
                if state.as_deref() == Some("sync") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the standby did not become synchronous"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        standby
    }

    /// Makes a standby the primary (`pg_ctl promote`), waiting until it
    /// takes writes.
    pub fn promote(&self) {
        let data = self.dir.path().join("data");
        run(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-w", "promote"],
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let data = data.to_string_lossy().into_owned();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
