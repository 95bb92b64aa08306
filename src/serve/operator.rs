//! The operator's page (issue 14 item 6): `/agents/{agent}` and `/teams/{team}` for a period
//! (`?from=&to=`, default the last 30 days), with four areas — volume, quality, targets (the
//! team's goals: actual vs goal, met / near / missed, the four periods before) and complaints
//! — where every count links to the calls (or complaints) behind it: a search URL with the
//! filters filled in. `?format=csv` gives the same figures as CSV (audited as an export).
//! Charts are server-rendered SVG (serve::charts), as on the reports page.
//!
//! Who sees which page is decided on the server from the caller's scope (agents their own,
//! leads with team scope their team's and its members', admins and auditors all; 403
//! otherwise), by the same rule as `/api/figures`. This module computes no figure itself
//! (store::figures, store::targets) and writes nothing but the export's audit row.

use super::charts;
use super::error::AppError;
use super::figures_api::{may_see, period};
use super::html::{clock, esc, page, url_enc};
use super::identity::Identity;
use super::state::St;
use crate::store::figures::{self, Figures, Subject, DEFINITIONS};
use crate::store::targets::{self, Report, Verdict};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;

/// `GET /agents/{agent}`.
pub async fn agent_page(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(agent): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    render(st, id, Subject::Agent(agent), q).await
}

/// `GET /teams/{team}`.
pub async fn team_page(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(team): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    render(st, id, Subject::Team(team), q).await
}

struct Data {
    f: Figures,
    team: Option<String>,
    targets: Vec<Report>,
}

async fn render(
    st: St,
    id: Identity,
    subject: Subject,
    q: HashMap<String, String>,
) -> Result<Response, AppError> {
    let html = q.get("format").map(String::as_str) != Some("csv");
    let map = |e: AppError| e.with_html(html);
    if let Some(k) = q
        .keys()
        .find(|k| !["from", "to", "format"].contains(&k.as_str()))
    {
        return Err(map(AppError::bad_request(&format!(
            "unknown parameter {k:?}; use from, to, format=csv"
        ))));
    }
    let mut pq = q.clone();
    pq.remove("format");
    let (from, to) = period(&pq).map_err(map)?;
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .ok_or_else(|| map(AppError::api(StatusCode::FORBIDDEN, "not for API tokens")))?;
    let now = st.clock.utc_string();
    let (s2, f2, t2) = (subject.clone(), from.clone(), to.clone());
    let data = st
        .db
        .read(move |c| {
            may_see(c, &scope, &s2)?;
            let f = figures::compute(c, &s2, &f2, &t2, &now)?;
            let team: Option<String> = match &s2 {
                Subject::Team(t) => Some(t.clone()),
                Subject::Agent(a) => c
                    .query_row(
                        "SELECT team FROM users WHERE COALESCE(agent_id, username) = ?1
                           AND team IS NOT NULL ORDER BY id LIMIT 1",
                        [a],
                        |r| r.get(0),
                    )
                    .ok(),
                Subject::Campaign(_) => None,
            };
            // The team's goals, at the end of the period shown (or now, if earlier).
            let at = if now.as_str() < t2.as_str() {
                now.clone()
            } else {
                chrono::DateTime::parse_from_rfc3339(&t2)
                    .map(|t| {
                        crate::clock::format_utc(
                            t.with_timezone(&chrono::Utc) - chrono::Duration::milliseconds(1),
                        )
                    })
                    .unwrap_or_else(|_| t2.clone())
            };
            let targets = match &team {
                Some(t) => targets::report(c, &targets::Scope::Team(t.clone()), &at, &now)
                    .map_err(|e| AppError::bad_request(&e.to_string()))?,
                None => Vec::new(),
            };
            Ok::<_, AppError>(Data { f, team, targets })
        })
        .await
        .map_err(map)?;
    if !html {
        let (name, kind) = match &subject {
            Subject::Agent(a) => (a.clone(), "agent"),
            Subject::Team(t) => (t.clone(), "team"),
            Subject::Campaign(c) => (c.clone(), "campaign"),
        };
        let csv = to_csv(&data);
        let detail = serde_json::json!({kind: name, "from": from, "to": to, "rows": csv.lines().count() - 1});
        let ev_id = id.clone();
        st.db
            .write(move |c| {
                crate::store::audit::append(c, &ev_id.event("figures.export", None, detail))?;
                Ok::<_, AppError>(())
            })
            .await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{kind}-{}-{}.csv\"",
                        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                        &from[..10.min(from.len())]
                    ),
                ),
            ],
            csv,
        )
            .into_response());
    }
    Ok(Html(page(
        Some(&id),
        &title(&subject),
        &body(&subject, &data, &from, &to),
    ))
    .into_response())
}

