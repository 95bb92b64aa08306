//! The complaints register (issue 14 item 5): a complaint about an agent's call (or an agent
//! and a time), filed by staff for a customer or by a supervisor for their department, with a
//! category and text, and its life cycle:
//!
//! ```text
//! filed → acknowledged → investigating → ruled ──────────────▶ (final unless appealed)
//!   (the agent may respond until ruled)      └─▶ appealed ─▶ final (decided by another lead)
//! ```
//!
//! The ruling is justified (upheld), partly justified or not justified, always with a reason;
//! one appeal, by the agent concerned or by whoever filed it, decided by a lead other than the
//! one who ruled (the appeal ruling replaces the first). The final-response deadline is
//! `filed + [complaints] response_days` (default 8 weeks, as the UK FCA's DISP 1.6.2 R asks of
//! regulated firms); a complaint not ruled by then is overdue.
//!
//! Who may do what is decided here, for the web service and the command line alike, from the
//! caller's role and call scope ([`Who`]); so is every state transition. Every step is audited
//! in its own transaction, the personal text under `text`/`reason` keys (hashed by
//! `audit::append`). Complaint text is personal data: [`scrub_for_calls`] (erasure) empties it;
//! [`purge`] (retention, default 3 years after filing) removes whole complaints once final.
//! This module never deletes a complaint that is not yet final, and never shows one to a
//! caller outside its scope.

