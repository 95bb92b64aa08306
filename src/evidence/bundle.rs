//! `callrec export`: an evidence bundle per call, checkable with `sha256sum` and `openssl` alone.
//!
//! `DIR/call-<id>/` holds:
//! - `call-<id>.opus`: the stored recording, byte for byte (its SHA-256 is checked against the
//!   index before it is copied; on a mismatch nothing is written for that call);
//! - optionally `call-<id>.wav` (the whole call decoded with libopus, 16-bit PCM, written with
//!   hound) and `call-<id>-excerpt-<from>-<to>.wav` (a time range): both *derived*, new files;
//! - `box.pub`: the box's public key (SPKI PEM, RFC 8410);
//! - `report.html`: a self-contained summary for people (no scripts, no external resources);
//! - `VERIFY.md`: the exact commands to verify the bundle without callrec;
//! - `manifest.json`: call metadata, pause/gap intervals, tags, notes, evaluations, the call's
//!   audit rows, its ledger entries and the chain head at export time, and the size, SHA-256 and
//!   `derived` flag of every file above;
//! - `manifest.sig`: the 64-byte Ed25519 signature (RFC 8032) over the exact bytes of
//!   manifest.json;
//! - `SHA256SUMS`: `sha256sum` lines for every file except itself.
//!
//! A bundle is built in a hidden `.call-<id>.partial` folder and renamed into place only when
//! complete and audited, so a failed or interrupted export never leaves something that looks
//! like a bundle. This module must never modify the stored recording, overwrite an existing
//! bundle, or put a file in a bundle that the manifest does not describe.

use super::key::BoxKey;
use crate::codec::ogg_read::{self, FileInfo};
use crate::codec::opus_ms::MsDecoder;
use crate::codec::GRANULE_RATE_HZ;
use crate::config::OPUS_RATES_HZ;
use crate::hash::{sha256_file, sha256_hex};
use crate::store::ledger::{self, Entry, Head};
use crate::store::{self, audit, notes, qa, CallRow, StoreError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `format` of the manifest; bump on an incompatible change.
pub const FORMAT: &str = "callrec-evidence-bundle/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const SUMS: &str = "SHA256SUMS";
pub const PUBLIC_KEY: &str = "box.pub";
pub const REPORT: &str = "report.html";
pub const INSTRUCTIONS: &str = "VERIFY.md";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no call with id {0}; `callrec calls list` shows the ids")]
    NoSuchCall(i64),
    #[error("call {call_id} is still {status}; export it after it ends")]
    NotFinal { call_id: i64, status: String },
    #[error("call {0} has no SHA-256 in the index (no audio reached the disk): there is nothing to export")]
    NoHash(i64),
    #[error("call {call_id}: {path} is missing; nothing was exported for this call. Run `callrec verify --store` and keep the disk as it is")]
    Missing { call_id: i64, path: String },
    #[error("call {call_id}: {path} has SHA-256 {found}, but the index says {expected}: the recording changed after it was finalized. Nothing was exported for this call; run `callrec verify --store` and keep the disk as it is")]
    Tampered {
        call_id: i64,
        path: String,
        expected: String,
        found: String,
    },
    #[error(
        "{0} exists already: export into another --out directory (a bundle is never overwritten)"
    )]
    Exists(String),
    #[error("call {call_id}: {message}")]
    Range { call_id: i64, message: String },
    #[error("call {call_id}: decoding the recording: {message}")]
    Decode { call_id: i64, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("writing {path}: {message}")]
    Wav { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Qa(#[from] qa::QaError),
    #[error("writing the manifest: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What to put in a bundle besides the original.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The whole call decoded to WAV.
    pub wav: bool,
    /// An excerpt as WAV: from and to, in seconds from the start of the call.
    pub excerpt_s: Option<(f64, f64)>,
}

/// An excerpt whose bounds cannot be right for any call.
#[derive(Debug, thiserror::Error)]
#[error("--from {from_s} --to {to_s}: give seconds from the start of the call, 0 ≤ from < to")]
pub struct BadExcerpt {
    pub from_s: f64,
    pub to_s: f64,
}

impl Options {
    /// Options with the excerpt's bounds checked before any call is looked at (whether they
    /// fit a given call is checked at export, against its duration).
    pub fn new(wav: bool, excerpt_s: Option<(f64, f64)>) -> Result<Options, BadExcerpt> {
        if let Some((from_s, to_s)) = excerpt_s {
            if !(from_s.is_finite() && to_s.is_finite() && from_s >= 0.0 && to_s > from_s) {
                return Err(BadExcerpt { from_s, to_s });
            }
        }
        Ok(Options { wav, excerpt_s })
    }
}

/// Everything an export needs besides the call id.
pub struct Exporter<'a> {
    pub conn: &'a Connection,
    pub storage_dir: &'a Path,
    /// The exporting box (`box.id` of its config).
    pub box_id: &'a str,
    pub key: &'a BoxKey,
    /// Who exports, for the manifest and the audit row (`cli:alice`).
    pub actor: &'a str,
    pub out_dir: &'a Path,
    pub options: Options,
    /// Set at the hub: the call was recorded by another box and its original fetched from the
    /// archive (`hub::export`); None on the box that recorded it.
    pub archived: Option<&'a Archived>,
}

/// A call exported at the hub rather than on the box that recorded it. The hub signs the
/// manifest with its own key (`box.pub`, as any exporter); the recording box's signature chain
/// travels with it: its public key as shipped in the sidecar (`recording-box.pub`) and its
/// ledger entries for the call, whose `call_id` is the box's own call id.
#[derive(Debug, Clone)]
pub struct Archived {
    /// The original as downloaded from the archive and checked against its sidecar; the export
    /// moves this file into the bundle (it must be on the same file system as `out_dir`).
    pub original: PathBuf,
    pub box_id: String,
    pub box_call_id: i64,
    /// The object the original was fetched from.
    pub audio_key: String,
    /// (fingerprint, SPKI PEM) of the recording box's key as its sidecar carried it; None when
    /// the box shipped the call before it had a key.
    pub box_key: Option<(String, String)>,
    /// The recording box's ledger entries for the call, as shipped.
    pub ledger: Vec<Entry>,
    /// The newest entry of the recording box's chain that the hub has seen.
    pub ledger_head: Option<Head>,
}

