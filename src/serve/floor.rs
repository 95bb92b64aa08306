//! The floor overview for supervisors (issue 16 item 6) and the completeness report (item 4):
//! `GET /floor` (a page; `floor.js` polls `GET /api/floor` about once a second for every seat's
//! live state, levels and alarms) and `GET /api/reports/completeness?day=` (calls announced vs
//! recorded, one-sided calls, gaps and drops per seat, for a box-local day), also shown on the
//! floor page.
//!
//! The live state comes from the recorder over the control socket (as `/api/seats`); the alarms
//! and the report from the index. Neither route fails when the recorder is down: the seats are
//! then listed from the config with no live state, and the page says so. Nothing here writes.

use super::api::recorder_status;
use super::error::AppError;
use super::html::{esc, page};
use super::identity::Identity;
use super::state::St;
use crate::record::control::SeatStatus;
use crate::store::{self, alarms::Alarm, completeness::SeatCompleteness};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

/// One seat on the floor: its live state (None while the recorder is not reachable) and its
/// active alarms.
#[derive(Debug, Serialize)]
pub struct FloorSeat {
    pub seat: String,
    pub status: Option<SeatStatus>,
    pub alarms: Vec<Alarm>,
}

#[derive(Debug, Serialize)]
pub struct Floor {
    /// Whether the recorder answered.
    pub recorder: bool,
    pub seats: Vec<FloorSeat>,
    /// Active alarms about the box (disk, archive), not a seat.
    pub alarms: Vec<Alarm>,
}

/// `GET /api/floor`: every seat of the config (then any other the recorder reports), its live
/// state and alarms.
pub async fn api_floor(State(st): State<St>) -> Result<Json<Floor>, AppError> {
    let live = recorder_status(&st).await;
    let active = st
        .db
        .read_quick(|c| store::alarms::active(c).map_err(AppError::from))
        .await?;
    let mut names: Vec<String> = st.cfg.seats.iter().map(|s| s.id.clone()).collect();
    for s in live.iter().flatten() {
        if !names.contains(&s.seat) {
            names.push(s.seat.clone());
        }
    }
    let seats = names
        .into_iter()
        .map(|seat| FloorSeat {
            status: live
                .as_ref()
                .and_then(|l| l.iter().find(|s| s.seat == seat).cloned()),
            alarms: active
                .iter()
                .filter(|a| a.subject == seat)
                .cloned()
                .collect(),
            seat,
        })
        .collect();
    Ok(Json(Floor {
        recorder: live.is_some(),
        seats,
        alarms: active
            .into_iter()
            .filter(|a| a.subject.is_empty())
            .collect(),
    }))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// `YYYY-MM-DD`, the box's local date; absent or empty: today.
    pub day: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CompletenessReport {
    pub day: String,
    /// The day's bounds in UTC, `[from_utc, to_utc)`.
    pub from_utc: String,
    pub to_utc: String,
    pub noise_floor_dbfs: f64,
    pub seats: Vec<SeatCompleteness>,
}

async fn completeness(st: &St, day: Option<&str>) -> Result<CompletenessReport, AppError> {
    let day = day.filter(|d| !d.trim().is_empty());
    let (day, from_utc, to_utc) = crate::clock::local_day(day, st.clock.now_utc())
        .ok_or_else(|| AppError::api(StatusCode::BAD_REQUEST, "day must be a date, YYYY-MM-DD"))?;
    let seats: Vec<String> = st.cfg.seats.iter().map(|s| s.id.clone()).collect();
    let (box_id, floor) = (st.cfg.box_.id.clone(), st.cfg.alarms.noise_floor_dbfs);
    let (f, t) = (from_utc.clone(), to_utc.clone());
    let rows = st
        .db
        .read(move |c| {
            store::completeness::report(c, &box_id, &seats, &f, &t, floor).map_err(AppError::from)
        })
        .await?;
    Ok(CompletenessReport {
        day,
        from_utc,
        to_utc,
        noise_floor_dbfs: floor,
        seats: rows,
    })
}

/// `GET /api/reports/completeness?day=YYYY-MM-DD`.
pub async fn api_completeness(
    State(st): State<St>,
    Query(q): Query<DayQuery>,
) -> Result<Json<CompletenessReport>, AppError> {
    completeness(&st, q.day.as_deref()).await.map(Json)
}

/// The report as a table (the floor page's section).
fn report_table(r: &CompletenessReport) -> String {
    let rows: String = r
        .seats
        .iter()
        .map(|s| {
            format!(
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.1}</td><td class="num">{}</td></tr>"#,
                esc(&s.seat),
                s.announced,
                s.refused,
                s.calls,
                s.recorded,
                s.interrupted,
                s.one_sided,
                s.gaps,
                s.gap_ms as f64 / 1000.0,
                s.dropped_frames,
            )
        })
        .collect();
    format!(
        r#"<table class="results completeness"><thead><tr><th>Seat</th><th>Announced</th><th>Refused</th><th>Calls</th><th>Recorded</th><th>Interrupted</th><th>One-sided</th><th>Gaps</th><th>Gap s</th><th>Dropped frames</th></tr></thead><tbody>{rows}</tbody></table>"#
    )
}

/// `GET /floor?day=`: the live table (filled by floor.js) and the day's completeness report.
pub async fn page_floor(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<DayQuery>,
) -> Result<Html<String>, AppError> {
    let r = completeness(&st, q.day.as_deref())
        .await
        .map_err(|e| e.with_html(true))?;
    let body = format!(
        r#"<main id="floor">
<h1>Floor</h1>
<p id="floor-state" role="status">Loading the seats…</p>
<div id="floor-alarms"></div>
<table class="results floor"><thead><tr><th>Seat</th><th>State</th><th>Agent</th><th>Call</th><th>Agent level</th><th>Customer level</th><th>Dropped frames</th><th>Device</th><th>Alarms</th><th></th></tr></thead>
<tbody id="floor-seats"></tbody></table>
<noscript><p>The live table needs JavaScript; <a href="/api/floor">/api/floor</a> has the same data.</p></noscript>
<h2 id="completeness">Completeness on {day}</h2>
<form method="get" action="/floor#completeness" class="period">
<label>Day <input type="date" name="day" value="{day}"></label> <button>Show</button>
<a class="csv" href="/api/reports/completeness?day={day}">JSON</a></form>
<p class="hint">Calls by their start, {from} to {to} UTC; one-sided: a party's loudest 20 ms under {floor} dBFS throughout.</p>
{table}
</main>
<script src="/static/common.js"></script><script src="/static/floor.js"></script>"#,
        day = esc(&r.day),
        from = esc(&r.from_utc),
        to = esc(&r.to_utc),
        floor = r.noise_floor_dbfs,
        table = report_table(&r),
    );
    Ok(Html(page(Some(&id), "Floor", &body)))
}
