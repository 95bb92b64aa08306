//! Calibration sessions over HTTP: a lead picks a call, a scorecard and several reviewers; each
//! reviewer scores the call blind (their own draft evaluation, tied to the session); the result
//! shows the answers side by side, the spread per question and each reviewer's distance from
//! the reference reviewer.
//!
//! Blindness is enforced here and in `qa_api`: while a session is open a participant sees
//! neither the others' evaluations nor the result; leads (supervisor, admin) see both.

use super::api::{json_body, visible_call};
use super::error::AppError;
use super::html::{esc, page};
use super::identity::Identity;
use super::state::St;
use crate::store::audit;
use crate::store::calibration::{self, Calibration, CalibrationError, CalibrationResult};
use crate::store::qa::{self, QaError};
use crate::store::users::Role;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

impl From<CalibrationError> for AppError {
    fn from(e: CalibrationError) -> Self {
        match e {
            CalibrationError::Sql(s) => s.into(),
            CalibrationError::Qa(q) => q.into(),
            CalibrationError::NoSuchCalibration(_) | CalibrationError::NoSuchCall(_) => {
                AppError::not_found(&e.to_string())
            }
            CalibrationError::Invalid(_) => AppError::bad_request(&e.to_string()),
            CalibrationError::Closed(_) => AppError::api(StatusCode::CONFLICT, &e.to_string()),
        }
    }
}

fn is_lead(id: &Identity) -> bool {
    matches!(id.role(), Some(Role::Admin | Role::Supervisor))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    call_id: i64,
    scorecard: String,
    #[serde(default)]
    title: Option<String>,
    reviewers: Vec<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    due_days: Option<u32>,
}

pub async fn create(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    body: Bytes,
) -> Result<Response, AppError> {
    let n: NewSession = json_body(&body)?;
    visible_call(&st, &id, n.call_id).await?;
    let due = n
        .due_days
        .map(|d| crate::clock::format_utc(chrono::Utc::now() + chrono::Duration::days(d.into())));
    let cal = st
        .db
        .write(move |c| {
            let card = qa::latest_card(c, &n.scorecard)?
                .ok_or_else(|| QaError::NoCard(n.scorecard.clone()))?;
            let title = n
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| format!("Call {} · {}", n.call_id, card.card.name));
            let cal_id = calibration::create(
                c,
                &calibration::NewCalibration {
                    call_id: n.call_id,
                    scorecard_row_id: card.row_id,
                    title: &title,
                    reviewers: &n.reviewers,
                    reference: n.reference.as_deref(),
                    due_utc: due.as_deref(),
                    by: &id.actor,
                },
            )?;
            audit::append(
                c,
                &id.event(
                    "calibration.create",
                    Some(n.call_id),
                    serde_json::json!({"calibration": cal_id, "scorecard": card.card.id, "reviewers": n.reviewers, "reference": n.reference}),
                ),
            )?;
            Ok::<_, AppError>(calibration::get(c, cal_id)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(cal)).into_response())
}