/// The recording box's public key in a bundle made at the hub.
pub const RECORDING_BOX_KEY: &str = "recording-box.pub";

/// One file of the bundle as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// `original-recording`, `decoded-wav`, `excerpt-wav`, `public-key`, `report`, `instructions`.
    pub kind: String,
    /// True for files made at export time from the original (not evidence by themselves).
    pub derived: bool,
    pub bytes: u64,
    pub sha256: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub copy_ms: u64,
    pub wav_ms: u64,
    pub excerpt_ms: u64,
    pub total_ms: u64,
}

/// The summary of one exported call (printed by `--json`; not part of the bundle).
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub call_id: i64,
    pub dir: String,
    pub manifest_sha256: String,
    pub files: Vec<FileEntry>,
    pub audit_id: i64,
    pub timings_ms: Timings,
}

#[derive(Serialize)]
struct SigningKeyInfo<'a> {
    file: &'static str,
    algorithm: &'static str,
    fingerprint_sha256: &'a str,
}

#[derive(Serialize)]
struct LedgerInfo<'a> {
    layout: &'static str,
    entries: &'a [Entry],
    head_at_export: Option<Head>,
}

/// manifest.json. Field order is the declaration order, so the output is stable.
#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    call_id: i64,
    exported_at_utc: &'a str,
    exported_by: &'a str,
    exporting_box_id: &'a str,
    callrec_version: &'static str,
    signing_key: SigningKeyInfo<'a>,
    call: &'a CallRow,
    notes: &'a [notes::Note],
    evaluations: &'a [qa::Evaluation],
    audit: &'a [audit::Row],
    ledger: LedgerInfo<'a>,
    /// Only in bundles made at the hub: which box recorded the call, under which id.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_by: Option<RecordedBy<'a>>,
    files: &'a [FileEntry],
}

/// `recorded_by` of a bundle exported at the hub.
#[derive(Serialize)]
struct RecordedBy<'a> {
    box_id: &'a str,
    /// The box's own id of the call: its ledger entries name this id, not `call_id`.
    box_call_id: i64,
    archive_object: &'a str,
    /// `recording-box.pub`, or None when the box shipped no key.
    key_file: Option<&'static str>,
    key_fingerprint_sha256: Option<&'a str>,
}

const LEDGER_LAYOUT: &str = "entry_sha256 = SHA-256 of the lines 'callrec-ledger-v2', seq, kind, call_id, file_sha256 (empty if none), detail, prev_sha256, at_utc, each followed by a line feed; see VERIFY.md";

/// Exports one call into `out_dir/call-<id>/`, audited. On any error nothing is left behind.
pub fn export_call(x: &Exporter, call_id: i64) -> Result<Exported, ExportError> {
    let t0 = Instant::now();
    let call = match store::get_call(x.conn, call_id) {
        Err(StoreError::NoSuchCall(id)) => return Err(ExportError::NoSuchCall(id)),
        r => r?,
    };
    if call.status == crate::store::CallStatus::Recording {
        return Err(ExportError::NotFinal {
            call_id,
            status: call.status.to_string(),
        });
    }
    let expected = call.sha256.clone().ok_or(ExportError::NoHash(call_id))?;
    let final_dir = x.out_dir.join(format!("call-{call_id}"));
    if std::fs::symlink_metadata(&final_dir).is_ok() {
        return Err(ExportError::Exists(final_dir.display().to_string()));
    }
    // The original: the box's stored file, or (at the hub) the copy fetched from the archive. A
    // row whose path leaves the storage dir exports nothing (it would copy any file out).
    let src = match x.archived {
        Some(a) => a.original.clone(),
        None => crate::store::call_file(x.storage_dir, &call.rel_path).ok_or_else(|| {
            ExportError::Missing {
                call_id,
                path: call.rel_path.clone(),
            }
        })?,
    };
    if !src.is_file() {
        return Err(ExportError::Missing {
            call_id,
            path: src.display().to_string(),
        });
    }
    std::fs::create_dir_all(x.out_dir).map_err(io_err(x.out_dir))?;
    // The audit row and the summary name the folder absolutely: "out/call-7" says little later.
    let final_dir = std::fs::canonicalize(x.out_dir)
        .map(|d| d.join(format!("call-{call_id}")))
        .unwrap_or(final_dir);
    let work = x.out_dir.join(format!(".call-{call_id}.partial"));
    if work.exists() {
        // Left by an export that died; it was never a bundle.
        std::fs::remove_dir_all(&work).map_err(io_err(&work))?;
    }
    std::fs::create_dir(&work).map_err(io_err(&work))?;
    let built = place_original(x, &src, &work, &call, &expected)
        .and_then(|original| build(x, &call, original, &work, &final_dir, t0));
    let (mut exported, manifest_sha) = match built {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    // Audit before the bundle appears: an export that is not in the audit log never exists.
    let audit_id = audit::append(
        x.conn,
        &audit::Event {
            actor: x.actor,
            action: "export",
            call_id: Some(call_id),
            detail: serde_json::json!({
                "out_dir": final_dir.display().to_string(),
                "manifest_sha256": manifest_sha,
                "files": exported.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                "wav": x.options.wav,
                "excerpt_s": x.options.excerpt_s.map(|(a, b)| [a, b]),
                "recorded_by": x.archived.map(|a| serde_json::json!({
                    "box_id": a.box_id,
                    "box_call_id": a.box_call_id,
                    "archive_object": a.audio_key,
                })),
            }),
            ip: None,
        },
    );
    let audit_id = match audit_id {
        Ok(id) => id,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e.into());
        }
    };
    std::fs::rename(&work, &final_dir).map_err(io_err(&final_dir))?;
    sync_dir(x.out_dir)?;
    exported.audit_id = audit_id;
    exported.timings_ms.total_ms = t0.elapsed().as_millis() as u64;
    Ok(exported)
}

