//! The evidence ledger: one hash-chained entry per finalized call (`kind = call`), and one per
//! deleted call (`kind = tombstone`), in the `ledger` table of migration 8.
//!
//! Each entry commits to the previous one, so changing, inserting or removing an entry in the
//! middle breaks every later link; SQLite triggers refuse UPDATE and DELETE. A call's entry is
//! written by [`append_call`] inside the transaction of `store::finalize_call`, so a finalized call
//! with a hash has its entry atomically: both are committed or neither is.
//!
//! This module must never update or delete an entry, and never write an entry outside a
//! transaction that holds SQLite's write lock (two writers must not fork the chain; `seq` is the
//! primary key, so a racing second writer fails instead of forking).
//!
//! # Entry hash: the byte layout (version 2)
//!
//! `entry_sha256` is the lowercase hex SHA-256 (FIPS 180-4) of these UTF-8 lines, each ended by
//! one line feed (0x0a), including the last:
//!
//! ```text
//! callrec-ledger-v2
//! <seq>            decimal, no leading zeros (1 for the first entry)
//! <kind>           call | tombstone
//! <call_id>        decimal
//! <file_sha256>    64 lowercase hex digits, or an empty line when there is none
//! <detail>         the stored detail text, byte for byte (compact JSON, see below)
//! <prev_sha256>    entry_sha256 of entry seq - 1; 64 zeros ("0" × 64) for the first entry
//! <at_utc>         when the entry was written, e.g. 2026-11-27T10:00:00.000Z
//! ```
//!
//! No field can contain a line feed: JSON escapes control characters inside strings and compact
//! JSON has no whitespace between tokens; the other fields are digits, hex, words and timestamps.
//! Anyone can therefore recompute an entry without callrec, e.g. with the values from
//! `sqlite3 callrec.db 'SELECT * FROM ledger WHERE seq = 1'`:
//!
//! ```text
//! printf 'callrec-ledger-v2\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n' \
//!   "$seq" "$kind" "$call_id" "$file_sha256" "$detail" "$prev_sha256" "$at_utc" | sha256sum
//! ```
//!
//! # Detail
//!
//! For a call: `{"agent", "box_id", "bytes", "campaign", "direction", "duration_ms",
//! "ended_at_utc", "seat_id", "started_at_utc", "status"}` from the call's row,
//! as canonical JSON (RFC 8785, JCS: keys sorted, no whitespace, integers as integers, absent
//! values as `null`, strings escaped minimally). For a tombstone: `{"reason": ...}`. The hash is
//! over the stored text, so a verifier never needs to re-canonicalize; `callrec verify --store`
//! also rebuilds a call's detail from its current row to detect an edited row.
//!
//! Version 2 differs from version 1 (never released) only in leaving the customer's number out
//! of the detail: the ledger is permanent, and a number that an erasure request (GDPR Art. 17)
//! removes from the index must not survive in it. The number stays bound to the evidence through
//! the file's OpusTags, which `file_sha256` covers while the file exists.

