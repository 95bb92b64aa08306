//! JSON endpoints for call scripts, spot checks against them, and transcripts.
//!
//! Roles come from the route table; this module narrows further: a check is changed only by its
//! reviewer and only while it is a draft, drafts are seen only by their reviewer, an agent sees
//! only the checks of their own calls (the call must be visible), and every change is audited.
//! Transcript suggestions are only ever *offered*: nothing here marks a step by itself.

use super::api::{json_body, json_or_toml, visible_call};
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::qa::script::{self, CheckOutcome, Script, StepMark, Suggestion};
use crate::qa::transcript::Segment;
use crate::store::audit;
use crate::store::compliance::{self, Check, ComplianceError, StoredScript};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The largest transcript accepted: a 2-hour call at a fast speaker's rate is well under 1 MB.
const MAX_TRANSCRIPT_BYTES: usize = 8 << 20;

impl From<ComplianceError> for AppError {
    fn from(e: ComplianceError) -> Self {
        match e {
            ComplianceError::Sql(s) => s.into(),
            ComplianceError::Store(s) => s.into(),
            ComplianceError::NoSuchScript(_)
            | ComplianceError::NoSuchCheck(_)
            | ComplianceError::NoSuchCall(_) => AppError::not_found(&e.to_string()),
            ComplianceError::NotDraft(_) => AppError::api(StatusCode::CONFLICT, &e.to_string()),
            ComplianceError::Script(_)
            | ComplianceError::Mark(_)
            | ComplianceError::Transcript(_) => AppError::bad_request(&e.to_string()),
        }
    }
}

pub async fn list_scripts(State(st): State<St>) -> Result<Json<Vec<StoredScript>>, AppError> {
    Ok(Json(
        st.db
            .read(|c| compliance::list_scripts(c).map_err(AppError::from))
            .await?,
    ))
}

/// `GET /api/scripts/{slug}[?format=toml]`: the latest version, as JSON or TOML (export).
pub async fn get_script(
    State(st): State<St>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let s2 = slug.clone();
    let stored = st
        .db
        .read(move |c| compliance::latest_script(c, &s2).map_err(AppError::from))
        .await?
        .ok_or_else(|| AppError::not_found(&format!("no script {slug:?}")))?;
    json_or_toml(q.get("format").map(String::as_str), stored, |s| {
        script::to_toml(&s.script).map_err(|e| e.to_string())
    })
}