fn build(
    x: &Exporter,
    call: &CallRow,
    original_entry: FileEntry,
    work: &Path,
    final_dir: &Path,
    t0: Instant,
) -> Result<(Exported, String), ExportError> {
    let mut timings = Timings {
        copy_ms: t0.elapsed().as_millis() as u64,
        ..Timings::default()
    };
    let original = original_entry.name.clone();
    let mut files = vec![original_entry];
    if x.options.wav || x.options.excerpt_s.is_some() {
        // Decoding needs the Ogg pages at hand; only then is the recording read whole.
        let path = work.join(&original);
        let data = std::fs::read(&path).map_err(io_err(&path))?;
        if x.options.wav {
            let t = Instant::now();
            files.push(add_full_wav(call, &data, work, &original)?);
            timings.wav_ms = t.elapsed().as_millis() as u64;
        }
        if let Some((from_s, to_s)) = x.options.excerpt_s {
            let t = Instant::now();
            files.push(add_excerpt(call, &data, work, &original, from_s, to_s)?);
            timings.excerpt_ms = t.elapsed().as_millis() as u64;
        }
    }
    files.push(add_public_key(x.key, work)?);
    if let Some(a) = x.archived {
        if let Some((fp, pem)) = &a.box_key {
            files.push(add_recording_box_key(a, fp, pem, work)?);
        }
    }

    let exported_at_utc = crate::clock::utc_now();
    let mut records = CallRecords::read(x.conn, call.id)?;
    if let Some(a) = x.archived {
        // The hub keeps no ledger of its own calls: the chain is the recording box's.
        records.entries = a.ledger.clone();
        records.head = a.ledger_head.clone();
    }
    add_documents(x, call, &exported_at_utc, &records, work, &mut files)?;
    let manifest_bytes = write_manifest(x, call, &exported_at_utc, records, work, &files)?;
    let manifest_sha = sha256_hex(&manifest_bytes);
    write_sums(work, &files)?;
    sync_dir(work)?;
    Ok((
        Exported {
            call_id: call.id,
            dir: final_dir.display().to_string(),
            manifest_sha256: manifest_sha.clone(),
            files,
            audit_id: 0,
            timings_ms: timings,
        },
        manifest_sha,
    ))
}

/// The original into the bundle as `call-<id>.opus`, byte for byte, streamed (a local file is
/// copied, a file fetched from the archive moved), then hashed from the copy: what the bundle
/// holds is exactly what was checked against the index's SHA-256.
fn place_original(
    x: &Exporter,
    src: &Path,
    work: &Path,
    call: &CallRow,
    expected: &str,
) -> Result<FileEntry, ExportError> {
    let name = format!("call-{}.opus", call.id);
    let dest = work.join(&name);
    let moved = x.archived.is_some() && std::fs::rename(src, &dest).is_ok();
    if !moved {
        std::fs::copy(src, &dest).map_err(io_err(src))?;
    }
    sync_path(&dest)?;
    let (found, bytes) = sha256_file(&dest).map_err(io_err(&dest))?;
    if found != expected {
        return Err(ExportError::Tampered {
            call_id: call.id,
            path: src.display().to_string(),
            expected: expected.to_owned(),
            found,
        });
    }
    let description = match x.archived {
        None => format!(
            "The recording as stored on box {} at {} (Ogg Opus, RFC 7845; channel 0 agent, channel 1 customer), copied byte for byte.",
            call.box_id, call.rel_path
        ),
        Some(a) => format!(
            "The recording of box {}'s call {} (Ogg Opus, RFC 7845; channel 0 agent, channel 1 customer), fetched byte for byte from the archive object {} and checked against the SHA-256 the box shipped.",
            a.box_id, a.box_call_id, a.audio_key
        ),
    };
    Ok(FileEntry {
        name,
        kind: "original-recording".into(),
        derived: false,
        bytes,
        sha256: found,
        description,
    })
}

fn not_opus(call_id: i64, message: String) -> ExportError {
    ExportError::Decode { call_id, message }
}

/// The whole call decoded to WAV (derived).
fn add_full_wav(
    call: &CallRow,
    data: &[u8],
    work: &Path,
    original: &str,
) -> Result<FileEntry, ExportError> {
    let id = call.id;
    let rate_hz = decode_rate_hz(call);
    let info = ogg_read::inspect(data).map_err(|e| not_opus(id, e.to_string()))?;
    let name = format!("call-{id}.wav");
    write_full_wav(id, data, &info, rate_hz, &work.join(&name))?;
    entry(
        work,
        &name,
        "decoded-wav",
        true,
        format!("DERIVED at export: the whole call decoded with libopus to 16-bit PCM WAV, {rate_hz} Hz, 2 channels (agent, customer). Not the original; {original} is."),
    )
}

/// `from_s` to `to_s` of the call decoded to WAV (derived), after checking the range.
fn add_excerpt(
    call: &CallRow,
    data: &[u8],
    work: &Path,
    original: &str,
    from_s: f64,
    to_s: f64,
) -> Result<FileEntry, ExportError> {
    let id = call.id;
    let rate_hz = decode_rate_hz(call);
    check_range(id, call.duration_ms, from_s, to_s)?;
    let info = pages_through(data, to_s)
        .ok_or_else(|| not_opus(id, "no intact Ogg Opus header".into()))?;
    let name = format!("call-{id}-excerpt-{from_s}-{to_s}.wav");
    write_excerpt(id, data, &info, rate_hz, from_s, to_s, &work.join(&name))?;
    entry(
        work,
        &name,
        "excerpt-wav",
        true,
        format!("DERIVED at export: {from_s} s to {to_s} s of the call, decoded with libopus to 16-bit PCM WAV, {rate_hz} Hz, 2 channels (agent, customer). Not the original; {original} is."),
    )
}

