//! The JSON sidecar shipped next to each call's audio (`<call id>.json`): everything the index
//! holds about the call (row, intervals, tags, acoustic metrics), its ledger entries and the
//! box's public key, so that the archive alone says what the box recorded and the hub can index
//! it without the box.
//!
//! The bytes are a pure function of what the index holds: the same call gives the same sidecar,
//! which is what makes re-shipping it after a restart a no-op (same SHA-256, upload skipped).
//! This module must never read a file other than the box's public key, nor write anything.

use crate::store::{self, ledger, CallRow, StoreError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// First field of every sidecar; a new layout gets a new tag.
pub const FORMAT: &str = "callrec-archive-sidecar-v1";

/// One shipped object as the sidecar names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The box's signing key, for checking the ledger entries' chain and exported bundles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxKeyRef {
    /// SHA-256 of the DER public key (as `callrec key show` prints it).
    pub fingerprint_sha256: String,
    pub public_pem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sidecar<'a> {
    pub format: &'static str,
    pub box_id: &'a str,
    pub call: &'a CallRow,
    pub metrics: Option<serde_json::Value>,
    pub ledger: Vec<ledger::Entry>,
    pub box_key: Option<BoxKeyRef>,
    pub audio: &'a ObjectRef,
    pub peaks: Option<&'a ObjectRef>,
}

/// The box's public key from `<storage dir>/keys/box.pub`; None when there is none yet (a box
/// that never started `record`, `serve` or `run`), which the sidecar then says by omission.
pub fn box_key(storage_dir: &Path) -> Option<BoxKeyRef> {
    let paths = crate::evidence::key::KeyPaths::new(storage_dir);
    let pem = std::fs::read_to_string(&paths.public).ok()?;
    let vk = crate::evidence::key::parse_public_pem(&pem).ok()?;
    Some(BoxKeyRef {
        fingerprint_sha256: crate::evidence::key::fingerprint(&vk).ok()?,
        public_pem: pem,
    })
}

/// The sidecar's bytes (pretty JSON, stable field order).
pub fn build(
    conn: &Connection,
    call: &CallRow,
    audio: &ObjectRef,
    peaks: Option<&ObjectRef>,
    box_key: Option<BoxKeyRef>,
) -> Result<Vec<u8>, StoreError> {
    let sidecar = Sidecar {
        format: FORMAT,
        box_id: &call.box_id,
        call,
        metrics: store::metrics::get_for_archive(conn, call.id)?,
        ledger: ledger::entries_for_call(conn, call.id)?,
        box_key,
        audio,
        peaks,
    };
    // Serializing plain data cannot fail; an empty object would only fail the upload's check.
    Ok(serde_json::to_vec_pretty(&sidecar).unwrap_or_default())
}
