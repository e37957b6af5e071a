//! The accounts on PostgreSQL: the same [`Accounts`] as `accounts.sqlite`,
//! held to the same conformance suite. Each handle owns one connection;
//! [`Accounts::reader`] opens another.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use menqian_core::{Area, Role};
use postgres::{Client, Row, Transaction};

use super::{Conn, migrate};
use crate::store::{
    Accounts, AccountsRead, AlertEvent, AlertRecorded, AlertSource, Device, Enrolled, Reminder,
    Session, StewardRequest, StoreError, StoreResult, User, checked_user_id, code_refusal, hash,
    latest_photos, new_code, new_device_id, new_token, text,
};

/// The accounts in a PostgreSQL database.
pub struct PgAccounts {
    client: Mutex<Conn>,
    url: String,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").finish_non_exhaustive()
    }
}

impl PgAccounts {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings its
    /// schema up to date.
    pub fn open(url: &str) -> StoreResult<PgAccounts> {
        let mut client = Conn::open(url)?;
        migrate(&mut client)?;
        Ok(PgAccounts {
            client: Mutex::new(client),
            url: url.to_string(),
        })
    }

    fn client(&self) -> MutexGuard<'_, Conn> {
        // A panic mid-query left no transaction open (the client rolls an
        // unfinished one back when it is dropped), so the lock is taken again.
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        // PostgreSQL closed the connection (a restart): open it again. If it
        // is still down, the next query says so.
        let _ = client.reopen_if_closed();
        client
    }

    fn user(&self, id: &str) -> StoreResult<User> {
        user_by_id(&mut **self.client(), id)
    }
}

const DEVICE_COLUMNS: &str =
    "id, user_id, name, actor, revoked_at IS NOT NULL, area_epoch, last_seen_at";

fn device_from_row(r: &Row) -> Device {
    Device {
        id: r.get(0),
        user_id: r.get(1),
        name: r.get(2),
        actor: r.get(3),
        revoked: r.get(4),
        area_epoch: r.get(5),
        last_seen_ms: r.get(6),
    }
}

const USER_COLUMNS: &str = "id, name, role, area, area_epoch";

fn user_from_row(r: &Row) -> StoreResult<User> {
    let role: String = r.get(2);
    let role = Role::parse(&role).ok_or_else(|| StoreError::Invalid {
        field: "role",
        reason: format!("unknown role {role}"),
    })?;
    let area: String = r.get(3);
    let area = Area::parse(&area).map_err(|reason| StoreError::Invalid {
        field: "area",
        reason,
    })?;
    Ok(User {
        id: r.get(0),
        name: r.get(1),
        role,
        area,
        area_epoch: r.get(4),
    })
}

const REMINDER_COLUMNS: &str =
    "id, shop_id, category, source, first_at, last_at, deadline, alerts, case_id";

fn reminder_from_row(r: &Row) -> Reminder {
    let t = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Reminder {
        id: r.get(0),
        shop_id: r.get(1),
        category: r.get(2),
        source: r.get(3),
        first_at: t(r.get(4)),
        last_at: t(r.get(5)),
        deadline: t(r.get(6)),
        alerts: r.get(7),
        case_id: r.get(8),
    }
}

fn user_by_id(client: &mut impl postgres::GenericClient, id: &str) -> StoreResult<User> {
    let row = client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )?
        .ok_or_else(|| StoreError::NotFound {
            kind: "user",
            id: id.to_string(),
        })?;
    user_from_row(&row)
}

/// Adds a user, refusing an id that exists.
fn insert_user(client: &mut impl postgres::GenericClient, user: &User) -> StoreResult<()> {
    checked_user_id(&user.id)?;
    let name = text("name", &user.name, 50)?;
    let inserted = client.execute(
        "INSERT INTO users (id, name, role, area, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING",
        &[
            &user.id,
            &name,
            &user.role.as_str(),
            &user.area.to_string(),
            &Utc::now().timestamp_millis(),
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "user {} exists already",
            user.id
        )));
    }
    Ok(())
}

