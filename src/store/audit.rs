//! The audit log: append-only, hash-chained rows of who did what (login, search, play, download,
//! notes, users, control API).
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and this row's fields, so editing,
//! reordering or removing a row in the middle breaks every later link; `callrec audit verify`
//! recomputes the chain. SQLite triggers refuse UPDATE and DELETE, so only someone who drops the
//! triggers (direct file access) can tamper, and then `verify` names the first bad row. Removing
//! rows from the *end* is not detectable from the table alone; the signed ledger (issue 4) anchors
//! the head. This module must never update or delete audit rows.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One thing to record.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub call_id: Option<i64>,
    /// JSON object with the specifics (filters searched, byte range, time range heard, ...).
    pub detail: serde_json::Value,
    pub ip: Option<&'a str>,
}

/// Who makes a change, for the audit row the change writes in its own transaction: an account
/// name (web), `cli:<user>` (command line) or `system`, and the client's address when known.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub ip: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// An actor without a network address (the command line, the box itself).
    pub fn local(name: &'a str) -> Actor<'a> {
        Actor { name, ip: None }
    }

    pub fn event(
        self,
        action: &'a str,
        call_id: Option<i64>,
        detail: serde_json::Value,
    ) -> Event<'a> {
        Event {
            actor: self.name,
            action,
            call_id,
            detail,
            ip: self.ip,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub at_utc: String,
    pub actor: String,
    pub action: String,
    pub call_id: Option<i64>,
    pub detail: String,
    pub ip: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

fn row_from(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        at_utc: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        call_id: r.get(4)?,
        detail: r.get(5)?,
        ip: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

/// The hash of one row: fields joined with a separator that cannot occur inside them unescaped
/// (JSON detail escapes control characters; the other fields are ours).
fn row_hash(r: &Row) -> String {
    let mut h = Sha256::new();
    for part in [
        r.prev_hash.as_str(),
        &r.id.to_string(),
        &r.at_utc,
        &r.actor,
        &r.action,
        &r.call_id.map(|c| c.to_string()).unwrap_or_default(),
        &r.detail,
        r.ip.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Appends one row. `BEGIN IMMEDIATE` serialises writers (server and CLI) so the chain never forks.
/// Inside a caller's transaction (which must already hold the write lock, e.g. a deletion that
/// audits each call it marks) the row joins that transaction: both commit or neither does.
pub fn append(conn: &Connection, ev: &Event) -> Result<i64, StoreError> {
    if !conn.is_autocommit() {
        return append_locked(conn, ev);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let id = append_locked(&tx, ev)?;
    tx.commit()?;
    Ok(id)
}

fn append_locked(tx: &Connection, ev: &Event) -> Result<i64, StoreError> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (id, prev) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut row = Row {
        id,
        at_utc: crate::clock::utc_now(),
        actor: ev.actor.to_owned(),
        action: ev.action.to_owned(),
        call_id: ev.call_id,
        detail: redacted(tx, &ev.detail)?,
        ip: ev.ip.map(str::to_owned),
        prev_hash: prev,
        hash: String::new(),
    };
    row.hash = row_hash(&row);
    tx.execute(
        "INSERT INTO audit (id, at_utc, actor, action, call_id, detail, ip, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            row.id,
            row.at_utc,
            row.actor,
            row.action,
            row.call_id,
            row.detail,
            row.ip,
            row.prev_hash,
            row.hash
        ],
    )?;
    Ok(id)
}

/// The row's detail as stored: personal values replaced by their pseudonyms (store::pseudonym),
/// so that no erasure ever needs to rewrite this log.
fn redacted(conn: &Connection, detail: &serde_json::Value) -> Result<String, StoreError> {
    let key = super::pseudonym::key_for(conn)?;
    let mut detail = detail.clone();
    key.redact(&mut detail);
    Ok(detail.to_string())
}

/// The first broken link found by [`verify`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Break {
    pub id: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub rows: u64,
    pub head_hash: String,
    pub breaks: Vec<Break>,
}

/// Recomputes the whole chain. Reports every row whose stored hash or link is wrong.
pub fn verify(conn: &Connection) -> Result<VerifyReport, StoreError> {
    let mut st = conn.prepare(
        "SELECT id, at_utc, actor, action, call_id, detail, ip, prev_hash, hash FROM audit ORDER BY id",
    )?;
    let mut rows = st.query(params![])?;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_id = 1i64;
    let mut report = VerifyReport {
        rows: 0,
        head_hash: GENESIS.to_owned(),
        breaks: Vec::new(),
    };
    while let Some(r) = rows.next()? {
        let row = row_from(r)?;
        report.rows += 1;
        if row.id != expected_id {
            report.breaks.push(Break {
                id: row.id,
                problem: format!("rows {expected_id}..{} are missing", row.id - 1),
            });
        }
        if row.prev_hash != expected_prev {
            report.breaks.push(Break {
                id: row.id,
                problem: "prev_hash does not match the previous row's hash (a row before it was changed, removed or inserted)".into(),
            });
        }
        if row_hash(&row) != row.hash {
            report.breaks.push(Break {
                id: row.id,
                problem: "contents do not match the row's hash (the row was edited)".into(),
            });
        }
        expected_prev = row.hash.clone();
        expected_id = row.id + 1;
        report.head_hash = row.hash;
    }
    Ok(report)
}

/// Filters for the auditor page.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub call_id: Option<i64>,
    pub since_utc: Option<String>,
    pub until_utc: Option<String>,
    /// Rows with id below this (keyset pagination, newest first).
    pub before_id: Option<i64>,
    /// Rows whose detail holds this pseudonym (store::pseudonym): "who searched for this
    /// number?", answered without the number being in the log.
    pub mentions: Option<String>,
    pub limit: u32,
}

pub fn list(conn: &Connection, f: &Filter) -> Result<Vec<Row>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, at_utc, actor, action, call_id, detail, ip, prev_hash, hash FROM audit
         WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2 OR action LIKE ?2 || '.%')
           AND (?3 IS NULL OR call_id = ?3) AND (?4 IS NULL OR at_utc >= ?4)
           AND (?5 IS NULL OR at_utc < ?5) AND (?6 IS NULL OR id < ?6)
           AND (?8 IS NULL OR instr(detail, ?8) > 0)
         ORDER BY id DESC LIMIT ?7",
    )?;
    let rows = st
        .query_map(
            params![
                f.actor,
                f.action,
                f.call_id,
                f.since_utc,
                f.until_utc,
                f.before_id,
                i64::from(f.limit),
                f.mentions
            ],
            row_from,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestResult};

    #[test]
    fn chain_verifies_and_detects_an_edited_row() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        for i in 0..5 {
            append(
                &conn,
                &Event {
                    actor: "alice",
                    action: "play",
                    call_id: Some(i),
                    detail: serde_json::json!({"from_s": i}),
                    ip: Some("127.0.0.1"),
                },
            )?;
        }
        let ok = verify(&conn)?;
        assert_eq!(ok.rows, 5);
        assert!(ok.breaks.is_empty(), "{:?}", ok.breaks);

        // The triggers refuse edits through SQL...
        assert!(conn
            .execute("UPDATE audit SET actor = 'mallory' WHERE id = 3", [])
            .is_err());
        assert!(conn.execute("DELETE FROM audit WHERE id = 2", []).is_err());
        // ...and someone who drops them is caught by the chain.
        conn.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")?;
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3", [])?;
        let bad = verify(&conn)?;
        assert_eq!(
            bad.breaks,
            vec![Break {
                id: 3,
                problem: "contents do not match the row's hash (the row was edited)".into()
            }]
        );
        conn.execute("DELETE FROM audit WHERE id = 4", [])?;
        let bad = verify(&conn)?;
        assert_eq!(bad.breaks.iter().filter(|b| b.id == 5).count(), 2);
        Ok(())
    }
}
