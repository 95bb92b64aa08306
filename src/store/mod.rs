//! The SQLite call index: schema and one-way migrations, call rows, pause/gap intervals, tags.
//!
//! WAL mode, `synchronous = FULL`, foreign keys on. One process writes (the recorder); the CLI
//! opens the same file read-only. A call row exists from the moment recording starts
//! (invariant 2). Timestamps are UTC text with milliseconds (`2026-11-27T17:20:00.123Z`), which
//! sorts and compares correctly as text.

pub mod alarms;
pub mod audit;
pub mod calibration;
pub mod compliance;
pub mod holds;
pub mod identity;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod notes;
pub mod qa;
pub mod recovery;
pub mod retention;
pub mod sampling;
pub mod search;
pub mod users;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}. Check the path and permissions; `callrec check` verifies the index")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "database schema version {found} is newer than this callrec ({supported}); upgrade callrec"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("no call with id {0}")]
    NoSuchCall(i64),
    #[error("upgrading the index to schema version {version} failed: {problem}. Nothing was changed; restore the index from a backup or report this")]
    Migration { version: i64, problem: String },
}

/// Migrations, applied in order; index i upgrades schema version i to i + 1. Never edit one that
/// has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE calls (
    id               INTEGER PRIMARY KEY,
    box_id           TEXT NOT NULL,
    seat_id          TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('control', 'vox', 'continuous')),
    status           TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted')),
    started_at_utc   TEXT NOT NULL,
    started_mono_ms  INTEGER NOT NULL,
    ended_at_utc     TEXT,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,
    dropped_frames   INTEGER NOT NULL DEFAULT 0,
    rate_hz          INTEGER NOT NULL,
    bitrate_bps      INTEGER NOT NULL,
    agent            TEXT,
    direction        TEXT CHECK (direction IN ('inbound', 'outbound')),
    remote_number    TEXT,
    campaign         TEXT,
    external_id      TEXT,
    rel_path         TEXT NOT NULL UNIQUE,
    end_reason       TEXT,
    note             TEXT
);
CREATE INDEX calls_started ON calls (started_at_utc);
CREATE INDEX calls_seat ON calls (seat_id, started_at_utc);
CREATE INDEX calls_agent ON calls (agent, started_at_utc);
CREATE INDEX calls_status ON calls (status);
CREATE TABLE call_intervals (
    id        INTEGER PRIMARY KEY,
    call_id   INTEGER NOT NULL REFERENCES calls (id),
    kind      TEXT NOT NULL CHECK (kind IN ('pause', 'gap')),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER,
    by        TEXT,
    reason    TEXT
);
CREATE INDEX call_intervals_call ON call_intervals (call_id);
CREATE TABLE call_tags (
    call_id  INTEGER NOT NULL REFERENCES calls (id),
    tag      TEXT NOT NULL,
    PRIMARY KEY (call_id, tag)
);
"#,
    r#"
CREATE INDEX calls_number ON calls (remote_number);
CREATE INDEX calls_duration ON calls (duration_ms);
CREATE INDEX calls_campaign ON calls (campaign, started_at_utc);
CREATE INDEX call_tags_tag ON call_tags (tag, call_id);
CREATE TABLE users (
    id                      INTEGER PRIMARY KEY,
    username                TEXT NOT NULL UNIQUE,
    role                    TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'qa', 'agent', 'auditor')),
    agent_id                TEXT,
    team                    TEXT,
    password_hash           TEXT NOT NULL,
    must_change             INTEGER NOT NULL DEFAULT 1,
    disabled                INTEGER NOT NULL DEFAULT 0,
    failed_logins           INTEGER NOT NULL DEFAULT 0,
    locked_until_utc        TEXT,
    created_at_utc          TEXT NOT NULL,
    password_changed_at_utc TEXT
);
CREATE TABLE sessions (
    token_sha256     TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    csrf             TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL,
    last_seen_utc    TEXT NOT NULL,
    ip               TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE session_plays (
    token_sha256  TEXT NOT NULL REFERENCES sessions (token_sha256) ON DELETE CASCADE,
    call_id       INTEGER NOT NULL REFERENCES calls (id),
    PRIMARY KEY (token_sha256, call_id)
);
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    token_sha256    TEXT NOT NULL UNIQUE,
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    revoked_at_utc  TEXT,
    last_used_utc   TEXT
);
CREATE TABLE notes (
    id              INTEGER PRIMARY KEY,
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    at_ms           INTEGER NOT NULL CHECK (at_ms >= 0),
    author          TEXT NOT NULL,
    text            TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    deleted_at_utc  TEXT
);
CREATE INDEX notes_call ON notes (call_id);
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at_utc     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    call_id    INTEGER,
    detail     TEXT NOT NULL,
    ip         TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at_utc);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);
