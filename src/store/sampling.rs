//! Sampling plans, their draws and the reviewers' queues (assignments).
//!
//! A draw stores its seed, the canonical candidate list and its hash, so anyone can re-run it
//! (`qa::sampling::draw`) and get the same sample: nobody can cherry-pick. A swap never deletes:
//! the old assignment becomes `swapped` with its reason and points at its replacement.

use super::search::{self, Query};
use super::StoreError;
use crate::qa::sampling::{self, Candidate, Draw, Plan, SampleError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("{0}")]
    Invalid(String),
    #[error("no {0}")]
    Missing(String),
}

impl From<rusqlite::Error> for PlanError {
    fn from(e: rusqlite::Error) -> Self {
        PlanError::Store(StoreError::Sql(e))
    }
}

/// A plan as the QA lead writes it. `filters` are the search page's parameters (agent, campaign,
/// direction, min/max_duration_s, min_dead_air_s, …), so a plan is "this search, sampled".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub name: String,
    #[serde(default)]
    pub filters: std::collections::BTreeMap<String, String>,
    /// Calls per agent per draw; absent = every matching call (a targeted plan).
    pub quota_per_agent: Option<u32>,
    /// User names of the reviewers.
    pub reviewers: Vec<String>,
    /// The scorecard reviewers use for these calls.
    pub scorecard: String,
    /// Days from the draw to the due date.
    #[serde(default = "default_due_days")]
    pub due_days: u32,
}

fn default_due_days() -> u32 {
    7
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredPlan {
    pub id: i64,
    #[serde(flatten)]
    pub spec: PlanSpec,
    pub created_by: String,
    pub created_at_utc: String,
}

pub fn create_plan(conn: &Connection, spec: &PlanSpec, by: &str) -> Result<i64, PlanError> {
    if spec.name.trim().is_empty() || spec.reviewers.is_empty() {
        return Err(PlanError::Invalid(
            "a plan needs a name and at least one reviewer".into(),
        ));
    }
    if spec.quota_per_agent == Some(0) {
        return Err(PlanError::Invalid(
            "quota_per_agent must be at least 1 (or absent for every matching call)".into(),
        ));
    }
    conn.execute(
        "INSERT INTO sampling_plans (name, filters, quota_per_agent, reviewers, scorecard, due_days, created_by, created_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            spec.name.trim(),
            serde_json::to_string(&spec.filters).unwrap_or_default(),
            spec.quota_per_agent,
            serde_json::to_string(&spec.reviewers).unwrap_or_default(),
            spec.scorecard,
            spec.due_days,
            by,
            crate::clock::utc_now()
        ],
    )
    .map_err(|e| PlanError::Invalid(format!("plan {:?}: {e}", spec.name)))?;
    Ok(conn.last_insert_rowid())
}

