//! Request counters and latency histograms for `/metrics` (Prometheus text format 0.0.4), plus
//! the rendering of seat and disk gauges gathered at scrape time.
//!
//! Labels are route *patterns* (`/api/calls/{id}`), never raw paths, so the series count stays
//! bounded whatever clients request.

use crate::record::control::SeatStatus;
use axum::http::Method;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS_S: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum_s: f64,
    buckets: [u64; BUCKETS_S.len()],
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → latency series.
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let Ok(mut m) = self.series.lock() else {
            return;
        };
        let s = m
            .entry((method.to_string(), route.to_owned(), status))
            .or_default();
        let secs = took.as_secs_f64();
        s.count += 1;
        s.sum_s += secs;
        for (i, b) in BUCKETS_S.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render_requests(&self, out: &mut String) {
        let Ok(m) = self.series.lock() else { return };
        out.push_str("# HELP callrec_http_requests_total HTTP requests by route pattern and status.\n# TYPE callrec_http_requests_total counter\n");
        for ((method, route, status), s) in m.iter() {
            let _ = writeln!(
                out,
                "callrec_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        // One histogram per route (statuses merged).
        let mut per_route: BTreeMap<&str, Series> = BTreeMap::new();
        for ((_, route, _), s) in m.iter() {
            let r = per_route.entry(route.as_str()).or_default();
            r.count += s.count;
            r.sum_s += s.sum_s;
            for i in 0..BUCKETS_S.len() {
                r.buckets[i] += s.buckets[i];
            }
        }
        out.push_str("# HELP callrec_http_request_duration_seconds Time to the response head.\n# TYPE callrec_http_request_duration_seconds histogram\n");
        for (route, s) in per_route {
            for (i, b) in BUCKETS_S.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "callrec_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "callrec_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "callrec_http_request_duration_seconds_sum{{route=\"{route}\"}} {:.6}",
                s.sum_s
            );
            let _ = writeln!(
                out,
                "callrec_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                s.count
            );
        }
    }
}

/// Escapes a label value (Prometheus exposition format: backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seat gauges from the recorder's status; `None` when the recorder is not reachable.
pub fn render_seats(out: &mut String, seats: Option<&[SeatStatus]>) {
    out.push_str("# HELP callrec_recorder_up Whether the recorder answered on its control socket.\n# TYPE callrec_recorder_up gauge\n");
    let _ = writeln!(out, "callrec_recorder_up {}", u8::from(seats.is_some()));
    let Some(seats) = seats else { return };
    let active = seats.iter().filter(|s| s.call_id.is_some()).count();
    let _ = writeln!(out, "# HELP callrec_active_calls Calls being recorded now.\n# TYPE callrec_active_calls gauge\ncallrec_active_calls {active}");
    out.push_str("# HELP callrec_seat_state Seat state (1 for the current state).\n# TYPE callrec_seat_state gauge\n");
    for s in seats {
        let _ = writeln!(
            out,
            "callrec_seat_state{{seat=\"{}\",state=\"{}\"}} 1",
            label(&s.seat),
            label(&s.state)
        );
    }
    out.push_str("# HELP callrec_seat_input_dbfs Recent input level per party.\n# TYPE callrec_seat_input_dbfs gauge\n");
    for s in seats {
        for (party, v) in [("agent", s.agent_dbfs), ("customer", s.customer_dbfs)] {
            let v = if v.is_finite() { v } else { -120.0 };
            let _ = writeln!(
                out,
                "callrec_seat_input_dbfs{{seat=\"{}\",party=\"{party}\"}} {v:.1}",
                label(&s.seat)
            );
        }
    }
    let per_seat = [
        (
            "callrec_seat_dropped_frames_total",
            "counter",
            "Frames lost because a ring was full.",
            (|s: &SeatStatus| s.dropped_frames) as fn(&SeatStatus) -> u64,
        ),
        (
            "callrec_seat_encoder_lag_ms",
            "gauge",
            "Audio waiting in the ring for the encoder.",
            |s| s.lag_ms,
        ),
        (
            "callrec_seat_encoder_lag_max_1m_ms",
            "gauge",
            "Worst encoder lag in the last minute (a scrape misses short peaks of the lag gauge).",
            |s| s.max_lag_1m_ms,
        ),
        (
            "callrec_seat_inputs_down",
            "gauge",
            "Inputs of the seat that are unplugged or stalled.",
            |s| s.inputs_down.len() as u64,
        ),
    ];
    for (name, kind, help, value) in per_seat {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in seats {
            let _ = writeln!(out, "{name}{{seat=\"{}\"}} {}", label(&s.seat), value(s));
        }
    }
}

