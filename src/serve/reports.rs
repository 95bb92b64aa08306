//! QA reports over a period, as JSON, CSV and a page of server-rendered SVG charts: per-agent
//! results (calls, mean score, pass rate, compliance pass rate, disputes raised, upheld and won),
//! per-agent weekly score trend, per-question failure rates, and reviewer throughput with
//! calibration distance.
//!
//! Only submitted (or later) evaluations count; drafts never do, nor do calibration evaluations
//! (those measure the reviewers, not the agent). Figures are computed from the stored scores, so
//! a resolved dispute shows its re-scored result.

use super::charts;
use super::error::AppError;
use super::html::{esc, page, url_enc};
use super::identity::Identity;
use super::state::St;
use crate::qa::scorecard::{Answer, Kind};
use crate::store::qa;
use crate::store::search::{self, Scope};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Serialize, Default)]
pub struct AgentRow {
    pub agent: String,
    pub calls: i64,
    pub evaluations: i64,
    pub mean_percent: Option<f64>,
    pub pass_rate: Option<f64>,
    pub disputes: i64,
    /// Disputes where the reviewer kept the score.
    pub disputes_upheld: i64,
    /// Disputes decided for the agent (`changed` or `accepted`).
    pub disputes_won: i64,
    pub compliance_checks: i64,
    pub compliance_pass_rate: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct QuestionRow {
    pub scorecard: String,
    pub question: String,
    pub text: String,
    pub answered: u32,
    pub failed: u32,
    pub failure_rate: Option<f64>,
}

fn period(q: &HashMap<String, String>) -> Result<(String, String), AppError> {
    let bound = |k: &str, days_ago: i64| -> Result<String, AppError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            Some(v) => crate::clock::parse_bound(v).ok_or_else(|| {
                AppError::bad_request(&format!("{k} must be a date or RFC 3339 time"))
            }),
            None => Ok(crate::clock::format_utc(
                chrono::Utc::now() - chrono::Duration::days(days_ago),
            )),
        }
    };
    if let Some(k) = q
        .keys()
        .find(|k| !["from", "to", "format"].contains(&k.as_str()))
    {
        return Err(AppError::bad_request(&format!(
            "unknown parameter {k:?}; use from, to, format"
        )));
    }
    Ok((bound("from", 30)?, bound("to", -1)?))
}

/// CSV with RFC 4180 quoting.
fn csv(header_row: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut out = header_row.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
}

/// One CSV cell. Text a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return: OWASP "CSV injection") gets a leading `'`, so a scorecard name or a
/// reviewer's text can never execute on the lead's machine; then RFC 4180 quoting.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn wants_csv(q: &HashMap<String, String>) -> Result<bool, AppError> {
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(AppError::bad_request("format must be json or csv")),
    }
}

/// The period's two bounds as `?1` and `?2` and the scope condition on `call_col` (its
/// parameter `?3`): every query of a report counts only the calls the caller may see.
fn scoped(from: &str, to: &str, scope: &Scope, call_col: &str) -> (String, Vec<Value>) {
    let (cond, extra) = search::call_in_scope(scope, call_col, 3);
    let mut args: Vec<Value> = vec![from.to_owned().into(), to.to_owned().into()];
    args.extend(extra);
    (cond, args)
}