use super::audit::{self, Actor};
use super::search::Scope;
use super::users::Role;
use super::StoreError;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// Final-response deadline when `[complaints] response_days` is not set: 8 weeks (FCA DISP
/// 1.6.2 R).
pub const DEFAULT_RESPONSE_DAYS: u32 = 56;
/// How long a final complaint is kept when `[retention] complaint_keep_days` is not set:
/// 3 years from filing.
pub const DEFAULT_KEEP_DAYS: u32 = 3 * 365;
/// Longest complaint, response, reason or appeal text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Filed,
    Acknowledged,
    Investigating,
    Ruled,
    Appealed,
    Final,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Filed => "filed",
            Status::Acknowledged => "acknowledged",
            Status::Investigating => "investigating",
            Status::Ruled => "ruled",
            Status::Appealed => "appealed",
            Status::Final => "final",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "acknowledged" => Status::Acknowledged,
            "investigating" => Status::Investigating,
            "ruled" => Status::Ruled,
            "appealed" => Status::Appealed,
            "final" => Status::Final,
            _ => Status::Filed,
        }
    }
    /// Before the ruling: the deadline runs and the agent may respond.
    pub fn open(self) -> bool {
        matches!(
            self,
            Status::Filed | Status::Acknowledged | Status::Investigating
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ruling {
    /// Upheld.
    Justified,
    PartlyJustified,
    NotJustified,
}

impl Ruling {
    pub fn as_str(self) -> &'static str {
        match self {
            Ruling::Justified => "justified",
            Ruling::PartlyJustified => "partly_justified",
            Ruling::NotJustified => "not_justified",
        }
    }
    pub fn parse(s: &str) -> Option<Ruling> {
        match s {
            "justified" | "upheld" => Some(Ruling::Justified),
            "partly_justified" => Some(Ruling::PartlyJustified),
            "not_justified" => Some(Ruling::NotJustified),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Staff filed it for a customer.
    Customer,
    /// A supervisor filed it for their department (their team).
    Department,
}

/// Who acts, as the permission checks see them.
#[derive(Debug, Clone)]
pub struct Who {
    /// The account name (compared with `filed_by`, `ruled_by`).
    pub name: String,
    pub role: Role,
    /// The agent id calls carry for this person.
    pub agent: String,
    pub team: Option<String>,
    /// Which calls they may see (store::search).
    pub scope: Scope,
}

impl Who {
    /// An account acting under `[server] reviewer_scope`.
    pub fn of(user: &super::users::User, reviewer: crate::config::ReviewerScope) -> Who {
        Who {
            name: user.username.clone(),
            role: user.role,
            agent: user.agent_id.clone(),
            team: user.team.clone(),
            scope: Scope::of(user, reviewer),
        }
    }
}

/// What to file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComplaint {
    /// The call complained about; or give `agent` and `at_utc`.
    #[serde(default)]
    pub call_id: Option<i64>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub at_utc: Option<String>,
    pub source: Source,
    pub category: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Complaint {
    pub id: i64,
    pub call_id: Option<i64>,
    pub agent: String,
    pub occurred_at_utc: String,
    pub source: Source,
    pub department: Option<String>,
    pub category: String,
    /// None once erased.
    pub text: Option<String>,
    pub status: Status,
    pub filed_by: String,
    pub filed_at_utc: String,
    pub due_at_utc: String,
    /// Not ruled and past its deadline (as of the `now` it was read with).
    pub overdue: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at_utc: Option<String>,
    pub investigating_by: Option<String>,
    pub investigating_at_utc: Option<String>,
    pub response: Option<String>,
    pub responded_at_utc: Option<String>,
    pub ruling: Option<Ruling>,
    pub ruling_reason: Option<String>,
    pub ruled_by: Option<String>,
    pub ruled_at_utc: Option<String>,
    pub appeal_text: Option<String>,
    pub appealed_by: Option<String>,
    pub appealed_at_utc: Option<String>,
    pub appeal_ruling: Option<Ruling>,
    pub appeal_reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_utc: Option<String>,
    /// The ruling that stands: the appeal's once decided, else the first.
    pub final_ruling: Option<Ruling>,
    pub scrubbed_at_utc: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComplaintError {
    /// Also when it exists but is outside the caller's scope: nothing is revealed.
    #[error("no complaint {0}")]
    NotFound(i64),
    #[error("{0}")]
    Forbidden(String),
    #[error("complaint {id} is {}: {action} is not possible now", status.as_str())]
    State {
        id: i64,
        status: Status,
        action: &'static str,
    },
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ComplaintError {
    fn from(e: rusqlite::Error) -> Self {
        ComplaintError::Store(StoreError::Sql(e))
    }
}

/// The shipped complaint categories (code, label), installed by [`seed_categories`].
pub const DEFAULT_CATEGORIES: &[(&str, &str)] = &[
    ("rudeness", "Rudeness or attitude"),
    ("wrong_information", "Wrong or misleading information"),
    ("mis_selling", "Mis-selling or pressure to buy"),
    ("not_resolved", "Issue not resolved / no follow-up"),
    ("billing", "Billing or tariff error"),
    ("order_error", "Order taken wrongly"),
    ("data_protection", "Data protection or privacy"),
    ("wait_time", "Waiting time or transfers"),
    (
        "process_breach",
        "Process breach (reported by a department)",
    ),
    ("other", "Other"),
];

/// Installs the shipped categories when there are none yet (first start); returns how many.
pub fn seed_categories(conn: &Connection) -> Result<usize, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let n: i64 = tx.query_row("SELECT count(*) FROM complaint_categories", [], |r| {
        r.get(0)
    })?;
    if n > 0 {
        return Ok(0);
    }
    for (i, (code, label)) in DEFAULT_CATEGORIES.iter().enumerate() {
        tx.execute(
            "INSERT INTO complaint_categories (code, label, position) VALUES (?1, ?2, ?3)",
            params![code, label, i as i64],
        )?;
    }
    audit::append(
        &tx,
        &Actor::local("system").event(
            "complaints.seed",
            None,
            serde_json::json!({"categories": DEFAULT_CATEGORIES.iter().map(|c| c.0).collect::<Vec<_>>()}),
        ),
    )?;
    tx.commit()?;
    Ok(DEFAULT_CATEGORIES.len())
}

/// The categories, in order: (code, label).
pub fn categories(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT code, label FROM complaint_categories ORDER BY position, code")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn in_scope(conn: &Connection, scope: &Scope, agent: &str) -> Result<bool, StoreError> {
    Ok(match scope {
        Scope::All => true,
        Scope::Agent(a) => a == agent,
        // A team's members as the team scope and store::figures count them.
        Scope::Team(t) => conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE team = ?1
                              AND COALESCE(agent_id, username) = ?2)",
            params![t, agent],
            |r| r.get(0),
        )?,
    })
}

fn is_lead(who: &Who) -> bool {
    matches!(who.role, Role::Admin | Role::Supervisor)
}

/// Whether `who` may see `c`: admins and auditors all; leads and reviewers those in their
/// scope and those they filed; agents those about themselves.
fn may_see(conn: &Connection, who: &Who, c: &Complaint) -> Result<bool, StoreError> {
    Ok(match who.role {
        Role::Admin | Role::Auditor => true,
        Role::Agent => c.agent == who.agent,
        Role::Supervisor | Role::Qa => {
            c.filed_by == who.name || in_scope(conn, &who.scope, &c.agent)?
        }
    })
}

fn text_ok(what: &str, s: &str) -> Result<String, ComplaintError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ComplaintError::Bad(format!("{what} must not be empty")));
    }
    if t.chars().count() > MAX_TEXT_CHARS {
        return Err(ComplaintError::Bad(format!(
            "{what} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(t.to_owned())
}

fn parse_utc(s: &str) -> Result<DateTime<Utc>, ComplaintError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ComplaintError::Bad(format!("{s:?} is not an RFC 3339 time")))
}

const COLUMNS: &str = "id, call_id, agent, occurred_at_utc, source, department, category, text,
    status, filed_by, filed_at_utc, due_at_utc, acknowledged_by, acknowledged_at_utc,
    investigating_by, investigating_at_utc, response, responded_at_utc, ruling, ruling_reason,
    ruled_by, ruled_at_utc, appeal_text, appealed_by, appealed_at_utc, appeal_ruling,
    appeal_reason, decided_by, decided_at_utc, scrubbed_at_utc";

fn row_to(r: &rusqlite::Row, now_utc: &str) -> rusqlite::Result<Complaint> {
    let source: String = r.get(4)?;
    let status = Status::parse(&r.get::<_, String>(8)?);
    let ruling: Option<String> = r.get(18)?;
    let appeal: Option<String> = r.get(25)?;
    let ruling = ruling.as_deref().and_then(Ruling::parse);
    let appeal_ruling = appeal.as_deref().and_then(Ruling::parse);
    let due: String = r.get(11)?;
    Ok(Complaint {
        id: r.get(0)?,
        call_id: r.get(1)?,
        agent: r.get(2)?,
        occurred_at_utc: r.get(3)?,
        source: if source == "department" {
            Source::Department
        } else {
            Source::Customer
        },
        department: r.get(5)?,
        category: r.get(6)?,
        text: r.get(7)?,
        status,
        filed_by: r.get(9)?,
        filed_at_utc: r.get(10)?,
        overdue: status.open() && now_utc >= due.as_str(),
        due_at_utc: due,
        acknowledged_by: r.get(12)?,
        acknowledged_at_utc: r.get(13)?,
        investigating_by: r.get(14)?,
        investigating_at_utc: r.get(15)?,
        response: r.get(16)?,
        responded_at_utc: r.get(17)?,
        ruling,
        ruling_reason: r.get(19)?,
        ruled_by: r.get(20)?,
        ruled_at_utc: r.get(21)?,
        appeal_text: r.get(22)?,
        appealed_by: r.get(23)?,
        appealed_at_utc: r.get(24)?,
        appeal_ruling,
        appeal_reason: r.get(26)?,
        decided_by: r.get(27)?,
        decided_at_utc: r.get(28)?,
        final_ruling: appeal_ruling.or(ruling),
        scrubbed_at_utc: r.get(29)?,
    })
}

fn load(conn: &Connection, id: i64, now_utc: &str) -> Result<Option<Complaint>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM complaints WHERE id = ?1"),
            [id],
            |r| row_to(r, now_utc),
        )
        .optional()?)
}