fn add_public_key(key: &BoxKey, work: &Path) -> Result<FileEntry, ExportError> {
    write_file(&work.join(PUBLIC_KEY), key.public_pem().as_bytes())?;
    entry(
        work,
        PUBLIC_KEY,
        "public-key",
        false,
        format!(
            "The exporting box's Ed25519 public key (SubjectPublicKeyInfo PEM, RFC 8410); SHA-256 of its DER form: {}.",
            key.fingerprint_sha256()
        ),
    )
}

/// The recording box's public key (at the hub), as its sidecar carried it.
fn add_recording_box_key(
    a: &Archived,
    fingerprint: &str,
    pem: &str,
    work: &Path,
) -> Result<FileEntry, ExportError> {
    write_file(&work.join(RECORDING_BOX_KEY), pem.as_bytes())?;
    entry(
        work,
        RECORDING_BOX_KEY,
        "recording-box-key",
        false,
        format!(
            "The Ed25519 public key of box {} that recorded the call, as the box shipped it (SubjectPublicKeyInfo PEM, RFC 8410); SHA-256 of its DER form: {fingerprint}. Compare it with `callrec key show` on that box.",
            a.box_id
        ),
    )
}

/// What the index holds about the call besides its row, as the bundle records it.
struct CallRecords {
    notes: Vec<notes::Note>,
    evaluations: Vec<qa::Evaluation>,
    /// Oldest first.
    audit_rows: Vec<audit::Row>,
    entries: Vec<Entry>,
    head: Option<Head>,
}

impl CallRecords {
    fn read(conn: &Connection, id: i64) -> Result<Self, ExportError> {
        let notes = notes::for_call(conn, id)?;
        let evaluations = qa::evaluations_for_call(conn, id)?;
        let mut audit_rows = audit::list(
            conn,
            &audit::Filter {
                call_id: Some(id),
                limit: u32::MAX,
                ..Default::default()
            },
        )?;
        audit_rows.reverse(); // oldest first
        let entries = ledger::entries_for_call(conn, id)?;
        let head = ledger::head(conn)?;
        Ok(CallRecords {
            notes,
            evaluations,
            audit_rows,
            entries,
            head,
        })
    }
}