pub fn get_plan(conn: &Connection, id: i64) -> Result<StoredPlan, PlanError> {
    conn.query_row(
        "SELECT id, name, filters, quota_per_agent, reviewers, scorecard, due_days, created_by, created_at_utc
         FROM sampling_plans WHERE id = ?1",
        [id],
        |r| {
            let filters: String = r.get(2)?;
            let reviewers: String = r.get(4)?;
            Ok(StoredPlan {
                id: r.get(0)?,
                spec: PlanSpec {
                    name: r.get(1)?,
                    filters: serde_json::from_str(&filters).unwrap_or_default(),
                    quota_per_agent: r.get(3)?,
                    reviewers: serde_json::from_str(&reviewers).unwrap_or_default(),
                    scorecard: r.get(5)?,
                    due_days: r.get(6)?,
                },
                created_by: r.get(7)?,
                created_at_utc: r.get(8)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| PlanError::Missing(format!("sampling plan {id}")))
}

pub fn list_plans(conn: &Connection) -> Result<Vec<StoredPlan>, PlanError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM sampling_plans ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.into_iter().map(|id| get_plan(conn, id)).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct AssignmentRow {
    pub id: i64,
    pub draw_id: i64,
    pub call_id: i64,
    pub agent: String,
    pub reviewer: String,
    pub status: String,
    pub due_utc: String,
    pub swap_reason: Option<String>,
    pub replaced_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrawResult {
    pub draw_id: i64,
    pub seed: u64,
    pub candidates: usize,
    pub candidates_sha256: String,
    pub assignments: Vec<AssignmentRow>,
    /// (agent, available, quota) for agents with fewer calls than the quota.
    pub short: Vec<(String, u32, u32)>,
}

/// Reviewers as the draw sees them: by agent id, so nobody is dealt their own calls.
fn reviewer_agent_ids(
    conn: &Connection,
    reviewers: &[String],
) -> Result<Vec<(String, String)>, PlanError> {
    reviewers
        .iter()
        .map(|name| {
            let u = super::users::get_user(conn, name)
                .map_err(|e| PlanError::Invalid(e.to_string()))?
                .ok_or_else(|| PlanError::Invalid(format!("reviewer {name:?} is not a user")))?;
            Ok((name.clone(), u.agent_id))
        })
        .collect()
}

/// One draw: calls started in [since, until), the plan's filters, the seed, and the scope of
/// whoever draws.
pub struct DrawRequest<'a> {
    pub since_utc: &'a str,
    pub until_utc: &'a str,
    pub seed: u64,
    pub query: Query,
    pub scope: &'a search::Scope,
}

/// Draws a plan's sample for calls started in [since, until) with `seed`, and queues them.
pub fn draw_plan(
    conn: &Connection,
    plan_id: i64,
    draw: DrawRequest,
    by: &str,
) -> Result<DrawResult, PlanError> {
    let DrawRequest {
        since_utc,
        until_utc,
        seed,
        query,
        scope,
    } = draw;
    let plan = get_plan(conn, plan_id)?;
    let q = Query {
        since_utc: Some(since_utc.to_owned()),
        until_utc: Some(until_utc.to_owned()),
        ..query
    };
    // Only calls the drawing lead may see: a team lead's plan never reaches another team's
    // calls, nor counts them.
    let rows = search::candidates(conn, &q, scope, 100_000)?;
    let candidates: Vec<Candidate> = rows
        .into_iter()
        .map(|r| Candidate {
            call_id: r.call_id,
            agent: r.agent,
            started_at_utc: r.started_at_utc,
            duration_ms: r.duration_ms,
        })
        .collect();
    let reviewers = reviewer_agent_ids(conn, &plan.spec.reviewers)?;
    let draw = sampling::draw(
        &Plan {
            quota_per_agent: plan.spec.quota_per_agent,
            reviewers: reviewers.iter().map(|(_, a)| a.clone()).collect(),
            seed,
        },
        &candidates,
    )?;
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO sample_draws (plan_id, since_utc, until_utc, seed, candidates_sha256, candidates, drawn_by, drawn_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            plan_id,
            since_utc,
            until_utc,
            seed.to_string(),
            draw.candidates_sha256,
            serde_json::to_string(&candidates).unwrap_or_default(),
            by,
            crate::clock::utc_now()
        ],
    )?;
    let draw_id = tx.last_insert_rowid();
    let due = crate::clock::format_utc(
        chrono::Utc::now() + chrono::Duration::days(i64::from(plan.spec.due_days)),
    );
    for a in &draw.picked {
        let reviewer = reviewers
            .iter()
            .find(|(_, aid)| *aid == a.reviewer)
            .map_or(&a.reviewer, |(n, _)| n);
        tx.execute(
            "INSERT INTO assignments (draw_id, call_id, agent, reviewer, status, due_utc) VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
            params![draw_id, a.call_id, a.agent, reviewer, due],
        )?;
    }
    tx.commit()?;
    Ok(DrawResult {
        draw_id,
        seed,
        candidates: candidates.len(),
        candidates_sha256: draw.candidates_sha256,
        assignments: assignments(conn, Some(draw_id), None, &search::Scope::All)?,
        short: draw.short,
    })
}

/// Assignments, of one draw and/or one reviewer, limited to the calls `scope` may see: a
/// team lead's "every open assignment" and a reviewer's own queue list only their team's calls
/// under `reviewer_scope = "team"` (an assignment of a call they cannot open is no use to them,
/// and listing it would leak the call's id and agent).
pub fn assignments(
    conn: &Connection,
    draw_id: Option<i64>,
    reviewer: Option<&str>,
    scope: &search::Scope,
) -> Result<Vec<AssignmentRow>, PlanError> {
    let (cond, scope_args) = search::call_in_scope(scope, "call_id", 3);
    let mut args: Vec<rusqlite::types::Value> =
        vec![draw_id.into(), reviewer.map(str::to_owned).into()];
    args.extend(scope_args);
    let mut st = conn.prepare_cached(&format!(
        "SELECT id, draw_id, call_id, agent, reviewer, status, due_utc, swap_reason, replaced_by FROM assignments
         WHERE (?1 IS NULL OR draw_id = ?1) AND (?2 IS NULL OR reviewer = ?2) AND {cond} ORDER BY due_utc, id",
    ))?;
    let v = st
        .query_map(rusqlite::params_from_iter(&args), |r| {
            Ok(AssignmentRow {
                id: r.get(0)?,
                draw_id: r.get(1)?,
                call_id: r.get(2)?,
                agent: r.get(3)?,
                reviewer: r.get(4)?,
                status: r.get(5)?,
                due_utc: r.get(6)?,
                swap_reason: r.get(7)?,
                replaced_by: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Swaps one open assignment for another call of the same agent from the same draw's candidates
/// (never one already picked or swapped out). The reason is required and kept.
pub fn swap_assignment(
    conn: &Connection,
    assignment_id: i64,
    reason: &str,
    by: &str,
) -> Result<Option<AssignmentRow>, PlanError> {
    let all_rows = assignments(conn, None, None, &search::Scope::All)?;
    let a = all_rows
        .iter()
        .find(|r| r.id == assignment_id && r.status == "open")
        .ok_or_else(|| PlanError::Missing(format!("open assignment {assignment_id}")))?
        .clone();
    let (seed, cands): (String, String) = conn.query_row(
        "SELECT seed, candidates FROM sample_draws WHERE id = ?1",
        [a.draw_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let pool: Vec<Candidate> = serde_json::from_str(&cands).unwrap_or_default();
    let in_draw: Vec<&AssignmentRow> = all_rows.iter().filter(|r| r.draw_id == a.draw_id).collect();
    let swaps = in_draw.iter().filter(|r| r.status == "swapped").count() as u64;
    let draw = Draw {
        seed: seed.parse().unwrap_or(0),
        candidates_sha256: String::new(),
        picked: in_draw
            .iter()
            .filter(|r| r.status == "open")
            .map(|r| sampling::Assignment {
                call_id: r.call_id,
                agent: r.agent.clone(),
                reviewer: r.reviewer.clone(),
            })
            .collect(),
        short: Vec::new(),
    };
    // Calls swapped out earlier never come back.
    let swapped_out: Vec<i64> = in_draw
        .iter()
        .filter(|r| r.status == "swapped")
        .map(|r| r.call_id)
        .collect();
    let pool: Vec<Candidate> = pool
        .into_iter()
        .filter(|c| !swapped_out.contains(&c.call_id))
        .collect();
    // A fresh, reproducible seed per swap of this draw.
    let (_, added) = sampling::swap(
        &draw,
        a.call_id,
        reason,
        &pool,
        draw.seed.wrapping_add(swaps + 1),
    )?;
    let tx = conn.unchecked_transaction()?;
    let new_id = match &added {
        Some(n) => {
            tx.execute(
                "INSERT INTO assignments (draw_id, call_id, agent, reviewer, status, due_utc) VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
                params![a.draw_id, n.call_id, n.agent, a.reviewer, a.due_utc],
            )?;
            Some(tx.last_insert_rowid())
        }
        None => None,
    };
    tx.execute(
        "UPDATE assignments SET status = 'swapped', swap_reason = ?2, replaced_by = ?3 WHERE id = ?1",
        params![assignment_id, format!("{} (by {by})", reason.trim()), new_id],
    )?;
    tx.commit()?;
    Ok(match new_id {
        Some(id) => assignments(conn, Some(a.draw_id), None, &search::Scope::All)?
            .into_iter()
            .find(|r| r.id == id),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::Actor;
    use crate::store::search::{Query, Scope};
    use crate::store::testutil::{TempStore, TestCall};
    use crate::store::users::{self, NewUser, Role};

    /// Under `reviewer_scope = "team"` a lead's draw sees, deals and counts only the calls of
    /// agents in the lead's team, whatever the plan's filters.
    #[test]
    fn a_team_leads_draw_sees_and_counts_only_the_teams_calls(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        for (name, role, team) in [
            ("ann", Role::Agent, "red"),
            ("bob", Role::Agent, "blue"),
            ("lead", Role::Supervisor, "red"),
        ] {
            let new = NewUser {
                username: name,
                role,
                agent_id: None,
                team: Some(team),
                password: "correct horse battery",
                must_change: false,
            };
            users::add_user(&conn, &new, Actor::local("test"))?;
        }
        for agent in ["ann", "ann", "bob", "bob", "bob"] {
            TestCall::new()
                .agent(agent)
                .duration_ms(60_000)
                .sha256(&"a".repeat(64))
                .finalized("complete")
                .insert(&conn)?;
        }
        let spec = PlanSpec {
            name: "everyone".into(),
            filters: Default::default(),
            quota_per_agent: None,
            reviewers: vec!["lead".into()],
            scorecard: "complaint".into(),
            due_days: 7,
        };
        let plan = create_plan(&conn, &spec, "lead")?;
        let (from, to) = ("2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z");
        let team = Scope::Team("red".into());
        let draw = |scope| DrawRequest {
            since_utc: from,
            until_utc: to,
            seed: 7,
            query: Query::default(),
            scope,
        };
        let d = draw_plan(&conn, plan, draw(&team), "lead")?;
        assert_eq!(d.candidates, 2, "only ann's calls are candidates");
        assert_eq!(d.assignments.len(), 2);
        assert!(d.assignments.iter().all(|a| a.agent == "ann"), "{d:?}");
        let all = draw_plan(&conn, plan, draw(&Scope::All), "admin")?;
        assert_eq!(all.candidates, 5);
        Ok(())
    }
}