/// The caller's scope (reports are for users; tokens never reach them, the route is by role).
fn scope_of(st: &St, id: &Identity) -> Result<Scope, AppError> {
    id.scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens cannot read reports"))
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

/// Per-agent results; `from`/`to` bound call start, evaluation submission and check submission.
pub fn agent_rows(
    c: &Connection,
    from: &str,
    to: &str,
    scope: &Scope,
) -> Result<Vec<AgentRow>, AppError> {
    let mut out: BTreeMap<String, AgentRow> = BTreeMap::new();
    fn row(out: &mut BTreeMap<String, AgentRow>, agent: String) -> &mut AgentRow {
        out.entry(agent.clone()).or_insert_with(|| AgentRow {
            agent,
            ..Default::default()
        })
    }
    let (cond, args) = scoped(from, to, scope, "id");
    let mut st = c.prepare(&format!(
        "SELECT agent, count(*) FROM calls WHERE agent IS NOT NULL AND started_at_utc >= ?1 AND started_at_utc < ?2 AND {cond} GROUP BY agent",
    ))?;
    for r in st.query_map(params_from_iter(&args), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (agent, n) = r?;
        row(&mut out, agent).calls = n;
    }
    let (cond_e, args) = scoped(from, to, scope, "e.call_id");
    let (cond_x, _) = scoped(from, to, scope, "x.call_id");
    let mut st = c.prepare(&format!(
        "SELECT e.agent, count(*), avg(e.score_percent), avg(CASE WHEN e.passed THEN 1.0 ELSE 0.0 END),
                (SELECT count(*) FROM evaluation_disputes d JOIN evaluations x ON x.id = d.evaluation_id
                  WHERE x.agent = e.agent AND x.calibration_id IS NULL AND x.submitted_at_utc >= ?1 AND x.submitted_at_utc < ?2
                    AND {cond_x}),
                (SELECT count(*) FROM evaluation_disputes d JOIN evaluations x ON x.id = d.evaluation_id
                  WHERE x.agent = e.agent AND x.calibration_id IS NULL AND x.submitted_at_utc >= ?1 AND x.submitted_at_utc < ?2
                    AND d.decision = 'upheld' AND {cond_x}),
                (SELECT count(*) FROM evaluation_disputes d JOIN evaluations x ON x.id = d.evaluation_id
                  WHERE x.agent = e.agent AND x.calibration_id IS NULL AND x.submitted_at_utc >= ?1 AND x.submitted_at_utc < ?2
                    AND d.decision IN ('changed', 'accepted') AND {cond_x})
         FROM evaluations e
         WHERE e.status != 'draft' AND e.calibration_id IS NULL AND e.agent IS NOT NULL
           AND e.submitted_at_utc >= ?1 AND e.submitted_at_utc < ?2 AND {cond_e}
         GROUP BY e.agent",
    ))?;
    for r in st.query_map(params_from_iter(&args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<f64>>(2)?,
            r.get::<_, Option<f64>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })? {
        let (agent, n, mean, pass, disputes, upheld, won) = r?;
        let a = row(&mut out, agent);
        a.evaluations = n;
        a.mean_percent = mean;
        a.pass_rate = pass.map(|p| p * 100.0);
        a.disputes = disputes;
        a.disputes_upheld = upheld;
        a.disputes_won = won;
    }
    let (cond, args) = scoped(from, to, scope, "call_id");
    let mut st = c.prepare(&format!(
        "SELECT agent, count(*), avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) FROM compliance_checks
         WHERE status = 'submitted' AND agent IS NOT NULL AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2
           AND {cond}
         GROUP BY agent",
    ))?;
    for r in st.query_map(params_from_iter(&args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<f64>>(2)?,
        ))
    })? {
        let (agent, n, pass) = r?;
        let a = row(&mut out, agent);
        a.compliance_checks = n;
        a.compliance_pass_rate = pass.map(|p| p * 100.0);
    }
    Ok(out.into_values().collect())
}

/// `GET /api/reports/agents?from&to[&format=csv]`.
pub async fn agents(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let scope = scope_of(&st, &id)?;
    let rows = st
        .db
        .read(move |c| agent_rows(c, &from, &to, &scope))
        .await?;
    if as_csv {
        return Ok(csv(
            &[
                "agent",
                "calls",
                "evaluations",
                "mean_percent",
                "pass_rate_percent",
                "disputes",
                "disputes_upheld",
                "disputes_won",
                "compliance_checks",
                "compliance_pass_rate_percent",
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        r.agent.clone(),
                        r.calls.to_string(),
                        r.evaluations.to_string(),
                        opt(r.mean_percent),
                        opt(r.pass_rate),
                        r.disputes.to_string(),
                        r.disputes_upheld.to_string(),
                        r.disputes_won.to_string(),
                        r.compliance_checks.to_string(),
                        opt(r.compliance_pass_rate),
                    ]
                })
                .collect(),
        ));
    }
    Ok(Json(rows).into_response())
}

