//! Targets: a lead's goal for one figure (store::figures) of a team or a campaign, per period
//! (day, week from Monday, calendar month, all UTC), with a direction (higher or lower is
//! better) and a tolerance band; and how the actual figures compare, for the current period
//! and the four before it (the trend).
//!
//! Verdict, with `tolerance` in the figure's own units: for "higher is better", met when the
//! actual is at least the goal, near when at least goal − tolerance, else missed; for "lower is
//! better" the mirror image. A figure without a value in a period (a ratio over nothing) is
//! `no_data`, never met or missed.
//!
//! One target per (team or campaign, figure, period); setting it again replaces it. Every
//! setting is audited (`target.set`, with the previous one). Who may set which target is the
//! web service's decision (a lead: their own team's); this module never checks roles.

use super::audit::{self, Actor};
use super::figures::{self, Subject};
use super::StoreError;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// The figures a target may be set for (the numeric ones of [`figures::Figures`]).
pub const TARGETABLE: &[&str] = &[
    "calls_handled",
    "calls_inbound",
    "calls_outbound",
    "talk_ms",
    "hold_ms",
    "acw_ms",
    "handle_ms",
    "aht_ms",
    "logged_in_ms",
    "calls_per_logged_in_hour",
    "occupancy_percent",
    "positive_outcomes",
    "conversion_percent",
    "survey_response_rate_percent",
    "qa_mean_percent",
    "qa_pass_rate_percent",
    "compliance_pass_rate_percent",
    "complaints_filed",
    "complaints_justified",
    "complaints_pending",
    "complaints_overdue",
];

/// A figure's value by its target name; `complaints_<count>` reads the complaints counts.
pub fn figure_value(f: &figures::Figures, figure: &str) -> Option<f64> {
    let v = serde_json::to_value(f).ok()?;
    match figure.strip_prefix("complaints_") {
        Some(count) => v.get("complaints")?.get(count)?.as_f64(),
        None => v.get(figure)?.as_f64(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        [Period::Day, Period::Week, Period::Month]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// The start (UTC midnight) of the period holding `at`.
    pub fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let d = at.date_naive();
        let day = match self {
            Period::Day => d,
            Period::Week => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
            Period::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap_or(d),
        };
        Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
    }

    /// The start of the period after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Day => start + Duration::days(1),
            Period::Week => start + Duration::days(7),
            Period::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(start + Duration::days(31)),
        }
    }

    /// The start of the period before the one starting at `start`.
    pub fn prev(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Day => start - Duration::days(1),
            Period::Week => start - Duration::days(7),
            Period::Month => start
                .checked_sub_months(chrono::Months::new(1))
                .unwrap_or(start - Duration::days(31)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Higher,
    Lower,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Higher => "higher",
            Direction::Lower => "lower",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Near,
    Missed,
    NoData,
}

/// How `actual` compares with `goal` (see the module doc).
pub fn verdict(actual: Option<f64>, goal: f64, direction: Direction, tolerance: f64) -> Verdict {
    let Some(a) = actual else {
        return Verdict::NoData;
    };
    let (met, near) = match direction {
        Direction::Higher => (a >= goal, a >= goal - tolerance),
        Direction::Lower => (a <= goal, a <= goal + tolerance),
    };
    if met {
        Verdict::Met
    } else if near {
        Verdict::Near
    } else {
        Verdict::Missed
    }
}

/// What a target is for: a team or a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Team(String),
    Campaign(String),
}

