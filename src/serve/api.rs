//! JSON endpoints: search, call details, notes, listening reports, the audit log, seat status,
//! the CTI control API, health and metrics.
//!
//! Input is parsed by hand into typed values so that every malformed query parameter or JSON
//! body gets a 400 naming the problem, never a 500 or a silent default.

use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::dsp::talk;
use crate::record::control::{self, Request as Ctl, SeatStatus};
use crate::store::search::{self, Query as SearchQuery};
use crate::store::{self, audit, notes, CallMeta, CallRow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;

/// Parses a JSON body, answering 400 with serde's message (line, column, field) when it is bad.
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(&format!("malformed JSON body: {e}")))
}

/// An export as `?format=json` (the default) or `?format=toml` (`toml` renders it).
pub fn json_or_toml<T: serde::Serialize>(
    format: Option<&str>,
    value: T,
    toml: impl FnOnce(&T) -> Result<String, String>,
) -> Result<Response, AppError> {
    match format {
        None | Some("json") => Ok(Json(value).into_response()),
        Some("toml") => {
            let text = toml(&value).map_err(|e| AppError::bad_request(&e))?;
            Ok((
                [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
                text,
            )
                .into_response())
        }
        Some(_) => Err(AppError::bad_request("format must be json or toml")),
    }
}

/// The call if it exists and the caller may see it; 404 either way otherwise, so call ids
/// outside one's scope cannot be probed.
pub async fn visible_call(st: &St, id: &Identity, call_id: i64) -> Result<CallRow, AppError> {
    visible(st, id, call_id, store::get_call).await
}

/// Like [`visible_call`] without tags and intervals: for the file-serving routes, which run once
/// per byte range.
pub async fn visible_call_row(st: &St, id: &Identity, call_id: i64) -> Result<CallRow, AppError> {
    visible(st, id, call_id, store::get_call_row).await
}

async fn visible(
    st: &St,
    id: &Identity,
    call_id: i64,
    get: fn(&rusqlite::Connection, i64) -> Result<CallRow, store::StoreError>,
) -> Result<CallRow, AppError> {
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens cannot read calls"))?;
    st.db
        .read_quick(move |c| {
            let call = get(c, call_id)?;
            if search::visible(c, &call, &scope)? {
                Ok(call)
            } else {
                Err(AppError::not_found(&format!("no call {call_id}")))
            }
        })
        .await
}

/// Search parameters from a query string ([`search::parse_params`]), as a 400 when they are
/// wrong.
pub fn parse_search(q: &HashMap<String, String>) -> Result<SearchQuery, AppError> {
    search::parse_params(q).map_err(|e| AppError::bad_request(&e.0))
}

/// Runs a search as `id`, auditing it (searches reveal who looked for which number).
pub async fn run_search(
    st: &St,
    id: &Identity,
    raw: &HashMap<String, String>,
) -> Result<search::Results, AppError> {
    let q = parse_search(raw)?;
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens cannot read calls"))?;
    let results = st
        .db
        .read(move |c| search::search(c, &q, &scope).map_err(AppError::from))
        .await?;
    let mut filters: Vec<(&String, &String)> =
        raw.iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    filters.sort();
    let detail = serde_json::json!({"filters": filters.into_iter().collect::<std::collections::BTreeMap<_, _>>(), "results": results.total});
    let id2 = id.clone();
    st.db
        .write(move |c| {
            audit::append(c, &id2.event("search", None, detail)).map_err(AppError::from)
        })
        .await?;
    Ok(results)
}

/// `GET /healthz` (public, for monitoring): 200 `ok`, or 503 naming each active alarm (disk
/// full, disk pressure the guard could not relieve, a seat's completeness alarms with the seat)
/// and since when. Details stay behind login.
pub async fn healthz(State(st): State<St>) -> Response {
    let alarms = st
        .db
        .read_quick(|c| store::alarms::active(c).map_err(AppError::from))
        .await;
    let (status, body) = match alarms {
        Ok(a) if a.is_empty() => (StatusCode::OK, "ok\n".to_owned()),
        Ok(a) => (
            StatusCode::SERVICE_UNAVAILABLE,
            a.iter()
                .map(|a| match a.subject.as_str() {
                    "" => format!("alarm {} since {}\n", a.kind, a.raised_at_utc),
                    seat => format!("alarm {} seat {seat} since {}\n", a.kind, a.raised_at_utc),
                })
                .collect(),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "index unreadable\n".to_owned(),
        ),
    };
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

pub async fn me(Extension(id): Extension<Identity>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "user": id.actor,
        "role": id.role(),
        "agent_id": id.user().map(|u| u.agent_id.clone()),
        "team": id.user().and_then(|u| u.team.clone()),
    }))
}

