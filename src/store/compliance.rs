//! Scripts (versioned), spot checks against them, and imported transcripts with FTS5 search.
//!
//! A script version is an immutable row: saving a changed script always inserts version + 1, so
//! every check keeps the exact script it was made against. Unlike scorecards there is no
//! "edit in place while unused": a draft check points at its row from the moment it is created
//! and previews against it with every saved mark, so even an unsubmitted use pins the version.
//!
//! Check life cycle: `draft` (the reviewer saves marks; each save stores a preview outcome, but
//! `passed` stays NULL) → `submitted` (every step marked; outcome and `passed` fixed). A
//! submitted check is never changed; a second opinion is a new check.
//!
//! Transcripts: one per call, replaced whole on re-import in one transaction. The FTS5 index
//! `transcript_fts` follows `transcript_segments` through the triggers of migration 7.
//!
//! This module never splices user text into SQL: values are bound, and search text goes through
//! [`fts_query`] so that FTS5 syntax typed by a user cannot break or widen a query.

use super::StoreError;
use crate::qa::script::{self, CheckOutcome, MarkError, Script, ScriptError, StepMark};
use crate::qa::transcript::Segment;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error(transparent)]
    Mark(#[from] MarkError),
    #[error("no script {0:?}; list them with GET /api/scripts")]
    NoSuchScript(String),
    #[error("no compliance check {0}")]
    NoSuchCheck(i64),
    #[error("compliance check {0} is already submitted; start a new check")]
    NotDraft(i64),
    #[error("no call with id {0}")]
    NoSuchCall(i64),
    #[error(transparent)]
    Transcript(#[from] crate::qa::transcript::TranscriptError),
}

/// One stored version of a script.
#[derive(Debug, Clone, Serialize)]
pub struct StoredScript {
    /// Row id: checks point at this exact version.
    pub id: i64,
    pub slug: String,
    pub version: i64,
    pub name: String,
    pub content_hash: String,
    pub script: Script,
    pub created_by: String,
    pub created_at_utc: String,
}

const SCRIPT_SELECT: &str =
    "SELECT id, slug, version, name, content_hash, body, created_by, created_at_utc FROM scripts";

/// A JSON column as `T`; a body that does not parse is reported as a conversion failure of
/// that column rather than read as empty, so a damaged row cannot be overwritten unnoticed.
fn json_col<T: serde::de::DeserializeOwned>(text: &str, col: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn row_to_script(r: &rusqlite::Row) -> rusqlite::Result<StoredScript> {
    let body: String = r.get(5)?;
    Ok(StoredScript {
        id: r.get(0)?,
        slug: r.get(1)?,
        version: r.get(2)?,
        name: r.get(3)?,
        content_hash: r.get(4)?,
        // Read without validating: a stored version is history, and a later, stricter
        // validation must not make old checks unreadable.
        script: json_col(&body, 5)?,
        created_by: r.get(6)?,
        created_at_utc: r.get(7)?,
    })
}

/// The newest version of a script.
pub fn latest_script(
    conn: &Connection,
    slug: &str,
) -> Result<Option<StoredScript>, ComplianceError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SCRIPT_SELECT} WHERE slug = ?1 ORDER BY version DESC LIMIT 1"
        ))?
        .query_row([slug], row_to_script)
        .optional()?)
}

/// One exact version, by row id (what a check points at).
pub fn script_by_row(conn: &Connection, id: i64) -> Result<StoredScript, ComplianceError> {
    conn.prepare_cached(&format!("{SCRIPT_SELECT} WHERE id = ?1"))?
        .query_row([id], row_to_script)
        .optional()?
        .ok_or_else(|| ComplianceError::NoSuchScript(format!("#{id}")))
}

