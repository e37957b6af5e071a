//! `menqian-sync-server`: run the station server, or administer its accounts.
//!
//!     menqian-sync-server --demo                      # serve 127.0.0.1:8080 with the demo street
//!     menqian-sync-server --data DIR --listen ADDR    # serve a real district
//!     menqian-sync-server user add --id officer-1 --name 王伟 --role officer --area subdistrict:右安门街道
//!     menqian-sync-server user area --id steward-1 --area lanes:富义街东一巷,富义街西一巷
//!     menqian-sync-server device code --user officer-1
//!     menqian-sync-server device revoke --device dev-…

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use clap::{Parser, Subcommand};
use menqian_core::{Area, Role};
use menqian_sync_server::store::postgres::PgSyncStore;
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

#[derive(Parser, Debug)]
#[command(
    name = "menqian-sync-server",
    about = "Menqian station sync server",
    version
)]
struct Cli {
    /// Data directory (station.sqlite and accounts.sqlite; with --database,
    /// this instance's read model and photos).
    #[arg(long, global = true, default_value = "menqian-data/server")]
    data: PathBuf,
    /// Keep the accounts, documents and change feed in PostgreSQL
    /// (postgres://user@host:port/db) instead of the data directory's SQLite
    /// files: a city's station, run as several instances against one
    /// database. Also read from MENQIAN_DATABASE.
    #[arg(long, global = true, env = "MENQIAN_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Keep photos in S3-compatible object storage as well
    /// (s3://bucket/prefix), shared by a city's instances; the data
    /// directory's photos become a cache. Credentials and endpoint from the
    /// AWS_* environment variables. Also read from MENQIAN_BLOBS.
    #[arg(long, env = "MENQIAN_BLOBS")]
    blobs: Option<String>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Load the demo district (富义街, checklists, categories) and demo users, and
    /// print an enrollment code.
    #[arg(long)]
    demo: bool,
    /// The district's signboard hosts accepted in QR codes (repeatable).
    #[arg(long = "qr-host", global = true, default_value = menqian_fixtures::DEMO_HOST)]
    qr_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA certificate (PEM) phones pin at enrollment: served at /v1/tls/ca,
    /// and its SHA-256 goes into every enrollment link. Use it when the
    /// station's certificate is not from a public CA.
    #[arg(long, global = true)]
    tls_ca: Option<PathBuf>,
    /// The address phones reach the station at, for enrollment links, e.g.
    /// https://mq.example.cn:8443 (default: http:// or https:// and --listen).
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// Post each reminder to a shop (from a camera's or sensor's alert) as
    /// JSON to this URL, besides the log.
    #[arg(long)]
    alert_webhook: Option<String>,
    /// The bearer token Prometheus sends for /metrics (without it /metrics
    /// answers only loopback and private addresses). Also read from
    /// MENQIAN_METRICS_TOKEN, to keep it out of the process list.
    #[arg(long, env = "MENQIAN_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// The log's format: `text` (for people) or `json` (one object a line,
    /// for a log collector).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The station's limits (docs/protocol.md, "Limits"; README, "Behind a
/// reverse proxy").
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Seconds between district sweeps (escalations, duplicate folding).
    #[arg(long, default_value_t = 60)]
    sweep_every_secs: u64,
    /// Connections open at once; more are closed when accepted.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds to send request headers, and the longest idle keep-alive.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds to send a request body.
    #[arg(long, default_value_t = 60)]
    body_timeout: u64,
    /// Requests one device may have in flight.
    #[arg(long, default_value_t = 4)]
    device_in_flight: u32,
    /// Requests per second one device may make on average (bursts of 5×).
    #[arg(long, default_value_t = 20.0)]
    device_rate: f64,
    /// Enrollment attempts per minute from one client address (bursts of 2×).
    #[arg(long, default_value_t = 5.0)]
    enroll_per_address: f64,
    /// Enrollment attempts per minute for the whole station.
    #[arg(long, default_value_t = 60.0)]
    enroll_per_minute: f64,
    /// Unfinished uploads one device may keep, in MiB.
    #[arg(long, default_value_t = 64)]
    uploads_in_progress_mib: u64,
    /// Hours before an unfinished upload nobody continues is deleted.
    #[arg(long, default_value_t = 72.0)]
    partial_upload_hours: f64,
    /// Uploads are refused (507) while the data directory has less free disk, in MiB.
    #[arg(long, default_value_t = 1024)]
    min_free_disk_mib: u64,
    /// Behind a reverse proxy: the header it puts the client's address in
    /// (e.g. X-Real-IP), for per-address limits. Never set this without a
    /// proxy that overwrites the header: clients could choose their address.
    #[arg(long)]
    client_address_header: Option<String>,
    /// Mark console cookies `Secure` although the station serves plain HTTP:
    /// for a reverse proxy that terminates HTTPS (with `--tls-cert` they
    /// always are).
    #[arg(long)]
    secure_cookies: bool,
}

