//! The archive queue's SQL (table `archive_uploads`, migration 14): which finalized calls wait to
//! be shipped to the object store, what the store confirmed for the shipped ones, and the
//! backlog figures the CLI, `/metrics` and the backlog alarm read.
//!
//! The queue is derived from the calls themselves: a complete or interrupted call without a row
//! is queued by [`enqueue_finalized`], so a call finalized by the recorder, by crash recovery or
//! by an import is shipped without any of them knowing about the archive. This module never
//! marks a call archived without the store's ETag (a CHECK enforces it), never touches a call
//! row, and keeps every write a short transaction (the recorder writes the same file).

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Call statuses that are shipped: finished recordings (imports are `complete` too).
const SHIPPED_STATUSES: &str = "('complete', 'interrupted')";

/// One queued call, as the shipper needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upload {
    pub call_id: i64,
    pub state: String,
    pub object_key: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub attempts: i64,
    pub next_attempt_at_utc: String,
    pub last_error: Option<String>,
    pub queued_at_utc: String,
    pub archived_at_utc: Option<String>,
}

const COLUMNS: &str = "call_id, state, object_key, etag, version_id, attempts, next_attempt_at_utc,
    last_error, queued_at_utc, archived_at_utc";

fn row_to_upload(r: &rusqlite::Row) -> rusqlite::Result<Upload> {
    Ok(Upload {
        call_id: r.get(0)?,
        state: r.get(1)?,
        object_key: r.get(2)?,
        etag: r.get(3)?,
        version_id: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at_utc: r.get(6)?,
        last_error: r.get(7)?,
        queued_at_utc: r.get(8)?,
        archived_at_utc: r.get(9)?,
    })
}

/// Finalized calls not yet queued, oldest first, at most `limit`: (id, box_id, started_at_utc).
pub fn unqueued(conn: &Connection, limit: usize) -> Result<Vec<(i64, String, String)>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT c.id, c.box_id, c.started_at_utc FROM calls c
         WHERE c.status IN {SHIPPED_STATUSES} AND c.sha256 IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM archive_uploads a WHERE a.call_id = c.id)
         ORDER BY c.id LIMIT ?1"
    ))?;
    let v = st
        .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Queues calls (each with its audio object key), due at once. A call already queued keeps
/// its row. One short transaction.
pub fn enqueue(
    conn: &Connection,
    calls: &[(i64, String)],
    now_utc: &str,
) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO archive_uploads (call_id, state, object_key, next_attempt_at_utc, queued_at_utc)
             VALUES (?1, 'pending', ?2, ?3, ?3)",
        )?;
        for (id, key) in calls {
            st.execute(params![id, key, now_utc])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Pending uploads due at `now_utc`, longest waiting first.
pub fn due(conn: &Connection, now_utc: &str, limit: usize) -> Result<Vec<Upload>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM archive_uploads
         WHERE state = 'pending' AND next_attempt_at_utc <= ?1
         ORDER BY next_attempt_at_utc, call_id LIMIT ?2"
    ))?;
    let v = st
        .query_map(params![now_utc, limit as i64], row_to_upload)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn get(conn: &Connection, call_id: i64) -> Result<Option<Upload>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM archive_uploads WHERE call_id = ?1"
        ))?
        .query_row([call_id], row_to_upload)
        .optional()?)
}

/// Every row, by call id (status output, tests).
pub fn all(conn: &Connection) -> Result<Vec<Upload>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM archive_uploads ORDER BY call_id"
    ))?;
    let v = st.query_map([], row_to_upload)?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// The store confirmed every object of the call: record the audio object's ETag and version.
pub fn mark_archived(
    conn: &Connection,
    call_id: i64,
    etag: &str,
    version_id: Option<&str>,
    now_utc: &str,
) -> Result<(), StoreError> {
    mark_archived_locked(conn, call_id, etag, version_id, &Lock::default(), now_utc)
}

