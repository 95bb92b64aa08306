//! The complaints register on the web: `/api/complaints…` (list, file, one complaint, each
//! step of its life cycle, the categories) and the pages `/complaints` and `/complaints/{id}`
//! (the latter embeds the call page's player, with `#t=` links to the moments the text names).
//!
//! Who may take which step, and which steps follow which, is `store::complaints`' decision,
//! made on the server for every request from the caller's account and scope; this module maps
//! requests to it and its refusals to status codes (404 for a complaint out of scope, as for
//! calls, 403 for a step the caller may not take, 409 for a step out of order). It never
//! decides a permission itself and never shows a complaint the store did not return.

use super::api::json_body;
use super::error::AppError;
use super::html::{esc, page, url_enc};
use super::identity::Identity;
use super::state::St;
use crate::store::complaints::{
    self, Complaint, ComplaintError, Filter, NewComplaint, Ruling, Status, Who,
};
use crate::store::users::Role;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::{Extension, Json};
use serde::Deserialize;
use std::collections::HashMap;

impl From<ComplaintError> for AppError {
    fn from(e: ComplaintError) -> Self {
        match e {
            ComplaintError::NotFound(_) => AppError::not_found(&e.to_string()),
            ComplaintError::Forbidden(_) => AppError::api(StatusCode::FORBIDDEN, &e.to_string()),
            ComplaintError::State { .. } => AppError::api(StatusCode::CONFLICT, &e.to_string()),
            ComplaintError::Bad(_) => AppError::bad_request(&e.to_string()),
            ComplaintError::Store(s) => s.into(),
        }
    }
}

/// The caller as the register's rules see them; API tokens take no part.
fn who(st: &St, id: &Identity) -> Result<Who, AppError> {
    id.user()
        .map(|u| Who::of(u, st.cfg.server.reviewer_scope))
        .ok_or_else(|| AppError::api(StatusCode::FORBIDDEN, "API tokens have no complaints"))
}

fn filter(q: &HashMap<String, String>) -> Result<Filter, AppError> {
    const KEYS: [&str; 7] = ["agent", "team", "call", "status", "overdue", "from", "to"];
    if let Some(k) = q.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(AppError::bad_request(&format!(
            "unknown parameter {k:?}; use {}",
            KEYS.join(", ")
        )));
    }
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bound = |k: &str| -> Result<Option<String>, AppError> {
        get(k)
            .map(|v| {
                crate::clock::parse_bound(v).ok_or_else(|| {
                    AppError::bad_request(&format!("{k} must be a date or RFC 3339 time"))
                })
            })
            .transpose()
    };
    let status = match get("status") {
        None => None,
        Some(s) => Some(
            [
                Status::Filed,
                Status::Acknowledged,
                Status::Investigating,
                Status::Ruled,
                Status::Appealed,
                Status::Final,
            ]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                AppError::bad_request(
                    "status must be filed, acknowledged, investigating, ruled, appealed or final",
                )
            })?,
        ),
    };
    Ok(Filter {
        agent: get("agent").map(str::to_owned),
        agents: None,
        call_id: get("call")
            .map(|c| {
                c.parse()
                    .map_err(|_| AppError::bad_request("call must be a call id"))
            })
            .transpose()?,
        status,
        overdue: matches!(get("overdue"), Some("1" | "true")),
        from_utc: bound("from")?,
        to_utc: bound("to")?,
    })
}

async fn list_for(
    st: &St,
    id: &Identity,
    q: HashMap<String, String>,
) -> Result<Vec<Complaint>, AppError> {
    let w = who(st, id)?;
    let mut f = filter(&q)?;
    let team = q
        .get("team")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let now = st.clock.utc_string();
    st.db
        .read(move |c| {
            if let Some(t) = team {
                f.agents = Some(crate::store::figures::team_members(c, &t)?);
            }
            Ok::<_, AppError>(complaints::list(c, &w, &f, &now)?)
        })
        .await
}

