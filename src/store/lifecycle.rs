//! Deleting recordings, crash-safe: the one way a call's audio ever leaves the box (retention,
//! GDPR erasure, disk pressure, an admin).
//!
//! Two steps, as Moonfire NVR does it (`shared/notes/storage-lessons.md`):
//! 1. [`mark_garbage`], one `BEGIN IMMEDIATE` transaction: refuse any call on legal hold (checked
//!    inside the transaction, so a hold placed concurrently either lands first and wins or lands
//!    after the mark), set the rows to `garbage` with their `deletions` row, append a ledger
//!    tombstone per call (the chain stays verifiable) and an audit row per call. For an erasure
//!    the personal fields are scrubbed in the same transaction.
//! 2. [`finish_garbage`]: unlink the file and its peaks, fsync the directory, and only then mark
//!    the row `deleted`. A crash between the two steps leaves a `garbage` row whose file may or
//!    may not exist; the next `finish_garbage` (run by the recorder at start and by its guard,
//!    by `callrec retention run` and `callrec check --repair-garbage`) completes it. A file is
//!    therefore never without a row, and a row never claims a file that is gone.
//!
//! This module never deletes a row (other tables and the audit log refer to it; the row is what
//! says "this call existed and was deleted on ... because ..."), never touches a call that is
//! still recording, and never unlinks a file whose row is not `garbage`.

use super::holds;
use super::ledger;
use super::{audit, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("call {call_id} is on legal hold #{hold_id} ({reason}); nothing was deleted. A second admin must release the hold first (`callrec hold release`)")]
    Held {
        call_id: i64,
        hold_id: i64,
        reason: String,
    },
    #[error("call {0} is still recording; stop it before deleting it. Nothing was deleted")]
    Recording(i64),
    #[error("a deletion needs a reason (the retention rule, the erasure request reference, ...)")]
    NoReason,
    #[error("deleting {path}: {source}. The call stays marked as garbage and the deletion is retried by `callrec check --repair-garbage` or the next retention run")]
    Unlink {
        path: String,
        source: std::io::Error,
    },
}

/// Why calls are deleted; stored in `deletions.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionKind {
    /// A retention rule's keep period has passed.
    Retention,
    /// A data subject's erasure request (GDPR Art. 17): personal fields are scrubbed too.
    Erasure,
    /// The disk-pressure guard, oldest first.
    Pressure,
    /// An admin deleted specific calls.
    Manual,
}

impl DeletionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionKind::Retention => "retention",
            DeletionKind::Erasure => "erasure",
            DeletionKind::Pressure => "pressure",
            DeletionKind::Manual => "manual",
        }
    }
}

/// One deletion request.
#[derive(Debug, Clone)]
pub struct Deletion<'a> {
    pub kind: DeletionKind,
    /// Recorded in the deletion row, each audit row and each ledger tombstone. Never put personal
    /// data here (the ledger is permanent): a rule name or a request reference.
    pub reason: &'a str,
    pub actor: &'a str,
    /// The deletion's time (a fake clock in tests).
    pub now_utc: &'a str,
}

/// What one deleted call was, as the receipt lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MarkedCall {
    pub call_id: i64,
    pub started_at_utc: String,
    pub duration_ms: i64,
    pub bytes: i64,
    pub file_sha256: Option<String>,
    pub rel_path: String,
    pub tombstone_seq: i64,
    pub tombstone_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Marked {
    pub deletion_id: i64,
    pub calls: Vec<MarkedCall>,
}

struct Candidate {
    id: i64,
    status: super::CallStatus,
    started_at_utc: String,
    duration_ms: i64,
    bytes: i64,
    sha256: Option<String>,
    rel_path: String,
    agent: Option<String>,
    remote_number: Option<String>,
}