/// The newest version of every script, by slug.
pub fn list_scripts(conn: &Connection) -> Result<Vec<StoredScript>, ComplianceError> {
    let mut st = conn.prepare_cached(&format!(
        "{SCRIPT_SELECT} s WHERE version = (SELECT max(version) FROM scripts x WHERE x.slug = s.slug)
         ORDER BY slug"
    ))?;
    let rows = st.query_map([], row_to_script)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Saves a script: new slug → version 1; same content as the newest version → that version,
/// unchanged; changed → a new row with version + 1. Versions are never edited in place.
pub fn save_script(
    conn: &Connection,
    script: &Script,
    by: &str,
) -> Result<StoredScript, ComplianceError> {
    script::validate(script)?;
    let hash = script::content_hash(script);
    let prev = latest_script(conn, &script.slug)?;
    let version = match &prev {
        Some(p) if p.content_hash == hash => return Ok(p.clone()),
        Some(p) => p.version + 1,
        None => 1,
    };
    // Two saves racing for the same version fail on UNIQUE (slug, version) rather than
    // silently making two rows of one version.
    conn.execute(
        "INSERT INTO scripts (slug, version, name, content_hash, body, created_by, created_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            script.slug,
            version,
            script.name,
            hash,
            script::to_json(script)?,
            by,
            crate::clock::utc_now()
        ],
    )?;
    script_by_row(conn, conn.last_insert_rowid())
}

/// Installs the shipped scripts whose slug is not there yet; returns the slugs installed.
pub fn seed_default_scripts(conn: &Connection) -> Result<Vec<String>, ComplianceError> {
    let mut added = Vec::new();
    for s in script::defaults() {
        if latest_script(conn, &s.slug)?.is_none() {
            save_script(conn, &s, "system")?;
            added.push(s.slug);
        }
    }
    Ok(added)
}

/// A spot check of one call against one script version.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: i64,
    pub call_id: i64,
    pub script_id: i64,
    pub script_slug: String,
    pub script_version: i64,
    pub reviewer: String,
    /// The call's agent when the check was made.
    pub agent: Option<String>,
    /// `draft` or `submitted`.
    pub status: String,
    pub marks: Vec<StepMark>,
    /// The preview while a draft, the result once submitted; None before the first save.
    pub outcome: Option<CheckOutcome>,
    /// None while a draft.
    pub passed: Option<bool>,
    pub created_at_utc: String,
    pub updated_at_utc: String,
    pub submitted_at_utc: Option<String>,
}

const CHECK_SELECT: &str =
    "SELECT c.id, c.call_id, c.script_id, s.slug, s.version, c.reviewer, c.agent, c.status,
        c.marks, c.outcome, c.passed, c.created_at_utc, c.updated_at_utc, c.submitted_at_utc
     FROM compliance_checks c JOIN scripts s ON s.id = c.script_id";

fn row_to_check(r: &rusqlite::Row) -> rusqlite::Result<Check> {
    let marks: String = r.get(8)?;
    let outcome: Option<String> = r.get(9)?;
    Ok(Check {
        id: r.get(0)?,
        call_id: r.get(1)?,
        script_id: r.get(2)?,
        script_slug: r.get(3)?,
        script_version: r.get(4)?,
        reviewer: r.get(5)?,
        agent: r.get(6)?,
        status: r.get(7)?,
        marks: json_col(&marks, 8)?,
        outcome: outcome.map(|o| json_col(&o, 9)).transpose()?,
        passed: r.get(10)?,
        created_at_utc: r.get(11)?,
        updated_at_utc: r.get(12)?,
        submitted_at_utc: r.get(13)?,
    })
}

