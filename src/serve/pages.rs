//! Server-rendered pages: search, call (with the player), audit log, users and API tokens, and
//! the static assets compiled into the binary.
//!
//! Pages render only what the JSON API would return to the same caller (they call the same
//! functions), so a page can never show more than the API allows. Every admin change is audited.

use super::api::{self, call_detail, run_search};
use super::error::AppError;
use super::html::{clock, esc, page, url_enc};
use super::identity::Identity;
use super::state::St;
use crate::store::audit;
use crate::store::users::{self, NewUser, Role};
use crate::store::CallStatus;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use std::collections::HashMap;

const COMMON_JS: &str = include_str!("assets/common.js");
const PLAYER_JS: &str = include_str!("assets/player.js");
const APP_CSS: &str = include_str!("assets/app.css");
const EVALUATE_JS: &str = include_str!("assets/evaluate.js");
const COMPLIANCE_JS: &str = include_str!("assets/compliance.js");
const OUTCOME_JS: &str = include_str!("assets/outcome.js");
const COMPLAINT_JS: &str = include_str!("assets/complaint.js");
const QA_JS: &str = include_str!("assets/qa.js");
const LIVE_JS: &str = include_str!("assets/live.js");
const FLOOR_JS: &str = include_str!("assets/floor.js");

/// `GET /static/{name}`: a fixed set of names; nothing is read from disk.
pub async fn static_asset(Path(name): Path<String>) -> Response {
    let (body, ctype) = match name.as_str() {
        "common.js" => (COMMON_JS, "text/javascript; charset=utf-8"),
        "player.js" => (PLAYER_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "evaluate.js" => (EVALUATE_JS, "text/javascript; charset=utf-8"),
        "compliance.js" => (COMPLIANCE_JS, "text/javascript; charset=utf-8"),
        "outcome.js" => (OUTCOME_JS, "text/javascript; charset=utf-8"),
        "complaint.js" => (COMPLAINT_JS, "text/javascript; charset=utf-8"),
        "qa.js" => (QA_JS, "text/javascript; charset=utf-8"),
        "live.js" => (LIVE_JS, "text/javascript; charset=utf-8"),
        "floor.js" => (FLOOR_JS, "text/javascript; charset=utf-8"),
        _ => return AppError::not_found("no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub async fn home() -> Redirect {
    Redirect::to("/calls")
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or(""))
}

fn select(name: &str, current: Option<&str>, options: &[(&str, &str)]) -> String {
    let opts: String = options
        .iter()
        .map(|(v, label)| {
            let sel = if Some(*v) == current { " selected" } else { "" };
            format!(r#"<option value="{v}"{sel}>{label}</option>"#)
        })
        .collect();
    format!(r#"<select name="{name}">{opts}</select>"#)
}

/// The query string for `params` with `page` replaced (pager links, sort links).
fn query_with(params: &HashMap<String, String>, key: &str, value: &str) -> String {
    let mut kv: Vec<(&String, &String)> = params
        .iter()
        .filter(|(k, v)| *k != key && !v.is_empty())
        .collect();
    kv.sort();
    let mut parts: Vec<String> = kv
        .iter()
        .map(|(k, v)| format!("{}={}", url_enc(k), url_enc(v)))
        .collect();
    parts.push(format!("{}={}", url_enc(key), url_enc(value)));
    parts.join("&")
}

pub async fn search(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let results = run_search(&st, &id, &q)
        .await
        .map_err(|e| e.with_html(true))?;
    let v = |k: &str| esc(q.get(k).map(String::as_str).unwrap_or(""));
    let status_options: Vec<(&str, &str)> = std::iter::once(("", "any"))
        .chain(CallStatus::ALL.iter().map(|c| (c.as_str(), c.as_str())))
        .collect();
    let class_options: Vec<(&str, &str)> = std::iter::once(("", "any"))
        .chain(
            crate::store::outcomes::Class::ALL
                .iter()
                .map(|c| (c.as_str(), c.as_str())),
        )
        .collect();
    let form = format!(
        r#"<form class="filters" method="get" action="/calls">
<label>Agent <input name="agent" value="{agent}"></label>
<label>From <input name="from" type="date" value="{from}"></label>
<label>To <input name="to" type="date" value="{to}"></label>
<label>Direction {direction}</label>
<label>Number starts with <input name="number" value="{number}" inputmode="tel"></label>
<label>Campaign <input name="campaign" value="{campaign}"></label>
<label>Min duration (s) <input name="min_duration_s" type="number" min="0" value="{mind}"></label>
<label>Max duration (s) <input name="max_duration_s" type="number" min="0" value="{maxd}"></label>
<label>Status {status}</label>
<label>Outcome <input name="outcome" value="{outcome}"></label>
<label>Outcome class {outcome_class}</label>
<label>Tag <input name="tag" value="{tag}"></label>
<label>Notes contain <input name="q" value="{text}"></label>
<label>Transcript says <input name="transcript" value="{transcript}"></label>
<label>Seat <input name="seat" value="{seat}"></label>
<label>Box (floor) <input name="box" value="{box_}"></label>
<label>Sort {sort}</label><label>Order {order}</label>
<button type="submit">Search</button> <a href="/calls">Clear</a></form>"#,
        agent = v("agent"),
        from = v("from"),
        to = v("to"),
        number = v("number"),
        campaign = v("campaign"),
        outcome = v("outcome"),
        outcome_class = select(
            "outcome_class",
            q.get("outcome_class").map(String::as_str),
            &class_options
        ),
        mind = v("min_duration_s"),
        maxd = v("max_duration_s"),
        tag = v("tag"),
        text = v("q"),
        transcript = v("transcript"),
        seat = v("seat"),
        box_ = v("box"),
        direction = select(
            "direction",
            q.get("direction").map(String::as_str),
            &[
                ("", "any"),
                ("inbound", "inbound"),
                ("outbound", "outbound")
            ]
        ),
        status = select(
            "status",
            q.get("status").map(String::as_str),
            &status_options
        ),
        sort = select(
            "sort",
            q.get("sort").map(String::as_str),
            &[
                ("started", "start time"),
                ("duration", "duration"),
                ("agent", "agent"),
                ("number", "number")
            ]
        ),
        order = select(
            "order",
            q.get("order").map(String::as_str),
            &[
                ("desc", "newest/largest first"),
                ("asc", "oldest/smallest first")
            ]
        ),
    );
    let rows: String = results
        .calls
        .iter()
        .map(|c| {
            let tags: String = c.tags.iter().map(|t| format!(r#"<span class="badge">{}</span> "#, esc(t))).collect();
            format!(
                r#"<tr><td><a href="/calls/{id}">{id}</a></td><td>{start}</td><td>{agent}</td><td>{dir}</td><td>{num}</td><td>{camp}</td><td class="num">{dur}</td><td><span class="badge {status}">{status}</span> {tags}</td><td>{seat}</td><td class="box">{box_}</td></tr>"#,
                id = c.id,
                start = esc(&c.started_at_utc.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>()),
                agent = opt(&c.meta.agent),
                dir = opt(&c.meta.direction),
                num = opt(&c.meta.remote_number),
                camp = opt(&c.meta.campaign),
                dur = clock(c.duration_ms),
                status = c.status,
                seat = esc(&c.seat_id),
                box_ = esc(&c.box_id),
            )
        })
        .collect();
    let count = if results.total_capped {
        format!("more than {}", results.total)
    } else {
        results.total.to_string()
    };
    let page_no = results.page + 1;
    let last_page = results.total.div_ceil(u64::from(results.per_page)).max(1);
    let mut pager = String::new();
    if page_no > 1 {
        pager.push_str(&format!(
            r#"<a rel="prev" href="/calls?{}">← Previous</a> "#,
            query_with(&q, "page", &(page_no - 1).to_string())
        ));
    }
    pager.push_str(&format!(
        "<span>Page {page_no} of {last_page}{}</span>",
        if results.total_capped { "+" } else { "" }
    ));
    if u64::from(page_no) < last_page
        || (results.total_capped && results.calls.len() as u32 == results.per_page)
    {
        pager.push_str(&format!(
            r#" <a rel="next" href="/calls?{}">Next →</a>"#,
            query_with(&q, "page", &(page_no + 1).to_string())
        ));
    }
    let table = if results.calls.is_empty() {
        r#"<p class="flash">No calls match. Widen the dates or clear a filter.</p>"#.to_owned()
    } else {
        format!(
            r#"<table class="results"><thead><tr><th>Call</th><th>Started (UTC)</th><th>Agent</th><th>Direction</th><th>Number</th><th>Campaign</th><th>Duration</th><th>Status</th><th>Seat</th><th>Box</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let body = format!(
        r#"<main><h1>Calls</h1>{form}<p id="result-count">{count} calls</p>{table}<nav class="pager">{pager}</nav></main>"#
    );
    Ok(Html(page(Some(&id), "Calls", &body)))
}

pub async fn call(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
) -> Result<Html<String>, AppError> {
    let d = call_detail(&st, &id, call_id)
        .await
        .map_err(|e| e.with_html(true))?;
    let c = &d.call;
    let can_note = id
        .role()
        .is_some_and(|r| super::access::REVIEWERS.contains(&r));
    let row = |k: &str, v: String| format!("<div><dt>{k}</dt><dd>{v}</dd></div>");
    let intervals: String = c
        .intervals
        .iter()
        .map(|i| {
            format!(
                "<li>{} {}–{} {}</li>",
                esc(&i.kind),
                clock(i.start_ms),
                i.end_ms.map(clock).unwrap_or_else(|| "…".into()),
                esc(&[i.by.clone(), i.reason.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "))
            )
        })
        .collect();
    let meta = [
        row("Started (UTC)", esc(&c.started_at_utc)),
        row("Duration", clock(c.duration_ms)),
        row("Agent", opt(&c.meta.agent)),
        row("Direction", opt(&c.meta.direction)),
        row("Number", opt(&c.meta.remote_number)),
        row("Campaign", opt(&c.meta.campaign)),
        row("External id", opt(&c.meta.external_id)),
        row("Outcome", outcome_html(c)),
        row("Seat", esc(&c.seat_id)),
        row("Box", esc(&c.box_id)),
        row(
            "Status",
            format!(r#"<span class="badge {s}">{s}</span>"#, s = c.status),
        ),
        row(
            "Tags",
            c.tags
                .iter()
                .map(|t| format!(r#"<span class="badge">{}</span>"#, esc(t)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        row("SHA-256", format!("<code>{}</code>", opt(&c.sha256))),
        row("Legal hold", holds_html(&d.legal_holds)),
        row("Talk (agent / customer)", metric_talk(d.metrics.as_ref())),
        row(
            "Dead air (≥ 5 s)",
            metric_pair(
                d.metrics.as_ref(),
                "dead_air_count",
                "dead_air_longest_ms",
                "longest",
            ),
        ),
        row(
            "Overtalk (≥ 1 s)",
            metric_pair(
                d.metrics.as_ref(),
                "overtalk_count",
                "overtalk_total_ms",
                "total",
            ),
        ),
        row("Agent response", metric_latency(d.metrics.as_ref())),
        row("Pauses and gaps", format!("<ul>{intervals}</ul>")),
    ]
    .concat();
    // Agents (on their own calls, the only ones they see) and leads set the outcome.
    let can_set_outcome = id
        .role()
        .is_some_and(|r| super::access::OUTCOME_SETTERS.contains(&r));
    let outcome_form = if can_set_outcome {
        let campaign = c.meta.campaign.clone();
        let (_, list) = st
            .db
            .read(move |conn| {
                crate::store::outcomes::list_for(conn, campaign.as_deref()).map_err(AppError::from)
            })
            .await
            .map_err(|e| e.with_html(true))?;
        outcome_form_html(c, &list)
    } else {
        String::new()
    };
    let note_form = if can_note {
        r#"<form id="note-form"><input id="note-text" maxlength="2000" placeholder="Note at the current moment" required><button type="submit">Add note</button></form>"#
    } else {
        ""
    };
    // Leads, auditors and admins download the evidence bundle (whole call or an excerpt).
    let export_form = match id.csrf() {
        Some(csrf)
            if id
                .role()
                .is_some_and(|r| super::access::EXPORTERS.contains(&r)) =>
        {
            format!(
                r#"<form id="export" method="post" action="/calls/{id}/export"><input type="hidden" name="csrf" value="{csrf}"><label>From (s) <input name="from" inputmode="decimal" size="6" placeholder="start"></label> <label>to (s) <input name="to" inputmode="decimal" size="6" placeholder="end"></label> <button type="submit">Export evidence (zip)</button> <small>Signed bundle, verifiable with sha256sum and openssl; leave both empty for the whole call. Audited.</small></form>"#,
                id = c.id,
                csrf = esc(csrf)
            )
        }
        _ => String::new(),
    };
    // While it records, leads may listen to the call live on its seat (serve::live).
    let live_link = if c.status == CallStatus::Recording
        && st.cfg.server.live_listen
        && st.hub.is_none()
        && id
            .role()
            .is_some_and(|r| super::access::SUPERVISORS.contains(&r))
    {
        format!(
            r#"<p id="live-link"><a href="/live/{seat}">Listen live</a> (recording now on seat {seat})</p>"#,
            seat = esc(&c.seat_id)
        )
    } else {
        String::new()
    };
    if let Some(del) = &d.deletion {
        return Ok(Html(page(
            Some(&id),
            &format!("Call {}", c.id),
            &deleted_call_body(c.id, del, &meta),
        )));
    }
    let body = format!(
        r##"<main id="call" data-call-id="{id}" data-duration-ms="{dur}" data-can-note="{can}">
<h1>Call {id}</h1>
{live_link}{player}{export_form}
<aside id="notes"><h2>Notes</h2><ul id="note-list"></ul>{note_form}</aside>
{outcome_form}
<section id="evaluations" data-role="{role}" data-agent-id="{agent_id}"><h2>Evaluations</h2></section>
<section id="compliance" data-role="{role}"><h2>Script compliance</h2></section>
<section id="transcript" data-role="{role}"><h2>Transcript</h2></section>
<dl class="meta">{meta}</dl>
</main>
<script src="/static/common.js" defer></script>
<script src="/static/player.js" defer></script>
<script src="/static/evaluate.js" defer></script>
<script src="/static/compliance.js" defer></script>
<script src="/static/outcome.js" defer></script>"##,
        id = c.id,
        dur = c.duration_ms,
        can = u8::from(can_note),
        player = player_section(c.id, c.duration_ms),
        role = id.role().map(|r| r.as_str()).unwrap_or_default(),
        agent_id = esc(id.user().map(|u| u.agent_id.as_str()).unwrap_or_default()),
    );
    Ok(Html(page(Some(&id), &format!("Call {}", c.id), &body)))
}

/// The player of the call page (player.js drives it): waveform, controls, the audio element.
fn player_section(call_id: i64, duration_ms: i64) -> String {
    format!(
        r##"<section id="player">
<canvas id="wave" height="160"></canvas>
<div class="controls">
<button id="play" type="button">Play</button>
<button id="back5" type="button">−5 s</button>
<button id="fwd5" type="button">+5 s</button>
<label>Speed <select id="speed"><option>0.5</option><option>0.75</option><option selected>1</option><option>1.25</option><option>1.5</option><option>2</option></select></label>
<span class="lane-ctl">Agent <button id="mute-agent" type="button" aria-pressed="false">Mute</button><button id="solo-agent" type="button" aria-pressed="false">Solo</button></span>
<span class="lane-ctl">Customer <button id="mute-customer" type="button" aria-pressed="false">Mute</button><button id="solo-customer" type="button" aria-pressed="false">Solo</button></span>
<span id="time">0:00 / {total}</span>
<a id="share" href="#t=0">Link to this moment</a>
<a href="/api/calls/{call_id}/audio?download=1">Download</a>
</div>
<audio id="audio" preload="metadata" src="/api/calls/{call_id}/audio"></audio>
<p class="kbd-help">Space play/pause · ←/→ 5 s · Shift+←/→ 1 s · [ ] speed · A/C mute agent/customer · N note</p>
</section>
"##,
        total = clock(duration_ms),
    )
}

/// The call page's player with the hooks player.js looks for (`#call[data-call-id]`, an empty
/// notes list), for pages that embed a call (the complaint page); notes are added on the call
/// page itself.
pub fn player_html(call_id: i64, duration_ms: i64) -> String {
    format!(
        r#"<div id="call" data-call-id="{call_id}" data-duration-ms="{duration_ms}" data-can-note="0">
{player}<aside id="notes"><h2>Notes</h2><ul id="note-list"></ul></aside></div>"#,
        player = player_section(call_id, duration_ms),
    )
}

/// The outcome form of the call page (outcome.js drives it): the campaign's outcomes, the
/// current one selected.
fn outcome_form_html(c: &crate::store::CallRow, list: &crate::store::outcomes::List) -> String {
    let options: String = list
        .outcome
        .iter()
        .map(|o| {
            let sel = if c.outcome.as_deref() == Some(o.code.as_str()) {
                " selected"
            } else {
                ""
            };
            format!(
                r#"<option value="{code}" data-amount="{amount}"{sel}>{label} ({class})</option>"#,
                code = esc(&o.code),
                amount = u8::from(o.amount),
                label = esc(&o.label),
                class = o.class.as_str(),
            )
        })
        .collect();
    let amount = c
        .outcome_amount
        .map(|a| format!("{a:.2}"))
        .unwrap_or_default();
    format!(
        r#"<section id="outcome" data-call-id="{id}"><h2>Outcome</h2>
<form id="outcome-form"><select id="outcome-code">{options}</select> <input id="outcome-amount" type="number" min="0" step="0.01" placeholder="amount" value="{amount}"> <button type="submit">Set outcome</button></form></section>"#,
        id = c.id,
    )
}

/// The call's current outcome: code, class and amount (store::outcomes), or an empty cell.
fn outcome_html(c: &crate::store::CallRow) -> String {
    let Some(code) = &c.outcome else {
        return String::new();
    };
    let amount = c
        .outcome_amount
        .map(|a| format!(" {a:.2}"))
        .unwrap_or_default();
    format!(
        r#"<span class="badge outcome" data-outcome="{code}">{code}</span> {class}{amount}"#,
        code = esc(code),
        class = opt(&c.outcome_class),
    )
}

fn holds_html(holds: &[crate::store::holds::Hold]) -> String {
    holds
        .iter()
        .map(|h| {
            format!(
                r#"<span class="badge hold">hold #{} since {} by {}: {}</span>"#,
                h.id,
                esc(&h.placed_at_utc),
                esc(&h.placed_by),
                esc(&h.reason)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A call whose recording is gone: no player, the deletion's when, why and who instead.
fn deleted_call_body(
    call_id: i64,
    del: &crate::store::lifecycle::DeletionInfo,
    meta: &str,
) -> String {
    format!(
        r#"<main id="call" data-call-id="{call_id}"><h1>Call {call_id}</h1>
<section id="deleted" class="flash"><p>The recording of this call was deleted ({kind}) on {when} by {who}: {reason}. The index keeps this row and the evidence ledger a tombstone with the deleted file's SHA-256.</p></section>
<dl class="meta">{meta}</dl></main>"#,
        kind = esc(&del.kind),
        when = esc(del
            .finished_at_utc
            .as_deref()
            .unwrap_or(&del.created_at_utc)),
        who = esc(&del.requested_by),
        reason = esc(&del.reason),
    )
}

fn metric_talk(m: Option<&serde_json::Value>) -> String {
    let Some(m) = m else { return "—".into() };
    let ms = |k: &str| m[k].as_i64().unwrap_or(0);
    let ratio = m["talk_ratio"]
        .as_f64()
        .map(|r| format!(" ({:.0}% agent)", r * 100.0))
        .unwrap_or_default();
    format!(
        "{} / {}{ratio}",
        clock(ms("agent_talk_ms")),
        clock(ms("customer_talk_ms"))
    )
}

fn metric_latency(m: Option<&serde_json::Value>) -> String {
    let secs = |k: &str| m.and_then(|m| m[k].as_f64()).map(|v| v / 1000.0);
    match (
        secs("response_latency_mean_ms"),
        secs("response_latency_max_ms"),
    ) {
        (Some(mean), Some(max)) => format!("mean {mean:.1} s · max {max:.1} s"),
        _ => "—".into(),
    }
}

/// "N × (label m:ss)" from a count key and a milliseconds key.
fn metric_pair(m: Option<&serde_json::Value>, count: &str, ms: &str, label: &str) -> String {
    let Some(m) = m else { return "—".into() };
    match (m[count].as_i64(), m[ms].as_i64()) {
        (Some(n), Some(v)) => format!("{n} × ({label} {})", clock(v)),
        (Some(n), None) => format!("{n}"),
        _ => "—".into(),
    }
}

pub async fn audit(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let f = api::parse_audit_filter(&q).map_err(|e| e.with_html(true))?;
    let rows = st
        .db
        .read(move |c| audit::list(c, &f).map_err(AppError::from))
        .await?;
    let (id2, q2) = (id.clone(), q.clone());
    st.db
        .write(move |c| {
            audit::append(
                c,
                &id2.event("audit.view", None, serde_json::json!({"filters": q2})),
            )
            .map_err(AppError::from)
        })
        .await?;
    let v = |k: &str| esc(q.get(k).map(String::as_str).unwrap_or(""));
    let trs: String = rows
        .iter()
        .map(|r| {
            format!(
                r#"<tr><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>"#,
                r.id,
                esc(&r.at_utc),
                esc(&r.actor),
                esc(&r.action),
                r.call_id.map(|c| format!(r#"<a href="/calls/{c}">{c}</a>"#)).unwrap_or_default(),
                esc(&r.detail),
                esc(r.ip.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let more = rows
        .last()
        .filter(|_| rows.len() == 100)
        .map(|r| {
            format!(
                r#"<nav class="pager"><a rel="next" href="/audit?{}">Older →</a></nav>"#,
                query_with(&q, "before", &r.id.to_string())
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<main><h1>Audit log</h1>
<p>Append-only and hash-chained: run <code>callrec audit verify</code> on the box to check that no row was changed or removed.</p>
<form class="filters" method="get" action="/audit">
<label>Actor <input name="actor" value="{actor}"></label>
<label>Action <input name="action" value="{action}" placeholder="play, login, note…"></label>
<label>Call <input name="call_id" value="{call}" inputmode="numeric"></label>
<label>From <input name="from" type="date" value="{from}"></label>
<label>To <input name="to" type="date" value="{to}"></label>
<button type="submit">Filter</button> <a href="/audit">Clear</a></form>
<table class="results"><thead><tr><th>#</th><th>Time (UTC)</th><th>Actor</th><th>Action</th><th>Call</th><th>Detail</th><th>Address</th></tr></thead><tbody>{trs}</tbody></table>{more}</main>"#,
        actor = v("actor"),
        action = v("action"),
        call = v("call_id"),
        from = v("from"),
        to = v("to"),
    );
    Ok(Html(page(Some(&id), "Audit log", &body)))
}

fn role_select(current: Role) -> String {
    let opts: Vec<(&str, &str)> = Role::ALL.iter().map(|r| (r.as_str(), r.as_str())).collect();
    select("role", Some(current.as_str()), &opts)
}

pub async fn users(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Html<String>, AppError> {
    users_page(&st, &id, None).await
}

async fn users_page(
    st: &St,
    id: &Identity,
    flash: Option<String>,
) -> Result<Html<String>, AppError> {
    let list = st
        .db
        .read(|c| users::list_users(c).map_err(AppError::from))
        .await?;
    let csrf = esc(id.csrf().unwrap_or_default());
    let rows: String = list
        .iter()
        .map(|u| {
            let name = esc(&u.username);
            let state = if u.disabled {
                "disabled"
            } else if u.locked_until_utc.as_deref().is_some_and(|t| *t > *crate::clock::utc_now()) {
                "locked"
            } else if u.must_change {
                "must change password"
            } else {
                "active"
            };
            format!(
                r#"<tr><td>{name}</td><td>{state}</td><td><form method="post" action="/admin/users/{uname}"><input type="hidden" name="csrf" value="{csrf}">{role} <input name="agent_id" value="{agent}" placeholder="agent id" size="10"> <input name="team" value="{team}" placeholder="team" size="8"> <button name="op" value="role">Save</button> <button name="op" value="reset">New one-time password</button> <button name="op" value="{toggle}">{toggle_label}</button></form></td></tr>"#,
                uname = url_enc(&u.username),
                role = role_select(u.role),
                agent = esc(&u.agent_id),
                team = opt(&u.team),
                toggle = if u.disabled { "enable" } else { "disable" },
                toggle_label = if u.disabled { "Enable" } else { "Disable" },
            )
        })
        .collect();
    let flash = flash
        .map(|f| format!(r#"<p class="flash">{}</p>"#, esc(&f)))
        .unwrap_or_default();
    let body = format!(
        r#"<main><h1>Users</h1>{flash}
<table class="results"><thead><tr><th>User</th><th>State</th><th>Role, agent id, team</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Add a user</h2>
<form class="filters" method="post" action="/admin/users"><input type="hidden" name="csrf" value="{csrf}">
<label>User name <input name="username" required pattern="[a-z0-9._-]{{1,64}}"></label>
<label>Role {role}</label>
<label>Agent id (as calls name the agent) <input name="agent_id"></label>
<label>Team <input name="team"></label>
<button type="submit">Add user</button></form>
<p>New users get a one-time password shown here once; they must change it at first login.</p></main>"#,
        role = role_select(Role::Qa),
    );
    Ok(Html(page(Some(id), "Users", &body)))
}

fn field(f: &HashMap<String, String>, k: &str) -> Option<String> {
    f.get(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub async fn add_user(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let username = field(&f, "username")
        .ok_or_else(|| AppError::bad_request("user name is required").with_html(true))?;
    let role = Role::parse(&field(&f, "role").unwrap_or_default())
        .map_err(|e| AppError::from(e).with_html(true))?;
    let (agent_id, team) = (field(&f, "agent_id"), field(&f, "team"));
    let pw = users::one_time_password()?;
    let (id2, pw2, name2) = (id.clone(), pw.clone(), username.clone());
    st.db
        .write(move |c| {
            users::add_user(
                c,
                &NewUser {
                    username: &name2,
                    role,
                    agent_id: agent_id.as_deref(),
                    team: team.as_deref(),
                    password: &pw2,
                    must_change: true,
                },
                id2.who(),
            )?;
            Ok::<_, AppError>(())
        })
        .await
        .map_err(|e| e.with_html(true))?;
    let html = users_page(
        &st,
        &id,
        Some(format!(
            "Created {username}. One-time password (shown once): {pw}"
        )),
    )
    .await?;
    Ok((StatusCode::CREATED, html).into_response())
}

pub async fn change_user(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let op = field(&f, "op").unwrap_or_default();
    if name == id.actor && matches!(op.as_str(), "disable" | "role") {
        return Err(AppError::bad_request(
            "you cannot disable yourself or change your own role; ask another admin",
        )
        .with_html(true));
    }
    let (id2, n2) = (id.clone(), name.clone());
    let flash = st
        .db
        .write(move |c| {
            let flash = match op.as_str() {
                "role" => {
                    let role = Role::parse(&field(&f, "role").unwrap_or_default())?;
                    let (agent_id, team) = (field(&f, "agent_id"), field(&f, "team"));
                    users::set_role(
                        c,
                        &n2,
                        role,
                        agent_id.as_deref(),
                        team.as_deref(),
                        id2.who(),
                    )?;
                    format!("Saved {n2}.")
                }
                "reset" => {
                    let pw = users::one_time_password()?;
                    users::reset_password(c, &n2, &pw, true, id2.who())?;
                    format!("New one-time password for {n2} (shown once): {pw}")
                }
                "disable" | "enable" => {
                    users::set_disabled(c, &n2, op == "disable", id2.who())?;
                    format!("{n2} is now {op}d.")
                }
                _ => {
                    return Err(AppError::bad_request(
                        "op must be role, reset, disable or enable",
                    ))
                }
            };
            Ok::<_, AppError>(flash)
        })
        .await
        .map_err(|e| e.with_html(true))?;
    // Roles, passwords and disabled flags are part of every cached session.
    st.sessions.clear();
    Ok(users_page(&st, &id, Some(flash)).await?.into_response())
}

pub async fn tokens(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Html<String>, AppError> {
    tokens_page(&st, &id, None).await
}

async fn tokens_page(
    st: &St,
    id: &Identity,
    flash: Option<String>,
) -> Result<Html<String>, AppError> {
    let list = st
        .db
        .read(|c| users::list_tokens(c).map_err(AppError::from))
        .await?;
    let csrf = esc(id.csrf().unwrap_or_default());
    let rows: String = list
        .iter()
        .map(|t| {
            let action = if t.revoked_at_utc.is_some() {
                "revoked".to_owned()
            } else {
                format!(
                    r#"<form method="post" action="/admin/tokens/{}/revoke"><input type="hidden" name="csrf" value="{csrf}"><button>Revoke</button></form>"#,
                    url_enc(&t.name)
                )
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                esc(&t.name),
                esc(&t.created_by),
                esc(&t.created_at_utc),
                opt(&t.last_used_utc)
            )
        })
        .collect();
    let flash = flash
        .map(|f| format!(r#"<p class="flash">{}</p>"#, esc(&f)))
        .unwrap_or_default();
    let body = format!(
        r#"<main><h1>API tokens</h1>{flash}
<p>One token per integration (CTI, softphone). Send it as <code>Authorization: Bearer &lt;token&gt;</code> to <code>/api/control/seats/&lt;seat&gt;/&lt;action&gt;</code>.</p>
<table class="results"><thead><tr><th>Name</th><th>Created by</th><th>Created</th><th>Last used</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<form class="filters" method="post" action="/admin/tokens"><input type="hidden" name="csrf" value="{csrf}">
<label>Integration name <input name="name" required pattern="[a-z0-9._-]{{1,64}}"></label><button type="submit">Create token</button></form></main>"#
    );
    Ok(Html(page(Some(id), "API tokens", &body)))
}

pub async fn add_token(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let name = field(&f, "name")
        .ok_or_else(|| AppError::bad_request("name is required").with_html(true))?;
    let (id2, n2) = (id.clone(), name.clone());
    let secret = st
        .db
        .write(move |c| {
            let (secret, _) = users::add_token(c, &n2, id2.who())?;
            Ok::<_, AppError>(secret)
        })
        .await
        .map_err(|e| e.with_html(true))?;
    let html = tokens_page(
        &st,
        &id,
        Some(format!(
            "Token for {name} (shown once, store it in the integration now): {secret}"
        )),
    )
    .await?;
    Ok((StatusCode::CREATED, html).into_response())
}

pub async fn revoke_token(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (id2, n2) = (id.clone(), name.clone());
    st.db
        .write(move |c| {
            users::revoke_token(c, &n2, id2.who())?;
            Ok::<_, AppError>(())
        })
        .await
        .map_err(|e| e.with_html(true))?;
    Ok(tokens_page(&st, &id, Some(format!("Revoked {name}.")))
        .await?
        .into_response())
}
