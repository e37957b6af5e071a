//! The public signboard page `/s/<code>` against the station binary: what a
//! citizen or the shopkeeper sees after scanning a board, what they never
//! see, other codes, and the per-address limit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::StationProcess;
use menqian_core::ShopCode;

fn get(station: &StationProcess, path: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(format!("{}{path}", station.url)).unwrap()
}

#[test]
fn a_signboard_page_shows_the_shop_and_never_its_contact() {
    let station = StationProcess::start(&[]);
    let shops = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS).unwrap();
    let shop = shops
        .iter()
        .find(|s| s.status == menqian_core::ShopStatus::Active)
        .unwrap();
    let r = get(&station, &format!("/s/{}", shop.code));
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = r.text().unwrap();
    assert!(html.len() < 30_000, "{} bytes", html.len());
    assert!(html.contains(&shop.name) && html.contains(&shop.address));
    assert!(html.contains("码上评定") && html.contains("责任区") && html.contains("自查自纠"));
    assert!(html.contains("<svg") && !html.contains("<script"));
    assert!(html.contains("包环境有序"), "the checklist's duties");
    // Nothing personal: no contact person, no phone, in any form.
    for s in &shops {
        assert!(
            !html.contains(&s.contact.person),
            "{} shown",
            s.contact.person
        );
        let digits: String = s
            .contact
            .phone
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert!(!html.contains(&s.contact.phone) && !html.contains(&digits));
    }
    for (id, ..) in common::users() {
        assert!(!html.contains(id), "a user's name ({id}) shown");
    }

    // A code of this district no shop has; a misprinted code; a code of
    // another district.
    let unknown = ShopCode::new(menqian_fixtures::DISTRICT_CODE, 999_999).unwrap();
    let r = get(&station, &format!("/s/{unknown}"));
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("没有这家商户"));
    let mut misprint = shop.code.clone();
    let last = misprint.pop().unwrap();
    misprint.push(if last == '0' { '1' } else { '0' });
    let r = get(&station, &format!("/s/{misprint}"));
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("编码校验不符"));
    let foreign = ShopCode::new(310_115, 12).unwrap();
    let r = get(&station, &format!("/s/{foreign}"));
    assert_eq!(r.status(), 404);
    assert!(r.text().unwrap().contains("区划代码 310115 的公示牌"));
    let r = get(&station, "/s/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(r.status(), 404);
    assert!(!r.text().unwrap().contains("<script>"));
}