impl LimitArgs {
    fn apply(&self, options: &mut menqian_sync_server::Options) -> Result<(), String> {
        options.sweep_every = std::time::Duration::from_secs(self.sweep_every_secs.max(1));
        let c = &mut options.connections;
        c.max_connections = self.max_connections.max(1);
        c.header_timeout = std::time::Duration::from_secs(self.header_timeout.max(1));
        c.handshake_timeout = c.header_timeout;
        let h = &mut options.http;
        h.body_timeout = std::time::Duration::from_secs(self.body_timeout.max(1));
        h.uploads_in_progress = self.uploads_in_progress_mib.saturating_mul(1 << 20);
        h.min_free_disk = self.min_free_disk_mib.saturating_mul(1 << 20);
        h.secure_cookies = self.secure_cookies;
        h.client_address_header = match &self.client_address_header {
            Some(name) => Some(
                name.parse()
                    .map_err(|_| format!("--client-address-header {name:?}: not a header name"))?,
            ),
            None => None,
        };
        let s = &mut options.shares;
        s.device_in_flight = self.device_in_flight.max(1);
        s.device_rate = self.device_rate.max(0.1);
        s.device_burst = s.device_rate * 5.0;
        s.enroll_per_address_per_minute = self.enroll_per_address.max(0.1);
        s.enroll_address_burst = (s.enroll_per_address_per_minute * 2.0).max(1.0);
        s.enroll_per_minute = self.enroll_per_minute.max(0.1);
        s.enroll_burst = s.enroll_per_minute.max(1.0);
        if !(self.partial_upload_hours.is_finite() && self.partial_upload_hours > 0.0) {
            return Err("--partial-upload-hours: a positive number".into());
        }
        options.partial_upload_ttl =
            std::time::Duration::from_secs_f64(self.partial_upload_hours * 3600.0);
        Ok(())
    }
}