pub async fn search(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<search::Results>, AppError> {
    Ok(Json(run_search(&st, &id, &q).await?))
}

#[derive(serde::Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRow,
    pub notes: Vec<notes::Note>,
    /// Acoustic metrics (`dsp::talk::Metrics`); null while recording.
    pub metrics: Option<serde_json::Value>,
    /// Why and when the recording was deleted; null while it exists.
    pub deletion: Option<store::lifecycle::DeletionInfo>,
    /// Legal holds in force on this call.
    pub legal_holds: Vec<store::holds::Hold>,
}

/// Metrics for a finished call that has none yet (recovered after a crash, or recorded before
/// metrics existed): decoded from the file once and stored, so later views read the row.
/// Streaming ([`talk::metrics_of_file`]): about 3 MB for a one-hour call, where reading the file
/// and its PCM took ~500 MB. This runs in the web service (`callrec serve`), not the recorder's
/// process (except in the one-process `callrec run`). While one view computes, other views of
/// the same call show no metrics rather than starting a second decode.
async fn compute_metrics(st: &St, call: &CallRow) -> Option<serde_json::Value> {
    let path = match st.hub {
        // At the hub the audio is in the archive: metrics read the checked cached copy.
        Some(_) => super::remote::local_file(st, call).await.ok()?,
        None => store::call_file(&st.cfg.storage.dir, &call.rel_path)?,
    };
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let call_id = call.id;
    let _running = MetricsRun::start(st, call_id)?;
    let m = tokio::task::spawn_blocking(move || {
        talk::metrics_of_file(&path, rate_hz, talk::Thresholds::default())
    })
    .await
    .ok()?;
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(call_id, "computing metrics: {e}");
            return None;
        }
    };
    let value = serde_json::to_value(&m).ok();
    let stored = st
        .db
        .write(move |c| store::metrics::put(c, call_id, &m).map_err(AppError::from))
        .await;
    if let Err(e) = stored {
        tracing::warn!(call_id, "storing metrics: {}", e.message);
    }
    value
}

/// A call's entry in `metrics_running`, removed when the computation ends (or its request is
/// dropped mid-way).
struct MetricsRun<'a> {
    st: &'a St,
    call_id: i64,
}

impl<'a> MetricsRun<'a> {
    /// None if the call's metrics are already being computed.
    fn start(st: &'a St, call_id: i64) -> Option<Self> {
        let mut running = st.metrics_running.lock().ok()?;
        running
            .insert(call_id)
            .then_some(MetricsRun { st, call_id })
    }
}

impl Drop for MetricsRun<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.st.metrics_running.lock() {
            running.remove(&self.call_id);
        }
    }
}

pub async fn call_detail(st: &St, id: &Identity, call_id: i64) -> Result<CallDetail, AppError> {
    let call = visible_call(st, id, call_id).await?;
    let row = call.clone();
    let (notes, metrics, deletion, legal_holds) = st
        .db
        .read(move |c| {
            Ok::<_, AppError>((
                notes::for_call(c, call_id)?,
                store::metrics::get(c, call_id)?,
                store::lifecycle::deletion_of(c, call_id)?,
                store::holds::covering(c, &row)?,
            ))
        })
        .await?;
    let metrics = match metrics {
        None if matches!(
            call.status,
            crate::store::CallStatus::Complete | crate::store::CallStatus::Interrupted
        ) =>
        {
            compute_metrics(st, &call).await
        }
        m => m,
    };
    let (deletion, legal_holds) = if id.role() == Some(crate::store::users::Role::Agent) {
        withhold_reasons(deletion, legal_holds)
    } else {
        (deletion, legal_holds)
    };
    Ok(CallDetail {
        call,
        notes,
        metrics,
        deletion,
        legal_holds,
    })
}