fn candidate(conn: &Connection, id: i64) -> Result<Candidate, StoreError> {
    conn.prepare_cached(
        "SELECT id, status, started_at_utc, duration_ms, bytes, sha256, rel_path, agent, remote_number
         FROM calls WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Candidate {
            id: r.get(0)?,
            status: r.get(1)?,
            started_at_utc: r.get(2)?,
            duration_ms: r.get(3)?,
            bytes: r.get(4)?,
            sha256: r.get(5)?,
            rel_path: r.get(6)?,
            agent: r.get(7)?,
            remote_number: r.get(8)?,
        })
    })
    .optional()?
    .ok_or(StoreError::NoSuchCall(id))
}

/// Step 1: marks the calls `garbage` in one transaction (see the module documentation). Calls
/// already `garbage` or `deleted` are skipped, so a retried request marks nothing twice. Any
/// held or recording call aborts the whole request with nothing changed.
pub fn mark_garbage(
    conn: &Connection,
    ids: &[i64],
    d: &Deletion,
) -> Result<Marked, LifecycleError> {
    if d.reason.trim().is_empty() {
        return Err(LifecycleError::NoReason);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let active = holds::active(&tx)?;
    let mut todo = Vec::with_capacity(ids.len());
    for &id in ids {
        let c = candidate(&tx, id)?;
        match c.status {
            super::CallStatus::Recording => return Err(LifecycleError::Recording(id)),
            super::CallStatus::Garbage | super::CallStatus::Deleted => continue,
            super::CallStatus::Complete | super::CallStatus::Interrupted => {}
        }
        if let Some(h) = active
            .iter()
            .find(|h| h.covers(id, c.agent.as_deref(), c.remote_number.as_deref()))
        {
            return Err(LifecycleError::Held {
                call_id: id,
                hold_id: h.id,
                reason: h.reason.clone(),
            });
        }
        todo.push(c);
    }
    tx.execute(
        "INSERT INTO deletions (kind, reason, requested_by, created_at_utc, calls)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            d.kind.as_str(),
            d.reason,
            d.actor,
            d.now_utc,
            todo.len() as i64
        ],
    )
    .map_err(StoreError::from)?;
    let deletion_id = tx.last_insert_rowid();
    let tombstone_reason = format!("{}: {}", d.kind.as_str(), d.reason);
    let mut calls = Vec::with_capacity(todo.len());
    for c in todo {
        tx.execute(
            "UPDATE calls SET status = 'garbage', deletion_id = ?2 WHERE id = ?1",
            params![c.id, deletion_id],
        )
        .map_err(StoreError::from)?;
        // Transcripts are the recording's content in text form: they go with the audio.
        tx.execute("DELETE FROM transcript_segments WHERE call_id = ?1", [c.id])
            .map_err(StoreError::from)?;
        tx.execute("DELETE FROM transcripts WHERE call_id = ?1", [c.id])
            .map_err(StoreError::from)?;
        if d.kind == DeletionKind::Erasure {
            scrub_personal_fields(&tx, c.id, d.now_utc)?;
        }
        let t = ledger::append_tombstone(&tx, c.id, c.sha256.as_deref(), &tombstone_reason)?;
        audit::append(
            &tx,
            &audit::Event {
                actor: d.actor,
                action: "delete",
                call_id: Some(c.id),
                detail: serde_json::json!({
                    "deletion_id": deletion_id,
                    "kind": d.kind.as_str(),
                    "reason": d.reason,
                    "file_sha256": c.sha256,
                    "tombstone_seq": t.seq,
                }),
                ip: None,
            },
        )?;
        calls.push(MarkedCall {
            call_id: c.id,
            started_at_utc: c.started_at_utc,
            duration_ms: c.duration_ms,
            bytes: c.bytes,
            file_sha256: c.sha256,
            rel_path: c.rel_path,
            tombstone_seq: t.seq,
            tombstone_sha256: t.entry_sha256,
        });
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(Marked { deletion_id, calls })
}

/// Erasure (GDPR Art. 17): the customer's number and the CTI's id go from the row; notes, which
/// may quote what the customer said, lose their text; an imported call forgets its source path
/// (legacy file names often carry the number). Scores stay: they are the agent's record, not
/// the customer's data.
fn scrub_personal_fields(conn: &Connection, call_id: i64, now_utc: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE calls SET remote_number = NULL, external_id = NULL, note = NULL WHERE id = ?1",
        [call_id],
    )?;
    conn.execute(
        "UPDATE notes SET text = '', deleted_at_utc = COALESCE(deleted_at_utc, ?2) WHERE call_id = ?1",
        params![call_id, now_utc],
    )?;
    conn.execute(
        "UPDATE imports SET source_path = '(erased)' WHERE call_id = ?1",
        [call_id],
    )?;
    // Numbers and CTI ids corrected mid-call (migration 13 keeps them so erasure finds the call).
    conn.execute("DELETE FROM call_former_meta WHERE call_id = ?1", [call_id])?;
    Ok(())
}