/// report.html and VERIFY.md, both made from the files listed so far.
fn add_documents(
    x: &Exporter,
    call: &CallRow,
    exported_at_utc: &str,
    records: &CallRecords,
    work: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<(), ExportError> {
    let ctx = Doc {
        call,
        box_id: x.box_id,
        actor: x.actor,
        exported_at_utc,
        fingerprint: x.key.fingerprint_sha256(),
        notes: &records.notes,
        evaluations: &records.evaluations,
        entries: &records.entries,
        files,
        archived: x.archived,
    };
    write_file(&work.join(REPORT), report_html(&ctx).as_bytes())?;
    let instructions = verify_md(&ctx);
    files.push(entry(
        work,
        REPORT,
        "report",
        false,
        "A human-readable summary of this bundle (self-contained HTML, no scripts).".into(),
    )?);
    write_file(&work.join(INSTRUCTIONS), instructions.as_bytes())?;
    files.push(entry(
        work,
        INSTRUCTIONS,
        "instructions",
        false,
        "How to verify this bundle with sha256sum and openssl, without callrec.".into(),
    )?);
    Ok(())
}

/// manifest.json and its signature manifest.sig; returns the manifest's bytes.
fn write_manifest(
    x: &Exporter,
    call: &CallRow,
    exported_at_utc: &str,
    records: CallRecords,
    work: &Path,
    files: &[FileEntry],
) -> Result<Vec<u8>, ExportError> {
    let manifest = Manifest {
        format: FORMAT,
        call_id: call.id,
        exported_at_utc,
        exported_by: x.actor,
        exporting_box_id: x.box_id,
        callrec_version: env!("CARGO_PKG_VERSION"),
        signing_key: SigningKeyInfo {
            file: PUBLIC_KEY,
            algorithm: "Ed25519 (RFC 8032 PureEdDSA) over the exact bytes of manifest.json; signature in manifest.sig (64 raw bytes)",
            fingerprint_sha256: x.key.fingerprint_sha256(),
        },
        call,
        notes: &records.notes,
        evaluations: &records.evaluations,
        audit: &records.audit_rows,
        ledger: LedgerInfo {
            layout: LEDGER_LAYOUT,
            entries: &records.entries,
            head_at_export: records.head,
        },
        recorded_by: x.archived.map(|a| RecordedBy {
            box_id: &a.box_id,
            box_call_id: a.box_call_id,
            archive_object: &a.audio_key,
            key_file: a.box_key.as_ref().map(|_| RECORDING_BOX_KEY),
            key_fingerprint_sha256: a.box_key.as_ref().map(|k| k.0.as_str()),
        }),
        files,
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    manifest_bytes.push(b'\n');
    write_file(&work.join(MANIFEST), &manifest_bytes)?;
    write_file(&work.join(SIGNATURE), &x.key.sign(&manifest_bytes))?;
    Ok(manifest_bytes)
}

/// SHA256SUMS covers every file but itself, read back from the disk.
fn write_sums(work: &Path, files: &[FileEntry]) -> Result<(), ExportError> {
    let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    names.push(MANIFEST.into());
    names.push(SIGNATURE.into());
    names.sort();
    let mut sums = String::new();
    for name in &names {
        let hash = match files.iter().find(|f| &f.name == name) {
            Some(f) => f.sha256.clone(),
            None => {
                let p = work.join(name);
                sha256_file(&p).map_err(io_err(&p))?.0
            }
        };
        // Two spaces: sha256sum's text-mode line format ("hash  name").
        sums.push_str(&format!("{hash}  {name}\n"));
    }
    write_file(&work.join(SUMS), sums.as_bytes())
}

/// Hashes a written file back from the disk for the manifest.
fn entry(
    dir: &Path,
    name: &str,
    kind: &str,
    derived: bool,
    description: String,
) -> Result<FileEntry, ExportError> {
    let p = dir.join(name);
    let (sha256, bytes) = sha256_file(&p).map_err(io_err(&p))?;
    Ok(FileEntry {
        name: name.to_owned(),
        kind: kind.to_owned(),
        derived,
        bytes,
        sha256,
        description,
    })
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), ExportError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn sync_path(path: &Path) -> Result<(), ExportError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    sync_path(dir)
}

/// The rate to decode at: the call's encoder rate when libopus can decode at it (it always can
/// for callrec's own files), otherwise Opus's native 48 kHz.
fn decode_rate_hz(call: &CallRow) -> u32 {
    u32::try_from(call.rate_hz)
        .ok()
        .filter(|r| OPUS_RATES_HZ.contains(r))
        .unwrap_or(GRANULE_RATE_HZ)
}

fn wav_spec(channels: u16, rate_hz: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

type WavFile = hound::WavWriter<BufWriter<std::fs::File>>;

fn create_wav(path: &Path, channels: u16, rate_hz: u32) -> Result<WavFile, ExportError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    hound::WavWriter::new(
        BufWriter::with_capacity(1 << 20, f),
        wav_spec(channels, rate_hz),
    )
    .map_err(|e| wav_err(path, e))
}

fn wav_err(path: &Path, e: hound::Error) -> ExportError {
    ExportError::Wav {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn put_samples(w: &mut WavFile, samples: &[f32]) -> Result<(), hound::Error> {
    let mut sw = w.get_i16_writer(samples.len() as u32);
    for &s in samples {
        sw.write_sample(to_i16(s));
    }
    sw.flush()
}

/// Decodes the whole call packet by packet straight into the WAV file (an hour at 16 kHz would
/// be 460 MB of f32 in memory), trimming pre-skip and end padding exactly as
/// `ogg_read::decode` does (RFC 7845 §4.2, §4.4).
fn write_full_wav(
    call_id: i64,
    data: &[u8],
    info: &FileInfo,
    rate_hz: u32,
    path: &Path,
) -> Result<(), ExportError> {
    let dec_err = |e: crate::codec::opus_ms::OpusError| ExportError::Decode {
        call_id,
        message: e.to_string(),
    };
    let channels = info.head.channels as usize;
    let mut dec = MsDecoder::new(
        rate_hz,
        info.head.streams,
        info.head.coupled,
        &info.head.mapping,
    )
    .map_err(dec_err)?;
    let scale = f64::from(rate_hz) / f64::from(GRANULE_RATE_HZ);
    let skip = (f64::from(info.head.pre_skip) * scale).round() as u64;
    let keep = (info.samples_48k as f64 * scale).round() as u64;
    let end = skip + keep;
    let mut w = create_wav(path, channels as u16, rate_hz)?;
    let mut buf = vec![0f32; rate_hz as usize * 120 / 1000 * channels];
    let mut pos = 0u64;
    for packet in ogg_read::packets(data, &info.pages).into_iter().skip(2) {
        if pos >= end {
            break;
        }
        let n = dec.decode(&packet, &mut buf, channels).map_err(dec_err)? as u64;
        let lo = skip.saturating_sub(pos).min(n) as usize;
        let hi = end.saturating_sub(pos).min(n) as usize;
        if hi > lo {
            put_samples(&mut w, &buf[lo * channels..hi * channels])
                .map_err(|e| wav_err(path, e))?;
        }
        pos += n;
    }
    w.finalize().map_err(|e| wav_err(path, e))?;
    sync_path(path)
}

/// Checks an excerpt range against a call of `duration_ms`.
pub fn check_range(
    call_id: i64,
    duration_ms: i64,
    from_s: f64,
    to_s: f64,
) -> Result<(), ExportError> {
    let bad = |message: String| Err(ExportError::Range { call_id, message });
    if !from_s.is_finite() || !to_s.is_finite() || from_s < 0.0 {
        return bad(format!(
            "--from {from_s} --to {to_s}: give seconds from the start of the call, from ≥ 0"
        ));
    }
    if to_s <= from_s {
        return bad(format!(
            "--from {from_s} --to {to_s}: --to must be after --from"
        ));
    }
    let dur_s = duration_ms as f64 / 1000.0;
    if to_s > dur_s {
        return bad(format!(
            "--to {to_s} is past the end of the call ({dur_s} s); use --to {dur_s} or less"
        ));
    }
    Ok(())
}

/// The header pages and the audio pages up to `to_s` (plus the next one, for a packet continued
/// across that boundary), each CRC-checked, without scanning the rest of the file: all that
/// `decode_window` needs for an excerpt. (`ogg_read::inspect` checks every page and splits the
/// whole file into packets first: a third of the time of a 30 s excerpt of a one-hour call.)
fn pages_through(data: &[u8], to_s: f64) -> Option<FileInfo> {
    let first = ogg_read::parse_page(data, 0)?;
    let head =
        ogg_read::parse_head(ogg_read::packets(data, std::slice::from_ref(&first)).first()?)?;
    let end48 = i64::from(head.pre_skip) + (to_s * f64::from(GRANULE_RATE_HZ)).round() as i64;
    let mut offset = first.len;
    let mut pages = vec![first];
    let mut at_or_after_end = 0;
    while let Some(p) = ogg_read::parse_page(data, offset) {
        offset += p.len;
        if p.granule >= end48 {
            at_or_after_end += 1;
        }
        pages.push(p);
        if at_or_after_end == 2 {
            break;
        }
    }
    let last_granule = pages.iter().rev().find(|p| p.granule >= 0)?.granule as u64;
    Some(FileInfo {
        samples_48k: last_granule.saturating_sub(u64::from(head.pre_skip)),
        head,
        comments: Vec::new(),
        pages,
        valid_bytes: offset,
    })
}

fn write_excerpt(
    call_id: i64,
    data: &[u8],
    info: &FileInfo,
    rate_hz: u32,
    from_s: f64,
    to_s: f64,
    path: &Path,
) -> Result<(), ExportError> {
    let from_frame = (from_s * f64::from(rate_hz)).round() as u64;
    let frames = ((to_s - from_s) * f64::from(rate_hz)).round() as usize;
    let pcm = ogg_read::decode_window(data, info, rate_hz, from_frame, frames).map_err(|e| {
        ExportError::Decode {
            call_id,
            message: e.to_string(),
        }
    })?;
    let mut w = create_wav(path, u16::from(info.head.channels), rate_hz)?;
    put_samples(&mut w, &pcm).map_err(|e| wav_err(path, e))?;
    w.finalize().map_err(|e| wav_err(path, e))?;
    sync_path(path)
}

/// What the two human-readable documents are made from.
struct Doc<'a> {
    call: &'a CallRow,
    box_id: &'a str,
    actor: &'a str,
    exported_at_utc: &'a str,
    fingerprint: &'a str,
    notes: &'a [notes::Note],
    evaluations: &'a [qa::Evaluation],
    entries: &'a [Entry],
    files: &'a [FileEntry],
    archived: Option<&'a Archived>,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn clock_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!(
        "{}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms.max(0) % 1000
    )
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("—")
}

/// The command that verifies the bundle, run from the folder that contains it.
pub fn verify_command(call_id: i64) -> String {
    format!("cd call-{call_id} && sha256sum -c SHA256SUMS && openssl pkeyutl -verify -pubin -inkey box.pub -rawin -in manifest.json -sigfile manifest.sig")
}

/// The `printf | sha256sum` line that recomputes a ledger entry (POSIX shell quoting).
fn ledger_command(e: &Entry) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', r#"'\''"#));
    format!(
        r"printf 'callrec-ledger-v2\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n' {} {} {} {} {} {} {} | sha256sum",
        e.seq,
        q(&e.kind),
        e.call_id,
        q(e.file_sha256.as_deref().unwrap_or("")),
        q(&e.detail),
        q(&e.prev_sha256),
        q(&e.at_utc)
    )
}

