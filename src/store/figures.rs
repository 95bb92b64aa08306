//! The operator's figures over a period `[from, to)`, for one agent or a team: volume (calls,
//! talk, hold, after-call work, AHT, logged-in time, calls per logged-in hour, occupancy),
//! targets (conversion, survey response rate), quality (mean QA score, QA pass rate,
//! compliance pass rate) and complaints (filed, justified, pending, overdue). One definition per figure, in [`DEFINITIONS`] (docs/qa-lead.md and
//! `callrec figures` print the same text); the tests compute each by hand.
//!
//! Pure SQL and arithmetic over what the index holds: this module reads, never writes, and
//! never decides who may see what (the web service picks the subject within the caller's
//! scope). A ratio whose denominator is zero is `None` (JSON null), never 0 or infinity.
//!
//! Which rows count:
//! - calls: those of the subject's agents that *started* in the period and are no longer
//!   recording (a call deleted by retention still counts: it was handled);
//! - logged-in time: login sessions (store::agent_states) clipped to the period and to `now`,
//!   merged per agent (two seats at once count once);
//! - evaluations and compliance checks: *submitted* in the period, as on the reports page
//!   (drafts and calibration evaluations never count).
//!
//! For a team every count and time is the sum over its members (users with that team, by their
//! agent id) and every ratio is computed from those sums, not averaged over agents.

use super::agent_states::union_ms;
use super::StoreError;
use rusqlite::{params, Connection};
use serde::Serialize;

/// Whose figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Agent(String),
    Team(String),
    /// A campaign's calls, whoever handled them (for its targets, store::targets). Logged-in
    /// time belongs to agents, not campaigns: it is 0 here, so the ratios over it are null.
    Campaign(String),
}

/// Complaints about the subject's agents (store::complaints::counts).
pub use super::complaints::Counts as Complaints;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub subject: Subject,
    pub from_utc: String,
    pub to_utc: String,
    /// The agents counted (a team's members; one for an agent).
    pub agents: Vec<String>,
    // Volume.
    pub calls_handled: i64,
    pub calls_inbound: i64,
    pub calls_outbound: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub acw_ms: i64,
    /// talk + hold + ACW.
    pub handle_ms: i64,
    /// Average handle time: handle ÷ calls handled, rounded to the millisecond.
    pub aht_ms: Option<i64>,
    pub logged_in_ms: i64,
    pub calls_per_logged_in_hour: Option<f64>,
    /// Handle time ÷ logged-in time, in percent.
    pub occupancy_percent: Option<f64>,
    // Targets.
    pub calls_without_outcome: i64,
    pub positive_outcomes: i64,
    pub right_party_contacts: i64,
    /// Positive ÷ right-party contacts, in percent.
    pub conversion_percent: Option<f64>,
    pub survey_attempts: i64,
    pub survey_completes: i64,
    /// Completes ÷ survey attempts (AAPOR RR1 style), in percent.
    pub survey_response_rate_percent: Option<f64>,
    // Quality.
    pub evaluations: i64,
    pub qa_mean_percent: Option<f64>,
    pub qa_pass_rate_percent: Option<f64>,
    pub compliance_checks: i64,
    pub compliance_pass_rate_percent: Option<f64>,
    /// Complaints about the agents (null for a campaign: complaints are about agents).
    pub complaints: Option<Complaints>,
}

