//! Evidence in the store: capturing photos into the blob directory, the upload
//! queue, photo metadata carried into records, clock stamps and time checks,
//! and patrol track reports.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, get_meta, set_meta};
use crate::error::{Error, Result};
use crate::evidence::time::{self, ClockAnchor, RecordTime, TimeCheck};
use crate::evidence::{Evidence, PhotoMeta, validate_hash};
use crate::model::track::{self, LaneLine, TrackReport, TrackRules};

const CLOCK_ANCHOR: &str = "clock_anchor";

/// A blob waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBlob {
    pub hash: String,
    pub bytes: u64,
}

/// What capturing a photo produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedPhoto {
    pub hash: String,
    pub meta: PhotoMeta,
}

/// Where and by whom a photo is taken: what the watermark says.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub at: DateTime<Utc>,
    pub fix: Option<crate::model::geo::GpsFix>,
    /// The officer's or steward's display name.
    pub taken_by: String,
    /// The shop photographed, if any: its street, lane and name go in the stamp.
    pub shop_id: Option<String>,
    /// The place to print when there is no shop (e.g. "富义街东一巷口").
    pub place: Option<String>,
}

impl Store {
    /// The clocks to stamp a record made at `device` with.
    pub(crate) fn record_time(&self, device: DateTime<Utc>) -> Result<RecordTime> {
        let anchor: Option<ClockAnchor> =
            get_meta(&self.conn, CLOCK_ANCHOR)?.and_then(|s| serde_json::from_str(&s).ok());
        Ok(RecordTime::stamp(device, anchor.as_ref(), (self.uptime)()))
    }

    /// Records that the server's clock read `server_ms` now (a sync does this):
    /// later records carry the monotonic time since.
    pub fn set_clock_anchor(&mut self, server_ms: i64) -> Result<()> {
        let Some(up) = (self.uptime)() else {
            return Ok(());
        };
        let anchor = ClockAnchor {
            server_ms,
            boot_id: up.boot_id,
            uptime_ms: up.ms,
        };
        let text = serde_json::to_string(&anchor).map_err(|e| Error::corrupt("meta", e))?;
        let tx = self.conn.transaction()?;
        set_meta(&tx, CLOCK_ANCHOR, &text)?;
        super::commit(tx)
    }

    /// Sets where the monotonic boot clock is read (phones pass their own).
    pub fn set_uptime_source(&mut self, source: time::UptimeSource) {
        self.uptime = source;
    }