fn report_html(d: &Doc) -> String {
    let mut h = String::new();
    report_head(&mut h, d);
    report_call(&mut h, d.call);
    report_intervals(&mut h, d.call);
    report_notes(&mut h, d.notes);
    report_evaluations(&mut h, d.evaluations);
    report_files(&mut h, d.files);
    report_ledger(&mut h, d.entries);
    report_how_to_verify(&mut h, d);
    h
}

/// The document head (title, inline stylesheet) and who exported what when.
fn report_head(h: &mut String, d: &Doc) {
    let c = d.call;
    let title = format!("Call {} — evidence bundle", c.id);
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font:14px/1.4 sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#111}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}th,td{{border:1px solid #bbb;padding:.25em .6em;text-align:left;vertical-align:top}}th{{background:#eee}}code,pre{{font:12px monospace;word-break:break-all}}pre{{background:#f4f4f4;padding:.6em;white-space:pre-wrap}}.derived{{color:#a40}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    ));
    h.push_str(&format!(
        "<p>Exported from box <b>{}</b> at {} UTC by {}. The original recording is <code>call-{}.opus</code>; files marked <span class=\"derived\">derived</span> were made from it at export time.</p>\n",
        esc(d.box_id),
        esc(d.exported_at_utc),
        esc(d.actor),
        c.id
    ));
    if let Some(a) = d.archived {
        h.push_str(&format!(
            "<p>Recorded by box <b>{}</b> as its call {}; this bundle was made at the hub from the archive object <code>{}</code>, checked against the SHA-256 the box shipped. The ledger entries below are box {}'s; its public key is <code>{RECORDING_BOX_KEY}</code>.</p>\n",
            esc(&a.box_id),
            a.box_call_id,
            esc(&a.audio_key),
            esc(&a.box_id),
        ));
    }
}

/// The call's index row as a two-column table.
fn report_call(h: &mut String, c: &CallRow) {
    h.push_str("<h2>Call</h2><table>\n");
    let duration = format!("{} ({} ms)", clock_ms(c.duration_ms), c.duration_ms);
    let bytes = c.bytes.to_string();
    let dropped = c.dropped_frames.to_string();
    let tags = c.tags.join(", ");
    let facts: [(&str, &str); 17] = [
        ("Call id", &c.id.to_string()),
        ("Recorded by box", &c.box_id),
        ("Seat", &c.seat_id),
        ("Agent", opt(&c.meta.agent)),
        ("Direction", opt(&c.meta.direction)),
        ("Remote number", opt(&c.meta.remote_number)),
        ("Campaign", opt(&c.meta.campaign)),
        ("External id", opt(&c.meta.external_id)),
        ("Started (UTC)", &c.started_at_utc),
        ("Ended (UTC)", opt(&c.ended_at_utc)),
        ("Duration", &duration),
        ("Status", c.status.as_str()),
        ("End reason", opt(&c.end_reason)),
        ("File SHA-256", opt(&c.sha256)),
        ("File bytes", &bytes),
        ("Dropped frames", &dropped),
        ("Tags", &tags),
    ];
    for (k, v) in facts {
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            esc(k),
            esc(v)
        ));
    }
    if let Some(n) = &c.note {
        h.push_str(&format!(
            "<tr><th>Recorder note</th><td>{}</td></tr>\n",
            esc(n)
        ));
    }
    h.push_str("</table>\n");
}

