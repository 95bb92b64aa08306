//! GDPR erasure (Art. 17) of every call with one customer number, and its signed deletion receipt.
//!
//! `callrec erase --number N --request REF` finds every call whose number has the same digits as
//! N, refuses the whole request if any of them is on legal hold (Art. 17(3)(e): a legal claim
//! overrides erasure) or still recording, deletes the live ones through `store::lifecycle` (kind
//! `erasure`: audio, peaks and transcript gone, number, CTI id, note and notes text scrubbed,
//! ledger tombstones, audit rows) and scrubs the same fields from calls that retention already
//! deleted, and empties the text of every complaint about those calls. The receipt lists what was removed and what was kept, is signed with the box key
//! (Ed25519, RFC 8032) and is stored in the `deletions` row, so the same bytes can be handed out
//! again later.
//!
//! The receipt never contains the number: the box must not keep it after erasure, and whoever
//! receives the receipt knows which number the request `REF` was about. For the same reason the
//! request reference is refused if it contains the number's digits. This module never deletes a
//! call that is held, and never writes the number anywhere.

use super::key::BoxKey;
use crate::store::holds::{self, digits};
use crate::store::lifecycle::{self, Deletion, DeletionKind, LifecycleError, MarkedCall};
use crate::store::StoreError;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;

/// First field of a receipt; a new layout gets a new tag.
pub const RECEIPT_FORMAT: &str = "callrec-erasure-receipt-v1";
/// A receipt that also lists object versions removed from the archive (`archive_removed`).
pub const RECEIPT_FORMAT_ARCHIVE: &str = "callrec-erasure-receipt-v2";
/// A receipt of the fleet's hub, which also lists the copies on each box (`box_copies`).
pub const RECEIPT_FORMAT_FLEET: &str = "callrec-erasure-receipt-v3";

/// The copies of the erased calls on one box, as the box's signed ack reports them (the hub's
/// erasure, `hub::orders`).
#[derive(Debug, Clone, Serialize)]
pub struct BoxCopy {
    pub box_id: String,
    /// The calls' ids on that box.
    pub box_call_ids: Vec<i64>,
    pub order_id: String,
    /// `removed` (the box acked and applied it), `refused` (the box acked but would not, with
    /// why in the ack) or `pending` (no ack yet: `callrec erase --complete` finishes the record).
    pub status: String,
    /// The box's ack body, exactly as it signed it (what it deleted and scrubbed).
    pub ack: Option<serde_json::Value>,
    /// The box's Ed25519 signature over the ack body, hex; the box key is in the hub's index.
    pub ack_signature_hex: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:?} has fewer than 6 digits: give the customer's full number")]
    ShortNumber(String),
    #[error("the request reference must not contain the number (it is kept in the ledger and the receipt); use the ticket or case id")]
    NumberInReference,
    #[error("calls {calls:?} with this number are on legal hold (hold {holds:?}); nothing was erased. Erasure does not apply while a legal claim needs the recording (GDPR Art. 17(3)(e)); ask the admins who placed the holds")]
    Held { calls: Vec<i64>, holds: Vec<i64> },
    #[error(
        "call {0} with this number is still recording; erase after it ends. Nothing was erased"
    )]
    Recording(i64),
    #[error("writing the receipt to {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What an erasure request finds (also the dry-run answer).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Found {
    /// Live calls: their recordings are deleted.
    pub live: Vec<i64>,
    /// Calls whose recordings retention or an earlier request already deleted: their rows still
    /// carry the number, which is scrubbed.
    pub already_deleted: Vec<i64>,
    pub recording: Vec<i64>,
    /// (call id, hold id)
    pub held: Vec<(i64, i64)>,
}

/// The signed receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub format: &'static str,
    pub box_id: String,
    pub deletion_id: i64,
    pub request_reference: String,
    pub requested_by: String,
    pub executed_at_utc: String,
    /// Recordings deleted by this request, each with its file hash and ledger tombstone.
    pub deleted_recordings: Vec<MarkedCall>,
    /// Calls whose recordings were already gone; their remaining personal fields were scrubbed.
    pub scrubbed_rows: Vec<i64>,
    /// Complaints about these calls whose text (complaint, response, reasons, appeal) was
    /// emptied (store::complaints); absent when there were none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub complaints_scrubbed: Vec<i64>,
    pub removed: Vec<&'static str>,
    /// Every object version removed from the archive (S3) for these calls; only in v2.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub archive_removed: Vec<crate::store::archive::RemovedCall>,
    /// The copies on each box; only in v3 (at the hub).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub box_copies: Vec<BoxCopy>,
    pub kept: Vec<&'static str>,
    pub ledger_head_sha256: Option<String>,
    pub signature: &'static str,
}