/// Scrubs the personal fields of calls whose recordings are already deleted (an erasure request
/// for a number whose older calls retention removed), with one audit row per call.
pub fn scrub_rows(
    conn: &Connection,
    ids: &[i64],
    actor: &str,
    now_utc: &str,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    for &id in ids {
        scrub_personal_fields(&tx, id, now_utc)?;
        tx.execute("DELETE FROM transcript_segments WHERE call_id = ?1", [id])?;
        tx.execute("DELETE FROM transcripts WHERE call_id = ?1", [id])?;
        audit::append(
            &tx,
            &audit::Event {
                actor,
                action: "erase.scrub",
                call_id: Some(id),
                detail: serde_json::json!({"fields": ["remote_number", "external_id", "note", "notes.text", "transcript"]}),
                ip: None,
            },
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Step 2: for every `garbage` row, unlinks the audio and its peaks (a missing file is fine:
/// the crash came after the unlink), fsyncs each directory, then marks the rows `deleted` and
/// closes their deletions. Returns how many calls it finished. Idempotent.
pub fn finish_garbage(
    conn: &Connection,
    storage_dir: &Path,
    now_utc: &str,
) -> Result<u64, LifecycleError> {
    let pending: Vec<(i64, String)> = {
        let mut st = conn
            .prepare("SELECT id, rel_path FROM calls WHERE status = 'garbage' ORDER BY id")
            .map_err(StoreError::from)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::from)?;
        rows.collect::<Result<_, _>>().map_err(StoreError::from)?
    };
    if pending.is_empty() {
        return Ok(0);
    }
    let mut dirs = std::collections::BTreeSet::new();
    for (_, rel) in &pending {
        // A row whose path leaves the storage dir must not make deletion unlink anything there.
        let Some(audio) = super::call_file(storage_dir, rel) else {
            return Err(LifecycleError::Unlink {
                path: rel.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the row's path leaves the storage dir; nothing unlinked",
                ),
            });
        };
        for path in [crate::dsp::peaks::path_for(&audio), audio.clone()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LifecycleError::Unlink {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        if let Some(dir) = audio.parent() {
            dirs.insert(dir.to_owned());
        }
    }
    // The unlinks must be durable before the rows say so; otherwise a power cut could bring a
    // file back whose row already says `deleted` (an orphan).
    for dir in &dirs {
        let synced = std::fs::File::open(dir).and_then(|f| f.sync_all());
        if let Err(source) = synced {
            if source.kind() != std::io::ErrorKind::NotFound {
                return Err(LifecycleError::Unlink {
                    path: dir.display().to_string(),
                    source,
                });
            }
        }
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    for (id, _) in &pending {
        tx.execute(
            "UPDATE calls SET status = 'deleted', deleted_at_utc = ?2 WHERE id = ?1 AND status = 'garbage'",
            params![id, now_utc],
        )
        .map_err(StoreError::from)?;
    }
    tx.execute(
        "UPDATE deletions SET finished_at_utc = ?1 WHERE finished_at_utc IS NULL
           AND NOT EXISTS (SELECT 1 FROM calls WHERE calls.deletion_id = deletions.id AND calls.status = 'garbage')",
        [now_utc],
    )
    .map_err(StoreError::from)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(pending.len() as u64)
}

/// Why and when a call's recording was deleted, as the call page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionInfo {
    pub deletion_id: i64,
    pub kind: String,
    pub reason: String,
    pub requested_by: String,
    pub created_at_utc: String,
    pub finished_at_utc: Option<String>,
}

/// The deletion that removed (or is removing) this call's recording, if any.
pub fn deletion_of(conn: &Connection, call_id: i64) -> Result<Option<DeletionInfo>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT d.id, d.kind, d.reason, d.requested_by, d.created_at_utc, d.finished_at_utc
             FROM calls c JOIN deletions d ON d.id = c.deletion_id WHERE c.id = ?1",
        )?
        .query_row([call_id], |r| {
            Ok(DeletionInfo {
                deletion_id: r.get(0)?,
                kind: r.get(1)?,
                reason: r.get(2)?,
                requested_by: r.get(3)?,
                created_at_utc: r.get(4)?,
                finished_at_utc: r.get(5)?,
            })
        })
        .optional()?)
}

/// Both steps: what every caller that deletes uses.
pub fn delete_calls(
    conn: &Connection,
    storage_dir: &Path,
    ids: &[i64],
    d: &Deletion,
) -> Result<Marked, LifecycleError> {
    let marked = mark_garbage(conn, ids, d)?;
    finish_garbage(conn, storage_dir, d.now_utc)?;
    Ok(marked)
}

/// Calls the disk-pressure guard may delete, oldest first: finished (complete or interrupted)
/// and not covered by an active legal hold; with `require_archived` (an `[archive]` is
/// configured) also only those whose archive copy is confirmed. Returns (call id, bytes).
pub fn pressure_candidates(
    conn: &Connection,
    limit: usize,
    require_archived: bool,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let active = holds::active(conn)?;
    let archived = if require_archived {
        "AND id IN (SELECT call_id FROM archive_uploads WHERE state = 'archived')"
    } else {
        ""
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT id, bytes, agent, remote_number FROM calls
         WHERE status IN ('complete', 'interrupted') {archived} ORDER BY started_at_utc, id"
    ))?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if out.len() >= limit {
            break;
        }
        let (id, bytes): (i64, i64) = (r.get(0)?, r.get(1)?);
        let agent: Option<String> = r.get(2)?;
        let number: Option<String> = r.get(3)?;
        if !active
            .iter()
            .any(|h| h.covers(id, agent.as_deref(), number.as_deref()))
        {
            out.push((id, bytes));
        }
    }
    Ok(out)
}

/// One erasure request carried out here, as the web UI lists it (`serve::erasure_pages`).
#[derive(Debug, Clone, Serialize)]
pub struct ErasureRecord {
    pub deletion_id: i64,
    /// `erasure request <reference>` (the reference never holds the number).
    pub reason: String,
    pub requested_by: String,
    pub created_at_utc: String,
    pub calls: i64,
}

/// Every erasure request with a signed receipt, newest first.
pub fn erasures(conn: &Connection) -> Result<Vec<ErasureRecord>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, reason, requested_by, created_at_utc, calls FROM deletions
         WHERE kind = 'erasure' AND receipt IS NOT NULL ORDER BY id DESC",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(ErasureRecord {
                deletion_id: r.get(0)?,
                reason: r.get(1)?,
                requested_by: r.get(2)?,
                created_at_utc: r.get(3)?,
                calls: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The signed receipt of erasure `deletion_id`: the exact JSON text and the signature (hex).
pub fn erasure_receipt(
    conn: &Connection,
    deletion_id: i64,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT receipt, receipt_sig FROM deletions
             WHERE id = ?1 AND kind = 'erasure' AND receipt IS NOT NULL AND receipt_sig IS NOT NULL",
        )?
        .query_row([deletion_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
