//! The console's sign-in (issue 14), against the station binary on
//! 127.0.0.1: passwords set with the CLI, sessions in HttpOnly SameSite
//! cookies, CSRF-bound forms, throttled wrong passwords, no console for
//! officers and stewards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::{StationProcess, cli_rankings, page_rankings};
use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// A client that neither follows redirects nor keeps cookies: the test
/// carries them itself, to see exactly what the station sets.
fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_password(station: &StationProcess, user: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", station.dir.path().to_str().unwrap()])
        .args(["user", "password", "--id", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

/// An HTML form's body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

trait PostForm {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl PostForm for reqwest::blocking::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    }
}

/// The `name=value` a response sets for `name`, with its attributes.
fn cookie_set(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// The hidden CSRF field of a page's form.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_string()
}

/// Opens the sign-in form: (the form's cookie, its CSRF field).
fn login_form(station: &StationProcess) -> (String, String) {
    let r = client()
        .get(format!("{}/console/login", station.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = cookie_set(&r, "menqian_login").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let html = r.text().unwrap();
    assert!(html.contains("登录"), "{html}");
    (value(&set), csrf_field(&html))
}

fn sign_in(station: &StationProcess, user: &str, password: &str) -> Response {
    let (cookie, csrf) = login_form(station);
    client()
        .post(format!("{}/console/login", station.url))
        .header(COOKIE, format!("menqian_login={cookie}"))
        .form_body(&[("user", user), ("password", password), ("csrf", &csrf)])
        .send()
        .unwrap()
}

#[test]
fn a_supervisor_signs_in_sees_the_console_and_signs_out() {
    let station = StationProcess::start(&[]);
    // Nobody signed in: the console sends to the sign-in form.
    let r = client().get(format!("{}/", station.url)).send().unwrap();
    assert_eq!(r.headers()[LOCATION], "/console");
    let r = client()
        .get(format!("{}/console", station.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/console/login");

    let out = set_password(&station, "supervisor-1", "正确的密码-2026");
    assert!(out.status.success(), "{out:?}");
    // A wrong password, then the right one.
    let r = sign_in(&station, "supervisor-1", "错误的密码-2026");
    assert_eq!(r.status(), 401);
    assert!(cookie_set(&r, "menqian_session").is_none());
    assert!(r.text().unwrap().contains("账号或密码错误"));
    let r = sign_in(&station, "supervisor-1", "正确的密码-2026");
    assert_eq!(r.status(), 303, "{:?}", r.text());
    let set = cookie_set(&r, "menqian_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let session = value(&set);
    let page = client()
        .get(format!("{}/console", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().unwrap();
    assert!(
        html.contains("supervisor-1") && html.contains("督导"),
        "{html}"
    );

    // Signing out needs the session's CSRF token; without it nothing ends.
    let r = client()
        .post(format!("{}/console/logout", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .form_body(&[("csrf", &"0".repeat(64))])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .post(format!("{}/console/logout", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .form_body(&[("csrf", &csrf_field(&html))])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/console/login");
    let r = client()
        .get(format!("{}/console", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "the session ended at the station");
}

#[test]
fn forged_forms_officers_and_guessers_are_kept_out() {
    let station = StationProcess::start(&[]);
    assert!(
        set_password(&station, "supervisor-1", "正确的密码-2026")
            .status
            .success()
    );
    // A form posted without the cookie it was issued with (from another
    // site, say) is refused whatever the password.
    let (_, csrf) = login_form(&station);
    let r = client()
        .post(format!("{}/console/login", station.url))
        .form_body(&[
            ("user", "supervisor-1"),
            ("password", "正确的密码-2026"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(cookie_set(&r, "menqian_session").is_none());

    // A session past its end is sent to sign in, on pages and exports.
    let expired = {
        use menqian_sync_server::SyncStore as _;
        let mut s = menqian_sync_server::SqliteSyncStore::open(station.dir.path(), vec![]).unwrap();
        s.accounts()
            .open_session(
                "supervisor-1",
                chrono::Utc::now() - chrono::Duration::hours(13),
                chrono::Duration::hours(12),
            )
            .unwrap()
            .token
    };
    for path in [
        "/console",
        "/console/cases",
        "/console/cases.csv",
        "/console/map/data.json",
    ] {
        let r = get_page(&station, &expired, path);
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()[LOCATION], "/console/login", "{path}");
    }

    // Officers and stewards get no console password.
    for user in ["officer-1", "steward-1"] {
        let out = set_password(&station, user, "正确的密码-2026");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot sign in to the console"),
            "{out:?}"
        );
    }
    // Short passwords are refused.
    assert!(!set_password(&station, "admin", "short").status.success());

    // Wrong passwords for one user: five, then the user waits (429 with
    // Retry-After), even with the right password, from any address.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            sign_in(&station, "supervisor-1", "猜一猜-123456")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let r = sign_in(&station, "supervisor-1", "正确的密码-2026");
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Another user is not held up by that.
    assert!(
        set_password(&station, "admin", "管理员的密码-2026")
            .status
            .success()
    );
    assert_eq!(
        sign_in(&station, "admin", "管理员的密码-2026").status(),
        303
    );
    // A name with markup comes back escaped.
    let r = sign_in(&station, "<script>alert(1)</script>", "whatever-123");
    let html = r.text().unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
}

/// Signs `user` in and returns the session cookie's value.
fn session_of(station: &StationProcess, user: &str, password: &str) -> String {
    assert!(set_password(station, user, password).status.success());
    let r = sign_in(station, user, password);
    assert_eq!(r.status(), 303);
    value(&cookie_set(&r, "menqian_session").unwrap())
}

fn get_page(station: &StationProcess, session: &str, path: &str) -> Response {
    client()
        .get(format!("{}{path}", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .send()
        .unwrap()
}

fn post_page(
    station: &StationProcess,
    session: &str,
    path: &str,
    pairs: &[(&str, &str)],
) -> Response {
    client()
        .post(format!("{}{path}", station.url))
        .header(COOKIE, format!("menqian_session={session}"))
        .form_body(pairs)
        .send()
        .unwrap()
}

#[test]
fn an_administrator_adds_a_user_issues_a_code_and_revokes_a_device() {
    let station = StationProcess::start(&[]);
    let admin = session_of(&station, "admin", "管理员的密码-2026");
    let page = get_page(&station, &admin, "/console/people");
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    let csrf = csrf_field(&html);
    assert!(
        html.contains("officer-1") && html.contains("执法队员"),
        "{html}"
    );

    // A new user, with a name that must come back escaped.
    let r = post_page(
        &station,
        &admin,
        "/console/people/users",
        &[
            ("csrf", &csrf),
            ("id", "officer-9"),
            ("name", "<b>新</b>巡查员"),
            ("role", "officer"),
            ("area", "subdistrict:右安门街道"),
        ],
    );
    assert_eq!(r.status(), 200);
    let html = r.text().unwrap();
    assert!(html.contains("已新建人员 officer-9"), "{html}");
    assert!(
        html.contains("&#60;b&#62;新") || html.contains("&lt;b&gt;新"),
        "{html}"
    );
    // A bad area is named, and nothing is added.
    let r = post_page(
        &station,
        &admin,
        "/console/people/users",
        &[
            ("csrf", &csrf),
            ("id", "officer-10"),
            ("name", "某人"),
            ("role", "officer"),
            ("area", "火星"),
        ],
    );
    assert_eq!(r.status(), 400);
    assert!(!r.text().unwrap().contains("<td>officer-10</td>"));

    // A code for the new officer: shown as text, link and QR; a phone
    // enrolls with it.
    let r = post_page(
        &station,
        &admin,
        "/console/people/code",
        &[("csrf", &csrf), ("user", "officer-9")],
    );
    assert_eq!(r.status(), 200);
    let html = r.text().unwrap();
    let at = html.find("<strong id=\"code\">").unwrap() + "<strong id=\"code\">".len();
    let code = &html[at..at + 8];
    assert!(html.contains("<svg"), "the QR code");
    assert!(
        html.contains(&format!("code={code}")),
        "the link carries the code"
    );
    let phone = common::Device::enroll(&station.url, code, "新手机");
    let token = phone.token.clone();
    let pull = |token: &str| {
        client()
            .get(format!("{}/v1/pull?after=0&limit=1", station.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(pull(&token), 200);
    // The page shows when it last synced (Beijing time); others never did.
    let html = get_page(&station, &admin, "/console/people")
        .text()
        .unwrap();
    let row = &html[html.find(&format!("<td>{}</td>", phone.device_id)).unwrap()..];
    let seen = &row[row.find("class=\"seen\">").unwrap() + 13..];
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    assert!(seen.starts_with(&today), "{}", &seen[..40.min(seen.len())]);

    // Revoked in the console: the phone is refused from its next request.
    let r = post_page(
        &station,
        &admin,
        "/console/people/revoke",
        &[("csrf", &csrf), ("device", &phone.device_id)],
    );
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("已停用"));
    assert_eq!(pull(&token), 401);

    // Without the session's CSRF token nothing happens.
    let r = post_page(
        &station,
        &admin,
        "/console/people/code",
        &[("csrf", &"0".repeat(64)), ("user", "officer-1")],
    );
    assert_eq!(r.status(), 403);

    // The administrator gives a supervisor a password; officers get none.
    let r = post_page(
        &station,
        &admin,
        "/console/people/password",
        &[
            ("csrf", &csrf),
            ("user", "supervisor-1"),
            ("password", "督导员的新密码-2026"),
        ],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        sign_in(&station, "supervisor-1", "督导员的新密码-2026").status(),
        303
    );
    let r = post_page(
        &station,
        &admin,
        "/console/people/password",
        &[
            ("csrf", &csrf),
            ("user", "officer-1"),
            ("password", "巡查员的密码-2026"),
        ],
    );
    assert_eq!(r.status(), 400);
    let r = post_page(
        &station,
        &admin,
        "/console/people/password",
        &[
            ("csrf", &csrf),
            ("user", "supervisor-1"),
            ("password", "short"),
        ],
    );
    assert_eq!(r.status(), 400);

    // A supervisor has no such page, and without a session one signs in.
    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    assert_eq!(
        get_page(&station, &supervisor, "/console/people").status(),
        404
    );
    let r = post_page(
        &station,
        &supervisor,
        "/console/people/users",
        &[
            ("csrf", &csrf),
            ("id", "x"),
            ("name", "x"),
            ("role", "admin"),
            ("area", "district"),
        ],
    );
    assert_eq!(r.status(), 404);
    assert_eq!(
        get_page(&station, "nobody", "/console/people").status(),
        303
    );

    // Stopped (SIGTERM), the station writes down when devices were last seen.
    let mut station = station;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &station.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(station.child.wait().unwrap().success());
    let accounts = rusqlite::Connection::open(station.dir.path().join("accounts.sqlite")).unwrap();
    let seen: Option<i64> = accounts
        .query_row(
            "SELECT last_seen_at FROM devices WHERE id = ?1",
            [&phone.device_id],
            |r| r.get(0),
        )
        .unwrap();
    let age = chrono::Utc::now().timestamp_millis() - seen.unwrap();
    assert!((0..600_000).contains(&age), "{age} ms ago");
}

/// A station with four weeks of district life on the demo street, and a
/// lane chief (`chief-1`) of the lane returned.
fn station_with_history() -> (StationProcess, &'static str) {
    use menqian_sync_server::SyncStore as _;
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let lane = menqian_fixtures::DEMO_LANES[0];
    {
        let mut s = menqian_sync_server::SqliteSyncStore::open(dir.path(), vec![]).unwrap();
        let street = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS).unwrap();
        menqian_fixtures::history(s.documents(), &street, 28, chrono::Utc::now(), None).unwrap();
        s.accounts()
            .add_user(&menqian_sync_server::User::new(
                "chief-1",
                "街巷长",
                menqian_core::Role::LaneChief,
                menqian_core::Area::Lanes(vec![lane.into()]),
            ))
            .unwrap();
    }
    (StationProcess::start_in(dir, &[], None), lane)
}

#[test]
fn the_ledger_shows_each_user_the_open_items_of_their_area_and_exports_them() {
    let (station, lane) = station_with_history();
    let expected = |area: &menqian_core::Area| {
        let store = menqian_core::Store::open_reader(
            station.dir.path().join("station.sqlite"),
            menqian_core::StoreConfig::default(),
        )
        .unwrap();
        store
            .open_rectifications_in(area, chrono::Utc::now())
            .unwrap()
    };
    let all = expected(&menqian_core::Area::District);
    let in_lane = expected(&menqian_core::Area::Lanes(vec![lane.into()]));
    assert!(
        all.len() > in_lane.len(),
        "{} items, {} in the lane",
        all.len(),
        in_lane.len()
    );

    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    let html = get_page(&station, &supervisor, "/console/ledger")
        .text()
        .unwrap();
    assert!(
        html.contains(&format!("共 {} 项未整改", all.len())),
        "{html}"
    );
    for item in &all {
        assert!(html.contains(&item.item_text), "{}", item.item_text);
    }
    // Overdue only: every row marked.
    let overdue = all
        .iter()
        .filter(|i| {
            matches!(
                i.state,
                menqian_core::store::ledger::LedgerState::Overdue
                    | menqian_core::store::ledger::LedgerState::Escalated
            )
        })
        .count();
    let html = get_page(&station, &supervisor, "/console/ledger?overdue=1")
        .text()
        .unwrap();
    assert!(html.contains(&format!("共 {overdue} 项未整改")), "{html}");
    assert_eq!(html.matches("<tr class=\"overdue\">").count(), overdue);

    // The export: exactly the filtered set, UTF-8 with a BOM.
    let r = get_page(&station, &supervisor, "/console/ledger.csv");
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = r.bytes().unwrap();
    assert!(bytes.starts_with(&[0xef, 0xbb, 0xbf]));
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert_eq!(text.lines().count(), all.len() + 1);
    assert!(text.starts_with("整改期限,状态,商户"));

    // The lane chief sees the lane's items only.
    let chief = session_of(&station, "chief-1", "街巷长的密码-2026");
    let html = get_page(&station, &chief, "/console/ledger")
        .text()
        .unwrap();
    assert!(
        html.contains(&format!("共 {} 项未整改", in_lane.len())),
        "{html}"
    );
    let csv = get_page(&station, &chief, "/console/ledger.csv")
        .text()
        .unwrap();
    assert_eq!(csv.lines().count(), in_lane.len() + 1);
    // Without a session, no ledger.
    assert_eq!(
        get_page(&station, "nobody", "/console/ledger.csv").status(),
        303
    );
}

#[test]
fn rankings_are_the_numbers_the_cli_prints() {
    let (station, lane) = station_with_history();
    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let last_week = (chrono::Utc::now() - chrono::Duration::days(7))
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let mut inspected = false;
    for (what, date) in [("week", &today), ("week", &last_week), ("month", &today)] {
        let html = get_page(
            &station,
            &supervisor,
            &format!("/console/rankings?period={what}&date={date}"),
        )
        .text()
        .unwrap();
        let page = page_rankings(&html);
        let cli = cli_rankings(&station, what, date);
        assert!(page.len() >= 100, "{what} {date}: {} rows", page.len());
        inspected |= page.iter().any(|l| l.3 > 0);
        assert_eq!(page, cli, "{what} {date}");
    }
    assert!(inspected, "some shop was inspected in one of the periods");
    // The board is kept, and computed again once the feed moves: an
    // inspection pushed now shows on the next page.
    let before = page_rankings(
        &get_page(
            &station,
            &supervisor,
            &format!("/console/rankings?period=week&date={today}"),
        )
        .text()
        .unwrap(),
    );
    let mut officer =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "队员的手机");
    officer.sync().unwrap();
    let shop = before[0].0.clone();
    let shop_id = format!("shop/{shop}");
    let now = chrono::Utc::now();
    let id = officer
        .store
        .start_inspection(menqian_core::NewInspection {
            shop_id: shop_id.clone(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: now - chrono::Duration::minutes(10),
            fix: None,
        })
        .unwrap();
    common::pass_every_item(&mut officer.store, &id);
    officer.store.submit_inspection(&id, now).unwrap();
    officer.sync().unwrap();
    let after = page_rankings(
        &get_page(
            &station,
            &supervisor,
            &format!("/console/rankings?period=week&date={today}"),
        )
        .text()
        .unwrap(),
    );
    assert_eq!(after, cli_rankings(&station, "week", &today));
    let count = |rows: &[common::Line]| rows.iter().find(|l| l.0 == shop).map(|l| l.3);
    assert_eq!(count(&after), count(&before).map(|n| n + 1));
    // Last week's red flag and black list are shown.
    let html = get_page(
        &station,
        &supervisor,
        &format!("/console/rankings?period=week&date={last_week}"),
    )
    .text()
    .unwrap();
    assert!(html.contains("id=\"red-flag\"") && html.contains("id=\"black-list\""));

    // A lane chief sees the rows of the lane's shops, ranked as for everyone.
    let chief = session_of(&station, "chief-1", "街巷长的密码-2026");
    let html = get_page(&station, &chief, "/console/rankings")
        .text()
        .unwrap();
    let theirs = page_rankings(&html);
    let all = cli_rankings(&station, "week", &today);
    assert!(
        !theirs.is_empty() && theirs.len() < all.len(),
        "{lane}: {}",
        theirs.len()
    );
    for row in &theirs {
        assert!(all.contains(row), "{row:?}");
    }
}

#[test]
fn the_case_list_shows_only_what_the_user_may_see_filtered_and_exported() {
    use menqian_sync_server::SyncStore as _;
    let (station, _) = station_with_history();
    {
        let mut s = menqian_sync_server::SqliteSyncStore::open(station.dir.path(), vec![]).unwrap();
        s.accounts()
            .add_user(&menqian_sync_server::User::new(
                "supervisor-9",
                "别的街道督导",
                menqian_core::Role::Supervisor,
                menqian_core::Area::Subdistrict(menqian_fixtures::SUBDISTRICTS[1].into()),
            ))
            .unwrap();
    }
    let core = |filter: &menqian_core::CaseFilter, user: &str| {
        let store = menqian_core::Store::open_reader(
            station.dir.path().join("station.sqlite"),
            menqian_core::StoreConfig::default(),
        )
        .unwrap();
        let s = menqian_sync_server::SqliteSyncStore::open(station.dir.path(), vec![]).unwrap();
        let u = s
            .accounts_read()
            .users()
            .unwrap()
            .into_iter()
            .find(|u| u.id == user)
            .unwrap();
        store
            .case_list(filter, &u.visibility(), 0, 100_000)
            .unwrap()
    };
    let total = |html: &str| -> u64 {
        let at = html.find("<span id=\"total\">").unwrap() + "<span id=\"total\">".len();
        html[at..at + html[at..].find('<').unwrap()]
            .parse()
            .unwrap()
    };
    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    let (all, n) = core(&Default::default(), "supervisor-1");
    assert!(n >= 10, "{n} cases");
    let html = get_page(&station, &supervisor, "/console/cases")
        .text()
        .unwrap();
    assert_eq!(total(&html), n);
    for c in all.iter().take(50) {
        assert!(html.contains(&c.id), "{}", c.id);
    }
    // A status filter: the core's count, every row in that status.
    let reported = menqian_core::CaseFilter {
        status: Some(menqian_core::model::case::CaseStatus::Reported),
        ..Default::default()
    };
    let (_, n_reported) = core(&reported, "supervisor-1");
    let html = get_page(&station, &supervisor, "/console/cases?status=reported")
        .text()
        .unwrap();
    assert_eq!(total(&html), n_reported);
    assert_eq!(
        html.matches("<td class=\"status\">").count(),
        html.matches("<td class=\"status\">已上报</td>").count()
    );
    // Text with LIKE's wildcards matches them literally.
    let html = get_page(&station, &supervisor, "/console/cases?q=%25_")
        .text()
        .unwrap();
    assert_eq!(total(&html), 0);
    // The export: exactly the filtered set.
    let csv = get_page(&station, &supervisor, "/console/cases.csv?status=reported")
        .text()
        .unwrap();
    assert_eq!(csv.lines().count() as u64, n_reported + 1);
    // The same set as a workbook, every row's case id as in the CSV.
    let xlsx = get_page(&station, &supervisor, "/console/cases.xlsx?status=reported");
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().unwrap();
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    use calamine::Reader as _;
    let sheet = book.worksheet_range("案件").unwrap();
    let ids: Vec<String> = sheet.rows().skip(1).map(|r| r[7].to_string()).collect();
    assert_eq!(ids.len() as u64, n_reported);
    for id in &ids {
        assert!(csv.contains(id.as_str()), "{id}");
    }
    // 街道, 街巷 and overdue filters: the core's counts.
    let lane = menqian_fixtures::DEMO_LANES[0];
    for (query, filter) in [
        (
            format!("lane={lane}"),
            menqian_core::CaseFilter {
                lane: Some(lane.into()),
                ..Default::default()
            },
        ),
        (
            format!("street={}", menqian_fixtures::SUBDISTRICTS[0]),
            menqian_core::CaseFilter {
                subdistrict: Some(menqian_fixtures::SUBDISTRICTS[0].into()),
                ..Default::default()
            },
        ),
    ] {
        let (_, expected) = core(&filter, "supervisor-1");
        let html = get_page(&station, &supervisor, &format!("/console/cases?{query}"))
            .text()
            .unwrap();
        assert_eq!(total(&html), expected, "{query}");
    }
    let (_, overdue) = core(
        &menqian_core::CaseFilter {
            overdue_at: Some(chrono::Utc::now()),
            ..Default::default()
        },
        "supervisor-1",
    );
    let html = get_page(&station, &supervisor, "/console/cases?overdue=1&sort=due")
        .text()
        .unwrap();
    assert_eq!(total(&html), overdue);

    // A case's page: its history; a made-up or malformed id is not found.
    let first = &all[0];
    let key = first.id.trim_start_matches("case/");
    let page = get_page(&station, &supervisor, &format!("/console/case/{key}"));
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(
        html.contains(&first.id) && html.contains("已上报"),
        "{html}"
    );
    assert!(html.contains("id=\"history\""));
    for bad in ["0".repeat(32), "..%2F..%2Fetc".into(), "x".into()] {
        let r = get_page(&station, &supervisor, &format!("/console/case/{bad}"));
        assert_eq!(r.status(), 404, "{bad}");
    }

    // Another subdistrict's supervisor sees none of these cases, and gets
    // 404 for their pages.
    let other = session_of(&station, "supervisor-9", "别的督导的密码-2026");
    let theirs = core(&Default::default(), "supervisor-9").0;
    let hidden = all
        .iter()
        .find(|c| !theirs.iter().any(|o| o.id == c.id))
        .unwrap();
    let r = get_page(
        &station,
        &other,
        &format!("/console/case/{}", hidden.id.trim_start_matches("case/")),
    );
    assert_eq!(r.status(), 404);
    // Nor may they move it, and the case is as it was.
    let r = post_page(
        &station,
        &other,
        &format!(
            "/console/case/{}/move",
            hidden.id.trim_start_matches("case/")
        ),
        &[("csrf", "x"), ("to", "accepted")],
    );
    assert!(r.status() == 403 || r.status() == 404, "{}", r.status());
    let (_, n_other) = core(&Default::default(), "supervisor-9");
    let html = get_page(&station, &other, "/console/cases").text().unwrap();
    assert_eq!(total(&html), n_other);
    assert!(n_other < n);
    for c in &all {
        if !core(&Default::default(), "supervisor-9")
            .0
            .iter()
            .any(|o| o.id == c.id)
        {
            assert!(
                !html.contains(&c.id),
                "{} shown to another subdistrict",
                c.id
            );
        }
    }
}

/// The CSRF token of the page at `path`.
fn page_csrf(station: &StationProcess, session: &str, path: &str) -> String {
    csrf_field(&get_page(station, session, path).text().unwrap())
}

#[test]
fn a_supervisor_accepts_and_dispatches_a_report_and_a_phone_receives_it() {
    let station = StationProcess::start(&[]);
    let mut officer =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "队员的手机");
    officer.sync().unwrap();
    let (street, lane, _) = officer.store.streets().unwrap().remove(0);
    let shop = officer
        .store
        .shops_on(&street, lane.as_deref())
        .unwrap()
        .remove(0);
    let case = officer
        .store
        .report_case(menqian_core::NewCase {
            source: menqian_core::CaseSource::Inspection,
            category: "0504".into(),
            location: menqian_core::GeoPoint {
                lat: shop.lat,
                lon: shop.lon,
            },
            shop_id: Some(shop.id.clone()),
            photos: vec![],
            description: "门前<b>堆物</b>".into(),
            deadline: None,
            reported_by: "officer-1".into(),
            reported_at: chrono::Utc::now(),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    officer.sync().unwrap();
    let key = case.trim_start_matches("case/").to_string();
    let page = format!("/console/case/{key}");
    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    let html = get_page(&station, &supervisor, &page).text().unwrap();
    // The note's HTML is text; only the moves from 已上报 are offered.
    assert!(html.contains("门前&#60;b&#62;堆物&#60;/b&#62;"), "{html}");
    assert!(html.contains("id=\"move-accepted\"") && html.contains("id=\"move-rejected\""));
    assert!(!html.contains("id=\"move-closed\""));
    let csrf = page_csrf(&station, &supervisor, &page);
    // Without the token: refused, nothing written.
    let r = post_page(
        &station,
        &supervisor,
        &format!("{page}/move"),
        &[("to", "accepted")],
    );
    assert_eq!(r.status(), 400);
    let r = post_page(
        &station,
        &supervisor,
        &format!("{page}/move"),
        &[("csrf", "0".repeat(64).as_str()), ("to", "accepted")],
    );
    assert_eq!(r.status(), 403);
    // A move the workflow does not allow from here is named and refused.
    let r = post_page(
        &station,
        &supervisor,
        &format!("{page}/move"),
        &[("csrf", csrf.as_str()), ("to", "closed")],
    );
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("id=\"error\""));
    // 受理, then 派遣 to a department with a routine whistle.
    let r = post_page(
        &station,
        &supervisor,
        &format!("{page}/move"),
        &[
            ("csrf", csrf.as_str()),
            ("to", "accepted"),
            ("note", "属实<img src=x onerror=alert(1)>"),
        ],
    );
    assert_eq!(r.status(), 303);
    let html = get_page(&station, &supervisor, &page).text().unwrap();
    // The note's markup is text.
    assert!(
        html.contains("属实&#60;img src=x onerror=alert(1)&#62;"),
        "{html}"
    );
    assert!(!html.contains("<img src=x"));
    assert!(
        html.contains("已受理") && html.contains("id=\"move-dispatched\""),
        "{html}"
    );
    let department = {
        let at = html.find("<option value=\"").unwrap() + "<option value=\"".len();
        html[at..at + html[at..].find('"').unwrap()].to_string()
    };
    let r = post_page(
        &station,
        &supervisor,
        &format!("{page}/move"),
        &[
            ("csrf", csrf.as_str()),
            ("to", "dispatched"),
            ("department", department.as_str()),
            ("whistle", "urgent"),
        ],
    );
    assert_eq!(r.status(), 303);
    // The phone receives both steps, signed with the supervisor's name and role.
    officer.sync().unwrap();
    let on_phone = officer.store.case(&case).unwrap();
    assert_eq!(on_phone.status(), menqian_core::CaseStatus::Dispatched);
    let last = on_phone.history.last().unwrap();
    assert_eq!(last.by, "supervisor-1");
    assert_eq!(last.role, Some(menqian_core::Role::Supervisor));
    assert_eq!(last.department.as_deref(), Some(department.as_str()));
    assert_eq!(last.whistle, Some(menqian_core::Whistle::Urgent));
}

#[test]
fn an_administrator_edits_the_rules_and_publishes_a_new_checklist_version() {
    let station = StationProcess::start(&[]);
    let admin = session_of(&station, "admin", "管理员的密码-2026");
    let supervisor = session_of(&station, "supervisor-1", "督导员的密码-2026");
    // Not a supervisor's page.
    assert_eq!(
        get_page(&station, &supervisor, "/console/rules").status(),
        404
    );
    let csrf = page_csrf(&station, &admin, "/console/rules");
    let docs = || {
        menqian_core::Store::open_reader(
            station.dir.path().join("station.sqlite"),
            menqian_core::StoreConfig::default(),
        )
        .unwrap()
    };
    // Two invalid fields: both named, nothing published.
    let mut rules = serde_json::to_value(docs().rules().unwrap()).unwrap();
    rules["whistles"]["urgent_hours"] = 0.into();
    rules["planner"]["daily_stops"] = 0.into();
    let r = post_page(
        &station,
        &admin,
        "/console/rules",
        &[("csrf", csrf.as_str()), ("rules", &rules.to_string())],
    );
    assert_eq!(r.status(), 400);
    let html = r.text().unwrap();
    assert!(
        html.contains("rules.whistles") && html.contains("rules.planner.daily_stops"),
        "{html}"
    );
    assert_eq!(docs().rules().unwrap().planner.daily_stops, 30);
    // Broken JSON: where it broke.
    let r = post_page(
        &station,
        &admin,
        "/console/rules",
        &[("csrf", csrf.as_str()), ("rules", "{\n\"name\": ")],
    );
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("第 2 行"));
    // A valid edit is published.
    rules["whistles"]["urgent_hours"] = 2.into();
    rules["planner"]["daily_stops"] = 25.into();
    let r = post_page(
        &station,
        &admin,
        "/console/rules",
        &[("csrf", csrf.as_str()), ("rules", &rules.to_string())],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(docs().rules().unwrap().planner.daily_stops, 25);
    assert_eq!(docs().rules().unwrap().whistles.urgent_hours, 2);

    // A checklist: an edited copy of the newest version becomes the next one,
    // and a phone receives it at its next sync.
    let mut phone = common::Device::enroll(&station.url, &station.code_for("officer-1"), "手机");
    phone.sync().unwrap();
    let (id, version, _) = docs().templates().unwrap().remove(0);
    let page = get_page(&station, &admin, &format!("/console/rules?checklist={id}"))
        .text()
        .unwrap();
    assert!(page.contains("id=\"template\""));
    let mut copy = serde_json::to_value(docs().template(&id, None).unwrap()).unwrap();
    copy["items"][0]["text"] = "核实门前责任书是否张贴（修订）".into();
    let r = post_page(
        &station,
        &admin,
        "/console/rules/checklist",
        &[
            ("csrf", csrf.as_str()),
            ("checklist", id.as_str()),
            ("template", &copy.to_string()),
        ],
    );
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .unwrap()
            .contains(&format!("第 {} 版", version + 1))
    );
    let newest = docs().template(&id, None).unwrap();
    assert_eq!(newest.version, version + 1);
    assert_eq!(newest.items[0].text, "核实门前责任书是否张贴（修订）");
    assert_eq!(
        docs().template(&id, Some(version)).unwrap().version,
        version
    );
    phone.sync().unwrap();
    assert_eq!(
        phone.store.template(&id, None).unwrap().version,
        version + 1
    );
    assert_eq!(phone.store.rules().unwrap().planner.daily_stops, 25);
}

/// A multipart form body: text fields, then one file.
fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "menqian-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{}\"\r\ncontent-type: application/octet-stream\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Follows a job's page until it is done: its last text.
fn finished_job(station: &StationProcess, session: &str, location: &str) -> String {
    for _ in 0..600 {
        let r = get_page(station, session, location);
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("content-security-policy").is_some());
        let refresh = r.headers().get("refresh").is_some();
        let text = r.text().unwrap();
        if !refresh {
            assert!(text.contains("data-running=\"false\""), "{text}");
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the job did not finish");
}

#[test]
fn an_administrator_imports_a_ledger_prints_boards_and_exports_the_registry() {
    use menqian_sync_server::SyncStore as _;
    let station = StationProcess::start(&[]);
    let admin = session_of(&station, "admin", "管理员的长密码-2026");
    let supervisor = session_of(&station, "supervisor-1", "督查员的长密码-2026");
    // Only an administrator has the page.
    assert_eq!(
        get_page(&station, &supervisor, "/console/onboard").status(),
        404
    );
    let csrf = page_csrf(&station, &admin, "/console/onboard");

    // A CSV ledger of five new shops on a new street, one row with a bad
    // phone: refused, nothing kept for confirmation.
    let row = |k: usize, phone: &str| {
        format!(
            "新店{k},北京市丰台区新华街{k}号,店主{k},{phone},右安门街道,新华街,116.{},39.8{}\n",
            3600 + k,
            600 + k
        )
    };
    let header = "单位名称,地址,负责人,联系电话,街道,路段,经度,纬度\n";
    let mut bad = header.to_string();
    for k in 1..=5 {
        bad += &row(
            k,
            if k == 3 {
                "电话待补"
            } else {
                "13800138000"
            },
        );
    }
    let upload = |text: &str, csrf: &str| {
        let (kind, body) = multipart(
            &[("csrf", csrf), ("coords", "gcj02"), ("encoding", "auto")],
            ("台账.csv", text.as_bytes()),
        );
        client()
            .post(format!("{}/console/onboard", station.url))
            .header(COOKIE, format!("menqian_session={admin}"))
            .header("content-type", kind)
            .body(body)
            .send()
            .unwrap()
    };
    let r = upload(&bad, &csrf);
    assert_eq!(r.status(), 200);
    let page = r.text().unwrap();
    assert!(
        page.contains("第 4 行 联系电话：“电话待补”不是有效的电话号码"),
        "{page}"
    );
    assert!(page.contains("未导入任何商户") && !page.contains("id=\"confirm\""));
    // A forged form is refused before anything is read into the registry.
    assert_eq!(upload(&bad, "forged").status(), 403);

    let mut good = header.to_string();
    for k in 1..=5 {
        good += &row(k, "13800138000");
    }
    let page = upload(&good, &csrf).text().unwrap();
    assert!(page.contains("新建 <strong>5</strong> 家"), "{page}");
    let token = page
        .split("name=\"upload\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let r = post_page(
        &station,
        &admin,
        "/console/onboard/confirm",
        &[("csrf", &csrf), ("upload", &token)],
    );
    assert_eq!(r.status(), 303);
    let job = r.headers()["location"].to_str().unwrap().to_string();
    let done = finished_job(&station, &admin, &job);
    assert!(done.contains("已导入：新建 5 家"), "{done}");
    // The same upload cannot be imported twice.
    let again = post_page(
        &station,
        &admin,
        "/console/onboard/confirm",
        &[("csrf", &csrf), ("upload", &token)],
    );
    assert_eq!(again.status(), 400);
    let new_shops: Vec<menqian_core::Shop> = station
        .admin()
        .documents()
        .all_shops()
        .unwrap()
        .into_iter()
        .filter(|s| s.street == "新华街")
        .collect();
    assert_eq!(new_shops.len(), 5);
    assert!(
        new_shops
            .iter()
            .all(|s| s.tags.contains(&menqian_core::ShopTag::ZoneEstimated))
    );

    // The new street's boards, as a job, then the PDF.
    let r = post_page(
        &station,
        &admin,
        "/console/signboards",
        &[("csrf", &csrf), ("street", "新华街"), ("layout", "board")],
    );
    assert_eq!(r.status(), 303);
    let job = r.headers()["location"].to_str().unwrap().to_string();
    let done = finished_job(&station, &admin, &job);
    assert!(done.contains("下载 PDF"), "{done}");
    let pdf = get_page(&station, &admin, &format!("{job}/file"));
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().unwrap();
    assert!(bytes.starts_with(b"%PDF-1.7"));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &bytes).unwrap();
    let text = std::process::Command::new("pdftotext")
        .arg(file.path())
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    for s in &new_shops {
        assert!(text.contains(&s.name), "{text}");
    }
    // Another user cannot fetch it.
    assert_eq!(
        get_page(&station, &supervisor, &format!("{job}/file")).status(),
        404
    );

    // The registry back as XLSX, the new codes in it.
    let xlsx = get_page(&station, &admin, "/console/registry.xlsx");
    assert_eq!(xlsx.status(), 200);
    let file = tempfile::Builder::new().suffix(".xlsx").tempfile().unwrap();
    std::fs::write(file.path(), xlsx.bytes().unwrap()).unwrap();
    use calamine::Reader as _;
    let mut book = calamine::open_workbook_auto(file.path()).unwrap();
    let range = book.worksheet_range("门前三包台账").unwrap();
    let codes: Vec<String> = range.rows().skip(1).map(|r| r[0].to_string()).collect();
    for s in &new_shops {
        assert!(codes.contains(&s.code));
    }
}

#[test]
fn a_citizens_phone_is_on_the_console_case_page_and_nowhere_public() {
    let station = StationProcess::start(&[]);
    let supervisor = session_of(&station, "supervisor-1", "督查员的长密码-2026");
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    let page = client()
        .get(format!("{}/s/{}", station.url, shop.code))
        .send()
        .unwrap();
    let cookie = value(&cookie_set(&page, "menqian_form").unwrap());
    let html = page.text().unwrap();
    let token = html
        .split("name=\"form\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{}/s/{}/report", station.url, shop.code))
        .header(COOKIE, format!("menqian_form={cookie}"))
        .form_body(&[
            ("form", &token),
            ("category", "0107"),
            ("description", "门口堆了很多纸箱"),
            ("phone", "137-0000-2222"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    let public = client()
        .get(format!("{}{receipt}", station.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!public.contains("13700002222") && !public.contains("137-0000-2222"));
    // Staff see it on the case's page.
    let list = get_page(&station, &supervisor, "/console/cases?source=citizen")
        .text()
        .unwrap();
    let key = list
        .split("/console/case/")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let case = get_page(&station, &supervisor, &format!("/console/case/{key}"))
        .text()
        .unwrap();
    assert!(case.contains("id=\"citizen-phone\">13700002222"), "{case}");
}

#[test]
fn a_supervisor_confirms_a_cameras_reminder_and_it_is_dispatched() {
    use menqian_sync_server::alerts::{SIGNATURE_HEADER, SOURCE_HEADER, TIME_HEADER, signature};
    let station = StationProcess::start(&[]);
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", station.dir.path().to_str().unwrap()])
        .args([
            "alerts",
            "add-source",
            "--id",
            "cam-2",
            "--shop",
            &shop.code,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let body = serde_json::json!({"alert_id": "x-1", "category": "0107", "at": chrono::Utc::now()})
        .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let r = client()
        .post(format!("{}/v1/alerts", station.url))
        .header(SOURCE_HEADER, "cam-2")
        .header(TIME_HEADER, &ts)
        .header(SIGNATURE_HEADER, signature(&secret, &ts, body.as_bytes()))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let supervisor = session_of(&station, "supervisor-1", "督查员的长密码-2026");
    let path = format!("/console/shop?id={}", shop.id());
    let page = get_page(&station, &supervisor, &path).text().unwrap();
    assert!(
        page.contains("摄像头提醒（1）") && page.contains("乱堆物料"),
        "{page}"
    );
    let reminder = page
        .split("name=\"reminder\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let csrf = csrf_field(&page);
    let shop_id = shop.id();
    let r = post_page(
        &station,
        &supervisor,
        "/console/shop/reminder",
        &[("csrf", &csrf), ("shop", &shop_id), ("reminder", &reminder)],
    );
    assert_eq!(r.status(), 303);
    let case = r.headers()["location"].to_str().unwrap().to_string();
    let page = get_page(&station, &supervisor, &case).text().unwrap();
    assert!(
        page.contains("已派遣") && page.contains("督查员确认"),
        "{page}"
    );
    // The reminder is a case now: gone from the shop's page; a second
    // confirmation finds nothing.
    let page = get_page(&station, &supervisor, &path).text().unwrap();
    assert!(!page.contains("摄像头提醒（"));
    let again = post_page(
        &station,
        &supervisor,
        "/console/shop/reminder",
        &[("csrf", &csrf), ("shop", &shop_id), ("reminder", &reminder)],
    );
    assert_eq!(again.status(), 404);
}

#[test]
fn an_administrator_approves_a_steward_sign_up_in_the_console() {
    let station = StationProcess::start(&[]);
    let lane = menqian_fixtures::DEMO_LANES[0];
    let path: String = url::form_urlencoded::byte_serialize(lane.as_bytes()).collect();
    let page = client()
        .get(format!("{}/l/{path}", station.url))
        .send()
        .unwrap();
    let cookie = value(&cookie_set(&page, "menqian_form").unwrap());
    let html = page.text().unwrap();
    let token = html
        .split("name=\"form\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{}/l/{path}/steward", station.url))
        .header(COOKIE, format!("menqian_form={cookie}"))
        .form_body(&[
            ("form", &token),
            ("name", "李师傅"),
            ("phone", "13511112222"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let admin = session_of(&station, "admin", "管理员的长密码-2026");
    let people = get_page(&station, &admin, "/console/people")
        .text()
        .unwrap();
    assert!(
        people.contains("小巷管家报名") && people.contains("李师傅"),
        "{people}"
    );
    let request = people
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let csrf = csrf_field(&people);
    let r = post_page(
        &station,
        &admin,
        "/console/people/steward",
        &[("csrf", &csrf), ("request", &request), ("id", "steward-li")],
    );
    assert_eq!(r.status(), 200);
    let page = r.text().unwrap();
    assert!(page.contains("李师傅 已成为"), "{page}");
    let code = page
        .split("id=\"code\">")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap()
        .to_string();
    let mut phone = common::Device::enroll(&station.url, &code, "李师傅的手机");
    phone.sync().unwrap();
}