fn report_intervals(h: &mut String, c: &CallRow) {
    h.push_str("<h2>Pauses and gaps</h2>\n");
    if c.intervals.is_empty() {
        h.push_str("<p>None: the recording covers the whole call.</p>\n");
        return;
    }
    h.push_str("<p>A <b>pause</b> is a stretch where recording was paused on request (for example while card data was given): the audio there is silence of the same length. A <b>gap</b> is a stretch where a capture device was down, also kept as silence.</p><table><tr><th>kind</th><th>from</th><th>to</th><th>by</th><th>reason</th></tr>\n");
    for i in &c.intervals {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&i.kind),
            clock_ms(i.start_ms),
            i.end_ms.map(clock_ms).unwrap_or_else(|| "—".into()),
            esc(opt(&i.by)),
            esc(opt(&i.reason))
        ));
    }
    h.push_str("</table>\n");
}

fn report_notes(h: &mut String, notes: &[notes::Note]) {
    h.push_str("<h2>Reviewer notes</h2>\n");
    if notes.is_empty() {
        h.push_str("<p>None.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>at</th><th>author</th><th>note</th><th>written (UTC)</th></tr>\n");
    for n in notes {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            clock_ms(n.at_ms),
            esc(&n.author),
            esc(&n.text),
            esc(&n.created_at_utc)
        ));
    }
    h.push_str("</table>\n");
}

fn report_evaluations(h: &mut String, evaluations: &[qa::Evaluation]) {
    h.push_str("<h2>Evaluations</h2>\n");
    if evaluations.is_empty() {
        h.push_str("<p>None.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>id</th><th>scorecard</th><th>reviewer</th><th>status</th><th>score</th><th>passed</th><th>disputes</th></tr>\n");
    for e in evaluations {
        h.push_str(&evaluation_row(e));
    }
    h.push_str("</table><p>The answers to every question are in manifest.json (<code>evaluations</code>).</p>\n");
}

/// One evaluation's table row: score, pass and its disputes with their decisions.
fn evaluation_row(e: &qa::Evaluation) -> String {
    let score = e
        .score
        .as_ref()
        .and_then(|s| s.percent)
        .map(|p| format!("{p:.1} %"))
        .unwrap_or_else(|| "—".into());
    let passed = match e.score.as_ref().and_then(|s| s.passed) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    };
    let disputes: Vec<String> = e
        .disputes
        .iter()
        .map(|x| {
            format!(
                "{}: {} ({})",
                x.q,
                x.reason,
                x.decision.as_deref().unwrap_or("open")
            )
        })
        .collect();
    format!(
        "<tr><td>{}</td><td>{} v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        e.id,
        esc(&e.scorecard),
        e.scorecard_version,
        esc(&e.reviewer),
        esc(&e.status),
        score,
        passed,
        esc(&disputes.join("; "))
    )
}

fn report_files(h: &mut String, files: &[FileEntry]) {
    h.push_str(
        "<h2>Files</h2><table><tr><th>file</th><th>bytes</th><th>SHA-256</th><th>what</th></tr>\n",
    );
    for f in files {
        let class = if f.derived { " class=\"derived\"" } else { "" };
        h.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            esc(&f.name),
            f.bytes,
            esc(&f.sha256),
            esc(&f.description)
        ));
    }
    h.push_str("</table><p>This report and VERIFY.md are listed in manifest.json too; manifest.json, its signature manifest.sig and every other file are listed in SHA256SUMS.</p>\n");
}

fn report_ledger(h: &mut String, entries: &[Entry]) {
    h.push_str("<h2>Ledger</h2>\n<p>When the call ended, the box appended an entry with the recording's SHA-256 to its hash-chained ledger:</p><table><tr><th>seq</th><th>kind</th><th>written (UTC)</th><th>file SHA-256</th><th>entry SHA-256</th></tr>\n");
    for e in entries {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>\n",
            e.seq,
            esc(&e.kind),
            esc(&e.at_utc),
            esc(e.file_sha256.as_deref().unwrap_or("—")),
            esc(&e.entry_sha256)
        ));
    }
    h.push_str("</table>\n");
}

fn report_how_to_verify(h: &mut String, d: &Doc) {
    let c = d.call;
    h.push_str(&format!(
        "<h2>How to verify</h2>\n<p>From the folder that contains <code>call-{id}</code>, with standard tools only:</p>\n<pre>{}</pre>\n<p>Every file must print <code>OK</code>, then OpenSSL prints <code>Signature Verified Successfully</code>. Then make sure box.pub is really the box's key: <code>openssl pkey -pubin -in box.pub -outform DER | sha256sum</code> must print <code>{}</code>, the same as <code>callrec key show</code> on the box (compare with the box's administrator over a separate channel). VERIFY.md has the details.</p>\n</body></html>\n",
        esc(&verify_command(c.id)),
        esc(d.fingerprint),
        id = c.id
    ));
}

