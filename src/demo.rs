//! Demo content for `make demo` (`callrec qa seed-demo`): a lead, two reviewers and the two
//! demo agents, a sampling plan drawn with a fixed seed, evaluations of the drawn calls (one
//! acknowledged by its agent, one disputed), a script spot check and a complaint filed and
//! ruled justified — so a new user finds the QA workflow and the operator's record populated. Everything goes through the same store functions the web service
//! uses, and is audited as the CLI user.
//!
//! Only for a demo box's own index: it must never run from the recorder or the server.

use crate::qa::scorecard::{self, Answer, AnswerEntry, Kind};
use crate::qa::script::{self, Mark, StepMark};
use crate::store::users::{self, NewUser, Role};
use crate::store::{audit, compliance, qa, sampling};
use anyhow::Context;
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};

pub const PLAN_NAME: &str = "Demo: 2 calls per agent per week";
/// Fixed, so that every demo box draws the same way from the same calls (and the draw can be
/// re-run from the plan page to show it is reproducible).
pub const SEED: u64 = 20_261_127;

#[derive(Debug, Default)]
pub struct Seeded {
    /// New accounts and their one-time passwords.
    pub accounts: Vec<(String, Role, String)>,
    pub assignments: usize,
    pub evaluations: Vec<i64>,
    pub checks: Vec<i64>,
    /// The complaint filed (by qa1, for a customer) and ruled justified (by lead).
    pub complaint: Option<i64>,
}

/// Seeds once: `None` when the demo plan exists already (nothing is changed then).
pub fn seed(conn: &Connection, actor: &str) -> anyhow::Result<Option<Seeded>> {
    if sampling::list_plans(conn)?
        .iter()
        .any(|p| p.spec.name == PLAN_NAME)
    {
        return Ok(None);
    }
    qa::seed_default_cards(conn)?;
    compliance::seed_default_scripts(conn)?;
    let mut out = Seeded {
        accounts: accounts(conn)?,
        ..Default::default()
    };
    let plan = sampling::PlanSpec {
        name: PLAN_NAME.into(),
        filters: BTreeMap::from([("min_duration_s".to_owned(), "5".to_owned())]),
        quota_per_agent: Some(2),
        reviewers: vec!["qa1".into(), "qa2".into()],
        scorecard: "inbound-service".into(),
        due_days: 7,
    };
    let plan_id = sampling::create_plan(conn, &plan, actor)?;
    let filters: HashMap<String, String> = plan.filters.clone().into_iter().collect();
    let query = crate::store::search::parse_params(&filters)
        .map_err(|e| anyhow::anyhow!("demo plan filters: {e}"))?;
    let now = chrono::Utc::now();
    let (since, until) = (
        crate::clock::format_utc(now - chrono::Duration::days(7)),
        crate::clock::format_utc(now + chrono::Duration::minutes(1)),
    );
    let spec = sampling::DrawRequest {
        since_utc: &since,
        until_utc: &until,
        seed: SEED,
        query,
        scope: &crate::store::search::Scope::All,
    };
    let draw = sampling::draw_plan(conn, plan_id, spec, actor)?;
    out.assignments = draw.assignments.len();
    let card = qa::latest_card(conn, "inbound-service")?
        .context("the default scorecard inbound-service is missing")?;
    for (i, a) in draw.assignments.iter().take(4).enumerate() {
        let call = crate::store::get_call(conn, a.call_id)?;
        let duration_ms = call.duration_ms.max(1);
        let ev = qa::create_evaluation(conn, a.call_id, card.row_id, &a.reviewer, Some(&a.agent))?;
        // Every second evaluation misses one yes/no question, so reports have failures to show.
        let answers = answers_for(&card.card, duration_ms, i % 2 == 1);
        qa::save_answers(conn, ev, &answers, Some("Demo evaluation."))?;
        qa::submit(conn, ev)?;
        match i {
            0 => qa::acknowledge(conn, ev)?,
            1 => {
                if let Some(failed) = answers.iter().find(|x| x.value == Answer::No) {
                    qa::dispute(
                        conn,
                        ev,
                        &failed.q,
                        "I did this early in the call; please listen again.",
                        &a.agent,
                    )?;
                }
            }
            _ => {}
        }
        out.evaluations.push(ev);
    }
    if let Some(a) = draw.assignments.first() {
        out.checks.extend(spot_check(conn, a.call_id, &a.reviewer)?);
        out.complaint = Some(complaint(conn, a.call_id, actor)?);
    }
    audit::append(
        conn,
        &audit::Event {
            actor,
            action: "demo.seed",
            call_id: None,
            detail: serde_json::json!({"plan": plan_id, "seed": SEED, "assignments": out.assignments,
                                       "evaluations": out.evaluations, "checks": out.checks}),
            ip: None,
        },
    )?;
    Ok(Some(out))
}

