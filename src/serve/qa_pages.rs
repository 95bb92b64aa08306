//! The reviewer's QA home page (`/qa`): their review queue (assignments dealt by sampling
//! plans, each linking to the call page with the plan's scorecard preselected), the calibration
//! sessions they take part in, the sampling plans and their draws (leads draw and create plans
//! here), and the scripts and scorecards in use.
//!
//! Only reads: every change goes through the JSON API (`qa.js` drives it with the CSRF header).

use super::calibration_api::summary_line;
use super::error::AppError;
use super::html::{esc, page, url_enc};
use super::identity::Identity;
use super::state::St;
use crate::store::search::Scope;
use crate::store::users::Role;
use crate::store::{calibration, compliance, qa, sampling};
use axum::extract::{Path, State};
use axum::response::Html;
use axum::Extension;
use rusqlite::{params, Connection};

/// One line of the queue: the assignment, its plan's scorecard, and whether the reviewer has
/// already submitted an evaluation of that call.
struct QueueRow {
    a: sampling::AssignmentRow,
    plan: String,
    scorecard: String,
    evaluated: bool,
}

fn queue(c: &Connection, reviewer: Option<&str>, scope: &Scope) -> Result<Vec<QueueRow>, AppError> {
    let mut plan_of = c.prepare_cached(
        "SELECT p.name, p.scorecard FROM sample_draws d JOIN sampling_plans p ON p.id = d.plan_id WHERE d.id = ?1",
    )?;
    let mut done = c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM evaluations WHERE call_id = ?1 AND reviewer = ?2 AND status != 'draft' AND calibration_id IS NULL)",
    )?;
    let mut rows = Vec::new();
    for a in sampling::assignments(c, None, reviewer, scope)? {
        if a.status != "open" {
            continue;
        }
        let (plan, scorecard): (String, String) =
            plan_of.query_row([a.draw_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let evaluated: bool = done.query_row(params![a.call_id, a.reviewer], |r| r.get(0))?;
        rows.push(QueueRow {
            a,
            plan,
            scorecard,
            evaluated,
        });
    }
    Ok(rows)
}

fn queue_table(rows: &[QueueRow], show_reviewer: bool) -> String {
    if rows.is_empty() {
        return r#"<p class="empty">Nothing assigned. A lead deals calls to reviewers by drawing a sampling plan below.</p>"#.into();
    }
    let th = if show_reviewer {
        "<th>Reviewer</th>"
    } else {
        ""
    };
    let body: String = rows
        .iter()
        .map(|r| {
            let who = if show_reviewer {
                format!("<td>{}</td>", esc(&r.a.reviewer))
            } else {
                String::new()
            };
            format!(
                r#"<tr data-assignment="{aid}" data-call="{call}"><td><a class="open" href="/calls/{call}?assignment={aid}&amp;scorecard={card_q}">Call {call}</a></td><td>{agent}</td>{who}<td>{plan}</td><td>{card}</td><td>{due}</td><td class="state">{state}</td><td><button type="button" class="swap" data-assignment="{aid}">Swap…</button></td></tr>"#,
                aid = r.a.id,
                call = r.a.call_id,
                card_q = esc(&url_enc(&r.scorecard)),
                agent = esc(&r.a.agent),
                plan = esc(&r.plan),
                card = esc(&r.scorecard),
                due = esc(r.a.due_utc.get(..10).unwrap_or(&r.a.due_utc)),
                state = if r.evaluated { "evaluated" } else { "to do" },
            )
        })
        .collect();
    format!(
        r#"<table class="results" id="queue"><thead><tr><th>Call</th><th>Agent</th>{th}<th>Plan</th><th>Scorecard</th><th>Due</th><th>State</th><th></th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

fn plans_table(plans: &[sampling::StoredPlan], lead: bool) -> String {
    if plans.is_empty() {
        return r#"<p class="empty">No sampling plans yet.</p>"#.into();
    }
    let body: String = plans
        .iter()
        .map(|p| {
            let filters = p
                .spec
                .filters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let draw = if lead {
                format!(
                    r#"<button type="button" class="draw" data-plan="{}">Draw now</button>"#,
                    p.id
                )
            } else {
                String::new()
            };
            format!(
                r#"<tr data-plan="{id}"><td>{name}</td><td>{filters}</td><td>{quota}</td><td>{reviewers}</td><td>{card}</td><td>{due} d</td><td>{draw}</td></tr>"#,
                id = p.id,
                name = esc(&p.spec.name),
                filters = esc(if filters.is_empty() { "all calls" } else { &filters }),
                quota = p
                    .spec
                    .quota_per_agent
                    .map(|q| format!("{q} per agent"))
                    .unwrap_or_else(|| "every match".into()),
                reviewers = esc(&p.spec.reviewers.join(", ")),
                card = esc(&p.spec.scorecard),
                due = p.spec.due_days,
            )
        })
        .collect();
    format!(
        r#"<table class="results" id="plans"><thead><tr><th>Plan</th><th>Filters</th><th>Quota</th><th>Reviewers</th><th>Scorecard</th><th>Due after</th><th></th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

const PLAN_FORM: &str = r#"<details><summary>New sampling plan</summary>
<form id="plan-form">
<label>Name <input name="name" required placeholder="Inbound weekly"></label>
<label>Filters <input name="filters" placeholder="direction=inbound&amp;min_duration_s=30"></label>
<label>Calls per agent <input name="quota_per_agent" type="number" min="1" placeholder="empty = every match"></label>
<label>Reviewers <input name="reviewers" required placeholder="qa1, qa2"></label>
<label>Scorecard <input name="scorecard" required value="inbound-service"></label>
<label>Due after (days) <input name="due_days" type="number" min="1" value="7"></label>
<button>Create plan</button>
<p class="hint">Filters use the search parameters (agent, seat or a seat group such as seat=seat01,seat02, box — the floor, at the hub — such as box=floor-1,floor-2, direction, campaign, min_duration_s, max_duration_s, min_dead_air_s, min_overtalk_s, tag, …) joined with &amp;. A targeted plan (“all calls with dead air over 15 s”) leaves the quota empty.</p>
</form></details>"#;

const CALIBRATION_FORM: &str = r#"<details><summary>New calibration session</summary>
<form id="calibration-form">
<label>Call id <input name="call_id" type="number" min="1" required></label>
<label>Scorecard <input name="scorecard" required value="inbound-service"></label>
<label>Reviewers <input name="reviewers" required placeholder="qa1, qa2, supervisor1"></label>
<label>Reference reviewer <input name="reference" placeholder="optional"></label>
<label>Due after (days) <input name="due_days" type="number" min="1" value="3"></label>
<button>Start session</button>
</form></details>"#;

/// `GET /qa`.
pub async fn home(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Html<String>, AppError> {
    let lead = matches!(id.role(), Some(Role::Admin | Role::Supervisor));
    let me = id.actor.clone();
    // The route is for reviewers' sessions; a token never gets here, and would see nothing.
    let scope = id
        .scope(st.cfg.server.reviewer_scope)
        .unwrap_or(Scope::Agent(String::new()));
    let (mine, all, plans, cals, scripts, cards) = st
        .db
        .read(move |c| {
            let all = if lead {
                Some(queue(c, None, &scope)?)
            } else {
                None
            };
            Ok::<_, AppError>((
                queue(c, Some(&me), &scope)?,
                all,
                sampling::list_plans(c)?,
                scoped_calibrations(c, (!lead).then_some(me.as_str()), &scope)?,
                compliance::list_scripts(c)?,
                qa::list_cards(c)?,
            ))
        })
        .await
        .map_err(|e| e.with_html(true))?;
    let cal_list: String = cals.iter().map(summary_line).collect();
    let scripts_list: String = scripts
        .iter()
        .map(|s| {
            format!(
                r#"<li>{name} <span class="muted">{slug} v{v}, {n} steps</span> · <a href="/api/scripts/{slug_q}?format=toml">TOML</a>{edit}</li>"#,
                edit = edit_link(lead, "script", &s.slug),
                name = esc(&s.name),
                slug = esc(&s.slug),
                slug_q = esc(&url_enc(&s.slug)),
                v = s.version,
                n = s.script.steps.len(),
            )
        })
        .collect();
    let cards_list: String = cards
        .iter()
        .map(|s| {
            format!(
                r#"<li>{name} <span class="muted">{slug} v{v}</span> · <a href="/api/scorecards/{slug_q}?format=toml">TOML</a>{edit}</li>"#,
                edit = edit_link(lead, "scorecard", &s.card.id),
                name = esc(&s.card.name),
                slug = esc(&s.card.id),
                slug_q = esc(&url_enc(&s.card.id)),
                v = s.card.version,
            )
        })
        .collect();
    let team = match all {
        Some(rows) => format!("<h2>Every open assignment</h2>{}", queue_table(&rows, true)),
        None => String::new(),
    };
    let body = format!(
        r#"<main id="qa" data-lead="{lead}">
<h1>Quality review</h1>
<h2>My queue</h2>
{mine}
{team}
<h2>Calibration sessions</h2>
<ul id="calibrations">{cal_list}</ul>{cal_form}
<h2>Sampling plans</h2>
{plans}{plan_form}
<p id="qa-msg" role="status"></p>
<h2>Scripts</h2><ul>{scripts_list}</ul>
<h2>Scorecards</h2><ul>{cards_list}</ul>
<p><a href="/reports">Reports</a></p>
</main>
<script src="/static/common.js" defer></script>
<script src="/static/qa.js" defer></script>"#,
        lead = u8::from(lead),
        mine = queue_table(&mine, false),
        cal_form = if lead { CALIBRATION_FORM } else { "" },
        plans = plans_table(&plans, lead),
        plan_form = if lead { PLAN_FORM } else { "" },
    );
    Ok(Html(page(Some(&id), "Quality review", &body)))
}

/// The calibration sessions listed on the page: a team lead sees only those on their team's
/// calls, as `GET /api/calibrations` answers.
fn scoped_calibrations(
    c: &Connection,
    reviewer: Option<&str>,
    scope: &Scope,
) -> Result<Vec<calibration::Calibration>, AppError> {
    let mut out = Vec::new();
    for cal in calibration::list(c, reviewer)? {
        let call = crate::store::get_call_row(c, cal.call_id)?;
        if crate::store::search::visible(c, &call, scope)? {
            out.push(cal);
        }
    }
    Ok(out)
}

fn edit_link(lead: bool, kind: &str, slug: &str) -> String {
    if lead {
        format!(
            r#" · <a class="edit" href="/qa/edit/{kind}/{}">Edit</a>"#,
            esc(&url_enc(slug))
        )
    } else {
        String::new()
    }
}

/// `GET /qa/edit/{kind}/{slug}`: a scorecard or script as TOML in a text editor; saving posts it
/// to the JSON API, which validates it and stores a new version when it changed (so evaluations
/// and checks keep the version they used). Changing `id`/`slug` in the text makes a new one.
pub async fn edit(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path((kind, slug)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    let s2 = slug.clone();
    let (text, version) = match kind.as_str() {
        "scorecard" => {
            st.db
                .read(move |c| {
                    let card = qa::latest_card(c, &s2)?
                        .ok_or_else(|| AppError::not_found(&format!("no scorecard {s2:?}")))?;
                    let text = crate::qa::scorecard::to_toml(&card.card)
                        .map_err(|e| AppError::bad_request(&e.to_string()))?;
                    Ok::<_, AppError>((text, i64::from(card.card.version)))
                })
                .await
        }
        "script" => {
            st.db
                .read(move |c| {
                    let s = compliance::latest_script(c, &s2)?
                        .ok_or_else(|| AppError::not_found(&format!("no script {s2:?}")))?;
                    let text = crate::qa::script::to_toml(&s.script)
                        .map_err(|e| AppError::bad_request(&e.to_string()))?;
                    Ok::<_, AppError>((text, s.version))
                })
                .await
        }
        _ => Err(AppError::not_found(
            "only scorecards and scripts can be edited here",
        )),
    }
    .map_err(|e| e.with_html(true))?;
    let body = format!(
        r#"<main id="qa-edit" data-kind="{kind}" data-slug="{slug}">
<h1>Edit {kind} {slug} <span class="muted">(version {version})</span></h1>
<p class="hint">TOML, as exported. Saving checks it and stores a new version if anything changed; evaluations and checks made earlier keep the version they used. Change the <code>{key}</code> to save a copy under a new name.</p>
<textarea id="edit-text" rows="30" cols="100" spellcheck="false">{text}</textarea>
<p><button type="button" id="edit-save">Save</button> <a href="/qa">Back to the review queue</a></p>
<p id="qa-msg" role="status"></p>
</main>
<script src="/static/common.js" defer></script>
<script src="/static/qa.js" defer></script>"#,
        kind = esc(&kind),
        slug = esc(&slug),
        key = if kind == "scorecard" { "id" } else { "slug" },
        text = esc(&text),
    );
    Ok(Html(page(Some(&id), &format!("Edit {slug}"), &body)))
}