pub struct Erased {
    pub receipt: Receipt,
    /// The exact bytes signed and stored.
    pub receipt_json: Vec<u8>,
    pub signature: [u8; 64],
    /// False when `callrec.db-wal` could not be emptied within 10 s (a long read by another
    /// process): old page images with the erased values stay in it until the next checkpoint.
    pub wal_emptied: bool,
}

/// Which calls carry `number` (same digits), and whether any blocks erasure.
pub fn find(conn: &Connection, number: &str) -> Result<Found, ErasureError> {
    let want = digits(number);
    if want.len() < 6 {
        return Err(ErasureError::ShortNumber(number.to_owned()));
    }
    let active = holds::active(conn)?;
    // Every number a call carried: the current one and any corrected mid-call (migration 13),
    // whose recording's OpusTags still hold the first.
    let mut st = conn
        .prepare(
            "SELECT c.id, c.status, c.agent, c.remote_number, n.number
             FROM calls c JOIN (
                 SELECT id AS call_id, remote_number AS number FROM calls WHERE remote_number IS NOT NULL
                 UNION SELECT call_id, value FROM call_former_meta WHERE field = 'remote_number'
             ) n ON n.call_id = c.id
             ORDER BY c.id",
        )
        .map_err(StoreError::from)?;
    let mut rows = st.query([]).map_err(StoreError::from)?;
    let mut f = Found::default();
    let mut last_id = None;
    while let Some(r) = rows.next().map_err(StoreError::from)? {
        let id: i64 = r.get(0).map_err(StoreError::from)?;
        let n: String = r.get(4).map_err(StoreError::from)?;
        if digits(&n) != want || last_id == Some(id) {
            continue;
        }
        last_id = Some(id);
        let status: crate::store::CallStatus = r.get(1).map_err(StoreError::from)?;
        let agent: Option<String> = r.get(2).map_err(StoreError::from)?;
        let current: Option<String> = r.get(3).map_err(StoreError::from)?;
        if let Some(h) = active.iter().find(|h| {
            h.covers(id, agent.as_deref(), Some(&n))
                || h.covers(id, agent.as_deref(), current.as_deref())
        }) {
            f.held.push((id, h.id));
        }
        use crate::store::CallStatus as S;
        match status {
            S::Recording => f.recording.push(id),
            S::Garbage | S::Deleted => f.already_deleted.push(id),
            S::Complete | S::Interrupted => f.live.push(id),
        }
    }
    Ok(f)
}

/// One erasure request.
pub struct Request<'a> {
    /// The customer's number, in any notation (only its digits count).
    pub number: &'a str,
    /// The request's ticket or case id; it goes into the ledger, so never the number itself.
    pub reference: &'a str,
    pub actor: &'a str,
    pub now_utc: &'a str,
}

/// The request reference must not carry the number (it goes into the ledger and the receipt).
pub fn check_reference(number: &str, reference: &str) -> Result<(), ErasureError> {
    let want = digits(number);
    if want.len() >= 6 && digits(reference).contains(&want) {
        return Err(ErasureError::NumberInReference);
    }
    Ok(())
}

/// The refusals that apply before anything is touched, here or in the archive: a call on
/// legal hold, a call still recording.
pub fn refuse_blocked(found: &Found) -> Result<(), ErasureError> {
    if !found.held.is_empty() {
        return Err(ErasureError::Held {
            calls: found.held.iter().map(|h| h.0).collect(),
            holds: found.held.iter().map(|h| h.1).collect(),
        });
    }
    if let Some(&id) = found.recording.first() {
        return Err(ErasureError::Recording(id));
    }
    Ok(())
}

/// Erases every call with the request's number and returns the signed receipt (module docs).
pub fn erase(
    conn: &Connection,
    storage_dir: &Path,
    key: &BoxKey,
    box_id: &str,
    req: &Request,
) -> Result<Erased, ErasureError> {
    erase_with_archive(conn, storage_dir, key, box_id, req, &[])
}

/// [`erase`], after `archive::lock::erase` removed the calls' archived object versions: the
/// receipt (format v2) lists them too.
pub fn erase_with_archive(
    conn: &Connection,
    storage_dir: &Path,
    key: &BoxKey,
    box_id: &str,
    req: &Request,
    archive_removed: &[crate::store::archive::RemovedCall],
) -> Result<Erased, ErasureError> {
    erase_with_copies(conn, storage_dir, key, box_id, req, archive_removed, &[])
}