/// Every figure's name and its one definition.
pub const DEFINITIONS: &[(&str, &str)] = &[
    ("calls_handled", "calls of the agent that started in [from, to) and are no longer recording (inbound, outbound: by the call's direction; a call without one counts in neither)"),
    ("talk_ms", "sum over those calls of duration − hold; a PCI pause is talk (only the recording is silenced); a call from before agent states counts its whole duration"),
    ("hold_ms", "sum over those calls of the union of their hold intervals (CTI hold → unhold)"),
    ("acw_ms", "after-call work: sum over those calls of wrap-up → ready (CTI wrapup → ready; a new call, login or logout at the seat ends a wrap-up left open); time between stop and wrap-up is not ACW"),
    ("handle_ms", "talk + hold + ACW"),
    ("aht_ms", "average handle time = (talk + hold + ACW) ÷ calls handled, as Genesys, Talkdesk and Amazon Connect define it; null without calls"),
    ("logged_in_ms", "CTI login → the seat's next login or logout (a recorder restart logs every seat out), clipped to [from, to) and to now, merged per agent"),
    ("calls_per_logged_in_hour", "calls handled ÷ logged-in hours; null without logged-in time"),
    ("occupancy_percent", "handle time ÷ logged-in time × 100; null without logged-in time (above 100 when calls were taken while not logged in)"),
    ("conversion_percent", "calls with a positive outcome ÷ right-party contacts (calls whose outcome is of any class but not_right_party) × 100; calls without an outcome are in neither; null without right-party contacts"),
    ("survey_response_rate_percent", "AAPOR RR1 style: calls with outcome `complete` ÷ every call of a survey campaign (one whose outcome list has the code `complete`), with or without an outcome, × 100; null without survey calls"),
    ("qa_mean_percent", "mean score of the agent's evaluations submitted in [from, to) (not drafts, not calibrations), as the reports page"),
    ("qa_pass_rate_percent", "evaluations passed ÷ evaluations × 100"),
    ("compliance_pass_rate_percent", "submitted compliance spot checks passed ÷ checks × 100"),
    ("complaints_filed", "complaints about the agent whose call (or the time named) is in [from, to), whoever filed them"),
    ("complaints_justified", "of those, the ones whose standing ruling is justified (upheld): the appeal's decision once given, else the first ruling; partly justified and not justified are counted apart; one under appeal is pending, not justified"),
    ("complaints_pending", "of those, the ones without a standing ruling: filed, acknowledged, investigating, or under appeal"),
    ("complaints_overdue", "of those, the ones not ruled by their final-response deadline (filing + [complaints] response_days, default 56 days = 8 weeks, FCA DISP 1.6.2 R), as of now"),
];

/// The agent ids of a team's members (`COALESCE(agent_id, username)`, as the team scope).
pub fn team_members(conn: &Connection, team: &str) -> Result<Vec<String>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT DISTINCT COALESCE(agent_id, username) FROM users WHERE team = ?1 ORDER BY 1",
        )?
        .query_map([team], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn ratio(num: f64, den: f64, scale: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den * scale)
}

