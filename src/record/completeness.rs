//! The recorder's completeness alarms, per seat (issue 16 item 4; docs/admin.md, "Completeness
//! alarms"): evaluated on the indexer thread, the recorder's only index connection, from what
//! the index holds, so a restart forgets nothing and `callrec run` and `callrec record` +
//! `callrec serve` behave the same (the web service only reads the alarms).
//!
//! - `silent_channel`: a call of at least `silent_call_min_s` with a party under the noise floor
//!   throughout, or `silent_calls_in_row` such calls in a row with the same party. Judged when a
//!   call finishes; cleared by the next call on the seat with both parties heard.
//! - `start_refused`: a control `start` (the CTI announcing a call) that did not become a call.
//!   Cleared by the seat's next announced call that starts.
//! - `idle_logged_in`: an agent logged in at a `control` seat, no call for `idle_logged_in_s`,
//!   now in working hours (the box's local time). Checked every [`IDLE_CHECK`]; cleared by a
//!   call, a logout, or the end of working hours.
//!
//! This module never blocks a worker (it runs where the index may be waited for) and never
//! fails a call: an alarm that cannot be written is logged and tried again at the next event.

use crate::config::{AlarmsConfig, Config, SeatMode};
use crate::store::{self, alarms, completeness};
use chrono::{DateTime, Datelike, Local, Timelike, Utc};
use rusqlite::Connection;
use std::collections::HashMap;
use std::time::Duration;

/// How often the idle alarm is evaluated: much finer than any sensible `idle_logged_in_s`.
pub const IDLE_CHECK: Duration = Duration::from_secs(2);

/// The thresholds, and the seats the idle alarm watches.
#[derive(Debug, Clone)]
pub struct Rules {
    alarms: AlarmsConfig,
    /// Seats in `control` mode: the only ones where a CTI logs agents in.
    control_seats: Vec<String>,
    /// What this process last wrote of each seat's `idle_logged_in` alarm (`Some(detail)`:
    /// raised; `None`: cleared; absent: not known, e.g. left by a previous run), so a check that
    /// changes nothing takes no write lock.
    idle_written: HashMap<String, Option<String>>,
}

impl Rules {
    pub fn new(cfg: &Config) -> Self {
        Rules {
            alarms: cfg.alarms.clone(),
            control_seats: cfg
                .seats
                .iter()
                .filter(|s| s.mode == SeatMode::Control)
                .map(|s| s.id.clone())
                .collect(),
            idle_written: HashMap::new(),
        }
    }

    /// A call finished on `seat`: raise or clear `silent_channel`.
    pub fn after_call(&self, conn: &Connection, seat: &str, now_utc: &str) {
        if let Err(e) = self.judge_silence(conn, seat, now_utc) {
            tracing::warn!(
                seat,
                "judging the call's audio for alarm silent_channel: {e}"
            );
        }
    }

    fn judge_silence(
        &self,
        conn: &Connection,
        seat: &str,
        now_utc: &str,
    ) -> Result<(), store::StoreError> {
        let floor = self.alarms.noise_floor_dbfs;
        let in_row = self.alarms.silent_calls_in_row;
        let last = completeness::last_finished(conn, seat, in_row)?;
        let Some(newest) = last.first() else {
            return Ok(());
        };
        let silent = |c: &completeness::CallLoudness| {
            completeness::silent_party(c.agent_dbfs, c.customer_dbfs, floor)
        };
        let Some(party) = silent(newest) else {
            if newest.agent_dbfs.is_some() && newest.customer_dbfs.is_some() {
                alarms::clear_for(conn, alarms::SILENT_CHANNEL, seat, now_utc)?;
            }
            // Levels unknown (paused throughout): proves nothing either way.
            return Ok(());
        };
        let detail = if newest.duration_ms >= (self.alarms.silent_call_min_s * 1000) as i64 {
            Some(format!(
                "{} under {floor} dBFS through call {} ({} s)",
                party.as_str(),
                newest.call_id,
                newest.duration_ms / 1000
            ))
        } else if last.len() == in_row as usize {
            // The same party silent in each: an agent who never spoke in one call and a
            // customer who never answered in the next are two ordinary calls.
            let all = |p: completeness::SilentParty| {
                last.iter().all(|c| {
                    silent(c).is_some_and(|s| s == p || s == completeness::SilentParty::Both)
                })
            };
            let run = [
                completeness::SilentParty::Agent,
                completeness::SilentParty::Customer,
            ]
            .into_iter()
            .find(|p| all(*p));
            run.map(|p| {
                let ids: Vec<String> = last.iter().map(|c| c.call_id.to_string()).collect();
                format!(
                    "{} under {floor} dBFS through the last {in_row} calls ({})",
                    p.as_str(),
                    ids.join(", ")
                )
            })
        } else {
            None
        };
        if let Some(detail) = detail {
            alarms::raise_for(conn, alarms::SILENT_CHANNEL, seat, &detail, now_utc)?;
        }
        Ok(())
    }

    /// A control `start` at `seat` at `at_utc`: `Ok(call_id)` it became that call, `Err(why)` it
    /// did not. Recorded (store::completeness), and `start_refused` raised or cleared.
    pub fn after_start(
        &self,
        conn: &Connection,
        seat: &str,
        at_utc: &str,
        outcome: Result<i64, &str>,
    ) {
        let done =
            completeness::announce(conn, seat, at_utc, outcome).and_then(|()| match outcome {
                Ok(_) => alarms::clear_for(conn, alarms::START_REFUSED, seat, at_utc).map(|_| ()),
                Err(why) => alarms::raise_for(
                    conn,
                    alarms::START_REFUSED,
                    seat,
                    &format!("the call announced at {at_utc} was not recorded: {why}"),
                    at_utc,
                )
                .map(|_| ()),
            });
        if let Err(e) = done {
            tracing::error!(seat, "recording the announced start: {e}");
        }
    }