/// What S3 Object Lock the store confirmed on a call's objects (migration 16).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lock {
    /// `GOVERNANCE` or `COMPLIANCE`; None: no retention date was set.
    pub mode: Option<String>,
    pub retain_until_utc: Option<String>,
    pub legal_hold: bool,
}

/// [`mark_archived`] with the Object Lock state the store confirmed for every object.
pub fn mark_archived_locked(
    conn: &Connection,
    call_id: i64,
    etag: &str,
    version_id: Option<&str>,
    lock: &Lock,
    now_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE archive_uploads SET state = 'archived', etag = ?2, version_id = ?3,
             archived_at_utc = ?4, attempts = attempts + 1, last_error = NULL,
             lock_mode = ?5, retain_until_utc = ?6, legal_hold = ?7
         WHERE call_id = ?1",
        params![
            call_id,
            etag,
            version_id,
            now_utc,
            lock.mode,
            lock.retain_until_utc,
            lock.legal_hold
        ],
    )?;
    Ok(())
}

/// The hold-change counter to apply when holds changed since the shipper last applied them to
/// the archive's object legal holds (migration 16's triggers), else None.
pub fn hold_sync_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT changed_seq FROM archive_hold_sync WHERE id = 1 AND changed_seq <> synced_seq",
        )?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Every archived call's object legal hold now matches the holds as of `seq`.
pub fn hold_synced(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE archive_hold_sync SET synced_seq = ?1 WHERE id = 1",
        [seq],
    )?;
    Ok(())
}

/// An archived call whose objects are still in the store, with what a hold matches on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Archived {
    pub call_id: i64,
    pub object_key: String,
    pub lock_mode: Option<String>,
    pub retain_until_utc: Option<String>,
    pub legal_hold: bool,
    pub agent: Option<String>,
    pub remote_number: Option<String>,
}

/// Archived calls whose objects were not removed, by id.
pub fn archived(conn: &Connection) -> Result<Vec<Archived>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT a.call_id, a.object_key, a.lock_mode, a.retain_until_utc, a.legal_hold,
                c.agent, c.remote_number
         FROM archive_uploads a JOIN calls c ON c.id = a.call_id
         WHERE a.state = 'archived' AND a.removed_by IS NULL ORDER BY a.call_id",
    )?;
    let v = st
        .query_map([], |r| {
            Ok(Archived {
                call_id: r.get(0)?,
                object_key: r.get(1)?,
                lock_mode: r.get(2)?,
                retain_until_utc: r.get(3)?,
                legal_hold: r.get(4)?,
                agent: r.get(5)?,
                remote_number: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// The store confirmed the legal hold of every object of the call is now `on`.
pub fn set_legal_hold(conn: &Connection, call_id: i64, on: bool) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE archive_uploads SET legal_hold = ?2 WHERE call_id = ?1",
        params![call_id, on],
    )?;
    Ok(())
}

/// One object version removed from the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedVersion {
    pub key: String,
    pub version_id: String,
    /// A delete marker rather than data.
    pub delete_marker: bool,
}

/// Every object version of one call that was removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedCall {
    pub call_id: i64,
    pub versions: Vec<RemovedVersion>,
}

/// What one archive retention run or erasure removed from the store.
pub struct Removal<'a> {
    /// `retention` or `erasure`.
    pub kind: &'a str,
    pub reason: &'a str,
    pub actor: &'a str,
    pub now_utc: &'a str,
    pub calls: &'a [RemovedCall],
    /// The signed record's exact bytes and its signature (hex).
    pub receipt_json: &'a str,
    pub receipt_sig_hex: &'a str,
}

