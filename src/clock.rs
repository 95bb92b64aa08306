//! Time as callrec records it: wall-clock UTC taken once per call, plus CLOCK_MONOTONIC so an
//! auditor can see a clock step between two calls. Durations never come from here: they come
//! from sample counts, so an NTP step during a call changes neither audio nor duration.

use chrono::{DateTime, SecondsFormat, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
