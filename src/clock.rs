//! Time as callrec records it: wall-clock UTC taken once per call, plus CLOCK_MONOTONIC so an
//! auditor can see a clock step between two calls. Durations never come from here: they come
//! from sample counts, so an NTP step during a call changes neither audio nor duration.
//!
//! Whatever decides by the clock (the recorder's time stamps, sessions, lockout, holds,
//! retention, alarms) takes a [`Clock`], so tests can run it on a [`SimClock`] they step and
//! advance; the daemons and the CLI hand in [`system`].

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// A wall clock (UTC, may step: NTP, an admin) and a monotonic one (never steps).
pub trait Clock: Send + Sync {
    fn now_utc(&self) -> DateTime<Utc>;
    /// Milliseconds on a clock that only moves forward, for intervals and ordering.
    fn mono_ms(&self) -> i64;

    /// [`Clock::now_utc`] as callrec writes it: `2026-11-27T17:20:00.123Z`.
    fn utc_string(&self) -> String {
        format_utc(self.now_utc())
    }
}

/// The machine's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn mono_ms(&self) -> i64 {
        mono_ms()
    }
}

/// The machine's clocks, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that tests move by hand: [`SimClock::advance`] moves both clocks (time passing),
/// [`SimClock::step_wall`] only the wall clock (an NTP correction).
pub struct SimClock {
    wall: Mutex<DateTime<Utc>>,
    mono_ms: AtomicI64,
}

impl SimClock {
    pub fn at(wall: DateTime<Utc>) -> Arc<SimClock> {
        Arc::new(SimClock {
            wall: Mutex::new(wall),
            mono_ms: AtomicI64::new(1_000_000),
        })
    }

    pub fn advance(&self, ms: i64) {
        self.step_wall(ms);
        self.mono_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn step_wall(&self, ms: i64) {
        if let Ok(mut w) = self.wall.lock() {
            *w += chrono::Duration::milliseconds(ms);
        }
    }
}

impl Clock for SimClock {
    fn now_utc(&self) -> DateTime<Utc> {
        match self.wall.lock() {
            Ok(w) => *w,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
    fn mono_ms(&self) -> i64 {
        self.mono_ms.load(Ordering::SeqCst)
    }
}

/// UTC now as `2026-11-27T17:20:00.123Z`.
pub fn utc_now() -> String {
    format_utc(Utc::now())
}

pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `start` plus `ms`, for end times derived from sample counts.
pub fn utc_plus_ms(start: &str, ms: u64) -> String {
    DateTime::parse_from_rfc3339(start)
        .map(|t| format_utc(t.with_timezone(&Utc) + chrono::Duration::milliseconds(ms as i64)))
        .unwrap_or_else(|_| start.to_owned())
}

/// CLOCK_MONOTONIC in milliseconds (steady since boot, immune to wall-clock steps).
pub fn mono_ms() -> i64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Parses a user-supplied bound: RFC 3339, or a bare date (midnight UTC).
pub fn parse_bound(s: &str) -> Option<String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(format_utc(t.with_timezone(&Utc)));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| format_utc(dt.and_utc()))
}

/// The box-local calendar day `day` (`YYYY-MM-DD`; `None`: the day it is at `now`) as the
/// day and the UTC bounds `[from, to)` of its local midnights (23 or 25 hours across a DST
/// change). `None` when `day` is not a date.
pub fn local_day(day: Option<&str>, now: DateTime<Utc>) -> Option<(String, String, String)> {
    use chrono::{Local, NaiveDate, TimeZone};
    let date = match day {
        Some(d) => NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok()?,
        None => now.with_timezone(&Local).date_naive(),
    };
    // A midnight skipped by a DST change: the day starts at the first instant after it.
    let midnight = |d: NaiveDate| {
        let t = d.and_hms_opt(0, 0, 0)?;
        Local
            .from_local_datetime(&t)
            .earliest()
            .or_else(|| {
                Local
                    .from_local_datetime(&(t + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|l| format_utc(l.with_timezone(&Utc)))
    };
    let next = date.succ_opt()?;
    Some((date.to_string(), midnight(date)?, midnight(next)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_day_is_its_two_midnights() {
        let now = Utc::now();
        let Some((day, from, to)) = local_day(Some("2026-12-05"), now) else {
            panic!("a date")
        };
        assert_eq!(day, "2026-12-05");
        // December has no DST change anywhere in use: 24 h, in UTC text order.
        let p = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.timestamp());
        assert_eq!(
            p(&to).ok().zip(p(&from).ok()).map(|(t, f)| t - f),
            Some(86_400)
        );
        assert!(local_day(Some("5.12.2026"), now).is_none());
        let today = local_day(None, now).map(|(_, f, t)| (f, t));
        let now_s = format_utc(now);
        assert!(today.is_some_and(|(f, t)| f <= now_s && now_s < t));
    }

    #[test]
    fn formats_and_adds() {
        assert_eq!(
            utc_plus_ms("2026-11-27T23:59:59.500Z", 1500),
            "2026-11-28T00:00:01.000Z"
        );
        assert_eq!(
            parse_bound("2026-11-27").as_deref(),
            Some("2026-11-27T00:00:00.000Z")
        );
        assert_eq!(
            parse_bound("2026-11-27T10:00:00+01:00").as_deref(),
            Some("2026-11-27T09:00:00.000Z")
        );
        assert_eq!(parse_bound("yesterday"), None);
        assert_eq!(utc_now().len(), 24);
    }

    #[test]
    fn a_sim_clock_steps_the_wall_and_advances_both() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let c = SimClock::at(t0);
        let m0 = c.mono_ms();
        c.step_wall(-3_600_000);
        assert_eq!(c.utc_string(), "2026-11-27T09:00:00.000Z");
        assert_eq!(
            c.mono_ms(),
            m0,
            "an NTP step does not move the monotonic clock"
        );
        c.advance(1500);
        assert_eq!(c.utc_string(), "2026-11-27T09:00:01.500Z");
        assert_eq!(c.mono_ms(), m0 + 1500);
    }
}