fn title(s: &Subject) -> String {
    match s {
        Subject::Agent(a) => format!("Agent {a}"),
        Subject::Team(t) => format!("Team {t}"),
        Subject::Campaign(c) => format!("Campaign {c}"),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1} %"))
}

fn ms(v: Option<i64>) -> String {
    v.map_or("–".into(), clock)
}

/// Every figure as (name, value) in the CSV's order; empty for a null.
fn rows(f: &Figures) -> Vec<(&'static str, String)> {
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let oi = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut r = vec![
        ("calls_handled", f.calls_handled.to_string()),
        ("calls_inbound", f.calls_inbound.to_string()),
        ("calls_outbound", f.calls_outbound.to_string()),
        ("talk_ms", f.talk_ms.to_string()),
        ("hold_ms", f.hold_ms.to_string()),
        ("acw_ms", f.acw_ms.to_string()),
        ("handle_ms", f.handle_ms.to_string()),
        ("aht_ms", oi(f.aht_ms)),
        ("logged_in_ms", f.logged_in_ms.to_string()),
        ("calls_per_logged_in_hour", o(f.calls_per_logged_in_hour)),
        ("occupancy_percent", o(f.occupancy_percent)),
        ("positive_outcomes", f.positive_outcomes.to_string()),
        ("right_party_contacts", f.right_party_contacts.to_string()),
        ("conversion_percent", o(f.conversion_percent)),
        ("survey_attempts", f.survey_attempts.to_string()),
        ("survey_completes", f.survey_completes.to_string()),
        (
            "survey_response_rate_percent",
            o(f.survey_response_rate_percent),
        ),
        ("evaluations", f.evaluations.to_string()),
        ("qa_mean_percent", o(f.qa_mean_percent)),
        ("qa_pass_rate_percent", o(f.qa_pass_rate_percent)),
        ("compliance_checks", f.compliance_checks.to_string()),
        (
            "compliance_pass_rate_percent",
            o(f.compliance_pass_rate_percent),
        ),
    ];
    if let Some(k) = &f.complaints {
        r.extend([
            ("complaints_filed", k.filed.to_string()),
            ("complaints_justified", k.justified.to_string()),
            (
                "complaints_partly_justified",
                k.partly_justified.to_string(),
            ),
            ("complaints_not_justified", k.not_justified.to_string()),
            ("complaints_pending", k.pending.to_string()),
            ("complaints_overdue", k.overdue.to_string()),
        ]);
    }
    r
}

/// `figure,value,from_utc,to_utc` (RFC 4180: no field here holds a comma or quote).
fn to_csv(d: &Data) -> String {
    let mut out = String::from("figure,value,from_utc,to_utc\r\n");
    for (k, v) in rows(&d.f) {
        out.push_str(&format!("{k},{v},{},{}\r\n", d.f.from_utc, d.f.to_utc));
    }
    out
}

