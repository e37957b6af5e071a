//! Fair shares: each device's requests in flight and request rate, and
//! enrollment attempts per client address and for the whole station. A
//! request over its share gets `429` and `Retry-After` at once, before it
//! costs the station anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shares (docs/protocol.md, "Limits").
#[derive(Debug, Clone)]
pub struct Shares {
    /// Requests one device may have in flight.
    pub device_in_flight: u32,
    /// Requests per second one device may make, on average...
    pub device_rate: f64,
    /// ...and in a burst.
    pub device_burst: f64,
    /// Enrollment attempts per minute from one address, and in a burst.
    pub enroll_per_address_per_minute: f64,
    pub enroll_address_burst: f64,
    /// Enrollment attempts per minute for the whole station, and in a burst.
    pub enroll_per_minute: f64,
    pub enroll_burst: f64,
    /// Requests with a token the station does not know, per minute from one
    /// address, and in a burst.
    pub bad_tokens_per_address_per_minute: f64,
    pub bad_token_burst: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            device_in_flight: 4,
            device_rate: 20.0,
            device_burst: 100.0,
            enroll_per_address_per_minute: 5.0,
            enroll_address_burst: 10.0,
            enroll_per_minute: 60.0,
            enroll_burst: 60.0,
            bad_tokens_per_address_per_minute: 30.0,
            bad_token_burst: 60.0,
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate_per_s: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_s).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate_per_s.max(1e-9),
            ))
        }
    }
}

#[derive(Debug)]
struct DeviceUse {
    in_flight: u32,
    bucket: Bucket,
}

/// Why a request must wait: retry after this long.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub retry_after: Duration,
    pub why: &'static str,
}

/// The station's counters.
#[derive(Debug)]
pub struct Traffic {
    shares: Shares,
    devices: Mutex<HashMap<String, DeviceUse>>,
    addresses: Mutex<HashMap<IpAddr, Bucket>>,
    bad_tokens: Mutex<HashMap<IpAddr, Bucket>>,
    enrollments: Mutex<Bucket>,
    sign_ins: Mutex<HashMap<IpAddr, Bucket>>,
    public: Mutex<HashMap<IpAddr, Bucket>>,
    reports_by_address: Mutex<HashMap<IpAddr, Bucket>>,
    reports_by_shop: Mutex<HashMap<String, Bucket>>,
    alerts: Mutex<HashMap<String, Bucket>>,
    open311: Mutex<HashMap<IpAddr, Bucket>>,
    failed_sign_ins: Mutex<HashMap<String, Bucket>>,
    /// When devices last made a request (Unix ms), until written down.
    seen: Mutex<HashMap<String, i64>>,
}

/// Console sign-in attempts per minute from one client address, and in a burst.
pub const SIGN_INS_PER_ADDRESS_PER_MINUTE: f64 = 10.0;
pub const SIGN_IN_ADDRESS_BURST: f64 = 10.0;
/// Public pages (a signboard's, a lane's) per minute from one client
/// address, and in a burst: a person scanning boards along a street is far
/// below it, a scraper of the registry is held to a page a second.
pub const PUBLIC_PAGES_PER_MINUTE: f64 = 60.0;
pub const PUBLIC_PAGE_BURST: f64 = 30.0;
/// Citizens' reports from one address: five, then one each two minutes.
pub const REPORTS_PER_ADDRESS_PER_MINUTE: f64 = 0.5;
pub const REPORT_ADDRESS_BURST: f64 = 5.0;
/// Citizens' reports about one shop: twenty, then one an hour (a shop
/// flooded with reports from many addresses).
pub const REPORTS_PER_SHOP_PER_MINUTE: f64 = 1.0 / 60.0;
pub const REPORT_SHOP_BURST: f64 = 20.0;
/// Alerts from one camera or sensor: a burst of 2,000, then 100 a second.
pub const ALERTS_PER_SOURCE_PER_MINUTE: f64 = 6_000.0;
pub const ALERT_SOURCE_BURST: f64 = 2_000.0;
/// Open311 calls from one address (another city system polling and
/// posting): 120 at once, then 5 a second.
pub const OPEN311_PER_MINUTE: f64 = 300.0;
pub const OPEN311_BURST: f64 = 120.0;
/// Wrong passwords one user may be tried with: five, then one each three
/// minutes (from any address), so guessing one password online is slow.
pub const FAILED_SIGN_INS_PER_MINUTE: f64 = 1.0 / 3.0;
pub const FAILED_SIGN_IN_BURST: f64 = 5.0;

/// Holds a device's slot while its request runs.
#[derive(Debug)]
pub struct Slot {
    traffic: Arc<Traffic>,
    device: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut devices = self
            .traffic
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(d) = devices.get_mut(&self.device) {
            d.in_flight = d.in_flight.saturating_sub(1);
        }
    }
}