/// `POST /api/scripts`: a script as JSON, or TOML with `Content-Type: application/toml`. Saving
/// changed content adds a version; checks keep pointing at the version they were made with.
pub async fn save_script(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::bad_request("the script must be UTF-8 text"))?;
    let parsed: Script = if toml {
        script::from_toml(text)
    } else {
        script::from_json(text)
    }
    .map_err(|e| AppError::bad_request(&e.to_string()))?;
    let saved = st
        .db
        .write(move |c| {
            let saved = compliance::save_script(c, &parsed, &id.actor)?;
            audit::append(
                c,
                &id.event(
                    "script.save",
                    None,
                    serde_json::json!({"script": saved.slug, "version": saved.version}),
                ),
            )?;
            Ok::<_, AppError>(saved)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// A check as the UI needs it: the check, the script version it uses, each step's window on
/// this call, and what the transcript (if any) suggests.
#[derive(Serialize)]
pub struct CheckView {
    #[serde(flatten)]
    check: Check,
    script: Script,
    windows: BTreeMap<String, (u64, u64)>,
    suggestions: Vec<Suggestion>,
}

fn view(c: &rusqlite::Connection, check: Check, duration_ms: u64) -> Result<CheckView, AppError> {
    let stored = compliance::script_by_row(c, check.script_id)?;
    let windows = stored
        .script
        .steps
        .iter()
        .filter_map(|s| {
            script::window_ms(&stored.script, &s.key, duration_ms).map(|w| (s.key.clone(), w))
        })
        .collect();
    let suggestions = if check.status == "draft" {
        script::suggest(
            &stored.script,
            duration_ms,
            &compliance::transcript(c, check.call_id)?,
        )
    } else {
        Vec::new()
    };
    Ok(CheckView {
        check,
        script: stored.script,
        windows,
        suggestions,
    })
}

/// Drafts are private to their reviewer, like evaluation drafts.
fn may_see(id: &Identity, c: &Check) -> bool {
    c.status != "draft" || c.reviewer == id.actor
}

pub async fn call_checks(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Json<Vec<CheckView>>, AppError> {
    let call = visible_call(&st, &id, call_id).await?;
    let duration_ms = call.duration_ms.max(0) as u64;
    let views = st
        .db
        .read(move |c| {
            compliance::checks_for_call(c, call_id)?
                .into_iter()
                .filter(|k| may_see(&id, k))
                .map(|k| view(c, k, duration_ms))
                .collect::<Result<Vec<_>, AppError>>()
        })
        .await?;
    Ok(Json(views))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCheck {
    script: String,
}

pub async fn create_check(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let n: NewCheck = json_body(&body)?;
    let call = visible_call(&st, &id, call_id).await?;
    if call.status == crate::store::CallStatus::Recording {
        return Err(AppError::api(
            StatusCode::CONFLICT,
            "the call is still recording; check it once it has ended",
        ));
    }
    let duration_ms = call.duration_ms.max(0) as u64;
    let v = st
        .db
        .write(move |c| {
            let s = compliance::latest_script(c, &n.script)?
                .ok_or_else(|| ComplianceError::NoSuchScript(n.script.clone()))?;
            let check = compliance::create_check(c, call_id, s.id, &id.actor)?;
            audit::append(
                c,
                &id.event(
                    "check.create",
                    Some(call_id),
                    serde_json::json!({"check": check, "script": s.slug, "version": s.version}),
                ),
            )?;
            view(c, compliance::get_check(c, check)?, duration_ms)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// The check (404 if the caller may not see it or its call) and the call's duration.
async fn load(st: &St, id: &Identity, check_id: i64) -> Result<(Check, u64), AppError> {
    let k = st
        .db
        .read(move |c| compliance::get_check(c, check_id).map_err(AppError::from))
        .await?;
    // "No check", never "no call N": the answer must not tell which call the check is of.
    let call = visible_call(st, id, k.call_id)
        .await
        .map_err(|_| AppError::not_found(&format!("no check {check_id}")))?;
    if !may_see(id, &k) {
        return Err(AppError::not_found(&format!("no check {check_id}")));
    }
    Ok((k, call.duration_ms.max(0) as u64))
}

fn only_reviewer(id: &Identity, k: &Check) -> Result<(), AppError> {
    if id.actor != k.reviewer {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            &format!(
                "only {} (the reviewer) may change check {}",
                k.reviewer, k.id
            ),
        ));
    }
    Ok(())
}

pub async fn get_check(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(check_id): Path<i64>,
) -> Result<Json<CheckView>, AppError> {
    let (k, duration_ms) = load(&st, &id, check_id).await?;
    Ok(Json(st.db.read(move |c| view(c, k, duration_ms)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Marks {
    marks: Vec<StepMark>,
}

pub async fn save_marks(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(check_id): Path<i64>,
    body: Bytes,
) -> Result<Json<CheckView>, AppError> {
    let m: Marks = json_body(&body)?;
    let (k, duration_ms) = load(&st, &id, check_id).await?;
    only_reviewer(&id, &k)?;
    Ok(Json(
        st.db
            .write(move |c| {
                compliance::save_marks(c, check_id, &m.marks, duration_ms)?;
                audit::append(
                    c,
                    &id.event(
                        "check.marks",
                        Some(k.call_id),
                        serde_json::json!({"check": check_id, "marks": m.marks}),
                    ),
                )?;
                view(c, compliance::get_check(c, check_id)?, duration_ms)
            })
            .await?,
    ))
}

pub async fn submit_check(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(check_id): Path<i64>,
) -> Result<Json<CheckView>, AppError> {
    let (k, duration_ms) = load(&st, &id, check_id).await?;
    only_reviewer(&id, &k)?;
    Ok(Json(
        st.db
            .write(move |c| {
                let outcome: CheckOutcome = compliance::submit_check(c, check_id, duration_ms)?;
                audit::append(
                    c,
                    &id.event(
                        "check.submit",
                        Some(k.call_id),
                        serde_json::json!({"check": check_id, "passed": outcome.passed}),
                    ),
                )?;
                view(c, compliance::get_check(c, check_id)?, duration_ms)
            })
            .await?,
    ))
}

#[derive(Serialize)]
pub struct TranscriptView {
    #[serde(flatten)]
    info: compliance::TranscriptInfo,
    segments: Vec<Segment>,
}

/// `GET /api/calls/{id}/transcript`: the segments, or 204 when the call has none (the call page
/// asks for every call; "none" is not an error).
pub async fn get_transcript(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Response, AppError> {
    visible_call(&st, &id, call_id).await?;
    let (info, segments) = st
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                compliance::transcript_info(c, call_id)?,
                compliance::transcript(c, call_id)?,
            ))
        })
        .await?;
    Ok(match info {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(info) => Json(TranscriptView { info, segments }).into_response(),
    })
}

/// `POST /api/calls/{id}/transcript`: WebVTT or JSON segments (detected from the content),
/// replacing any earlier transcript of the call.
pub async fn put_transcript(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    if body.len() > MAX_TRANSCRIPT_BYTES {
        return Err(AppError::api(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a transcript may be at most 8 MiB",
        ));
    }
    visible_call(&st, &id, call_id).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::bad_request("the transcript must be UTF-8 text"))?;
    let (n, format) = st
        .db
        .write(move |c| {
            compliance::import_transcript(c, call_id, &text, "upload", id.who())
                .map_err(AppError::from)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"segments": n, "format": format})),
    )
        .into_response())
}