/// Text from users and devices, safe for a terminal: control characters
/// (escape sequences, line breaks) are shown escaped, never acted on.
fn shown(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage devices.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Print rankings, the rectification ledger, stewards' points, a lane chief's week.
    Report {
        #[command(subcommand)]
        what: ReportKind,
    },
    /// Show or publish the district's rules (deadlines, departments, scoring).
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Run the district sweep once now (escalate overdue items, fold duplicates).
    Sweep,
    /// Print signboards (公示牌) as PDF: a shop's, a street's, a
    /// subdistrict's or the whole district's; or the lanes' boards.
    Signboards {
        /// One shop, by its code.
        #[arg(long, conflicts_with_all = ["street", "subdistrict"])]
        shop: Option<String>,
        /// One street's shops (with --subdistrict: the street within it).
        #[arg(long)]
        street: Option<String>,
        #[arg(long)]
        subdistrict: Option<String>,
        /// Lane boards (街巷长公示牌) instead of shops' boards.
        #[arg(long, conflicts_with_all = ["shop", "street"])]
        lanes: bool,
        /// board (300 × 200 mm pages) or a4 (two boards to a sheet, cut marks).
        #[arg(long, default_value = "board", value_parser = parse_layout)]
        layout: menqian_sync_server::signboards::Layout,
        /// The checklist whose duties the boards list (default the first).
        #[arg(long)]
        checklist: Option<String>,
        /// A CJK font file (TTF, OTF or a collection) and its index in a
        /// collection; default Noto Sans CJK SC from fonts-noto-cjk.
        #[arg(long)]
        font: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        font_index: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Other city systems reading and posting through Open311 GeoReport v2.
    Open311 {
        #[command(subcommand)]
        action: Open311Action,
    },
    /// Cameras and sensors that post alerts.
    Alerts {
        #[command(subcommand)]
        action: AlertAction,
    },
    /// The shop registry: import the district's ledger, export it.
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// Move this data directory's station (accounts, documents, feed,
    /// photos) into an empty PostgreSQL database, to run it with --database.
    /// Stop the station first. Phones keep their tokens and cursors. With
    /// --blobs the photos go into the object storage too.
    Migrate {
        /// The database: postgres://user@host:port/db.
        #[arg(long)]
        to: String,
    },
    /// Certificates for a station that serves HTTPS itself.
    Tls {
        #[command(subcommand)]
        action: TlsAction,
    },
}

#[derive(Subcommand, Debug)]
enum Open311Action {
    /// Issue an API key to a city system (printed once; only its hash is kept).
    AddKey {
        /// Who it is for, e.g. 12345热线平台.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum AlertAction {
    /// Register a camera or sensor; prints the secret its alerts are signed
    /// with (docs/protocol.md, "Alerts").
    AddSource {
        #[arg(long)]
        id: String,
        /// camera or sensor.
        #[arg(long, default_value = "camera")]
        kind: String,
        /// The shop it watches, by code.
        #[arg(long)]
        shop: Option<String>,
        /// Where it stands (WGS-84 `lat,lon`), when it watches no one shop:
        /// its alerts go to the nearest shop (or to the place they name).
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RegistryAction {
    /// Import the district's ledger (台账): XLSX, XLS or CSV (UTF-8 or GBK).
    /// Every problem is listed by row and column first; then all of it is
    /// written in one transaction, or nothing.
    Import {
        file: PathBuf,
        /// Check and show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The coordinates' system: wgs84 (GPS), gcj02 (AMap, Tencent) or
        /// bd09 (Baidu).
        #[arg(long, default_value = "wgs84", value_parser = parse_datum)]
        coords: menqian_core::onboard::Datum,
        /// A JSON file naming columns the importer does not know, e.g.
        /// {"门店招牌": "name", "备注": "ignore"}.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// A CSV's character set: auto, utf-8 or gbk.
        #[arg(long, default_value = "auto", value_parser = parse_charset)]
        encoding: menqian_sync_server::registry::Charset,
        /// The workbook's sheet (default the first).
        #[arg(long)]
        sheet: Option<String>,
        /// The district's 6-digit administrative division code, for new
        /// codes when the registry is empty (e.g. 110106).
        #[arg(long)]
        district_code: Option<u32>,
        /// The estimated zone's depth toward the street and width along it (m).
        #[arg(long, default_value_t = 5.0)]
        zone_depth: f64,
        #[arg(long, default_value_t = 8.0)]
        zone_width: f64,
    },
    /// Write the registry to XLSX with the codes filled in (the columns the
    /// import reads back).
    Export {
        #[arg(long)]
        out: PathBuf,
        /// The coordinates' system to write.
        #[arg(long, default_value = "wgs84", value_parser = parse_datum)]
        coords: menqian_core::onboard::Datum,
    },
}

fn parse_layout(s: &str) -> Result<menqian_sync_server::signboards::Layout, String> {
    menqian_sync_server::signboards::Layout::parse(s).ok_or_else(|| "board or a4".to_string())
}

fn parse_datum(s: &str) -> Result<menqian_core::onboard::Datum, String> {
    menqian_core::onboard::Datum::parse(s).ok_or_else(|| "wgs84, gcj02 or bd09".to_string())
}

fn parse_charset(s: &str) -> Result<menqian_sync_server::registry::Charset, String> {
    menqian_sync_server::registry::Charset::parse(s).ok_or_else(|| "auto, utf-8 or gbk".to_string())
}

#[derive(Subcommand, Debug)]
enum TlsAction {
    /// Make a private CA and a station certificate signed by it in DIR
    /// (ca.pem, ca-key.pem, station.pem, station-key.pem), for a district
    /// without its own CA; prints the fingerprint phones pin.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address phones use to reach the station (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// The district's name, for the CA's name.
        #[arg(long, default_value = "门前")]
        district: String,
    },
    /// Print the SHA-256 fingerprint of a CA certificate (PEM): the pin.
    Fingerprint { ca: PathBuf },
}

#[derive(Subcommand, Debug)]
enum ReportKind {
    /// The week's scores per street, 流动红旗 and 黑榜.
    Week {
        /// Any day of the week (Beijing), e.g. 2026-11-16; default this week.
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        #[arg(long)]
        subdistrict: Option<String>,
        /// Shops shown per street.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The month's scores per street and 黑榜.
    Month {
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        #[arg(long)]
        subdistrict: Option<String>,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Open rectification items (整改台账), soonest deadline first.
    Ledger {
        #[arg(long)]
        subdistrict: Option<String>,
    },
    /// Stewards' points (积分) for a week.
    Stewards {
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// A lane chief's week: lanes patrolled, problems found and handled.
    LaneChief {
        #[arg(long)]
        user: String,
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand, Debug)]
enum RulesAction {
    /// Print the rules in force as JSON.
    Show,
    /// Publish rules from a JSON file (as printed by `rules show`).
    Publish { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Create a user with a role and an area.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// officer, lane_chief, steward, supervisor or admin.
        #[arg(long)]
        role: String,
        /// `district`, `subdistrict:<name>` or `lanes:<lane>,<lane>`, e.g.
        /// subdistrict:右安门街道.
        #[arg(long, value_parser = parse_area)]
        area: Area,
    },
    /// Move a user to another area; their devices reload at the next sync.
    Area {
        #[arg(long)]
        id: String,
        #[arg(long, value_parser = parse_area)]
        area: Area,
    },
    /// List users.
    List,
    /// Residents' requests to become a lane's steward (from the lane's page).
    StewardRequests,
    /// Approve a steward request: creates the steward for the lane and
    /// prints an enrollment code for their phone (valid 72 hours).
    ApproveSteward {
        #[arg(long)]
        request: i64,
        /// The new user's id, e.g. steward-12.
        #[arg(long)]
        id: String,
    },
    /// Set a user's console password, read from the first line of standard
    /// input (supervisors, lane chiefs and administrators only); their open
    /// console sessions end.
    Password {
        #[arg(long)]
        id: String,
        /// Remove the password instead: the user can no longer sign in.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DeviceAction {
    /// Issue a one-time enrollment code for a user's new device.
    Code {
        #[arg(long)]
        user: String,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// List enrolled devices.
    List,
    /// Revoke a device's token: its next request is refused.
    Revoke {
        #[arg(long)]
        device: String,
    },
}

fn parse_area(text: &str) -> Result<Area, String> {
    Area::parse(text)
}

/// Frees memory back to the system soon after a large request is done.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the station logs unless `RUST_LOG` says otherwise. Automerge opens
/// an info-level span for every column of every change it parses (its
/// `#[instrument]` default): 4 % of the station's time under a push load,
/// spent formatting spans nobody reads.
const DEFAULT_LOGS: &str = "info,automerge=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOGS.into()),
        );
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How phones reach this station: its address, and HTTPS with a pinned CA.
struct Station {
    /// None when no address phones can use is known (no --public-url, and
    /// --listen on every interface, or a command that does not listen).
    public_url: Option<String>,
    tls: Option<menqian_sync_server::TlsFiles>,
    ca: Option<menqian_sync_server::StationCa>,
}

/// The options that say how phones reach the station.
struct StationArgs {
    listen: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    public_url: Option<String>,
}

/// `listening`: the address this process listens on may stand in for
/// --public-url (the station itself), unless it is every interface.
fn cli_station(args: &StationArgs, listening: bool) -> Result<Station, Box<dyn std::error::Error>> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(menqian_sync_server::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let ca = args
        .tls_ca
        .as_deref()
        .map(menqian_sync_server::StationCa::read)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let everywhere = args
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified());
    let public_url = args
        .public_url
        .clone()
        .or_else(|| (listening && !everywhere).then(|| format!("{scheme}://{}", args.listen)));
    if let (Some(files), Some(ca)) = (&tls, &ca) {
        match public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        {
            Some(host) => {
                if let Some(warning) = menqian_sync_server::tls::check_chain(files, ca, &host)? {
                    tracing::error!("{warning}");
                }
            }
            None => tracing::warn!(
                "without --public-url the station certificate's name cannot be checked against --tls-ca"
            ),
        }
    }
    Ok(Station {
        public_url,
        tls,
        ca,
    })
}

/// The link (and QR code) a phone enrolls with, or how to get one.
fn enrollment_link(station: &Station, code: &str) -> Result<String, Box<dyn std::error::Error>> {
    let Some(url) = &station.public_url else {
        return Ok(
            "(pass --public-url https://…, and --tls-ca if phones pin the station's CA, \
             to print the enrollment link)"
                .into(),
        );
    };
    Ok(menqian_sync_server::enrollment_link(
        url,
        code,
        station.ca.as_ref(),
    )?)
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    menqian_sync_server::init_crypto();
    if let Some(Command::Tls { action }) = &cli.command {
        return tls(action);
    }
    if let Some(Command::Migrate { to }) = &cli.command {
        if cli.database.is_some() {
            return Err("migrate moves the SQLite station in --data: leave out --database".into());
        }
        let moved = menqian_sync_server::store::postgres::migrate::to_postgres(
            &cli.data,
            to,
            cli.qr_hosts.clone(),
            &mut |n| eprint!("\r迁移变更 {n}"),
        )?;
        eprintln!();
        if let Some(objects) = &cli.blobs {
            // The photos go to the city's object storage too.
            let objects = menqian_sync_server::objects::ObjectBlobs::open(objects)?;
            let store = menqian_sync_server::store::postgres::PgSyncStore::open(
                to,
                &cli.data,
                cli.qr_hosts.clone(),
            )?;
            let cache = store.photos().clone();
            drop(store);
            let stored = tokio::runtime::Runtime::new()?.block_on(objects.keep_all(&cache))?;
            println!(
                "{stored} photo files stored in {}",
                cli.blobs.as_deref().unwrap_or("")
            );
        }
        for (table, rows) in &moved.rows {
            println!("{table}: {rows} rows");
        }
        println!(
            "{} changes (feed head {}), {} photo files. Serve it with: --database {to} --data {}",
            moved.changes,
            moved.head,
            moved.photos,
            cli.data.display()
        );
        return Ok(());
    }
    let station_args = StationArgs {
        listen: cli.listen.clone(),
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        tls_ca: cli.tls_ca.clone(),
        public_url: cli.public_url.clone(),
    };
    let mut store: Box<dyn SyncStore> = match &cli.database {
        Some(url) => Box::new(PgSyncStore::open(url, &cli.data, cli.qr_hosts.clone())?),
        None => Box::new(SqliteSyncStore::open(&cli.data, cli.qr_hosts.clone())?),
    };
    match cli.command {
        Some(Command::User {
            action:
                UserAction::Add {
                    id,
                    name,
                    role,
                    area,
                },
        }) => {
            let role = Role::parse(&role)
                .ok_or("role must be officer, lane_chief, steward, supervisor or admin")?;
            store
                .accounts()
                .add_user(&User::new(&id, &name, role, area))?;
            println!("added user {id} ({})", role.label_zh());
        }
        Some(Command::User {
            action: UserAction::Area { id, area },
        }) => {
            store.accounts().set_area(&id, &area)?;
            println!("{id} now works in {area}; their devices reload at the next sync");
        }
        Some(Command::User {
            action: UserAction::Password { id, clear },
        }) => {
            let (user, _) = store.accounts().password_hash(&id)?;
            if clear {
                store.accounts().set_password_hash(&id, None)?;
                println!("{id} can no longer sign in to the console");
            } else {
                if !menqian_sync_server::console::may_sign_in(user.role) {
                    return Err(format!(
                        "{id} is {}: officers and stewards cannot sign in to the console",
                        user.role.label_zh()
                    )
                    .into());
                }
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let password = line.trim_end_matches(['\n', '\r']);
                let phc = menqian_sync_server::console::password::hash(password)?;
                store.accounts().set_password_hash(&id, Some(&phc))?;
                println!("{id} may sign in to the console with the new password");
            }
        }
        Some(Command::User {
            action: UserAction::List,
        }) => {
            for u in store.accounts().users()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    shown(&u.id),
                    u.role.as_str(),
                    shown(&u.name),
                    shown(&u.area.to_string())
                );
            }
        }
        Some(Command::User {
            action: UserAction::StewardRequests,
        }) => {
            for r in store.accounts_read().steward_requests()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.id,
                    shown(&r.lane),
                    shown(&r.name),
                    shown(&r.phone),
                    menqian_sync_server::console::beijing_time(r.at),
                    r.user_id.as_deref().map_or("待审核".to_string(), shown)
                );
            }
        }
        Some(Command::User {
            action: UserAction::ApproveSteward { request, id },
        }) => {
            let user = store.accounts().approve_steward(request, &id)?;
            let code =
                store
                    .accounts()
                    .issue_enrollment(&user.id, Utc::now(), Duration::hours(72))?;
            println!("{} is now the steward of {}", user.id, user.area);
            println!("{code}");
            println!(
                "{}",
                enrollment_link(&cli_station(&station_args, false)?, &code)?
            );
        }
        Some(Command::Device {
            action: DeviceAction::Code { user, hours },
        }) => {
            let code =
                store
                    .accounts()
                    .issue_enrollment(&user, Utc::now(), Duration::hours(hours))?;
            println!("{code}");
            println!(
                "{}",
                enrollment_link(&cli_station(&station_args, false)?, &code)?
            );
        }
        Some(Command::Device {
            action: DeviceAction::List,
        }) => {
            for d in store.accounts().devices()? {
                let state = if d.revoked { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{state}",
                    shown(&d.id),
                    shown(&d.user_id),
                    shown(&d.name)
                );
            }
        }
        Some(Command::Device {
            action: DeviceAction::Revoke { device },
        }) => {
            store.accounts().revoke_device(&device, Utc::now())?;
            println!("revoked {device}");
        }
        Some(Command::Report { what }) => report(&mut *store, what)?,
        Some(Command::Rules {
            action: RulesAction::Show,
        }) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&store.documents().rules()?)?
            );
        }
        Some(Command::Rules {
            action: RulesAction::Publish { file },
        }) => {
            let text = std::fs::read_to_string(&file)?;
            let rules: menqian_core::DistrictRules = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not rules JSON: {e}", file.display()))?;
            store.documents().publish_rules(rules)?;
            store.publish()?;
            println!("published the district's rules; devices receive them at their next sync");
        }
        Some(Command::Sweep) => {
            if !store.lead_sweep()? {
                return Err("another instance is sweeping the district now".into());
            }
            let r = store
                .documents()
                .sweep(Utc::now(), menqian_sync_server::SYSTEM_USER)?;
            store.publish()?;
            println!(
                "escalated {} overdue item(s), folded {} duplicate report(s)",
                r.escalated.len(),
                r.folded.len()
            );
        }
        Some(Command::Tls { action }) => tls(&action)?,
        Some(Command::Migrate { .. }) => {}
        Some(Command::Signboards {
            shop,
            street,
            subdistrict,
            lanes,
            layout,
            checklist,
            font,
            font_index,
            out,
        }) => {
            use menqian_sync_server::signboards;
            let stop = interrupted()?;
            let font = signboards::load_font(font.as_deref().map(|p| (p, font_index)))?;
            let host = cli
                .qr_hosts
                .first()
                .map_or(menqian_fixtures::DEMO_HOST, String::as_str)
                .to_string();
            let users = store.accounts().users()?;
            let docs = store.documents();
            let selection = signboards::Selection {
                shop,
                street,
                subdistrict,
                lanes,
                checklist,
            };
            let written = signboards::print(
                docs,
                &users,
                &selection,
                signboards::Press {
                    font: &font,
                    layout,
                    host: &host,
                },
                &out,
                progress_line("排版", stop),
            )?;
            println!(
                "{} 块公示牌已写入 {}（{:.1} MB，每块 {:.1} KB）",
                written.0,
                out.display(),
                written.1 as f64 / 1e6,
                written.1 as f64 / 1e3 / written.0.max(1) as f64
            );
        }
        Some(Command::Open311 {
            action: Open311Action::AddKey { name },
        }) => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 50 {
                return Err("--name is 1–50 characters".into());
            }
            println!("{}", store.accounts().add_open311_key(name, Utc::now())?);
        }
        Some(Command::Alerts {
            action: AlertAction::AddSource { id, kind, shop, at },
        }) => {
            if !matches!(kind.as_str(), "camera" | "sensor") {
                return Err("--kind is camera or sensor".into());
            }
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err("--id: letters, digits, - _ . (at most 64)".into());
            }
            let shop_id = match shop {
                Some(code) => {
                    let shop = store.documents().shop_by_code(&code)?;
                    Some(shop.id())
                }
                None => None,
            };
            let location = match at {
                Some(text) => {
                    let (lat, lon) = text
                        .split_once(',')
                        .and_then(|(a, b)| {
                            Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                        })
                        .ok_or("--at is lat,lon")?;
                    let p = menqian_core::GeoPoint::new(lat, lon);
                    p.validate("at")?;
                    Some(p)
                }
                None => None,
            };
            let secret = store.accounts().add_alert_source(
                &id,
                &kind,
                shop_id.as_deref(),
                location,
                Utc::now(),
            )?;
            println!("{secret}");
        }
        Some(Command::Registry { action }) => {
            registry(store.documents(), action, &cli.qr_hosts)?;
            store.publish()?;
        }
        None => {
            let station = cli_station(&station_args, true)?;
            if cli.demo {
                load_demo(&mut *store, &station)?;
                store.publish()?;
            }
            let mut options = menqian_sync_server::Options {
                tls: station.tls.clone(),
                ca: station.ca.clone(),
                public_url: station.public_url.clone(),
                alert_webhook: cli.alert_webhook.clone(),
                metrics_token: cli.metrics_token.clone(),
                objects: match &cli.blobs {
                    Some(url) => Some(menqian_sync_server::objects::ObjectBlobs::open(url)?),
                    None => None,
                },
                ..Default::default()
            };
            cli.limits.apply(&mut options)?;
            let (before, after) = menqian_sync_server::net::raise_open_files();
            tracing::info!(
                soft_limit_before = before,
                soft_limit = after,
                max_connections = options.connections.max_connections,
                "open files"
            );
            if after < options.connections.max_connections as u64 + 64 {
                tracing::warn!(
                    "the open-file limit ({after}) is below --max-connections + 64: raise it (ulimit -n) or lower --max-connections"
                );
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
                tracing::info!(address = %listener.local_addr()?, data = %cli.data.display(), https = options.tls.is_some(), "serving");
                menqian_sync_server::serve_with(listener, store, menqian_sync_server::shutdown_signal(), options).await
            })?;
        }
    }
    Ok(())
}