/// `GET /api/complaints?agent=&team=&call=&status=&overdue=1&from=&to=`: the complaints the
/// caller may see.
pub async fn list(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Complaint>>, AppError> {
    Ok(Json(list_for(&st, &id, q).await?))
}

/// `POST /api/complaints` (store::complaints::NewComplaint as JSON): 201 with the complaint.
pub async fn file(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    body: Bytes,
) -> Result<(StatusCode, Json<Complaint>), AppError> {
    let w = who(&st, &id)?;
    let n: NewComplaint = json_body(&body)?;
    let now = st.clock.utc_string();
    let days = st.cfg.complaints.response_days;
    st.db
        .write(move |c| {
            let k = complaints::file(c, &w, &n, days, &now, id.who())?;
            Ok::<_, AppError>((StatusCode::CREATED, Json(k)))
        })
        .await
}

/// `GET /api/complaints/{id}`.
pub async fn get(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(cid): Path<i64>,
) -> Result<Json<Complaint>, AppError> {
    let w = who(&st, &id)?;
    let now = st.clock.utc_string();
    st.db
        .read(move |c| Ok::<_, AppError>(Json(complaints::get(c, &w, cid, &now)?)))
        .await
}

/// `GET /api/complaint-categories`: `[[code, label], …]`.
pub async fn categories(State(st): State<St>) -> Result<Json<Vec<(String, String)>>, AppError> {
    st.db
        .read(|c| Ok::<_, AppError>(Json(complaints::categories(c)?)))
        .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StepBody {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    ruling: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Clone, Copy)]
enum Step {
    Acknowledge,
    Investigate,
    Respond,
    Rule,
    Appeal,
    Decide,
}

async fn take(
    st: St,
    id: Identity,
    cid: i64,
    step: Step,
    body: Bytes,
) -> Result<Json<Complaint>, AppError> {
    let w = who(&st, &id)?;
    let b: StepBody = if body.is_empty() {
        StepBody::default()
    } else {
        json_body(&body)?
    };
    let ruling = |b: &StepBody| -> Result<Ruling, AppError> {
        b.ruling.as_deref().and_then(Ruling::parse).ok_or_else(|| {
            AppError::bad_request("ruling must be justified, partly_justified or not_justified")
        })
    };
    let now = st.clock.utc_string();
    st.db
        .write(move |c| {
            let by = id.who();
            let text = b.text.clone().unwrap_or_default();
            let reason = b.reason.clone().unwrap_or_default();
            let k = match step {
                Step::Acknowledge => complaints::acknowledge(c, &w, cid, &now, by)?,
                Step::Investigate => complaints::investigate(c, &w, cid, &now, by)?,
                Step::Respond => complaints::respond(c, &w, cid, &text, &now, by)?,
                Step::Appeal => complaints::appeal(c, &w, cid, &text, &now, by)?,
                Step::Rule => complaints::rule(c, &w, cid, ruling(&b)?, &reason, &now, by)?,
                Step::Decide => complaints::decide(c, &w, cid, ruling(&b)?, &reason, &now, by)?,
            };
            Ok::<_, AppError>(Json(k))
        })
        .await
}

macro_rules! step_route {
    ($name:ident, $step:expr) => {
        pub async fn $name(
            State(st): State<St>,
            Extension(id): Extension<Identity>,
            Path(cid): Path<i64>,
            body: Bytes,
        ) -> Result<Json<Complaint>, AppError> {
            take(st, id, cid, $step, body).await
        }
    };
}

step_route!(acknowledge, Step::Acknowledge);
step_route!(investigate, Step::Investigate);
step_route!(respond, Step::Respond);
step_route!(rule, Step::Rule);
step_route!(appeal, Step::Appeal);
step_route!(decide, Step::Decide);

/// Text with every `m:ss` or `h:mm:ss` turned into a link to that moment of the player.
fn with_moments(text: &str) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let core = word.trim_end_matches([',', '.', ';', ')', ':']);
        let rest = &word[core.len()..];
        let parts: Vec<&str> = core.split(':').collect();
        let secs = (2..=3).contains(&parts.len())
            && parts[1..].iter().all(|p| p.len() == 2)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if secs {
            let s = parts
                .iter()
                .fold(0u64, |acc, p| acc * 60 + p.parse::<u64>().unwrap_or(0));
            out.push_str(&format!(
                r##"<a class="moment" href="#t={s}">{}</a>{}"##,
                esc(core),
                esc(rest)
            ));
        } else {
            out.push_str(&esc(word));
        }
    }
    out
}

fn ruling_label(r: Option<Ruling>) -> &'static str {
    match r {
        Some(Ruling::Justified) => "justified (upheld)",
        Some(Ruling::PartlyJustified) => "partly justified",
        Some(Ruling::NotJustified) => "not justified",
        None => "",
    }
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or(""))
}