use super::error::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_sha256` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// First line of the hashed layout; a new layout gets a new tag, never a silent change.
pub const LAYOUT_TAG: &str = "callrec-ledger-v2";

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    pub kind: String,
    pub call_id: i64,
    pub file_sha256: Option<String>,
    /// Canonical JSON, stored and hashed as this exact text.
    pub detail: String,
    pub prev_sha256: String,
    pub entry_sha256: String,
    pub at_utc: String,
}

/// The last entry: what an export records as "the chain head at export time".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub entry_sha256: String,
}

/// The key metadata of a finalized call that its ledger entry commits to. Fields are declared in
/// lexicographic order, which is the order serde writes them: that makes the compact JSON
/// canonical (RFC 8785) whatever features serde_json is built with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallDetail {
    pub agent: Option<String>,
    pub box_id: String,
    pub bytes: i64,
    pub campaign: Option<String>,
    pub direction: Option<String>,
    pub duration_ms: i64,
    pub ended_at_utc: Option<String>,
    pub seat_id: String,
    pub started_at_utc: String,
    pub status: String,
}

impl CallDetail {
    /// The canonical JSON text stored as the entry's detail.
    pub fn canonical_json(&self) -> String {
        // Serializing a struct of strings, integers and options cannot fail; the fallback only
        // keeps the library free of panics.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[derive(Serialize)]
struct TombstoneDetail<'a> {
    reason: &'a str,
}

/// The bytes that `entry_sha256` is computed over (see the module documentation).
pub fn hashed_bytes(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + e.detail.len());
    for part in [
        LAYOUT_TAG,
        &e.seq.to_string(),
        &e.kind,
        &e.call_id.to_string(),
        e.file_sha256.as_deref().unwrap_or(""),
        &e.detail,
        &e.prev_sha256,
        &e.at_utc,
    ] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Lowercase hex SHA-256 of [`hashed_bytes`].
pub fn entry_hash(e: &Entry) -> String {
    hex::encode(Sha256::digest(hashed_bytes(e)))
}

fn row_to_entry(r: &rusqlite::Row) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: r.get(0)?,
        kind: r.get(1)?,
        call_id: r.get(2)?,
        file_sha256: r.get(3)?,
        detail: r.get(4)?,
        prev_sha256: r.get(5)?,
        entry_sha256: r.get(6)?,
        at_utc: r.get(7)?,
    })
}

const ENTRY_COLUMNS: &str =
    "seq, kind, call_id, file_sha256, detail, prev_sha256, entry_sha256, at_utc";

/// Runs `f` holding SQLite's write lock: in the caller's transaction when there is one (the
/// caller must already have written in it, or have begun it IMMEDIATE), otherwise in a new
/// `BEGIN IMMEDIATE` transaction, so reading the head and appending cannot interleave with
/// another writer.
fn with_write_lock<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if conn.is_autocommit() {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    } else {
        f(conn)
    }
}

fn append_locked(
    conn: &Connection,
    kind: &str,
    call_id: i64,
    file_sha256: Option<&str>,
    detail: String,
) -> Result<Entry, StoreError> {
    let (seq, prev) = match head(conn)? {
        Some(h) => (h.seq + 1, h.entry_sha256),
        None => (1, GENESIS.to_owned()),
    };
    let mut e = Entry {
        seq,
        kind: kind.to_owned(),
        call_id,
        file_sha256: file_sha256.map(str::to_owned),
        detail,
        prev_sha256: prev,
        entry_sha256: String::new(),
        at_utc: crate::clock::utc_now(),
    };
    e.entry_sha256 = entry_hash(&e);
    conn.execute(
        &format!("INSERT INTO ledger ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            e.seq,
            e.kind,
            e.call_id,
            e.file_sha256,
            e.detail,
            e.prev_sha256,
            e.entry_sha256,
            e.at_utc
        ],
    )?;
    Ok(e)
}

/// Appends the entry of a finalized call, from its row as it stands in the caller's transaction.
///
/// Does nothing (returns None) for a call without a SHA-256 (no audio reached the disk), and when
/// the call's latest `call` entry already has this file hash and detail, so finalizing twice
/// never makes two entries for the same file. A call re-finalized with a different file gets a
/// new entry: the chain then shows both.
pub fn append_call(
    conn: &Connection,
    call_id: i64,
    file_sha256: Option<&str>,
    detail: &CallDetail,
) -> Result<Option<Entry>, StoreError> {
    let Some(sha) = file_sha256 else {
        return Ok(None);
    };
    let detail = detail.canonical_json();
    with_write_lock(conn, |c| {
        let latest: Option<(Option<String>, String)> = c
            .prepare_cached(
                "SELECT file_sha256, detail FROM ledger WHERE call_id = ?1 AND kind = 'call'
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if latest.is_some_and(|(f, d)| f.as_deref() == Some(sha) && d == detail) {
            return Ok(None);
        }
        append_locked(c, "call", call_id, Some(sha), detail).map(Some)
    })
}

/// Appends a tombstone: the call's file (with this hash) was deleted, for `reason` (retention
/// rule, erasure request, ...). The call's earlier entries stay, so the chain still verifies.
pub fn append_tombstone(
    conn: &Connection,
    call_id: i64,
    file_sha256: Option<&str>,
    reason: &str,
) -> Result<Entry, StoreError> {
    let detail =
        serde_json::to_string(&TombstoneDetail { reason }).unwrap_or_else(|_| "{}".to_owned());
    with_write_lock(conn, |c| {
        append_locked(c, "tombstone", call_id, file_sha256, detail)
    })
}

/// The newest entry's sequence number and hash, or None for an empty ledger.
pub fn head(conn: &Connection) -> Result<Option<Head>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, entry_sha256 FROM ledger ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok(Head {
                seq: r.get(0)?,
                entry_sha256: r.get(1)?,
            })
        })
        .optional()?)
}

/// Entries after `seq`, oldest first, at most `limit` (the archive ships them in segments).
pub fn entries_after(conn: &Connection, seq: i64, limit: usize) -> Result<Vec<Entry>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let v = st
        .query_map(params![seq, limit as i64], row_to_entry)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Every entry about one call, oldest first.
pub fn entries_for_call(conn: &Connection, call_id: i64) -> Result<Vec<Entry>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE call_id = ?1 ORDER BY seq"
    ))?;
    let v = st
        .query_map([call_id], row_to_entry)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// One broken link or malformed entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainProblem {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub entries: u64,
    pub head: Option<Head>,
    pub problems: Vec<ChainProblem>,
}

/// Checks one entry on its own (its hash and fields), for entries outside the store too (a
/// bundle's manifest). Returns the problems found.
pub fn check_entry(e: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    let recomputed = entry_hash(e);
    if recomputed != e.entry_sha256 {
        out.push(format!(
            "contents do not match entry_sha256 (expected {}, recomputed {recomputed}): the entry was edited",
            e.entry_sha256
        ));
    }
    if e.kind != "call" && e.kind != "tombstone" {
        out.push(format!("unknown kind {:?}", e.kind));
    }
    if let Some(f) = &e.file_sha256 {
        if !crate::hash::is_sha256_hex(f) {
            out.push(format!("file_sha256 {f:?} is not 64 lowercase hex digits"));
        }
    }
    if e.kind == "call" && e.file_sha256.is_none() {
        out.push("a call entry without file_sha256".into());
    }
    out
}

/// Recomputes the whole chain, calling `each` with every entry in order (so a caller can index
/// entries in the same pass). Reports every entry whose hash, link or sequence number is wrong.
pub fn scan_chain(
    conn: &Connection,
    mut each: impl FnMut(&Entry),
) -> Result<ChainReport, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM ledger ORDER BY seq"))?;
    let mut rows = st.query([])?;
    let mut report = ChainReport {
        entries: 0,
        head: None,
        problems: Vec::new(),
    };
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1i64;
    while let Some(r) = rows.next()? {
        let e = row_to_entry(r)?;
        report.entries += 1;
        let mut problem = |p: String| {
            report.problems.push(ChainProblem {
                seq: e.seq,
                problem: p,
            })
        };
        if e.seq != expected_seq {
            problem(format!(
                "entries {expected_seq}..{} are missing (removed from the ledger)",
                e.seq - 1
            ));
        }
        if e.prev_sha256 != expected_prev {
            problem(format!(
                "prev_sha256 {} does not match the previous entry's hash {expected_prev} (an entry before it was changed, removed or inserted)",
                e.prev_sha256
            ));
        }
        for p in check_entry(&e) {
            problem(p);
        }
        each(&e);
        expected_prev = e.entry_sha256.clone();
        expected_seq = e.seq + 1;
        report.head = Some(Head {
            seq: e.seq,
            entry_sha256: e.entry_sha256,
        });
    }
    Ok(report)
}

/// Recomputes the whole chain; see [`scan_chain`].
pub fn verify_chain(conn: &Connection) -> Result<ChainReport, StoreError> {
    scan_chain(conn, |_| {})
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;
    use crate::store::testutil::{TempStore, TestCall};
    use crate::store::{self, Finalized};

    fn db() -> Result<(tempfile::TempDir, Connection), Box<dyn std::error::Error>> {
        let TempStore { dir, conn } = TempStore::new()?;
        Ok((dir, conn))
    }

    fn new_call(conn: &Connection, agent: &str) -> Result<i64, Box<dyn std::error::Error>> {
        let call = TestCall::new()
            .box_id("box-1")
            .seat("s1")
            .started_mono_ms(1)
            .agent(agent)
            .direction("inbound");
        Ok(call.insert(conn)?.id)
    }

    fn finalize(conn: &Connection, id: i64, sha: Option<&str>) -> Result<(), StoreError> {
        store::finalize_call(
            conn,
            &Finalized {
                call_id: id,
                status: crate::store::CallStatus::Complete,
                ended_at_utc: "2026-11-27T10:00:02.500Z",
                duration_ms: 2500,
                bytes: 4096,
                sha256: sha,
                dropped_frames: 0,
                end_reason: "stop",
                note: None,
            },
        )
    }

    /// The layout worked by hand, independently of this code:
    /// `printf 'callrec-ledger-v2\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n' 1 call 7 e3b0…b855
    ///  '{"agent":"alice","bytes":1234}' 000…000 2026-11-27T10:00:00.000Z | sha256sum`
    #[test]
    fn entry_hash_matches_a_hand_computed_vector() {
        let e = Entry {
            seq: 1,
            kind: "call".into(),
            call_id: 7,
            file_sha256: Some(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            ),
            detail: r#"{"agent":"alice","bytes":1234}"#.into(),
            prev_sha256: GENESIS.into(),
            entry_sha256: String::new(),
            at_utc: "2026-11-27T10:00:00.000Z".into(),
        };
        assert_eq!(
            entry_hash(&e),
            "44380383c9e194eabd3042948f7c8f409c856cd7b5eaa46e75cf936fe53e1ee3"
        );
        // An absent file hash is an empty line, not "null".
        let t = Entry {
            file_sha256: None,
            ..e
        };
        assert!(String::from_utf8_lossy(&hashed_bytes(&t)).contains("\n7\n\n{"));
    }

    #[test]
    fn detail_is_canonical_json() -> TestResult {
        let (_d, conn) = db()?;
        let id = new_call(&conn, "al\"ice\n")?;
        finalize(&conn, id, Some(&"a".repeat(64)))?;
        let row = store::get_call_row(&conn, id)?;
        let text = row.ledger_detail().canonical_json();
        assert!(!text.contains('\n') && !text.contains(' '), "{text}");
        // Keys in lexicographic order, as RFC 8785 wants.
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let keys: Vec<&String> = v.as_object().ok_or("not an object")?.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys.len(), 10);
        assert!(
            !keys.iter().any(|k| k.contains("number")),
            "no customer number in the permanent ledger"
        );
        let mut in_text: Vec<(usize, &String)> = keys
            .iter()
            .map(|k| (text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX), *k))
            .collect();
        in_text.sort();
        assert_eq!(
            in_text.into_iter().map(|(_, k)| k).collect::<Vec<_>>(),
            sorted
        );
        assert!(text.starts_with(r#"{"agent":"al\"ice\n","box_id":"box-1","bytes":4096,"#));
        Ok(())
    }

    #[test]
    fn finalize_appends_exactly_one_entry_per_file() -> TestResult {
        let (_d, conn) = db()?;
        let a = new_call(&conn, "alice")?;
        let b = new_call(&conn, "bob")?;
        let c = new_call(&conn, "carol")?;
        let sha_a = "a".repeat(64);
        finalize(&conn, a, Some(&sha_a))?;
        finalize(&conn, a, Some(&sha_a))?; // twice: still one entry
        finalize(&conn, b, None)?; // no audio: no entry
        finalize(&conn, c, Some(&"c".repeat(64)))?;
        let ea = entries_for_call(&conn, a)?;
        assert_eq!(ea.len(), 1);
        assert_eq!(ea[0].file_sha256.as_deref(), Some(sha_a.as_str()));
        assert_eq!(ea[0].prev_sha256, GENESIS);
        assert!(entries_for_call(&conn, b)?.is_empty());
        let ec = entries_for_call(&conn, c)?;
        assert_eq!(ec[0].seq, 2);
        assert_eq!(ec[0].prev_sha256, ea[0].entry_sha256);
        let detail: CallDetail = serde_json::from_str(&ec[0].detail)?;
        assert_eq!(detail.agent.as_deref(), Some("carol"));
        assert_eq!(detail.duration_ms, 2500);
        assert_eq!(detail.status, "complete");

        let t = append_tombstone(&conn, a, Some(&sha_a), "retention: 90 days")?;
        assert_eq!(t.seq, 3);
        assert_eq!(t.detail, r#"{"reason":"retention: 90 days"}"#);
        assert_eq!(entries_for_call(&conn, a)?.len(), 2);
        let r = verify_chain(&conn)?;
        assert_eq!(r.entries, 3);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.head,
            Some(Head {
                seq: 3,
                entry_sha256: t.entry_sha256.clone()
            })
        );
        assert_eq!(head(&conn)?, r.head);

        // Inside a caller's transaction, the tombstone commits (or not) with the caller's work.
        let tx = conn.unchecked_transaction()?;
        tx.execute("UPDATE calls SET note = 'deleting' WHERE id = ?1", [c])?;
        append_tombstone(&tx, c, None, "erasure")?;
        drop(tx); // rolled back
        assert_eq!(verify_chain(&conn)?.entries, 3);
        Ok(())
    }

    #[test]
    fn chain_breaks_are_found() -> TestResult {
        let (_d, conn) = db()?;
        for i in 0..5 {
            let id = new_call(&conn, &format!("agent{i}"))?;
            finalize(&conn, id, Some(&format!("{i}").repeat(64)))?;
        }
        assert!(verify_chain(&conn)?.problems.is_empty());
        // The triggers refuse edits through SQL...
        assert!(conn
            .execute("UPDATE ledger SET detail = '{}' WHERE seq = 2", [])
            .is_err());
        assert!(conn
            .execute("DELETE FROM ledger WHERE seq = 4", [])
            .is_err());
        // ...and someone who drops them is caught by the chain.
        conn.execute_batch("DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;")?;
        conn.execute(
            "UPDATE ledger SET detail = replace(detail, 'agent2', 'mallory') WHERE seq = 3",
            [],
        )?;
        let r = verify_chain(&conn)?;
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].seq, 3);
        assert!(r.problems[0].problem.contains("was edited"));

        conn.execute("DELETE FROM ledger WHERE seq = 4", [])?;
        let r = verify_chain(&conn)?;
        let at5: Vec<&ChainProblem> = r.problems.iter().filter(|p| p.seq == 5).collect();
        assert_eq!(at5.len(), 2, "{:?}", r.problems);
        assert!(at5[0].problem.contains("entries 4..4 are missing"));
        assert!(at5[1].problem.contains("prev_sha256"));

        // A rehashed edit (hash fixed up, links not) is still caught at the next entry.
        let mut e2 = entries_for_call(&conn, 2)?.remove(0);
        e2.at_utc = "2020-01-01T00:00:00.000Z".into();
        e2.entry_sha256 = entry_hash(&e2);
        conn.execute(
            "UPDATE ledger SET at_utc = ?1, entry_sha256 = ?2 WHERE seq = ?3",
            params![e2.at_utc, e2.entry_sha256, e2.seq],
        )?;
        let r = verify_chain(&conn)?;
        assert!(
            r.problems
                .iter()
                .any(|p| p.seq == 3 && p.problem.contains("prev_sha256")),
            "{:?}",
            r.problems
        );
        Ok(())
    }
}
