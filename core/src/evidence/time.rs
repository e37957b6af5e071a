//! Trusted time. A phone's clock can be wrong or set back on purpose; a record
//! therefore keeps three clocks:
//!
//! - the device's wall clock when the record was made;
//! - the phone's monotonic time since it last took the server's time (boot
//!   clock: it counts deep sleep, cannot be set by the user, resets on reboot),
//!   with that server time: their sum is the server's clock at the event;
//! - the server's receive time, when the record first reaches the server.
//!
//! A record whose device clock disagrees with the server's by more than a
//! bound is flagged (see [`check`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A reading of the phone's monotonic boot clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uptime {
    /// Changes on every boot (Linux/Android: `/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Milliseconds since boot, counting sleep.
    pub ms: i64,
}

/// Where the store reads the monotonic clock. Phones pass theirs (Android's
/// `elapsedRealtime` with the boot count; iOS's continuous clock).
pub type UptimeSource = std::sync::Arc<dyn Fn() -> Option<Uptime> + Send + Sync>;

/// The default source: Linux's boot clock from `/proc` (Android included).
/// Other systems have none: their records keep only the device time.
pub fn system_uptime() -> Option<Uptime> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Some(Uptime {
        boot_id: boot_id.trim().to_string(),
        ms: (secs * 1000.0) as i64,
    })
}

/// The moment the phone last took the server's time (kept in the store's meta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnchor {
    pub server_ms: i64,
    pub boot_id: String,
    pub uptime_ms: i64,
}

/// The clocks a record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTime {
    /// The device's wall clock, Unix milliseconds.
    pub device_ms: i64,
    /// The server's clock when the phone last synced it, if it has and has
    /// not rebooted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_server_ms: Option<i64>,
    /// Monotonic milliseconds between that sync and this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_sync_ms: Option<i64>,
}

impl RecordTime {
    /// Stamps a record made at `device` with the anchor and the clock now.
    pub fn stamp(device: DateTime<Utc>, anchor: Option<&ClockAnchor>, now: Option<Uptime>) -> Self {
        let mut t = RecordTime {
            device_ms: device.timestamp_millis(),
            synced_server_ms: None,
            since_sync_ms: None,
        };
        if let (Some(a), Some(u)) = (anchor, now)
            && a.boot_id == u.boot_id
            && u.ms >= a.uptime_ms
        {
            t.synced_server_ms = Some(a.server_ms);
            t.since_sync_ms = Some(u.ms - a.uptime_ms);
        }
        t
    }

    /// The server's clock at the event, from the monotonic evidence.
    pub fn server_estimate_ms(&self) -> Option<i64> {
        Some(self.synced_server_ms? + self.since_sync_ms?)
    }
}

/// What the clocks say about a record's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum TimeCheck {
    /// The device clock agrees with the server's within the bound.
    Consistent { skew_ms: i64 },
    /// The device clock is off by more than the bound: 时间存疑.
    Skewed { skew_ms: i64 },
    /// No evidence either way yet (no clock sync since boot, not yet received).
    Unverified,
}

impl TimeCheck {
    pub fn is_flagged(&self) -> bool {
        matches!(self, TimeCheck::Skewed { .. })
    }

    pub fn label_zh(&self) -> &'static str {
        match self {
            TimeCheck::Consistent { .. } => "时间可信",
            TimeCheck::Skewed { .. } => "时间存疑",
            TimeCheck::Unverified => "时间待核验",
        }
    }
}

/// The default bound: five minutes.
pub const DEFAULT_SKEW_BOUND_MS: i64 = 5 * 60 * 1000;

/// Checks a record's device time. With monotonic evidence, the skew is the
/// device time minus the server's clock at the event. Without it, the server
/// receive time still catches a clock set forward: a record cannot be made
/// after it was received.
pub fn check(t: &RecordTime, received_ms: Option<i64>, bound_ms: i64) -> TimeCheck {
    let verdict = |skew_ms: i64| {
        if skew_ms.abs() > bound_ms {
            TimeCheck::Skewed { skew_ms }
        } else {
            TimeCheck::Consistent { skew_ms }
        }
    };
    if let Some(server) = t.server_estimate_ms() {
        return verdict(t.device_ms - server);
    }
    match received_ms {
        Some(r) if t.device_ms > r + bound_ms => TimeCheck::Skewed {
            skew_ms: t.device_ms - r,
        },
        _ => TimeCheck::Unverified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> ClockAnchor {
        ClockAnchor {
            server_ms: 1_000_000,
            boot_id: "b1".into(),
            uptime_ms: 50_000,
        }
    }

    fn up(boot: &str, ms: i64) -> Option<Uptime> {
        Some(Uptime {
            boot_id: boot.into(),
            ms,
        })
    }

    #[test]
    fn a_clock_set_back_an_hour_is_flagged_by_the_monotonic_clock() {
        let device = DateTime::from_timestamp_millis(1_000_000 + 60_000 - 3_600_000).expect("t");
        let t = RecordTime::stamp(device, Some(&anchor()), up("b1", 110_000));
        assert_eq!(t.server_estimate_ms(), Some(1_060_000));
        assert_eq!(
            check(&t, None, DEFAULT_SKEW_BOUND_MS),
            TimeCheck::Skewed {
                skew_ms: -3_600_000
            }
        );
    }

    #[test]
    fn an_honest_clock_is_consistent() {
        let device = DateTime::from_timestamp_millis(1_060_500).expect("t");
        let t = RecordTime::stamp(device, Some(&anchor()), up("b1", 110_000));
        assert_eq!(
            check(&t, Some(1_100_000), DEFAULT_SKEW_BOUND_MS),
            TimeCheck::Consistent { skew_ms: 500 }
        );
    }

    #[test]
    fn a_reboot_drops_the_monotonic_evidence() {
        let device = DateTime::from_timestamp_millis(1_060_000).expect("t");
        let t = RecordTime::stamp(device, Some(&anchor()), up("b2", 120_000));
        assert_eq!(t.since_sync_ms, None);
        assert_eq!(check(&t, None, 1000), TimeCheck::Unverified);
        // Received before its own device time: the clock was set forward.
        assert!(check(&t, Some(1_000_000), 1000).is_flagged());
        assert!(!check(&t, Some(1_060_000), 1000).is_flagged());
    }
}
