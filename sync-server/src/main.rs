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
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

#[derive(Parser, Debug)]
#[command(
    name = "menqian-sync-server",
    about = "Menqian station sync server",
    version
)]
struct Cli {
    /// Data directory (station.sqlite and accounts.sqlite).
    #[arg(long, global = true, default_value = "menqian-data/server")]
    data: PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Load the demo district (富义街, checklists, categories) and demo users, and
    /// print an enrollment code.
    #[arg(long)]
    demo: bool,
    /// The district's signboard hosts accepted in QR codes (repeatable).
    #[arg(long = "qr-host", default_value = menqian_fixtures::DEMO_HOST)]
    qr_hosts: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let mut store = SqliteSyncStore::open(&cli.data, cli.qr_hosts.clone())?;
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
            store.add_user(&User::new(&id, &name, role, area))?;
            println!("added user {id} ({})", role.label_zh());
        }
        Some(Command::User {
            action: UserAction::Area { id, area },
        }) => {
            store.set_area(&id, &area)?;
            println!("{id} now works in {area}; their devices reload at the next sync");
        }
        Some(Command::User {
            action: UserAction::List,
        }) => {
            for u in store.users()? {
                println!("{}\t{}\t{}\t{}", u.id, u.role.as_str(), u.name, u.area);
            }
        }
        Some(Command::Device {
            action: DeviceAction::Code { user, hours },
        }) => {
            let code = store.issue_enrollment(&user, Utc::now(), Duration::hours(hours))?;
            println!("{code}");
        }
        Some(Command::Device {
            action: DeviceAction::List,
        }) => {
            for d in store.devices()? {
                let state = if d.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}\t{state}", d.id, d.user_id, d.name);
            }
        }
        Some(Command::Device {
            action: DeviceAction::Revoke { device },
        }) => {
            store.revoke_device(&device, Utc::now())?;
            println!("revoked {device}");
        }
        None => {
            if cli.demo {
                load_demo(&mut store, &cli.listen)?;
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
                tracing::info!(address = %listener.local_addr()?, data = %cli.data.display(), "serving");
                menqian_sync_server::serve(listener, Box::new(store), menqian_sync_server::shutdown_signal()).await
            })?;
        }
    }
    Ok(())
}

/// The demo district and users; running it again changes nothing.
fn load_demo(store: &mut SqliteSyncStore, listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    let docs = store.documents();
    docs.import_templates(menqian_fixtures::templates()?)?;
    docs.import_categories(menqian_fixtures::categories()?)?;
    let report =
        docs.import_registry(menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS)?)?;
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
    ];
    let existing: Vec<String> = store.users()?.into_iter().map(|u| u.id).collect();
    for (id, name, role, area) in users {
        if !existing.iter().any(|e| e == id) {
            store.add_user(&User::new(id, name, role, area))?;
        }
    }
    let code = store.issue_enrollment("officer-1", Utc::now(), Duration::hours(24))?;
    println!(
        "demo district loaded: {} shops on 富义街 ({} new), checklists 一核实五必查 and 门前五包, 14 categories\n\
         demo users: admin, supervisor-1, officer-1, officer-2, steward-1\n\n\
         Enroll a device as officer-1 with this one-time code (valid 24 h): {code}\n\
         \x20 curl -s -X POST http://{listen}/v1/enroll -H 'content-type: application/json' \\\n\
         \x20      -d '{{\"code\":\"{code}\",\"actor\":\"<the device store's actor id>\",\"device_name\":\"demo phone\"}}'\n\
         More codes: cargo run --release -p menqian-sync-server -- device code --user officer-2\n",
        report.created + report.updated + report.unchanged,
        report.created
    );
    Ok(())
}