/// One complaint, if `who` may see it (else NotFound, as if it did not exist).
pub fn get(
    conn: &Connection,
    who: &Who,
    id: i64,
    now_utc: &str,
) -> Result<Complaint, ComplaintError> {
    match load(conn, id, now_utc)? {
        Some(c) if may_see(conn, who, &c)? => Ok(c),
        _ => Err(ComplaintError::NotFound(id)),
    }
}

/// Which complaints to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub agent: Option<String>,
    /// Complaints about these agents (a team's members).
    pub agents: Option<Vec<String>>,
    pub call_id: Option<i64>,
    pub status: Option<Status>,
    pub overdue: bool,
    /// `occurred_at_utc` in `[from, to)`.
    pub from_utc: Option<String>,
    pub to_utc: Option<String>,
}

/// The complaints `who` may see that match `f`, newest first (at most 1000).
pub fn list(
    conn: &Connection,
    who: &Who,
    f: &Filter,
    now_utc: &str,
) -> Result<Vec<Complaint>, ComplaintError> {
    let agents_json = f
        .agents
        .as_ref()
        .map(|a| serde_json::to_string(a).unwrap_or_else(|_| "[]".into()));
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM complaints
         WHERE (?1 IS NULL OR agent = ?1)
           AND (?2 IS NULL OR agent IN (SELECT value FROM json_each(?2)))
           AND (?3 IS NULL OR call_id = ?3)
           AND (?4 IS NULL OR status = ?4)
           AND (?5 IS NULL OR occurred_at_utc >= ?5)
           AND (?6 IS NULL OR occurred_at_utc < ?6)
           AND (?7 = 0 OR (status IN ('filed', 'acknowledged', 'investigating')
                           AND due_at_utc <= ?8))
         ORDER BY id DESC LIMIT 1000"
    ))?;
    let rows: Vec<Complaint> = st
        .query_map(
            params![
                f.agent,
                agents_json,
                f.call_id,
                f.status.map(Status::as_str),
                f.from_utc,
                f.to_utc,
                f.overdue,
                now_utc
            ],
            |r| row_to(r, now_utc),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for c in rows {
        if may_see(conn, who, &c)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// Files a complaint (module docs for who may); returns it.
pub fn file(
    conn: &Connection,
    who: &Who,
    n: &NewComplaint,
    response_days: u32,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    let text = text_ok("the complaint text", &n.text)?;
    let department = match n.source {
        Source::Customer => {
            if !matches!(who.role, Role::Admin | Role::Supervisor | Role::Qa) {
                return Err(ComplaintError::Forbidden(
                    "complaints are filed by staff (admin, supervisor, qa)".into(),
                ));
            }
            None
        }
        Source::Department => match (&who.role, &who.team) {
            (Role::Supervisor, Some(t)) => Some(t.clone()),
            _ => {
                return Err(ComplaintError::Forbidden(
                    "a department's complaint is filed by a supervisor of that department (a supervisor account with a team)".into(),
                ))
            }
        },
    };
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let known: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM complaint_categories WHERE code = ?1)",
        [&n.category],
        |r| r.get(0),
    )?;
    if !known {
        let all: Vec<String> = categories(&tx)?.into_iter().map(|c| c.0).collect();
        return Err(ComplaintError::Bad(format!(
            "unknown category {:?}; use one of {}",
            n.category,
            all.join(", ")
        )));
    }
    let (agent, occurred) = match (n.call_id, &n.agent, &n.at_utc) {
        (Some(id), None, None) => {
            let row: Option<(Option<String>, String)> = tx
                .query_row(
                    "SELECT agent, started_at_utc FROM calls WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                Some((Some(a), at)) if !a.is_empty() => (a, at),
                Some(_) => {
                    return Err(ComplaintError::Bad(format!(
                        "call {id} has no agent: file against an agent and a time instead"
                    )))
                }
                None => return Err(ComplaintError::Bad(format!("no call with id {id}"))),
            }
        }
        (None, Some(a), Some(at)) if !a.trim().is_empty() => (
            a.trim().to_owned(),
            crate::clock::format_utc(parse_utc(at)?),
        ),
        _ => {
            return Err(ComplaintError::Bad(
                "give call_id, or agent and at_utc (not both)".into(),
            ))
        }
    };
    // Staff filing for a customer file within their scope; a department may complain about
    // any agent (that is its point).
    if n.source == Source::Customer && !in_scope(&tx, &who.scope, &agent)? {
        return Err(ComplaintError::Forbidden(format!(
            "agent {agent} is outside your scope"
        )));
    }
    let due = crate::clock::format_utc(parse_utc(now_utc)? + Duration::days(response_days.into()));
    tx.execute(
        "INSERT INTO complaints (call_id, agent, occurred_at_utc, source, department, category,
             text, status, filed_by, filed_at_utc, due_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'filed', ?8, ?9, ?10)",
        params![
            n.call_id,
            agent,
            occurred,
            match n.source {
                Source::Customer => "customer",
                Source::Department => "department",
            },
            department,
            n.category,
            text,
            who.name,
            now_utc,
            due
        ],
    )?;
    let id = tx.last_insert_rowid();
    audit::append(
        &tx,
        &by.event(
            "complaint.file",
            n.call_id,
            serde_json::json!({"complaint": id, "agent": agent, "category": n.category,
                "source": n.source, "department": department, "due_at_utc": due, "text": text}),
        ),
    )?;
    tx.commit()?;
    load(conn, id, now_utc)?.ok_or(ComplaintError::NotFound(id))
}

