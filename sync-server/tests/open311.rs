//! Open311 GeoReport v2 against the station binary: the third-party client
//! `georeport` (Python, PyPI) in JSON and XML, POST requests with an API key
//! an administrator issued, and every error case (`tests/open311_client.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::StationProcess;

#[test]
fn a_third_party_georeport_client_reads_and_posts_in_json_and_xml() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let key = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
            .args(["--data", dir.path().to_str().unwrap()])
            .args(["open311", "add-key", "--name", "12345热线平台"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let station = StationProcess::start_in(dir, &[], None);
    // A case to read: a steward's report through a phone.
    let mut phone =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "队员的手机");
    phone.sync().unwrap();
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    let id = common::report_at(&mut phone.store, &shop, "0504", "门前摆摊");
    phone.sync().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".tools/open311-py");
    assert!(
        py.join("georeport").exists(),
        "georeport is installed by scripts/python-deps.sh (the test command runs it)"
    );
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", &py)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/open311_client.py"))
        .args([&station.url, &key, "0504", id.trim_start_matches("case/")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