fn tls(action: &TlsAction) -> Result<(), Box<dyn std::error::Error>> {
    match action {
        TlsAction::Init {
            dir,
            hosts,
            district,
        } => {
            let made = menqian_sync_server::tls::make_private_ca(dir, hosts, district)?;
            println!(
                "made {ca} (CA), {cert} and {key} (the station's, for {hosts})\n\
                 CA SHA-256: {pin}\n\
                 Serve with: --tls-cert {cert} --tls-key {key} --tls-ca {ca}\n\
                 Keep {dir}/ca-key.pem offline: it signs the station's next certificate.",
                ca = made.ca_cert.display(),
                cert = made.station.cert.display(),
                key = made.station.key.display(),
                hosts = hosts.join(", "),
                pin = menqian_core::hex::encode(&made.ca.sha256()),
                dir = dir.display(),
            );
        }
        TlsAction::Fingerprint { ca } => {
            let ca = menqian_sync_server::StationCa::read(ca)?;
            println!("{}", menqian_core::hex::encode(&ca.sha256()));
        }
    }
    Ok(())
}

/// Noon (Beijing) of `date`, or now.
fn day(date: Option<chrono::NaiveDate>) -> chrono::DateTime<Utc> {
    date.map_or_else(Utc::now, |d| {
        menqian_core::model::period::beijing_midnight(d) + Duration::hours(12)
    })
}