fn failed(kind: Kind, a: &Answer) -> Option<bool> {
    match (kind, a) {
        (_, Answer::Na) => None,
        (Kind::YesNo, Answer::No) => Some(true),
        (Kind::YesNo, _) => Some(false),
        (Kind::Scale, Answer::Scale(v)) => Some(u32::from(*v) <= 1),
        (Kind::Scale, Answer::Points(v)) => Some(*v <= 1),
        (Kind::Points { .. }, Answer::Points(v)) => Some(*v == 0),
        (Kind::Points { .. }, Answer::Scale(v)) => Some(*v == 0),
        (_, _) => None,
    }
}

/// Per-question failure rates, worst first.
pub fn question_rows(
    c: &Connection,
    from: &str,
    to: &str,
    scope: &Scope,
) -> Result<Vec<QuestionRow>, AppError> {
    let (cond, args) = scoped(from, to, scope, "call_id");
    let ids: Vec<i64> = c
        .prepare(&format!("SELECT id FROM evaluations WHERE status != 'draft' AND calibration_id IS NULL AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2 AND {cond}"))?
        .query_map(params_from_iter(&args), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut counts: BTreeMap<(String, String), QuestionRow> = BTreeMap::new();
    for id in ids {
        let e = qa::get_evaluation(c, id)?;
        let card = qa::card_by_row(c, e.scorecard_row)?.card;
        for q in card.sections.iter().flat_map(|s| &s.questions) {
            let Some(a) = e.answers.iter().find(|a| a.q == q.id) else {
                continue;
            };
            let Some(f) = failed(q.kind, &a.value) else {
                continue;
            };
            let row = counts
                .entry((card.id.clone(), q.id.clone()))
                .or_insert_with(|| QuestionRow {
                    scorecard: card.id.clone(),
                    question: q.id.clone(),
                    text: q.text.clone(),
                    answered: 0,
                    failed: 0,
                    failure_rate: None,
                });
            row.answered += 1;
            row.failed += u32::from(f);
        }
    }
    let mut rows: Vec<QuestionRow> = counts.into_values().collect();
    for r in &mut rows {
        r.failure_rate =
            (r.answered > 0).then(|| 100.0 * f64::from(r.failed) / f64::from(r.answered));
    }
    rows.sort_by(|a, b| {
        b.failure_rate
            .partial_cmp(&a.failure_rate)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(rows)
}

/// `GET /api/reports/questions?from&to[&format=csv]`: which questions fail most.
pub async fn questions(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let scope = scope_of(&st, &id)?;
    let rows = st
        .db
        .read(move |c| question_rows(c, &from, &to, &scope))
        .await?;
    if as_csv {
        return Ok(csv(
            &[
                "scorecard",
                "question",
                "text",
                "answered",
                "failed",
                "failure_rate_percent",
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        r.scorecard.clone(),
                        r.question.clone(),
                        r.text.clone(),
                        r.answered.to_string(),
                        r.failed.to_string(),
                        opt(r.failure_rate),
                    ]
                })
                .collect(),
        ));
    }
    Ok(Json(rows).into_response())
}

#[derive(Debug, Serialize)]
pub struct TrendRow {
    pub agent: String,
    /// Monday of the week (UTC), `YYYY-MM-DD`.
    pub week_start: String,
    pub evaluations: i64,
    pub mean_percent: Option<f64>,
}

/// Mean score per agent per week (of submission).
pub fn trend_rows(
    c: &Connection,
    from: &str,
    to: &str,
    scope: &Scope,
) -> Result<Vec<TrendRow>, AppError> {
    let (cond, args) = scoped(from, to, scope, "call_id");
    let mut st = c.prepare(&format!(
        "SELECT agent, date(submitted_at_utc, 'weekday 0', '-6 days') AS week, count(*), avg(score_percent)
         FROM evaluations
         WHERE status != 'draft' AND calibration_id IS NULL AND agent IS NOT NULL
           AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2 AND {cond}
         GROUP BY agent, week ORDER BY agent, week",
    ))?;
    let rows = st
        .query_map(params_from_iter(&args), |r| {
            Ok(TrendRow {
                agent: r.get(0)?,
                week_start: r.get(1)?,
                evaluations: r.get(2)?,
                mean_percent: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// `GET /api/reports/trend?from&to[&format=csv]`.
pub async fn trend(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let scope = scope_of(&st, &id)?;
    let rows = st
        .db
        .read(move |c| trend_rows(c, &from, &to, &scope))
        .await?;
    if as_csv {
        return Ok(csv(
            &["agent", "week_start", "evaluations", "mean_percent"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.agent.clone(),
                        r.week_start.clone(),
                        r.evaluations.to_string(),
                        opt(r.mean_percent),
                    ]
                })
                .collect(),
        ));
    }
    Ok(Json(rows).into_response())
}

#[derive(Debug, Serialize, Default)]
pub struct ReviewerRow {
    pub reviewer: String,
    /// Evaluations submitted (calibration ones excluded).
    pub evaluations: i64,
    pub checks: i64,
    /// Closed calibration sessions taken part in.
    pub calibrations: i64,
    /// Mean distance from the reference over those sessions, percentage points.
    pub mean_distance: Option<f64>,
}

/// Reviewer throughput and calibration distance; also the mean per-question spread of the
/// closed sessions in the period.
pub fn reviewer_rows(
    c: &Connection,
    from: &str,
    to: &str,
    scope: &Scope,
) -> Result<(Vec<ReviewerRow>, Option<f64>), AppError> {
    let mut out: BTreeMap<String, ReviewerRow> = BTreeMap::new();
    fn row(out: &mut BTreeMap<String, ReviewerRow>, who: String) -> &mut ReviewerRow {
        out.entry(who.clone()).or_insert_with(|| ReviewerRow {
            reviewer: who,
            ..Default::default()
        })
    }
    // A team lead sees the reviews done on their team's calls, whoever did them.
    let (cond, args) = scoped(from, to, scope, "call_id");
    let counts = [
        format!("SELECT reviewer, count(*) FROM evaluations WHERE status != 'draft' AND calibration_id IS NULL AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2 AND {cond} GROUP BY reviewer"),
        format!("SELECT reviewer, count(*) FROM compliance_checks WHERE status = 'submitted' AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2 AND {cond} GROUP BY reviewer"),
    ];
    for (i, sql) in counts.iter().enumerate() {
        let mut st = c.prepare(sql)?;
        for r in st.query_map(params_from_iter(&args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (who, n) = r?;
            if i == 0 {
                row(&mut out, who).evaluations = n;
            } else {
                row(&mut out, who).checks = n;
            }
        }
    }
    let ids: Vec<i64> = c
        .prepare(&format!("SELECT id FROM calibrations WHERE status = 'closed' AND closed_at_utc >= ?1 AND closed_at_utc < ?2 AND {cond}"))?
        .query_map(params_from_iter(&args), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut distances: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut spreads = Vec::new();
    for id in ids {
        let r = crate::store::calibration::result(c, id)?;
        spreads.extend(r.mean_spread);
        for x in r.reviewers {
            row(&mut out, x.reviewer.clone()).calibrations += 1;
            if let Some(d) = x.distance_from_reference {
                distances.entry(x.reviewer).or_default().push(d);
            }
        }
    }
    for (who, ds) in distances {
        row(&mut out, who).mean_distance = mean(&ds);
    }
    Ok((out.into_values().collect(), mean(&spreads)))
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// `GET /api/reports/reviewers?from&to[&format=csv]`.
pub async fn reviewers(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let scope = scope_of(&st, &id)?;
    let (rows, spread) = st
        .db
        .read(move |c| reviewer_rows(c, &from, &to, &scope))
        .await?;
    if as_csv {
        return Ok(csv(
            &[
                "reviewer",
                "evaluations",
                "checks",
                "calibrations",
                "mean_distance_points",
            ],
            rows.iter()
                .map(|r| {
                    vec![
                        r.reviewer.clone(),
                        r.evaluations.to_string(),
                        r.checks.to_string(),
                        r.calibrations.to_string(),
                        opt(r.mean_distance),
                    ]
                })
                .collect(),
        ));
    }
    Ok(
        Json(serde_json::json!({"reviewers": rows, "calibration_mean_spread": spread}))
            .into_response(),
    )
}

/// `GET /reports?from&to`: the charts and tables of all four reports.
pub async fn page_view(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let (from, to) = period(&q).map_err(|e| e.with_html(true))?;
    let scope = scope_of(&st, &id).map_err(|e| e.with_html(true))?;
    let (f2, t2) = (from.clone(), to.clone());
    let (agents, questions, trend, (reviewers, spread)) = st
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                agent_rows(c, &f2, &t2, &scope)?,
                question_rows(c, &f2, &t2, &scope)?,
                trend_rows(c, &f2, &t2, &scope)?,
                reviewer_rows(c, &f2, &t2, &scope)?,
            ))
        })
        .await
        .map_err(|e| e.with_html(true))?;
    let qs = format!("from={}&to={}", url_enc(&from), url_enc(&to));
    let body = format!(
        r#"<main id="reports">
<h1>Reports</h1>
<form method="get" action="/reports" class="period">
<label>From <input type="date" name="from" value="{from_d}"></label>
<label>To <input type="date" name="to" value="{to_d}"></label>
<button>Show</button></form>
<div class="charts">
<figure>{trend_svg}</figure>
<figure>{compliance_svg}</figure>
<figure>{questions_svg}</figure>
<figure>{reviewers_svg}</figure>
</div>
<h2>Agents <a class="csv" href="/api/reports/agents?{qs}&format=csv">CSV</a></h2>
{agents_table}
<h2>Questions that fail most <a class="csv" href="/api/reports/questions?{qs}&format=csv">CSV</a></h2>
{questions_table}
<p>Score trend by week: <a class="csv" href="/api/reports/trend?{qs}&format=csv">CSV</a></p>
<h2>Reviewers <a class="csv" href="/api/reports/reviewers?{qs}&format=csv">CSV</a></h2>
{reviewers_table}
<p>Calibration: mean spread per question over the closed sessions {spread}.</p>
</main>"#,
        from_d = esc(from.get(..10).unwrap_or(&from)),
        to_d = esc(to.get(..10).unwrap_or(&to)),
        trend_svg = trend_chart(&trend),
        compliance_svg = charts::bar_chart(
            "Compliance pass rate by agent",
            "%",
            &agents
                .iter()
                .filter_map(|a| a.compliance_pass_rate.map(|p| (a.agent.clone(), p)))
                .collect::<Vec<_>>(),
            100.0,
        ),
        questions_svg = charts::bar_chart(
            "Questions that fail most",
            "%",
            &questions
                .iter()
                .filter(|q| q.failed > 0)
                .take(10)
                .filter_map(|q| q.failure_rate.map(|r| (q.text.clone(), r)))
                .collect::<Vec<_>>(),
            100.0,
        ),
        reviewers_svg = {
            let bars: Vec<(String, f64)> = reviewers
                .iter()
                .map(|r| (r.reviewer.clone(), (r.evaluations + r.checks) as f64))
                .collect();
            let max = bars.iter().map(|b| b.1).fold(1.0, f64::max);
            charts::bar_chart("Reviews done (evaluations + spot checks)", "", &bars, max)
        },
        agents_table = agents_table(&agents),
        questions_table = questions_table(&questions),
        reviewers_table = reviewers_table(&reviewers),
        spread = spread
            .map(|s| format!("{:.0} %", s * 100.0))
            .unwrap_or_else(|| "— (none closed)".into()),
    );
    Ok(Html(page(Some(&id), "Reports", &body)))
}

fn trend_chart(rows: &[TrendRow]) -> String {
    let weeks: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.week_start.as_str()).collect();
    let mut by_agent: BTreeMap<&str, HashMap<&str, f64>> = BTreeMap::new();
    for r in rows {
        if let Some(m) = r.mean_percent {
            by_agent
                .entry(r.agent.as_str())
                .or_default()
                .insert(r.week_start.as_str(), m);
        }
    }
    let series: Vec<charts::Series> = by_agent
        .into_iter()
        .map(|(agent, m)| charts::Series {
            name: agent.to_owned(),
            points: weeks
                .iter()
                .map(|w| ((*w).to_owned(), m.get(w).copied()))
                .collect(),
        })
        .collect();
    charts::line_chart("Mean score by week", "%", 0.0, 100.0, &series)
}

fn cell(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.1}{unit}"))
        .unwrap_or_else(|| "—".into())
}

/// A results table; each row is (its `data-{key}` value, its cells as plain text), all escaped
/// here.
fn table(id: &str, key: &str, head: &[&str], rows: Vec<(&str, Vec<String>)>) -> String {
    let th: String = head
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    let body: String = rows
        .into_iter()
        .map(|(k, cells)| {
            let tds: String = cells
                .iter()
                .map(|c| format!("<td>{}</td>", esc(c)))
                .collect();
            format!(r#"<tr data-{key}="{}">{tds}</tr>"#, esc(k))
        })
        .collect();
    format!(
        r#"<table class="results" id="{id}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"#
    )
}

fn agents_table(rows: &[AgentRow]) -> String {
    table(
        "report-agents",
        "agent",
        &[
            "Agent",
            "Calls",
            "Evaluations",
            "Mean score",
            "Pass rate",
            "Compliance pass",
            "Disputes",
            "Upheld",
            "Won by agent",
        ],
        rows.iter()
            .map(|r| {
                (
                    r.agent.as_str(),
                    vec![
                        r.agent.clone(),
                        r.calls.to_string(),
                        r.evaluations.to_string(),
                        cell(r.mean_percent, " %"),
                        cell(r.pass_rate, " %"),
                        cell(r.compliance_pass_rate, " %"),
                        r.disputes.to_string(),
                        r.disputes_upheld.to_string(),
                        r.disputes_won.to_string(),
                    ],
                )
            })
            .collect(),
    )
}

fn questions_table(rows: &[QuestionRow]) -> String {
    table(
        "report-questions",
        "question",
        &[
            "Scorecard",
            "Question",
            "Answered",
            "Failed",
            "Failure rate",
        ],
        rows.iter()
            .map(|r| {
                (
                    r.question.as_str(),
                    vec![
                        r.scorecard.clone(),
                        r.text.clone(),
                        r.answered.to_string(),
                        r.failed.to_string(),
                        cell(r.failure_rate, " %"),
                    ],
                )
            })
            .collect(),
    )
}

fn reviewers_table(rows: &[ReviewerRow]) -> String {
    table(
        "report-reviewers",
        "reviewer",
        &[
            "Reviewer",
            "Evaluations",
            "Spot checks",
            "Calibrations",
            "Distance from reference",
        ],
        rows.iter()
            .map(|r| {
                (
                    r.reviewer.as_str(),
                    vec![
                        r.reviewer.clone(),
                        r.evaluations.to_string(),
                        r.checks.to_string(),
                        r.calibrations.to_string(),
                        cell(r.mean_distance, " pts"),
                    ],
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn formulas_are_neutralised_and_cells_quoted() {
        assert_eq!(
            csv_cell("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("a\rb"), "\"a\rb\"");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("plain 42 %"), "plain 42 %");
    }
}
