//! Reporting problems and moving cases along their status history.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::inspections::validate_photos;
use super::{Store, new_id, split_list, time_from_ms};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::case::{Case, CaseSource, CaseStatus, NewCase, StatusChange};
use crate::model::geo::GeoPoint;
use crate::model::{optional_text, user_id};

/// What a case list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    pub id: String,
    pub category: String,
    pub status: CaseStatus,
    pub location: GeoPoint,
    pub shop_id: Option<String>,
    pub reported_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
}

impl Store {
    /// Reports a problem (随手拍, inspection finding, hotline …); it starts as 已上报.
    pub fn report_case(&mut self, new: NewCase) -> Result<String> {
        let reported_by = user_id("reported_by", &new.reported_by)?;
        new.location.validate("location")?;
        if !self.category_exists(&new.category)? {
            return Err(Error::invalid(
                "category",
                format!("{} is not in the category table", new.category),
            ));
        }
        // A report at a shop lies where the shop does.
        let (subdistrict, lane) = match &new.shop_id {
            Some(shop) => {
                let shop = self.shop(shop)?;
                (shop.subdistrict, shop.lane)
            }
            None => {
                let sub = optional_text("subdistrict", new.subdistrict.as_deref(), 50)?;
                let lane = optional_text("lane", new.lane.as_deref(), 50)?;
                if sub.is_none() && lane.is_none() {
                    self.area_near(new.location)?
                } else {
                    (sub, lane)
                }
            }
        };
        let description =
            optional_text("description", Some(&new.description), 500)?.unwrap_or_default();
        let photos = validate_photos(new.photos)?;
        if description.is_empty() && photos.is_empty() {
            return Err(Error::invalid(
                "description",
                "a report needs a description or a photo",
            ));
        }
        if new.deadline.is_some_and(|d| d < new.reported_at) {
            return Err(Error::invalid(
                "deadline",
                "the deadline is before the report",
            ));
        }
        let case = Case {
            id: String::new(),
            source: new.source,
            category: new.category,
            location: new.location,
            shop_id: new.shop_id,
            photos,
            description,
            deadline: new.deadline,
            reported_by: reported_by.clone(),
            reported_at: new.reported_at,
            subdistrict,
            lane,
            history: vec![StatusChange {
                status: CaseStatus::Reported,
                at: new.reported_at,
                by: reported_by,
                note: None,
            }],
            evidence: Default::default(),
            time: Some(self.record_time(new.reported_at)?),
        };
        let id = new_id("case");
        self.mutate(&id, true, |tx, d| {
            let mut case = case;
            case.evidence = Store::evidence_for(tx, &case.photos, &Default::default())?;
            doc::write_root(d, &case)
        })?;
        Ok(id)
    }

    /// The subdistrict and lane of the shop nearest to `at` (searched within
    /// 200 m, then 2 km): where a report made away from any shop is filed, so
    /// the officers of that area receive it.
    fn area_near(&self, at: GeoPoint) -> Result<(Option<String>, Option<String>)> {
        const M_PER_DEG: f64 = 111_320.0;
        let lon_scale = at.lat.to_radians().cos().max(0.01);
        for radius_m in [200.0, 2_000.0] {
            let (dlat, dlon) = (radius_m / M_PER_DEG, radius_m / (M_PER_DEG * lon_scale));
            let found = self
                .conn
                .prepare_cached(
                    "SELECT subdistrict, lane FROM shops
                     WHERE lat BETWEEN ?1 - ?3 AND ?1 + ?3 AND lon BETWEEN ?2 - ?4 AND ?2 + ?4
                     ORDER BY (lat - ?1) * (lat - ?1) + (lon - ?2) * (lon - ?2) * ?5 * ?5, id
                     LIMIT 1",
                )?
                .query_row(params![at.lat, at.lon, dlat, dlon, lon_scale], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some(area) = found {
                return Ok(area);
            }
        }
        Ok((None, None))
    }

    /// Moves a case to `status`. Moves made offline on several devices are all
    /// kept in the history; the last one in the merged order is the status.
    pub fn set_case_status(
        &mut self,
        id: &str,
        status: CaseStatus,
        by: &str,
        at: DateTime<Utc>,
        note: Option<&str>,
    ) -> Result<()> {
        let step = StatusChange {
            status,
            at,
            by: user_id("by", by)?,
            note: optional_text("note", note, 500)?,
        };
        self.mutate(id, false, |_, d| doc::append(d, "history", &step))
    }

    /// A case with its whole history.
    pub fn case(&self, id: &str) -> Result<Case> {
        let base = self
            .conn
            .prepare_cached(
                "SELECT source, category, lat, lon, shop_id, description, photos, deadline,
                        reported_by, reported_at, subdistrict, lane, evidence, time
                 FROM cases WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    GeoPoint::new(r.get(2)?, r.get(3)?),
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                    (
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, Option<String>>(11)?,
                        r.get::<_, Option<String>>(12)?,
                        r.get::<_, Option<String>>(13)?,
                    ),
                ))
            })
            .optional()?
            .ok_or_else(|| Error::not_found("case", id))?;
        let (
            source,
            category,
            location,
            shop_id,
            description,
            photos,
            deadline,
            reported_by,
            reported_at,
            (subdistrict, lane, evidence, record_time),
        ) = base;
        let evidence = match evidence {
            Some(e) => serde_json::from_str(&e).map_err(|e| Error::corrupt(id, e))?,
            None => Default::default(),
        };
        let record_time = record_time
            .map(|t| serde_json::from_str(&t).map_err(|e| Error::corrupt(id, e)))
            .transpose()?;
        let time = |ms: i64| time_from_ms(id, ms);
        let source: CaseSource = parse_enum(id, &source)?;
        let mut history = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, at, by, note FROM case_history WHERE case_id = ?1 ORDER BY idx",
        )?;
        let mut rows = stmt.query(params![id])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(0)?;
            history.push(StatusChange {
                status: parse_enum(id, &status)?,
                at: time(r.get(1)?)?,
                by: r.get(2)?,
                note: r.get(3)?,
            });
        }
        Ok(Case {
            id: id.to_string(),
            source,
            category,
            location,
            shop_id,
            photos: split_list(&photos),
            description,
            deadline: deadline.map(time).transpose()?,
            reported_by,
            reported_at: time(reported_at)?,
            subdistrict,
            lane,
            history,
            evidence,
            time: record_time,
        })
    }

    /// Cases in a status (all when `None`), newest report first.
    pub fn cases(&self, status: Option<CaseStatus>, limit: u32) -> Result<Vec<CaseSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, category, status, lat, lon, shop_id, reported_at, deadline FROM cases
             WHERE ?1 IS NULL OR status = ?1 ORDER BY reported_at DESC, id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![status.map(|s| s.as_str()), limit])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let status: String = r.get(2)?;
            let time = |ms: i64| time_from_ms(&id, ms);
            out.push(CaseSummary {
                status: parse_enum(&id, &status)?,
                category: r.get(1)?,
                location: GeoPoint::new(r.get(3)?, r.get(4)?),
                shop_id: r.get(5)?,
                reported_at: time(r.get(6)?)?,
                deadline: r.get::<_, Option<i64>>(7)?.map(time).transpose()?,
                id: id.clone(),
            });
        }
        Ok(out)
    }
}

/// Parses a snake_case enum name stored in the index.
fn parse_enum<T: serde::de::DeserializeOwned>(id: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| Error::corrupt(id, e))
}
