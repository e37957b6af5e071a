//! HTTPS with a district's private CA, against real server processes on
//! 127.0.0.1: a phone enrolls through the link that pins the station's CA and
//! syncs; a station with another CA's certificate, an expired certificate, a
//! wrong pin or no pin at all are refused with `Error::Untrusted`, at once and
//! without losing the phone's work (ADR 0009).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use menqian_client::DeviceSync as _;
use menqian_client::{CancelToken, StationTrust, SyncClient};
use menqian_core::enrollment::parse_fingerprint;
use menqian_core::hex::encode as hex;
use menqian_core::{EnrollmentLink, Error, Store, StoreConfig};

const BIN: &str = env!("CARGO_BIN_EXE_menqian-sync-server");

/// A station process serving HTTPS with the demo district.
struct Station {
    child: Child,
    url: String,
    /// The enrollment link the demo printed for officer-1.
    link: String,
    data: PathBuf,
    tls: [PathBuf; 3],
}

impl Station {
    /// `tls`: the station's certificate, its key, and the CA to pin. The
    /// port is picked before the demo loads and bound only after: if another
    /// test took it meanwhile the station exits, and it is started again on
    /// another port.
    fn start(dir: &Path, tls: [PathBuf; 3]) -> Station {
        for _ in 0..5 {
            if let Some(station) = Self::try_start(dir, &tls) {
                return station;
            }
        }
        panic!("the station did not come up");
    }

    fn try_start(dir: &Path, tls: &[PathBuf; 3]) -> Option<Station> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join(format!("data-{port}"));
        let mut child = Command::new(BIN)
            .args(["--demo", "--data", data.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--tls-cert", tls[0].to_str().unwrap()])
            .args(["--tls-key", tls[1].to_str().unwrap()])
            .args(["--tls-ca", tls[2].to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut link = None;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some((_, l)) =
                line.split_once("enrollment link (the phone app scans it as a QR code): ")
            {
                link = Some(l.trim().to_string());
                break;
            }
        }
        // Keep reading: a station printing into a closed pipe would die.
        std::thread::spawn(move || lines.for_each(drop));
        let link = link.expect("the demo printed no enrollment link");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Station {
            child,
            url: format!("https://127.0.0.1:{port}"),
            link,
            data,
            tls: tls.clone(),
        })
    }

    /// A new code for `user`, and its link, from the station's CLI.
    fn code(&self, user: &str) -> (String, String) {
        let text = cli(&[
            "--data",
            self.data.to_str().unwrap(),
            "--public-url",
            &self.url,
            "--tls-ca",
            self.tls[2].to_str().unwrap(),
            "device",
            "code",
            "--user",
            user,
        ]);
        let mut lines = text.lines();
        let code = lines.next().unwrap().to_string();
        let link = lines.next().unwrap().to_string();
        (code, link)
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn phone(dir: &Path, name: &str) -> Store {
    Store::open(
        dir.join(format!("{name}.sqlite")),
        StoreConfig {
            qr_hosts: vec![menqian_fixtures::DEMO_HOST.into()],
            durable: false,
            ..StoreConfig::default()
        },
    )
    .unwrap()
}

fn untrusted<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Untrusted { reason }) => reason,
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

/// A CA made here (as a district's own would be), and files for a station
/// certificate it signs, valid or already expired.
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { params, key, cert }
    }

    /// `station.pem`, `station-key.pem` and `ca.pem` in `dir`.
    fn station(&self, dir: &Path, expired: bool) -> [PathBuf; 3] {
        std::fs::create_dir_all(dir).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(400);
            params.not_after = now - time::Duration::days(35);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let files = [
            dir.join("station.pem"),
            dir.join("station-key.pem"),
            dir.join("ca.pem"),
        ];
        std::fs::write(&files[0], cert.pem()).unwrap();
        std::fs::write(&files[1], key.serialize_pem()).unwrap();
        std::fs::write(&files[2], self.cert.pem()).unwrap();
        files
    }
}