CREATE INDEX audit_call ON audit (call_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    r#"
CREATE TABLE call_metrics (
    call_id                   INTEGER PRIMARY KEY REFERENCES calls (id),
    agent_talk_ms             INTEGER NOT NULL,
    customer_talk_ms          INTEGER NOT NULL,
    talk_ratio                REAL,
    dead_air_count            INTEGER NOT NULL,
    dead_air_total_ms         INTEGER NOT NULL,
    dead_air_longest_ms       INTEGER NOT NULL,
    overtalk_count            INTEGER NOT NULL,
    overtalk_total_ms         INTEGER NOT NULL,
    agent_interruptions       INTEGER NOT NULL,
    response_latency_mean_ms  INTEGER,
    response_latency_max_ms   INTEGER,
    longest_silence_ms        INTEGER NOT NULL,
    detail                    TEXT NOT NULL
);
CREATE INDEX call_metrics_dead_air ON call_metrics (dead_air_longest_ms);
CREATE INDEX call_metrics_overtalk ON call_metrics (overtalk_total_ms);
"#,
    r#"
CREATE TABLE scorecards (
    id              INTEGER PRIMARY KEY,
    slug            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    UNIQUE (slug, version)
);
CREATE TABLE evaluations (
    id                INTEGER PRIMARY KEY,
    call_id           INTEGER NOT NULL REFERENCES calls (id),
    scorecard_id      INTEGER NOT NULL REFERENCES scorecards (id),
    reviewer          TEXT NOT NULL,
    agent             TEXT,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'submitted', 'acknowledged', 'disputed', 'resolved')),
    answers           TEXT NOT NULL,
    comment           TEXT,
    score             TEXT,
    score_percent     REAL,
    passed            INTEGER,
    created_at_utc    TEXT NOT NULL,
    updated_at_utc    TEXT NOT NULL,
    submitted_at_utc  TEXT
);
CREATE INDEX evaluations_call ON evaluations (call_id);
CREATE INDEX evaluations_agent ON evaluations (agent, submitted_at_utc);
CREATE INDEX evaluations_reviewer ON evaluations (reviewer, status);
CREATE TABLE evaluation_disputes (
    id              INTEGER PRIMARY KEY,
    evaluation_id   INTEGER NOT NULL REFERENCES evaluations (id),
    question        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    raised_by       TEXT NOT NULL,
    raised_at_utc   TEXT NOT NULL,
    decision        TEXT CHECK (decision IN ('upheld', 'changed', 'accepted')),
    new_value       TEXT,
    decided_by      TEXT,
    decided_at_utc  TEXT,
    decision_note   TEXT
);
CREATE INDEX evaluation_disputes_eval ON evaluation_disputes (evaluation_id);
"#,
    r#"
CREATE TABLE sampling_plans (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    filters          TEXT NOT NULL,
    quota_per_agent  INTEGER,
    reviewers        TEXT NOT NULL,
    scorecard        TEXT NOT NULL,
    due_days         INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL
);
CREATE TABLE sample_draws (
    id                 INTEGER PRIMARY KEY,
    plan_id            INTEGER NOT NULL REFERENCES sampling_plans (id),
    since_utc          TEXT NOT NULL,
    until_utc          TEXT NOT NULL,
    seed               TEXT NOT NULL,
    candidates_sha256  TEXT NOT NULL,
    candidates         TEXT NOT NULL,
    drawn_by           TEXT NOT NULL,
    drawn_at_utc       TEXT NOT NULL
);
CREATE TABLE assignments (
    id              INTEGER PRIMARY KEY,
    draw_id         INTEGER NOT NULL REFERENCES sample_draws (id),
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    agent           TEXT NOT NULL,
    reviewer        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'swapped')),
    due_utc         TEXT NOT NULL,
    swap_reason     TEXT,
    replaced_by     INTEGER REFERENCES assignments (id)
);
CREATE INDEX assignments_reviewer ON assignments (reviewer, status);
CREATE INDEX assignments_draw ON assignments (draw_id);
"#,
    // Measured at a million calls (benches/search_1m.sh): a number prefix sorted by start time
    // needs the start time in the index (37 → 7 ms p95); status and agent + campaign likewise.
    r#"
DROP INDEX calls_number;
CREATE INDEX calls_number ON calls (remote_number, started_at_utc);
DROP INDEX calls_status;
CREATE INDEX calls_status ON calls (status, started_at_utc);
CREATE INDEX calls_agent_campaign ON calls (agent, campaign, started_at_utc);
"#,
    // Scripts and spot checks, transcripts with full-text search, calibration sessions.
    r#"