fn report(store: &mut dyn SyncStore, what: ReportKind) -> Result<(), Box<dyn std::error::Error>> {
    use menqian_core::PeriodKind;
    use menqian_sync_server::report as text;
    let now = Utc::now();
    let out = match &what {
        ReportKind::Week {
            date,
            subdistrict,
            top,
        }
        | ReportKind::Month {
            date,
            subdistrict,
            top,
        } => {
            let kind = if matches!(what, ReportKind::Week { .. }) {
                PeriodKind::Week
            } else {
                PeriodKind::Month
            };
            text::scoreboard(
                &store
                    .documents()
                    .scoreboard(kind, day(*date), subdistrict.as_deref(), now)?,
                *top,
            )
        }
        ReportKind::Ledger { subdistrict } => text::ledger(
            &store
                .documents()
                .open_rectifications(subdistrict.as_deref(), now)?,
        ),
        ReportKind::Stewards { date } => {
            let at = day(*date);
            text::stewards(
                &menqian_core::Period::week_of(at).label(),
                &store.documents().steward_points(PeriodKind::Week, at)?,
            )
        }
        ReportKind::LaneChief { user, date } => {
            let u = store
                .accounts()
                .users()?
                .into_iter()
                .find(|u| &u.id == user)
                .ok_or_else(|| format!("no user {user}"))?;
            let Area::Lanes(lanes) = &u.area else {
                return Err(format!("{user}'s area is {}, not lanes", u.area).into());
            };
            text::lane_chief(&store.documents().lane_chief_week(user, lanes, day(*date))?)
        }
    };
    print!("{out}");
    Ok(())
}