#[test]
fn one_address_is_held_to_a_page_a_second_after_its_burst() {
    let station = StationProcess::start(&[]);
    let code = menqian_fixtures::registry(1).unwrap()[0].code.clone();
    let client = reqwest::blocking::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..45 {
        let r = client
            .get(format!("{}/s/{code}", station.url))
            .send()
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((30..=40).contains(&ok), "{statuses:?}");
    assert_eq!(ok + limited, 45, "{statuses:?}");
    // The station is still up for others (the health check is not limited).
    assert!(station.healthy());
}

/// The signboard page's form token and its cookie, as a phone browser keeps
/// them.
fn form_of(station: &StationProcess, code: &str) -> (String, String) {
    let r = get(station, &format!("/s/{code}"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = r.text().unwrap();
    let token = html
        .split("name=\"form\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    (token, cookie)
}

fn post_report(
    station: &StationProcess,
    code: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut req = client
        .post(format!("{}/s/{code}/report", station.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().unwrap()
}

/// A real camera photo (Sony RX100 IV, 17.9 MP, 16 MB, with EXIF); the test
/// command installs Debian's mate-backgrounds.
const CAMERA_PHOTO: &str = "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg";

/// The report form as a phone browser posts it with a photo chosen:
/// multipart, the fields in the page's order.
fn post_report_with_photo(
    station: &StationProcess,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    photo: &[u8],
) -> reqwest::blocking::Response {
    let boundary = "----menqian-test-7d2f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"IMG_0001.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap()
        .post(format!("{}{path}", station.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("cookie", cookie)
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn a_citizens_report_reaches_a_supervisors_phone_and_its_receipt_follows_the_case() {
    use menqian_core::{CaseMove, CaseSource, CaseStatus, Role};
    let station = StationProcess::start(&[]);
    let mut phone = common::Device::enroll(
        &station.url,
        &station.code_for("supervisor-1"),
        "督查员的手机",
    );
    phone.sync().unwrap();
    let shop = menqian_fixtures::registry(3).unwrap().remove(2);
    let (form, cookie) = form_of(&station, &shop.code);

    // Posted from elsewhere (no cookie): refused, nothing filed.
    let fields = [
        ("form", form.as_str()),
        ("category", "0504"),
        ("description", "门口摆了三张桌子占道经营"),
        ("phone", "139 1234 5678"),
    ];
    assert_eq!(
        post_report(&station, &shop.code, None, &fields).status(),
        403
    );

    // Not a photo: refused with a reason, nothing filed.
    let r = post_report_with_photo(
        &station,
        &format!("/s/{}/report", shop.code),
        &cookie,
        &fields,
        b"GIF89a not a jpeg",
    );
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("JPEG"));

    let camera = std::fs::read(CAMERA_PHOTO)
        .unwrap_or_else(|e| panic!("{CAMERA_PHOTO}: {e} (scripts/test.sh installs it)"));
    assert!(camera.windows(11).any(|w| w == b"DSC-RX100M4"));
    let r = post_report_with_photo(
        &station,
        &format!("/s/{}/report", shop.code),
        &cookie,
        &fields,
        &camera,
    );
    assert_eq!(r.status(), 303);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        receipt.starts_with("/r/") && receipt.len() == 3 + 64,
        "{receipt}"
    );
    let page = get(&station, &receipt).text().unwrap();
    assert!(page.contains("已上报") && page.contains(&shop.name) && page.contains("店外经营"));
    assert!(!page.contains("13912345678") && !page.contains("1234 5678"));

    // The supervisor's phone receives it as a citizen's report at the shop.
    phone.sync().unwrap();
    let case = phone
        .store
        .cases(Some(CaseStatus::Reported), 100)
        .unwrap()
        .into_iter()
        .find(|c| c.shop_id.as_deref() == Some(&shop.id()))
        .expect("the citizen's report on the supervisor's phone");
    let full = phone.store.case(&case.id).unwrap();
    assert_eq!(full.source, CaseSource::Citizen);
    assert_eq!(full.description, "门口摆了三张桌子占道经营");
    // Its photo, re-encoded by the station: 1600 px, no EXIF, no camera.
    assert_eq!(full.photos.len(), 1, "the citizen's photo is on the case");
    let cancel = menqian_client::CancelToken::default();
    let evidence = phone
        .client
        .download_blob(&full.photos[0], &cancel)
        .unwrap();
    assert!(evidence.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(
        evidence.len() < camera.len() / 10,
        "{} bytes",
        evidence.len()
    );
    assert!(
        !evidence.windows(6).any(|w| w == b"Exif\0\0"),
        "no EXIF kept"
    );
    assert!(
        !evidence.windows(7).any(|w| w == b"DSC-RX1"),
        "no camera model kept"
    );
    assert!(!evidence.windows(4).any(|w| w == b"SONY"));
    let meta = &full.evidence[&full.photos[0]];
    assert_eq!((meta.width, meta.height), (1600, 900));
    let thumb = phone.client.download_blob(&meta.thumb, &cancel).unwrap();
    assert!(!thumb.windows(6).any(|w| w == b"Exif\0\0"));
    // Accepted on the phone: the receipt follows at the phone's next sync.
    phone
        .store
        .move_case(
            &case.id,
            CaseMove {
                to: CaseStatus::Accepted,
                by: "supervisor-1".into(),
                role: Role::Supervisor,
                at: chrono::Utc::now(),
                note: Some("已通知商户".into()),
                department: None,
                whistle: None,
            },
        )
        .unwrap();
    phone.sync().unwrap();
    let page = get(&station, &receipt).text().unwrap();
    assert!(page.contains("已受理"), "{page}");
    assert!(!page.contains("supervisor-1") && !page.contains("已通知商户"));
    // The shop's own page never shows the reporter's phone either.
    let shop_page = get(&station, &format!("/s/{}", shop.code)).text().unwrap();
    assert!(!shop_page.contains("13912345678"));

    // A bad receipt link, a bad form.
    assert_eq!(
        get(&station, &format!("/r/{}", "0".repeat(64))).status(),
        404
    );
    let bad = [
        ("form", form.as_str()),
        ("category", "9999"),
        ("description", "x"),
    ];
    assert_eq!(
        post_report(&station, &shop.code, Some(&cookie), &bad).status(),
        400
    );
}

#[test]
fn a_decompression_bomb_or_an_oversized_photo_is_refused_and_nothing_is_filed() {
    let station = StationProcess::start(&[]);
    let shop = menqian_fixtures::registry(2).unwrap().remove(1);
    let mut phone = common::Device::enroll(
        &station.url,
        &station.code_for("supervisor-1"),
        "督查员的手机",
    );
    let at_shop = |phone: &mut common::Device| {
        phone.sync().unwrap();
        phone
            .store
            .cases(None, 100_000)
            .unwrap()
            .into_iter()
            .filter(|c| c.shop_id.as_deref() == Some(&shop.id()))
            .count()
    };
    let before = at_shop(&mut phone);
    let (form, cookie) = form_of(&station, &shop.code);
    let fields = [
        ("form", form.as_str()),
        ("category", "0110"),
        ("description", "门口露天烧烤"),
    ];
    let path = format!("/s/{}/report", shop.code);
    // A small JPEG whose frame header claims 16,000 × 16,000 pixels.
    let mut bomb = menqian_core::evidence::photo::sample_jpeg(64, 64).unwrap();
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    bomb[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
    let r = post_report_with_photo(&station, &path, &cookie, &fields, &bomb);
    assert_eq!(r.status(), 400);
    let text = r.text().unwrap();
    assert!(text.contains("像素过多"), "{text}");
    // Past 20 MB: refused while it arrives.
    let huge = vec![0xFFu8; 21 * 1024 * 1024];
    let r = post_report_with_photo(&station, &path, &cookie, &fields, &huge);
    assert_eq!(r.status(), 413);
    // Without the page's cookie the photo is not even read.
    let r = post_report_with_photo(&station, &path, "menqian_form=forged", &fields, &bomb);
    assert_eq!(r.status(), 403);
    // Nothing was filed, and the station still takes a report.
    assert_eq!(at_shop(&mut phone), before);
    let ok = post_report(&station, &shop.code, Some(&cookie), &fields);
    assert_eq!(ok.status(), 303);
    assert_eq!(at_shop(&mut phone), before + 1);
}

#[test]
fn reports_are_limited_per_address() {
    let station = StationProcess::start(&[]);
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    let (form, cookie) = form_of(&station, &shop.code);
    let fields = [
        ("form", form.as_str()),
        ("category", "0107"),
        ("description", "乱堆纸箱"),
    ];
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            post_report(&station, &shop.code, Some(&cookie), &fields)
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(&statuses[..5], &[303; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(station.healthy());
}

fn cli(station: &StationProcess, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", station.dir.path().to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_lanes_page_takes_a_report_and_a_steward_sign_up_that_an_administrator_approves() {
    let station = StationProcess::start(&[]);
    let lane = menqian_fixtures::DEMO_LANES[1];
    let path: String = url::form_urlencoded::byte_serialize(lane.as_bytes()).collect();
    let r = get(&station, &format!("/l/{path}"));
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = r.text().unwrap();
    let on_lane: Vec<_> = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS)
        .unwrap()
        .into_iter()
        .filter(|s| s.lane.as_deref() == Some(lane) && s.status == menqian_core::ShopStatus::Active)
        .collect();
    assert!(!on_lane.is_empty());
    for s in &on_lane {
        assert!(html.contains(&s.name));
        assert!(!html.contains(&s.contact.phone));
    }
    let form = html
        .split("name=\"form\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |what: &str, fields: &[(&str, &str)]| {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        client
            .post(format!("{}/l/{path}/{what}", station.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(body)
            .send()
            .unwrap()
    };

    // A report about the lane: a citizen's case on the lane, with a receipt.
    let r = post(
        "report",
        &[
            ("form", &form),
            ("category", "0102"),
            ("description", "巷口垃圾没人清"),
        ],
    );
    assert_eq!(r.status(), 303);
    let receipt = r.headers()["location"].to_str().unwrap().to_string();
    let page = get(&station, &receipt).text().unwrap();
    assert!(page.contains("已上报") && page.contains(lane), "{page}");

    // The sign-up, waiting for an administrator.
    let r = post(
        "steward",
        &[
            ("form", &form),
            ("name", "王阿姨"),
            ("phone", "13600001111"),
        ],
    );
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        get(&station, &back)
            .text()
            .unwrap()
            .contains("已收到您的报名")
    );
    let listed = cli(&station, &["user", "steward-requests"]);
    assert!(
        listed.contains("王阿姨") && listed.contains("13600001111") && listed.contains("待审核"),
        "{listed}"
    );
    let id = listed.split('\t').next().unwrap().trim().to_string();

    // Approved: a steward of that lane, whose phone enrolls and syncs.
    let out = cli(
        &station,
        &[
            "user",
            "approve-steward",
            "--request",
            &id,
            "--id",
            "steward-9",
        ],
    );
    assert!(
        out.contains("steward-9 is now the steward of lanes:"),
        "{out}"
    );
    let code = out.lines().nth(1).unwrap().trim().to_string();
    let mut phone = common::Device::enroll(&station.url, &code, "王阿姨的手机");
    phone.sync().unwrap();
    // It holds its lane's shops (as public listings).
    let lanes: Vec<Option<String>> = phone
        .store
        .streets()
        .unwrap()
        .into_iter()
        .map(|(_, l, _)| l)
        .collect();
    assert!(lanes.contains(&Some(lane.to_string())), "{lanes:?}");
    // Approving twice is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", station.dir.path().to_str().unwrap()])
        .args([
            "user",
            "approve-steward",
            "--request",
            &id,
            "--id",
            "steward-10",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    // A lane no shop is on.
    assert_eq!(
        get(&station, "/l/%E6%B2%A1%E6%9C%89%E8%BF%99%E6%9D%A1%E5%B7%B7").status(),
        404
    );
}
