//! Call search for the web UI and JSON API: typed filters, the caller's visibility scope, sort,
//! pagination and a capped result count.
//!
//! Every value is bound as a parameter; only fixed fragments chosen from enums are spliced into
//! the SQL text. Each typical filter has an index (agent+start, number, duration, campaign+start,
//! tag) so the search stays fast at a million calls (see `benches/search_1m.sh`).

use super::{fill_details, row_to_call, CallRow, CallStatus, StoreError, CALL_COLUMNS};
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;

/// Counting stops here: "10 000+" is as useful to a reviewer as an exact figure and keeps broad
/// searches from scanning the whole table.
pub const COUNT_CAP: u64 = 10_000;

/// Which calls a user may see at all (enforced here, in the query, not in the page).
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    All,
    /// Only calls whose `agent` is this value.
    Agent(String),
    /// Only calls whose agent belongs to a user in this team.
    Team(String),
}

impl Scope {
    /// Which calls `user` may see under `[server] reviewer_scope` (the web service's and the
    /// command line's one rule): admins and auditors all; agents their own; qa and supervisors
    /// all, or their team's with `reviewer_scope = "team"` (their own without a team).
    pub fn of(user: &super::users::User, reviewer: crate::config::ReviewerScope) -> Scope {
        use super::users::Role;
        use crate::config::ReviewerScope;
        match user.role {
            Role::Admin | Role::Auditor => Scope::All,
            Role::Agent => Scope::Agent(user.agent_id.clone()),
            Role::Qa | Role::Supervisor => match (reviewer, &user.team) {
                (ReviewerScope::All, _) => Scope::All,
                (ReviewerScope::Team, Some(t)) => Scope::Team(t.clone()),
                (ReviewerScope::Team, None) => Scope::Agent(user.agent_id.clone()),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Started,
    Duration,
    Agent,
    Number,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "started" => SortKey::Started,
            "duration" => SortKey::Duration,
            "agent" => SortKey::Agent,
            "number" => SortKey::Number,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Started => "started",
            SortKey::Duration => "duration",
            SortKey::Agent => "agent",
            SortKey::Number => "number",
        }
    }
    fn column(self) -> &'static str {
        match self {
            SortKey::Started => "started_at_utc",
            SortKey::Duration => "duration_ms",
            SortKey::Agent => "agent",
            SortKey::Number => "remote_number",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub agent: Option<String>,
    /// The calls of a team's members (users with that team, by agent id), as the team scope.
    pub team: Option<String>,
    pub seat: Option<String>,
    /// The box (floor) that recorded the call; a comma-separated list names several. On a box
    /// every call is its own; at the hub this is the floor filter.
    pub box_id: Option<String>,
    pub since_utc: Option<String>,
    pub until_utc: Option<String>,
    pub direction: Option<String>,
    /// Matches numbers starting with this.
    pub number_prefix: Option<String>,
    pub campaign: Option<String>,
    /// The call's current outcome code, and class (store::outcomes).
    pub outcome: Option<String>,
    pub outcome_class: Option<String>,
    pub min_duration_ms: Option<i64>,
    pub max_duration_ms: Option<i64>,
    pub status: Option<String>,
    pub tag: Option<String>,
    /// Free text matched against the call's notes.
    pub text: Option<String>,
    /// Words that must all occur in the call's transcript (FTS5; a trailing `*` is a prefix).
    pub transcript: Option<String>,
    /// Acoustic thresholds: longest dead air, total overtalk (calls with metrics only).
    pub min_dead_air_ms: Option<i64>,
    pub min_overtalk_ms: Option<i64>,
    pub sort: SortKey,
    pub ascending: bool,
    /// 0-based page.
    pub page: u32,
    pub per_page: u32,
}

/// A search parameter that is unknown or malformed; the text says which and what to write.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

/// The search parameters a query string may carry.
pub const SEARCH_KEYS: [&str; 23] = [
    "min_dead_air_s",
    "min_overtalk_s",
    "agent",
    "team",
    "seat",
    "box",
    "from",
    "to",
    "direction",
    "number",
    "campaign",
    "outcome",
    "outcome_class",
    "min_duration_s",
    "max_duration_s",
    "status",
    "tag",
    "q",
    "transcript",
    "sort",
    "order",
    "page",
    "per_page",
];

/// Search parameters from a query string (the web page, the API and sampling plans share
/// them, so URLs are shareable).
/// Empty values mean "no filter" because HTML forms submit empty fields.
pub fn parse_params(q: &HashMap<String, String>) -> Result<Query, BadQuery> {
    if let Some(k) = q.keys().find(|k| !SEARCH_KEYS.contains(&k.as_str())) {
        return Err(BadQuery(format!(
            "unknown search parameter {k:?}; use {}",
            SEARCH_KEYS.join(", ")
        )));
    }
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let text = |k: &str, max: usize| -> Result<Option<String>, BadQuery> {
        match get(k) {
            Some(v) if v.chars().count() > max => {
                Err(BadQuery(format!("{k} is longer than {max} characters")))
            }
            v => Ok(v.map(str::to_owned)),
        }
    };
    let num = |k: &str, min: i64, max: i64| -> Result<Option<i64>, BadQuery> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        BadQuery(format!(
                            "{k} must be a whole number from {min} to {max}, not {v:?}"
                        ))
                    })
            })
            .transpose()
    };
    let date = |k: &str| -> Result<Option<String>, BadQuery> {
        get(k)
            .map(|v| {
                crate::clock::parse_bound(v).ok_or_else(|| {
                    BadQuery(format!(
                        "{k} must be a date (2026-11-27) or RFC 3339 time, not {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let one_of = |k: &str, allowed: &[&str]| -> Result<Option<String>, BadQuery> {
        match get(k) {
            Some(v) if !allowed.contains(&v) => Err(BadQuery(format!(
                "{k} must be one of {}",
                allowed.join(", ")
            ))),
            v => Ok(v.map(str::to_owned)),
        }
    };
    let number_prefix = match get("number") {
        None => None,
        Some(v) => {
            let n: String = v
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
                .collect();
            if n.is_empty()
                || n.len() > 32
                || !n.chars().all(|c| c.is_ascii_digit() || "+*#".contains(c))
            {
                return Err(BadQuery(
                    "number may hold only digits, + * # (a prefix of the remote number)".to_owned(),
                ));
            }
            Some(n)
        }
    };
    let sort = match get("sort") {
        None => SortKey::Started,
        Some(s) => SortKey::parse(s).ok_or_else(|| {
            BadQuery("sort must be started, duration, agent or number".to_owned())
        })?,
    };
    let ascending = one_of("order", &["asc", "desc"])?.is_some_and(|o| o == "asc");
    let mut until_utc = date("to")?;
    if let (Some(v), Some(u)) = (get("to"), until_utc.as_mut()) {
        // A bare end date includes that whole day.
        if chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
            *u = crate::clock::utc_plus_ms(u, 86_400_000);
        }
    }
    Ok(Query {
        agent: text("agent", 128)?,
        team: text("team", 128)?,
        seat: text("seat", 128)?,
        box_id: text("box", 256)?,
        since_utc: date("from")?,
        until_utc,
        direction: one_of("direction", &["inbound", "outbound"])?,
        number_prefix,
        campaign: text("campaign", 128)?,
        outcome: text("outcome", 64)?,
        outcome_class: one_of(
            "outcome_class",
            &crate::store::outcomes::Class::ALL.map(crate::store::outcomes::Class::as_str),
        )?,
        min_duration_ms: num("min_duration_s", 0, 86_400 * 7)?.map(|s| s * 1000),
        max_duration_ms: num("max_duration_s", 0, 86_400 * 7)?.map(|s| s * 1000),
        status: one_of("status", &CallStatus::ALL.map(CallStatus::as_str))?,
        tag: text("tag", 128)?,
        text: text("q", 200)?,
        transcript: text("transcript", 200)?,
        min_dead_air_ms: num("min_dead_air_s", 0, 86_400)?.map(|s| s * 1000),
        min_overtalk_ms: num("min_overtalk_s", 0, 86_400)?.map(|s| s * 1000),
        sort,
        ascending,
        page: num("page", 1, 1_000_000)?.map_or(0, |p| (p - 1) as u32),
        per_page: num("per_page", 1, 200)?.map_or(50, |p| p as u32),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Matching calls, up to [`COUNT_CAP`].
    pub total: u64,
    /// True when there are more than `total`.
    pub total_capped: bool,
    pub page: u32,
    pub per_page: u32,
    pub calls: Vec<CallRow>,
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn where_clause(q: &Query, scope: &Scope) -> (String, Vec<Value>) {
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &'static str, vals: Vec<Value>| {
        conds.push(cond);
        args.extend(vals);
    };
    match scope {
        Scope::All => {}
        Scope::Agent(a) => push("agent = ?", vec![a.clone().into()]),
        Scope::Team(t) => push(
            "agent IN (SELECT COALESCE(agent_id, username) FROM users WHERE team = ?)",
            vec![t.clone().into()],
        ),
    }
    let text = |v: &Option<String>| v.clone().map(Value::from);
    if let Some(v) = text(&q.agent) {
        push("agent = ?", vec![v]);
    }
    if let Some(v) = text(&q.team) {
        push(
            "agent IN (SELECT COALESCE(agent_id, username) FROM users WHERE team = ?)",
            vec![v],
        );
    }
    // A seat group is a comma-separated list (`seat01,seat02`): the seats of one team or floor.
    match &q.seat {
        Some(list) if list.contains(',') => push(
            "instr(',' || replace(?, ' ', '') || ',', ',' || seat_id || ',') > 0",
            vec![list.clone().into()],
        ),
        Some(one) => push("seat_id = ?", vec![one.clone().into()]),
        None => {}
    }
    match &q.box_id {
        Some(list) if list.contains(',') => push(
            "instr(',' || replace(?, ' ', '') || ',', ',' || box_id || ',') > 0",
            vec![list.clone().into()],
        ),
        // A floor holds a tenth of a hub's calls, a number prefix or a campaign far fewer: with
        // one of those filters the floor only narrows what their index found (the unary `+`
        // keeps the planner off `calls_box`, which without statistics it would take and then
        // walk a whole floor: 1.1 s at 10 M calls, benches/RESULTS.md "Hub search"). An agent
        // and a floor together have their own index, calls_agent_box.
        Some(one) if q.agent.is_none() && (q.number_prefix.is_some() || q.campaign.is_some()) => {
            push("+box_id = ?", vec![one.clone().into()])
        }
        Some(one) => push("box_id = ?", vec![one.clone().into()]),
        None => {}
    }
    if let Some(v) = text(&q.since_utc) {
        push("started_at_utc >= ?", vec![v]);
    }
    if let Some(v) = text(&q.until_utc) {
        push("started_at_utc < ?", vec![v]);
    }
    if let Some(v) = text(&q.direction) {
        push("direction = ?", vec![v]);
    }
    if let Some(p) = &q.number_prefix {
        // A range on the index instead of LIKE, which SQLite cannot serve from a BINARY index.
        push(
            "remote_number >= ? AND remote_number < ?",
            vec![p.clone().into(), format!("{p}\u{10FFFF}").into()],
        );
    }
    if let Some(v) = text(&q.campaign) {
        push("campaign = ?", vec![v]);
    }
    if let Some(v) = text(&q.outcome) {
        push("outcome = ?", vec![v]);
    }
    if let Some(v) = text(&q.outcome_class) {
        push("outcome_class = ?", vec![v]);
    }
    if let Some(v) = q.min_duration_ms {
        push("duration_ms >= ?", vec![v.into()]);
    }
    if let Some(v) = q.max_duration_ms {
        push("duration_ms <= ?", vec![v.into()]);
    }
    if let Some(v) = text(&q.status) {
        push("status = ?", vec![v]);
    }
    if let Some(v) = text(&q.tag) {
        push(
            "id IN (SELECT call_id FROM call_tags WHERE tag = ?)",
            vec![v],
        );
    }
    if let Some(v) = q.min_dead_air_ms {
        push(
            "id IN (SELECT call_id FROM call_metrics WHERE dead_air_longest_ms >= ?)",
            vec![v.into()],
        );
    }
    if let Some(v) = q.min_overtalk_ms {
        push(
            "id IN (SELECT call_id FROM call_metrics WHERE overtalk_total_ms >= ?)",
            vec![v.into()],
        );
    }
    if let Some(t) = &q.text {
        push(
            "id IN (SELECT call_id FROM notes WHERE deleted_at_utc IS NULL AND text LIKE ? ESCAPE '\\')",
            vec![format!("%{}%", like_escape(t)).into()],
        );
    }
    // User text never reaches FTS5 syntax: `fts_query` quotes every word. Text with no word in
    // it matches nothing rather than everything.
    // Each word must occur somewhere in the call's transcript (not necessarily in one segment),
    // so each is its own FTS5 lookup; at most 8 words keep the query bounded.
    if let Some(t) = &q.transcript {
        let words: Vec<String> = t
            .split_whitespace()
            .filter_map(crate::store::compliance::fts_query)
            .take(8)
            .collect();
        if words.is_empty() {
            push("0 = 1", Vec::new());
        }
        for w in words {
            push(
                "id IN (SELECT s.call_id FROM transcript_fts f JOIN transcript_segments s ON s.id = f.rowid WHERE transcript_fts MATCH ?)",
                vec![w.into()],
            );
        }
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", conds.join(" AND ")), args)
    }
}

pub fn search(conn: &Connection, q: &Query, scope: &Scope) -> Result<Results, StoreError> {
    let (wh, args) = where_clause(q, scope);
    let counted: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM calls {wh} LIMIT {})",
            COUNT_CAP + 1
        ))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    let dir = if q.ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM calls {wh} ORDER BY {col} {dir}, id {dir} LIMIT ? OFFSET ?",
        col = q.sort.column()
    );
    let mut all_args = args;
    all_args.push(i64::from(q.per_page).into());
    all_args.push((i64::from(q.page) * i64::from(q.per_page)).into());
    let mut st = conn.prepare_cached(&sql)?;
    let mut calls: Vec<CallRow> = st
        .query_map(rusqlite::params_from_iter(all_args.iter()), row_to_call)?
        .collect::<Result<_, _>>()?;
    for c in &mut calls {
        fill_details(conn, c)?;
    }
    let counted = counted.max(0) as u64;
    Ok(Results {
        total: counted.min(COUNT_CAP),
        total_capped: counted > COUNT_CAP,
        page: q.page,
        per_page: q.per_page,
        calls,
    })
}

/// A sampling candidate: the fields the draw needs.
#[derive(Debug, Clone)]
pub struct CandidateRow {
    pub call_id: i64,
    pub agent: String,
    pub started_at_utc: String,
    pub duration_ms: i64,
}

/// Every finished call with an agent that matches `q` (sampling plans), up to `limit`.
pub fn candidates(
    conn: &Connection,
    q: &Query,
    scope: &Scope,
    limit: u32,
) -> Result<Vec<CandidateRow>, StoreError> {
    let (wh, mut args) = where_clause(q, scope);
    // Only calls whose recording exists can be reviewed.
    let extra = "status IN ('complete', 'interrupted') AND agent IS NOT NULL";
    let wh = if wh.is_empty() {
        format!("WHERE {extra}")
    } else {
        format!("{wh} AND {extra}")
    };
    args.push(i64::from(limit).into());
    let mut st = conn.prepare(&format!(
        "SELECT id, agent, started_at_utc, duration_ms FROM calls {wh} ORDER BY id LIMIT ?"
    ))?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(CandidateRow {
                call_id: r.get(0)?,
                agent: r.get(1)?,
                started_at_utc: r.get(2)?,
                duration_ms: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A condition keeping only rows whose call (`call_col`, a column holding a call id) is in the
/// scope, numbering its one parameter `?{param_no}`; and that parameter. Reports and the review
/// queue join it to their own SQL, so every figure counts the same calls a search would show.
pub fn call_in_scope(scope: &Scope, call_col: &str, param_no: usize) -> (String, Vec<Value>) {
    match scope {
        Scope::All => ("1".to_owned(), Vec::new()),
        Scope::Agent(a) => (
            format!("{call_col} IN (SELECT id FROM calls WHERE agent = ?{param_no})"),
            vec![a.clone().into()],
        ),
        Scope::Team(t) => (
            format!(
                "{call_col} IN (SELECT id FROM calls WHERE agent IN \
                 (SELECT COALESCE(agent_id, username) FROM users WHERE team = ?{param_no}))"
            ),
            vec![t.clone().into()],
        ),
    }
}

/// Whether a user with this scope may see this call (call page, audio, notes).
pub fn visible(conn: &Connection, call: &CallRow, scope: &Scope) -> Result<bool, StoreError> {
    Ok(match scope {
        Scope::All => true,
        Scope::Agent(a) => call.meta.agent.as_deref() == Some(a.as_str()),
        Scope::Team(t) => match &call.meta.agent {
            None => false,
            Some(agent) => conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE team = ?1 AND COALESCE(agent_id, username) = ?2)",
                [t, agent],
                |r| r.get(0),
            )?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    #[test]
    fn seat_groups() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        for seat in ["s1", "s2", "s10"] {
            TestCall::new()
                .seat(seat)
                .started_at("2026-11-20T10:00:00.000Z")
                .insert(&conn)?;
        }
        let seats = |v: &str| -> Result<Vec<String>, StoreError> {
            let q = Query {
                seat: Some(v.into()),
                per_page: 50,
                ..Default::default()
            };
            let mut s: Vec<String> = search(&conn, &q, &Scope::All)?
                .calls
                .into_iter()
                .map(|c| c.seat_id)
                .collect();
            s.sort();
            Ok(s)
        };
        assert_eq!(seats("s1")?, vec!["s1"]);
        // Whole names only: "s1" in the group does not match "s10".
        assert_eq!(seats("s1, s2")?, vec!["s1", "s2"]);
        assert_eq!(seats("s10,s3")?, vec!["s10"]);
        Ok(())
    }

    #[test]
    fn filters_scope_and_escaping() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        for (i, (agent, number, duration_ms)) in [
            ("alice", "+4930111", 5_000),
            ("alice", "+4930222", 700_000),
            ("bob", "+4940333", 20_000),
        ]
        .iter()
        .enumerate()
        {
            TestCall::new()
                .started_at(&format!("2026-11-2{i}T10:00:00.000Z"))
                .agent(agent)
                .number(number)
                .duration_ms(*duration_ms)
                .insert(&conn)?;
        }
        let base = Query {
            per_page: 50,
            ..Default::default()
        };
        let ids = |q: &Query, s: &Scope| -> Vec<String> {
            // An error yields no rows, which every assertion below rejects.
            search(&conn, q, s)
                .map(|r| {
                    r.calls
                        .into_iter()
                        .map(|c| c.meta.remote_number.unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            ids(
                &Query {
                    number_prefix: Some("+4930".into()),
                    ..base.clone()
                },
                &Scope::All
            ),
            vec!["+4930222", "+4930111"]
        );
        assert_eq!(
            ids(
                &Query {
                    min_duration_ms: Some(600_000),
                    ..base.clone()
                },
                &Scope::All
            ),
            vec!["+4930222"]
        );
        assert_eq!(ids(&base, &Scope::Agent("bob".into())), vec!["+4940333"]);
        let sorted = Query {
            sort: SortKey::Duration,
            ascending: true,
            ..base.clone()
        };
        assert_eq!(
            ids(&sorted, &Scope::All),
            vec!["+4930111", "+4940333", "+4930222"]
        );
        // SQL metacharacters are data, not syntax.
        for evil in ["' OR 1=1 --", "%", "_", "\\", "\"; DROP TABLE calls; --"] {
            let q = Query {
                agent: Some(evil.into()),
                number_prefix: Some(evil.into()),
                text: Some(evil.into()),
                ..base.clone()
            };
            assert_eq!(search(&conn, &q, &Scope::All)?.total, 0, "{evil}");
        }
        let r = search(&conn, &base, &Scope::All)?;
        assert_eq!((r.total, r.total_capped), (3, false));
        Ok(())
    }
}