/// The demo's console passwords (a demo on a laptop, not a real station).
const DEMO_PASSWORDS: [(&str, &str); 3] = [
    ("supervisor-1", "menqian-demo-supervisor"),
    ("admin", "menqian-demo-admin"),
    (menqian_fixtures::LANE_CHIEF, "menqian-demo-chief"),
];

/// The demo district and users; running it again changes nothing.
fn load_demo(
    store: &mut dyn SyncStore,
    station: &Station,
) -> Result<(), Box<dyn std::error::Error>> {
    let docs = store.documents();
    docs.import_templates(menqian_fixtures::templates()?)?;
    docs.import_categories(menqian_fixtures::categories()?)?;
    let street = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS)?;
    let report = docs.import_registry(street.clone())?;
    // Four weeks of district life, once, so rankings, the ledger and plans have
    // something to show: inspections (failures of the responsibility letter,
    // which needs no photo), re-checks, citizens' and stewards' reports.
    let mut fresh = true;
    for shop in &street {
        fresh &= docs.inspections_of_shop(&shop.id())?.is_empty();
    }
    if fresh {
        let now = Utc::now();
        let photo = menqian_fixtures::demo_photo(docs, now - Duration::days(28))?;
        let stats = menqian_fixtures::history(docs, &street, 28, now, Some(&photo))?;
        let swept = docs.sweep(now, menqian_sync_server::SYSTEM_USER)?;
        println!(
            "demo history: {} inspections ({} failed items, {} escalated), {} reports, {} lane chief's patrols over 28 days",
            stats.inspections,
            stats.failed_items,
            swept.escalated.len(),
            stats.reports,
            stats.patrols
        );
    }
    let users = [
        ("admin", "区管理员", Role::Admin, Area::District),
        ("supervisor-1", "赵督导", Role::Supervisor, Area::District),
        (
            "officer-1",
            "王伟",
            Role::Officer,
            Area::Subdistrict(menqian_fixtures::SUBDISTRICTS[0].into()),
        ),
        (
            "officer-2",
            "李娜",
            Role::Officer,
            Area::Subdistrict(menqian_fixtures::SUBDISTRICTS[0].into()),
        ),
        (
            "steward-1",
            "张秀英",
            Role::Steward,
            Area::Lanes(vec![menqian_fixtures::DEMO_LANES[0].into()]),
        ),
        (
            menqian_fixtures::LANE_CHIEF,
            "刘街长",
            Role::LaneChief,
            Area::Lanes(vec![menqian_fixtures::DEMO_LANES[0].into()]),
        ),
    ];
    let existing: Vec<String> = store
        .accounts()
        .users()?
        .into_iter()
        .map(|u| u.id)
        .collect();
    for (id, name, role, area) in users {
        if !existing.iter().any(|e| e == id) {
            store
                .accounts()
                .add_user(&User::new(id, name, role, area))?;
        }
    }
    // Console passwords for the demo's supervisor and administrator, set once
    // (an administrator may change them); shown while they still hold.
    let mut console_logins = Vec::new();
    for (id, password) in DEMO_PASSWORDS {
        let (_, stored) = store.accounts().password_hash(id)?;
        if stored.is_none() {
            let phc = menqian_sync_server::console::password::hash(password)?;
            store.accounts().set_password_hash(id, Some(&phc))?;
            console_logins.push(format!("{id} / {password}"));
        } else if menqian_sync_server::console::password::verify(stored.as_deref(), password) {
            console_logins.push(format!("{id} / {password}"));
        }
    }
    let code = store
        .accounts()
        .issue_enrollment("officer-1", Utc::now(), Duration::hours(24))?;
    let link = enrollment_link(station, &code)?;
    let url = station.public_url.as_deref().unwrap_or("http://<station>");
    println!(
        "demo district loaded: {} shops on 富义街 ({} new), checklists 一核实五必查 and 门前五包, 14 categories\n\
         demo users: admin, supervisor-1, officer-1, officer-2, steward-1, chief-1 (lane chief)\n\n\
         Enroll a device as officer-1 with this one-time code (valid 24 h): {code}\n\
         \x20 enrollment link (the phone app scans it as a QR code): {link}\n\
         \x20 curl -s -X POST {url}/v1/enroll -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"code\":\"{code}\",\"actor\":\"<the device store's actor id>\",\"device_name\":\"demo phone\"}}'\n\
         More codes: cargo run --release -p menqian-sync-server -- device code --user officer-2\n",
        report.created + report.updated + report.unchanged,
        report.created
    );
    if !console_logins.is_empty() {
        println!(
            "Console: open {url}/console and sign in as {}\n",
            console_logins.join(" or ")
        );
    }
    Ok(())
}

