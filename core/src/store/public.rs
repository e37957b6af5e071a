//! What a signboard's QR code shows anyone who scans it (`/s/<code>`): the
//! shop's public fields, its zone and duties, its standing, its score and
//! rank on its street this week and this month (码上评定), its last
//! inspections' verdicts and its open rectification items (自查自纠). Never
//! the contact, phone numbers, officers' names or photos.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension as _;

use super::ledger::{LedgerState, Scope};
use super::scores::Standing;
use super::{Store, time_from_ms};
use crate::error::Result;
use crate::model::geo::Zone;
use crate::model::period::{Period, PeriodKind};
use crate::model::shop::{ShopStatus, ShopTag};
use crate::qr::{QrError, ShopCode};
use crate::scores;

/// A shop as its public page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicShop {
    pub code: String,
    pub name: String,
    pub address: String,
    pub street: String,
    pub lane: Option<String>,
    pub subdistrict: Option<String>,
    pub category: &'static str,
    pub zone: Zone,
    pub zone_estimated: bool,
    /// 责任区 in words and the duties, as on the printed board.
    pub board: super::Signboard,
    /// When the responsibility letter was signed.
    pub letter: Option<NaiveDate>,
    pub standing: Standing,
    /// (score, rank, shops ranked) on its street this week and this month.
    pub week: Option<(u32, u32, u32)>,
    pub month: Option<(u32, u32, u32)>,
    /// The last submitted inspections: when, and passed or not.
    pub inspections: Vec<(DateTime<Utc>, bool)>,
    /// Open rectification items: what, by when, overdue.
    pub open_items: Vec<(String, DateTime<Utc>, bool)>,
    pub closed: bool,
}

/// What a scanned code comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicLookup {
    Found(Box<PublicShop>),
    /// A well-formed code of this district with no shop.
    Unknown,
    /// Not a code: why.
    Malformed(String),
    /// Another district's code: its division code.
    Foreign(String),
}

/// Inspections listed on the page.
const SHOWN_INSPECTIONS: usize = 5;

impl Store {
    /// The public page of the shop with `code`, as of `now`; signboard links
    /// on `host`.
    pub fn public_shop(&self, code: &str, host: &str, now: DateTime<Utc>) -> Result<PublicLookup> {
        let code = match ShopCode::parse(code) {
            Ok(c) => c,
            Err(QrError::CheckFailed) => {
                return Ok(PublicLookup::Malformed(
                    "编码校验不符，可能印错或抄错".into(),
                ));
            }
            Err(_) => return Ok(PublicLookup::Malformed("这不是门前三包编码".into())),
        };
        let id = crate::model::shop::Shop::id_for(&code);
        let Ok(shop) = self.shop(&id) else {
            let ours: Option<String> = self
                .conn
                .prepare_cached("SELECT substr(code, 1, 6) FROM shops LIMIT 1")?
                .query_row([], |r| r.get(0))
                .optional()?;
            return Ok(match ours {
                Some(d) if d != code.district() => {
                    PublicLookup::Foreign(code.district().to_string())
                }
                _ => PublicLookup::Unknown,
            });
        };
        let board = self
            .signboards(Scope::Shop(&id), None, host)?
            .into_iter()
            .next()
            .unwrap_or_else(|| super::Signboard {
                code: shop.code.clone(),
                link: code.link(host),
                name: shop.name.clone(),
                address: shop.address.clone(),
                street: shop.street.clone(),
                zone_words: super::zone_words(
                    &shop.zone,
                    shop.tags.contains(&ShopTag::ZoneEstimated),
                ),
                title: String::new(),
                duties: Vec::new(),
                issuer: String::new(),
                hotline: String::new(),
            });
        let rules = self.rules()?;
        let scope = Scope::Street {
            street: &shop.street,
            subdistrict: shop.subdistrict.as_deref(),
        };
        let place = |kind: PeriodKind| -> Result<Option<(u32, u32, u32)>> {
            let period = Period::of(kind, now);
            let (facts, _) = self.shop_facts(&rules, scope, period.start, now)?;
            let board = scores::scoreboard(&facts, &rules, &period);
            Ok(board
                .ranked
                .into_iter()
                .find(|r| r.score.shop_id == id)
                .map(|r| (r.score.score, r.rank, r.of)))
        };
        let mut inspections = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, ended_at, verdict FROM inspections
                 WHERE shop_id = ?1 AND verdict IS NOT NULL AND ended_at IS NOT NULL
                 ORDER BY ended_at DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(rusqlite::params![id, SHOWN_INSPECTIONS as i64])?;
            while let Some(r) = rows.next()? {
                let inspection: String = r.get(0)?;
                let verdict: String = r.get(2)?;
                inspections.push((
                    time_from_ms(&inspection, r.get(1)?)?,
                    verdict == crate::model::inspection::Verdict::Passed.as_str(),
                ));
            }
        }
        let open_items = self
            .rectification_ledger(Scope::Shop(&id), now)?
            .into_iter()
            .filter(|i| i.state != LedgerState::Closed)
            .map(|i| {
                let overdue = i.deadline < now;
                let what = if i.item_text.is_empty() {
                    i.item
                } else {
                    i.item_text
                };
                (what, i.deadline, overdue)
            })
            .collect();
        Ok(PublicLookup::Found(Box::new(PublicShop {
            code: shop.code.clone(),
            week: place(PeriodKind::Week)?,
            month: place(PeriodKind::Month)?,
            standing: self.standing(&id, now)?,
            name: shop.name,
            address: shop.address,
            street: shop.street,
            lane: shop.lane,
            subdistrict: shop.subdistrict,
            category: shop.category.label_zh(),
            zone_estimated: shop.tags.contains(&ShopTag::ZoneEstimated),
            zone: shop.zone,
            board,
            letter: shop.letter.map(|l| l.signed_on),
            inspections,
            open_items,
            closed: shop.status == ShopStatus::Closed,
        })))
    }
}