/// Starts a draft check of `call_id` against the script version `script_row_id`; the call's
/// current agent is copied so that later changes to the call do not move the check.
pub fn create_check(
    conn: &Connection,
    call_id: i64,
    script_row_id: i64,
    reviewer: &str,
) -> Result<i64, ComplianceError> {
    let agent: Option<String> = conn
        .prepare_cached("SELECT agent FROM calls WHERE id = ?1")?
        .query_row([call_id], |r| r.get(0))
        .optional()?
        .ok_or(ComplianceError::NoSuchCall(call_id))?;
    script_by_row(conn, script_row_id)?;
    let now = crate::clock::utc_now();
    conn.execute(
        "INSERT INTO compliance_checks (call_id, script_id, reviewer, agent, status, marks, created_at_utc, updated_at_utc)
         VALUES (?1, ?2, ?3, ?4, 'draft', '[]', ?5, ?5)",
        params![call_id, script_row_id, reviewer, agent, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn get_check(conn: &Connection, id: i64) -> Result<Check, ComplianceError> {
    conn.prepare_cached(&format!("{CHECK_SELECT} WHERE c.id = ?1"))?
        .query_row([id], row_to_check)
        .optional()?
        .ok_or(ComplianceError::NoSuchCheck(id))
}

/// Checks of a call, oldest first.
pub fn checks_for_call(conn: &Connection, call_id: i64) -> Result<Vec<Check>, ComplianceError> {
    let mut st = conn.prepare_cached(&format!(
        "{CHECK_SELECT} WHERE c.call_id = ?1 ORDER BY c.id"
    ))?;
    let rows = st
        .query_map([call_id], row_to_check)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The draft check and its script; NotDraft when already submitted.
fn draft(conn: &Connection, id: i64) -> Result<(Check, Script), ComplianceError> {
    let check = get_check(conn, id)?;
    if check.status != "draft" {
        return Err(ComplianceError::NotDraft(id));
    }
    let script = script_by_row(conn, check.script_id)?.script;
    Ok((check, script))
}

fn to_json_text<T: Serialize>(v: &T) -> Result<String, ComplianceError> {
    serde_json::to_string(v).map_err(|e| ComplianceError::Script(ScriptError::Json(e)))
}

/// Saves a draft's marks (partial marks are fine) and returns the preview outcome, which is
/// stored too; `passed` stays NULL until submit.
pub fn save_marks(
    conn: &Connection,
    id: i64,
    marks: &[StepMark],
    duration_ms: u64,
) -> Result<CheckOutcome, ComplianceError> {
    let (_, script) = draft(conn, id)?;
    let outcome = script::evaluate(&script, duration_ms, marks, false)?;
    // `AND status = 'draft'`: a submit that slipped in since the read wins, and this save fails.
    let changed = conn.execute(
        "UPDATE compliance_checks SET marks = ?2, outcome = ?3, updated_at_utc = ?4
         WHERE id = ?1 AND status = 'draft'",
        params![
            id,
            to_json_text(&marks)?,
            to_json_text(&outcome)?,
            crate::clock::utc_now()
        ],
    )?;
    if changed == 0 {
        return Err(ComplianceError::NotDraft(id));
    }
    Ok(outcome)
}

/// Submits a draft: every step must be marked. Stores the outcome and `passed`.
pub fn submit_check(
    conn: &Connection,
    id: i64,
    duration_ms: u64,
) -> Result<CheckOutcome, ComplianceError> {
    let (check, script) = draft(conn, id)?;
    let outcome = script::evaluate(&script, duration_ms, &check.marks, true)?;
    let now = crate::clock::utc_now();
    let changed = conn.execute(
        "UPDATE compliance_checks SET outcome = ?2, passed = ?3, status = 'submitted',
             submitted_at_utc = ?4, updated_at_utc = ?4
         WHERE id = ?1 AND status = 'draft'",
        params![id, to_json_text(&outcome)?, outcome.passed, now],
    )?;
    if changed == 0 {
        return Err(ComplianceError::NotDraft(id));
    }
    Ok(outcome)
}

/// Stores a call's transcript, replacing any earlier one, in one transaction, unaudited: the
/// unit tests' shortcut. Everything else imports through [`import_transcript`].
#[cfg(test)]
fn put_transcript(
    conn: &Connection,
    call_id: i64,
    segments: &[Segment],
    format: &str,
    source: &str,
    by: &str,
) -> Result<usize, ComplianceError> {
    let tx = conn.unchecked_transaction()?;
    let n = put_transcript_in(&tx, call_id, segments, format, source, by)?;
    tx.commit()?;
    Ok(n)
}

/// [`put_transcript`] inside the caller's transaction.
fn put_transcript_in(
    tx: &Connection,
    call_id: i64,
    segments: &[Segment],
    format: &str,
    source: &str,
    by: &str,
) -> Result<usize, ComplianceError> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM calls WHERE id = ?1")?
        .exists([call_id])?;
    if !exists {
        return Err(ComplianceError::NoSuchCall(call_id));
    }
    // Row by row so the FTS delete trigger removes each old segment from the index.
    tx.execute(
        "DELETE FROM transcript_segments WHERE call_id = ?1",
        [call_id],
    )?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO transcript_segments (call_id, start_ms, end_ms, speaker, text)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for s in segments {
            ins.execute(params![
                call_id,
                sql_ms(s.start_ms)?,
                sql_ms(s.end_ms)?,
                s.speaker,
                s.text
            ])?;
        }
    }
    tx.execute(
        "INSERT INTO transcripts (call_id, source, format, segments, imported_by, imported_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (call_id) DO UPDATE SET source = excluded.source, format = excluded.format,
             segments = excluded.segments, imported_by = excluded.imported_by,
             imported_at_utc = excluded.imported_at_utc",
        params![
            call_id,
            source,
            format,
            i64::try_from(segments.len()).unwrap_or(i64::MAX),
            by,
            crate::clock::utc_now()
        ],
    )?;
    Ok(segments.len())
}

/// One transcript in, from any door (CLI, HTTP): parsed (WebVTT or JSON, told apart by its
/// start), checked against the call's length, stored in place of an earlier one, and audited as
/// `transcript.import` by `by` in the same transaction. Returns the segment count and format.
pub fn import_transcript(
    conn: &Connection,
    call_id: i64,
    text: &str,
    source: &str,
    by: super::audit::Actor,
) -> Result<(usize, &'static str), ComplianceError> {
    let call = super::get_call_row(conn, call_id)?;
    let (segments, format) = crate::qa::transcript::parse_for_call(text, call.duration_ms)?;
    // The write lock first, as the audit chain needs (see `audit::append`).
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    super::ensure_not_deleted(&tx, call_id)?;
    let n = put_transcript_in(&tx, call_id, &segments, format, source, by.name)?;
    let detail = serde_json::json!({"format": format, "segments": n, "source": source});
    super::audit::append(&tx, &by.event("transcript.import", Some(call_id), detail))?;
    tx.commit()?;
    Ok((n, format))
}

/// Milliseconds as SQLite's signed integer (times beyond i64, some 292 million years, are
/// refused rather than wrapped).
fn sql_ms(ms: u64) -> rusqlite::Result<i64> {
    i64::try_from(ms).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// A millisecond column back as u64; a negative value is a conversion failure, not a zero.
fn ms_col(r: &rusqlite::Row, col: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(col)?;
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn row_to_segment(r: &rusqlite::Row, first: usize) -> rusqlite::Result<Segment> {
    Ok(Segment {
        start_ms: ms_col(r, first)?,
        end_ms: ms_col(r, first + 1)?,
        speaker: r.get(first + 2)?,
        text: r.get(first + 3)?,
    })
}

/// A call's transcript by start time; empty when it has none.
pub fn transcript(conn: &Connection, call_id: i64) -> Result<Vec<Segment>, ComplianceError> {
    let mut st = conn.prepare_cached(
        "SELECT start_ms, end_ms, speaker, text FROM transcript_segments
         WHERE call_id = ?1 ORDER BY start_ms, id",
    )?;
    let rows = st
        .query_map([call_id], |r| row_to_segment(r, 0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Where a call's transcript came from, if it has one.
#[derive(Debug, Clone, Serialize)]
pub struct TranscriptInfo {
    pub format: String,
    pub source: String,
    pub segments: i64,
    pub imported_by: String,
    pub imported_at_utc: String,
}

pub fn transcript_info(
    conn: &Connection,
    call_id: i64,
) -> Result<Option<TranscriptInfo>, ComplianceError> {
    Ok(conn
        .prepare_cached(
            "SELECT format, source, segments, imported_by, imported_at_utc FROM transcripts WHERE call_id = ?1",
        )?
        .query_row([call_id], |r| {
            Ok(TranscriptInfo {
                format: r.get(0)?,
                source: r.get(1)?,
                segments: r.get(2)?,
                imported_by: r.get(3)?,
                imported_at_utc: r.get(4)?,
            })
        })
        .optional()?)
}

/// Turns free text into an FTS5 MATCH expression that cannot fail or widen: each word becomes a
/// quoted string (inner `"` doubled), all words must match (implicit AND), and a trailing `*`
/// keeps prefix matching (`recor*` → `"recor"*`). Words without a letter or digit are dropped:
/// they tokenize to nothing. None when no word is left.
pub fn fts_query(user_text: &str) -> Option<String> {
    let terms: Vec<String> = user_text
        .split_whitespace()
        .filter_map(|word| {
            let stem = word.trim_end_matches('*');
            let prefix = stem.len() < word.len();
            if !stem.chars().any(char::is_alphanumeric) {
                return None;
            }
            let quoted = format!("\"{}\"", stem.replace('"', "\"\""));
            Some(if prefix { format!("{quoted}*") } else { quoted })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Transcript segments matching `user_text` (see [`fts_query`]), best match first, with their
/// call ids. Text that makes no query finds nothing.
pub fn search_transcripts(
    conn: &Connection,
    user_text: &str,
    limit: u32,
) -> Result<Vec<(i64, Segment)>, ComplianceError> {
    let Some(query) = fts_query(user_text) else {
        return Ok(Vec::new());
    };
    let mut st = conn.prepare_cached(
        "SELECT s.call_id, s.start_ms, s.end_ms, s.speaker, s.text
         FROM transcript_fts JOIN transcript_segments s ON s.id = transcript_fts.rowid
         WHERE transcript_fts MATCH ?1
         ORDER BY transcript_fts.rank, s.call_id, s.start_ms
         LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![query, i64::from(limit)], |r| {
            Ok((r.get(0)?, row_to_segment(r, 1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::script::Mark;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    fn call(conn: &Connection, agent: &str) -> TestResult<i64> {
        Ok(TestCall::new().agent(agent).insert(conn)?.id)
    }

    fn seg(start_ms: u64, speaker: &str, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms: start_ms + 2000,
            speaker: Some(speaker.into()),
            text: text.into(),
        }
    }

    fn present(step: &str, at_ms: u64) -> StepMark {
        StepMark {
            step: step.into(),
            mark: Mark::Present,
            at_ms: Some(at_ms),
            comment: String::new(),
        }
    }

    #[test]
    fn scripts_are_versioned_never_edited() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        assert_eq!(
            seed_default_scripts(&conn)?,
            ["inbound-compliance", "collections-mini-miranda"]
        );
        assert!(
            seed_default_scripts(&conn)?.is_empty(),
            "seeding twice adds nothing"
        );

        let v1 = latest_script(&conn, "inbound-compliance")?.ok_or("not seeded")?;
        assert_eq!((v1.version, v1.created_by.as_str()), (1, "system"));
        assert_eq!(v1.content_hash, script::content_hash(&v1.script));

        // The same content again: the same row, still version 1.
        let same = save_script(&conn, &v1.script, "lead")?;
        assert_eq!((same.id, same.version), (v1.id, 1));

        // A change: version 2 in a new row; version 1 is still there, unchanged.
        let mut edited = v1.script.clone();
        edited.steps[0]
            .phrases
            .push("this call is monitored".into());
        let v2 = save_script(&conn, &edited, "lead")?;
        assert_eq!(v2.version, 2);
        assert_ne!(v2.id, v1.id);
        assert_eq!(v2.created_by, "lead");
        assert_eq!(script_by_row(&conn, v1.id)?.script, v1.script);
        assert_eq!(
            latest_script(&conn, "inbound-compliance")?.map(|s| s.id),
            Some(v2.id)
        );

        let listed: Vec<(String, i64)> = list_scripts(&conn)?
            .into_iter()
            .map(|s| (s.slug, s.version))
            .collect();
        assert_eq!(
            listed,
            [
                ("collections-mini-miranda".to_owned(), 1),
                ("inbound-compliance".to_owned(), 2)
            ]
        );

        // Invalid scripts are refused; unknown rows and slugs are reported.
        edited.steps.clear();
        assert!(matches!(
            save_script(&conn, &edited, "lead"),
            Err(ComplianceError::Script(ScriptError::Invalid { .. }))
        ));
        assert!(matches!(
            script_by_row(&conn, 999),
            Err(ComplianceError::NoSuchScript(_))
        ));
        assert!(latest_script(&conn, "nope")?.is_none());
        Ok(())
    }

    #[test]
    fn check_life_cycle() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        seed_default_scripts(&conn)?;
        let script = latest_script(&conn, "collections-mini-miranda")?.ok_or("not seeded")?;
        let call_id = call(&conn, "alice")?;
        let duration_ms = 300_000;

        assert!(matches!(
            create_check(&conn, 999, script.id, "rita"),
            Err(ComplianceError::NoSuchCall(999))
        ));
        assert!(matches!(
            create_check(&conn, call_id, 999, "rita"),
            Err(ComplianceError::NoSuchScript(_))
        ));
        let id = create_check(&conn, call_id, script.id, "rita")?;
        let c = get_check(&conn, id)?;
        assert_eq!(c.agent.as_deref(), Some("alice"));
        assert_eq!(
            (c.status.as_str(), c.script_slug.as_str(), c.script_version),
            ("draft", "collections-mini-miranda", 1)
        );
        assert!(c.marks.is_empty() && c.outcome.is_none() && c.passed.is_none());

        // A draft: partial marks give a preview, stored, but no verdict.
        let mut marks = vec![
            present("recording_notice", 3_000),
            present("mini_miranda", 42_000),
        ];
        let preview = save_marks(&conn, id, &marks, duration_ms)?;
        assert!(!preview.passed);
        let c = get_check(&conn, id)?;
        assert_eq!(c.marks, marks);
        assert_eq!(c.outcome.as_ref(), Some(&preview));
        assert_eq!(c.passed, None);

        // Bad marks are refused and leave the draft as it was.
        let mut bad = marks.clone();
        bad[0].at_ms = None;
        assert!(matches!(
            save_marks(&conn, id, &bad, duration_ms),
            Err(ComplianceError::Mark(MarkError::PresentWithoutTime { .. }))
        ));
        assert_eq!(get_check(&conn, id)?.marks, marks);

        // Submitting with steps unmarked names them.
        assert!(matches!(
            submit_check(&conn, id, duration_ms),
            Err(ComplianceError::Mark(MarkError::Unmarked { .. }))
        ));

        marks.extend([
            present("identity", 20_000),
            present("debt_discussion", 60_000),
            StepMark {
                step: "payment_options".into(),
                mark: Mark::Absent,
                at_ms: None,
                comment: "no plan offered".into(),
            },
            present("closing", 295_000),
        ]);
        save_marks(&conn, id, &marks, duration_ms)?;
        let outcome = submit_check(&conn, id, duration_ms)?;
        // The mini-Miranda came at 0:42, after the first 30 s: the check fails.
        assert!(!outcome.passed);
        let miranda = outcome
            .steps
            .iter()
            .find(|s| s.step == "mini_miranda")
            .ok_or("no mini_miranda")?;
        assert_eq!(
            miranda.problem.as_deref(),
            Some("heard at 0:42, after the first 30 s")
        );
        let c = get_check(&conn, id)?;
        assert_eq!(c.status, "submitted");
        assert_eq!(c.passed, Some(false));
        assert!(c.submitted_at_utc.is_some());
        assert_eq!(c.outcome, Some(outcome));

        // Submitted is final.
        assert!(matches!(
            submit_check(&conn, id, duration_ms),
            Err(ComplianceError::NotDraft(x)) if x == id
        ));
        assert!(matches!(
            save_marks(&conn, id, &marks, duration_ms),
            Err(ComplianceError::NotDraft(_))
        ));
        let Err(e) = submit_check(&conn, id, duration_ms) else {
            return Err("second submit must fail".into());
        };
        assert!(e.to_string().contains("start a new check"), "{e}");

        // A second check of the same call; both listed, oldest first.
        let id2 = create_check(&conn, call_id, script.id, "sam")?;
        let ids: Vec<i64> = checks_for_call(&conn, call_id)?
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, [id, id2]);
        assert!(matches!(
            get_check(&conn, 999),
            Err(ComplianceError::NoSuchCheck(999))
        ));
        Ok(())
    }

    fn fts_hits(conn: &Connection, q: &str) -> Result<usize, ComplianceError> {
        Ok(search_transcripts(conn, q, 100)?.len())
    }

    #[test]
    fn transcripts_replace_and_search() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let a = call(&conn, "alice")?;
        let b = call(&conn, "bob")?;

        let first = [
            seg(1_000, "agent", "This call is recorded for quality"),
            seg(5_000, "customer", "I want to cancel my subscription"),
            seg(9_000, "agent", "Sorry to hear that"),
        ];
        assert_eq!(
            put_transcript(&conn, a, &first, "webvtt", "upload", "rita")?,
            3
        );
        put_transcript(
            &conn,
            b,
            &[seg(2_000, "agent", "Recording starts now")],
            "json",
            "upload",
            "rita",
        )?;
        assert_eq!(fts_hits(&conn, "cancel")?, 1);
        assert_eq!(transcript(&conn, a)?, first);

        // A second import replaces the first whole: old text is gone from the index too.
        let second = [
            seg(2_000, "agent", "Calls are recorded"),
            seg(1_000, "agent", "Welcome"),
        ];
        assert_eq!(
            put_transcript(&conn, a, &second, "json", "asr-v2", "sam")?,
            2
        );
        let stored = transcript(&conn, a)?;
        assert_eq!(stored.len(), 2);
        assert_eq!(
            stored.first().map(|s| s.text.as_str()),
            Some("Welcome"),
            "by start"
        );
        assert_eq!(fts_hits(&conn, "cancel")?, 0);
        assert_eq!(fts_hits(&conn, "subscription")?, 0);
        let (source, format, n, by): (String, String, i64, String) = conn.query_row(
            "SELECT source, format, segments, imported_by FROM transcripts WHERE call_id = ?1",
            [a],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        assert_eq!(
            (source.as_str(), format.as_str(), n, by.as_str()),
            ("asr-v2", "json", 2, "sam")
        );
        let rows: i64 =
            conn.query_row("SELECT count(*) FROM transcript_segments", [], |r| r.get(0))?;
        assert_eq!(rows, 3);

        // A word, a prefix, and every word required.
        let hits = search_transcripts(&conn, "recorded", 10)?;
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits.first().map(|(call, s)| (*call, s.start_ms)),
            Some((a, 2_000))
        );
        let prefix: Vec<i64> = search_transcripts(&conn, "RECORD*", 10)?
            .into_iter()
            .map(|(call, _)| call)
            .collect();
        assert_eq!(prefix.len(), 2);
        assert!(prefix.contains(&a) && prefix.contains(&b));
        assert_eq!(fts_hits(&conn, "calls recorded")?, 1);
        assert_eq!(fts_hits(&conn, "calls welcome")?, 0);
        assert_eq!(search_transcripts(&conn, "record*", 1)?.len(), 1, "limit");

        assert!(matches!(
            put_transcript(&conn, 999, &second, "json", "upload", "rita"),
            Err(ComplianceError::NoSuchCall(999))
        ));
        assert!(transcript(&conn, b)?.len() == 1);
        Ok(())
    }

    #[test]
    fn user_text_never_breaks_fts() -> TestResult {
        assert_eq!(fts_query("recor*").as_deref(), Some("\"recor\"*"));
        assert_eq!(
            fts_query(" say \"hi\"  there ").as_deref(),
            Some("\"say\" \"\"\"hi\"\"\" \"there\"")
        );
        assert_eq!(fts_query("   "), None);
        assert_eq!(fts_query("* ( ) \" -"), None);

        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let a = call(&conn, "alice")?;
        put_transcript(
            &conn,
            a,
            &[seg(
                0,
                "agent",
                "the AND operator NEAR (here) and \"quoted\" text",
            )],
            "json",
            "upload",
            "rita",
        )?;
        for q in [
            "\"",
            "\"unbalanced",
            "a\"b",
            "(",
            "())",
            "AND",
            "OR",
            "NOT",
            "near",
            "NEAR(a b, 3)",
            "*",
            "**",
            "a**",
            "*a",
            "text:foo",
            "^start",
            "a + b",
            "{col}: x",
            "-x",
            "'",
            ":",
            "NEAR/2",
            "\u{0}",
            "ünïcödé 東京",
        ] {
            search_transcripts(&conn, q, 10).map_err(|e| format!("{q:?}: {e}"))?;
        }
        // Operator words are searched as words.
        assert_eq!(fts_hits(&conn, "AND")?, 1);
        assert_eq!(fts_hits(&conn, "near (here)")?, 1);
        assert_eq!(fts_hits(&conn, "\"quoted\"")?, 1);
        assert_eq!(fts_hits(&conn, "OR")?, 0);
        Ok(())
    }
}