/// Records a removal in one transaction: its `archive_removals` row, `removed_by` on each
/// call's queue row (so it is neither shipped nor removed again), and one audit row per call
/// naming every version removed. Returns the removal's id.
pub fn record_removal(conn: &Connection, r: &Removal) -> Result<i64, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO archive_removals (kind, reason, requested_by, created_at_utc, receipt, receipt_sig)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![r.kind, r.reason, r.actor, r.now_utc, r.receipt_json, r.receipt_sig_hex],
    )?;
    let id = tx.last_insert_rowid();
    for c in r.calls {
        tx.execute(
            "UPDATE archive_uploads SET removed_by = ?2 WHERE call_id = ?1",
            params![c.call_id, id],
        )?;
        super::audit::append(
            &tx,
            &super::audit::Event {
                actor: r.actor,
                action: "archive.delete",
                call_id: Some(c.call_id),
                detail: serde_json::json!({
                    "archive_removal_id": id,
                    "kind": r.kind,
                    "reason": r.reason,
                    "versions": c.versions,
                }),
                ip: None,
            },
        )?;
    }
    tx.commit()?;
    Ok(id)
}

/// The receipt of one removal: (receipt JSON, signature hex).
pub fn removal_receipt(conn: &Connection, id: i64) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT receipt, receipt_sig FROM archive_removals WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether the call's archive copy is confirmed (and not removed).
pub fn is_archived(conn: &Connection, call_id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM archive_uploads WHERE call_id = ?1 AND state = 'archived'")?
        .query_row([call_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// An attempt failed in a way that may pass (network, store down, credentials): try again at
/// `next_attempt_at_utc`.
pub fn mark_retry(
    conn: &Connection,
    call_id: i64,
    error: &str,
    next_attempt_at_utc: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE archive_uploads SET attempts = attempts + 1, last_error = ?2, next_attempt_at_utc = ?3
         WHERE call_id = ?1 AND state = 'pending'",
        params![call_id, error, next_attempt_at_utc],
    )?;
    Ok(())
}

/// The call cannot be shipped as it is (its file no longer matches its row, it was deleted):
/// no more attempts until an operator acts. It stays in the backlog, so the alarm shows it.
pub fn mark_failed(conn: &Connection, call_id: i64, error: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE archive_uploads SET state = 'failed', attempts = attempts + 1, last_error = ?2
         WHERE call_id = ?1 AND state = 'pending'",
        params![call_id, error],
    )?;
    Ok(())
}

/// Every pending upload due now: a (re)started shipper tries at once instead of waiting out the
/// backoff of a previous run (an operator who fixed the credentials restarts it). Returns how
/// many rows it changed.
pub fn retry_now(conn: &Connection, now_utc: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE archive_uploads SET next_attempt_at_utc = ?1
         WHERE state = 'pending' AND next_attempt_at_utc > ?1",
        [now_utc],
    )?)
}

/// The highest ledger seq already in the archive (0 when none).
pub fn ledger_shipped_through(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(last_seq), 0) FROM archive_ledger_segments")?
        .query_row([], |r| r.get(0))?)
}

/// When the newest segment was confirmed, None before the first.
pub fn last_segment_at(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT max(shipped_at_utc) FROM archive_ledger_segments")?
        .query_row([], |r| r.get(0))?)
}

/// One ledger segment the store confirmed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub first_seq: i64,
    pub last_seq: i64,
    pub object_key: String,
    pub sha256: String,
    pub etag: String,
    pub shipped_at_utc: String,
}

pub fn record_segment(conn: &Connection, s: &Segment) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO archive_ledger_segments (first_seq, last_seq, object_key, sha256, etag, shipped_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.first_seq, s.last_seq, s.object_key, s.sha256, s.etag, s.shipped_at_utc],
    )?;
    Ok(())
}