/// Free and total bytes of the filesystem holding `dir`.
pub fn render_disk(out: &mut String, dir: &std::path::Path) {
    let Ok(s) = rustix::fs::statvfs(dir) else {
        return;
    };
    let free = s.f_bavail * s.f_frsize;
    let total = s.f_blocks * s.f_frsize;
    let _ = writeln!(out, "# HELP callrec_disk_free_bytes Free space for recordings.\n# TYPE callrec_disk_free_bytes gauge\ncallrec_disk_free_bytes {free}");
    let _ = writeln!(out, "# HELP callrec_disk_total_bytes Size of the recordings filesystem.\n# TYPE callrec_disk_total_bytes gauge\ncallrec_disk_total_bytes {total}");
}

/// The archive backlog (`[archive]` set): finalized calls not yet confirmed by the store.
pub fn render_archive(out: &mut String, b: &crate::store::archive::Backlog) {
    for (name, help, v) in [
        (
            "callrec_archive_backlog_calls",
            "Finalized calls not yet confirmed by the archive store.",
            b.calls,
        ),
        (
            "callrec_archive_backlog_bytes",
            "Audio bytes of those calls.",
            b.bytes,
        ),
        (
            "callrec_archive_backlog_oldest_age_seconds",
            "Seconds since the oldest of them ended (0 when none).",
            b.oldest_age_s,
        ),
        (
            "callrec_archive_failed_calls",
            "Calls the shipper gave up on (file changed or missing): need an operator.",
            b.failed_calls,
        ),
        (
            "callrec_archive_archived_calls",
            "Calls confirmed by the archive store.",
            b.archived_calls,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
}

/// One gauge per alarm kind callrec raises: 1 while active, 0 otherwise, so an alerting rule
/// (`callrec_alarm_active == 1`) fires on either. Box-wide kinds carry `kind` only (as they
/// always did); the seat kinds carry `kind` and `seat`, one series per configured seat (and per
/// other seat with an active alarm).
pub fn render_alarms(out: &mut String, active: &[crate::store::alarms::Alarm], seats: &[String]) {
    use crate::store::alarms::{BOX_KINDS, SEAT_KINDS};
    let _ = writeln!(out, "# HELP callrec_alarm_active 1 while the alarm is raised (disk_full: recording stopped; disk_pressure: the guard cannot free enough space; archive_backlog: calls wait too long to be shipped; per seat: silent_channel: a party under the noise floor through a call; idle_logged_in: an agent logged in without calls; start_refused: an announced call not recorded).\n# TYPE callrec_alarm_active gauge");
    let mut kinds: Vec<&str> = BOX_KINDS.to_vec();
    for a in active.iter().filter(|a| a.subject.is_empty()) {
        if !kinds.contains(&a.kind.as_str()) {
            kinds.push(a.kind.as_str());
        }
    }
    for k in kinds {
        let on = u8::from(active.iter().any(|a| a.kind == k && a.subject.is_empty()));
        let _ = writeln!(out, "callrec_alarm_active{{kind=\"{}\"}} {on}", label(k));
    }
    let mut pairs: Vec<(&str, &str)> = SEAT_KINDS
        .iter()
        .flat_map(|k| seats.iter().map(move |s| (*k, s.as_str())))
        .collect();
    for a in active.iter().filter(|a| !a.subject.is_empty()) {
        if !pairs.contains(&(a.kind.as_str(), a.subject.as_str())) {
            pairs.push((a.kind.as_str(), a.subject.as_str()));
        }
    }
    for (k, seat) in pairs {
        let on = u8::from(active.iter().any(|a| a.kind == k && a.subject == seat));
        let _ = writeln!(
            out,
            "callrec_alarm_active{{kind=\"{}\",seat=\"{}\"}} {on}",
            label(k),
            label(seat)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_backlog_gauges_carry_the_figures() {
        let b = crate::store::archive::Backlog {
            calls: 3,
            bytes: 12_345,
            oldest_ended_at_utc: Some("2026-12-05T10:00:00.000Z".into()),
            oldest_age_s: 42,
            failed_calls: 1,
            archived_calls: 7,
            ledger_entries_unshipped: 0,
            last_error: None,
            last_error_call_id: None,
        };
        let mut out = String::new();
        render_archive(&mut out, &b);
        for line in [
            "callrec_archive_backlog_calls 3",
            "callrec_archive_backlog_bytes 12345",
            "callrec_archive_backlog_oldest_age_seconds 42",
            "callrec_archive_failed_calls 1",
            "callrec_archive_archived_calls 7",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in:\n{out}");
        }
        let mut alarms = String::new();
        render_alarms(&mut alarms, &[], &["s1".to_owned()]);
        assert!(alarms.contains("callrec_alarm_active{kind=\"archive_backlog\"} 0"));
        assert!(alarms.contains("callrec_alarm_active{kind=\"silent_channel\",seat=\"s1\"} 0"));
    }
}
