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
