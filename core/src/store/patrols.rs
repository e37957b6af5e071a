//! Patrol logs: start, append GPS points as they come, stop.

use automerge::ROOT;
use chrono::{DateTime, Duration, Utc};
use rusqlite::OptionalExtension;

use super::{Store, new_id, time_from_ms};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::patrol::{Patrol, TrackPoint, decode_chunks, encode_chunk};
use crate::model::user_id;

/// The most points one append may carry (10 minutes at 1 Hz).
pub const MAX_POINTS_PER_APPEND: usize = 600;

/// An open patrol started at most this long ago is continued by a restarted
/// recorder (the phone killed the app mid-patrol); an older one is closed.
pub const RESUME_WITHIN_HOURS: i64 = 12;

/// A patrol in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct PatrolRef {
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// `None` while it is being walked.
    pub ended_at: Option<DateTime<Utc>>,
    /// GPS points recorded.
    pub points: u32,
}

impl Store {
    pub fn start_patrol(&mut self, user: &str, at: DateTime<Utc>) -> Result<String> {
        let patrol = Patrol {
            id: String::new(),
            user: user_id("user", user)?,
            started_at: at,
            ended_at: None,
            chunks: Vec::new(),
            time: Some(self.record_time(at)?),
        };
        let id = new_id("patrol");
        self.mutate(&id, true, |_, d| doc::write_root(d, &patrol))?;
        Ok(id)
    }

    /// The patrol a recorder should write to: the user's open patrol if it
    /// started within [`RESUME_WITHIN_HOURS`] (the recorder was restarted after
    /// the app was killed), else a new one. Older open patrols of the user are
    /// closed at their last point, so a user never has two open patrols.
    /// Returns the id and whether it was resumed.
    pub fn resume_or_start_patrol(
        &mut self,
        user: &str,
        at: DateTime<Utc>,
    ) -> Result<(String, bool)> {
        let user = user_id("user", user)?;
        let open: Vec<(String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT id, started_at FROM patrols WHERE user = ?1 AND ended_at IS NULL \
                 ORDER BY started_at DESC, id",
            )?
            .query_map([&user], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut resumed = None;
        for (id, started) in open {
            let started = time_from_ms(&id, started)?;
            let recent = started <= at && at - started <= Duration::hours(RESUME_WITHIN_HOURS);
            if resumed.is_none() && recent {
                resumed = Some(id);
            } else {
                let last = self.patrol_track(&id)?.last().map(|p| p.at);
                self.stop_patrol(&id, last.map_or(started, |t| t.max(started)))?;
            }
        }
        match resumed {
            Some(id) => Ok((id, true)),
            None => Ok((self.start_patrol(&user, at)?, false)),
        }
    }

    /// Appends GPS points (one chunk) to an open patrol.
    pub fn append_track(&mut self, id: &str, points: &[TrackPoint]) -> Result<()> {
        if points.is_empty() {
            return Err(Error::invalid("points", "nothing to append"));
        }
        if points.len() > MAX_POINTS_PER_APPEND {
            return Err(Error::invalid(
                "points",
                format!("at most {MAX_POINTS_PER_APPEND} points per append"),
            ));
        }
        let mut clean = Vec::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            p.validate(&format!("points[{i}]"))?;
            clean.push(TrackPoint {
                lat: crate::model::geo::round7(p.lat),
                lon: crate::model::geo::round7(p.lon),
                accuracy_m: (p.accuracy_m * 10.0).round() / 10.0,
                at: p.at,
            });
        }
        let (started_at, ended) = self.patrol_times(id)?;
        if ended {
            return Err(Error::PatrolEnded { id: id.to_string() });
        }
        if let Some((i, _)) = clean.iter().enumerate().find(|(_, p)| p.at < started_at) {
            return Err(Error::invalid(
                format!("points[{i}].at"),
                "before the patrol started",
            ));
        }
        let chunk = encode_chunk(&clean);
        self.mutate(id, false, |_, d| doc::append(d, "chunks", &chunk))
    }

    /// Appends what a location service recorded. Points that can never be
    /// stored (out of range, negative accuracy, or from before the patrol
    /// started, as a phone's cached first fix often is) are dropped rather
    /// than refused, so one bad fix never blocks the rest of a patrol.
    /// Returns how many were dropped.
    pub fn record_fixes(&mut self, id: &str, points: &[TrackPoint]) -> Result<usize> {
        let (started_at, ended) = self.patrol_times(id)?;
        if ended {
            return Err(Error::PatrolEnded { id: id.to_string() });
        }
        let keep: Vec<TrackPoint> = points
            .iter()
            .filter(|p| p.validate("point").is_ok() && p.at >= started_at)
            .copied()
            .collect();
        for chunk in keep.chunks(MAX_POINTS_PER_APPEND) {
            self.append_track(id, chunk)?;
        }
        Ok(points.len() - keep.len())
    }

    pub fn stop_patrol(&mut self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let (started_at, ended) = self.patrol_times(id)?;
        if ended {
            return Err(Error::PatrolEnded { id: id.to_string() });
        }
        if at < started_at {
            return Err(Error::invalid(
                "at",
                "a patrol cannot end before it started",
            ));
        }
        self.mutate(id, false, |_, d| {
            doc::put_field(d, &ROOT, "ended_at", &at.timestamp_millis())
        })
    }

    /// `user`'s patrols started in `[from, to)`, oldest first.
    pub fn patrols_between(
        &self,
        user: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PatrolRef>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, started_at, ended_at, points FROM patrols
             WHERE user = ?1 AND started_at >= ?2 AND started_at < ?3 ORDER BY started_at, id",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![user, from.timestamp_millis(), to.timestamp_millis()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, u32>(3)?,
                ))
            },
        )?;
        rows.map(|r| {
            let (id, started, ended, points) = r?;
            let started = time_from_ms(&id, started)?;
            let ended = ended.map(|e| time_from_ms(&id, e)).transpose()?;
            Ok(PatrolRef {
                id,
                started_at: started,
                ended_at: ended,
                points,
            })
        })
        .collect()
    }

    /// Who walked a patrol.
    pub fn patrol_user(&self, id: &str) -> Result<String> {
        self.conn
            .prepare_cached("SELECT user FROM patrols WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::not_found("patrol", id))
    }

    /// A patrol's track in time order.
    pub fn patrol_track(&self, id: &str) -> Result<Vec<TrackPoint>> {
        let track: String = self
            .conn
            .prepare_cached("SELECT track FROM patrols WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::not_found("patrol", id))?;
        decode_chunks(std::iter::once(track.as_str()))
    }

    fn patrol_times(&self, id: &str) -> Result<(DateTime<Utc>, bool)> {
        let (started, ended): (i64, Option<i64>) = self
            .conn
            .prepare_cached("SELECT started_at, ended_at FROM patrols WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| Error::not_found("patrol", id))?;
        Ok((time_from_ms(id, started)?, ended.is_some()))
    }
}