CREATE TABLE scripts (
    id              INTEGER PRIMARY KEY,
    slug            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    UNIQUE (slug, version)
);
CREATE TABLE compliance_checks (
    id                INTEGER PRIMARY KEY,
    call_id           INTEGER NOT NULL REFERENCES calls (id),
    script_id         INTEGER NOT NULL REFERENCES scripts (id),
    reviewer          TEXT NOT NULL,
    agent             TEXT,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'submitted')),
    marks             TEXT NOT NULL,
    outcome           TEXT,
    passed            INTEGER,
    created_at_utc    TEXT NOT NULL,
    updated_at_utc    TEXT NOT NULL,
    submitted_at_utc  TEXT
);
CREATE INDEX compliance_checks_call ON compliance_checks (call_id);
CREATE INDEX compliance_checks_agent ON compliance_checks (agent, submitted_at_utc);
CREATE TABLE transcript_segments (
    id        INTEGER PRIMARY KEY,
    call_id   INTEGER NOT NULL REFERENCES calls (id),
    start_ms  INTEGER NOT NULL,
    end_ms    INTEGER NOT NULL,
    speaker   TEXT,
    text      TEXT NOT NULL
);
CREATE INDEX transcript_segments_call ON transcript_segments (call_id, start_ms);
CREATE TABLE transcripts (
    call_id          INTEGER PRIMARY KEY REFERENCES calls (id),
    source           TEXT NOT NULL,
    format           TEXT NOT NULL,
    segments         INTEGER NOT NULL,
    imported_by      TEXT NOT NULL,
    imported_at_utc  TEXT NOT NULL
);
-- External-content FTS5 index over the segments, kept in step by triggers.
CREATE VIRTUAL TABLE transcript_fts USING fts5 (text, content = 'transcript_segments', content_rowid = 'id');
CREATE TRIGGER transcript_fts_ins AFTER INSERT ON transcript_segments BEGIN
    INSERT INTO transcript_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER transcript_fts_del AFTER DELETE ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE calibrations (
    id              INTEGER PRIMARY KEY,
    call_id         INTEGER NOT NULL REFERENCES calls (id),
    scorecard_id    INTEGER NOT NULL REFERENCES scorecards (id),
    title           TEXT NOT NULL,
    reviewers       TEXT NOT NULL,
    reference       TEXT,
    due_utc         TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_by      TEXT NOT NULL,
    created_at_utc  TEXT NOT NULL,
    closed_at_utc   TEXT
);
ALTER TABLE evaluations ADD COLUMN calibration_id INTEGER REFERENCES calibrations (id);
CREATE INDEX evaluations_calibration ON evaluations (calibration_id);
"#,
    // The evidence ledger: one hash-chained entry per finalized call, and a tombstone per
    // deletion. No foreign key: a tombstone outlives its call. Append-only like the audit log.
    r#"
CREATE TABLE ledger (
    seq            INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('call', 'tombstone')),
    call_id        INTEGER NOT NULL,
    file_sha256    TEXT,
    detail         TEXT NOT NULL,
    prev_sha256    TEXT NOT NULL,
    entry_sha256   TEXT NOT NULL UNIQUE,
    at_utc         TEXT NOT NULL
);
CREATE INDEX ledger_call ON ledger (call_id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
    // Legacy imports: one row per source file (by content hash), so importing the same source
    // twice imports it once.
    r#"
CREATE TABLE imports (
    source_sha256    TEXT PRIMARY KEY,
    call_id          INTEGER NOT NULL REFERENCES calls (id),
    source_path      TEXT NOT NULL,
    source_format    TEXT NOT NULL,
    imported_by      TEXT NOT NULL,
    imported_at_utc  TEXT NOT NULL
);
"#,
    // Facts about the store itself; `storage_id` must match the STORAGE-ID file (store::identity).
    r#"
CREATE TABLE box_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"#,
    // Data lifecycle (retention, legal hold, erasure, disk pressure). The calls table is rebuilt
    // (SQLite's 12-step ALTER, https://sqlite.org/lang_altertable.html#otheralter) because its
    // status CHECK gains `garbage` (marked for deletion, file not yet unlinked) and `deleted`.
    r#"
CREATE TABLE deletions (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('retention', 'erasure', 'pressure', 'manual')),
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    requested_by     TEXT NOT NULL,
    created_at_utc   TEXT NOT NULL,
    finished_at_utc  TEXT,
    calls            INTEGER NOT NULL,
    receipt          TEXT,
    receipt_sig      TEXT
);
CREATE TABLE calls_new (
    id               INTEGER PRIMARY KEY,
    box_id           TEXT NOT NULL,
    seat_id          TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('control', 'vox', 'continuous')),
    status           TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted', 'garbage', 'deleted')),
    started_at_utc   TEXT NOT NULL,
    started_mono_ms  INTEGER NOT NULL,
    ended_at_utc     TEXT,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,
    dropped_frames   INTEGER NOT NULL DEFAULT 0,
    rate_hz          INTEGER NOT NULL,
    bitrate_bps      INTEGER NOT NULL,
    agent            TEXT,
    direction        TEXT CHECK (direction IN ('inbound', 'outbound')),
    remote_number    TEXT,
    campaign         TEXT,
    external_id      TEXT,
    rel_path         TEXT NOT NULL UNIQUE,
    end_reason       TEXT,
    note             TEXT,
    deletion_id      INTEGER REFERENCES deletions (id),
    deleted_at_utc   TEXT,
    CHECK ((status IN ('garbage', 'deleted')) = (deletion_id IS NOT NULL))
);
INSERT INTO calls_new (id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
    ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent,
    direction, remote_number, campaign, external_id, rel_path, end_reason, note)
