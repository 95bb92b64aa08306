//! Agent states from the CTI and each call's handle time (talk, hold, after-call work).
//!
//! The CTI reports `login` / `logout` at a seat, and `wrapup` / `ready` after a call; the
//! recorder's indexer writes them here ([`record`]), one row each in `agent_states`, audited
//! (`agent.<state>`). Hold is not a state row but an interval of the call (`call_intervals`,
//! kind `hold`, opened and closed like a pause): it only marks time, the audio is recorded as
//! ever. When a call ends, [`settle_call`] stores its talk and hold; when its wrap-up ends, its
//! after-call work.
//!
//! Definitions (docs/qa-lead.md, "The operator's record", repeats them):
//! - **logged-in time**: from a `login` to the seat's next `login` or `logout`. A login at a
//!   seat where someone is logged in logs that agent out first; a recorder start logs every
//!   seat out ([`end_all_at_start`]), since the seats forget their agents then.
//! - **hold**: the union of the call's hold intervals, so overlapping ones (or a hold spanning a
//!   PCI pause) count once. **talk** = the call's duration − hold: a PCI pause is talk (the
//!   parties still talk; only the recording is silenced).
//! - **after-call work (ACW)**: from `wrapup` to the seat's next `ready`, for the seat's last call
//!   (time between the stop and the wrap-up is idle, not ACW). A new call, a login or a logout at
//!   the seat ends a wrap-up left open (a row `ready` with source `system`).
//!
//! This module never reads the clock: every time is the caller's (the worker's, when the CTI's
//! request arrived), so figures do not depend on how long the index kept a job waiting.

use super::audit::{self, Actor};
use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

/// What the CTI says about the agent at a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Login,
    Logout,
    /// After-call work on the seat's last call begins.
    Wrapup,
    /// The agent is ready for the next call (ends a wrap-up).
    Ready,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Login => "login",
            State::Logout => "logout",
            State::Wrapup => "wrapup",
            State::Ready => "ready",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentStateError {
    #[error("seat {seat} has no call to wrap up")]
    NoCall { seat: String },
    #[error("seat {seat} is already in wrap-up for call {call_id}; send ready first")]
    AlreadyInWrapup { seat: String, call_id: i64 },
    #[error("time {0:?} is not an RFC 3339 time")]
    BadTime(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AgentStateError {
    fn from(e: rusqlite::Error) -> Self {
        AgentStateError::Store(StoreError::Sql(e))
    }
}

/// What a state change did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recorded {
    /// The call a wrap-up is for, or whose wrap-up a ready ended.
    pub call_id: Option<i64>,
    /// The after-call work a ready (or an implied one) added to that call.
    pub acw_ms: Option<i64>,
}

/// Milliseconds from `a` to `b` (both RFC 3339), never negative: a clock stepped back between
/// two CTI messages must not make negative work.
pub fn ms_between(a: &str, b: &str) -> Result<i64, AgentStateError> {
    let p = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s).map_err(|_| AgentStateError::BadTime(s.to_owned()))
    };
    Ok((p(b)? - p(a)?).num_milliseconds().max(0))
}

/// The seat's open wrap-up: (call id, since), if its last wrap-up/ready/login/logout row is a
/// wrap-up.
fn open_wrapup(conn: &Connection, seat: &str) -> Result<Option<(i64, String)>, AgentStateError> {
    let last: Option<(String, Option<i64>, String)> = conn
        .query_row(
            "SELECT state, call_id, at_utc FROM agent_states WHERE seat_id = ?1
             ORDER BY id DESC LIMIT 1",
            [seat],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match last {
        Some((state, Some(call), at)) if state == "wrapup" => Some((call, at)),
        _ => None,
    })
}

/// The agent logged in at the seat, if any.
fn logged_in(conn: &Connection, seat: &str) -> Result<Option<String>, AgentStateError> {
    let last: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT state, agent FROM agent_states WHERE seat_id = ?1
               AND state IN ('login', 'logout') ORDER BY id DESC LIMIT 1",
            [seat],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match last {
        Some((state, agent)) if state == "login" => agent,
        _ => None,
    })
}