fn epoch_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Logged-in time of each of `agents` (a JSON array) in `[from, min(to, now))`, summed.
fn logged_in_ms(
    conn: &Connection,
    agents_json: &str,
    from: &str,
    to: &str,
    now: &str,
) -> Result<i64, StoreError> {
    let (Some(from_ms), Some(to_ms), Some(now_ms)) = (epoch_ms(from), epoch_ms(to), epoch_ms(now))
    else {
        return Ok(0);
    };
    let end_ms = to_ms.min(now_ms);
    let mut st = conn.prepare_cached(
        "SELECT l.agent, l.at_utc,
                (SELECT n.at_utc FROM agent_states n WHERE n.seat_id = l.seat_id AND n.id > l.id
                   AND n.state IN ('login', 'logout') ORDER BY n.id LIMIT 1)
         FROM agent_states l
         WHERE l.state = 'login' AND l.agent IN (SELECT value FROM json_each(?1))
           AND l.at_utc < ?2
         ORDER BY l.agent",
    )?;
    let rows: Vec<(String, String, Option<String>)> = st
        .query_map(params![agents_json, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut total = 0;
    let mut spans: Vec<(i64, i64)> = Vec::new();
    let mut current: Option<&str> = None;
    for (agent, start, end) in &rows {
        if current != Some(agent.as_str()) {
            total += union_ms(std::mem::take(&mut spans), i64::MAX);
            current = Some(agent);
        }
        let Some(a) = epoch_ms(start) else { continue };
        let b = end.as_deref().and_then(epoch_ms).unwrap_or(end_ms);
        let (a, b) = (a.max(from_ms), b.min(end_ms));
        if b > a {
            spans.push((a, b));
        }
    }
    total += union_ms(spans, i64::MAX);
    Ok(total)
}

/// The figures of `subject` over `[from, to)` (RFC 3339 UTC, as stored); `now_utc` ends
/// sessions still open.
pub fn compute(
    conn: &Connection,
    subject: &Subject,
    from: &str,
    to: &str,
    now_utc: &str,
) -> Result<Figures, StoreError> {
    let agents = match subject {
        Subject::Agent(a) => vec![a.clone()],
        Subject::Team(t) => team_members(conn, t)?,
        Subject::Campaign(_) => Vec::new(),
    };
    let agents_json = serde_json::to_string(&agents).unwrap_or_else(|_| "[]".into());
    // `?1`: the agents (a JSON array), or the campaign.
    let (key, whose_call, whose_work) = match subject {
        Subject::Campaign(c) => (
            c.clone(),
            "c.campaign = ?1",
            "call_id IN (SELECT id FROM calls WHERE campaign = ?1)",
        ),
        _ => (
            agents_json.clone(),
            "c.agent IN (SELECT value FROM json_each(?1))",
            "agent IN (SELECT value FROM json_each(?1))",
        ),
    };
    let calls = format!(
        "FROM calls c WHERE {whose_call}
                 AND c.started_at_utc >= ?2 AND c.started_at_utc < ?3 AND c.status != 'recording'"
    );
    type CallSums = (i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let (n, inbound, outbound, talk, hold, acw, positive, rpc, no_outcome): CallSums = conn
        .query_row(
            &format!(
                "SELECT count(*), COALESCE(sum(c.direction = 'inbound'), 0),
                    COALESCE(sum(c.direction = 'outbound'), 0),
                    COALESCE(sum(COALESCE(c.talk_ms, c.duration_ms)), 0),
                    COALESCE(sum(COALESCE(c.hold_ms, 0)), 0),
                    COALESCE(sum(COALESCE(c.acw_ms, 0)), 0),
                    COALESCE(sum(c.outcome_class = 'positive'), 0),
                    COALESCE(sum(c.outcome_class IS NOT NULL AND c.outcome_class != 'not_right_party'), 0),
                    COALESCE(sum(c.outcome IS NULL), 0)
                 {calls}"
            ),
            params![key, from, to],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            },
        )?;
    let (survey_attempts, survey_completes): (i64, i64) = conn.query_row(
        &format!(
            "SELECT count(*), COALESCE(sum(c.outcome = 'complete'), 0) {calls}
               AND EXISTS (SELECT 1 FROM outcome_codes o WHERE o.campaign = c.campaign
                             AND o.code = 'complete')"
        ),
        params![key, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (evaluations, qa_mean, qa_pass): (i64, Option<f64>, Option<f64>) = conn.query_row(
        &format!(
            "SELECT count(*), avg(score_percent), avg(CASE WHEN passed THEN 100.0 ELSE 0.0 END)
             FROM evaluations WHERE status != 'draft' AND calibration_id IS NULL AND {whose_work}
               AND submitted_at_utc >= ?2 AND submitted_at_utc < ?3"
        ),
        params![key, from, to],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (checks, checks_pass): (i64, Option<f64>) = conn.query_row(
        &format!(
            "SELECT count(*), avg(CASE WHEN passed THEN 100.0 ELSE 0.0 END)
             FROM compliance_checks WHERE status = 'submitted' AND {whose_work}
               AND submitted_at_utc >= ?2 AND submitted_at_utc < ?3"
        ),
        params![key, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let logged_in = logged_in_ms(conn, &agents_json, from, to, now_utc)?;
    let complaints = match subject {
        Subject::Campaign(_) => None,
        _ => Some(super::complaints::counts(
            conn,
            &agents_json,
            from,
            to,
            now_utc,
        )?),
    };
    let handle = talk + hold + acw;
    Ok(Figures {
        subject: subject.clone(),
        from_utc: from.to_owned(),
        to_utc: to.to_owned(),
        agents,
        calls_handled: n,
        calls_inbound: inbound,
        calls_outbound: outbound,
        talk_ms: talk,
        hold_ms: hold,
        acw_ms: acw,
        handle_ms: handle,
        aht_ms: (n > 0).then(|| (handle + n / 2) / n),
        logged_in_ms: logged_in,
        calls_per_logged_in_hour: ratio(n as f64, logged_in as f64, 3_600_000.0),
        occupancy_percent: ratio(handle as f64, logged_in as f64, 100.0),
        calls_without_outcome: no_outcome,
        positive_outcomes: positive,
        right_party_contacts: rpc,
        conversion_percent: ratio(positive as f64, rpc as f64, 100.0),
        survey_attempts,
        survey_completes,
        survey_response_rate_percent: ratio(survey_completes as f64, survey_attempts as f64, 100.0),
        evaluations,
        qa_mean_percent: qa_mean,
        qa_pass_rate_percent: qa_pass,
        compliance_checks: checks,
        compliance_pass_rate_percent: checks_pass,
        complaints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::agent_states::{self, State};
    use crate::store::audit::Actor;
    use crate::store::outcomes::{self, Source};
    use crate::store::testutil::{TempStore, TestCall};

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    const CTI: Actor = Actor {
        name: "cti",
        ip: None,
    };
    const FROM: &str = "2026-12-01T00:00:00.000Z";
    const TO: &str = "2026-12-02T00:00:00.000Z";
    const NOW: &str = "2026-12-05T00:00:00.000Z";

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn an_empty_period_has_zeros_and_no_ratios() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let f = compute(&conn, &Subject::Agent("nobody".into()), FROM, TO, NOW)?;
        assert_eq!(
            (f.calls_handled, f.talk_ms, f.handle_ms, f.logged_in_ms),
            (0, 0, 0, 0)
        );
        assert_eq!(f.aht_ms, None);
        assert_eq!(f.calls_per_logged_in_hour, None);
        assert_eq!(f.occupancy_percent, None);
        assert_eq!(f.conversion_percent, None);
        assert_eq!(f.survey_response_rate_percent, None);
        assert_eq!((f.qa_mean_percent, f.qa_pass_rate_percent), (None, None));
        assert_eq!(f.compliance_pass_rate_percent, None);
        assert_eq!(
            f.complaints.map(|c| (c.filed, c.justified, c.pending)),
            Some((0, 0, 0))
        );
        let f = compute(&conn, &Subject::Team("nobody".into()), FROM, TO, NOW)?;
        assert!(f.agents.is_empty());
        assert_eq!(f.calls_handled, 0);
        Ok(())
    }

    /// Alice's day, computed by hand:
    /// - call 1, inbound, 09:00, 300 s, hold 60 s (spanning a 20 s PCI pause), ACW 30 s, sale;
    /// - call 2, outbound, 10:00, 120 s, no hold, no ACW, not interested;
    /// - call 3, outbound, 11:00, 60 s, wrong number;
    /// - call 4, inbound, 12:00, 90 s, no outcome; ACW 45 s;
    /// - call 5 the day before, and bob's call, are outside.
    ///
    /// Logged in 08:00-12:00 at s1 and 13:00-14:00 at s2, with 11:30-12:30 also at s3
    /// (overlap counts once): 08:00-12:30 + 13:00-14:00 = 5.5 h = 19 800 000 ms.
    #[test]
    fn an_agents_day_by_hand() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        outcomes::seed_defaults(&conn)?;
        let at = |hm: &str| format!("2026-12-01T{hm}:00.000Z");
        let call = |hm: &str, dir: &str, ms: u64| {
            TestCall::new()
                .seat("s1")
                .agent("alice")
                .direction(dir)
                .campaign("telesales")
                .started_at(&at(hm))
                .duration_ms(ms)
                .finalized("complete")
                .insert(&conn)
        };
        agent_states::record(&conn, "s1", State::Login, Some("alice"), &at("08:00"), CTI)?;
        let c1 = call("09:00", "inbound", 300_000)?.id;
        let p = crate::store::open_interval(&conn, c1, "pause", 100_000, None, None)?;
        crate::store::close_interval(&conn, p, 120_000)?;
        let h = crate::store::open_interval(&conn, c1, "hold", 90_000, None, None)?;
        crate::store::close_interval(&conn, h, 150_000)?;
        agent_states::settle_call(&conn, c1)?;
        agent_states::record(
            &conn,
            "s1",
            State::Wrapup,
            None,
            "2026-12-01T09:05:00.000Z",
            CTI,
        )?;
        agent_states::record(
            &conn,
            "s1",
            State::Ready,
            None,
            "2026-12-01T09:05:30.000Z",
            CTI,
        )?;
        outcomes::set(&conn, c1, "sale", Some(10.0), Source::Cti, CTI)?;
        let c2 = call("10:00", "outbound", 120_000)?.id;
        agent_states::settle_call(&conn, c2)?;
        outcomes::set(&conn, c2, "not_interested", None, Source::Cti, CTI)?;
        let c3 = call("11:00", "outbound", 60_000)?.id;
        agent_states::settle_call(&conn, c3)?;
        outcomes::set(&conn, c3, "wrong_number", None, Source::Cti, CTI)?;
        agent_states::record(&conn, "s3", State::Login, Some("alice"), &at("11:30"), CTI)?;
        // Call 4 predates agent states (no talk/hold columns): its duration is its talk.
        let c4 = call("12:00", "inbound", 90_000)?.id;
        agent_states::record(
            &conn,
            "s1",
            State::Wrapup,
            None,
            "2026-12-01T12:01:30.000Z",
            CTI,
        )?;
        agent_states::record(
            &conn,
            "s1",
            State::Logout,
            None,
            "2026-12-01T12:02:15.000Z",
            CTI,
        )?;
        agent_states::record(&conn, "s3", State::Logout, None, &at("12:30"), CTI)?;
        agent_states::record(&conn, "s2", State::Login, Some("alice"), &at("13:00"), CTI)?;
        agent_states::record(&conn, "s2", State::Logout, None, &at("14:00"), CTI)?;
        TestCall::new()
            .agent("alice")
            .started_at("2026-11-30T23:59:59.999Z")
            .duration_ms(1000)
            .finalized("complete")
            .insert(&conn)?;
        TestCall::new()
            .agent("bob")
            .started_at(&at("09:00"))
            .duration_ms(1000)
            .finalized("complete")
            .insert(&conn)?;
        // Still recording: not handled yet.
        TestCall::new()
            .agent("alice")
            .started_at(&at("15:00"))
            .duration_ms(1000)
            .insert(&conn)?;

        let c4_talk: Option<i64> =
            conn.query_row("SELECT talk_ms FROM calls WHERE id = ?1", [c4], |r| {
                r.get(0)
            })?;
        assert_eq!(c4_talk, None, "call 4 was never settled");
        let f = compute(&conn, &Subject::Agent("alice".into()), FROM, TO, NOW)?;
        assert_eq!(
            (f.calls_handled, f.calls_inbound, f.calls_outbound),
            (4, 2, 2)
        );
        // Talk: 240 + 120 + 60 + 90 = 510 s; hold 60 s; ACW 30 + 45 = 75 s.
        assert_eq!((f.talk_ms, f.hold_ms, f.acw_ms), (510_000, 60_000, 75_000));
        assert_eq!(f.handle_ms, 645_000);
        // 645 000 / 4 = 161 250 ms.
        assert_eq!(f.aht_ms, Some(161_250));
        assert_eq!(f.logged_in_ms, 19_800_000);
        // 4 calls / 5.5 h.
        assert!(close(f.calls_per_logged_in_hour, 4.0 / 5.5));
        // 645 000 / 19 800 000.
        assert!(close(f.occupancy_percent, 645.0 / 19_800.0 * 100.0));
        // Sale ÷ (sale, not interested): wrong number is no right-party contact, call 4 has no
        // outcome.
        assert_eq!(
            (
                f.positive_outcomes,
                f.right_party_contacts,
                f.calls_without_outcome
            ),
            (1, 2, 1)
        );
        assert!(close(f.conversion_percent, 50.0));
        // Telesales is no survey campaign.
        assert_eq!(
            (f.survey_attempts, f.survey_response_rate_percent),
            (0, None)
        );
        // A session still open is counted up to now, and never beyond the period.
        agent_states::record(&conn, "s1", State::Login, Some("alice"), &at("23:00"), CTI)?;
        let f = compute(&conn, &Subject::Agent("alice".into()), FROM, TO, NOW)?;
        assert_eq!(f.logged_in_ms, 19_800_000 + 3_600_000);
        let f = compute(
            &conn,
            &Subject::Agent("alice".into()),
            FROM,
            TO,
            "2026-12-01T23:30:00.000Z",
        )?;
        assert_eq!(f.logged_in_ms, 19_800_000 + 1_800_000);
        Ok(())
    }

    #[test]
    fn no_logged_in_time_gives_null_rates_not_a_division_by_zero() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        TestCall::new()
            .agent("carol")
            .started_at("2026-12-01T10:00:00.000Z")
            .duration_ms(60_000)
            .finalized("complete")
            .insert(&conn)?;
        let f = compute(&conn, &Subject::Agent("carol".into()), FROM, TO, NOW)?;
        assert_eq!(
            (f.calls_handled, f.handle_ms, f.logged_in_ms),
            (1, 60_000, 0)
        );
        assert_eq!(f.aht_ms, Some(60_000));
        assert_eq!(f.calls_per_logged_in_hour, None);
        assert_eq!(f.occupancy_percent, None);
        assert_eq!(f.conversion_percent, None);
        let json = serde_json::to_value(&f)?;
        assert!(json["occupancy_percent"].is_null());
        assert_eq!(json["complaints"]["filed"], 0);
        Ok(())
    }

    /// Survey RR1: 2 completes of 5 survey calls (a partial, a refusal, a call without outcome)
    /// = 40 %; a team's figures are sums over its members.
    #[test]
    fn survey_response_rate_and_team_sums() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        outcomes::seed_defaults(&conn)?;
        for (name, team) in [("dan", "red"), ("eve", "red"), ("fay", "blue")] {
            conn.execute(
                "INSERT INTO users (username, password_hash, role, agent_id, team, created_at_utc)
                 VALUES (?1, 'x', 'agent', ?1, ?2, '2026-12-01T00:00:00.000Z')",
                params![name, team],
            )?;
        }
        let mut n = 0;
        let mut survey = |agent: &str, outcome: Option<&str>| -> TestResult {
            n += 1;
            let id = TestCall::new()
                .agent(agent)
                .campaign("surveys")
                .started_at(&format!("2026-12-01T10:{n:02}:00.000Z"))
                .duration_ms(10_000)
                .finalized("complete")
                .insert(&conn)?
                .id;
            if let Some(o) = outcome {
                outcomes::set(&conn, id, o, None, Source::Cti, CTI)?;
            }
            Ok(())
        };
        survey("dan", Some("complete"))?;
        survey("dan", Some("partial"))?;
        survey("eve", Some("complete"))?;
        survey("eve", Some("refusal"))?;
        survey("eve", None)?;
        survey("fay", Some("complete"))?;
        let f = compute(&conn, &Subject::Team("red".into()), FROM, TO, NOW)?;
        assert_eq!(f.agents, ["dan", "eve"]);
        assert_eq!((f.survey_attempts, f.survey_completes), (5, 2));
        assert!(close(f.survey_response_rate_percent, 40.0));
        assert_eq!((f.calls_handled, f.talk_ms), (5, 50_000));
        // Conversion: 2 completes ÷ 4 right-party contacts (partial is `other`, refusal
        // negative; the call without an outcome is in neither).
        assert!(close(f.conversion_percent, 50.0));
        let f = compute(&conn, &Subject::Agent("eve".into()), FROM, TO, NOW)?;
        assert!(close(f.survey_response_rate_percent, 100.0 / 3.0));
        Ok(())
    }

    /// QA: evaluations 80 (passed), 60 (failed), 100 (passed) submitted in the period: mean
    /// 80 %, pass rate 2/3; a draft, a calibration evaluation and one submitted after the period
    /// do not count. Compliance: one of two submitted checks passed (a draft does not count).
    #[test]
    fn quality_figures_count_submitted_work_in_the_period() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let call = TestCall::new()
            .agent("gus")
            .started_at("2026-11-20T10:00:00.000Z")
            .duration_ms(1000)
            .finalized("complete")
            .insert(&conn)?
            .id;
        // The scorecard, script and calibration rows these refer to are not what is measured.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        for (status, pct, passed, cal, at) in [
            ("submitted", 80.0, true, None, "2026-12-01T09:00:00.000Z"),
            (
                "acknowledged",
                60.0,
                false,
                None,
                "2026-12-01T10:00:00.000Z",
            ),
            ("resolved", 100.0, true, None, "2026-12-01T11:00:00.000Z"),
            ("draft", 0.0, false, None, "2026-12-01T12:00:00.000Z"),
            ("submitted", 0.0, false, Some(1), "2026-12-01T13:00:00.000Z"),
            ("submitted", 0.0, false, None, "2026-12-02T00:00:00.000Z"),
        ] {
            conn.execute(
                "INSERT INTO evaluations (call_id, scorecard_id, reviewer, agent, status, answers,
                     score_percent, passed, created_at_utc, updated_at_utc, submitted_at_utc,
                     calibration_id)
                 VALUES (?1, 1, 'qa', 'gus', ?2, '[]', ?3, ?4, ?5, ?5, ?5, ?6)",
                params![call, status, pct, passed, at, cal],
            )?;
        }
        for (status, passed) in [("submitted", true), ("submitted", false), ("draft", false)] {
            conn.execute(
                "INSERT INTO compliance_checks (call_id, script_id, reviewer, agent, status, marks,
                     passed, created_at_utc, updated_at_utc, submitted_at_utc)
                 VALUES (?1, 1, 'qa', 'gus', ?2, '[]', ?3, ?4, ?4, ?4)",
                params![call, status, passed, "2026-12-01T09:30:00.000Z"],
            )?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let f = compute(&conn, &Subject::Agent("gus".into()), FROM, TO, NOW)?;
        // The call itself started before the period.
        assert_eq!(f.calls_handled, 0);
        assert_eq!(f.evaluations, 3);
        assert!(close(f.qa_mean_percent, 80.0));
        assert!(close(f.qa_pass_rate_percent, 200.0 / 3.0));
        assert_eq!(f.compliance_checks, 2);
        assert!(close(f.compliance_pass_rate_percent, 50.0));
        Ok(())
    }
}
