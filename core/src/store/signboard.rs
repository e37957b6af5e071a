//! What a printed signboard (公示牌) says: a shop's board with its QR link,
//! its 责任区 in words and its duties from the district's checklist, and a
//! lane's board (街巷长公示牌). The station draws them; every board says the
//! same thing whoever prints it.

use geo::MinimumRotatedRect as _;
use rusqlite::params;

use super::Store;
use super::ledger::Scope;
use crate::error::{Error, Result};
use crate::model::geo::Zone;
use crate::model::place::LocalFrame;
use crate::model::shop::{ShopCategory, ShopTag};
use crate::model::template::ChecklistTemplate;
use crate::qr::ShopCode;

/// A shop's board.
#[derive(Debug, Clone, PartialEq)]
pub struct Signboard {
    pub code: String,
    /// The QR code's content: the shop's public page.
    pub link: String,
    pub name: String,
    pub address: String,
    pub street: String,
    /// 责任区 in words.
    pub zone_words: String,
    /// 门前三包 / 门前五包 …: from the number of duties.
    pub title: String,
    /// Each duty (包环境卫生 …) and what it asks of this shop.
    pub duties: Vec<(String, Vec<String>)>,
    pub issuer: String,
    pub hotline: String,
}

/// A lane's board: who answers for the lane and where to report.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneBoard {
    pub lane: String,
    pub street: String,
    pub subdistrict: Option<String>,
    pub shops: u32,
    pub issuer: String,
    pub hotline: String,
}

/// 三, 四, 五 … for a board's title.
fn count_zh(n: usize) -> &'static str {
    [
        "", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    ]
    .get(n)
    .copied()
    .unwrap_or("多")
}

/// The zone's size in words: along the street, and from the front outward.
pub fn zone_words(zone: &Zone, estimated: bool) -> String {
    let frame = LocalFrame::new(zone.centroid());
    let ring: Vec<geo::Coord<f64>> = zone.points().iter().map(|p| frame.project(*p)).collect();
    let polygon = geo::Polygon::new(geo::LineString::new(ring), vec![]);
    let (mut long, mut short) = (0.0_f64, 0.0_f64);
    if let Some(rect) = polygon.minimum_rotated_rect() {
        let c: Vec<geo::Coord<f64>> = rect.exterior().coords().copied().collect();
        if c.len() >= 3 {
            let side = |a: geo::Coord<f64>, b: geo::Coord<f64>| (a.x - b.x).hypot(a.y - b.y);
            let (a, b) = (side(c[0], c[1]), side(c[1], c[2]));
            long = a.max(b);
            short = a.min(b);
        }
    }
    let mut words = format!(
        "门前沿街 {} 米、自门口向外 {} 米范围内的人行道、绿地及设施",
        long.round(),
        short.round()
    );
    if estimated {
        words.push_str("（暂定，以执法人员现场核定为准）");
    }
    words
}

impl Store {
    /// The boards of the active shops in `scope` (by code), with their QR
    /// links on `host`, the duties from checklist `template` (its latest
    /// version; the first published checklist when `None`).
    pub fn signboards(
        &self,
        scope: Scope<'_>,
        template: Option<&str>,
        host: &str,
    ) -> Result<Vec<Signboard>> {
        let rules = self.rules()?;
        let template = self.board_template(template)?;
        let duties_named: Vec<&crate::model::template::Duty> = template
            .duties
            .iter()
            .filter(|d| d.name.starts_with('包'))
            .collect();
        let title = format!("门前{}包责任公示牌", count_zh(duties_named.len()));
        let (a, b) = scope.params();
        let sql = format!(
            "SELECT s.id FROM shops s WHERE s.status = 'active' AND {} ORDER BY s.code",
            scope.shops_sql()
        );
        let ids: Vec<String> = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params![a, b], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let shop = self.shop(&id)?;
            let code = ShopCode::parse(&shop.code)
                .map_err(|e| Error::corrupt(&id, format!("bad code: {e}")))?;
            let duties = duties_named
                .iter()
                .map(|d| {
                    let items = template
                        .items
                        .iter()
                        .filter(|i| i.duty == d.code && applies(&i.categories, shop.category))
                        .map(|i| i.text.clone())
                        .collect();
                    (d.name.clone(), items)
                })
                .collect();
            out.push(Signboard {
                link: code.link(host),
                code: shop.code.clone(),
                zone_words: zone_words(&shop.zone, shop.tags.contains(&ShopTag::ZoneEstimated)),
                name: shop.name,
                address: shop.address,
                street: shop.street,
                title: title.clone(),
                duties,
                issuer: rules.signboard.issuer.clone(),
                hotline: rules.signboard.hotline.clone(),
            });
        }
        Ok(out)
    }

    /// The lanes of `subdistrict` (all when `None`) with their shops, for
    /// lane boards.
    pub fn lane_boards(&self, subdistrict: Option<&str>) -> Result<Vec<LaneBoard>> {
        let rules = self.rules()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT lane, min(street), min(subdistrict), count(*) FROM shops
             WHERE lane IS NOT NULL AND status = 'active'
               AND (?1 IS NULL OR subdistrict = ?1)
             GROUP BY lane ORDER BY min(subdistrict), min(street), lane",
        )?;
        let rows = stmt.query_map([subdistrict], |r| {
            Ok(LaneBoard {
                lane: r.get(0)?,
                street: r.get(1)?,
                subdistrict: r.get(2)?,
                shops: r.get(3)?,
                issuer: rules.signboard.issuer.clone(),
                hotline: rules.signboard.hotline.clone(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn board_template(&self, id: Option<&str>) -> Result<ChecklistTemplate> {
        let id = match id {
            Some(id) => id.to_string(),
            None => self
                .templates()?
                .into_iter()
                .map(|(id, _, _)| id)
                .next()
                .ok_or_else(|| Error::not_found("checklist", "any"))?,
        };
        self.template(&id, None)
    }
}

fn applies(categories: &[ShopCategory], category: ShopCategory) -> bool {
    categories.is_empty() || categories.contains(&category)
}