SELECT id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms,
    ended_at_utc, duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent,
    direction, remote_number, campaign, external_id, rel_path, end_reason, note FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_started ON calls (started_at_utc);
CREATE INDEX calls_seat ON calls (seat_id, started_at_utc);
CREATE INDEX calls_agent ON calls (agent, started_at_utc);
CREATE INDEX calls_duration ON calls (duration_ms);
CREATE INDEX calls_campaign ON calls (campaign, started_at_utc);
CREATE INDEX calls_number ON calls (remote_number, started_at_utc);
CREATE INDEX calls_status ON calls (status, started_at_utc);
CREATE INDEX calls_agent_campaign ON calls (agent, campaign, started_at_utc);
CREATE INDEX calls_deletion ON calls (deletion_id);
CREATE TABLE legal_holds (
    id               INTEGER PRIMARY KEY,
    scope            TEXT NOT NULL CHECK (scope IN ('call', 'agent', 'numbers')),
    call_id          INTEGER REFERENCES calls (id),
    agent            TEXT,
    number_from      TEXT,
    number_to        TEXT,
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    placed_by        TEXT NOT NULL,
    placed_at_utc    TEXT NOT NULL,
    released_by      TEXT,
    released_at_utc  TEXT,
    release_reason   TEXT,
    CHECK ((scope = 'call') = (call_id IS NOT NULL)),
    CHECK ((scope = 'agent') = (agent IS NOT NULL)),
    CHECK ((scope = 'numbers') = (number_from IS NOT NULL AND number_to IS NOT NULL)),
    -- Four eyes: the admin who placed a hold can never be the one who releases it.
    CHECK (released_by IS NULL OR released_by <> placed_by)
);
CREATE INDEX legal_holds_active ON legal_holds (released_at_utc);
CREATE TABLE alarms (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    detail          TEXT NOT NULL,
    raised_at_utc   TEXT NOT NULL,
    cleared_at_utc  TEXT
);
CREATE UNIQUE INDEX alarms_active ON alarms (kind) WHERE cleared_at_utc IS NULL;
"#,
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
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from_version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
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
    pub status: &'a str,
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
            ledger::append_call(&tx, &row)?;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub status: String,
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
    pub tags: Vec<String>,
    pub intervals: Vec<Interval>,
}

pub(crate) const CALL_COLUMNS: &str = "id, box_id, seat_id, mode, status, started_at_utc, started_mono_ms, ended_at_utc,
    duration_ms, bytes, sha256, dropped_frames, rate_hz, bitrate_bps, agent, direction, remote_number,
    campaign, external_id, rel_path, end_reason, note, deleted_at_utc";

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
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    #[test]
    fn migrates_and_round_trips() -> TestResult {
        let dir = std::env::temp_dir().join(format!("callrec-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let conn = open_rw(&path)?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, schema_version());
        let nc = NewCall {
            box_id: "b".into(),
            seat_id: "s1".into(),
            mode: "control".into(),
            started_at_utc: "2026-11-27T10:00:00.000Z".into(),
            started_mono_ms: 5,
            rate_hz: 16000,
            bitrate_bps: 16000,
            meta: CallMeta {
                agent: Some("alice".into()),
                direction: Some("inbound".into()),
                ..Default::default()
            },
        };
        let (id, rel) = insert_call(&conn, &nc)?;
        assert_eq!(rel, format!("calls/2026/11/27/{id}.opus"));
        let iv = open_interval(&conn, id, "pause", 1000, Some("cti"), Some("card"))?;
        close_interval(&conn, iv, 4000)?;
        add_tags(&conn, id, &["vip".into(), "vip".into()])?;
        let c = get_call(&conn, id)?;
        assert_eq!(c.status, "recording");
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
        let conn = open_rw(&path)?;
        assert_eq!(get_call(&conn, id)?.id, id);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