/// `GET /complaints`: the complaints the caller may see, with a filing form for staff.
pub async fn page_list(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let rows = list_for(&st, &id, q).await.map_err(|e| e.with_html(true))?;
    let cats = st
        .db
        .read(|c| Ok::<_, AppError>(complaints::categories(c)?))
        .await
        .map_err(|e| e.with_html(true))?;
    let tr: String = rows
        .iter()
        .map(|k| {
            format!(
                r#"<tr data-complaint-id="{id}"><td><a href="/complaints/{id}">{id}</a></td><td><a href="/agents/{ae}">{agent}</a></td><td>{cat}</td><td><span class="badge {st}">{st}</span>{od}</td><td>{ruling}</td><td>{filed}</td><td>{due}</td></tr>"#,
                id = k.id,
                ae = url_enc(&k.agent),
                agent = esc(&k.agent),
                cat = esc(&k.category),
                st = k.status.as_str(),
                od = if k.overdue { r#" <span class="badge overdue">overdue</span>"# } else { "" },
                ruling = ruling_label(k.final_ruling),
                filed = esc(&k.filed_at_utc),
                due = esc(&k.due_at_utc),
            )
        })
        .collect();
    let can_file = id
        .role()
        .is_some_and(|r| matches!(r, Role::Admin | Role::Supervisor | Role::Qa));
    let form = if can_file {
        let options: String = cats
            .iter()
            .map(|(c, l)| format!(r#"<option value="{}">{}</option>"#, esc(c), esc(l)))
            .collect();
        format!(
            r#"<section id="file-complaint"><h2>File a complaint</h2>
<form id="complaint-form">
<label>Call id <input id="complaint-call" type="number" min="1"></label>
<label>or agent <input id="complaint-agent"></label> <label>at (UTC) <input id="complaint-at" placeholder="2026-12-01T10:00:00Z"></label>
<label>From <select id="complaint-source"><option value="customer">a customer</option><option value="department">my department</option></select></label>
<label>Category <select id="complaint-category">{options}</select></label>
<textarea id="complaint-text" maxlength="10000" required placeholder="What the complaint says"></textarea>
<button type="submit">File</button></form></section>"#
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<main id="complaints"><h1>Complaints</h1>
<p><a href="/complaints?overdue=1">Overdue only</a> · <a href="/complaints">All</a></p>
<table class="results"><thead><tr><th>#</th><th>Agent</th><th>Category</th><th>Status</th><th>Ruling</th><th>Filed (UTC)</th><th>Due (UTC)</th></tr></thead><tbody>{tr}</tbody></table>
{form}</main>
<script src="/static/common.js" defer></script>
<script src="/static/complaint.js" defer></script>"#
    );
    Ok(Html(page(Some(&id), "Complaints", &body)))
}

/// `GET /complaints/{id}[?t=seconds]`: the complaint, its steps, the call's player, and the
/// forms of the steps the caller's role may take (the server checks them again).
pub async fn page_one(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(cid): Path<i64>,
) -> Result<Html<String>, AppError> {
    let w = who(&st, &id).map_err(|e| e.with_html(true))?;
    let now = st.clock.utc_string();
    let k = st
        .db
        .read(move |c| Ok::<_, AppError>(complaints::get(c, &w, cid, &now)?))
        .await
        .map_err(|e| e.with_html(true))?;
    let duration_ms = match k.call_id {
        Some(call) => {
            st.db
                .read(move |c| {
                    Ok::<_, AppError>(
                        c.query_row(
                            "SELECT duration_ms, status FROM calls WHERE id = ?1",
                            [call],
                            |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, String>(1)?)),
                        )
                        .ok(),
                    )
                })
                .await?
        }
        None => None,
    };
    let player = match (k.call_id, duration_ms) {
        (Some(call), Some((dur, status))) if !matches!(status.as_str(), "garbage" | "deleted") => {
            super::pages::player_html(call, dur.unwrap_or(0))
        }
        (Some(call), _) => format!("<p>The recording of call {call} was deleted.</p>"),
        (None, _) => "<p>Filed against an agent and a time, not a call.</p>".into(),
    };
    let row = |label: &str, v: String| format!("<div><dt>{label}</dt><dd>{v}</dd></div>");
    let text = |v: &Option<String>| match v {
        Some(t) => with_moments(t),
        None if k.scrubbed_at_utc.is_some() => "<em>erased</em>".into(),
        None => String::new(),
    };
    let role = id.role();
    let lead = matches!(role, Some(Role::Admin | Role::Supervisor));
    let mut forms = String::new();
    let rulings = r#"<select name="ruling"><option value="justified">justified (upheld)</option><option value="partly_justified">partly justified</option><option value="not_justified">not justified</option></select>"#;
    if lead && k.status == Status::Filed {
        forms.push_str(r#"<form class="step" data-step="acknowledge"><button type="submit">Acknowledge</button></form>"#);
    }
    if lead && matches!(k.status, Status::Filed | Status::Acknowledged) {
        forms.push_str(r#"<form class="step" data-step="investigate"><button type="submit">Start investigating</button></form>"#);
    }
    if role == Some(Role::Agent) && k.status.open() && k.responded_at_utc.is_none() {
        forms.push_str(r#"<form class="step" data-step="respond"><textarea name="text" required maxlength="10000" placeholder="Your account of the call"></textarea><button type="submit">Respond</button></form>"#);
    }
    if lead && k.status.open() {
        forms.push_str(&format!(r#"<form class="step" data-step="rule">{rulings}<textarea name="reason" required maxlength="10000" placeholder="Reason"></textarea><button type="submit">Rule</button></form>"#));
    }
    if k.status == Status::Ruled && role != Some(Role::Auditor) {
        forms.push_str(r#"<form class="step" data-step="appeal"><textarea name="text" required maxlength="10000" placeholder="Grounds of appeal"></textarea><button type="submit">Appeal</button></form>"#);
    }
    if lead && k.status == Status::Appealed {
        forms.push_str(&format!(r#"<form class="step" data-step="decide">{rulings}<textarea name="reason" required maxlength="10000" placeholder="Reason"></textarea><button type="submit">Decide the appeal</button></form>"#));
    }
    let meta = [
        row(
            "Status",
            format!(
                r#"<span id="complaint-status" class="badge {s}">{s}</span>{od}"#,
                s = k.status.as_str(),
                od = if k.overdue {
                    r#" <span class="badge overdue">overdue</span>"#
                } else {
                    ""
                }
            ),
        ),
        row(
            "Agent",
            format!(
                r#"<a href="/agents/{}">{}</a>"#,
                url_enc(&k.agent),
                esc(&k.agent)
            ),
        ),
        row(
            "Call",
            k.call_id
                .map(|c| format!(r#"<a href="/calls/{c}">{c}</a>"#))
                .unwrap_or_default(),
        ),
        row("When (UTC)", esc(&k.occurred_at_utc)),
        row(
            "From",
            match &k.department {
                Some(d) => format!("department {}", esc(d)),
                None => "a customer".into(),
            },
        ),
        row("Category", esc(&k.category)),
        row(
            "Filed",
            format!("{} by {}", esc(&k.filed_at_utc), esc(&k.filed_by)),
        ),
        row("Final response due (UTC)", esc(&k.due_at_utc)),
        row(
            "Acknowledged",
            format!(
                "{} {}",
                opt(&k.acknowledged_at_utc),
                opt(&k.acknowledged_by)
            ),
        ),
        row(
            "Ruling",
            format!(
                r#"<span id="complaint-ruling">{}</span> {} {}"#,
                ruling_label(k.ruling),
                opt(&k.ruled_by),
                opt(&k.ruled_at_utc)
            ),
        ),
        row(
            "Appeal decision",
            format!("{} {}", ruling_label(k.appeal_ruling), opt(&k.decided_by)),
        ),
    ]
    .concat();
    let body = format!(
        r#"<main id="complaint" data-complaint-id="{cid}">
<h1>Complaint {cid}</h1>
<dl class="meta">{meta}</dl>
<section id="complaint-text"><h2>Complaint</h2><p>{ktext}</p></section>
<section><h2>Agent's response</h2><p>{resp}</p></section>
<section><h2>Reason of the ruling</h2><p>{reason}</p></section>
<section><h2>Appeal</h2><p>{appeal}</p><p>{areason}</p></section>
<section id="complaint-steps">{forms}</section>
{player}
</main>
<script src="/static/common.js" defer></script>
<script src="/static/complaint.js" defer></script>
<script src="/static/player.js" defer></script>"#,
        ktext = text(&k.text),
        resp = text(&k.response),
        reason = text(&k.ruling_reason),
        appeal = text(&k.appeal_text),
        areason = text(&k.appeal_reason),
    );
    Ok(Html(page(Some(&id), &format!("Complaint {cid}"), &body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_become_links_and_the_rest_is_escaped() {
        assert_eq!(
            with_moments("rude at 1:12, again 1:02:03. <b>"),
            r##"rude at <a class="moment" href="#t=72">1:12</a>, again <a class="moment" href="#t=3723">1:02:03</a>. &lt;b&gt;"##
        );
        assert_eq!(with_moments("ratio 10:1 a:bc"), "ratio 10:1 a:bc");
    }
}
