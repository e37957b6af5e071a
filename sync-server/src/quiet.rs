//! A failure that repeats is logged once a minute, not once per request or
//! per tick: while PostgreSQL is down, or an instance waits to be restarted
//! (its read model follows another history), every request and every tick
//! of the background threads meets an error of the same kind, often
//! alternating between two messages, and logging each would fill the disk
//! with thousands of lines a minute. Each line says how many were held back.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How often a kind of failure is logged again while it lasts.
pub const EVERY: Duration = Duration::from_secs(60);

/// The station's one record of when it last logged each kind of failure.
pub static LOG: LazyLock<Quiet> = LazyLock::new(|| Quiet::new(EVERY));

/// When each kind of failure was last logged, and how many since were not.
#[derive(Debug)]
pub struct Quiet {
    every: Duration,
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Quiet {
    pub fn new(every: Duration) -> Quiet {
        Quiet {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a failure of the kind `what` is to be logged at `now`:
    /// `Some(n)` with how many of that kind were held back since the last
    /// one logged, `None` to hold this one back.
    pub fn pass(&self, what: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get_mut(what) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            _ => Some(last.insert(what, (now, 0)).map_or(0, |(_, held)| held)),
        }
    }

    /// Forgets `what`: the failure ended, so the next one is logged at once.
    pub fn clear(&self, what: &'static str) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_of_failure_is_logged_once_a_period() {
        let quiet = Quiet::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(quiet.pass("db", t), Some(0));
        for k in 1..=5 {
            assert_eq!(quiet.pass("db", t + Duration::from_secs(k)), None);
        }
        // Another kind is its own.
        assert_eq!(quiet.pass("follow", t), Some(0));
        // After the period, again, saying how many were held back.
        assert_eq!(quiet.pass("db", t + Duration::from_secs(60)), Some(5));
        assert_eq!(quiet.pass("db", t + Duration::from_secs(61)), None);
        // Once the failure ends, the next is logged at once.
        quiet.clear("db");
        assert_eq!(quiet.pass("db", t + Duration::from_secs(62)), Some(0));
    }
}
