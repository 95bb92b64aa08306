//! The SQLite call index: schema and one-way migrations, call rows, pause/gap intervals, tags.
//!
//! The schema is the migrations in `migrations/NNNN_*.sql`, applied in order (`MIGRATIONS`);
//! `fixtures/schema-v<N>.sql` is the schema a fresh index of the current version N has, which a
//! test compares exactly; older versions are built from the migration files themselves (the
//! upgrade test), so only the current fixture is kept. A new migration replaces the fixture.
//!
//! WAL mode, `synchronous = FULL`, foreign keys on. One process writes (the recorder); the CLI
//! opens the same file read-only. A call row exists from the moment recording starts
//! (invariant 2). Timestamps are UTC text with milliseconds (`2026-11-27T17:20:00.123Z`), which
//! sorts and compares correctly as text.

pub mod agent_states;
pub mod alarms;
pub mod archive;
pub mod audit;
pub mod calibration;
pub mod complaints;
pub mod completeness;
pub mod compliance;
pub mod error;
pub mod figures;
pub mod holds;
pub mod hub;
pub mod identity;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod notes;
pub mod orders;
pub mod outcomes;
pub mod pseudonym;
pub mod qa;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod sampling;
pub mod search;
pub mod targets;
#[cfg(test)]
pub mod testutil;
pub mod users;

pub use error::StoreError;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::Path;

/// One schema migration: a file in `src/store/migrations/`, compiled in.
struct Migration {
    /// The file name, `NNNN_what_it_does.sql`; NNNN is the schema version it upgrades to. Only
    /// the tests read it (to check the numbering); the running code needs the order alone.
    #[cfg_attr(not(test), allow(dead_code))]
    file: &'static str,
    sql: &'static str,
}

/// `migration!("0001_x.sql")` embeds `src/store/migrations/0001_x.sql` and keeps its name.
macro_rules! migration {
    ($file:literal) => {
        Migration {
            file: $file,
            sql: include_str!(concat!("migrations/", $file)),
        }
    };
}

/// Migrations, applied in order; index i upgrades schema version i to i + 1 (file number
/// i + 1). Never edit one that has shipped: append a new file here. Every migration runs the
/// same way (see [`migrate`]): foreign keys off, one transaction, `foreign_key_check` before
/// commit; none runs Rust code.
const MIGRATIONS: &[Migration] = &[
    migration!("0001_calls_intervals_tags.sql"),
    migration!("0002_users_sessions_tokens_notes_audit.sql"),
    migration!("0003_call_metrics.sql"),
    migration!("0004_scorecards_evaluations.sql"),
    migration!("0005_sampling_plans_assignments.sql"),
    migration!("0006_call_indexes_by_start_time.sql"),
    migration!("0007_scripts_transcripts_calibrations.sql"),
    migration!("0008_evidence_ledger.sql"),
    migration!("0009_imports.sql"),
    migration!("0010_box_meta.sql"),
    migration!("0011_lifecycle_deletions_holds_alarms.sql"),
    migration!("0012_legal_hold_four_eyes_triggers.sql"),
    migration!("0013_former_numbers_fts_secure_delete.sql"),
    migration!("0014_archive.sql"),
    migration!("0015_call_outcomes.sql"),
    migration!("0016_agent_states.sql"),
    migration!("0017_hub_calls.sql"),
    migration!("0018_archive_lock.sql"),
    migration!("0019_orders.sql"),
    migration!("0020_complaints.sql"),
    migration!("0021_completeness_alarms.sql"),
];

pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Stable query plans: without this SQLite 3.54 re-prepares cached statements with bound
    // `col = ?` / `LIMIT ?` on every use (18 % of the server's CPU under streaming load) and may
    // switch plans after ANALYZE.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Freed space is overwritten with zeros on every connection, so that a customer's number
    // scrubbed by an erasure request does not survive in an old version of its row left in
    // free space by earlier updates (https://sqlite.org/pragma.html#pragma_secure_delete).
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Opens (creating if needed) the index read-write and brings the schema up to date.
pub fn open_rw(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    configure(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    migrate(&conn)?;
    // Every audit row needs the pseudonym key (store::pseudonym); make it before the first.
    if let Some(dir) = path.parent() {
        pseudonym::Key::ensure(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?;
    }
    Ok(conn)
}

/// Opens the index for reading only (CLI queries while the recorder runs).
pub fn open_ro(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    configure(&conn)?;
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if v > schema_version() {
        return Err(StoreError::TooNew {
            found: v,
            supported: schema_version(),
        });
    }
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if v > schema_version() {
        return Err(StoreError::TooNew {
            found: v,
            supported: schema_version(),
        });
    }
    if v == schema_version() {
        return Ok(());
    }
    // A migration that rebuilds a table drops the old one while other tables still reference
    // it; SQLite's procedure for that is foreign keys off outside the transaction, then
    // `foreign_key_check` before commit (https://sqlite.org/lang_altertable.html#otheralter).
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let applied = apply_migrations(conn, v);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    applied
}

fn apply_migrations(conn: &Connection, from_version: i64) -> Result<(), StoreError> {
    for (i, m) in MIGRATIONS.iter().enumerate().skip(from_version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m.sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(StoreError::Migration {
                version: i as i64 + 1,
                problem: format!("table {table} has a row whose reference no longer resolves"),
            });
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// What is known when a call starts.
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    pub box_id: String,
    pub seat_id: String,
    pub mode: String,
    pub started_at_utc: String,
    pub started_mono_ms: i64,
    pub rate_hz: u32,
    pub bitrate_bps: u32,
    pub meta: CallMeta,
}

/// Metadata supplied by the control API / CTI.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct CallMeta {
    pub agent: Option<String>,
    pub direction: Option<String>,
    pub remote_number: Option<String>,
    pub campaign: Option<String>,
    pub external_id: Option<String>,
}

/// Inserts the row (status `recording`) and returns its id; the file path follows from the id.
pub fn insert_call(conn: &Connection, c: &NewCall) -> Result<(i64, String), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO calls (box_id, seat_id, mode, status, started_at_utc, started_mono_ms, rate_hz,
             bitrate_bps, agent, direction, remote_number, campaign, external_id, rel_path)
         VALUES (?1, ?2, ?3, 'recording', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending:' || hex(randomblob(8)))",
        params![
            c.box_id, c.seat_id, c.mode, c.started_at_utc, c.started_mono_ms, c.rate_hz, c.bitrate_bps,
            c.meta.agent, c.meta.direction, c.meta.remote_number, c.meta.campaign, c.meta.external_id
        ],
    )?;
    let id = tx.last_insert_rowid();
    let day = c
        .started_at_utc
        .get(0..10)
        .unwrap_or("0000-00-00")
        .replace('-', "/");
    let rel = format!("calls/{day}/{id}.opus");
    tx.execute(
        "UPDATE calls SET rel_path = ?1 WHERE id = ?2",
        params![rel, id],
    )?;
    tx.commit()?;
    Ok((id, rel))
}

pub struct Progress {
    pub call_id: i64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub dropped_frames: u64,
}

/// Records how much of a call is durable (called after each fsync), in one transaction.
pub fn update_progress(conn: &Connection, batch: &[Progress]) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut st = tx.prepare_cached(
            "UPDATE calls SET duration_ms = ?2, bytes = ?3, dropped_frames = ?4 WHERE id = ?1 AND status = 'recording'",
        )?;
        for p in batch {
            st.execute(params![
                p.call_id,
                p.duration_ms as i64,
                p.bytes as i64,
                p.dropped_frames as i64
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub struct Finalized<'a> {
    pub call_id: i64,
    /// `Complete` or `Interrupted`.
    pub status: CallStatus,
    pub ended_at_utc: &'a str,
    pub duration_ms: u64,
    pub bytes: u64,
    pub sha256: Option<&'a str>,
    pub dropped_frames: u64,
    pub end_reason: &'a str,
    pub note: Option<&'a str>,
}

/// Closes a call: final figures, hash, any interval left open at the end of the audio, and the
/// call's ledger entry (invariant 5) — all in one transaction, so a finalized call with a hash
/// always has its entry.
pub fn finalize_call(conn: &Connection, f: &Finalized) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "UPDATE calls SET status = ?2, ended_at_utc = ?3, duration_ms = ?4, bytes = ?5, sha256 = ?6,
             dropped_frames = ?7, end_reason = ?8, note = COALESCE(?9, note) WHERE id = ?1",
        params![
            f.call_id, f.status, f.ended_at_utc, f.duration_ms as i64, f.bytes as i64, f.sha256,
            f.dropped_frames as i64, f.end_reason, f.note
        ],
    )?;
    tx.execute(
        "UPDATE call_intervals SET end_ms = ?2 WHERE call_id = ?1 AND end_ms IS NULL",
        params![f.call_id, f.duration_ms as i64],
    )?;
    // The UPDATE above took the write lock, so reading the ledger head here cannot race another
    // writer. The entry is built from the row as just written.
    match get_call_row(&tx, f.call_id) {
        Ok(row) => {
            ledger::append_call(&tx, row.id, row.sha256.as_deref(), &row.ledger_detail())?;
        }
        Err(StoreError::NoSuchCall(_)) => {}
        Err(e) => return Err(e),
    }
    tx.commit()?;
    Ok(())
}

pub fn open_interval(
    conn: &Connection,
    call_id: i64,
    kind: &str,
    start_ms: u64,
    by: Option<&str>,
    reason: Option<&str>,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO call_intervals (call_id, kind, start_ms, by, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![call_id, kind, start_ms as i64, by, reason],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn close_interval(conn: &Connection, interval_id: i64, end_ms: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE call_intervals SET end_ms = ?2 WHERE id = ?1",
        params![interval_id, end_ms as i64],
    )?;
    Ok(())
}

pub fn add_tags(conn: &Connection, call_id: i64, tags: &[String]) -> Result<(), StoreError> {
    for t in tags {
        conn.execute(
            "INSERT OR IGNORE INTO call_tags (call_id, tag) VALUES (?1, ?2)",
            params![call_id, t],
        )?;
    }
    Ok(())
}

/// Copies the write-ahead log into the database and truncates it to zero bytes, retrying for up
/// to `within` while another connection's read transaction keeps the log's older frames in use.
/// True when the log is empty. Erasure needs it: until then the log holds page images with the
/// erased values (https://sqlite.org/pragma.html#pragma_wal_checkpoint).
pub fn empty_wal(conn: &Connection, within: std::time::Duration) -> Result<bool, StoreError> {
    let deadline = std::time::Instant::now() + within;
    loop {
        // (busy, frames in the log, frames checkpointed); TRUNCATE leaves (0, 0, 0) on success.
        let (busy, log): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if busy == 0 && log <= 0 {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Refuses to add to a call whose deletion has begun (`garbage` or `deleted`): notes and
/// transcripts would bring back what an erasure removed. Migration 13's triggers refuse the same
/// inside SQLite, whatever writes; this check gives the caller an error it can name.
pub fn ensure_not_deleted(conn: &Connection, call_id: i64) -> Result<(), StoreError> {
    let status: Option<CallStatus> = conn
        .query_row("SELECT status FROM calls WHERE id = ?1", [call_id], |r| {
            r.get(0)
        })
        .optional()?;
    match status {
        None => Err(StoreError::NoSuchCall(call_id)),
        Some(CallStatus::Garbage | CallStatus::Deleted) => Err(StoreError::CallDeleted(call_id)),
        Some(_) => Ok(()),
    }
}

pub fn update_meta(conn: &Connection, call_id: i64, m: &CallMeta) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE calls SET agent = COALESCE(?2, agent), direction = COALESCE(?3, direction),
             remote_number = COALESCE(?4, remote_number), campaign = COALESCE(?5, campaign),
             external_id = COALESCE(?6, external_id) WHERE id = ?1",
        params![
            call_id,
            m.agent,
            m.direction,
            m.remote_number,
            m.campaign,
            m.external_id
        ],
    )?;
    Ok(())
}

/// Where a call is in its life: `recording` from the moment its row exists, then `complete`
/// (stopped) or `interrupted` (crash, disk full, import of a damaged source); `garbage` while its
/// deletion is in progress (store::lifecycle) and `deleted` after. The one list of them: the
/// index, the API, the CLI and the pages all take it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Recording,
    Complete,
    Interrupted,
    Garbage,
    Deleted,
}

impl CallStatus {
    pub const ALL: [CallStatus; 5] = [
        CallStatus::Recording,
        CallStatus::Complete,
        CallStatus::Interrupted,
        CallStatus::Garbage,
        CallStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Recording => "recording",
            CallStatus::Complete => "complete",
            CallStatus::Interrupted => "interrupted",
            CallStatus::Garbage => "garbage",
            CallStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Result<CallStatus, BadStatus> {
        CallStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| BadStatus(s.to_owned()))
    }

    /// The names, for messages: "recording, complete, interrupted, garbage or deleted".
    pub fn names() -> String {
        let names: Vec<&str> = CallStatus::ALL.iter().map(|c| c.as_str()).collect();
        format!(
            "{} or {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown call status {:?}: use {}", .0, CallStatus::names())]
pub struct BadStatus(pub String);

/// `status == "complete"` reads as the stored text does (scripts and tests compare with it).
impl PartialEq<&str> for CallStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl rusqlite::types::ToSql for CallStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for CallStatus {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        CallStatus::parse(v.as_str()?)
            .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub kind: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub id: i64,
    pub box_id: String,
    pub seat_id: String,
    pub mode: String,
    pub status: CallStatus,
    pub started_at_utc: String,
    pub started_mono_ms: i64,
    pub ended_at_utc: Option<String>,
    pub duration_ms: i64,
    pub bytes: i64,
    pub sha256: Option<String>,
    pub dropped_frames: i64,
    pub rate_hz: i64,
    pub bitrate_bps: i64,
    #[serde(flatten)]
    pub meta: CallMeta,
    pub rel_path: String,
    pub end_reason: Option<String>,
    pub note: Option<String>,
    /// When the recording was deleted (status `deleted`), or None.
    pub deleted_at_utc: Option<String>,
    /// The current outcome's code and class (store::outcomes), or None.
    pub outcome: Option<String>,
    pub outcome_class: Option<String>,
    /// The current outcome's amount in currency units, if it carries one.
    pub outcome_amount: Option<f64>,
    pub tags: Vec<String>,
    pub intervals: Vec<Interval>,
}

pub(crate) const CALL_COLUMNS: &str = "id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc,
    duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent, direction, remote_number,
    campaign, external_id, rel_path, end_reason, note, deleted_at_utc, outcome, outcome_class,
    outcome_amount_minor";

pub(crate) fn row_to_call(r: &rusqlite::Row) -> rusqlite::Result<CallRow> {
    Ok(CallRow {
        id: r.get(0)?,
        box_id: r.get(1)?,
        seat_id: r.get(2)?,
        mode: r.get(3)?,
        status: r.get(4)?,
        started_at_utc: r.get(5)?,
        started_mono_ms: r.get(6)?,
        ended_at_utc: r.get(7)?,
        duration_ms: r.get(8)?,
        bytes: r.get(9)?,
        sha256: r.get(10)?,
        dropped_frames: r.get(11)?,
        rate_hz: r.get(12)?,
        bitrate_bps: r.get(13)?,
        meta: CallMeta {
            agent: r.get(14)?,
            direction: r.get(15)?,
            remote_number: r.get(16)?,
            campaign: r.get(17)?,
            external_id: r.get(18)?,
        },
        rel_path: r.get(19)?,
        end_reason: r.get(20)?,
        note: r.get(21)?,
        deleted_at_utc: r.get(22)?,
        outcome: r.get(23)?,
        outcome_class: r.get(24)?,
        outcome_amount: r.get::<_, Option<i64>>(25)?.map(|m| m as f64 / 100.0),
        tags: Vec::new(),
        intervals: Vec::new(),
    })
}

pub(crate) fn fill_details(conn: &Connection, c: &mut CallRow) -> Result<(), StoreError> {
    let mut st =
        conn.prepare_cached("SELECT tag FROM call_tags WHERE call_id = ?1 ORDER BY tag")?;
    c.tags = st
        .query_map([c.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare_cached(
        "SELECT kind, start_ms, end_ms, by, reason FROM call_intervals WHERE call_id = ?1 ORDER BY start_ms, id",
    )?;
    c.intervals = st
        .query_map([c.id], |r| {
            Ok(Interval {
                kind: r.get(0)?,
                start_ms: r.get(1)?,
                end_ms: r.get(2)?,
                by: r.get(3)?,
                reason: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// A call's file under the storage dir, from its row's `rel_path`. The row may only hold plain
/// relative components (no `..`, no absolute path), so no row can point outside the storage
/// dir; None for one that tries. Every reader of a call's file goes through here.
pub fn call_file(storage_dir: &Path, rel_path: &str) -> Option<std::path::PathBuf> {
    let rel = Path::new(rel_path);
    let plain = !rel.is_absolute()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| storage_dir.join(rel))
}

impl CallRow {
    /// What the call's ledger entry commits to (store::ledger, layout v2: no customer number).
    pub fn ledger_detail(&self) -> ledger::CallDetail {
        ledger::CallDetail {
            agent: self.meta.agent.clone(),
            box_id: self.box_id.clone(),
            bytes: self.bytes,
            campaign: self.meta.campaign.clone(),
            direction: self.meta.direction.clone(),
            duration_ms: self.duration_ms,
            ended_at_utc: self.ended_at_utc.clone(),
            seat_id: self.seat_id.clone(),
            started_at_utc: self.started_at_utc.clone(),
            status: self.status.as_str().to_owned(),
        }
    }
}

pub fn get_call(conn: &Connection, id: i64) -> Result<CallRow, StoreError> {
    let mut c = get_call_row(conn, id)?;
    fill_details(conn, &mut c)?;
    Ok(c)
}

/// The call's own row, without tags and intervals (left empty): all that serving its file needs.
pub fn get_call_row(conn: &Connection, id: i64) -> Result<CallRow, StoreError> {
    conn.prepare_cached(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = ?1"))?
        .query_row([id], row_to_call)
        .optional()?
        .ok_or(StoreError::NoSuchCall(id))
}

#[derive(Debug, Default, Clone)]
pub struct CallFilter {
    pub seat: Option<String>,
    pub agent: Option<String>,
    pub status: Option<String>,
    pub since_utc: Option<String>,
    pub until_utc: Option<String>,
    pub limit: Option<u32>,
}

/// Calls matching the filter, newest first. Values are bound as parameters, never spliced.
pub fn list_calls(conn: &Connection, f: &CallFilter) -> Result<Vec<CallRow>, StoreError> {
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM calls
         WHERE (?1 IS NULL OR seat_id = ?1) AND (?2 IS NULL OR agent = ?2) AND (?3 IS NULL OR status = ?3)
           AND (?4 IS NULL OR started_at_utc >= ?4) AND (?5 IS NULL OR started_at_utc < ?5)
         ORDER BY started_at_utc DESC, id DESC LIMIT ?6"
    );
    let mut st = conn.prepare(&sql)?;
    let limit = i64::from(f.limit.unwrap_or(1000));
    let mut rows: Vec<CallRow> = st
        .query_map(
            params![f.seat, f.agent, f.status, f.since_utc, f.until_utc, limit],
            row_to_call,
        )?
        .collect::<Result<_, _>>()?;
    for c in &mut rows {
        fill_details(conn, c)?;
    }
    Ok(rows)
}

/// Rows still marked `recording` (crash recovery input).
pub fn recording_calls(conn: &Connection) -> Result<Vec<CallRow>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE status = 'recording' ORDER BY id"
    ))?;
    let rows = st.query_map([], row_to_call)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::testutil::{self, TempStore, TestCall, TestResult, DB_FILE};
    use super::*;

    /// A row whose path climbs out of the storage dir makes neither deletion unlink nor crash
    /// recovery rewrite the file it points at (both joined the row's path directly before).
    #[test]
    fn rows_pointing_outside_the_storage_dir_touch_nothing() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let outside = tempfile::tempdir()?;
        let victim = outside.path().join("victim.opus");
        std::fs::write(&victim, b"not yours")?;
        // `<storage>/../<outside>/victim.opus`, spelled with `..`, and the absolute path.
        let climbing = format!(
            "../{}/victim.opus",
            outside.path().strip_prefix("/")?.display()
        );
        let climbing = format!(
            "{}{climbing}",
            "../".repeat(dir.path().components().count())
        );
        for rel in [climbing, victim.display().to_string()] {
            assert!(call_file(dir.path(), &rel).is_none(), "{rel}");
            let call = TestCall::new().insert(&conn)?;
            conn.execute(
                "UPDATE calls SET rel_path = ?2, status = 'recording' WHERE id = ?1",
                rusqlite::params![call.id, rel],
            )?;
            let row = get_call_row(&conn, call.id)?;
            assert!(recovery::recover_call(&conn, dir.path(), &row).is_err());
            testutil::set_deleted_by_hand(&conn, call.id, "garbage", "test")?;
            assert!(
                lifecycle::finish_garbage(&conn, dir.path(), "2026-12-05T00:00:00.000Z").is_err()
            );
            assert_eq!(std::fs::read(&victim)?, b"not yours", "{rel}");
            conn.execute(
                "UPDATE calls SET status = 'deleted' WHERE id = ?1",
                [call.id],
            )?;
        }
        Ok(())
    }

    #[test]
    fn migrates_and_round_trips() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, schema_version());
        let nc = TestCall::new()
            .seat("s1")
            .started_mono_ms(5)
            .agent("alice")
            .direction("inbound");
        let (id, rel) = insert_call(&conn, nc.new_call())?;
        assert_eq!(rel, format!("calls/2026/11/27/{id}.opus"));
        let iv = open_interval(&conn, id, "pause", 1000, Some("cti"), Some("card"))?;
        close_interval(&conn, iv, 4000)?;
        add_tags(&conn, id, &["vip".into(), "vip".into()])?;
        let c = get_call(&conn, id)?;
        assert_eq!(c.status, CallStatus::Recording);
        assert_eq!(c.tags, vec!["vip"]);
        assert_eq!(c.intervals[0].end_ms, Some(4000));
        let found = list_calls(
            &conn,
            &CallFilter {
                agent: Some("alice".into()),
                ..Default::default()
            },
        )?;
        assert_eq!(found.len(), 1);
        let none = list_calls(
            &conn,
            &CallFilter {
                agent: Some("x' OR 1=1 --".into()),
                ..Default::default()
            },
        )?;
        assert!(none.is_empty());
        let bad = conn.execute(
            "UPDATE calls SET direction = 'sideways' WHERE id = ?1",
            [id],
        );
        assert!(
            bad.is_err(),
            "CHECK constraint must reject an unknown direction"
        );
        // Reopening does not re-run migrations.
        drop(conn);
        let conn = open_rw(&dir.path().join(DB_FILE))?;
        assert_eq!(get_call(&conn, id)?.id, id);
        Ok(())
    }

    /// `fixtures/schema-v<N>.sql` without its header: the comment lines before
    /// `-- user_version:`, which say what the file is.
    fn schema_fixture(version: i64) -> TestResult<String> {
        let path = format!(
            "{}/fixtures/schema-v{version}.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{path}: {e}. A new migration needs its fixture: dump a fresh index with \
                 store::testutil::schema_dump (or the sqlite3 command in its doc) and review it"
            )
        })?;
        let start = text
            .find("-- user_version: ")
            .ok_or_else(|| format!("{path} has no `-- user_version:` line"))?;
        Ok(text[start..].to_owned())
    }

    /// The schema is the one the inline migrations made before they moved to files (the
    /// fixture), to the byte: every table, index, trigger and FTS shadow table, with its SQL.
    #[test]
    fn a_fresh_index_has_the_fixture_schema() -> TestResult {
        let store = TempStore::new()?;
        let dump = testutil::schema_dump(&store.conn)?;
        assert_eq!(dump, schema_fixture(schema_version())?);
        Ok(())
    }

    /// Every file in `migrations/` is listed, in file-number order, numbered from 0001 without
    /// a gap: the list's order is what decides the schema version.
    #[test]
    fn migration_files_are_numbered_and_all_listed() -> TestResult {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let number = format!("{:04}_", i + 1);
            assert!(
                m.file.starts_with(&number) && m.file.ends_with(".sql"),
                "migration {} is {}",
                i + 1,
                m.file
            );
            assert!(!m.sql.trim().is_empty(), "{} is empty", m.file);
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations");
        let mut on_disk = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        on_disk.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
        assert_eq!(on_disk, listed);
        Ok(())
    }

    /// An index left by an older callrec (each earlier schema version, with rows of that
    /// version in it) upgrades to the current schema, the same one a fresh index has, keeps
    /// its rows, and is sound.
    #[test]
    fn an_index_of_every_older_version_upgrades() -> TestResult {
        let fixture = schema_fixture(schema_version())?;
        for version in 0..MIGRATIONS.len() {
            let dir = tempfile::tempdir()?;
            let old = testutil::index_at_version(&dir.path().join(DB_FILE), version)?;
            if version >= 1 {
                // Only the columns of version 1, which every later version still has.
                old.execute_batch(
                    "INSERT INTO calls (id, box_id, seat_id, mode, status, started_at_utc,
                         started_mono_ms, ended_at_utc, duration_ms, bytes, sha256, rate_hz,
                         bitrate_bps, agent, direction, remote_number, campaign, rel_path, end_reason)
                     VALUES (7, 'b', 's1', 'control', 'complete', '2026-11-27T10:00:00.000Z', 5,
                         '2026-11-27T10:00:02.000Z', 2000, 4096, NULL, 16000, 16000, 'alice',
                         'inbound', '+4930123456', 'sales', 'calls/2026/11/27/7.opus', 'stop');
                     INSERT INTO call_intervals (call_id, kind, start_ms, end_ms, by, reason)
                     VALUES (7, 'pause', 500, 900, 'cti', 'card');
                     INSERT INTO call_tags (call_id, tag) VALUES (7, 'vip');",
                )?;
            }
            if version >= 2 {
                old.execute(
                    "INSERT INTO notes (call_id, at_ms, author, text, created_at_utc)
                     VALUES (7, 1000, 'rita', 'check the greeting', '2026-11-28T09:00:00.000Z')",
                    [],
                )?;
            }
            if version >= 4 {
                old.execute_batch(
                    "INSERT INTO scorecards (id, slug, version, name, content_hash, body, created_by, created_at_utc)
                     VALUES (1, 'card', 1, 'Card', 'h', '{}', 'lead', '2026-11-28T09:00:00.000Z');
                     INSERT INTO evaluations (call_id, scorecard_id, reviewer, agent, status, answers,
                         created_at_utc, updated_at_utc)
                     VALUES (7, 1, 'rita', 'alice', 'draft', '[]', '2026-11-28T09:00:00.000Z',
                         '2026-11-28T09:00:00.000Z');",
                )?;
            }
            drop(old);

            let TempStore { dir: _dir, conn } = TempStore::in_dir(dir)?;
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            assert_eq!(v, schema_version(), "from version {version}");
            assert_eq!(
                testutil::integrity(&conn)?,
                (vec!["ok".to_owned()], vec![]),
                "from version {version}"
            );
            let foreign_keys: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
            assert_eq!(
                foreign_keys, 1,
                "foreign keys are back on after the upgrade"
            );
            assert_eq!(
                testutil::schema_dump(&conn)?,
                fixture,
                "from version {version}"
            );
            if version >= 1 {
                let c = get_call(&conn, 7)?;
                assert_eq!(
                    (c.status.as_str(), c.duration_ms, c.bytes, c.deleted_at_utc),
                    ("complete", 2000, 4096, None)
                );
                assert_eq!(c.meta.agent.as_deref(), Some("alice"));
                assert_eq!(c.meta.remote_number.as_deref(), Some("+4930123456"));
                assert_eq!(c.rel_path, "calls/2026/11/27/7.opus");
                assert_eq!(c.tags, ["vip"]);
                assert_eq!((c.intervals.len(), c.intervals[0].end_ms), (1, Some(900)));
            }
            let count = |table: &str| -> rusqlite::Result<i64> {
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            };
            assert_eq!(count("notes")?, i64::from(version >= 2), "from {version}");
            assert_eq!(
                count("evaluations")?,
                i64::from(version >= 4),
                "from {version}"
            );
        }
        Ok(())
    }
}
