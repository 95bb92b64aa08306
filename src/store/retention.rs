//! Retention: which recordings have outlived their keep period (`[retention]` in the config), and
//! deleting exactly those through `store::lifecycle`.
//!
//! A call's keep period is the longest `keep_days` of the rules that match it (a rule matches
//! when every field it gives — campaign, direction, tag, seat — equals the call's), else
//! `default_keep_days`, else forever. It counts from the call's start: a call started at
//! 2026-01-01T10:00Z with 30 days is due at 2026-01-31T10:00Z, not a millisecond earlier. Calls
//! on legal hold are listed as held and never deleted; calls still recording are never looked at.
//!
//! With `[archive]` configured (`RetentionConfig::require_archived`), a due call is deleted only
//! once its archive copy is confirmed (`archive_uploads.state = 'archived'`); the others are
//! listed as kept, not yet archived, and go at a later run. The archive's own keep period
//! ([`archive_keep_for`], [`archive_plan`]) comes from the same rules: a rule's
//! `archive_keep_days` (else its `keep_days`), else `[archive] keep_days`, else
//! `default_keep_days`, else forever. It dates the objects' S3 Object Lock retention and says
//! when `callrec archive retention run` removes them.
//!
//! Complaints (store::complaints) have their own keep period, `complaint_keep_days` (default 3
//! years from filing); a run removes the settled ones past it.
//!
//! Every function takes `now` so tests run on a fake clock. This module never deletes anything
//! itself: [`run`] hands the due calls to `lifecycle::delete_calls`, one deletion per rule.

use super::holds;
use super::lifecycle::{self, Deletion, DeletionKind, LifecycleError};
use super::StoreError;
use crate::clock::format_utc;
use crate::config::{RetentionConfig, RetentionRule};
use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One call whose keep period has passed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Due {
    pub call_id: i64,
    pub started_at_utc: String,
    pub bytes: i64,
    /// The rule that set the keep period (`default` for `default_keep_days`).
    pub rule: String,
    pub keep_days: u32,
    pub due_at_utc: String,
    /// The legal hold that keeps it, if any.
    pub held_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub now_utc: String,
    /// Due and not held: what a run deletes.
    pub delete: Vec<Due>,
    /// Due but on legal hold: kept.
    pub held: Vec<Due>,
    /// Due, not held, but its archive copy is not confirmed yet (only with `[archive]`): kept
    /// until the shipper has it in the store.
    pub not_archived: Vec<Due>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub plan: Plan,
    pub dry_run: bool,
    /// Deletion ids made by this run, one per rule.
    pub deletions: Vec<i64>,
    pub deleted_calls: usize,
    pub freed_bytes: i64,
    /// Settled complaints older than `complaint_keep_days` (default 3 years) removed by this
    /// run (store::complaints::purge); none in a dry run.
    pub deleted_complaints: Vec<i64>,
}

struct Call {
    id: i64,
    started_at_utc: String,
    bytes: i64,
    seat_id: String,
    direction: Option<String>,
    campaign: Option<String>,
    agent: Option<String>,
    remote_number: Option<String>,
    tags: Vec<String>,
}

fn matches(rule: &RetentionRule, c: &Call) -> bool {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    eq(&rule.campaign, c.campaign.as_deref())
        && eq(&rule.direction, c.direction.as_deref())
        && eq(&rule.seat, Some(c.seat_id.as_str()))
        && rule
            .tag
            .as_deref()
            .is_none_or(|t| c.tags.iter().any(|have| have == t))
}

/// The rule (name, days) that decides how long `c` is kept; None keeps it forever.
fn keep_for(cfg: &RetentionConfig, c: &Call) -> Option<(String, u32)> {
    let longest = cfg
        .rules
        .iter()
        .filter(|r| matches(r, c))
        .max_by_key(|r| r.keep_days);
    match longest {
        Some(r) => Some((r.name.clone(), r.keep_days)),
        None => cfg.default_keep_days.map(|d| ("default".to_owned(), d)),
    }
}

/// How long the archive keeps `c` (rule name, days); None keeps it forever.
fn archive_keep(
    cfg: &RetentionConfig,
    archive_keep_days: Option<u32>,
    c: &Call,
) -> Option<(String, u32)> {
    let longest = cfg
        .rules
        .iter()
        .filter(|r| matches(r, c))
        .map(|r| (r, r.archive_keep_days.unwrap_or(r.keep_days)))
        .max_by_key(|(_, d)| *d);
    match longest {
        Some((r, d)) => Some((r.name.clone(), d)),
        None => archive_keep_days
            .map(|d| ("archive.keep_days".to_owned(), d))
            .or_else(|| cfg.default_keep_days.map(|d| ("default".to_owned(), d))),
    }
}