/// [`erase_with_archive`] at the fleet's hub: `conn` is the hub's index (its rows are
/// scrubbed, its cache files deleted) and the receipt (format v3) also lists the copies on
/// each box.
pub fn erase_with_copies(
    conn: &Connection,
    storage_dir: &Path,
    key: &BoxKey,
    box_id: &str,
    req: &Request,
    archive_removed: &[crate::store::archive::RemovedCall],
    box_copies: &[BoxCopy],
) -> Result<Erased, ErasureError> {
    let Request {
        number,
        reference,
        actor,
        now_utc,
    } = *req;
    check_reference(number, reference)?;
    let found = find(conn, number)?;
    refuse_blocked(&found)?;
    let reason = format!("erasure request {reference}");
    let d = Deletion {
        kind: DeletionKind::Erasure,
        reason: &reason,
        actor,
        now_utc,
    };
    let marked = lifecycle::mark_garbage(conn, &found.live, &d)?;
    lifecycle::scrub_rows(conn, &found.already_deleted, actor, now_utc)?;
    lifecycle::finish_garbage(conn, storage_dir, now_utc)?;
    let all_calls: Vec<i64> = found
        .live
        .iter()
        .chain(&found.already_deleted)
        .copied()
        .collect();
    let complaints_scrubbed =
        crate::store::complaints::scrub_for_calls(conn, &all_calls, actor, now_utc)?;
    let mut receipt = Receipt {
        format: if !box_copies.is_empty() {
            RECEIPT_FORMAT_FLEET
        } else if archive_removed.is_empty() {
            RECEIPT_FORMAT
        } else {
            RECEIPT_FORMAT_ARCHIVE
        },
        archive_removed: archive_removed.to_vec(),
        box_copies: box_copies.to_vec(),
        box_id: box_id.to_owned(),
        deletion_id: marked.deletion_id,
        request_reference: reference.to_owned(),
        requested_by: actor.to_owned(),
        executed_at_utc: now_utc.to_owned(),
        deleted_recordings: marked.calls,
        scrubbed_rows: found.already_deleted,
        complaints_scrubbed,
        removed: vec![
            "the audio file (Ogg Opus) and its waveform peaks",
            "the transcript, its words in the full-text index included",
            "the customer's number, the CTI call id and the call note from the index, with every earlier number and CTI id the call carried",
            "the text of reviewers' notes on the call",
            "the source path of an imported call",
            "old copies of the changed rows in the index's free space and write-ahead log",
        ],
        kept: vec![
            "the call row without personal data of the customer: time, seat, agent, duration",
            "QA evaluations and spot checks (the agent's record)",
            "the ledger tombstone and audit rows naming this request (no number in either)",
            "audit rows about these calls and searches for the number, where numbers, CTI ids and typed text only ever appear as keyed hashes (HMAC-SHA256 under the box's pseudonym key), never in the clear",
        ],
        ledger_head_sha256: crate::store::ledger::head(conn)?.map(|h| h.entry_sha256),
        signature: "Ed25519 (RFC 8032) over the exact bytes of receipt.json, in receipt.sig (64 raw bytes); public key in box.pub",
    };
    if !receipt.complaints_scrubbed.is_empty() {
        receipt.removed.push("the text of complaints about these calls: the complaint, the agent's response, the rulings' reasons and the appeal (the complaint's category, dates and rulings are kept for the agent's record)");
    }
    let mut receipt_json = serde_json::to_vec_pretty(&receipt).unwrap_or_default();
    receipt_json.push(b'\n');
    let signature = key.sign(&receipt_json);
    conn.execute(
        "UPDATE deletions SET receipt = ?2, receipt_sig = ?3 WHERE id = ?1",
        params![
            marked.deletion_id,
            String::from_utf8_lossy(&receipt_json),
            hex::encode(signature)
        ],
    )
    .map_err(StoreError::from)?;
    // Old page images in the write-ahead log hold the erased values until the log is copied
    // back and truncated; a reader of the recorder or web service can hold it for a moment.
    let wal_emptied = crate::store::empty_wal(conn, std::time::Duration::from_secs(10))?;
    Ok(Erased {
        receipt,
        receipt_json,
        signature,
        wal_emptied,
    })
}

/// Writes `receipt.json`, `receipt.sig` and `box.pub` into `out_dir` (created if missing).
pub fn write_receipt(out_dir: &Path, e: &Erased, key: &BoxKey) -> Result<(), ErasureError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ErasureError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    for (name, bytes) in [
        ("receipt.json", e.receipt_json.as_slice()),
        ("receipt.sig", e.signature.as_slice()),
        ("box.pub", key.public_pem().as_bytes()),
    ] {
        let p = out_dir.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))?;
    }
    Ok(())
}

/// The command that checks a receipt folder with OpenSSL alone.
pub fn verify_command() -> &'static str {
    "openssl pkeyutl -verify -pubin -inkey box.pub -rawin -in receipt.json -sigfile receipt.sig"
}
