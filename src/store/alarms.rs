//! Active alarms (disk full, disk pressure the guard could not relieve): conditions an operator
//! must see and act on, kept in the index so the web service, `/metrics` and the CLI all read
//! the same truth, and so an alarm survives a restart of the process that raised it.
//!
//! At most one alarm per kind is active (a unique index over `kind` where `cleared_at_utc IS
//! NULL`, migration 11). Raising an active alarm again only refreshes its detail; raising and
//! clearing are logged and audited (actor `callrec`). This module never deletes an alarm row:
//! a cleared alarm stays as history of when the box was in trouble.

use super::{audit, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

/// The storage filesystem ran out of space while recording (raised by the recorder).
pub const DISK_FULL: &str = "disk_full";
/// Usage stayed above the high-water mark with nothing left that may be deleted.
pub const DISK_PRESSURE: &str = "disk_pressure";
/// The oldest finalized call not yet in the archive is older than `archive.backlog_alarm_s`
/// (raised and cleared by the shipper; its detail names the last upload error).
pub const ARCHIVE_BACKLOG: &str = "archive_backlog";

/// Who raises and clears alarms in the audit log.
const ACTOR: &str = "callrec";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alarm {
    pub id: i64,
    pub kind: String,
    pub detail: String,
    pub raised_at_utc: String,
    pub cleared_at_utc: Option<String>,
}

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// No alarm of this kind was active; one is now.
    New,
    /// Already active; its detail was replaced.
    Updated,
    /// Already active with the same detail; nothing was written.
    Unchanged,
}

fn row_to_alarm(r: &rusqlite::Row) -> rusqlite::Result<Alarm> {
    Ok(Alarm {
        id: r.get(0)?,
        kind: r.get(1)?,
        detail: r.get(2)?,
        raised_at_utc: r.get(3)?,
        cleared_at_utc: r.get(4)?,
    })
}

fn active_of(conn: &Connection, kind: &str) -> Result<Option<Alarm>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, kind, detail, raised_at_utc, cleared_at_utc FROM alarms
             WHERE kind = ?1 AND cleared_at_utc IS NULL",
        )?
        .query_row([kind], row_to_alarm)
        .optional()?)
}

/// Raises alarm `kind` (idempotent while it is active: only the detail is refreshed, so a guard
/// that re-raises every tick writes nothing while the situation is unchanged). A new alarm is
/// logged at error level and audited as `alarm.raise` in the same transaction.
pub fn raise(
    conn: &Connection,
    kind: &str,
    detail: &str,
    now_utc: &str,
) -> Result<Raised, StoreError> {
    // IMMEDIATE: the check and the insert must not race another process raising the same kind.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let outcome = match active_of(&tx, kind)? {
        Some(a) if a.detail == detail => Raised::Unchanged,
        Some(a) => {
            tx.execute(
                "UPDATE alarms SET detail = ?2 WHERE id = ?1",
                params![a.id, detail],
            )?;
            Raised::Updated
        }
        None => {
            tx.execute(
                "INSERT INTO alarms (kind, detail, raised_at_utc) VALUES (?1, ?2, ?3)",
                params![kind, detail, now_utc],
            )?;
            let id = tx.last_insert_rowid();
            audit::append(
                &tx,
                &audit::Event {
                    actor: ACTOR,
                    action: "alarm.raise",
                    call_id: None,
                    detail: serde_json::json!({"alarm_id": id, "kind": kind, "detail": detail}),
                    ip: None,
                },
            )?;
            Raised::New
        }
    };
    tx.commit()?;
    match outcome {
        Raised::New => tracing::error!(alarm = kind, "alarm raised: {detail}"),
        Raised::Updated => tracing::debug!(alarm = kind, "alarm still active: {detail}"),
        Raised::Unchanged => {}
    }
    Ok(outcome)
}

/// Clears alarm `kind` if it is active; returns whether there was one. Logged at info level and
/// audited as `alarm.clear`.
pub fn clear(conn: &Connection, kind: &str, now_utc: &str) -> Result<bool, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let Some(a) = active_of(&tx, kind)? else {
        return Ok(false); // dropping the transaction rolls back nothing
    };
    tx.execute(
        "UPDATE alarms SET cleared_at_utc = ?2 WHERE id = ?1",
        params![a.id, now_utc],
    )?;
    audit::append(
        &tx,
        &audit::Event {
            actor: ACTOR,
            action: "alarm.clear",
            call_id: None,
            detail: serde_json::json!({
                "alarm_id": a.id,
                "kind": kind,
                "detail": a.detail,
                "raised_at_utc": a.raised_at_utc,
            }),
            ip: None,
        },
    )?;
    tx.commit()?;
    tracing::info!(
        alarm = kind,
        raised_at_utc = %a.raised_at_utc,
        "alarm cleared (was: {})",
        a.detail
    );
    Ok(true)
}

/// Every active alarm, oldest first.
pub fn active(conn: &Connection) -> Result<Vec<Alarm>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, kind, detail, raised_at_utc, cleared_at_utc FROM alarms
         WHERE cleared_at_utc IS NULL ORDER BY raised_at_utc, id",
    )?;
    let rows = st.query_map([], row_to_alarm)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestResult};

    #[test]
    fn raise_is_idempotent_and_clear_keeps_history() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        assert_eq!(
            raise(&conn, DISK_FULL, "a", "2026-01-01T00:00:00.000Z")?,
            Raised::New
        );
        assert_eq!(
            raise(&conn, DISK_FULL, "a", "2026-01-01T00:00:01.000Z")?,
            Raised::Unchanged
        );
        assert_eq!(
            raise(&conn, DISK_FULL, "b", "2026-01-01T00:00:02.000Z")?,
            Raised::Updated
        );
        let act = active(&conn)?;
        assert_eq!(act.len(), 1);
        assert_eq!(act[0].detail, "b");
        assert_eq!(act[0].raised_at_utc, "2026-01-01T00:00:00.000Z");
        assert!(clear(&conn, DISK_FULL, "2026-01-01T00:00:03.000Z")?);
        assert!(!clear(&conn, DISK_FULL, "2026-01-01T00:00:04.000Z")?);
        assert!(active(&conn)?.is_empty());
        // A new raise after a clear is a new alarm; the old row stays as history.
        assert_eq!(
            raise(&conn, DISK_FULL, "c", "2026-01-01T00:00:05.000Z")?,
            Raised::New
        );
        let rows: i64 = conn.query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))?;
        assert_eq!(rows, 2);
        let audited: i64 = conn.query_row(
            "SELECT count(*) FROM audit WHERE action IN ('alarm.raise', 'alarm.clear') AND actor = 'callrec'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(audited, 3);
        Ok(())
    }
}