/// Loads `id` for a step inside `tx`, checking that `who` may see it.
fn for_step(
    tx: &Connection,
    who: &Who,
    id: i64,
    now_utc: &str,
) -> Result<Complaint, ComplaintError> {
    match load(tx, id, now_utc)? {
        Some(c) if may_see(tx, who, &c)? => Ok(c),
        _ => Err(ComplaintError::NotFound(id)),
    }
}

/// A lead (admin, or supervisor with the agent in scope) who did not file it.
fn lead_over(
    tx: &Connection,
    who: &Who,
    c: &Complaint,
    action: &str,
) -> Result<(), ComplaintError> {
    if !is_lead(who) || !in_scope(tx, &who.scope, &c.agent)? {
        return Err(ComplaintError::Forbidden(format!(
            "only a lead over agent {} may {action} this complaint",
            c.agent
        )));
    }
    if c.filed_by == who.name {
        return Err(ComplaintError::Forbidden(format!(
            "you filed complaint {}: another lead must {action} it",
            c.id
        )));
    }
    Ok(())
}

/// Whose step on which complaint, when.
struct Ctx<'a> {
    id: i64,
    now_utc: &'a str,
    by: Actor<'a>,
    who: &'a Who,
}

impl<'a> Ctx<'a> {
    fn new(id: i64, now_utc: &'a str, by: Actor<'a>, who: &'a Who) -> Ctx<'a> {
        Ctx {
            id,
            now_utc,
            by,
            who,
        }
    }
}

/// One step: checks, the update, the audit row, in one transaction.
fn step(
    conn: &Connection,
    cx: Ctx,
    action: &'static str,
    check: impl FnOnce(&Connection, &Complaint) -> Result<(), ComplaintError>,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    detail: serde_json::Value,
) -> Result<Complaint, ComplaintError> {
    let Ctx {
        id,
        now_utc,
        by,
        who,
    } = cx;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let c = for_step(&tx, who, id, now_utc)?;
    check(&tx, &c)?;
    tx.execute(sql, args)?;
    let mut detail = detail;
    if let Some(m) = detail.as_object_mut() {
        m.insert("complaint".into(), id.into());
        m.insert("from".into(), c.status.as_str().into());
    }
    audit::append(&tx, &by.event(action, c.call_id, detail))?;
    tx.commit()?;
    load(conn, id, now_utc)?.ok_or(ComplaintError::NotFound(id))
}

fn must_be(c: &Complaint, allowed: &[Status], action: &'static str) -> Result<(), ComplaintError> {
    if allowed.contains(&c.status) {
        Ok(())
    } else {
        Err(ComplaintError::State {
            id: c.id,
            status: c.status,
            action,
        })
    }
}

/// filed → acknowledged (a lead over the agent).
pub fn acknowledge(
    conn: &Connection,
    who: &Who,
    id: i64,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.acknowledge",
        |tx, c| {
            must_be(c, &[Status::Filed], "acknowledge")?;
            lead_over(tx, who, c, "acknowledge")
        },
        "UPDATE complaints SET status = 'acknowledged', acknowledged_by = ?2,
             acknowledged_at_utc = ?3 WHERE id = ?1",
        &[&id, &who.name, &now_utc],
        serde_json::json!({}),
    )
}

/// filed | acknowledged → investigating (a lead over the agent).
pub fn investigate(
    conn: &Connection,
    who: &Who,
    id: i64,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.investigate",
        |tx, c| {
            must_be(c, &[Status::Filed, Status::Acknowledged], "investigate")?;
            lead_over(tx, who, c, "investigate")
        },
        "UPDATE complaints SET status = 'investigating', investigating_by = ?2,
             investigating_at_utc = ?3,
             acknowledged_by = COALESCE(acknowledged_by, ?2),
             acknowledged_at_utc = COALESCE(acknowledged_at_utc, ?3) WHERE id = ?1",
        &[&id, &who.name, &now_utc],
        serde_json::json!({}),
    )
}

/// The agent's response, once, before the ruling (the agent the complaint is about only).
pub fn respond(
    conn: &Connection,
    who: &Who,
    id: i64,
    text: &str,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    let text = text_ok("the response", text)?;
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.respond",
        |_, c| {
            if who.role != Role::Agent || who.agent != c.agent {
                return Err(ComplaintError::Forbidden(
                    "only the agent the complaint is about responds to it".into(),
                ));
            }
            must_be(
                c,
                &[Status::Filed, Status::Acknowledged, Status::Investigating],
                "respond",
            )?;
            if c.responded_at_utc.is_some() {
                return Err(ComplaintError::State {
                    id: c.id,
                    status: c.status,
                    action: "respond again",
                });
            }
            Ok(())
        },
        "UPDATE complaints SET response = ?2, responded_at_utc = ?3 WHERE id = ?1",
        &[&id, &text, &now_utc],
        serde_json::json!({"text": text}),
    )
}