fn verify_md(d: &Doc) -> String {
    let c = d.call;
    let id = c.id;
    let mut m = format!(
        "# Verifying the evidence bundle of call {id}\n\n\
Exported from callrec box `{box_id}` at {at} UTC by `{actor}`. Nothing here needs callrec: the\n\
checks below use `sha256sum` (GNU coreutils) and `openssl` (OpenSSL 3).\n\n\
## 1. Nothing was changed\n\n\
From the folder that contains `call-{id}/`:\n\n\
```\n{cmd}\n```\n\n\
Expected: one `OK` line per file, then `Signature Verified Successfully`. `SHA256SUMS` covers\n\
every file including `manifest.json` and `manifest.sig`; the signature (Ed25519, RFC 8032) covers\n\
the exact bytes of `manifest.json`, which lists the size and SHA-256 of every other file. Any\n\
changed byte makes one of the two commands fail.\n\n\
## 2. The key is the box's key\n\n\
A valid signature only shows that whoever holds the key behind `box.pub` signed the manifest.\n\
Check that `box.pub` is the recorder's key:\n\n\
```\nopenssl pkey -pubin -in box.pub -outform DER | sha256sum\n```\n\n\
must print `{fp}`, and the box's administrator must see the same fingerprint with\n\
`callrec key show` on the box. Compare it over a channel other than this folder (phone, a\n\
signed letter, an earlier bundle).\n\n\
{recorded}## 3. The recording is the one the box recorded when the call ended\n\n\
When the call ended, the box appended an entry with the recording's SHA-256 to its\n\
append-only, hash-chained ledger. `manifest.json` → `ledger.entries` has the call's entries\n\
and `ledger.head_at_export` the newest entry of the whole chain at export time. An entry's\n\
`entry_sha256` is the SHA-256 of the lines `callrec-ledger-v2`, `seq`, `kind`, `call_id`,\n\
`file_sha256` (empty when none), `detail`, `prev_sha256`, `at_utc`, each followed by a line feed;\n\
`prev_sha256` is the previous entry's hash. The `file_sha256` of the `call` entry must equal the\n\
SHA-256 of `call-{id}.opus`. To recompute:\n\n",
        box_id = d.box_id,
        at = d.exported_at_utc,
        actor = d.actor,
        cmd = verify_command(id),
        fp = d.fingerprint,
        recorded = recorded_md(d),
    );
    for e in d.entries {
        m.push_str(&format!(
            "```\n{}\n```\n\nmust print `{}` (entry {}).\n\n",
            ledger_command(e),
            e.entry_sha256,
            e.seq
        ));
    }
    if d.entries.is_empty() {
        m.push_str(
            "(This call has no ledger entry: it was finalized before the box kept a ledger.)\n\n",
        );
    }
    m.push_str(
        "On the box, `callrec verify --store` recomputes the whole chain and checks every stored\n\
recording against its index row and its ledger entry.\n\n\
## Files\n\n\
| file | derived | bytes | SHA-256 |\n|---|---|---|---|\n",
    );
    for f in d.files {
        m.push_str(&format!(
            "| `{}` | {} | {} | `{}` |\n",
            f.name,
            if f.derived { "yes" } else { "no" },
            f.bytes,
            f.sha256
        ));
    }
    m.push_str(&format!(
        "| `{REPORT}` | no | (in manifest.json) | |\n| `{INSTRUCTIONS}` | no | (in manifest.json) | |\n\n\
Derived files were decoded from `call-{id}.opus` with libopus at export time; they are\n\
conveniences, not the evidence itself. The original plays in VLC, ffmpeg/ffplay, Chrome and\n\
Firefox (Ogg Opus, channel 0 = agent, channel 1 = customer).\n\n\
With callrec: `callrec verify call-{id}` runs all of the checks above on the bundle.\n"
    ));
    m
}

/// VERIFY.md's section on the recording box, for a bundle made at the hub (empty otherwise).
fn recorded_md(d: &Doc) -> String {
    let Some(a) = d.archived else {
        return String::new();
    };
    let key = match &a.box_key {
        Some((fp, _)) => format!(
            "The box's own public key, as it shipped it with the call, is `{RECORDING_BOX_KEY}`:\n\n\
```\nopenssl pkey -pubin -in {RECORDING_BOX_KEY} -outform DER | sha256sum\n```\n\n\
must print `{fp}`, the same as `callrec key show` on box `{}`.\n\n",
            a.box_id
        ),
        None => "The box shipped this call before it had a key: there is no recording box key.\n\n".into(),
    };
    format!(
        "## 2b. The box that recorded the call\n\n\
This bundle was made at the hub (`{hub}`), which signed it with its own key (`box.pub` above). The\n\
call was recorded by box `{b}` as its call {n} and fetched from the archive object `{obj}`,\n\
checked against the SHA-256 the box shipped. The ledger entries below are box `{b}`'s and name\n\
its call id {n} (`manifest.json` → `recorded_by`). {key}",
        hub = d.box_id,
        b = a.box_id,
        n = a.box_call_id,
        obj = a.audio_key,
    )
}

/// The bundle folder name for a call.
pub fn bundle_dir(out_dir: &Path, call_id: i64) -> PathBuf {
    out_dir.join(format!("call-{call_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_ranges_are_checked() {
        assert!(check_range(1, 3000, 0.5, 1.5).is_ok());
        assert!(check_range(1, 3000, 0.0, 3.0).is_ok());
        for (a, b) in [
            (1.5, 0.5),
            (1.0, 1.0),
            (-1.0, 1.0),
            (0.0, 3.1),
            (f64::NAN, 1.0),
        ] {
            let e = check_range(7, 3000, a, b);
            assert!(
                matches!(e, Err(ExportError::Range { call_id: 7, .. })),
                "{a}..{b}"
            );
        }
    }

    #[test]
    fn ledger_command_quotes_for_the_shell() {
        let e = Entry {
            seq: 3,
            kind: "call".into(),
            call_id: 9,
            file_sha256: None,
            detail: r#"{"agent":"O'Brien"}"#.into(),
            prev_sha256: "0".repeat(64),
            entry_sha256: String::new(),
            at_utc: "2026-11-27T10:00:00.000Z".into(),
        };
        let cmd = ledger_command(&e);
        assert!(cmd.contains(r#"'{"agent":"O'\''Brien"}'"#), "{cmd}");
        assert!(cmd.contains(" 3 'call' 9 '' "), "{cmd}");
        assert_eq!(clock_ms(3_723_004), "1:02:03.004");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