#[allow(clippy::too_many_arguments)]
fn insert(
    conn: &Connection,
    seat: &str,
    agent: Option<&str>,
    state: State,
    call_id: Option<i64>,
    at_utc: &str,
    system: bool,
    by: Actor,
) -> Result<(), AgentStateError> {
    conn.execute(
        "INSERT INTO agent_states (seat_id, agent, state, call_id, at_utc, source, by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seat,
            agent,
            state.as_str(),
            call_id,
            at_utc,
            if system { "system" } else { "cti" },
            by.name
        ],
    )?;
    let action = format!("agent.{}", state.as_str());
    audit::append(
        conn,
        &by.event(
            &action,
            call_id,
            serde_json::json!({"seat": seat, "agent": agent, "at_utc": at_utc,
                               "source": if system { "system" } else { "cti" }}),
        ),
    )?;
    Ok(())
}

/// Ends the seat's open wrap-up at `at_utc` (an implied `ready`); adds its span to the call's
/// ACW.
fn end_wrapup(
    conn: &Connection,
    seat: &str,
    at_utc: &str,
    system: bool,
    by: Actor,
) -> Result<Recorded, AgentStateError> {
    let Some((call_id, since)) = open_wrapup(conn, seat)? else {
        return Ok(Recorded::default());
    };
    let acw_ms = ms_between(&since, at_utc)?;
    let agent: Option<String> = conn
        .query_row("SELECT agent FROM calls WHERE id = ?1", [call_id], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    insert(
        conn,
        seat,
        agent.as_deref(),
        State::Ready,
        Some(call_id),
        at_utc,
        system,
        by,
    )?;
    conn.execute(
        "UPDATE calls SET acw_ms = COALESCE(acw_ms, 0) + ?2 WHERE id = ?1",
        params![call_id, acw_ms],
    )?;
    Ok(Recorded {
        call_id: Some(call_id),
        acw_ms: Some(acw_ms),
    })
}

/// Records a state the CTI reported at `seat` at `at_utc` (`agent`: the one logging in), with
/// what it implies, in one transaction: a login ends an open wrap-up and logs out the agent
/// logged in before; a logout ends an open wrap-up; a wrap-up starts ACW for the seat's last
/// call (refused when there is none, or one is open); a ready ends the open wrap-up (and is
/// recorded even when there is none: CTIs send it after every call).
pub fn record(
    conn: &Connection,
    seat: &str,
    state: State,
    agent: Option<&str>,
    at_utc: &str,
    by: Actor,
) -> Result<Recorded, AgentStateError> {
    ms_between(at_utc, at_utc)?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let done = match state {
        State::Login => {
            let r = end_wrapup(&tx, seat, at_utc, true, by)?;
            if let Some(before) = logged_in(&tx, seat)? {
                insert(
                    &tx,
                    seat,
                    Some(&before),
                    State::Logout,
                    None,
                    at_utc,
                    true,
                    by,
                )?;
            }
            insert(&tx, seat, agent, State::Login, None, at_utc, false, by)?;
            r
        }
        State::Logout => {
            let r = end_wrapup(&tx, seat, at_utc, true, by)?;
            let who = logged_in(&tx, seat)?;
            insert(
                &tx,
                seat,
                who.as_deref(),
                State::Logout,
                None,
                at_utc,
                false,
                by,
            )?;
            r
        }
        State::Wrapup => {
            if let Some((call_id, _)) = open_wrapup(&tx, seat)? {
                return Err(AgentStateError::AlreadyInWrapup {
                    seat: seat.to_owned(),
                    call_id,
                });
            }
            let last: Option<(i64, Option<String>)> = tx
                .query_row(
                    "SELECT id, agent FROM calls WHERE seat_id = ?1 ORDER BY id DESC LIMIT 1",
                    [seat],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((call_id, agent)) = last else {
                return Err(AgentStateError::NoCall {
                    seat: seat.to_owned(),
                });
            };
            insert(
                &tx,
                seat,
                agent.as_deref(),
                State::Wrapup,
                Some(call_id),
                at_utc,
                false,
                by,
            )?;
            Recorded {
                call_id: Some(call_id),
                acw_ms: None,
            }
        }
        State::Ready => {
            let r = end_wrapup(&tx, seat, at_utc, false, by)?;
            if r.call_id.is_none() {
                let who = logged_in(&tx, seat)?;
                insert(
                    &tx,
                    seat,
                    who.as_deref(),
                    State::Ready,
                    None,
                    at_utc,
                    false,
                    by,
                )?;
            }
            r
        }
    };
    tx.commit()?;
    Ok(done)
}

/// A call started at `seat` at `at_utc`: a wrap-up left open there ends now (the agent took the
/// next call, so they were ready).
pub fn call_started(
    conn: &Connection,
    seat: &str,
    at_utc: &str,
    by: Actor,
) -> Result<Recorded, AgentStateError> {
    ms_between(at_utc, at_utc)?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let r = end_wrapup(&tx, seat, at_utc, true, by)?;
    tx.commit()?;
    Ok(r)
}

/// The recorder starts with no agent at any seat: every seat still logged in (or in wrap-up) in
/// the index is logged out at `at_utc`, so logged-in time stops where the seats forgot their
/// agent (at the latest, this start). Returns the seats logged out.
pub fn end_all_at_start(conn: &Connection, at_utc: &str) -> Result<Vec<String>, AgentStateError> {
    ms_between(at_utc, at_utc)?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let seats: Vec<String> = tx
        .prepare("SELECT DISTINCT seat_id FROM agent_states ORDER BY seat_id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let by = Actor::local("system");
    let mut out = Vec::new();
    for seat in seats {
        let r = end_wrapup(&tx, &seat, at_utc, true, by)?;
        let who = logged_in(&tx, &seat)?;
        if let Some(agent) = &who {
            insert(
                &tx,
                &seat,
                Some(agent),
                State::Logout,
                None,
                at_utc,
                true,
                by,
            )?;
        }
        if who.is_some() || r.call_id.is_some() {
            out.push(seat);
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Total length of the union of `[start, end)` spans clipped to `[0, limit)`.
pub fn union_ms(mut spans: Vec<(i64, i64)>, limit: i64) -> i64 {
    spans.retain(|(a, b)| b > a);
    spans.sort();
    let mut total = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in spans {
        let (a, b) = (a.clamp(0, limit), b.clamp(0, limit));
        match cur {
            Some((s, e)) if a <= e => cur = Some((s, e.max(b))),
            Some((s, e)) => {
                total += e - s;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((s, e)) = cur {
        total += e - s;
    }
    total
}

/// Stores a finished call's hold (the union of its hold intervals; one still open ends with the
/// call) and talk (duration − hold). Returns (talk_ms, hold_ms).
pub fn settle_call(conn: &Connection, call_id: i64) -> Result<(i64, i64), AgentStateError> {
    let duration_ms: Option<i64> = conn
        .query_row(
            "SELECT duration_ms FROM calls WHERE id = ?1",
            [call_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(duration_ms) = duration_ms else {
        return Err(StoreError::NoSuchCall(call_id).into());
    };
    let spans: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT start_ms, COALESCE(end_ms, ?2) FROM call_intervals
             WHERE call_id = ?1 AND kind = 'hold'",
        )?
        .query_map(params![call_id, duration_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let hold_ms = union_ms(spans, duration_ms);
    let talk_ms = duration_ms - hold_ms;
    conn.execute(
        "UPDATE calls SET talk_ms = ?2, hold_ms = ?3 WHERE id = ?1",
        params![call_id, talk_ms, hold_ms],
    )?;
    Ok((talk_ms, hold_ms))
}

/// One row of `agent_states`, for tests and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub seat_id: String,
    pub agent: Option<String>,
    pub state: String,
    pub call_id: Option<i64>,
    pub at_utc: String,
    pub source: String,
}

/// Every state row of a seat, oldest first.
pub fn history(conn: &Connection, seat: &str) -> Result<Vec<Row>, AgentStateError> {
    let rows = conn
        .prepare(
            "SELECT seat_id, agent, state, call_id, at_utc, source FROM agent_states
             WHERE seat_id = ?1 ORDER BY id",
        )?
        .query_map([seat], |r| {
            Ok(Row {
                seat_id: r.get(0)?,
                agent: r.get(1)?,
                state: r.get(2)?,
                call_id: r.get(3)?,
                at_utc: r.get(4)?,
                source: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall};

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    const CTI: Actor = Actor {
        name: "cti",
        ip: None,
    };

    fn states(conn: &Connection, seat: &str) -> Result<Vec<(String, String)>, AgentStateError> {
        Ok(history(conn, seat)?
            .into_iter()
            .map(|r| (r.state, r.source))
            .collect())
    }

    #[test]
    fn union_counts_overlaps_once_and_clips() {
        assert_eq!(union_ms(vec![], 1000), 0);
        assert_eq!(
            union_ms(vec![(100, 300), (200, 500), (700, 800)], 1000),
            500
        );
        assert_eq!(union_ms(vec![(900, 1500), (-5, 10)], 1000), 110);
        assert_eq!(union_ms(vec![(300, 300), (400, 350)], 1000), 0);
    }

    #[test]
    fn hold_is_the_union_of_holds_and_a_pause_is_talk() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let call = TestCall::new()
            .seat("s1")
            .duration_ms(60_000)
            .finalized("complete")
            .insert(&conn)?
            .id;
        // Hold 10-30 s spanning a PCI pause 15-20 s; a second hold 25-40 s overlaps the first;
        // a third left open at 55 s ends with the call.
        let p = crate::store::open_interval(&conn, call, "pause", 15_000, None, None)?;
        crate::store::close_interval(&conn, p, 20_000)?;
        let h = crate::store::open_interval(&conn, call, "hold", 10_000, None, None)?;
        crate::store::close_interval(&conn, h, 30_000)?;
        let h = crate::store::open_interval(&conn, call, "hold", 25_000, None, None)?;
        crate::store::close_interval(&conn, h, 40_000)?;
        crate::store::open_interval(&conn, call, "hold", 55_000, None, None)?;
        // 10-40 s (30 s) + 55-60 s (5 s) = 35 s of hold; 25 s of talk.
        assert_eq!(settle_call(&conn, call)?, (25_000, 35_000));
        let stored: (i64, i64, Option<i64>) = conn.query_row(
            "SELECT talk_ms, hold_ms, acw_ms FROM calls WHERE id = ?1",
            [call],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        assert_eq!(stored, (25_000, 35_000, None));
        Ok(())
    }

    #[test]
    fn wrapup_to_ready_is_acw_of_the_seats_last_call() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        assert!(matches!(
            record(
                &conn,
                "s1",
                State::Wrapup,
                None,
                "2026-12-01T09:00:00.000Z",
                CTI
            ),
            Err(AgentStateError::NoCall { .. })
        ));
        let _other_seat = TestCall::new().seat("s2").insert(&conn)?.id;
        let first = TestCall::new().seat("s1").agent("alice").insert(&conn)?.id;
        let last = TestCall::new().seat("s1").agent("alice").insert(&conn)?.id;
        let r = record(
            &conn,
            "s1",
            State::Wrapup,
            None,
            "2026-12-01T09:00:00.000Z",
            CTI,
        )?;
        assert_eq!(r.call_id, Some(last));
        assert!(matches!(
            record(&conn, "s1", State::Wrapup, None, "2026-12-01T09:00:01.000Z", CTI),
            Err(AgentStateError::AlreadyInWrapup { call_id, .. }) if call_id == last
        ));
        let r = record(
            &conn,
            "s1",
            State::Ready,
            None,
            "2026-12-01T09:00:42.500Z",
            CTI,
        )?;
        assert_eq!((r.call_id, r.acw_ms), (Some(last), Some(42_500)));
        // A second wrap-up of the same call adds to it; a new call ends it (implied ready).
        record(
            &conn,
            "s1",
            State::Wrapup,
            None,
            "2026-12-01T09:01:00.000Z",
            CTI,
        )?;
        let r = call_started(&conn, "s1", "2026-12-01T09:01:07.000Z", CTI)?;
        assert_eq!(r.acw_ms, Some(7_000));
        let acw: Vec<Option<i64>> = conn
            .prepare("SELECT acw_ms FROM calls WHERE id IN (?1, ?2) ORDER BY id")?
            .query_map([first, last], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(acw, [None, Some(49_500)]);
        // A ready without a wrap-up is kept and adds nothing.
        let r = record(
            &conn,
            "s1",
            State::Ready,
            None,
            "2026-12-01T09:02:00.000Z",
            CTI,
        )?;
        assert_eq!(r, Recorded::default());
        assert_eq!(
            states(&conn, "s1")?,
            [
                ("wrapup".into(), "cti".into()),
                ("ready".into(), "cti".into()),
                ("wrapup".into(), "cti".into()),
                ("ready".into(), "system".into()),
                ("ready".into(), "cti".into()),
            ]
        );
        let audited: i64 = conn.query_row(
            "SELECT count(*) FROM audit WHERE action LIKE 'agent.%'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(audited, 5);
        assert!(conn
            .execute("UPDATE agent_states SET at_utc = 'x'", [])
            .is_err());
        Ok(())
    }

    #[test]
    fn a_login_replaces_the_agent_and_a_start_logs_everyone_out() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let t = |m: u32| format!("2026-12-01T09:{m:02}:00.000Z");
        record(&conn, "s1", State::Login, Some("alice"), &t(0), CTI)?;
        record(&conn, "s1", State::Login, Some("bob"), &t(10), CTI)?;
        record(&conn, "s2", State::Login, Some("carol"), &t(11), CTI)?;
        let call = TestCall::new().seat("s2").agent("carol").insert(&conn)?.id;
        record(&conn, "s2", State::Wrapup, None, &t(20), CTI)?;
        record(&conn, "s1", State::Logout, None, &t(30), CTI)?;
        assert_eq!(end_all_at_start(&conn, &t(40))?, ["s2"]);
        let h = history(&conn, "s1")?;
        let got: Vec<(&str, Option<&str>, &str)> = h
            .iter()
            .map(|r| (r.state.as_str(), r.agent.as_deref(), r.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("login", Some("alice"), "cti"),
                ("logout", Some("alice"), "system"),
                ("login", Some("bob"), "cti"),
                ("logout", Some("bob"), "cti"),
            ]
        );
        let h = history(&conn, "s2")?;
        let got: Vec<(&str, Option<i64>, &str)> = h
            .iter()
            .map(|r| (r.state.as_str(), r.call_id, r.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("login", None, "cti"),
                ("wrapup", Some(call), "cti"),
                ("ready", Some(call), "system"),
                ("logout", None, "system"),
            ]
        );
        let acw: i64 = conn.query_row("SELECT acw_ms FROM calls WHERE id = ?1", [call], |r| {
            r.get(0)
        })?;
        assert_eq!(acw, 20 * 60_000);
        assert!(end_all_at_start(&conn, &t(50))?.is_empty());
        assert!(matches!(
            record(&conn, "s1", State::Login, Some("x"), "yesterday", CTI),
            Err(AgentStateError::BadTime(_))
        ));
        Ok(())
    }
}
