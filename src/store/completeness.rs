//! Proof that recording is complete: what the index can show about calls that should have been
//! recorded and were not, or were recorded badly.
//!
//! - Every control `start` (the CTI announcing a call) is kept in `call_announcements` with the
//!   call it became or why it was refused ([`announce`], written by the recorder's indexer).
//! - Each finished call's loudest 20 ms frame per party is kept in `call_metrics`
//!   ([`put_loudest`]); a party whose loudest frame stays under the noise floor was not heard at
//!   all: the call is **one-sided** ([`silent_party`]).
//! - [`report`] counts, per seat and for a span of time, calls announced vs recorded, one-sided
//!   calls, gaps (count and seconds) and dropped frames.
//!
//! This module never reads the clock or the configuration: times and thresholds are the
//! caller's. It never rewrites an announcement.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

/// Records a control `start` at `seat`: `Ok(call_id)` the call it became, `Err(why)` why it was
/// refused or failed.
pub fn announce(
    conn: &Connection,
    seat: &str,
    at_utc: &str,
    outcome: Result<i64, &str>,
) -> Result<(), StoreError> {
    let (call_id, refused) = match outcome {
        Ok(id) => (Some(id), None),
        Err(why) => (None, Some(why)),
    };
    conn.prepare_cached(
        "INSERT INTO call_announcements (seat_id, at_utc, call_id, refused) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![seat, at_utc, call_id, refused])?;
    Ok(())
}

/// Stores the call's loudest frame per party (dBFS; `None`: no unpaused frame). The call's
/// metrics row must exist (record::call writes it first); without one nothing is written.
pub fn put_loudest(
    conn: &Connection,
    call_id: i64,
    agent_dbfs: Option<f32>,
    customer_dbfs: Option<f32>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE call_metrics SET agent_loudest_dbfs = ?2, customer_loudest_dbfs = ?3
         WHERE call_id = ?1",
    )?
    .execute(params![call_id, agent_dbfs, customer_dbfs])?;
    Ok(())
}

/// Which party was not heard through a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilentParty {
    Agent,
    Customer,
    Both,
}

impl SilentParty {
    pub fn as_str(self) -> &'static str {
        match self {
            SilentParty::Agent => "agent",
            SilentParty::Customer => "customer",
            SilentParty::Both => "agent and customer",
        }
    }
}

/// The party whose loudest frame is under `floor_dbfs`, if any. Unknown levels (`None`: a call
/// paused throughout, or from before migration 21) prove nothing either way.
pub fn silent_party(
    agent_dbfs: Option<f64>,
    customer_dbfs: Option<f64>,
    floor_dbfs: f64,
) -> Option<SilentParty> {
    let quiet = |v: Option<f64>| v.is_some_and(|d| d < floor_dbfs);
    match (quiet(agent_dbfs), quiet(customer_dbfs)) {
        (true, true) => Some(SilentParty::Both),
        (true, false) => Some(SilentParty::Agent),
        (false, true) => Some(SilentParty::Customer),
        (false, false) => None,
    }
}

/// A finished call's loudness, as [`last_finished`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLoudness {
    pub call_id: i64,
    pub duration_ms: i64,
    pub agent_dbfs: Option<f64>,
    pub customer_dbfs: Option<f64>,
}

/// The seat's last `n` finished calls, newest first (a call still recording is not finished).
pub fn last_finished(
    conn: &Connection,
    seat: &str,
    n: u32,
) -> Result<Vec<CallLoudness>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT c.id, c.duration_ms, m.agent_loudest_dbfs, m.customer_loudest_dbfs
         FROM calls c LEFT JOIN call_metrics m ON m.call_id = c.id
         WHERE c.seat_id = ?1 AND c.status <> 'recording'
         ORDER BY c.started_at_utc DESC, c.id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![seat, n], |r| {
        Ok(CallLoudness {
            call_id: r.get(0)?,
            duration_ms: r.get(1)?,
            agent_dbfs: r.get(2)?,
            customer_dbfs: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the index says about a seat's agent and calls, for the idle alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatActivity {
    /// The agent logged in and since when, if the seat's last login/logout is a login.
    pub logged_in: Option<(String, String)>,
    /// A call is recording at the seat.
    pub recording: bool,
    /// When the seat's last finished call ended.
    pub last_call_end_utc: Option<String>,
}

/// The seat's logged-in agent and its last call.
pub fn seat_activity(conn: &Connection, seat: &str) -> Result<SeatActivity, StoreError> {
    let last: Option<(String, Option<String>, String)> = conn
        .prepare_cached(
            "SELECT state, agent, at_utc FROM agent_states WHERE seat_id = ?1
               AND state IN ('login', 'logout') ORDER BY id DESC LIMIT 1",
        )?
        .query_row([seat], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let logged_in = match last {
        Some((state, Some(agent), at)) if state == "login" => Some((agent, at)),
        _ => None,
    };
    let recording: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE seat_id = ?1 AND status = 'recording')",
        )?
        .query_row([seat], |r| r.get(0))?;
    let last_call_end_utc: Option<String> = conn
        .prepare_cached(
            "SELECT max(ended_at_utc) FROM calls WHERE seat_id = ?1 AND status <> 'recording'",
        )?
        .query_row([seat], |r| r.get(0))?;
    Ok(SeatActivity {
        logged_in,
        recording,
        last_call_end_utc,
    })
}

/// One seat's figures over a span of time (calls by their start, announcements by their time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeatCompleteness {
    pub seat: String,
    /// Control `start`s received (the CTI announcing a call).
    pub announced: u64,
    /// Announced starts that did not become a call (refused or failed).
    pub refused: u64,
    /// Calls that started, whatever their mode (vox and continuous calls are not announced).
    pub calls: u64,
    /// Calls finished cleanly (status other than `recording` and `interrupted`).
    pub recorded: u64,
    /// Calls sealed after a crash or a write error (`interrupted`): recorded up to the fault.
    pub interrupted: u64,
    /// Calls still recording.
    pub recording: u64,
    /// Calls with a party under the noise floor throughout (of any length).
    pub one_sided: u64,
    /// Gap intervals (a device down or a capture fault inside a call).
    pub gaps: u64,
    /// Their total length; a gap still open counts up to the call's end.
    pub gap_ms: u64,
    pub dropped_frames: u64,
}

