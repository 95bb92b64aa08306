//! QA reports: per-agent results and per-question failure rates over a period, as JSON or CSV.
//!
//! Only submitted (or later) evaluations count; drafts never do. Figures are computed from the
//! stored scores, so a resolved dispute shows its re-scored result.

use super::{AppError, St};
use crate::qa::scorecard::{Answer, Kind};
use crate::store::qa;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::params;
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
    /// Disputes decided for the agent (`changed` or `accepted`).
    pub disputes_won: i64,
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
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = header_row.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response()
}

fn wants_csv(q: &HashMap<String, String>) -> Result<bool, AppError> {
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(AppError::bad_request("format must be json or csv")),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

/// `GET /api/reports/agents?from&to[&format=csv]`.
pub async fn agents(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let rows = st
        .db
        .read(move |c| {
            let mut out: BTreeMap<String, AgentRow> = BTreeMap::new();
            let mut st = c.prepare(
                "SELECT agent, count(*) FROM calls WHERE agent IS NOT NULL AND started_at_utc >= ?1 AND started_at_utc < ?2 GROUP BY agent",
            )?;
            for r in st.query_map(params![from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (agent, n) = r?;
                out.entry(agent.clone()).or_insert_with(|| AgentRow { agent, ..Default::default() }).calls = n;
            }
            let mut st = c.prepare(
                "SELECT e.agent, count(*), avg(e.score_percent), avg(CASE WHEN e.passed THEN 1.0 ELSE 0.0 END),
                        (SELECT count(*) FROM evaluation_disputes d JOIN evaluations x ON x.id = d.evaluation_id
                          WHERE x.agent = e.agent AND x.submitted_at_utc >= ?1 AND x.submitted_at_utc < ?2),
                        (SELECT count(*) FROM evaluation_disputes d JOIN evaluations x ON x.id = d.evaluation_id
                          WHERE x.agent = e.agent AND x.submitted_at_utc >= ?1 AND x.submitted_at_utc < ?2
                            AND d.decision IN ('changed', 'accepted'))
                 FROM evaluations e
                 WHERE e.status != 'draft' AND e.agent IS NOT NULL AND e.submitted_at_utc >= ?1 AND e.submitted_at_utc < ?2
                 GROUP BY e.agent",
            )?;
            for r in st.query_map(params![from, to], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })? {
                let (agent, n, mean, pass, disputes, won) = r?;
                let row = out.entry(agent.clone()).or_insert_with(|| AgentRow { agent, ..Default::default() });
                row.evaluations = n;
                row.mean_percent = mean;
                row.pass_rate = pass.map(|p| p * 100.0);
                row.disputes = disputes;
                row.disputes_won = won;
            }
            Ok::<_, AppError>(out.into_values().collect::<Vec<_>>())
        })
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
                "disputes_won",
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
                        r.disputes_won.to_string(),
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

/// `GET /api/reports/questions?from&to[&format=csv]`: which questions fail most.
pub async fn questions(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let (from, to) = period(&q)?;
    let as_csv = wants_csv(&q)?;
    let mut rows = st
        .db
        .read(move |c| {
            let ids: Vec<i64> = c
                .prepare("SELECT id FROM evaluations WHERE status != 'draft' AND submitted_at_utc >= ?1 AND submitted_at_utc < ?2")?
                .query_map(params![from, to], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut counts: BTreeMap<(String, String), QuestionRow> = BTreeMap::new();
            for id in ids {
                let e = qa::get_evaluation(c, id)?;
                let card = qa::card_by_row(c, e.scorecard_row)?.card;
                for q in card.sections.iter().flat_map(|s| &s.questions) {
                    let Some(a) = e.answers.iter().find(|a| a.q == q.id) else { continue };
                    let Some(f) = failed(q.kind, &a.value) else { continue };
                    let row = counts.entry((card.id.clone(), q.id.clone())).or_insert_with(|| QuestionRow {
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
            Ok::<_, AppError>(counts.into_values().collect::<Vec<_>>())
        })
        .await?;
    for r in &mut rows {
        r.failure_rate =
            (r.answered > 0).then(|| 100.0 * f64::from(r.failed) / f64::from(r.answered));
    }
    rows.sort_by(|a, b| {
        b.failure_rate
            .partial_cmp(&a.failure_rate)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
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