/// Whether `e` is a unique or primary-key violation.
fn is_conflict(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl AccountsRead for PgAccounts {
    fn authenticate(&self, token: &str) -> StoreResult<(Device, User)> {
        let mut client = self.client();
        let device = client
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = $1"),
                &[&hash(token)],
            )?
            .map(|r| device_from_row(&r))
            .ok_or_else(|| StoreError::Unauthorized("unknown token".into()))?;
        if device.revoked {
            return Err(StoreError::Unauthorized(
                "this device's token was revoked".into(),
            ));
        }
        let user = user_by_id(&mut **client, &device.user_id)?;
        Ok((device, user))
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        self.client()
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"),
                &[],
            )?
            .iter()
            .map(user_from_row)
            .collect()
    }

    fn devices(&self) -> StoreResult<Vec<Device>> {
        Ok(self
            .client()
            .query(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id"),
                &[],
            )?
            .iter()
            .map(device_from_row)
            .collect())
    }

    fn password_hash(&self, user_id: &str) -> StoreResult<(User, Option<String>)> {
        let user = self.user(user_id)?;
        let phc = self
            .client()
            .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user_id])?
            .get(0);
        Ok((user, phc))
    }

    fn accounts_version(&self) -> StoreResult<i64> {
        Ok(self
            .client()
            .query_one("SELECT version FROM accounts_version", &[])?
            .get(0))
    }

    fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<(User, String)>> {
        let mut client = self.client();
        let found = client.query_opt(
            "SELECT user_id, csrf FROM sessions WHERE token_hash = $1 AND expires_at > $2",
            &[&hash(token), &now.timestamp_millis()],
        )?;
        match found {
            None => Ok(None),
            Some(r) => {
                let user: String = r.get(0);
                Ok(Some((user_by_id(&mut **client, &user)?, r.get(1))))
            }
        }
    }

    fn alert_source(&self, id: &str) -> StoreResult<Option<AlertSource>> {
        Ok(self
            .client()
            .query_opt(
                "SELECT id, kind, shop_id, lat, lon, secret FROM alert_sources WHERE id = $1",
                &[&id],
            )?
            .map(|r| {
                let (lat, lon): (Option<f64>, Option<f64>) = (r.get(3), r.get(4));
                AlertSource {
                    id: r.get(0),
                    kind: r.get(1),
                    shop_id: r.get(2),
                    location: lat.zip(lon).map(|(a, b)| menqian_core::GeoPoint::new(a, b)),
                    secret: r.get(5),
                }
            }))
    }

    fn open311_client(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .client()
            .query_opt(
                "SELECT name FROM open311_keys WHERE key_hash = $1",
                &[&hash(key)],
            )?
            .map(|r| r.get(0)))
    }

    fn reminders_of(&self, shop_id: &str, since: DateTime<Utc>) -> StoreResult<Vec<Reminder>> {
        Ok(self
            .client()
            .query(
                &format!(
                    "SELECT {REMINDER_COLUMNS} FROM reminders
                     WHERE shop_id = $1 AND case_id IS NULL AND last_at >= $2
                     ORDER BY first_at DESC LIMIT 20"
                ),
                &[&shop_id, &since.timestamp_millis()],
            )?
            .iter()
            .map(reminder_from_row)
            .collect())
    }

    fn reminder_count(&self) -> StoreResult<i64> {
        Ok(self
            .client()
            .query_one("SELECT count(*) FROM reminders", &[])?
            .get(0))
    }

    fn reminder_photos(&self, reminder: i64) -> StoreResult<Vec<String>> {
        let photos = self
            .client()
            .query(
                "SELECT photo FROM alerts WHERE reminder_id = $1 AND photo IS NOT NULL
                 ORDER BY at DESC LIMIT 3",
                &[&reminder],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(latest_photos(photos))
    }

    fn steward_requests(&self) -> StoreResult<Vec<StewardRequest>> {
        Ok(self
            .client()
            .query(
                "SELECT id, lane, name, phone, created_at, user_id FROM steward_requests
                 ORDER BY id DESC LIMIT 500",
                &[],
            )?
            .iter()
            .map(|r| StewardRequest {
                id: r.get(0),
                lane: r.get(1),
                name: r.get(2),
                phone: r.get(3),
                at: DateTime::from_timestamp_millis(r.get(4)).unwrap_or_default(),
                user_id: r.get(5),
            })
            .collect())
    }

    fn receipt(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(self
            .client()
            .query_opt(
                "SELECT case_id FROM receipts WHERE token_hash = $1",
                &[&hash(token)],
            )?
            .map(|r| r.get(0)))
    }

    fn receipt_phones(&self, case_id: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .client()
            .query(
                "SELECT phone FROM receipts WHERE case_id = $1 AND phone IS NOT NULL
                 ORDER BY created_at",
                &[&case_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn may_upload(&self, device_id: &str, hash: &str) -> StoreResult<bool> {
        Ok(self
            .client()
            .query_opt(
                "SELECT 1 FROM device_blobs WHERE device_id = $1 AND hash = $2",
                &[&device_id, &hash],
            )?
            .is_some())
    }
}

/// Runs `work` in a transaction and commits it.
fn in_transaction<T>(
    client: &mut Client,
    work: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut tx = client.transaction()?;
    let out = work(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

impl Accounts for PgAccounts {
    fn reader(&self) -> StoreResult<Box<dyn AccountsRead>> {
        Ok(Box::new(PgAccounts {
            client: Mutex::new(Conn::open(&self.url)?),
            url: self.url.clone(),
        }))
    }

    fn add_user(&mut self, user: &User) -> StoreResult<()> {
        insert_user(&mut **self.client(), user)
    }

    fn set_area(&mut self, user_id: &str, area: &Area) -> StoreResult<()> {
        let n = self.client().execute(
            "UPDATE users SET area = $1, area_epoch = area_epoch + 1 WHERE id = $2 AND area <> $1",
            &[&area.to_string(), &user_id],
        )?;
        if n == 0 {
            // Unchanged, or no such user.
            self.user(user_id)?;
        }
        Ok(())
    }

    fn issue_enrollment(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<String> {
        self.user(user_id)?;
        let code = new_code();
        self.client().execute(
            "INSERT INTO enrollment_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            &[&hash(&code), &user_id, &(now + ttl).timestamp_millis()],
        )?;
        Ok(code)
    }

    fn redeem_enrollment(
        &mut self,
        code: &str,
        actor: &str,
        device_name: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Enrolled> {
        let name = text("device_name", device_name, 100)?;
        let code = code.trim().to_ascii_uppercase();
        let mut client = self.client();
        let (device_id, token, user_id) = in_transaction(&mut client, |tx| {
            // FOR UPDATE: two instances redeeming one code at once, one wins.
            let found = tx.query_opt(
                "SELECT user_id, expires_at, used_at FROM enrollment_codes
                 WHERE code_hash = $1 FOR UPDATE",
                &[&hash(&code)],
            )?;
            let user_id: String = match found {
                Some(r)
                    if r.get::<_, Option<i64>>(2).is_none()
                        && r.get::<_, i64>(1) >= now.timestamp_millis() =>
                {
                    r.get(0)
                }
                other => return Err(code_refusal(other.map(|r| r.get(2)))),
            };
            let device_id = new_device_id();
            let token = new_token();
            tx.execute(
                "UPDATE enrollment_codes SET used_at = $1 WHERE code_hash = $2",
                &[&now.timestamp_millis(), &hash(&code)],
            )?;
            tx.execute(
                "INSERT INTO devices (id, user_id, name, actor, token_hash, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &device_id,
                    &user_id,
                    &name,
                    &actor,
                    &hash(&token),
                    &now.timestamp_millis(),
                ],
            )
            .map_err(|e| {
                if is_conflict(&e) {
                    StoreError::Conflict("this actor id is bound to another device".into())
                } else {
                    e.into()
                }
            })?;
            Ok((device_id, token, user_id))
        })?;
        let user = user_by_id(&mut **client, &user_id)?;
        Ok(Enrolled {
            device_id,
            token,
            user,
        })
    }

    fn revoke_device(&mut self, device_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let n = self.client().execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2",
            &[&now.timestamp_millis(), &device_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                kind: "device",
                id: device_id.to_string(),
            });
        }
        Ok(())
    }

    fn set_device_epoch(&mut self, device_id: &str, epoch: i64) -> StoreResult<()> {
        self.client().execute(
            "UPDATE devices SET area_epoch = $1 WHERE id = $2",
            &[&epoch, &device_id],
        )?;
        Ok(())
    }

    fn record_seen(&mut self, seen: &[(String, i64)]) -> StoreResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let (ids, times): (Vec<&str>, Vec<i64>) =
            seen.iter().map(|(d, t)| (d.as_str(), *t)).unzip();
        self.client().execute(
            "UPDATE devices SET last_seen_at = greatest(coalesce(last_seen_at, 0), s.at)
             FROM unnest($1::text[], $2::bigint[]) AS s (id, at) WHERE devices.id = s.id",
            &[&ids, &times],
        )?;
        Ok(())
    }

    fn allow_uploads(&mut self, actor: &str, hashes: &[String]) -> StoreResult<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.client().execute(
            "INSERT INTO device_blobs (device_id, hash)
             SELECT d.id, h FROM devices d, unnest($2::text[]) AS h WHERE d.actor = $1
             ON CONFLICT DO NOTHING",
            &[&actor, &hashes],
        )?;
        Ok(())
    }

    fn set_password_hash(&mut self, user_id: &str, phc: Option<&str>) -> StoreResult<()> {
        in_transaction(&mut self.client(), |tx| {
            let n = tx.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2",
                &[&phc, &user_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "user",
                    id: user_id.to_string(),
                });
            }
            tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])?;
            Ok(())
        })
    }

    fn open_session(
        &mut self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<Session> {
        let session = Session {
            token: new_token(),
            csrf: new_token(),
            expires_at: now + ttl,
        };
        in_transaction(&mut self.client(), |tx| {
            // Sessions that ended are dropped as new ones open.
            tx.execute(
                "DELETE FROM sessions WHERE expires_at <= $1",
                &[&now.timestamp_millis()],
            )?;
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &hash(&session.token),
                    &user_id,
                    &session.csrf,
                    &now.timestamp_millis(),
                    &session.expires_at.timestamp_millis(),
                ],
            )?;
            Ok(())
        })?;
        Ok(session)
    }

    fn close_session(&mut self, token: &str) -> StoreResult<()> {
        self.client().execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&hash(token)],
        )?;
        Ok(())
    }

    fn add_alert_source(
        &mut self,
        id: &str,
        kind: &str,
        shop_id: Option<&str>,
        location: Option<menqian_core::GeoPoint>,
        now: DateTime<Utc>,
    ) -> StoreResult<String> {
        let secret = new_token();
        self.client()
            .execute(
                "INSERT INTO alert_sources (id, kind, shop_id, lat, lon, secret, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id,
                    &kind,
                    &shop_id,
                    &location.map(|p| p.lat),
                    &location.map(|p| p.lon),
                    &secret,
                    &now.timestamp_millis(),
                ],
            )
            .map_err(|e| {
                if is_conflict(&e) {
                    StoreError::Conflict(format!("source {id} exists already"))
                } else {
                    e.into()
                }
            })?;
        Ok(secret)
    }

    fn record_alert(
        &mut self,
        alert: &AlertEvent<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<AlertRecorded> {
        let AlertEvent {
            source,
            alert_id,
            shop_id,
            category,
            at,
            minutes,
            photo,
        } = *alert;
        let ms = at.timestamp_millis();
        in_transaction(&mut self.client(), |tx| {
            // One alert id at a time across instances: the first claims the
            // (source, alert id) row; a second waits and then sees it.
            let claimed = tx.execute(
                "INSERT INTO alerts (source, alert_id, reminder_id, at, received_at, photo)
                 VALUES ($1, $2, 0, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&source, &alert_id, &ms, &now.timestamp_millis(), &photo],
            )?;
            if claimed == 0 {
                return Ok(AlertRecorded::Duplicate);
            }
            // One reminder per shop and category: serialise its writers.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))",
                &[&shop_id, &category],
            )?;
            let open = tx
                .query_opt(
                    &format!(
                        "SELECT {REMINDER_COLUMNS} FROM reminders
                         WHERE shop_id = $1 AND category = $2 AND case_id IS NULL
                         ORDER BY id DESC LIMIT 1"
                    ),
                    &[&shop_id, &category],
                )?
                .map(|r| reminder_from_row(&r));
            let out = match open {
                Some(mut r) => {
                    tx.execute(
                        "UPDATE reminders SET last_at = greatest(last_at, $2), alerts = alerts + 1
                         WHERE id = $1",
                        &[&r.id, &ms],
                    )?;
                    r.alerts += 1;
                    r.last_at = r.last_at.max(at);
                    let due = at >= r.deadline;
                    AlertRecorded::Again { reminder: r, due }
                }
                None => {
                    let deadline = at + Duration::minutes(i64::from(minutes));
                    let id: i64 = tx
                        .query_one(
                            "INSERT INTO reminders
                             (shop_id, category, source, first_at, last_at, deadline, alerts)
                             VALUES ($1, $2, $3, $4, $4, $5, 1) RETURNING id",
                            &[
                                &shop_id,
                                &category,
                                &source,
                                &ms,
                                &deadline.timestamp_millis(),
                            ],
                        )?
                        .get(0);
                    AlertRecorded::Reminded(Reminder {
                        id,
                        shop_id: shop_id.to_string(),
                        category: category.to_string(),
                        source: source.to_string(),
                        first_at: at,
                        last_at: at,
                        deadline,
                        alerts: 1,
                        case_id: None,
                    })
                }
            };
            if let AlertRecorded::Reminded(r) | AlertRecorded::Again { reminder: r, .. } = &out {
                tx.execute(
                    "UPDATE alerts SET reminder_id = $3 WHERE source = $1 AND alert_id = $2",
                    &[&source, &alert_id, &r.id],
                )?;
            }
            Ok(out)
        })
    }

    fn add_open311_key(&mut self, name: &str, now: DateTime<Utc>) -> StoreResult<String> {
        let key = new_token();
        self.client().execute(
            "INSERT INTO open311_keys (key_hash, name, created_at) VALUES ($1, $2, $3)",
            &[&hash(&key), &name, &now.timestamp_millis()],
        )?;
        Ok(key)
    }

    fn set_reminder_case(&mut self, reminder: i64, case_id: &str) -> StoreResult<()> {
        self.client().execute(
            "UPDATE reminders SET case_id = $2 WHERE id = $1",
            &[&reminder, &case_id],
        )?;
        Ok(())
    }

    fn add_steward_request(
        &mut self,
        lane: &str,
        name: &str,
        phone: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        Ok(self
            .client()
            .query_one(
                "INSERT INTO steward_requests (lane, name, phone, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&lane, &name, &phone, &now.timestamp_millis()],
            )?
            .get(0))
    }

    fn approve_steward(&mut self, request: i64, user_id: &str) -> StoreResult<User> {
        checked_user_id(user_id)?;
        in_transaction(&mut self.client(), |tx| {
            let found = tx.query_opt(
                "SELECT lane, name, user_id FROM steward_requests WHERE id = $1 FOR UPDATE",
                &[&request],
            )?;
            let Some(found) = found else {
                return Err(StoreError::NotFound {
                    kind: "steward request",
                    id: request.to_string(),
                });
            };
            if let Some(user) = found.get::<_, Option<String>>(2) {
                return Err(StoreError::Conflict(format!(
                    "request {request} was approved already (user {user})"
                )));
            }
            let user = User::new(
                user_id,
                &found.get::<_, String>(1),
                Role::Steward,
                Area::Lanes(vec![found.get(0)]),
            );
            insert_user(&mut *tx, &user)?;
            tx.execute(
                "UPDATE steward_requests SET user_id = $2 WHERE id = $1",
                &[&request, &user_id],
            )?;
            Ok(user)
        })
    }

    fn add_receipt(
        &mut self,
        case_id: &str,
        phone: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<String> {
        let token = new_token();
        self.client().execute(
            "INSERT INTO receipts (token_hash, case_id, phone, created_at) VALUES ($1, $2, $3, $4)",
            &[&hash(&token), &case_id, &phone, &now.timestamp_millis()],
        )?;
        Ok(token)
    }
}