/// Per seat, over calls started and starts announced in `[from_utc, to_utc)` at box `box_id`
/// (imported calls and the hub's are not this box's recordings): every seat of `seats` (zeros
/// when nothing happened there), then any other seat that has rows, by name.
pub fn report(
    conn: &Connection,
    box_id: &str,
    seats: &[String],
    from_utc: &str,
    to_utc: &str,
    floor_dbfs: f64,
) -> Result<Vec<SeatCompleteness>, StoreError> {
    let mut by_seat: BTreeMap<String, SeatCompleteness> = BTreeMap::new();
    fn slot(m: &mut BTreeMap<String, SeatCompleteness>, seat: String) -> &mut SeatCompleteness {
        m.entry(seat.clone()).or_insert_with(|| SeatCompleteness {
            seat,
            ..Default::default()
        })
    }
    for s in seats {
        slot(&mut by_seat, s.clone());
    }
    let mut st = conn.prepare_cached(
        "SELECT seat_id, count(*), count(*) - count(call_id) FROM call_announcements
         WHERE at_utc >= ?1 AND at_utc < ?2 GROUP BY seat_id",
    )?;
    let rows = st.query_map(params![from_utc, to_utc], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (seat, announced, refused) = row?;
        let e = slot(&mut by_seat, seat);
        e.announced = u64::try_from(announced).unwrap_or(0);
        e.refused = u64::try_from(refused).unwrap_or(0);
    }
    let mut st = conn.prepare_cached(
        "SELECT c.seat_id, c.status, c.dropped_frames,
                m.agent_loudest_dbfs, m.customer_loudest_dbfs,
                (SELECT count(*) FROM call_intervals i WHERE i.call_id = c.id AND i.kind = 'gap'),
                (SELECT coalesce(sum(max(0, min(coalesce(i.end_ms, c.duration_ms), c.duration_ms)
                                        - i.start_ms)), 0)
                   FROM call_intervals i WHERE i.call_id = c.id AND i.kind = 'gap')
         FROM calls c LEFT JOIN call_metrics m ON m.call_id = c.id
         WHERE c.box_id = ?1 AND c.started_at_utc >= ?2 AND c.started_at_utc < ?3",
    )?;
    let rows = st.query_map(params![box_id, from_utc, to_utc], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<f64>>(3)?,
            r.get::<_, Option<f64>>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    for row in rows {
        let (seat, status, dropped, agent, customer, gaps, gap_ms) = row?;
        let e = slot(&mut by_seat, seat);
        e.calls += 1;
        match status.as_str() {
            "recording" => e.recording += 1,
            "interrupted" => e.interrupted += 1,
            _ => e.recorded += 1,
        }
        if silent_party(agent, customer, floor_dbfs).is_some() {
            e.one_sided += 1;
        }
        e.gaps += u64::try_from(gaps).unwrap_or(0);
        e.gap_ms += u64::try_from(gap_ms).unwrap_or(0);
        e.dropped_frames += u64::try_from(dropped).unwrap_or(0);
    }
    // Configured seats first, in their order; then the others by name.
    let mut out: Vec<SeatCompleteness> = seats.iter().filter_map(|s| by_seat.remove(s)).collect();
    out.extend(by_seat.into_values());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    /// A metrics row with only the loudest frames set (the other figures do not matter here).
    fn loudness(conn: &Connection, call_id: i64, agent: Option<f32>, customer: Option<f32>) {
        let inserted = conn.execute(
            "INSERT INTO call_metrics (call_id, agent_talk_ms, customer_talk_ms, dead_air_count,
                 dead_air_total_ms, dead_air_longest_ms, overtalk_count, overtalk_total_ms,
                 agent_interruptions, longest_silence_ms, detail)
             VALUES (?1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}')",
            [call_id],
        );
        assert_eq!(inserted.ok(), Some(1));
        assert!(put_loudest(conn, call_id, agent, customer).is_ok());
    }

    #[test]
    fn the_report_counts_what_the_index_proves() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let day = ("2026-12-05T00:00:00.000Z", "2026-12-06T00:00:00.000Z");
        let call = |seat: &str, at: &str, status: Option<&str>| {
            let c = TestCall::new()
                .seat(seat)
                .started_at(at)
                .duration_ms(60_000);
            match status {
                Some(s) => c.finalized(s),
                None => c,
            }
        };
        // s1: two announced calls, both recorded; the second one-sided (customer at -75 dBFS
        // under a -60 floor), with two gaps: 1.5 s closed, and one open from 58 s (to the
        // call's end at 60 s: 2 s). 7 + 3 dropped frames.
        let a = call("s1", "2026-12-05T09:00:00.000Z", Some("complete")).insert(&conn)?;
        let b = call("s1", "2026-12-05T10:00:00.000Z", Some("complete")).insert(&conn)?;
        conn.execute(
            "UPDATE calls SET dropped_frames = CASE id WHEN ?1 THEN 7 ELSE 3 END WHERE id IN (?1, ?2)",
            [a.id, b.id],
        )?;
        loudness(&conn, a.id, Some(-20.0), Some(-25.0));
        loudness(&conn, b.id, Some(-20.0), Some(-75.0));
        let g1 = crate::store::open_interval(&conn, b.id, "gap", 10_000, None, None)?;
        crate::store::close_interval(&conn, g1, 11_500)?;
        crate::store::open_interval(&conn, b.id, "gap", 58_000, None, None)?;
        announce(&conn, "s1", "2026-12-05T09:00:00.000Z", Ok(a.id))?;
        announce(&conn, "s1", "2026-12-05T10:00:00.000Z", Ok(b.id))?;
        // s2: one start refused (disk full), one call interrupted by a crash, one still
        // recording, one paused throughout (levels unknown: not one-sided).
        announce(&conn, "s2", "2026-12-05T11:00:00.000Z", Err("storage full"))?;
        call("s2", "2026-12-05T12:00:00.000Z", Some("interrupted")).insert(&conn)?;
        call("s2", "2026-12-05T23:59:59.999Z", None).insert(&conn)?;
        let p = call("s2", "2026-12-05T13:00:00.000Z", Some("complete")).insert(&conn)?;
        loudness(&conn, p.id, None, None);
        // Outside the day, another box's call, and a seat not configured.
        call("s1", "2026-12-06T00:00:00.000Z", Some("complete")).insert(&conn)?;
        announce(&conn, "s1", "2026-12-04T23:59:59.999Z", Err("busy"))?;
        TestCall::new()
            .box_id("other")
            .seat("s1")
            .started_at("2026-12-05T09:30:00.000Z")
            .insert(&conn)?;
        call("s9", "2026-12-05T08:00:00.000Z", Some("complete")).insert(&conn)?;

        let seats = ["s2".to_owned(), "s1".to_owned(), "s3".to_owned()];
        let r = report(&conn, "b", &seats, day.0, day.1, -60.0)?;
        let s1 = SeatCompleteness {
            seat: "s1".into(),
            announced: 2,
            refused: 0,
            calls: 2,
            recorded: 2,
            interrupted: 0,
            recording: 0,
            one_sided: 1,
            gaps: 2,
            gap_ms: 3_500,
            dropped_frames: 10,
        };
        let s2 = SeatCompleteness {
            seat: "s2".into(),
            announced: 1,
            refused: 1,
            calls: 3,
            recorded: 1,
            interrupted: 1,
            recording: 1,
            ..Default::default()
        };
        let s3 = SeatCompleteness {
            seat: "s3".into(),
            ..Default::default()
        };
        let s9 = SeatCompleteness {
            seat: "s9".into(),
            calls: 1,
            recorded: 1,
            ..Default::default()
        };
        assert_eq!(r, [s2, s1, s3, s9]);
        // A refused announcement has no call; a recorded one has no reason.
        let bad = conn.execute(
            "INSERT INTO call_announcements (seat_id, at_utc, call_id, refused) VALUES ('s1', 'x', NULL, NULL)",
            [],
        );
        assert!(bad.is_err());
        let rewrite = conn.execute("UPDATE call_announcements SET refused = 'x'", []);
        assert!(rewrite.is_err());
        Ok(())
    }

    #[test]
    fn a_party_under_the_floor_is_silent_unknown_levels_prove_nothing() {
        assert_eq!(
            silent_party(Some(-20.0), Some(-61.0), -60.0),
            Some(SilentParty::Customer)
        );
        assert_eq!(
            silent_party(Some(-120.0), Some(-30.0), -60.0),
            Some(SilentParty::Agent)
        );
        assert_eq!(
            silent_party(Some(-70.0), Some(-70.0), -60.0),
            Some(SilentParty::Both)
        );
        assert_eq!(silent_party(Some(-60.0), Some(-59.0), -60.0), None);
        assert_eq!(silent_party(None, None, -60.0), None);
    }
}
