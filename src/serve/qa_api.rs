//! JSON endpoints of the QA workflow: scorecards (list, export, import as a new version) and
//! evaluations (draft, answers with the moment heard, submit, acknowledge, dispute, resolve).
//!
//! Roles come from the route table; this module narrows further: only an evaluation's reviewer
//! edits or submits it, drafts are visible only to their reviewer, an agent sees, acknowledges
//! and disputes only evaluations of their own calls, and every change is audited.

use super::api::{json_body, json_or_toml, parse_search, visible_call};
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::qa::scorecard::{self, Answer, AnswerEntry};
use crate::store::audit;
use crate::store::calibration;
use crate::store::qa::{self, Evaluation, QaError, StoredCard};
use crate::store::sampling::{self, PlanError};
use crate::store::users::Role;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use std::collections::HashMap;

impl From<QaError> for AppError {
    fn from(e: QaError) -> Self {
        match e {
            QaError::Store(s) => s.into(),
            QaError::NoCard(_) | QaError::NoEvaluation(_) => AppError::not_found(&e.to_string()),
            QaError::WrongState { .. } => AppError::api(StatusCode::CONFLICT, &e.to_string()),
            QaError::Card(_) | QaError::Answers(_) | QaError::Invalid(_) => {
                AppError::bad_request(&e.to_string())
            }
        }
    }
}

pub async fn list_cards(State(st): State<St>) -> Result<Json<Vec<StoredCard>>, AppError> {
    Ok(Json(
        st.db
            .read(|c| qa::list_cards(c).map_err(AppError::from))
            .await?,
    ))
}

/// `GET /api/scorecards/{slug}[?version=N][&format=toml]`: a card, as JSON or TOML (export).
pub async fn get_card(
    State(st): State<St>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let version = q
        .get("version")
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| AppError::bad_request("version must be a whole number"))
        })
        .transpose()?;
    let s2 = slug.clone();
    let card = st
        .db
        .read(move |c| match version {
            Some(v) => qa::card_version(c, &s2, v).map_err(AppError::from),
            None => qa::latest_card(c, &s2).map_err(AppError::from),
        })
        .await?
        .ok_or_else(|| AppError::not_found(&format!("no scorecard {slug:?}")))?;
    json_or_toml(q.get("format").map(String::as_str), card, |c| {
        scorecard::to_toml(&c.card).map_err(|e| e.to_string())
    })
}