impl Scope {
    fn kind(&self) -> &'static str {
        match self {
            Scope::Team(_) => "team",
            Scope::Campaign(_) => "campaign",
        }
    }
    fn name(&self) -> &str {
        match self {
            Scope::Team(n) | Scope::Campaign(n) => n,
        }
    }
    fn subject(&self) -> Subject {
        match self {
            Scope::Team(t) => Subject::Team(t.clone()),
            Scope::Campaign(c) => Subject::Campaign(c.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub scope: Scope,
    pub figure: String,
    pub period: Period,
    pub goal: f64,
    pub direction: Direction,
    /// In the figure's units; near = within this much on the wrong side of the goal.
    pub tolerance: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no figure {figure:?} takes a target; use one of: {}", TARGETABLE.join(", "))]
    UnknownFigure { figure: String },
    #[error("the goal and the tolerance must be finite numbers and the tolerance at least 0")]
    BadNumber,
    #[error("the team or campaign name needs 1 to 128 characters")]
    BadScope,
    #[error("time {0:?} is not an RFC 3339 time")]
    BadTime(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TargetError {
    fn from(e: rusqlite::Error) -> Self {
        TargetError::Store(StoreError::Sql(e))
    }
}

/// Sets (or replaces) a target, audited with the one it replaces.
pub fn set(conn: &Connection, t: &Target, by: Actor) -> Result<(), TargetError> {
    if !TARGETABLE.contains(&t.figure.as_str()) {
        return Err(TargetError::UnknownFigure {
            figure: t.figure.clone(),
        });
    }
    if !t.goal.is_finite() || !t.tolerance.is_finite() || t.tolerance < 0.0 {
        return Err(TargetError::BadNumber);
    }
    let n = t.scope.name().trim().chars().count();
    if n == 0 || n > 128 {
        return Err(TargetError::BadScope);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let old = get(&tx, &t.scope, &t.figure, t.period)?;
    tx.execute(
        "INSERT INTO figure_targets (scope_kind, scope, figure, period, goal, direction, tolerance,
             set_by, set_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (scope_kind, scope, figure, period) DO UPDATE SET goal = excluded.goal,
             direction = excluded.direction, tolerance = excluded.tolerance,
             set_by = excluded.set_by, set_at_utc = excluded.set_at_utc",
        params![
            t.scope.kind(),
            t.scope.name(),
            t.figure,
            t.period.as_str(),
            t.goal,
            t.direction.as_str(),
            t.tolerance,
            by.name,
            crate::clock::utc_now()
        ],
    )?;
    audit::append(
        &tx,
        &by.event(
            "target.set",
            None,
            serde_json::json!({"target": t, "previous": old}),
        ),
    )?;
    tx.commit()?;
    Ok(())
}

fn get(
    conn: &Connection,
    scope: &Scope,
    figure: &str,
    period: Period,
) -> Result<Option<Target>, TargetError> {
    Ok(list(conn, scope)?
        .into_iter()
        .find(|t| t.figure == figure && t.period == period))
}

/// Every target of a team or a campaign, by figure and period.
pub fn list(conn: &Connection, scope: &Scope) -> Result<Vec<Target>, TargetError> {
    let rows: Vec<(String, String, f64, String, f64)> = conn
        .prepare_cached(
            "SELECT figure, period, goal, direction, tolerance FROM figure_targets
             WHERE scope_kind = ?1 AND scope = ?2 ORDER BY figure, period",
        )?
        .query_map(params![scope.kind(), scope.name()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(figure, period, goal, direction, tolerance)| Target {
            scope: scope.clone(),
            figure,
            // The table's CHECKs allow only these.
            period: Period::parse(&period).unwrap_or(Period::Month),
            goal,
            direction: if direction == "lower" {
                Direction::Lower
            } else {
                Direction::Higher
            },
            tolerance,
        })
        .collect())
}

/// One period's actual figure and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub from_utc: String,
    pub to_utc: String,
    pub actual: Option<f64>,
    pub verdict: Verdict,
}

/// A target with the current period's result and the four periods before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub target: Target,
    pub current: Point,
    /// The four periods before the current one, oldest first.
    pub trend: Vec<Point>,
}

/// Every target of `scope` against the figures of the period holding `at_utc` and the four
/// before it; `now_utc` ends login sessions still open (store::figures).
pub fn report(
    conn: &Connection,
    scope: &Scope,
    at_utc: &str,
    now_utc: &str,
) -> Result<Vec<Report>, TargetError> {
    let at = DateTime::parse_from_rfc3339(at_utc)
        .map_err(|_| TargetError::BadTime(at_utc.to_owned()))?
        .with_timezone(&Utc);
    let subject = scope.subject();
    let mut out = Vec::new();
    for target in list(conn, scope)? {
        let p = target.period;
        let mut starts = vec![p.start_of(at)];
        for _ in 0..4 {
            let before = p.prev(starts[0]);
            starts.insert(0, before);
        }
        let mut points = Vec::new();
        for start in starts {
            let (from, to) = (
                crate::clock::format_utc(start),
                crate::clock::format_utc(p.next(start)),
            );
            let f = figures::compute(conn, &subject, &from, &to, now_utc)?;
            let actual = figure_value(&f, &target.figure);
            points.push(Point {
                from_utc: from,
                to_utc: to,
                actual,
                verdict: verdict(actual, target.goal, target.direction, target.tolerance),
            });
        }
        let Some(current) = points.pop() else {
            continue;
        };
        out.push(Report {
            target,
            current,
            trend: points,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn verdicts_in_both_directions() {
        use Direction::*;
        use Verdict::*;
        assert_eq!(verdict(Some(80.0), 80.0, Higher, 5.0), Met);
        assert_eq!(verdict(Some(75.0), 80.0, Higher, 5.0), Near);
        assert_eq!(verdict(Some(74.9), 80.0, Higher, 5.0), Missed);
        assert_eq!(verdict(Some(300.0), 300.0, Lower, 30.0), Met);
        assert_eq!(verdict(Some(330.0), 300.0, Lower, 30.0), Near);
        assert_eq!(verdict(Some(331.0), 300.0, Lower, 30.0), Missed);
        assert_eq!(verdict(None, 1.0, Lower, 0.0), NoData);
    }

    #[test]
    fn periods_start_at_utc_midnight_monday_and_the_first() -> TestResult {
        let at = DateTime::parse_from_rfc3339("2026-12-03T15:00:00Z")?.with_timezone(&Utc);
        let f = |t: DateTime<Utc>| crate::clock::format_utc(t);
        assert_eq!(f(Period::Day.start_of(at)), "2026-12-03T00:00:00.000Z");
        // 3 December 2026 is a Thursday.
        assert_eq!(f(Period::Week.start_of(at)), "2026-11-30T00:00:00.000Z");
        let m = Period::Month.start_of(at);
        assert_eq!(f(m), "2026-12-01T00:00:00.000Z");
        assert_eq!(f(Period::Month.prev(m)), "2026-11-01T00:00:00.000Z");
        assert_eq!(f(Period::Month.next(m)), "2027-01-01T00:00:00.000Z");
        Ok(())
    }

    /// Campaign `winback`, weekly, calls handled ≥ 3 (tolerance 1): this week 2 calls (near),
    /// the week before 3 (met, its last one a millisecond before this week), the three before
    /// that none (missed).
    #[test]
    fn a_campaign_target_with_its_trend() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let who = Actor::local("lead");
        let t = Target {
            scope: Scope::Campaign("winback".into()),
            figure: "calls_handled".into(),
            period: Period::Week,
            goal: 3.0,
            direction: Direction::Higher,
            tolerance: 1.0,
        };
        assert!(matches!(
            set(
                &conn,
                &Target {
                    figure: "complaints".into(),
                    ..t.clone()
                },
                who
            ),
            Err(TargetError::UnknownFigure { .. })
        ));
        assert!(matches!(
            set(
                &conn,
                &Target {
                    tolerance: -1.0,
                    ..t.clone()
                },
                who
            ),
            Err(TargetError::BadNumber)
        ));
        set(
            &conn,
            &Target {
                goal: 9.0,
                ..t.clone()
            },
            who,
        )?;
        set(&conn, &t, who)?;
        assert_eq!(
            list(&conn, &t.scope)?,
            std::slice::from_ref(&t),
            "set again replaces"
        );
        for at in [
            "2026-12-01T10:00:00.000Z",
            "2026-12-02T10:00:00.000Z",
            "2026-11-24T10:00:00.000Z",
            "2026-11-25T10:00:00.000Z",
            "2026-11-29T23:59:59.999Z",
        ] {
            TestCall::new()
                .campaign("winback")
                .agent("x")
                .started_at(at)
                .duration_ms(1000)
                .finalized("complete")
                .insert(&conn)?;
        }
        let r = report(
            &conn,
            &t.scope,
            "2026-12-03T12:00:00.000Z",
            "2026-12-05T00:00:00.000Z",
        )?;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].current.from_utc, "2026-11-30T00:00:00.000Z");
        assert_eq!(
            (r[0].current.actual, r[0].current.verdict),
            (Some(2.0), Verdict::Near)
        );
        let trend: Vec<(&str, Option<f64>, Verdict)> = r[0]
            .trend
            .iter()
            .map(|p| (p.from_utc.as_str(), p.actual, p.verdict))
            .collect();
        assert_eq!(
            trend,
            [
                ("2026-11-02T00:00:00.000Z", Some(0.0), Verdict::Missed),
                ("2026-11-09T00:00:00.000Z", Some(0.0), Verdict::Missed),
                ("2026-11-16T00:00:00.000Z", Some(0.0), Verdict::Missed),
                ("2026-11-23T00:00:00.000Z", Some(3.0), Verdict::Met),
            ]
        );
        let audits: i64 = conn.query_row(
            "SELECT count(*) FROM audit WHERE action = 'target.set'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(audits, 2);
        Ok(())
    }
}