/// The shortest keep period of any rule or the default: nothing younger can be due.
fn shortest_keep_days(cfg: &RetentionConfig) -> Option<u32> {
    cfg.rules
        .iter()
        .map(|r| r.keep_days)
        .chain(cfg.default_keep_days)
        .min()
}

fn finished_calls_started_before(
    conn: &Connection,
    before_utc: &str,
) -> Result<Vec<Call>, StoreError> {
    calls_where(
        conn,
        "status IN ('complete', 'interrupted') AND started_at_utc < ?1",
        before_utc,
    )
}

fn calls_where(conn: &Connection, filter: &str, arg: &str) -> Result<Vec<Call>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT id, started_at_utc, bytes, seat_id, direction, campaign, agent, remote_number
         FROM calls WHERE {filter} ORDER BY started_at_utc, id"
    ))?;
    let mut calls: Vec<Call> = st
        .query_map([arg], |r| {
            Ok(Call {
                id: r.get(0)?,
                started_at_utc: r.get(1)?,
                bytes: r.get(2)?,
                seat_id: r.get(3)?,
                direction: r.get(4)?,
                campaign: r.get(5)?,
                agent: r.get(6)?,
                remote_number: r.get(7)?,
                tags: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut tags = conn.prepare_cached("SELECT tag FROM call_tags WHERE call_id = ?1")?;
    for c in &mut calls {
        c.tags = tags
            .query_map([c.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(calls)
}

/// What retention would delete at `now` (nothing is changed).
pub fn plan(
    conn: &Connection,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let mut out = Plan {
        now_utc: format_utc(now),
        delete: Vec::new(),
        held: Vec::new(),
        not_archived: Vec::new(),
    };
    let Some(shortest) = shortest_keep_days(cfg) else {
        return Ok(out);
    };
    let horizon = format_utc(now - Duration::days(i64::from(shortest)));
    let active = holds::active(conn)?;
    for c in finished_calls_started_before(conn, &horizon)? {
        let Some(kept) = keep_for(cfg, &c) else {
            continue;
        };
        let Some(due) = due(c, kept, &active, now) else {
            continue;
        };
        if due.held_by.is_some() {
            out.held.push(due);
        } else if cfg.require_archived && !super::archive::is_archived(conn, due.call_id)? {
            out.not_archived.push(due);
        } else {
            out.delete.push(due);
        }
    }
    Ok(out)
}

/// The call as due for deletion when its keep period `(rule, days)`, counted from its start,
/// has passed at `now`, naming the first hold in force that covers it; None when it has not
/// passed (or the start time cannot be read).
fn due(
    c: Call,
    (rule, keep_days): (String, u32),
    active: &[holds::Hold],
    now: DateTime<Utc>,
) -> Option<Due> {
    let started = DateTime::parse_from_rfc3339(&c.started_at_utc).ok()?;
    let due_at = started.with_timezone(&Utc) + Duration::days(i64::from(keep_days));
    if due_at > now {
        return None;
    }
    let held_by = active
        .iter()
        .find(|h| h.covers(c.id, c.agent.as_deref(), c.remote_number.as_deref()))
        .map(|h| h.id);
    Some(Due {
        call_id: c.id,
        started_at_utc: c.started_at_utc,
        bytes: c.bytes,
        rule,
        keep_days,
        due_at_utc: format_utc(due_at),
        held_by,
    })
}

/// How long the archive keeps a call and until when (UTC text): (rule, days, retain-until).
/// None: kept forever (no rule, no `[archive] keep_days`, no `default_keep_days`), or the call
/// is unknown.
pub fn archive_keep_for(
    conn: &Connection,
    cfg: &RetentionConfig,
    archive_keep_days: Option<u32>,
    call_id: i64,
) -> Result<Option<(String, u32, String)>, StoreError> {
    let calls = calls_where(conn, "id = ?1", &call_id.to_string())?;
    let Some(c) = calls.first() else {
        return Ok(None);
    };
    let Some((rule, days)) = archive_keep(cfg, archive_keep_days, c) else {
        return Ok(None);
    };
    let Ok(started) = DateTime::parse_from_rfc3339(&c.started_at_utc) else {
        return Ok(None);
    };
    let until = started.with_timezone(&Utc) + Duration::days(i64::from(days));
    Ok(Some((rule, days, format_utc(until))))
}

/// Archived calls (objects still in the store) whose archive keep period has passed at `now`:
/// `delete` (no hold covers them) and `held` (a legal hold in force covers them). The local
/// call's status does not matter: local retention may have deleted it long ago.
pub fn archive_plan(
    conn: &Connection,
    cfg: &RetentionConfig,
    archive_keep_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    archive_plan_where(
        conn,
        cfg,
        archive_keep_days,
        now,
        "id IN (SELECT call_id FROM archive_uploads WHERE state = 'archived' AND removed_by IS NULL)
         AND started_at_utc < ?1",
    )
}

/// [`archive_plan`] at the fleet's hub: over the hub's calls whose objects it has not removed
/// yet (a hub call row goes to `deleted` when its objects go), by the same rules and the hub's
/// own legal holds.
pub fn hub_archive_plan(
    conn: &Connection,
    cfg: &RetentionConfig,
    archive_keep_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    archive_plan_where(
        conn,
        cfg,
        archive_keep_days,
        now,
        "id IN (SELECT call_id FROM hub_calls) AND status IN ('complete', 'interrupted')
         AND started_at_utc < ?1",
    )
}

fn archive_plan_where(
    conn: &Connection,
    cfg: &RetentionConfig,
    archive_keep_days: Option<u32>,
    now: DateTime<Utc>,
    filter: &str,
) -> Result<Plan, StoreError> {
    let mut out = Plan {
        now_utc: format_utc(now),
        delete: Vec::new(),
        held: Vec::new(),
        not_archived: Vec::new(),
    };
    let active = holds::active(conn)?;
    let calls = calls_where(conn, filter, &out.now_utc)?;
    for c in calls {
        let Some(kept) = archive_keep(cfg, archive_keep_days, &c) else {
            continue;
        };
        let Some(due) = due(c, kept, &active, now) else {
            continue;
        };
        if due.held_by.is_some() {
            out.held.push(due);
        } else {
            out.delete.push(due);
        }
    }
    Ok(out)
}

/// Plans, and unless `dry_run` deletes the due calls: one deletion (and one reason in each
/// tombstone and audit row) per rule. Pending deletions from an earlier crash are finished first.
pub fn run(
    conn: &Connection,
    storage_dir: &Path,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
    actor: &str,
    dry_run: bool,
) -> Result<Outcome, LifecycleError> {
    let now_utc = format_utc(now);
    if !dry_run {
        lifecycle::finish_garbage(conn, storage_dir, &now_utc)?;
    }
    let plan = plan(conn, cfg, now)?;
    let mut out = Outcome {
        dry_run,
        deletions: Vec::new(),
        deleted_calls: 0,
        freed_bytes: 0,
        deleted_complaints: Vec::new(),
        plan,
    };
    if dry_run {
        return Ok(out);
    }
    out.deleted_complaints = super::complaints::purge(
        conn,
        cfg.complaint_keep_days
            .unwrap_or(super::complaints::DEFAULT_KEEP_DAYS),
        now,
        actor,
    )?;
    let mut by_rule: BTreeMap<(&str, u32), Vec<i64>> = BTreeMap::new();
    for d in &out.plan.delete {
        by_rule
            .entry((d.rule.as_str(), d.keep_days))
            .or_default()
            .push(d.call_id);
    }
    let mut made = Vec::new();
    for ((rule, keep_days), ids) in by_rule {
        let reason = format!("retention rule {rule:?}: kept {keep_days} days");
        let marked = lifecycle::delete_calls(
            conn,
            storage_dir,
            &ids,
            &Deletion {
                kind: DeletionKind::Retention,
                reason: &reason,
                actor,
                now_utc: &now_utc,
            },
        )?;
        out.deleted_calls += marked.calls.len();
        out.freed_bytes += marked.calls.iter().map(|c| c.bytes).sum::<i64>();
        made.push(marked.deletion_id);
    }
    out.deletions = made;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    /// With `[archive]` (`require_archived`), a due call goes only once its archive copy is
    /// confirmed; the disk guard's candidates likewise. Without, both calls go.
    #[test]
    fn with_an_archive_only_archived_calls_are_deleted() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let now_utc = "2026-12-05T10:00:00.000Z";
        let mut ids = Vec::new();
        for content in ["a", "bb"] {
            let c = TestCall::default()
                .file(content)
                .finalized("complete")
                .insert_in(&conn, dir.path())?;
            ids.push(c.id);
        }
        let (a, b) = (ids[0], ids[1]);
        crate::store::archive::enqueue(
            &conn,
            &[(a, "k/a.opus".into()), (b, "k/b.opus".into())],
            now_utc,
        )?;
        crate::store::archive::mark_archived(&conn, a, "\"etag\"", Some("v1"), now_utc)?;
        let mut cfg = RetentionConfig {
            default_keep_days: Some(1),
            ..RetentionConfig::default()
        };
        let later = Utc::now() + Duration::days(3650);
        let ids_of = |v: &[Due]| v.iter().map(|d| d.call_id).collect::<Vec<_>>();
        let p = plan(&conn, &cfg, later)?;
        assert_eq!(
            (ids_of(&p.delete), ids_of(&p.not_archived)),
            (vec![a, b], vec![])
        );
        assert_eq!(
            lifecycle::pressure_candidates(&conn, 10, false)?
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            vec![a, b]
        );
        cfg.require_archived = true;
        let p = plan(&conn, &cfg, later)?;
        assert_eq!(
            (ids_of(&p.delete), ids_of(&p.not_archived)),
            (vec![a], vec![b])
        );
        assert_eq!(
            lifecycle::pressure_candidates(&conn, 10, true)?
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            vec![a]
        );
        let out = run(&conn, dir.path(), &cfg, later, "test", false)?;
        assert_eq!(out.deleted_calls, 1);
        assert_eq!(
            crate::store::get_call(&conn, a)?.status.to_string(),
            "deleted"
        );
        assert_eq!(
            crate::store::get_call(&conn, b)?.status.to_string(),
            "complete"
        );
        // The archive keeps it by [archive] keep_days when no rule matches.
        let k = archive_keep_for(&conn, &cfg, Some(2555), b)?.map(|k| (k.0, k.1));
        assert_eq!(k, Some(("archive.keep_days".into(), 2555)));
        Ok(())
    }

    fn call(campaign: Option<&str>, tags: &[&str]) -> Call {
        Call {
            id: 1,
            started_at_utc: String::new(),
            bytes: 0,
            seat_id: "seat01".into(),
            direction: Some("inbound".into()),
            campaign: campaign.map(str::to_owned),
            agent: None,
            remote_number: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn rule(name: &str, keep_days: u32) -> RetentionRule {
        RetentionRule {
            name: name.into(),
            keep_days,
            archive_keep_days: None,
            campaign: None,
            direction: None,
            tag: None,
            seat: None,
        }
    }

    #[test]
    fn the_longest_matching_rule_wins_then_the_default_then_forever() {
        let cfg = RetentionConfig {
            default_keep_days: Some(365),
            rules: vec![
                RetentionRule {
                    campaign: Some("sales".into()),
                    ..rule("sales", 90)
                },
                RetentionRule {
                    tag: Some("complaint".into()),
                    ..rule("complaints", 730)
                },
                RetentionRule {
                    direction: Some("inbound".into()),
                    seat: Some("seat02".into()),
                    ..rule("seat02-in", 30)
                },
            ],
            require_archived: false,
            complaint_keep_days: None,
        };
        assert_eq!(
            keep_for(&cfg, &call(Some("sales"), &[])),
            Some(("sales".into(), 90))
        );
        assert_eq!(
            keep_for(&cfg, &call(Some("sales"), &["complaint"])),
            Some(("complaints".into(), 730)),
            "a complaint in sales is kept as long as the complaint rule says"
        );
        assert_eq!(
            keep_for(&cfg, &call(None, &[])),
            Some(("default".into(), 365))
        );
        assert_eq!(
            keep_for(&cfg, &call(None, &[])).map(|k| k.1),
            Some(365),
            "seat02-in needs both fields: seat01 does not match"
        );
        let forever = RetentionConfig {
            default_keep_days: None,
            ..cfg
        };
        assert_eq!(keep_for(&forever, &call(None, &[])), None);
        assert_eq!(shortest_keep_days(&forever), Some(30));
        assert_eq!(shortest_keep_days(&RetentionConfig::default()), None);
    }
}
