//! The public face: what anyone reaches by scanning a signboard, without an
//! account. `/s/<code>` is a shop's page (码上评定, 自查自纠): small HTML for a
//! phone browser (WeChat's), no script, the shop's zone drawn as inline SVG.
//! Rate-limited per client address; nothing personal is ever on it.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use menqian_core::model::place::LocalFrame;
use menqian_core::{PublicLookup, PublicShop, Zone};

use crate::store::StoreError;
use crate::sync::Station;

pub fn routes() -> Router<Arc<Station>> {
    Router::new()
        .route("/s/{code}", get(shop))
        .layer(axum::middleware::map_response(public_headers))
}

/// Public pages: no script at all, styles inline, no framing.
async fn public_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Template)]
#[template(path = "public/missing.html")]
struct Missing<'a> {
    title: &'a str,
    message: String,
}

fn missing(status: StatusCode, title: &str, message: String) -> Response {
    html(status, &Missing { title, message })
}

struct Row {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "public/shop.html")]
struct ShopPage<'a> {
    s: &'a PublicShop,
    zone_svg: String,
    stars: String,
    grade: &'static str,
    red_flag: bool,
    letter: String,
    week: Option<Row>,
    month: Option<Row>,
    inspections: Vec<Row>,
    items: Vec<(String, String, bool)>,
}

fn day(t: DateTime<Utc>) -> String {
    crate::console::beijing(t)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The zone as a small SVG: its outline in a 240 × 120 box, north up, with
/// a scale bar. Only numbers go into it.
pub fn zone_svg(zone: &Zone) -> String {
    let frame = LocalFrame::new(zone.centroid());
    let pts: Vec<(f64, f64)> = zone
        .points()
        .iter()
        .map(|p| {
            let c = frame.project(*p);
            (c.x, c.y)
        })
        .collect();
    let (min_x, max_x) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (min_y, max_y) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (w, h, pad) = (240.0, 120.0, 14.0);
    let span = (max_x - min_x).max(max_y - min_y).max(1.0);
    let scale = ((w - 2.0 * pad) / span).min((h - 2.0 * pad) / span);
    let (cx, cy) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                w / 2.0 + (x - cx) * scale,
                h / 2.0 - (y - cy) * scale
            )
        })
        .collect();
    // A scale bar of a round length near a quarter of the width.
    let metres = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .rfind(|m| m * scale <= w / 4.0)
        .unwrap_or(1.0);
    format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"责任区示意图\">\
<rect width=\"{w}\" height=\"{h}\" fill=\"#f4f1ea\"/>\
<polygon points=\"{}\" fill=\"#f2c94c\" fill-opacity=\".55\" stroke=\"#b01820\" stroke-width=\"2\"/>\
<line x1=\"8\" y1=\"{y}\" x2=\"{x2:.1}\" y2=\"{y}\" stroke=\"#333\" stroke-width=\"2\"/>\
<text x=\"8\" y=\"{ty}\" font-size=\"10\" fill=\"#333\">{metres} 米</text>\
<text x=\"{nx}\" y=\"14\" font-size=\"10\" fill=\"#333\">北↑</text></svg>",
        path.join(" "),
        y = h - 8.0,
        x2 = 8.0 + metres * scale,
        ty = h - 12.0,
        nx = w - 26.0,
    )
}

async fn shop(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(code): UrlPath<String>,
) -> Response {
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_public(address) {
        let secs = busy.retry_after.as_secs().max(1);
        let mut r = missing(
            StatusCode::TOO_MANY_REQUESTS,
            "请稍候",
            format!("访问太频繁，请 {secs} 秒后再试。"),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let code: String = code.chars().take(32).collect();
    let host = station.signboard_host.clone();
    let found = station
        .read(move |r| {
            Ok(r.documents()
                .public_shop(&code, &host, Utc::now())
                .map_err(StoreError::from)?)
        })
        .await;
    let s = match found {
        Ok(PublicLookup::Found(s)) => s,
        Ok(PublicLookup::Unknown) => {
            return missing(
                StatusCode::NOT_FOUND,
                "没有这家商户",
                "本区登记册中没有这个编码的商户。若公示牌是新挂的，请稍后再扫。".into(),
            );
        }
        Ok(PublicLookup::Malformed(why)) => {
            return missing(
                StatusCode::NOT_FOUND,
                "无法识别的编码",
                format!("{why}。请对准公示牌上的二维码重新扫描。"),
            );
        }
        Ok(PublicLookup::Foreign(district)) => {
            return missing(
                StatusCode::NOT_FOUND,
                "其他区的公示牌",
                format!("这是区划代码 {district} 的公示牌，不在本区。请联系该区的城市管理部门。"),
            );
        }
        Err(_) => {
            return missing(
                StatusCode::SERVICE_UNAVAILABLE,
                "暂时无法显示",
                "请稍后再试。".into(),
            );
        }
    };
    let place = |label: &str, p: Option<(u32, u32, u32)>| {
        p.map(|(score, rank, of)| Row {
            label: label.to_string(),
            value: format!("{score} 分，本街第 {rank} 名（共 {of} 家）"),
        })
    };
    let credit = &s.standing.credit;
    let page = ShopPage {
        zone_svg: zone_svg(&s.zone),
        stars: "★".repeat(credit.stars as usize) + &"☆".repeat(5 - credit.stars.min(5) as usize),
        grade: credit.grade.label_zh(),
        red_flag: s.standing.exempt,
        letter: s
            .letter
            .map_or("未签订".to_string(), |d| format!("已签订（{d}）")),
        week: place("本周", s.week),
        month: place("本月", s.month),
        inspections: s
            .inspections
            .iter()
            .map(|(t, passed)| Row {
                label: day(*t),
                value: if *passed { "合格" } else { "需整改" }.to_string(),
            })
            .collect(),
        items: s
            .open_items
            .iter()
            .map(|(what, deadline, overdue)| {
                (what.clone(), crate::console::beijing(*deadline), *overdue)
            })
            .collect(),
        s: &s,
    };
    html(StatusCode::OK, &page)
}