/// Addresses remembered for enrollment throttling before idle ones are forgotten.
const MAX_ADDRESSES: usize = 100_000;

impl Traffic {
    pub fn new(shares: Shares) -> Traffic {
        let now = Instant::now();
        Traffic {
            enrollments: Mutex::new(Bucket::full(shares.enroll_burst, now)),
            shares,
            devices: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            bad_tokens: Mutex::new(HashMap::new()),
            sign_ins: Mutex::new(HashMap::new()),
            public: Mutex::new(HashMap::new()),
            reports_by_address: Mutex::new(HashMap::new()),
            reports_by_shop: Mutex::new(HashMap::new()),
            alerts: Mutex::new(HashMap::new()),
            open311: Mutex::new(HashMap::new()),
            failed_sign_ins: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn shares(&self) -> &Shares {
        &self.shares
    }

    /// Admits one request of `device`, or says when to come back.
    pub fn admit(self: &Arc<Self>, device: &str) -> Result<Slot, Busy> {
        let now = Instant::now();
        let s = &self.shares;
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let d = devices
            .entry(device.to_string())
            .or_insert_with(|| DeviceUse {
                in_flight: 0,
                bucket: Bucket::full(s.device_burst, now),
            });
        if d.in_flight >= s.device_in_flight {
            return Err(Busy {
                retry_after: Duration::from_secs(1),
                why: "too many requests from this device at once",
            });
        }
        d.bucket
            .take(s.device_rate, s.device_burst, now)
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many requests from this device",
            })?;
        d.in_flight += 1;
        drop(devices);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device.to_string(), chrono::Utc::now().timestamp_millis());
        Ok(Slot {
            traffic: self.clone(),
            device: device.to_string(),
        })
    }

    /// Admits one enrollment attempt from `address` (unknown: the overall
    /// budget only).
    pub fn admit_enrollment(&self, address: Option<IpAddr>) -> Result<(), Busy> {
        let now = Instant::now();
        let s = &self.shares;
        if let Some(address) = address {
            take_for_address(
                &self.addresses,
                address,
                s.enroll_per_address_per_minute,
                s.enroll_address_burst,
                now,
            )
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many enrollment attempts from this address",
            })?;
        }
        self.enrollments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(s.enroll_per_minute / 60.0, s.enroll_burst, now)
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many enrollment attempts at this station: try again shortly",
            })
    }
}

impl Traffic {
    /// Whether `address` may present a token now: one that sent too many
    /// tokens the station does not know waits (`None`: no address, allowed).
    pub fn may_present_token(&self, address: Option<IpAddr>) -> Result<(), Busy> {
        let Some(address) = address else {
            return Ok(());
        };
        let s = &self.shares;
        let now = Instant::now();
        let mut map = self.bad_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = map.get_mut(&address) else {
            return Ok(());
        };
        let mut probe = *bucket;
        probe
            .take(
                s.bad_tokens_per_address_per_minute / 60.0,
                s.bad_token_burst,
                now,
            )
            .map(|_| ())
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many unknown tokens from this address",
            })
    }

    /// Notes that `address` presented a token the station does not know.
    pub fn bad_token(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            let s = &self.shares;
            let _ = take_for_address(
                &self.bad_tokens,
                address,
                s.bad_tokens_per_address_per_minute,
                s.bad_token_burst,
                Instant::now(),
            );
        }
    }
}

impl Traffic {
    /// When devices made their last request, since [`Traffic::take_seen`]
    /// last ran (device, Unix ms).
    pub fn seen(&self) -> HashMap<String, i64> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// [`Traffic::seen`], emptied: what is to be written down.
    pub fn take_seen(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .collect()
    }

    /// Admits one public page from `address`.
    pub fn admit_public(&self, address: Option<IpAddr>) -> Result<(), Busy> {
        let Some(address) = address else {
            return Ok(());
        };
        take_for_address(
            &self.public,
            address,
            PUBLIC_PAGES_PER_MINUTE,
            PUBLIC_PAGE_BURST,
            Instant::now(),
        )
        .map_err(|retry_after| Busy {
            retry_after,
            why: "too many pages from this address",
        })
    }

