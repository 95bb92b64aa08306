//! Active alarms (disk full, disk pressure the guard could not relieve, a seat recording
//! silence): conditions an operator must see and act on, kept in the index so the web service,
//! `/metrics` and the CLI all read the same truth, and so an alarm survives a restart of the
//! process that raised it.
//!
//! An alarm is about a subject: the box (`""`, the disk and archive alarms) or a seat (the
//! completeness alarms, raised by the recorder: record::completeness). At most one alarm per
//! kind and subject is active (a unique index over `(kind, subject)` where `cleared_at_utc IS
//! NULL`, migrations 11 and 21). Raising an active alarm again only refreshes its detail;
//! raising and clearing are logged and audited (actor `callrec`). This module never deletes an
//! alarm row: a cleared alarm stays as history of when the box was in trouble.

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
/// A seat's agent or customer channel stayed below the noise floor through a long call, or
/// through several calls in a row (subject: the seat).
pub const SILENT_CHANNEL: &str = "silent_channel";
/// An agent is logged in at a seat in `control` mode but no call came for too long in working
/// hours (subject: the seat).
pub const IDLE_LOGGED_IN: &str = "idle_logged_in";
/// The CTI announced a call at a seat (a control `start`) that did not become a recording
/// (subject: the seat).
pub const START_REFUSED: &str = "start_refused";

/// Every kind callrec raises, box-wide ones first (`/metrics` shows each, raised or not).
pub const BOX_KINDS: &[&str] = &[DISK_FULL, DISK_PRESSURE, ARCHIVE_BACKLOG];
/// The kinds raised per seat.
pub const SEAT_KINDS: &[&str] = &[SILENT_CHANNEL, IDLE_LOGGED_IN, START_REFUSED];

/// Who raises and clears alarms in the audit log.
const ACTOR: &str = "callrec";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alarm {
    pub id: i64,
    pub kind: String,
    /// `""` for the box, else the seat the alarm is about.
    pub subject: String,
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
        subject: r.get(2)?,
        detail: r.get(3)?,
        raised_at_utc: r.get(4)?,
        cleared_at_utc: r.get(5)?,
    })
}

const COLUMNS: &str = "id, kind, subject, detail, raised_at_utc, cleared_at_utc";

fn active_of(conn: &Connection, kind: &str, subject: &str) -> Result<Option<Alarm>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM alarms
             WHERE kind = ?1 AND subject = ?2 AND cleared_at_utc IS NULL"
        ))?
        .query_row([kind, subject], row_to_alarm)
        .optional()?)
}

/// Raises box-wide alarm `kind`: [`raise_for`] the subject `""`.
pub fn raise(
    conn: &Connection,
    kind: &str,
    detail: &str,
    now_utc: &str,
) -> Result<Raised, StoreError> {
    raise_for(conn, kind, "", detail, now_utc)
}

/// Raises alarm `kind` about `subject` (idempotent while it is active: only the detail is
/// refreshed, so a guard that re-raises every tick writes nothing while the situation is
/// unchanged). A new alarm is logged (error level box-wide, warning for a seat) and audited as
/// `alarm.raise` in the same transaction.
pub fn raise_for(
    conn: &Connection,
    kind: &str,
    subject: &str,
    detail: &str,
    now_utc: &str,
) -> Result<Raised, StoreError> {
    // IMMEDIATE: the check and the insert must not race another process raising the same kind.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let outcome = match active_of(&tx, kind, subject)? {
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
                "INSERT INTO alarms (kind, subject, detail, raised_at_utc) VALUES (?1, ?2, ?3, ?4)",
                params![kind, subject, detail, now_utc],
            )?;
            let id = tx.last_insert_rowid();
            audit::append(
                &tx,
                &audit::Event {
                    actor: ACTOR,
                    action: "alarm.raise",
                    call_id: None,
                    detail: serde_json::json!({
                        "alarm_id": id, "kind": kind, "subject": subject, "detail": detail,
                    }),
                    ip: None,
                },
            )?;
            Raised::New
        }
    };
    tx.commit()?;
    match outcome {
        // A box-wide alarm (disk full, disk pressure, archive backlog) is the recorder in
        // trouble; a seat's alarm is about that seat's audio or its CTI while the recorder works
        // (the crash campaigns fail on any error line, and a seat may legitimately be quiet).
        Raised::New if subject.is_empty() => {
            tracing::error!(alarm = kind, "alarm raised: {detail}")
        }
        Raised::New => tracing::warn!(alarm = kind, subject, "alarm raised: {detail}"),
        Raised::Updated => tracing::debug!(alarm = kind, subject, "alarm still active: {detail}"),
        Raised::Unchanged => {}
    }
    Ok(outcome)
}

/// Clears box-wide alarm `kind`: [`clear_for`] the subject `""`.
pub fn clear(conn: &Connection, kind: &str, now_utc: &str) -> Result<bool, StoreError> {
    clear_for(conn, kind, "", now_utc)
}

/// Clears alarm `kind` about `subject` if it is active; returns whether there was one. Logged
/// at info level and audited as `alarm.clear`.
pub fn clear_for(
    conn: &Connection,
    kind: &str,
    subject: &str,
    now_utc: &str,
) -> Result<bool, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let Some(a) = active_of(&tx, kind, subject)? else {
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
                "subject": subject,
                "detail": a.detail,
                "raised_at_utc": a.raised_at_utc,
            }),
            ip: None,
        },
    )?;
    tx.commit()?;
    tracing::info!(
        alarm = kind,
        subject,
        raised_at_utc = %a.raised_at_utc,
        "alarm cleared (was: {})",
        a.detail
    );
    Ok(true)
}

/// Every active alarm, oldest first.
pub fn active(conn: &Connection) -> Result<Vec<Alarm>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alarms WHERE cleared_at_utc IS NULL ORDER BY raised_at_utc, id"
    ))?;
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

    #[test]
    fn one_active_alarm_per_kind_and_seat() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let t = "2026-01-01T00:00:00.000Z";
        assert_eq!(raise_for(&conn, SILENT_CHANNEL, "s1", "a", t)?, Raised::New);
        assert_eq!(raise_for(&conn, SILENT_CHANNEL, "s2", "a", t)?, Raised::New);
        assert_eq!(
            raise_for(&conn, SILENT_CHANNEL, "s1", "a", t)?,
            Raised::Unchanged
        );
        // A box-wide alarm of another kind lives beside them.
        assert_eq!(raise(&conn, DISK_FULL, "x", t)?, Raised::New);
        let subjects: Vec<(String, String)> = active(&conn)?
            .into_iter()
            .map(|a| (a.kind, a.subject))
            .collect();
        assert_eq!(
            subjects,
            [
                (SILENT_CHANNEL.to_owned(), "s1".to_owned()),
                (SILENT_CHANNEL.to_owned(), "s2".to_owned()),
                (DISK_FULL.to_owned(), String::new()),
            ]
        );
        assert!(clear_for(&conn, SILENT_CHANNEL, "s1", t)?);
        assert!(
            !clear(&conn, SILENT_CHANNEL, t)?,
            "no box-wide one to clear"
        );
        let left: Vec<String> = active(&conn)?.into_iter().map(|a| a.subject).collect();
        assert_eq!(left, ["s2", ""]);
        let subject: String = conn.query_row(
            "SELECT json_extract(detail, '$.subject') FROM audit WHERE action = 'alarm.clear'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(subject, "s1");
        Ok(())
    }
}