    /// Raises or clears `idle_logged_in` on every `control` seat, at `now`.
    pub fn check_idle(&mut self, conn: &Connection, now: DateTime<Utc>) {
        if self.alarms.idle_logged_in_s == 0 {
            return;
        }
        let local = now.with_timezone(&Local);
        let working = self.alarms.in_working_hours(
            local.weekday().num_days_from_monday(),
            local.hour() * 60 + local.minute(),
        );
        let now_utc = crate::clock::format_utc(now);
        for seat in self.control_seats.clone() {
            if let Err(e) = self.judge_idle(conn, &seat, working, now, &now_utc) {
                tracing::warn!(seat, "judging alarm idle_logged_in: {e}");
            }
        }
    }

    fn judge_idle(
        &mut self,
        conn: &Connection,
        seat: &str,
        working: bool,
        now: DateTime<Utc>,
        now_utc: &str,
    ) -> Result<(), store::StoreError> {
        let a = completeness::seat_activity(conn, seat)?;
        let idle = match (&a.logged_in, a.recording) {
            (Some((agent, login_utc)), false) if working => {
                // Idle since the later of the login and the seat's last call.
                let since = [Some(login_utc.as_str()), a.last_call_end_utc.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .max();
                since
                    .filter(|s| (now - *s).num_seconds() >= self.alarms.idle_logged_in_s as i64)
                    .map(|s| (agent.clone(), s))
            }
            _ => None,
        };
        let detail = idle.map(|(agent, since)| {
            format!(
                "agent {agent} logged in, no call since {} (over {} s)",
                crate::clock::format_utc(since),
                self.alarms.idle_logged_in_s
            )
        });
        if self.idle_written.get(seat) == Some(&detail) {
            return Ok(());
        }
        match &detail {
            Some(d) => {
                alarms::raise_for(conn, alarms::IDLE_LOGGED_IN, seat, d, now_utc).map(|_| ())?
            }
            None => alarms::clear_for(conn, alarms::IDLE_LOGGED_IN, seat, now_utc).map(|_| ())?,
        }
        self.idle_written.insert(seat.to_owned(), detail);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    /// A finished call on s1 at minute `n` with these loudest frames (None: paused throughout).
    fn call(
        conn: &Connection,
        n: u32,
        secs: u64,
        agent: Option<f32>,
        customer: Option<f32>,
    ) -> TestResult<i64> {
        let id = TestCall::new()
            .seat("s1")
            .started_at(&format!("2026-12-05T10:{n:02}:00.000Z"))
            .duration_ms(secs * 1000)
            .finalized("complete")
            .insert(conn)?
            .id;
        conn.execute(
            "INSERT INTO call_metrics (call_id, agent_talk_ms, customer_talk_ms, dead_air_count,
                 dead_air_total_ms, dead_air_longest_ms, overtalk_count, overtalk_total_ms,
                 agent_interruptions, longest_silence_ms, detail)
             VALUES (?1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}')",
            [id],
        )?;
        completeness::put_loudest(conn, id, agent, customer)?;
        Ok(id)
    }

    fn silent_alarm(conn: &Connection) -> Option<String> {
        alarms::active(conn)
            .ok()?
            .into_iter()
            .find(|a| a.kind == alarms::SILENT_CHANNEL && a.subject == "s1")
            .map(|a| a.detail)
    }

    #[test]
    fn a_run_needs_the_same_party_and_a_heard_call_clears() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let text = format!(
            "[box]\nid = \"b\"\n[storage]\ndir = {:?}\n[alarms]\nsilent_calls_in_row = 2\n[[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n",
            dir.path().display().to_string()
        );
        let rules = Rules::new(&Config::parse(&text, std::path::Path::new("t.toml"))?);
        let t = "2026-12-05T11:00:00.000Z";
        let judge = |n, secs, a, c| -> TestResult<Option<String>> {
            call(&conn, n, secs, a, c)?;
            rules.after_call(&conn, "s1", t);
            Ok(silent_alarm(&conn))
        };
        // Short calls: the agent unheard, then the customer: two ordinary calls, no run.
        assert_eq!(judge(1, 5, Some(-120.0), Some(-20.0))?, None);
        assert_eq!(judge(2, 5, Some(-20.0), Some(-75.0))?, None);
        // The customer unheard twice in a row: a run of 2.
        let c3 = call(&conn, 3, 5, Some(-20.0), Some(-61.0))?;
        rules.after_call(&conn, "s1", t);
        let expected = format!(
            "customer under -60 dBFS through the last 2 calls ({c3}, {})",
            c3 - 1
        );
        assert_eq!(silent_alarm(&conn), Some(expected.clone()));
        // Paused throughout proves nothing: the alarm stays.
        assert_eq!(judge(4, 5, None, None)?, Some(expected));
        // Both heard: cleared.
        assert_eq!(judge(5, 5, Some(-20.0), Some(-30.0))?, None);
        // One call of the default 30 s or more with the agent unheard is enough.
        let c6 = call(&conn, 6, 40, Some(-90.0), Some(-30.0))?;
        rules.after_call(&conn, "s1", t);
        assert_eq!(
            silent_alarm(&conn),
            Some(format!("agent under -60 dBFS through call {c6} (40 s)"))
        );
        Ok(())
    }
}