    /// Admits one citizen's report about `shop` from `address`: both limits
    /// must allow it (the address's is taken first).
    pub fn admit_report(&self, address: Option<IpAddr>, shop: &str) -> Result<(), Busy> {
        let now = Instant::now();
        if let Some(address) = address {
            take_for_address(
                &self.reports_by_address,
                address,
                REPORTS_PER_ADDRESS_PER_MINUTE,
                REPORT_ADDRESS_BURST,
                now,
            )
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many reports from this address",
            })?;
        }
        take_for_address(
            &self.reports_by_shop,
            shop.to_string(),
            REPORTS_PER_SHOP_PER_MINUTE,
            REPORT_SHOP_BURST,
            now,
        )
        .map_err(|retry_after| Busy {
            retry_after,
            why: "too many reports about this shop",
        })
    }

    /// Admits one alert from `source` (a name the request claims: checked
    /// before the source is looked up, so unknown names cost nothing more).
    pub fn admit_alert(&self, source: &str) -> Result<(), Busy> {
        take_for_address(
            &self.alerts,
            source.to_string(),
            ALERTS_PER_SOURCE_PER_MINUTE,
            ALERT_SOURCE_BURST,
            Instant::now(),
        )
        .map_err(|retry_after| Busy {
            retry_after,
            why: "too many alerts from this source",
        })
    }

    /// Admits one Open311 call from `address`.
    pub fn admit_open311(&self, address: Option<IpAddr>) -> Result<(), Busy> {
        let Some(address) = address else {
            return Ok(());
        };
        take_for_address(
            &self.open311,
            address,
            OPEN311_PER_MINUTE,
            OPEN311_BURST,
            Instant::now(),
        )
        .map_err(|retry_after| Busy {
            retry_after,
            why: "too many Open311 calls from this address",
        })
    }

    /// Admits one console sign-in attempt from `address`.
    pub fn admit_sign_in(&self, address: Option<IpAddr>) -> Result<(), Busy> {
        let Some(address) = address else {
            return Ok(());
        };
        take_for_address(
            &self.sign_ins,
            address,
            SIGN_INS_PER_ADDRESS_PER_MINUTE,
            SIGN_IN_ADDRESS_BURST,
            Instant::now(),
        )
        .map_err(|retry_after| Busy {
            retry_after,
            why: "too many sign-in attempts from this address",
        })
    }

    /// Whether `user` may be tried now: a user whose password was given
    /// wrong too often waits, whoever asks.
    pub fn user_may_sign_in(&self, user: &str) -> Result<(), Busy> {
        let map = self
            .failed_sign_ins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = map.get(user) else {
            return Ok(());
        };
        let mut probe = *bucket;
        probe
            .take(
                FAILED_SIGN_INS_PER_MINUTE / 60.0,
                FAILED_SIGN_IN_BURST,
                Instant::now(),
            )
            .map_err(|retry_after| Busy {
                retry_after,
                why: "too many wrong passwords for this user",
            })
    }

    /// Notes a wrong password (or unknown user) for `user`.
    pub fn sign_in_failed(&self, user: &str) {
        let now = Instant::now();
        let mut map = self
            .failed_sign_ins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES {
            map.clear();
        }
        let _ = map
            .entry(user.chars().take(64).collect())
            .or_insert_with(|| Bucket::full(FAILED_SIGN_IN_BURST, now))
            .take(FAILED_SIGN_INS_PER_MINUTE / 60.0, FAILED_SIGN_IN_BURST, now);
    }
}

/// Takes a token from `address`'s bucket in `map` (rate per minute),
/// forgetting idle addresses when the map is full.
fn take_for_address<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Bucket>>,
    address: K,
    per_minute: f64,
    burst: f64,
    now: Instant,
) -> Result<(), Duration> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_ADDRESSES {
        // Forget addresses whose bucket has refilled: they owe nothing.
        let refill = Duration::from_secs_f64(burst * 60.0 / per_minute.max(1e-9));
        map.retain(|_, b| now.saturating_duration_since(b.at) < refill);
    }
    map.entry(address)
        .or_insert_with(|| Bucket::full(burst, now))
        .take(per_minute / 60.0, burst, now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_device_gets_its_share_and_no_more() {
        let t = Arc::new(Traffic::new(Shares {
            device_in_flight: 2,
            device_burst: 3.0,
            device_rate: 0.001,
            ..Shares::default()
        }));
        let a = t.admit("d1").unwrap();
        let _b = t.admit("d1").unwrap();
        assert!(t.admit("d1").is_err(), "a third at once");
        assert!(t.admit("d2").is_ok(), "another device is not held up");
        drop(a);
        let _c = t.admit("d1").unwrap();
        drop(_c);
        let busy = t.admit("d1").unwrap_err();
        assert!(busy.retry_after > Duration::from_secs(100), "{busy:?}");
    }

    #[test]
    fn enrollment_is_throttled_per_address_and_overall() {
        let t = Traffic::new(Shares {
            enroll_address_burst: 2.0,
            enroll_burst: 3.0,
            ..Shares::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.admit_enrollment(Some(a)).is_ok());
        assert!(t.admit_enrollment(Some(a)).is_ok());
        assert!(t.admit_enrollment(Some(a)).is_err());
        assert!(t.admit_enrollment(Some(b)).is_ok());
        assert!(t.admit_enrollment(Some(b)).is_err(), "the station's budget");
    }
}