/// The ruling, with a reason (a lead over the agent who did not file it); from any state
/// before the ruling (an acknowledgement not recorded separately is recorded with it).
pub fn rule(
    conn: &Connection,
    who: &Who,
    id: i64,
    ruling: Ruling,
    reason: &str,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    let reason = text_ok("the reason", reason)?;
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.rule",
        |tx, c| {
            must_be(
                c,
                &[Status::Filed, Status::Acknowledged, Status::Investigating],
                "rule",
            )?;
            lead_over(tx, who, c, "rule")
        },
        "UPDATE complaints SET status = 'ruled', ruling = ?2, ruling_reason = ?3, ruled_by = ?4,
             ruled_at_utc = ?5,
             acknowledged_by = COALESCE(acknowledged_by, ?4),
             acknowledged_at_utc = COALESCE(acknowledged_at_utc, ?5) WHERE id = ?1",
        &[&id, &ruling.as_str(), &reason, &who.name, &now_utc],
        serde_json::json!({"ruling": ruling, "reason": reason}),
    )
}

/// The one appeal against a ruling, by the agent concerned or whoever filed it.
pub fn appeal(
    conn: &Connection,
    who: &Who,
    id: i64,
    text: &str,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    let text = text_ok("the appeal", text)?;
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.appeal",
        |_, c| {
            must_be(c, &[Status::Ruled], "appeal")?;
            let agent = who.role == Role::Agent && who.agent == c.agent;
            if !agent && who.name != c.filed_by {
                return Err(ComplaintError::Forbidden(
                    "only the agent concerned or whoever filed the complaint may appeal".into(),
                ));
            }
            Ok(())
        },
        "UPDATE complaints SET status = 'appealed', appeal_text = ?2, appealed_by = ?3,
             appealed_at_utc = ?4 WHERE id = ?1",
        &[&id, &text, &who.name, &now_utc],
        serde_json::json!({"text": text}),
    )
}

/// The appeal's decision, by a lead over the agent other than the one who ruled: final.
pub fn decide(
    conn: &Connection,
    who: &Who,
    id: i64,
    ruling: Ruling,
    reason: &str,
    now_utc: &str,
    by: Actor,
) -> Result<Complaint, ComplaintError> {
    let reason = text_ok("the reason", reason)?;
    step(
        conn,
        Ctx::new(id, now_utc, by, who),
        "complaint.decide",
        |tx, c| {
            must_be(c, &[Status::Appealed], "decide")?;
            lead_over(tx, who, c, "decide the appeal on")?;
            if c.ruled_by.as_deref() == Some(who.name.as_str()) {
                return Err(ComplaintError::Forbidden(
                    "you ruled this complaint: a different lead decides its appeal".into(),
                ));
            }
            Ok(())
        },
        "UPDATE complaints SET status = 'final', appeal_ruling = ?2, appeal_reason = ?3,
             decided_by = ?4, decided_at_utc = ?5 WHERE id = ?1",
        &[&id, &ruling.as_str(), &reason, &who.name, &now_utc],
        serde_json::json!({"ruling": ruling, "reason": reason}),
    )
}

/// Empties the personal text (complaint, response, reasons, appeal) of every complaint about
/// `calls` (an erasure); returns the complaints scrubbed. Audited per complaint.
pub fn scrub_for_calls(
    conn: &Connection,
    calls: &[i64],
    actor: &str,
    now_utc: &str,
) -> Result<Vec<i64>, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let ids_json = serde_json::to_string(calls).unwrap_or_else(|_| "[]".into());
    let ids: Vec<(i64, Option<i64>)> = tx
        .prepare(
            "SELECT id, call_id FROM complaints
             WHERE call_id IN (SELECT value FROM json_each(?1)) ORDER BY id",
        )?
        .query_map([&ids_json], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, call) in &ids {
        tx.execute(
            "UPDATE complaints SET text = NULL, response = NULL, ruling_reason = NULL,
                 appeal_text = NULL, appeal_reason = NULL, scrubbed_at_utc = ?2 WHERE id = ?1",
            params![id, now_utc],
        )?;
        audit::append(
            &tx,
            &Actor::local(actor).event(
                "complaint.scrub",
                *call,
                serde_json::json!({"complaint": id}),
            ),
        )?;
    }
    tx.commit()?;
    Ok(ids.into_iter().map(|(id, _)| id).collect())
}

/// Removes the complaints filed more than `keep_days` before `now` that are settled (ruled and
/// not under appeal, or final); returns their ids. Audited, one row per run.
pub fn purge(
    conn: &Connection,
    keep_days: u32,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<i64>, StoreError> {
    let cutoff = crate::clock::format_utc(now - Duration::days(keep_days.into()));
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let ids: Vec<i64> = tx
        .prepare(
            "SELECT id FROM complaints WHERE filed_at_utc <= ?1 AND status IN ('ruled', 'final')
             ORDER BY id",
        )?
        .query_map([&cutoff], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        tx.execute(
            "DELETE FROM complaints WHERE filed_at_utc <= ?1 AND status IN ('ruled', 'final')",
            [&cutoff],
        )?;
        audit::append(
            &tx,
            &Actor::local(actor).event(
                "complaint.purge",
                None,
                serde_json::json!({"complaints": ids, "keep_days": keep_days, "filed_before_utc": cutoff}),
            ),
        )?;
    }
    tx.commit()?;
    Ok(ids)
}

/// Complaints figures over `[from, to)` for `agents` (by `occurred_at_utc`): filed, justified
/// (final ruling justified; partly justified is counted apart), pending (not ruled, or under
/// appeal), overdue (not ruled and past the deadline at `now`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    pub filed: i64,
    pub justified: i64,
    pub partly_justified: i64,
    pub not_justified: i64,
    pub pending: i64,
    pub overdue: i64,
}

