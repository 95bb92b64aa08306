//! Reviewer notes pinned to a moment of a call.
//!
//! Deleting a note only marks it (`deleted_at_utc`): notes can end up in evidence, and the audit
//! log refers to them by id, so rows are never removed.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: i64,
    pub call_id: i64,
    pub at_ms: i64,
    pub author: String,
    pub text: String,
    pub created_at_utc: String,
}

fn row_to_note(r: &rusqlite::Row) -> rusqlite::Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        call_id: r.get(1)?,
        at_ms: r.get(2)?,
        author: r.get(3)?,
        text: r.get(4)?,
        created_at_utc: r.get(5)?,
    })
}

pub fn add(
    conn: &Connection,
    call_id: i64,
    at_ms: i64,
    author: &str,
    text: &str,
) -> Result<Note, StoreError> {
    super::ensure_not_deleted(conn, call_id)?;
    let id: i64 = conn.query_row(
        "INSERT INTO notes (call_id, at_ms, author, text, created_at_utc) VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id",
        params![call_id, at_ms, author, text, crate::clock::utc_now()],
        |r| r.get(0),
    )?;
    get(conn, id)?.ok_or(StoreError::NoSuchCall(call_id))
}

/// A live (not deleted) note.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Note>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, call_id, at_ms, author, text, created_at_utc FROM notes
             WHERE id = ?1 AND deleted_at_utc IS NULL",
            [id],
            row_to_note,
        )
        .optional()?)
}

pub fn for_call(conn: &Connection, call_id: i64) -> Result<Vec<Note>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, call_id, at_ms, author, text, created_at_utc FROM notes
         WHERE call_id = ?1 AND deleted_at_utc IS NULL ORDER BY at_ms, id",
    )?;
    let v = st
        .query_map([call_id], row_to_note)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn delete(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE notes SET deleted_at_utc = ?2 WHERE id = ?1 AND deleted_at_utc IS NULL",
        params![id, crate::clock::utc_now()],
    )?;
    Ok(())
}