fn body(subject: &Subject, d: &Data, from: &str, to: &str) -> String {
    let f = &d.f;
    let period_q = format!("from={}&to={}", url_enc(from), url_enc(to));
    let who_q = match subject {
        Subject::Agent(a) => format!("agent={}", url_enc(a)),
        Subject::Team(t) => format!("team={}", url_enc(t)),
        Subject::Campaign(c) => format!("campaign={}", url_enc(c)),
    };
    let calls = |extra: &str| format!("/calls?{who_q}&{period_q}{extra}");
    let link = |href: String, id: &str, v: String| {
        format!(r#"<a id="{id}" href="{}">{}</a>"#, esc(&href), esc(&v))
    };
    let row = |label: &str, v: String, def: &str| {
        format!(
            r#"<tr><th>{}</th><td>{v}</td><td class="def">{}</td></tr>"#,
            esc(label),
            esc(DEFINITIONS.iter().find(|d| d.0 == def).map_or("", |d| d.1))
        )
    };
    let volume = [
        row(
            "Calls handled",
            link(calls(""), "fig-calls", f.calls_handled.to_string()),
            "calls_handled",
        ),
        row(
            "Inbound",
            link(
                calls("&direction=inbound"),
                "fig-inbound",
                f.calls_inbound.to_string(),
            ),
            "calls_handled",
        ),
        row(
            "Outbound",
            link(
                calls("&direction=outbound"),
                "fig-outbound",
                f.calls_outbound.to_string(),
            ),
            "calls_handled",
        ),
        row("Talk", clock(f.talk_ms), "talk_ms"),
        row("Hold", clock(f.hold_ms), "hold_ms"),
        row("After-call work", clock(f.acw_ms), "acw_ms"),
        row("AHT", ms(f.aht_ms), "aht_ms"),
        row("Logged in", clock(f.logged_in_ms), "logged_in_ms"),
        row(
            "Calls per logged-in hour",
            f.calls_per_logged_in_hour
                .map_or("–".into(), |v| format!("{v:.2}")),
            "calls_per_logged_in_hour",
        ),
        row("Occupancy", pct(f.occupancy_percent), "occupancy_percent"),
        row(
            "Positive outcomes",
            link(
                calls("&outcome_class=positive"),
                "fig-positive",
                f.positive_outcomes.to_string(),
            ),
            "conversion_percent",
        ),
        row(
            "Conversion",
            pct(f.conversion_percent),
            "conversion_percent",
        ),
        row(
            "Survey completes",
            link(
                calls("&outcome=complete"),
                "fig-survey",
                format!("{} of {}", f.survey_completes, f.survey_attempts),
            ),
            "survey_response_rate_percent",
        ),
        row(
            "Survey response rate",
            pct(f.survey_response_rate_percent),
            "survey_response_rate_percent",
        ),
    ]
    .concat();
    let quality = [
        row(
            "Evaluations",
            link(calls(""), "fig-evaluations", f.evaluations.to_string()),
            "qa_mean_percent",
        ),
        row("Mean QA score", pct(f.qa_mean_percent), "qa_mean_percent"),
        row(
            "QA pass rate",
            pct(f.qa_pass_rate_percent),
            "qa_pass_rate_percent",
        ),
        row(
            "Compliance checks",
            f.compliance_checks.to_string(),
            "compliance_pass_rate_percent",
        ),
        row(
            "Compliance pass rate",
            pct(f.compliance_pass_rate_percent),
            "compliance_pass_rate_percent",
        ),
    ]
    .concat();
    let complaints_q = match subject {
        Subject::Team(t) => format!("team={}", url_enc(t)),
        _ => who_q.clone(),
    };
    let k = f.complaints.clone().unwrap_or(figures::Complaints {
        filed: 0,
        justified: 0,
        partly_justified: 0,
        not_justified: 0,
        pending: 0,
        overdue: 0,
    });
    let clink = |extra: &str, id: &str, v: i64| {
        link(
            format!("/complaints?{complaints_q}&{period_q}{extra}"),
            id,
            v.to_string(),
        )
    };
    let complaints = [
        row(
            "Filed",
            clink("", "fig-complaints-filed", k.filed),
            "complaints_filed",
        ),
        row(
            "Justified (upheld)",
            format!(
                r#"<span id="fig-complaints-justified">{}</span>"#,
                k.justified
            ),
            "complaints_justified",
        ),
        row(
            "Partly justified",
            k.partly_justified.to_string(),
            "complaints_justified",
        ),
        row(
            "Not justified",
            k.not_justified.to_string(),
            "complaints_justified",
        ),
        row("Pending", k.pending.to_string(), "complaints_pending"),
        row(
            "Overdue",
            clink("&overdue=1", "fig-complaints-overdue", k.overdue),
            "complaints_overdue",
        ),
    ]
    .concat();
    let verdict = |v: Verdict| match v {
        Verdict::Met => "met",
        Verdict::Near => "near",
        Verdict::Missed => "missed",
        Verdict::NoData => "no data",
    };
    let targets: String = d
        .targets
        .iter()
        .map(|r| {
            let trend: Vec<String> = r
                .trend
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.actual.map_or("–".into(), |a| format!("{a:.1}")),
                        verdict(p.verdict)
                    )
                })
                .collect();
            format!(
                r#"<tr><th>{fig} per {per}</th><td>{goal} ({dir} is better, ±{tol})</td><td>{act}</td><td><span class="badge {v}">{v}</span></td><td>{trend}</td></tr>"#,
                fig = esc(&r.target.figure),
                per = r.target.period.as_str(),
                goal = r.target.goal,
                dir = r.target.direction.as_str(),
                tol = r.target.tolerance,
                act = r.current.actual.map_or("–".into(), |a| format!("{a:.1}")),
                v = verdict(r.current.verdict),
                trend = esc(&trend.join(" · ")),
            )
        })
        .collect();
    let targets_html = match (&d.team, targets.is_empty()) {
        (None, _) => "<p>No team: targets are set per team.</p>".to_owned(),
        (Some(t), true) => format!(
            "<p>Team {} has no targets (<code>callrec targets set --team …</code>).</p>",
            esc(t)
        ),
        (Some(t), false) => format!(
            r#"<p>Targets of team {}; the current period holds the end of the period shown.</p>
<table class="results" id="targets"><thead><tr><th>Figure</th><th>Goal</th><th>Actual</th><th>Verdict</th><th>Four periods before (oldest first)</th></tr></thead><tbody>{targets}</tbody></table>"#,
            esc(t)
        ),
    };
    let min = |v: i64| v as f64 / 60_000.0;
    let time_chart = charts::bar_chart(
        "Handle time (minutes)",
        "min",
        &[
            ("Talk".into(), min(f.talk_ms)),
            ("Hold".into(), min(f.hold_ms)),
            ("After-call work".into(), min(f.acw_ms)),
            ("Logged in".into(), min(f.logged_in_ms)),
        ],
        min(f.logged_in_ms.max(f.handle_ms)).max(1.0),
    );
    let complaints_chart = charts::bar_chart(
        "Complaints",
        "",
        &[
            ("Filed".into(), k.filed as f64),
            ("Justified".into(), k.justified as f64),
            ("Partly justified".into(), k.partly_justified as f64),
            ("Not justified".into(), k.not_justified as f64),
            ("Pending".into(), k.pending as f64),
        ],
        (k.filed as f64).max(1.0),
    );
    let quality_chart = charts::bar_chart(
        "Quality (%)",
        "%",
        &[
            ("Mean QA score".into(), f.qa_mean_percent.unwrap_or(0.0)),
            ("QA pass rate".into(), f.qa_pass_rate_percent.unwrap_or(0.0)),
            (
                "Compliance pass rate".into(),
                f.compliance_pass_rate_percent.unwrap_or(0.0),
            ),
        ],
        100.0,
    );
    let members = match subject {
        Subject::Team(_) => {
            let m: String = f
                .agents
                .iter()
                .map(|a| {
                    format!(
                        r#"<a href="/agents/{}?{period_q}">{}</a> "#,
                        url_enc(a),
                        esc(a)
                    )
                })
                .collect();
            format!("<p>Members: {m}</p>")
        }
        _ => String::new(),
    };
    let here = match subject {
        Subject::Agent(a) => format!("/agents/{}", url_enc(a)),
        Subject::Team(t) => format!("/teams/{}", url_enc(t)),
        Subject::Campaign(_) => String::new(),
    };
    format!(
        r#"<main id="operator" data-subject="{title}">
<h1>{title}</h1>
<form method="get" class="period"><label>From <input name="from" value="{from_v}"></label> <label>To <input name="to" value="{to_v}"></label> <button type="submit">Show</button> <a id="csv" href="{here}?{period_q}&amp;format=csv">CSV</a></form>
<p>Period [{from_e}, {to_e}) UTC.</p>
{members}
<section id="volume"><h2>Volume</h2>{time_chart}<table class="results">{volume}</table></section>
<section id="quality"><h2>Quality</h2>{quality_chart}<table class="results">{quality}</table></section>
<section id="targets-area"><h2>Targets</h2>{targets_html}</section>
<section id="complaints-area"><h2>Complaints</h2>{complaints_chart}<table class="results">{complaints}</table></section>
</main>"#,
        title = esc(&title(subject)),
        from_v = esc(from),
        to_v = esc(to),
        from_e = esc(from),
        to_e = esc(to),
        here = esc(&here),
        period_q = esc(&period_q),
    )
}