pub fn counts(
    conn: &Connection,
    agents_json: &str,
    from: &str,
    to: &str,
    now_utc: &str,
) -> Result<Counts, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*),
            COALESCE(sum(fr = 'justified'), 0),
            COALESCE(sum(fr = 'partly_justified'), 0),
            COALESCE(sum(fr = 'not_justified'), 0),
            COALESCE(sum(status IN ('filed', 'acknowledged', 'investigating', 'appealed')), 0),
            COALESCE(sum(status IN ('filed', 'acknowledged', 'investigating') AND due_at_utc <= ?4), 0)
         FROM (SELECT status, due_at_utc,
                 CASE WHEN status = 'appealed' THEN NULL ELSE COALESCE(appeal_ruling, ruling) END AS fr
               FROM complaints
               WHERE agent IN (SELECT value FROM json_each(?1))
                 AND occurred_at_utc >= ?2 AND occurred_at_utc < ?3)",
        params![agents_json, from, to, now_utc],
        |r| {
            Ok(Counts {
                filed: r.get(0)?,
                justified: r.get(1)?,
                partly_justified: r.get(2)?,
                not_justified: r.get(3)?,
                pending: r.get(4)?,
                overdue: r.get(5)?,
            })
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    const T0: &str = "2026-12-01T10:00:00.000Z";

    fn who(name: &str, role: Role, team: Option<&str>, scope: Scope) -> Who {
        Who {
            name: name.into(),
            role,
            agent: name.into(),
            team: team.map(str::to_owned),
            scope,
        }
    }

    fn setup() -> TestResult<(TempStore, i64)> {
        let store = TempStore::new()?;
        seed_categories(&store.conn)?;
        for (name, team) in [("alice", "red"), ("bob", "blue")] {
            store.conn.execute(
                "INSERT INTO users (username, password_hash, role, agent_id, team, created_at_utc)
                 VALUES (?1, 'x', 'agent', ?1, ?2, ?3)",
                params![name, team, T0],
            )?;
        }
        let call = TestCall::new()
            .agent("alice")
            .number("+441234567890")
            .started_at("2026-11-30T09:00:00.000Z")
            .duration_ms(60_000)
            .finalized("complete")
            .insert(&store.conn)?
            .id;
        Ok((store, call))
    }

    fn new(call: i64) -> NewComplaint {
        NewComplaint {
            call_id: Some(call),
            agent: None,
            at_utc: None,
            source: Source::Customer,
            category: "rudeness".into(),
            text: "Mr Smith says the agent hung up on him".into(),
        }
    }

    /// filed → acknowledged → investigating → (response) → ruled → appealed → final, with the
    /// refusals on the way: wrong state, wrong person, the same lead deciding the appeal.
    #[test]
    fn the_life_cycle_and_who_may_take_each_step() -> TestResult {
        let (store, call) = setup()?;
        let c = &store.conn;
        let red_lead = who(
            "rita",
            Role::Supervisor,
            Some("red"),
            Scope::Team("red".into()),
        );
        let blue_lead = who(
            "bert",
            Role::Supervisor,
            Some("blue"),
            Scope::Team("blue".into()),
        );
        let admin = who("ada", Role::Admin, None, Scope::All);
        let alice = who(
            "alice",
            Role::Agent,
            Some("red"),
            Scope::Agent("alice".into()),
        );
        let bob = who("bob", Role::Agent, Some("blue"), Scope::Agent("bob".into()));
        let qa = who("quinn", Role::Qa, None, Scope::All);
        let a = Actor::local("t");

        // Agents file nothing; a lead of another team files no customer complaint about alice.
        assert!(matches!(
            file(c, &alice, &new(call), 56, T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        assert!(matches!(
            file(c, &blue_lead, &new(call), 56, T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        let bad = NewComplaint {
            category: "nope".into(),
            ..new(call)
        };
        assert!(matches!(
            file(c, &qa, &bad, 56, T0, a),
            Err(ComplaintError::Bad(_))
        ));
        let k = file(c, &qa, &new(call), 56, T0, a)?;
        assert_eq!((k.status, k.agent.as_str()), (Status::Filed, "alice"));
        assert_eq!(k.occurred_at_utc, "2026-11-30T09:00:00.000Z");
        assert_eq!(k.due_at_utc, "2027-01-26T10:00:00.000Z");
        // Bob does not see it, not even that it exists.
        assert!(matches!(
            get(c, &bob, k.id, T0),
            Err(ComplaintError::NotFound(_))
        ));
        assert!(matches!(
            get(c, &blue_lead, k.id, T0),
            Err(ComplaintError::NotFound(_))
        ));
        assert_eq!(get(c, &alice, k.id, T0)?.id, k.id);
        assert_eq!(list(c, &bob, &Filter::default(), T0)?.len(), 0);
        assert_eq!(list(c, &alice, &Filter::default(), T0)?.len(), 1);

        assert!(matches!(
            acknowledge(c, &alice, k.id, T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        assert!(matches!(
            acknowledge(c, &qa, k.id, T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        acknowledge(c, &red_lead, k.id, T0, a)?;
        assert!(matches!(
            acknowledge(c, &red_lead, k.id, T0, a),
            Err(ComplaintError::State {
                status: Status::Acknowledged,
                ..
            })
        ));
        investigate(c, &red_lead, k.id, T0, a)?;
        assert!(matches!(
            respond(c, &bob, k.id, "not me", T0, a),
            Err(ComplaintError::NotFound(_))
        ));
        assert!(matches!(
            respond(c, &red_lead, k.id, "x", T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        let k = respond(c, &alice, k.id, "He shouted; I warned him twice", T0, a)?;
        assert!(k.response.is_some());
        assert!(matches!(
            respond(c, &alice, k.id, "again", T0, a),
            Err(ComplaintError::State { .. })
        ));
        assert!(matches!(
            appeal(c, &alice, k.id, "x", T0, a),
            Err(ComplaintError::State { .. })
        ));
        assert!(matches!(
            rule(c, &red_lead, k.id, Ruling::Justified, " ", T0, a),
            Err(ComplaintError::Bad(_))
        ));
        let k = rule(
            c,
            &red_lead,
            k.id,
            Ruling::Justified,
            "hung up at 01:12",
            T0,
            a,
        )?;
        assert_eq!(
            (k.status, k.final_ruling),
            (Status::Ruled, Some(Ruling::Justified))
        );
        assert!(matches!(
            respond(c, &alice, k.id, "late", T0, a),
            Err(ComplaintError::State { .. })
        ));
        // Bob may not appeal alice's complaint; alice may, once.
        assert!(matches!(
            appeal(c, &bob, k.id, "x", T0, a),
            Err(ComplaintError::NotFound(_))
        ));
        let k = appeal(c, &alice, k.id, "the line dropped", T0, a)?;
        assert_eq!(
            (k.status, k.final_ruling),
            (Status::Appealed, Some(Ruling::Justified))
        );
        assert!(matches!(
            appeal(c, &alice, k.id, "again", T0, a),
            Err(ComplaintError::State { .. })
        ));
        // The lead who ruled does not decide the appeal; another lead over alice does.
        assert!(matches!(
            decide(c, &red_lead, k.id, Ruling::NotJustified, "x", T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        assert!(matches!(
            decide(c, &blue_lead, k.id, Ruling::NotJustified, "x", T0, a),
            Err(ComplaintError::NotFound(_))
        ));
        let k = decide(
            c,
            &admin,
            k.id,
            Ruling::PartlyJustified,
            "line log shows a drop",
            T0,
            a,
        )?;
        assert_eq!(k.status, Status::Final);
        assert_eq!(k.final_ruling, Some(Ruling::PartlyJustified));
        assert_eq!(k.decided_by.as_deref(), Some("ada"));
        let actions: Vec<String> = c
            .prepare("SELECT action FROM audit WHERE action LIKE 'complaint.%' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(
            actions,
            [
                "complaint.file",
                "complaint.acknowledge",
                "complaint.investigate",
                "complaint.respond",
                "complaint.rule",
                "complaint.appeal",
                "complaint.decide"
            ]
        );
        // The text is in the audit log only as a keyed hash.
        let details: String = c.query_row(
            "SELECT group_concat(detail) FROM audit WHERE action LIKE 'complaint.%'",
            [],
            |r| r.get(0),
        )?;
        assert!(!details.contains("Mr Smith") && !details.contains("hung up"));
        Ok(())
    }

    /// A department's supervisor files about any agent; it is not theirs to rule.
    #[test]
    fn a_department_files_through_its_supervisor() -> TestResult {
        let (store, call) = setup()?;
        let c = &store.conn;
        let a = Actor::local("t");
        let billing = who(
            "bill",
            Role::Supervisor,
            Some("billing"),
            Scope::Team("billing".into()),
        );
        let qa = who("quinn", Role::Qa, Some("red"), Scope::All);
        let dep = NewComplaint {
            source: Source::Department,
            category: "process_breach".into(),
            ..new(call)
        };
        assert!(matches!(
            file(c, &qa, &dep, 56, T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        let k = file(c, &billing, &dep, 56, T0, a)?;
        assert_eq!(k.department.as_deref(), Some("billing"));
        // The filer sees it though alice is outside billing's scope, but may not rule it.
        assert_eq!(get(c, &billing, k.id, T0)?.id, k.id);
        assert!(matches!(
            rule(c, &billing, k.id, Ruling::Justified, "x", T0, a),
            Err(ComplaintError::Forbidden(_))
        ));
        // Against an agent and a time instead of a call.
        let n = NewComplaint {
            call_id: None,
            agent: Some("bob".into()),
            at_utc: Some("2026-12-01T08:00:00Z".into()),
            ..dep.clone()
        };
        let k = file(c, &billing, &n, 56, T0, a)?;
        assert_eq!(
            (k.agent.as_str(), k.occurred_at_utc.as_str()),
            ("bob", "2026-12-01T08:00:00.000Z")
        );
        let both = NewComplaint {
            agent: Some("bob".into()),
            ..dep
        };
        assert!(matches!(
            file(c, &billing, &both, 56, T0, a),
            Err(ComplaintError::Bad(_))
        ));
        Ok(())
    }

    /// Overdue from the deadline on (not a millisecond before), and never once ruled.
    #[test]
    fn the_deadline_makes_an_open_complaint_overdue() -> TestResult {
        let (store, call) = setup()?;
        let c = &store.conn;
        let a = Actor::local("t");
        let admin = who("ada", Role::Admin, None, Scope::All);
        // A simulated clock (crate::clock::SimClock) files at T0 and moves 8 weeks on.
        use crate::clock::Clock;
        let clock = crate::clock::SimClock::at(parse_utc(T0)?);
        let k = file(c, &admin, &new(call), 56, &clock.utc_string(), a)?;
        clock.advance(56 * 86_400_000 - 1);
        let before_s = clock.utc_string();
        let before = before_s.as_str();
        assert_eq!(before, "2027-01-26T09:59:59.999Z");
        assert!(!get(c, &admin, k.id, before)?.overdue);
        clock.advance(1);
        let at_s = clock.utc_string();
        let at = at_s.as_str();
        assert!(get(c, &admin, k.id, at)?.overdue);
        let od = Filter {
            overdue: true,
            ..Filter::default()
        };
        assert_eq!(list(c, &admin, &od, before)?.len(), 0);
        assert_eq!(list(c, &admin, &od, at)?.len(), 1);
        let agents = r#"["alice"]"#;
        let n = counts(
            c,
            agents,
            "2026-11-01T00:00:00.000Z",
            "2026-12-31T00:00:00.000Z",
            at,
        )?;
        assert_eq!((n.filed, n.pending, n.overdue), (1, 1, 1));
        let lead = who("rita", Role::Supervisor, None, Scope::All);
        rule(
            c,
            &lead,
            k.id,
            Ruling::NotJustified,
            "recording shows otherwise",
            at,
            a,
        )?;
        assert!(!get(c, &admin, k.id, "2027-06-01T00:00:00.000Z")?.overdue);
        Ok(())
    }

    /// Counts by hand: 4 complaints about alice in November (justified; partly; under appeal
    /// after a justified ruling; open), one in December, one about bob.
    #[test]
    fn complaint_counts_by_hand() -> TestResult {
        let (store, call) = setup()?;
        let c = &store.conn;
        let a = Actor::local("t");
        let admin = who("ada", Role::Admin, None, Scope::All);
        let lead = who("rita", Role::Supervisor, None, Scope::All);
        let alice = who("alice", Role::Agent, None, Scope::Agent("alice".into()));
        let filer = who("quinn", Role::Qa, None, Scope::All);
        let at = |agent: &str, when: &str| NewComplaint {
            call_id: None,
            agent: Some(agent.into()),
            at_utc: Some(when.into()),
            ..new(call)
        };
        let k1 = file(c, &filer, &at("alice", "2026-11-02T10:00:00Z"), 56, T0, a)?;
        rule(c, &lead, k1.id, Ruling::Justified, "r", T0, a)?;
        let k2 = file(c, &filer, &at("alice", "2026-11-03T10:00:00Z"), 56, T0, a)?;
        rule(c, &lead, k2.id, Ruling::PartlyJustified, "r", T0, a)?;
        let k3 = file(c, &filer, &at("alice", "2026-11-04T10:00:00Z"), 56, T0, a)?;
        rule(c, &lead, k3.id, Ruling::Justified, "r", T0, a)?;
        appeal(c, &alice, k3.id, "no", T0, a)?;
        file(c, &filer, &at("alice", "2026-11-05T10:00:00Z"), 56, T0, a)?;
        file(c, &filer, &at("alice", "2026-12-01T00:00:00Z"), 56, T0, a)?;
        file(c, &filer, &at("bob", "2026-11-05T10:00:00Z"), 56, T0, a)?;
        let (from, to) = ("2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z");
        let n = counts(c, r#"["alice"]"#, from, to, T0)?;
        assert_eq!(
            n,
            Counts {
                filed: 4,
                justified: 1,
                partly_justified: 1,
                not_justified: 0,
                pending: 2,
                overdue: 0
            }
        );
        decide(c, &admin, k3.id, Ruling::Justified, "upheld", T0, a)?;
        let n = counts(c, r#"["alice", "bob"]"#, from, to, T0)?;
        assert_eq!((n.filed, n.justified, n.pending), (5, 2, 2));
        let f = crate::store::figures::compute(
            c,
            &crate::store::figures::Subject::Agent("alice".into()),
            from,
            to,
            T0,
        )?;
        assert_eq!(f.complaints.map(|x| x.justified), Some(2));
        Ok(())
    }

    /// Erasure's part: the text goes, the ruling stays; retention removes settled complaints
    /// 3 years after filing, never open ones.
    #[test]
    fn scrub_and_purge() -> TestResult {
        let (store, call) = setup()?;
        let c = &store.conn;
        let a = Actor::local("t");
        let admin = who("ada", Role::Admin, None, Scope::All);
        let lead = who("rita", Role::Supervisor, None, Scope::All);
        let k1 = file(c, &admin, &new(call), 56, T0, a)?;
        rule(
            c,
            &lead,
            k1.id,
            Ruling::Justified,
            "said rude things",
            T0,
            a,
        )?;
        let k2 = file(c, &admin, &new(call), 56, T0, a)?;
        assert_eq!(scrub_for_calls(c, &[call], "eraser", T0)?, [k1.id, k2.id]);
        let k = get(c, &admin, k1.id, T0)?;
        assert_eq!((k.text, k.ruling_reason), (None, None));
        assert_eq!(k.final_ruling, Some(Ruling::Justified));
        let now = |s: &str| -> TestResult<DateTime<Utc>> { Ok(parse_utc(s)?) };
        assert!(purge(
            c,
            DEFAULT_KEEP_DAYS,
            now("2029-11-30T09:59:59.999Z")?,
            "ret"
        )?
        .is_empty());
        assert_eq!(
            purge(c, DEFAULT_KEEP_DAYS, now("2029-11-30T10:00:00Z")?, "ret")?,
            [k1.id]
        );
        assert!(matches!(
            get(c, &admin, k1.id, T0),
            Err(ComplaintError::NotFound(_))
        ));
        assert_eq!(get(c, &admin, k2.id, T0)?.status, Status::Filed);
        Ok(())
    }
}