pub fn segments(conn: &Connection) -> Result<Vec<Segment>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT first_seq, last_seq, object_key, sha256, etag, shipped_at_utc
         FROM archive_ledger_segments ORDER BY first_seq",
    )?;
    let v = st
        .query_map([], |r| {
            Ok(Segment {
                first_seq: r.get(0)?,
                last_seq: r.get(1)?,
                object_key: r.get(2)?,
                sha256: r.get(3)?,
                etag: r.get(4)?,
                shipped_at_utc: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// What is not yet in the archive: every finalized call without a confirmed copy, queued or not
/// (so the figures are right while no shipper runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backlog {
    pub calls: i64,
    pub bytes: i64,
    /// When the oldest of them ended (UTC text), None when there are none.
    pub oldest_ended_at_utc: Option<String>,
    /// Seconds since then, at the time asked.
    pub oldest_age_s: i64,
    /// Calls marked failed (need an operator).
    pub failed_calls: i64,
    pub archived_calls: i64,
    /// Ledger entries not yet in a shipped segment.
    pub ledger_entries_unshipped: i64,
    /// The most recent error of any queued call, with its call id.
    pub last_error: Option<String>,
    pub last_error_call_id: Option<i64>,
}

/// The backlog at `now` (for the age).
pub fn backlog(
    conn: &Connection,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Backlog, StoreError> {
    let (calls, bytes, oldest, failed): (i64, i64, Option<String>, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(c.bytes), 0), min(coalesce(c.ended_at_utc, c.started_at_utc)),
                    coalesce(sum(a.state = 'failed'), 0)
             FROM calls c LEFT JOIN archive_uploads a ON a.call_id = c.id
             WHERE c.status IN {SHIPPED_STATUSES} AND c.sha256 IS NOT NULL
               AND (a.state IS NULL OR a.state <> 'archived')"
        ))?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let archived_calls: i64 = conn
        .prepare_cached("SELECT count(*) FROM archive_uploads WHERE state = 'archived'")?
        .query_row([], |r| r.get(0))?;
    // The error of the most recently attempted call that still has one.
    let last: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT call_id, last_error FROM archive_uploads
             WHERE last_error IS NOT NULL AND state <> 'archived'
             ORDER BY attempts > 0 DESC, next_attempt_at_utc DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let ledger_entries_unshipped: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM ledger
             WHERE seq > (SELECT coalesce(max(last_seq), 0) FROM archive_ledger_segments)",
        )?
        .query_row([], |r| r.get(0))?;
    let oldest_age_s = oldest
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| {
            (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0)
        });
    Ok(Backlog {
        calls,
        bytes,
        oldest_ended_at_utc: oldest,
        oldest_age_s,
        failed_calls: failed,
        archived_calls,
        ledger_entries_unshipped,
        last_error_call_id: last.as_ref().map(|l| l.0),
        last_error: last.map(|l| l.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    #[test]
    fn finalized_calls_are_queued_once_and_archived_only_with_an_etag() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let call = |content: &str| TestCall::default().file(content).finalized("complete");
        let a = call("a").insert_in(&conn, _dir.path())?.id;
        let b = call("bb").insert_in(&conn, _dir.path())?.id;
        // Still recording: not shipped.
        TestCall::default().insert(&conn)?;
        let now = "2026-12-05T10:00:00.000Z";
        let found = unqueued(&conn, 10)?;
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), vec![a, b]);
        enqueue(&conn, &[(a, "k/a.opus".into())], now)?;
        enqueue(&conn, &[(a, "other".into())], now)?; // already queued: kept as it was
        assert_eq!(
            get(&conn, a)?.map(|u| u.object_key),
            Some("k/a.opus".into())
        );
        assert_eq!(
            unqueued(&conn, 10)?.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![b]
        );

        mark_retry(&conn, a, "connection refused", "2026-12-05T10:00:05.000Z")?;
        assert!(due(&conn, now, 10)?.is_empty());
        assert_eq!(retry_now(&conn, now)?, 1);
        assert_eq!(due(&conn, now, 10)?.len(), 1);
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-05T11:00:00Z")?.to_utc();
        let bl = backlog(&conn, t)?;
        assert_eq!((bl.calls, bl.archived_calls), (2, 0));
        assert_eq!(bl.last_error.as_deref(), Some("connection refused"));

        // The CHECK: archived needs an ETag.
        let no_etag = conn.execute(
            "UPDATE archive_uploads SET state = 'archived', archived_at_utc = ?2 WHERE call_id = ?1",
            params![a, now],
        );
        assert!(no_etag.is_err());
        mark_archived(&conn, a, "\"abc\"", None, now)?;
        let bl = backlog(&conn, t)?;
        assert_eq!((bl.calls, bl.archived_calls, bl.last_error), (1, 1, None));
        Ok(())
    }
}
