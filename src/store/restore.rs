//! The SQL of `callrec archive restore` (`hub::restore`): a replaced box's index rebuilt from
//! the archive: calls under their own ids with intervals, tags and metrics as their sidecars
//! carry them, the box's ledger entries as they were written (same seq, hashes and times), the
//! shipped ledger segments, and every restored call marked archived so that retention trusts
//! its archive copy and the shipper does not upload it again.
//!
//! Idempotent: a call, entry or segment already present is left as it is. This module must never
//! take a value from a sidecar it was not handed already checked (`hub::sidecar` validates them),
//! never update or delete a row, and never write ledger entries outside one transaction that
//! holds the write lock.

use super::archive::Segment;
use super::hub::HubCall;
use super::{ledger, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};

/// How many calls the index holds (a restore refuses a non-empty index without `--force`).
pub fn call_count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))?)
}

/// One restored call: the checked sidecar's call, where its file belongs, and the audio
/// object's ETag as the store lists it.
pub struct RestoredCall<'a> {
    pub call: &'a HubCall,
    pub rel_path: String,
    pub audio_etag: String,
}

/// What one restore wrote (rows already present are not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub calls: usize,
    pub ledger_entries: usize,
    pub segments: usize,
}

/// Writes calls, ledger entries (oldest first, a consistent chain from seq 1) and segments in
/// one immediate transaction.
pub fn write(
    conn: &Connection,
    calls: &[RestoredCall],
    entries: &[ledger::Entry],
    segments: &[Segment],
    now_utc: &str,
) -> Result<Written, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut w = Written::default();
    for e in entries {
        w.ledger_entries += tx.execute(
            "INSERT OR IGNORE INTO ledger (seq, kind, call_id, file_sha256, detail, prev_sha256, entry_sha256, at_utc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![e.seq, e.kind, e.call_id, e.file_sha256, e.detail, e.prev_sha256, e.entry_sha256, e.at_utc],
        )?;
    }
    for r in calls {
        let c = r.call;
        let new = tx.execute(
            &super::hub::insert_call_sql("INSERT OR IGNORE", true),
            rusqlite::params_from_iter(
                std::iter::once(&c.box_call_id as &dyn rusqlite::ToSql)
                    .chain(super::hub::call_values(c, &r.rel_path)),
            ),
        )?;
        if new == 0 {
            continue;
        }
        w.calls += 1;
        for t in &c.tags {
            tx.execute(
                "INSERT OR IGNORE INTO call_tags (call_id, tag) VALUES (?1, ?2)",
                params![c.box_call_id, t],
            )?;
        }
        for i in &c.intervals {
            tx.execute(
                "INSERT INTO call_intervals (call_id, kind, start_ms, end_ms, by, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.box_call_id, i.kind, i.start_ms, i.end_ms, i.by, i.reason],
            )?;
        }
        if let Some(m) = &c.metrics {
            super::hub::put_metrics_json(&tx, c.box_call_id, m)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO archive_uploads (call_id, state, object_key, etag, next_attempt_at_utc,
                 queued_at_utc, archived_at_utc)
             VALUES (?1, 'archived', ?2, ?3, ?4, ?4, ?4)",
            params![c.box_call_id, c.objects.audio_key, r.audio_etag, now_utc],
        )?;
    }
    for s in segments {
        w.segments += tx.execute(
            "INSERT OR IGNORE INTO archive_ledger_segments (first_seq, last_seq, object_key, sha256, etag, shipped_at_utc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![s.first_seq, s.last_seq, s.object_key, s.sha256, s.etag, s.shipped_at_utc],
        )?;
    }
    tx.commit()?;
    Ok(w)
}