/// Set by Ctrl-C while a long command runs: it stops and writes nothing.
fn interrupted() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, Box<dyn std::error::Error>>
{
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

/// A progress line on standard error (when it is a terminal); returns
/// `false` once Ctrl-C was pressed.
fn progress_line(
    what: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl FnMut(u64, u64) -> bool {
    use std::io::{IsTerminal as _, Write as _};
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width) as usize;
            eprint!(
                "\r{what} [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width as usize - filled.min(width as usize))
            );
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
        !stop.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn registry(
    docs: &mut menqian_core::Store,
    action: RegistryAction,
    qr_hosts: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    use menqian_core::onboard::LedgerOptions;
    use menqian_sync_server::registry as files;
    match action {
        RegistryAction::Import {
            file,
            dry_run,
            coords,
            mapping,
            encoding,
            sheet,
            district_code,
            zone_depth,
            zone_width,
        } => {
            if !(1.0..=50.0).contains(&zone_depth) || !(1.0..=100.0).contains(&zone_width) {
                return Err("--zone-depth is 1–50 m and --zone-width 1–100 m".into());
            }
            let stop = interrupted()?;
            let table = files::read_table(&file, sheet.as_deref(), encoding)?;
            let mut options =
                LedgerOptions::new(menqian_core::model::period::beijing_date(Utc::now()));
            options.datum = coords;
            options.district = district_code;
            options.zone_depth_m = zone_depth;
            options.zone_width_m = zone_width;
            if let Some(m) = mapping {
                options.mapping =
                    menqian_core::onboard::parse_mapping(&std::fs::read_to_string(&m)?)?;
            }
            let plan = docs.plan_ledger(&table.rows, &options)?;
            println!(
                "{}：读作 {}，表头在第 {} 行",
                file.display(),
                table.read_as,
                plan.header_row
            );
            let unused: Vec<&str> = plan
                .columns
                .iter()
                .filter(|(name, f)| f.is_none() && !name.is_empty())
                .map(|(name, _)| name.as_str())
                .collect();
            if !unused.is_empty() {
                println!("未使用的列：{}", unused.join("、"));
            }
            const SHOWN: usize = 200;
            for p in plan.problems.iter().take(SHOWN) {
                println!("{p}");
            }
            if plan.problems.len() > SHOWN {
                println!("……另有 {} 处", plan.problems.len() - SHOWN);
            }
            let refused = plan.refusals().count();
            println!(
                "{}新建 {} 家，更新 {} 家，无变化 {} 家，跳过重复 {} 行；错误 {refused} 处，已处理 {} 处",
                if dry_run || refused > 0 { "将" } else { "" },
                plan.created,
                plan.updated,
                plan.unchanged,
                plan.skipped,
                plan.warnings().count()
            );
            if refused > 0 {
                return Err(format!("有 {refused} 处错误，未导入任何商户；改正后重新导入").into());
            }
            if dry_run {
                println!("试运行：未写入");
                return Ok(());
            }
            match docs.import_ledger(&plan, progress_line("写入", stop)) {
                Ok(r) => println!(
                    "已导入：新建 {} 家，更新 {} 家，无变化 {} 家",
                    r.created, r.updated, r.unchanged
                ),
                Err(menqian_core::Error::Cancelled) => {
                    return Err("已取消：未写入任何商户".into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        RegistryAction::Export { out, coords } => {
            let shops = docs.all_shops()?;
            let host = qr_hosts
                .first()
                .map_or(menqian_fixtures::DEMO_HOST, String::as_str);
            let part = part_path(&out);
            files::export_xlsx(&shops, coords, host, &part)?;
            std::fs::rename(&part, &out)?;
            println!("{} 家商户已写入 {}", shops.len(), out.display());
        }
    }
    Ok(())
}

/// Where a file is written before it is renamed into place.
fn part_path(out: &std::path::Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}