/// `GET /api/calibrations`: leads see every session, reviewers the ones they take part in.
pub async fn list(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Json<Vec<Calibration>>, AppError> {
    let me = (!is_lead(&id)).then(|| id.actor.clone());
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens cannot read calls"))?;
    Ok(Json(
        st.db
            .read(move |c| {
                // A team lead lists only sessions on calls of their team.
                let mut out = Vec::new();
                for cal in calibration::list(c, me.as_deref())? {
                    let call = crate::store::get_call_row(c, cal.call_id)?;
                    if crate::store::search::visible(c, &call, &scope)? {
                        out.push(cal);
                    }
                }
                Ok::<_, AppError>(out)
            })
            .await?,
    ))
}

/// A session and, when the caller may see it, its result.
#[derive(Serialize)]
pub struct SessionView {
    calibration: Calibration,
    result: Option<CalibrationResult>,
    /// Why `result` is absent, for the UI.
    hidden_because: Option<String>,
}

async fn session(st: &St, id: &Identity, cal_id: i64) -> Result<SessionView, AppError> {
    let (lead, me) = (is_lead(id), id.actor.clone());
    let v = st
        .db
        .read(move |c| {
            let cal = calibration::get(c, cal_id)?;
            let participant = cal.reviewers.contains(&me);
            if !lead && !participant {
                return Err(AppError::not_found(&format!("no calibration {cal_id}")));
            }
            if lead || cal.status == "closed" {
                let result = calibration::result(c, cal_id)?;
                return Ok(SessionView {
                    calibration: cal,
                    result: Some(result),
                    hidden_because: None,
                });
            }
            Ok(SessionView {
                calibration: cal,
                result: None,
                hidden_because: Some(
                    "scoring is blind: the answers are shown once a lead closes the session".into(),
                ),
            })
        })
        .await?;
    // "No calibration", never "no call N": a lead of another team learns nothing of it.
    visible_call(st, id, v.calibration.call_id)
        .await
        .map_err(|_| AppError::not_found(&format!("no calibration {cal_id}")))?;
    Ok(v)
}

pub async fn get(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(cal_id): Path<i64>,
) -> Result<Json<SessionView>, AppError> {
    Ok(Json(session(&st, &id, cal_id).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Close {
    #[serde(default)]
    reference: Option<String>,
}

pub async fn close(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(cal_id): Path<i64>,
    body: Bytes,
) -> Result<Json<SessionView>, AppError> {
    let req: Close = if body.is_empty() {
        Close::default()
    } else {
        json_body(&body)?
    };
    // Only a lead who may see the session may close it (team scope: their team's calls).
    session(&st, &id, cal_id).await?;
    let id2 = id.clone();
    st.db
        .write(move |c| {
            let cal = calibration::get(c, cal_id)?;
            calibration::close(c, cal_id, req.reference.as_deref())?;
            audit::append(
                c,
                &id2.event(
                    "calibration.close",
                    Some(cal.call_id),
                    serde_json::json!({"calibration": cal_id, "reference": req.reference}),
                ),
            )?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(Json(session(&st, &id, cal_id).await?))
}

fn pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "—".into())
}

/// `GET /calibrations/{id}`: the result page (answers side by side, spread, distances).
pub async fn page_view(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(cal_id): Path<i64>,
) -> Result<Html<String>, AppError> {
    let v = session(&st, &id, cal_id)
        .await
        .map_err(|e| e.with_html(true))?;
    let cal = &v.calibration;
    let head = format!(
        r#"<h1>Calibration: {title}</h1>
<p>Call <a href="/calls/{call}">{call}</a> · scorecard {card} v{ver} · reviewers {reviewers} · reference {reference} · {status}{due}</p>"#,
        title = esc(&cal.title),
        call = cal.call_id,
        card = esc(&cal.scorecard_slug),
        ver = cal.scorecard_version,
        reviewers = esc(&cal.reviewers.join(", ")),
        reference = esc(cal.reference.as_deref().unwrap_or("none")),
        status = esc(&cal.status),
        due = cal
            .due_utc
            .as_deref()
            .map(|d| format!(" · due {}", esc(d)))
            .unwrap_or_default(),
    );
    let body = match &v.result {
        None => format!(
            r#"{head}<p class="notice">{}</p><p><a href="/calls/{}">Score the call</a></p>"#,
            esc(v.hidden_because.as_deref().unwrap_or_default()),
            cal.call_id
        ),
        Some(r) => format!("{head}{}", result_tables(r)),
    };
    Ok(Html(page(
        Some(&id),
        &format!("Calibration {}", cal.id),
        &format!(
            r#"<main id="calibration" data-id="{}">{body}</main>"#,
            cal.id
        ),
    )))
}

fn result_tables(r: &CalibrationResult) -> String {
    let names: Vec<&str> = r.reviewers.iter().map(|x| x.reviewer.as_str()).collect();
    let th: String = names
        .iter()
        .map(|n| format!("<th>{}</th>", esc(n)))
        .collect();
    let rows: String = r
        .questions
        .iter()
        .map(|q| {
            let cells: String = names
                .iter()
                .map(|n| {
                    let v = q
                        .values
                        .iter()
                        .find(|(who, _)| who == n)
                        .and_then(|(_, v)| v.clone())
                        .unwrap_or_else(|| "—".into());
                    format!("<td>{}</td>", esc(&v))
                })
                .collect();
            format!(
                r#"<tr class="{cls}" data-question="{key}"><td>{text}</td>{cells}<td class="spread">{spread}</td></tr>"#,
                cls = if q.agree { "agree" } else { "disagree" },
                key = esc(&q.question),
                text = esc(&q.text),
                spread = pct(q.spread.map(|s| s * 100.0)),
            )
        })
        .collect();
    let reviewers: String = r
        .reviewers
        .iter()
        .map(|x| {
            format!(
                r#"<tr data-reviewer="{who}"><td>{who}</td><td>{sub}</td><td>{score}</td><td>{pass}</td><td class="distance">{dist}</td></tr>"#,
                who = esc(&x.reviewer),
                sub = if x.submitted { "submitted" } else { "not yet" },
                score = pct(x.score_percent),
                pass = match x.passed {
                    Some(true) => "pass",
                    Some(false) => "fail",
                    None => "—",
                },
                dist = x
                    .distance_from_reference
                    .map(|d| format!("{d:.1} pts"))
                    .unwrap_or_else(|| "—".into()),
            )
        })
        .collect();
    format!(
        r#"<h2>Answers side by side</h2>
<table class="results calibration"><thead><tr><th>Question</th>{th}<th>Spread</th></tr></thead><tbody>{rows}</tbody></table>
<p>Mean spread per question: {mean} · spread of total scores: {scores}</p>
<h2>Reviewers</h2>
<table class="results calibration-reviewers"><thead><tr><th>Reviewer</th><th>Status</th><th>Score</th><th>Result</th><th>Distance from reference</th></tr></thead><tbody>{reviewers}</tbody></table>
<p class="hint">Spread: the largest minus the smallest share of a question's points among the reviewers. Distance: the mean difference from the reference reviewer's share per question both answered, in percentage points.</p>"#,
        mean = pct(r.mean_spread.map(|s| s * 100.0)),
        scores = r
            .score_spread
            .map(|s| format!("{s:.0} points"))
            .unwrap_or_else(|| "—".into()),
    )
}

/// For the queue page: a one-line summary of a session.
pub fn summary_line(cal: &Calibration) -> String {
    format!(
        r#"<li><a href="/calibrations/{id}">{title}</a> · call <a href="/calls/{call}">{call}</a> · {n} reviewers · {status}{due}</li>"#,
        id = cal.id,
        title = esc(&cal.title),
        call = cal.call_id,
        n = cal.reviewers.len(),
        status = esc(&cal.status),
        due = cal
            .due_utc
            .as_deref()
            .map(|d| format!(" · due {}", esc(d.get(..10).unwrap_or(d))))
            .unwrap_or_default(),
    )
}