/// A customer's complaint about `call`, filed by qa1 and ruled justified by lead, through the
/// register's own rules (store::complaints).
fn complaint(conn: &Connection, call: i64, actor: &str) -> anyhow::Result<i64> {
    use crate::store::complaints::{self, NewComplaint, Ruling, Source, Who};
    let who = |name: &str| -> anyhow::Result<Who> {
        let u = users::get_user(conn, name)?.with_context(|| format!("demo account {name}"))?;
        Ok(Who::of(&u, crate::config::ReviewerScope::All))
    };
    complaints::seed_categories(conn)?;
    let now = crate::clock::utc_now();
    let by = crate::store::audit::Actor::local(actor);
    let k = complaints::file(
        conn,
        &who("qa1")?,
        &NewComplaint {
            call_id: Some(call),
            agent: None,
            at_utc: None,
            source: Source::Customer,
            category: "wrong_information".into(),
            text: "The customer says the agent quoted the old tariff at 0:05.".into(),
        },
        complaints::DEFAULT_RESPONSE_DAYS,
        &now,
        by,
    )?;
    let lead = who("lead")?;
    complaints::acknowledge(conn, &lead, k.id, &now, by)?;
    complaints::rule(
        conn,
        &lead,
        k.id,
        Ruling::Justified,
        "The recording at 0:05 gives last year's tariff.",
        &now,
        by,
    )?;
    Ok(k.id)
}

fn accounts(conn: &Connection) -> anyhow::Result<Vec<(String, Role, String)>> {
    let wanted = [
        ("lead", Role::Supervisor, None),
        ("qa1", Role::Qa, None),
        ("qa2", Role::Qa, None),
        ("sam", Role::Agent, Some("sam")),
        ("ana", Role::Agent, Some("ana")),
    ];
    let mut made = Vec::new();
    for (name, role, agent_id) in wanted {
        if users::get_user(conn, name)?.is_some() {
            continue;
        }
        let password = users::one_time_password()?;
        users::add_user(
            conn,
            &NewUser {
                username: name,
                role,
                agent_id,
                team: Some("demo"),
                password: &password,
                must_change: true,
            },
            crate::store::audit::Actor::local("demo"),
        )?;
        made.push((name.to_owned(), role, password));
    }
    Ok(made)
}

/// Full marks, each heard at a moment spread over the call; optionally the first yes/no
/// question failed.
fn answers_for(card: &scorecard::Scorecard, duration_ms: i64, fail_one: bool) -> Vec<AnswerEntry> {
    let questions: Vec<_> = card.sections.iter().flat_map(|s| &s.questions).collect();
    let step_ms = duration_ms / (questions.len() as i64 + 1);
    let mut failed = !fail_one;
    questions
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let mut value = scorecard::full_marks_answer(card, &q.id)?;
            if !failed && q.kind == Kind::YesNo {
                value = Answer::No;
                failed = true;
            }
            Some(AnswerEntry {
                q: q.id.clone(),
                value,
                at_ms: Some(step_ms * (i as i64 + 1)),
                comment: None,
            })
        })
        .collect()
}

/// A submitted spot check with the inbound script: each step marked present at the earliest
/// moment its window and the steps before it allow, or N/A when the call is too short for it.
fn spot_check(conn: &Connection, call_id: i64, reviewer: &str) -> anyhow::Result<Option<i64>> {
    let Some(s) = compliance::latest_script(conn, "inbound-compliance")? else {
        return Ok(None);
    };
    let call = crate::store::get_call(conn, call_id)?;
    let duration_ms = call.duration_ms.max(0) as u64;
    let mut at_ms = 0u64;
    let marks: Vec<StepMark> = s
        .script
        .steps
        .iter()
        .map(|step| {
            let (lo, hi) =
                script::window_ms(&s.script, &step.key, duration_ms).unwrap_or((0, duration_ms));
            let t = at_ms.max(lo) + 500;
            if t <= hi && t <= duration_ms {
                at_ms = t;
                StepMark {
                    step: step.key.clone(),
                    mark: Mark::Present,
                    at_ms: Some(t),
                    comment: String::new(),
                }
            } else {
                StepMark {
                    step: step.key.clone(),
                    mark: Mark::Na,
                    at_ms: None,
                    comment: "The demo call is too short for this step.".into(),
                }
            }
        })
        .collect();
    let id = compliance::create_check(conn, call_id, s.id, reviewer)?;
    compliance::save_marks(conn, id, &marks, duration_ms)?;
    compliance::submit_check(conn, id, duration_ms)?;
    Ok(Some(id))
}