    /// What the clocks say about a record's time: its device time against the
    /// monotonic evidence, or against the server's receive time.
    pub fn time_check(&self, doc_id: &str) -> Result<TimeCheck> {
        let table = match super::kind_name(doc_id) {
            "inspection" => "inspections",
            "case" => "cases",
            "patrol" => "patrols",
            _ => {
                return Err(Error::invalid(
                    "doc_id",
                    "only records carry clock evidence",
                ));
            }
        };
        let t: Option<Option<String>> = self
            .conn
            .query_row(
                &format!("SELECT time FROM {table} WHERE id = ?1"),
                [doc_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(t) = t else {
            return Err(Error::not_found("record", doc_id));
        };
        let Some(t) = t.and_then(|s| serde_json::from_str::<RecordTime>(&s).ok()) else {
            return Ok(TimeCheck::Unverified);
        };
        Ok(time::check(
            &t,
            self.received_at(doc_id)?,
            self.config.clock_skew_bound_ms(),
        ))
    }

    /// When the sync server first received any change of this document.
    pub fn received_at(&self, doc_id: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT min(received_at) FROM changes WHERE doc_id = ?1")?
            .query_row([doc_id], |r| r.get(0))?)
    }

    /// Notes the server's receive time on this device's changes after `after`
    /// up to `upto` (one pushed page; the push reply carries the time).
    pub fn mark_received(&mut self, after: u64, upto: u64, received_ms: i64) -> Result<()> {
        let (after, upto) = (
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(upto).unwrap_or(i64::MAX),
        );
        self.conn
            .prepare_cached(
                "UPDATE changes SET received_at = ?1
                 WHERE seq > ?2 AND seq <= ?3 AND local = 1 AND received_at IS NULL",
            )?
            .execute(params![received_ms, after, upto])?;
        Ok(())
    }

    /// Photos taken on this device, processed and stored as blobs: the evidence
    /// JPEG (watermarked, 1600 px) and its thumbnail. Both wait for upload; the
    /// returned hash goes into an item's or a report's `photos`.
    #[cfg(feature = "photos")]
    pub fn capture_photo(
        &mut self,
        path: &std::path::Path,
        capture: Capture,
    ) -> Result<CapturedPhoto> {
        use crate::evidence::photo::{self, PhotoLimits};
        let limits = PhotoLimits::default();
        let size = std::fs::metadata(path)?.len();
        if size > limits.max_file_bytes {
            return Err(crate::evidence::PhotoError::TooLarge {
                bytes: size,
                limit: limits.max_file_bytes,
            }
            .into());
        }
        if let Some(fix) = &capture.fix {
            fix.validate("fix")?;
        }
        let stamp = self.photo_stamp(
            capture.shop_id.as_deref(),
            capture.place.as_deref(),
            capture.at,
            capture.fix.map(|f| f.point()),
            &capture.taken_by,
        )?;
        let bytes = std::fs::read(path)?;
        let out = photo::process(&bytes, &stamp, &limits)?;
        drop(bytes);
        let meta = out.meta(capture.fix, self.record_time(capture.at)?);
        self.register_photo(&out.evidence, &out.thumb, meta)
    }

    /// The watermark of a photo taken at `at` by `taken_by`: at a shop (its
    /// subdistrict, lane, address, name and code) or at `place`.
    #[cfg(feature = "photos")]
    pub fn photo_stamp(
        &self,
        shop_id: Option<&str>,
        place: Option<&str>,
        at: DateTime<Utc>,
        position: Option<crate::model::geo::GeoPoint>,
        taken_by: &str,
    ) -> Result<crate::evidence::watermark::Stamp> {
        let inspector = crate::model::required_text("taken_by", taken_by, 50)?;
        let (place, shop) = match shop_id {
            Some(id) => {
                let s = self.shop(id)?;
                let place = [
                    s.subdistrict.clone(),
                    s.lane.clone(),
                    Some(s.address.clone()),
                ]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
                (place, Some(format!("{}（{}）", s.name, s.code)))
            }
            None => (place.unwrap_or_default().to_string(), None),
        };
        Ok(crate::evidence::watermark::Stamp {
            at,
            place,
            position,
            inspector,
            shop,
        })
    }

    /// Registers a photo the station received and processed at `at` (a
    /// citizen's, a camera's snapshot): its time is the station's own clock.
    #[cfg(feature = "photos")]
    pub fn register_received_photo(
        &mut self,
        photo: &crate::evidence::photo::ProcessedPhoto,
        at: DateTime<Utc>,
    ) -> Result<CapturedPhoto> {
        let ms = at.timestamp_millis();
        let time = time::RecordTime {
            device_ms: ms,
            synced_server_ms: Some(ms),
            since_sync_ms: Some(0),
        };
        let captured =
            self.register_photo(&photo.evidence, &photo.thumb, photo.meta(None, time))?;
        // Already where it belongs: nothing for this store to upload.
        self.mark_uploaded(&photo.thumb_hash)?;
        self.mark_uploaded(&captured.hash)?;
        Ok(captured)
    }

    /// Stores a photo already processed (an evidence JPEG and its thumbnail,
    /// described by `meta`, whose `thumb` and `bytes` are set here): what
    /// [`Store::capture_photo`] does after processing, and what a photo
    /// processed elsewhere (the station's demo, a camera's alert) goes
    /// through. Both wait for upload; the returned hash goes into `photos`.
    pub fn register_photo(
        &mut self,
        evidence: &[u8],
        thumb: &[u8],
        mut meta: PhotoMeta,
    ) -> Result<CapturedPhoto> {
        // Blobs first (each written whole or not at all), then the rows: a
        // crash between leaves an unreferenced file, never a row without one.
        let thumb_hash = self.blobs.put(thumb)?;
        let evidence_hash = self.blobs.put(evidence)?;
        meta.thumb = thumb_hash.clone();
        meta.bytes = evidence.len() as u64;
        let text = serde_json::to_string(&meta).map_err(|e| Error::corrupt("photo", e))?;
        let tx = self.conn.transaction()?;
        tx.prepare_cached("INSERT OR REPLACE INTO photos (hash, meta) VALUES (?1, ?2)")?
            .execute(params![evidence_hash, text])?;
        let mut queue =
            tx.prepare_cached("INSERT OR IGNORE INTO blob_queue (hash, bytes) VALUES (?1, ?2)")?;
        queue.execute(params![thumb_hash, thumb.len() as i64])?;
        queue.execute(params![evidence_hash, evidence.len() as i64])?;
        drop(queue);
        super::commit(tx)?;
        Ok(CapturedPhoto {
            hash: evidence_hash,
            meta,
        })
    }

    /// The metadata of photos a record is about to refer to: each must have
    /// been captured on this device, or already be in the record.
    pub(crate) fn evidence_for(
        tx: &Transaction<'_>,
        photos: &[String],
        existing: &Evidence,
    ) -> Result<Evidence> {
        let mut out = BTreeMap::new();
        for (i, hash) in photos.iter().enumerate() {
            validate_hash(&format!("photos[{i}]"), hash)?;
            if let Some(meta) = existing.get(hash) {
                out.insert(hash.clone(), meta.clone());
                continue;
            }
            let text: String = tx
                .prepare_cached("SELECT meta FROM photos WHERE hash = ?1")?
                .query_row([hash], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::not_found("photo", hash.clone()))?;
            let meta: PhotoMeta =
                serde_json::from_str(&text).map_err(|e| Error::corrupt(hash.clone(), e))?;
            out.insert(hash.clone(), meta);
        }
        Ok(out)
    }

    /// The file of a photo or thumbnail this device holds.
    pub fn blob_path(&self, hash: &str) -> Result<std::path::PathBuf> {
        let path = self.blobs.path(hash)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::not_found("photo", hash))
        }
    }

    pub fn blobs(&self) -> &crate::evidence::blobs::BlobDir {
        &self.blobs
    }

    /// Blobs still to upload, oldest first.
    pub fn pending_blobs(&self) -> Result<Vec<PendingBlob>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, bytes FROM blob_queue WHERE uploaded = 0 ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingBlob {
                hash: r.get(0)?,
                bytes: r.get::<_, i64>(1)?.unsigned_abs(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn mark_uploaded(&mut self, hash: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE blob_queue SET uploaded = 1 WHERE hash = ?1")?
            .execute([hash])?;
        Ok(())
    }

    /// Whether a reader may download a blob: some record they may see refers
    /// to it (as a photo or as its thumbnail).
    /// Every photo and thumbnail the named documents refer to.
    pub fn blobs_referenced_by(&self, doc_ids: &[&str]) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, thumb FROM evidence_refs WHERE doc_id = ?1")?;
        let mut out = Vec::new();
        for id in doc_ids {
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (hash, thumb): (String, String) = row?;
                out.push(hash);
                out.push(thumb);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub fn blob_visible(&self, hash: &str, reader: &crate::access::Visibility) -> Result<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM evidence_refs e
               WHERE (e.hash = :hash OR e.thumb = :hash) AND {})",
            crate::access::visible_doc("e.doc_id")
        );
        let bind = reader.bindings();
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(bind.with(&[(":hash", &hash)]).as_slice(), |r| r.get(0))?)
    }

    /// The lanes with a shop within `margin_m` of the box around `points`, each
    /// as the line its shops imply ([`track::lane_line_through`]: the registry
    /// holds no lane geometry).
    pub fn lanes_near(
        &self,
        points: &[crate::model::patrol::TrackPoint],
        margin_m: f64,
    ) -> Result<Vec<LaneLine>> {
        let Some(first) = points.first() else {
            return Ok(Vec::new());
        };
        let fold = |f: fn(f64, f64) -> f64, get: fn(&crate::model::patrol::TrackPoint) -> f64| {
            points.iter().map(get).fold(get(first), f)
        };
        let (lat_lo, lat_hi) = (fold(f64::min, |p| p.lat), fold(f64::max, |p| p.lat));
        let (lon_lo, lon_hi) = (fold(f64::min, |p| p.lon), fold(f64::max, |p| p.lon));
        let dlat = margin_m / 111_195.0;
        let dlon = dlat / lat_lo.to_radians().cos().max(0.01);
        let names: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT lane FROM shops WHERE lane IS NOT NULL
                   AND lat BETWEEN ?1 AND ?2 AND lon BETWEEN ?3 AND ?4 ORDER BY lane",
            )?
            .query_map(
                params![lat_lo - dlat, lat_hi + dlat, lon_lo - dlon, lon_hi + dlon],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let mut lanes = Vec::with_capacity(names.len());
        let mut stmt = self
            .conn
            .prepare_cached("SELECT lat, lon FROM shops WHERE lane = ?1")?;
        for name in names {
            let shops: Vec<crate::model::geo::GeoPoint> = stmt
                .query_map([&name], |r| {
                    Ok(crate::model::geo::GeoPoint::new(r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            lanes.extend(track::lane_line_through(&name, &shops));
        }
        Ok(lanes)
    }

    /// A patrol's track, cleaned and measured, with the coverage of the lanes
    /// it passed (those with a shop within 30 m of its box).
    pub fn patrol_report_near(
        &self,
        id: &str,
        rules: &TrackRules,
    ) -> Result<(TrackReport, Vec<LaneLine>)> {
        let points = self.patrol_track(id)?;
        let lanes = self.lanes_near(&points, 30.0)?;
        Ok((track::analyse(&points, &lanes, rules), lanes))
    }

    /// A patrol's track, cleaned and measured, with the coverage of `lanes`.
    pub fn patrol_report(
        &self,
        id: &str,
        lanes: &[LaneLine],
        rules: &TrackRules,
    ) -> Result<TrackReport> {
        let points = self.patrol_track(id)?;
        Ok(track::analyse(&points, lanes, rules))
    }
}