/// What an agent sees of the holds on, and the deletion of, their own call: that they exist
/// and when, not why ("HR case 17", a matter, an erasure request) nor who asked.
fn withhold_reasons(
    deletion: Option<store::lifecycle::DeletionInfo>,
    holds: Vec<store::holds::Hold>,
) -> (
    Option<store::lifecycle::DeletionInfo>,
    Vec<store::holds::Hold>,
) {
    const WITHHELD: &str = "(not shown to agents)";
    let deletion = deletion.map(|d| store::lifecycle::DeletionInfo {
        reason: WITHHELD.into(),
        requested_by: WITHHELD.into(),
        ..d
    });
    let holds = holds
        .into_iter()
        .map(|h| store::holds::Hold {
            reason: WITHHELD.into(),
            placed_by: WITHHELD.into(),
            released_by: h.released_by.as_ref().map(|_| WITHHELD.into()),
            release_reason: h.release_reason.as_ref().map(|_| WITHHELD.into()),
            ..h
        })
        .collect();
    (deletion, holds)
}

pub async fn call(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Json<CallDetail>, AppError> {
    Ok(Json(call_detail(&st, &id, call_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Heard {
    ranges: Vec<(f64, f64)>,
}

/// `POST /api/calls/{id}/heard`: the player reports the time ranges actually played.
pub async fn heard(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let h: Heard = json_body(&body)?;
    let call = visible_call(&st, &id, call_id).await?;
    let max_s = call.duration_ms as f64 / 1000.0 + 1.0;
    if h.ranges.is_empty() || h.ranges.len() > 1000 {
        return Err(AppError::bad_request(
            "ranges must hold 1 to 1000 [start_s, end_s] pairs",
        ));
    }
    if h.ranges.iter().any(|(a, b)| {
        !a.is_finite()
            || !b.is_finite()
            || *a < 0.0
            || b < a
            || (*b > max_s && call.status != crate::store::CallStatus::Recording)
    }) {
        return Err(AppError::bad_request(
            "each range must be [start_s, end_s] with 0 <= start <= end <= the call's duration",
        ));
    }
    let ranges: Vec<[f64; 2]> = h
        .ranges
        .iter()
        .map(|(a, b)| [(a * 10.0).round() / 10.0, (b * 10.0).round() / 10.0])
        .collect();
    let heard_s: f64 = ranges.iter().map(|r| r[1] - r[0]).sum();
    let detail =
        serde_json::json!({"ranges_s": ranges, "heard_s": (heard_s * 10.0).round() / 10.0});
    st.db
        .write(move |c| {
            audit::append(c, &id.event("heard", Some(call_id), detail)).map_err(AppError::from)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    at_ms: i64,
    text: String,
}

pub async fn add_note(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let n: NewNote = json_body(&body)?;
    let text = n.text.trim().to_owned();
    if text.is_empty() || text.chars().count() > notes::MAX_NOTE_CHARS {
        return Err(AppError::bad_request(&format!(
            "a note needs 1 to {} characters of text",
            notes::MAX_NOTE_CHARS
        )));
    }
    let call = visible_call(&st, &id, call_id).await?;
    if n.at_ms < 0
        || (call.status != crate::store::CallStatus::Recording && n.at_ms > call.duration_ms)
    {
        return Err(AppError::bad_request(&format!(
            "at_ms must be within the call (0 to {} ms)",
            call.duration_ms
        )));
    }
    let note = st
        .db
        .write(move |c| {
            let note = notes::add(c, call_id, n.at_ms, &id.actor, &text)?;
            audit::append(
                c,
                &id.event(
                    "note.add",
                    Some(call_id),
                    serde_json::json!({"note_id": note.id, "at_ms": note.at_ms, "text": note.text}),
                ),
            )?;
            Ok::<_, AppError>(note)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

pub async fn delete_note(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(note_id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let note = st
        .db
        .read(move |c| notes::get(c, note_id).map_err(AppError::from))
        .await?
        .ok_or_else(|| AppError::not_found(&format!("no note {note_id}")))?;
    // "No note", never "no call N": the answer must not tell which call the note is on.
    visible_call(&st, &id, note.call_id)
        .await
        .map_err(|_| AppError::not_found(&format!("no note {note_id}")))?;
    let is_admin = id.role() == Some(crate::store::users::Role::Admin);
    if note.author != id.actor && !is_admin {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            "only the note's author or an admin may delete it",
        ));
    }
    st.db
        .write(move |c| {
            notes::delete(c, note_id)?;
            audit::append(
                c,
                &id.event(
                    "note.delete",
                    Some(note.call_id),
                    serde_json::json!({"note_id": note_id, "text": note.text}),
                ),
            )?;
            Ok::<_, AppError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn parse_audit_filter(q: &HashMap<String, String>) -> Result<audit::Filter, AppError> {
    const KEYS: [&str; 6] = ["actor", "action", "call_id", "from", "to", "before"];
    if let Some(k) = q.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(AppError::bad_request(&format!(
            "unknown audit filter {k:?}; use {}",
            KEYS.join(", ")
        )));
    }
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let int = |k: &str| -> Result<Option<i64>, AppError> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| AppError::bad_request(&format!("{k} must be a whole number")))
            })
            .transpose()
    };
    let date = |k: &str| -> Result<Option<String>, AppError> {
        get(k)
            .map(|v| {
                crate::clock::parse_bound(v).ok_or_else(|| {
                    AppError::bad_request(&format!("{k} must be a date or RFC 3339 time"))
                })
            })
            .transpose()
    };
    Ok(audit::Filter {
        actor: get("actor").map(str::to_owned),
        action: get("action").map(str::to_owned),
        call_id: int("call_id")?,
        since_utc: date("from")?,
        until_utc: date("to")?,
        before_id: int("before")?,
        mentions: None,
        limit: 100,
    })
}

pub async fn audit(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<audit::Row>>, AppError> {
    let f = parse_audit_filter(&q)?;
    let rows = st
        .db
        .read(move |c| audit::list(c, &f).map_err(AppError::from))
        .await?;
    st.db
        .write(move |c| {
            audit::append(
                c,
                &id.event("audit.view", None, serde_json::json!({"filters": q})),
            )
            .map_err(AppError::from)
        })
        .await?;
    Ok(Json(rows))
}

/// The recorder's seat status via its control socket; None if it is not running.
pub async fn recorder_status(st: &St) -> Option<Vec<SeatStatus>> {
    let sock = st.cfg.control_socket();
    tokio::task::spawn_blocking(move || {
        control::request(&sock, &Ctl::Status)
            .ok()
            .filter(|r| r.ok)
            .map(|r| r.seats)
    })
    .await
    .ok()
    .flatten()
}

pub async fn seats(State(st): State<St>) -> Result<Json<Vec<SeatStatus>>, AppError> {
    recorder_status(&st).await.map(Json).ok_or_else(|| {
        AppError::api(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recorder is not running (is `callrec record` or `callrec run` up?)",
        )
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    #[serde(default)]
    meta: CallMeta,
    #[serde(default)]
    tags: Vec<String>,
    by: Option<String>,
    reason: Option<String>,
    agent: Option<String>,
    /// At stop: the call's outcome code and amount (store::outcomes).
    outcome: Option<String>,
    amount: Option<f64>,
}

/// Refuses (400, naming the allowed codes) an outcome sent with a stop that the seat's call's
/// campaign (`campaign` when the stop sets it) does not allow, before anything is stopped. The
/// recorder's indexer checks again when it records it.
async fn check_stop_outcome(
    st: &St,
    seat: &str,
    campaign: Option<String>,
    code: String,
    amount: Option<f64>,
) -> Result<(), AppError> {
    use rusqlite::OptionalExtension as _;
    let seat = seat.to_owned();
    st.db
        .read(move |c| {
            let campaign = match campaign {
                Some(c) => Some(c),
                None => c
                    .query_row(
                        "SELECT campaign FROM calls WHERE seat_id = ?1 AND status = 'recording'
                         ORDER BY id DESC LIMIT 1",
                        [&seat],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional()?
                    .flatten(),
            };
            store::outcomes::check(c, campaign.as_deref(), &code, amount)?;
            Ok::<_, AppError>(())
        })
        .await
}

/// `POST /api/control/seats/{seat}/{action}`: the control socket's commands over HTTPS.
pub async fn control(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path((seat, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AppError> {
    let b: ControlBody = if body.is_empty() {
        ControlBody::default()
    } else {
        json_body(&body)?
    };
    let by = b.by.clone().or_else(|| Some(id.actor.clone()));
    let req = match action.as_str() {
        "start" => Ctl::Start {
            seat: seat.clone(),
            meta: b.meta,
            tags: b.tags,
        },
        "stop" => {
            if let Some(code) = b.outcome.clone() {
                check_stop_outcome(&st, &seat, b.meta.campaign.clone(), code, b.amount).await?;
            } else if b.amount.is_some() {
                return Err(AppError::bad_request("an amount needs an outcome"));
            }
            Ctl::Stop {
                seat: seat.clone(),
                meta: b.meta,
                outcome: b.outcome,
                amount: b.amount,
                by,
            }
        }
        "pause" => Ctl::Pause {
            seat: seat.clone(),
            by,
            reason: b.reason,
        },
        "resume" => Ctl::Resume { seat: seat.clone() },
        "tag" => Ctl::Tag {
            seat: seat.clone(),
            tags: b.tags,
            meta: b.meta,
        },
        "hold" => Ctl::Hold {
            seat: seat.clone(),
            by,
            reason: b.reason,
        },
        "unhold" => Ctl::Unhold { seat: seat.clone() },
        "login" => Ctl::Login {
            seat: seat.clone(),
            agent: b
                .agent
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| AppError::bad_request("login needs {\"agent\": \"<agent id>\"}"))?,
            by,
        },
        "logout" => Ctl::Logout {
            seat: seat.clone(),
            by,
        },
        "wrapup" => Ctl::Wrapup {
            seat: seat.clone(),
            by,
        },
        "ready" => Ctl::Ready {
            seat: seat.clone(),
            by,
        },
        other => {
            return Err(AppError::not_found(&format!(
                "unknown action {other:?}; use start, stop, pause, resume, tag, hold, unhold, login, logout, wrapup or ready"
            )));
        }
    };
    let sock = st.cfg.control_socket();
    let sent = req.clone();
    let resp = tokio::task::spawn_blocking(move || control::request(&sock, &sent))
        .await
        .map_err(|_| AppError::api(StatusCode::SERVICE_UNAVAILABLE, "control request failed"))?;
    let (status, resp) = match resp {
        Ok(r) if r.ok => (StatusCode::OK, r),
        Ok(r) => (StatusCode::CONFLICT, r),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            control::Response {
                ok: false,
                error: Some(e.to_string()),
                ..Default::default()
            },
        ),
    };
    let detail =
        serde_json::json!({"seat": seat, "request": req, "ok": resp.ok, "error": resp.error});
    let call_id = resp.call_id;
    let action_name = format!("control.{action}");
    st.db
        .write(move |c| {
            audit::append(
                c,
                &audit::Event {
                    actor: &id.actor,
                    action: &action_name,
                    call_id,
                    detail,
                    ip: Some(&id.ip),
                },
            )
            .map_err(AppError::from)
        })
        .await?;
    Ok((status, Json(resp)).into_response())
}

pub async fn metrics(State(st): State<St>) -> Response {
    let mut out = String::new();
    let seats = recorder_status(&st).await;
    super::metrics::render_seats(&mut out, seats.as_deref());
    super::metrics::render_disk(&mut out, &st.cfg.storage.dir);
    let alarms = st
        .db
        .read_quick(|c| store::alarms::active(c).map_err(AppError::from))
        .await
        .unwrap_or_default();
    let seats: Vec<String> = st.cfg.seats.iter().map(|s| s.id.clone()).collect();
    super::metrics::render_alarms(&mut out, &alarms, &seats);
    if st.cfg.archive.is_some() {
        let now = st.clock.now_utc();
        if let Ok(b) = st
            .db
            .read_quick(move |c| store::archive::backlog(c, now).map_err(AppError::from))
            .await
        {
            super::metrics::render_archive(&mut out, &b);
        }
    }
    st.metrics.render_requests(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