#[test]
fn a_phone_trusts_the_ca_its_enrollment_link_pins_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // The district has no CA: the station makes one.
    let tls = dir.path().join("tls");
    let init = [
        "tls",
        "init",
        "--dir",
        tls.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--host",
        "localhost",
    ];
    let said = cli(&init);
    let pin = said
        .lines()
        .find_map(|l| l.strip_prefix("CA SHA-256: "))
        .expect("tls init printed no fingerprint")
        .to_string();
    // The pin is what openssl calls the CA's SHA-256 fingerprint, so a
    // district with its own CA computes it with the tool it knows.
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(tls.join("ca.pem"))
        .output()
        .unwrap();
    let openssl = String::from_utf8(openssl.stdout).unwrap();
    let (_, theirs) = openssl.trim().split_once('=').unwrap();
    assert_eq!(hex(&parse_fingerprint(theirs).unwrap()), pin);
    let ca_file = tls.join("ca.pem");
    let ours = cli(&["tls", "fingerprint", ca_file.to_str().unwrap()]);
    assert_eq!(ours.trim(), pin);
    // A second `tls init` would cut off every enrolled phone: refused, and
    // the CA stays as it was.
    let ca_pem = std::fs::read(tls.join("ca.pem")).unwrap();
    let again = Command::new(BIN).args(init).output().unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read(tls.join("ca.pem")).unwrap(), ca_pem);

    let station = Station::start(
        dir.path(),
        [
            tls.join("station.pem"),
            tls.join("station-key.pem"),
            tls.join("ca.pem"),
        ],
    );
    assert!(
        station.link.ends_with(&format!("&ca={pin}")),
        "{}",
        station.link
    );
    let link = EnrollmentLink::parse(&station.link).unwrap();
    assert_eq!(link.server_url, station.url);

    // Without the pin, a private CA is unknown: refused at once, typed.
    let (code, code_link) = station.code("officer-2");
    assert!(code_link.starts_with(&format!("{}/enroll?code={code}&ca={pin}", station.url)));
    let mut other = phone(dir.path(), "other");
    let plain = SyncClient::new(&station.url, None).unwrap();
    let started = Instant::now();
    let reason = untrusted(plain.enroll(&code, &other, "phone"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "retried a refused certificate"
    );
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    // A link whose pin is another CA's: refused before anything is sent, and
    // the phone still trusts what it trusted.
    let foreign = TestCa::new("another CA");
    let wrong = EnrollmentLink {
        ca_sha256: Some(sha256(foreign.cert.der())),
        ..EnrollmentLink::parse(&code_link).unwrap()
    };
    let reason = untrusted(other.enroll(&wrong, "phone"));
    assert!(reason.contains("does not match"), "{reason}");
    assert_eq!(other.station_trust().unwrap(), StationTrust::PublicRoots);
    // The right link enrolls with the code the wrong one did not spend.
    other
        .enroll(&EnrollmentLink::parse(&code_link).unwrap(), "phone")
        .unwrap();

    // Officer-1 enrolls through the demo's link and syncs the district.
    let mut officer = phone(dir.path(), "officer");
    let enrolled = officer.enroll(&link, "phone").unwrap();
    let StationTrust::PinnedCa(der) = officer.station_trust().unwrap() else {
        panic!("the pinned CA was not kept");
    };
    assert_eq!(hex(&sha256(&der)), pin);
    let client = officer
        .sync_client(&link.server_url, &enrolled.token)
        .unwrap();
    let first = officer
        .sync(&client, None, &CancelToken::default())
        .unwrap();
    assert!(first.pulled >= 120, "pulled {}", first.pulled);

    // Offline work, then an impostor at the station's address (a station
    // certificate from another CA): refused at once, the work stays queued.
    let patrol = officer.start_patrol("officer-1", Utc::now()).unwrap();
    officer.stop_patrol(&patrol, Utc::now()).unwrap();
    let pending = queued(&officer);
    assert!(pending > 0);
    let impostor = Station::start(
        dir.path(),
        foreign.station(&dir.path().join("impostor"), false),
    );
    let fake = officer.sync_client(&impostor.url, &enrolled.token).unwrap();
    let started = Instant::now();
    let reason = untrusted(officer.sync(&fake, None, &CancelToken::default()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "retried a refused certificate"
    );
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert_eq!(queued(&officer), pending);
    // The real station takes it all.
    let second = officer
        .sync(&client, None, &CancelToken::default())
        .unwrap();
    assert_eq!(second.pushed, pending);
    assert_eq!(queued(&officer), 0);
}

#[test]
fn an_expired_station_certificate_is_refused_even_from_the_pinned_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("区城管执法局 CA");
    let station = Station::start(dir.path(), ca.station(&dir.path().join("expired"), true));
    let link = EnrollmentLink::parse(&station.link).unwrap();
    assert_eq!(link.ca_sha256, Some(sha256(ca.cert.der())));
    let mut store = phone(dir.path(), "phone");
    let reason = untrusted(store.enroll(&link, "phone"));
    assert!(reason.to_lowercase().contains("expired"), "{reason}");
    // Nothing was kept from the failed enrollment.
    assert_eq!(store.station_trust().unwrap(), StationTrust::PublicRoots);
}

#[test]
fn a_station_certificate_its_pinned_ca_did_not_sign_stops_the_station_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, ca] = TestCa::new("签发的 CA").station(&dir.path().join("station"), false);
    let other = TestCa::new("另一个 CA").station(&dir.path().join("other"), false);
    // What the station says when it refuses to start with these files.
    let refused = |ca: &Path, public_url: &str| {
        let out = Command::new(BIN)
            .args(["--data", dir.path().join("data").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--public-url", public_url])
            .args(["--tls-cert", cert.to_str().unwrap()])
            .args(["--tls-key", key.to_str().unwrap()])
            .args(["--tls-ca", ca.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "the station started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = refused(&other[2], "https://127.0.0.1:8443");
    assert!(
        said.contains("phones pinning --tls-ca would refuse it"),
        "{said}"
    );
    // Nor does a certificate for another name pass.
    let said = refused(&ca, "https://mq.example.cn");
    assert!(said.contains("mq.example.cn"), "{said}");
}

/// Runs the station's CLI; panics with its error output if it fails.
fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn queued(store: &Store) -> u64 {
    let pushed = store.sync_cursors().unwrap().pushed;
    store.count_changes_since(pushed, true).unwrap()
}
