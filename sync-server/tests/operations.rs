//! Operations against the station binary: `/healthz` and `/readyz`, the
//! Prometheus metrics after real pushes and pulls (and who may read them),
//! and the JSON log format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::io::BufRead;

use common::StationProcess;

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::blocking::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The value of the sample `name` (with its labels as written) in a
/// Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn readiness_and_metrics_follow_real_traffic() {
    let station = StationProcess::start(&[]);
    assert_eq!(
        get(&format!("{}/healthz", station.url), None),
        (200, "ok".into())
    );
    assert_eq!(
        get(&format!("{}/readyz", station.url), None),
        (200, "ready".into())
    );

    // From loopback without a token configured: answered.
    let (status, before) = get(&format!("{}/metrics", station.url), None);
    assert_eq!(status, 200, "{before}");
    let pushes = sample(&before, "menqian_pushes_total");

    // A phone enrolls, syncs, reports, syncs again; a stranger is refused.
    let mut phone =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "执法终端");
    phone.sync().unwrap();
    let shop = menqian_fixtures::registry(4).unwrap().remove(3);
    common::report_at(&mut phone.store, &shop, "0504", "店外经营");
    phone.sync().unwrap();
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/pull?after=0", station.url))
        .bearer_auth("not-a-token")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let (_, after) = get(&format!("{}/metrics", station.url), None);
    assert!(sample(&after, "menqian_pushes_total") >= pushes + 1.0);
    assert!(sample(&after, "menqian_changes_accepted_total") >= 1.0);
    assert!(sample(&after, "menqian_pulls_total") >= 2.0);
    assert!(sample(&after, "menqian_changes_pulled_total") >= 1.0);
    assert!(sample(&after, "menqian_feed_head") >= 1.0);
    // By route pattern, never by path; errors by code; latency histograms.
    assert!(
        sample(
            &after,
            "menqian_http_requests_total{route=\"/v1/push\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(after.contains("menqian_errors_total{code=\""), "{after}");
    assert!(
        sample(
            &after,
            "menqian_http_request_duration_seconds_count{route=\"/v1/pull\"}"
        ) >= 2.0
    );
    assert!(!after.contains("not-a-token") && !after.contains(&phone.token));
}

#[test]
fn metrics_want_the_token_when_one_is_set() {
    let station = StationProcess::start(&["--metrics-token", "prometheus-secret-7"]);
    let url = format!("{}/metrics", station.url);
    assert_eq!(get(&url, None).0, 401);
    assert_eq!(get(&url, Some("wrong")).0, 401);
    let (status, page) = get(&url, Some("prometheus-secret-7"));
    assert_eq!(status, 200);
    assert!(page.contains("# TYPE menqian_pushes counter"), "{page}");
    assert!(page.trim_end().ends_with("# EOF"));
}

#[test]
fn the_log_can_be_json_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", dir.path().to_str().unwrap()])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().take(5) {
        let line = line.unwrap();
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string() && object["timestamp"].is_string());
        seen.push(object);
        if seen.len() >= 2 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.iter().any(|o| o["fields"]["message"].is_string()));
}

#[test]
fn behind_a_proxy_metrics_go_by_the_clients_address() {
    let station = StationProcess::start(&["--client-address-header", "X-Real-IP"]);
    let ask = |address: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/metrics", station.url))
            .header("X-Real-IP", address)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ask("203.0.113.9"), 401, "a client on the internet");
    assert_eq!(ask("10.20.0.5"), 200, "the monitoring network");
}