/// `POST /api/scorecards`: import or edit a card (JSON, or TOML with a TOML content type).
/// A card already used by an evaluation is never changed: the edit becomes a new version.
pub async fn save_card(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("the card must be UTF-8 text"))?;
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let card = if is_toml {
        scorecard::from_toml(text)
    } else {
        scorecard::from_json(text)
    }
    .map_err(|e| AppError::bad_request(&e.to_string()))?;
    let saved = st
        .db
        .write(move |c| {
            let saved = qa::save_card(c, &card, &id.actor)?;
            audit::append(
                c,
                &id.event(
                    "scorecard.save",
                    None,
                    serde_json::json!({"scorecard": saved.card.id, "version": saved.card.version}),
                ),
            )?;
            Ok::<_, AppError>(saved)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// Whether `id` may see this evaluation at all (drafts: only their reviewer).
fn may_see(id: &Identity, e: &Evaluation) -> bool {
    e.status != "draft" || id.actor == e.reviewer
}

/// Calibration evaluations are blind (see `store::calibration::may_see`) and never shown to
/// agents: they grade the reviewers, not the agent.
fn calibration_visible(
    c: &rusqlite::Connection,
    id: &Identity,
    e: &Evaluation,
) -> Result<bool, AppError> {
    if e.calibration_id.is_none() {
        return Ok(true);
    }
    if id.role() == Some(Role::Agent) {
        return Ok(false);
    }
    Ok(calibration::may_see(c, e.id, &id.actor)?)
}

async fn load(st: &St, id: &Identity, ev: i64) -> Result<Evaluation, AppError> {
    let id2 = id.clone();
    let (e, blind_ok) = st
        .db
        .read(move |c| {
            let e = qa::get_evaluation(c, ev)?;
            let ok = calibration_visible(c, &id2, &e)?;
            Ok::<_, AppError>((e, ok))
        })
        .await?;
    // The call must be visible (an agent: their own calls only); hide what is not.
    // "No evaluation", never "no call N": the answer must not tell whose call it belongs to.
    let hidden = || AppError::not_found(&format!("no evaluation {ev}"));
    visible_call(st, id, e.call_id)
        .await
        .map_err(|_| hidden())?;
    if !may_see(id, &e) || !blind_ok {
        return Err(AppError::not_found(&format!("no evaluation {ev}")));
    }
    Ok(e)
}

pub async fn call_evaluations(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Json<Vec<Evaluation>>, AppError> {
    visible_call(&st, &id, call_id).await?;
    let seen = st
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for e in qa::evaluations_for_call(c, call_id)? {
                if may_see(&id, &e) && calibration_visible(c, &id, &e)? {
                    out.push(e);
                }
            }
            Ok::<_, AppError>(out)
        })
        .await?;
    Ok(Json(seen))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvaluation {
    scorecard: String,
}

pub async fn create_evaluation(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let n: NewEvaluation = json_body(&body)?;
    let call = visible_call(&st, &id, call_id).await?;
    let ev = st
        .db
        .write(move |c| {
            let card = qa::latest_card(c, &n.scorecard)?.ok_or_else(|| QaError::NoCard(n.scorecard.clone()))?;
            let ev = qa::create_evaluation(c, call_id, card.row_id, &id.actor, call.meta.agent.as_deref())?;
            audit::append(
                c,
                &id.event("evaluation.create", Some(call_id), serde_json::json!({"evaluation": ev, "scorecard": card.card.id, "version": card.card.version})),
            )?;
            Ok::<_, AppError>(qa::get_evaluation(c, ev)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(ev)).into_response())
}

pub async fn get_evaluation(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
) -> Result<Json<Evaluation>, AppError> {
    Ok(Json(load(&st, &id, ev).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answers {
    answers: Vec<AnswerEntry>,
    comment: Option<String>,
}

fn only_reviewer(id: &Identity, e: &Evaluation) -> Result<(), AppError> {
    if id.actor != e.reviewer {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            &format!(
                "only {} (the reviewer) may change evaluation {}",
                e.reviewer, e.id
            ),
        ));
    }
    Ok(())
}

pub async fn save_answers(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let a: Answers = json_body(&body)?;
    let e = load(&st, &id, ev).await?;
    only_reviewer(&id, &e)?;
    st.db
        .write(move |c| {
            qa::save_answers(c, ev, &a.answers, a.comment.as_deref())?;
            audit::append(c, &id.event("evaluation.answers", Some(e.call_id), serde_json::json!({"evaluation": ev, "answers": a.answers, "comment": a.comment})))?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn submit(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
) -> Result<Json<Evaluation>, AppError> {
    let e = load(&st, &id, ev).await?;
    only_reviewer(&id, &e)?;
    Ok(Json(
        st.db
            .write(move |c| {
                let score = qa::submit(c, ev)?;
                audit::append(c, &id.event("evaluation.submit", Some(e.call_id), serde_json::json!({"evaluation": ev, "percent": score.percent, "passed": score.passed})))?;
                Ok::<_, AppError>(qa::get_evaluation(c, ev)?)
            })
            .await?,
    ))
}

/// The agent's own evaluations only.
fn only_own_agent(id: &Identity, e: &Evaluation) -> Result<(), AppError> {
    let mine = id
        .user()
        .is_some_and(|u| u.role == Role::Agent && Some(&u.agent_id) == e.agent.as_ref());
    if !mine {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            "only the evaluated agent may acknowledge or dispute",
        ));
    }
    Ok(())
}

pub async fn acknowledge(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
) -> Result<Json<Evaluation>, AppError> {
    let e = load(&st, &id, ev).await?;
    only_own_agent(&id, &e)?;
    Ok(Json(
        st.db
            .write(move |c| {
                qa::acknowledge(c, ev)?;
                audit::append(
                    c,
                    &id.event(
                        "evaluation.acknowledge",
                        Some(e.call_id),
                        serde_json::json!({"evaluation": ev}),
                    ),
                )?;
                Ok::<_, AppError>(qa::get_evaluation(c, ev)?)
            })
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDispute {
    q: String,
    reason: String,
}

pub async fn dispute(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let d: NewDispute = json_body(&body)?;
    let e = load(&st, &id, ev).await?;
    only_own_agent(&id, &e)?;
    let out = st
        .db
        .write(move |c| {
            let did = qa::dispute(c, ev, &d.q, &d.reason, &id.actor)?;
            audit::append(c, &id.event("evaluation.dispute", Some(e.call_id), serde_json::json!({"evaluation": ev, "dispute": did, "q": d.q, "reason": d.reason})))?;
            Ok::<_, AppError>(qa::get_evaluation(c, ev)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolution {
    dispute_id: i64,
    decision: String,
    value: Option<Answer>,
    note: Option<String>,
}

/// The reviewer (or a supervisor or admin) decides a dispute.
pub async fn resolve(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(ev): Path<i64>,
    body: Bytes,
) -> Result<Json<Evaluation>, AppError> {
    let r: Resolution = json_body(&body)?;
    let e = load(&st, &id, ev).await?;
    let lead = matches!(id.role(), Some(Role::Admin | Role::Supervisor));
    if id.actor != e.reviewer && !lead {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            "only the reviewer, a supervisor or an admin may decide a dispute",
        ));
    }
    Ok(Json(
        st.db
            .write(move |c| {
                let score = qa::resolve(c, ev, r.dispute_id, &r.decision, r.value, r.note.as_deref(), &id.actor)?;
                audit::append(
                    c,
                    &id.event(
                        "evaluation.resolve",
                        Some(e.call_id),
                        serde_json::json!({"evaluation": ev, "dispute": r.dispute_id, "decision": r.decision, "value": r.value, "note": r.note, "percent": score.percent}),
                    ),
                )?;
                Ok::<_, AppError>(qa::get_evaluation(c, ev)?)
            })
            .await?,
    ))
}

impl From<PlanError> for AppError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Store(s) => s.into(),
            PlanError::Missing(_) => AppError::not_found(&e.to_string()),
            PlanError::Sample(_) | PlanError::Invalid(_) => AppError::bad_request(&e.to_string()),
        }
    }
}

pub async fn list_plans(State(st): State<St>) -> Result<Json<Vec<sampling::StoredPlan>>, AppError> {
    Ok(Json(
        st.db
            .read(|c| sampling::list_plans(c).map_err(AppError::from))
            .await?,
    ))
}

/// `POST /api/plans`: a sampling plan; its filters are search parameters, checked like a search.
pub async fn create_plan(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    body: Bytes,
) -> Result<Response, AppError> {
    let spec: sampling::PlanSpec = json_body(&body)?;
    let filters: HashMap<String, String> = spec.filters.clone().into_iter().collect();
    parse_search(&filters)?;
    let plan = st
        .db
        .write(move |c| {
            if qa::latest_card(c, &spec.scorecard)?.is_none() {
                return Err(AppError::bad_request(&format!(
                    "no scorecard {:?}",
                    spec.scorecard
                )));
            }
            let pid = sampling::create_plan(c, &spec, &id.actor)?;
            audit::append(
                c,
                &id.event(
                    "plan.create",
                    None,
                    serde_json::json!({"plan": pid, "spec": spec}),
                ),
            )?;
            Ok::<_, AppError>(sampling::get_plan(c, pid)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(plan)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawRequest {
    /// Period start and end (dates or RFC 3339); default the last 7 days.
    from: Option<String>,
    to: Option<String>,
    /// Re-run a past draw exactly by giving its seed; otherwise a fresh random one.
    seed: Option<u64>,
}

/// Seeds stay below 2^53 so they survive JSON and JavaScript unchanged.
fn fresh_seed() -> Result<u64, AppError> {
    let b = crate::store::users::random_bytes::<8>()?;
    Ok(u64::from_le_bytes(b) & ((1 << 53) - 1))
}

pub async fn draw_plan(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(plan_id): Path<i64>,
    body: Bytes,
) -> Result<Json<sampling::DrawResult>, AppError> {
    let r: DrawRequest = if body.is_empty() {
        DrawRequest {
            from: None,
            to: None,
            seed: None,
        }
    } else {
        json_body(&body)?
    };
    let bound = |v: Option<String>, default_days_ago: i64| -> Result<String, AppError> {
        match v {
            Some(v) => crate::clock::parse_bound(&v)
                .ok_or_else(|| AppError::bad_request("from/to must be dates or RFC 3339 times")),
            None => Ok(crate::clock::format_utc(
                chrono::Utc::now() - chrono::Duration::days(default_days_ago),
            )),
        }
    };
    let (since, until) = (bound(r.from, 7)?, bound(r.to, 0)?);
    let seed = match r.seed {
        Some(s) => s,
        None => fresh_seed()?,
    };
    let plan = st
        .db
        .read(move |c| sampling::get_plan(c, plan_id).map_err(AppError::from))
        .await?;
    let filters: HashMap<String, String> = plan.spec.filters.clone().into_iter().collect();
    let query = parse_search(&filters)?;
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens cannot draw plans"))?;
    Ok(Json(
        st.db
            .write(move |c| {
                let draw = sampling::DrawRequest {
                    since_utc: &since,
                    until_utc: &until,
                    seed,
                    query,
                    scope: &scope,
                };
                let d = sampling::draw_plan(c, plan_id, draw, &id.actor)?;
                audit::append(
                    c,
                    &id.event(
                        "plan.draw",
                        None,
                        serde_json::json!({"plan": plan_id, "draw": d.draw_id, "seed": d.seed, "from": since, "to": until,
                                           "candidates": d.candidates, "candidates_sha256": d.candidates_sha256,
                                           "calls": d.assignments.iter().map(|a| a.call_id).collect::<Vec<_>>()}),
                    ),
                )?;
                Ok::<_, AppError>(d)
            })
            .await?,
    ))
}

/// `GET /api/assignments`: the caller's review queue (`?all=1`: everyone's, for leads).
pub async fn assignments(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<sampling::AssignmentRow>>, AppError> {
    let all = q.get("all").is_some_and(|v| v == "1");
    if all && !matches!(id.role(), Some(Role::Admin | Role::Supervisor)) {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            "only supervisors and admins see every queue",
        ));
    }
    let me = (!all).then(|| id.actor.clone());
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens have no queue"))?;
    Ok(Json(
        st.db
            .read(move |c| {
                sampling::assignments(c, None, me.as_deref(), &scope).map_err(AppError::from)
            })
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapRequest {
    reason: String,
}

pub async fn swap_assignment(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(aid): Path<i64>,
    body: Bytes,
) -> Result<Json<Option<sampling::AssignmentRow>>, AppError> {
    let r: SwapRequest = json_body(&body)?;
    let lead = matches!(id.role(), Some(Role::Admin | Role::Supervisor));
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens have no queue"))?;
    Ok(Json(
        st.db
            .write(move |c| {
                // Out of scope reads as missing: a lead cannot swap (or probe) another team's.
                let mine = sampling::assignments(c, None, None, &scope)?.into_iter().find(|a| a.id == aid);
                let Some(a) = mine else {
                    return Err(AppError::not_found(&format!("no assignment {aid}")));
                };
                if a.reviewer != id.actor && !lead {
                    return Err(AppError::api(StatusCode::FORBIDDEN, "only the assigned reviewer or a lead may swap it"));
                }
                let added = sampling::swap_assignment(c, aid, &r.reason, &id.actor)?;
                audit::append(
                    c,
                    &id.event("assignment.swap", Some(a.call_id), serde_json::json!({"assignment": aid, "reason": r.reason, "replacement": added.as_ref().map(|n| n.call_id)})),
                )?;
                Ok::<_, AppError>(added)
            })
            .await?,
    ))
}
