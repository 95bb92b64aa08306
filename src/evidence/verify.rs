//! `callrec verify`: checks an evidence bundle, or the whole store (every recording against its
//! index row and its ledger entry, the ledger chain, and files nobody accounts for).
//!
//! Every mismatch becomes one [`Problem`] naming the call, the file, what was expected and what
//! was found; the caller exits non-zero when there is any. Files are hashed in chunks (see
//! [`crate::hash::sha256_file`]), one at a time.
//!
//! This module only reads: it must never repair, rewrite, rename or delete anything, in a bundle
//! or in the store (repairs belong to `callrec check --repair`, with explicit flags).

use super::bundle::{self, FileEntry};
use super::key;
use crate::hash::sha256_file;
use crate::store::ledger::{self, Entry};
use crate::store::CallStatus;
use crate::store::{self, CallRow, StoreError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "{0} has no manifest.json: point `callrec verify` at one call-<id> folder of an export"
    )]
    NotABundle(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for VerifyError {
    fn from(e: rusqlite::Error) -> Self {
        VerifyError::Store(StoreError::Sql(e))
    }
}

/// What kind of thing does not match: lets `callrec check` say which repair (if any) applies,
/// and scripts filter without parsing the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Anything found in an evidence bundle.
    Bundle,
    // Found by `callrec verify --store` (and `callrec check`, which runs the same scan).
    /// A finished call's recording is not there.
    FileMissing,
    /// A recording exists but cannot be read.
    FileUnreadable,
    /// A recording's size differs from its row.
    SizeMismatch,
    /// A recording's SHA-256 differs from its row: tampering or corruption. Never repaired.
    HashMismatch,
    /// The ledger's hash chain is broken.
    LedgerChain,
    /// A finished call with a hash has no ledger entry (finalized before the ledger existed, or
    /// the row was written outside callrec).
    LedgerEntryMissing,
    /// The ledger and the row disagree (file hash, a committed field, a tombstone for a live row).
    LedgerMismatch,
    /// The ledger names a call that has no row (rows are never deleted).
    LedgerWithoutRow,
    /// A `garbage` or `deleted` call has no ledger tombstone.
    TombstoneMissing,
    /// A file is present for a call whose recording was deleted.
    ResurrectedFile,
    /// A file under calls/ that no row accounts for, or the peaks of a deleted call.
    OrphanFile,
    /// A call marked `garbage` whose deletion has not finished (not a mismatch).
    PendingDeletion,
    // Found only by `callrec check`.
    /// SQLite's `PRAGMA integrity_check` reports damage.
    DatabaseIntegrity,
    /// A row refers to a row that does not exist (`PRAGMA foreign_key_check`).
    ForeignKey,
    /// STORAGE-ID, the index and `storage.id` in the config do not agree.
    StorageIdentity,
    /// A `*.tmp` file under calls/ older than any write in progress could be.
    StaleTemporaryFile,
    /// A finished call has no waveform peaks file.
    PeaksMissing,
    /// A finished call's peaks file does not parse or does not fit the call.
    PeaksCorrupt,
    /// A row is `recording` but no recorder holds the storage lock.
    StuckRecording,
    /// The audit log's hash chain is broken.
    AuditChain,
}

/// One thing that does not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
    /// A file name (bundle) or a path relative to the storage dir (store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(id) = self.call_id {
            write!(f, "call {id}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.what)?;
        match (&self.expected, &self.found) {
            (Some(e), Some(x)) => write!(f, " (expected {e}, found {x})"),
            (Some(e), None) => write!(f, " (expected {e})"),
            (None, Some(x)) => write!(f, " (found {x})"),
            (None, None) => Ok(()),
        }
    }
}

pub(crate) fn problem(
    kind: ProblemKind,
    call_id: Option<i64>,
    path: Option<&str>,
    what: impl Into<String>,
) -> Problem {
    Problem {
        kind,
        call_id,
        path: path.map(str::to_owned),
        what: what.into(),
        expected: None,
        found: None,
    }
}

pub(crate) fn mismatch(
    kind: ProblemKind,
    call_id: Option<i64>,
    path: Option<&str>,
    what: impl Into<String>,
    expected: impl ToString,
    found: impl ToString,
) -> Problem {
    Problem {
        expected: Some(expected.to_string()),
        found: Some(found.to_string()),
        ..problem(kind, call_id, path, what)
    }
}

// ------------------------------------------------------------------------------------------------
// Bundles

/// The parts of a manifest that verification reads; everything else is ignored here.
#[derive(Debug, Deserialize)]
struct ManifestView {
    #[serde(default)]
    format: String,
    call_id: i64,
    call: CallView,
    files: Vec<FileEntry>,
    ledger: LedgerView,
    signing_key: KeyView,
    /// Only in bundles made at the hub (see `bundle::Archived`).
    #[serde(default)]
    recorded_by: Option<RecordedByView>,
}

#[derive(Debug, Deserialize)]
struct RecordedByView {
    box_call_id: i64,
    key_file: Option<String>,
    key_fingerprint_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CallView {
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LedgerView {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct KeyView {
    fingerprint_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub dir: String,
    pub call_id: Option<i64>,
    pub files_checked: usize,
    pub signature_valid: bool,
    /// SHA-256 of box.pub's DER form: compare with `callrec key show` on the box.
    pub key_fingerprint_sha256: Option<String>,
    pub ledger_entries_checked: usize,
    pub problems: Vec<Problem>,
}

impl BundleReport {
    /// Whether the bundle was signed by the key whose fingerprint is `box_fingerprint` (this
    /// box's, from [`super::key::load`]); `None` when either is unknown. A bundle from another
    /// box is fine: its fingerprint must then be compared with that box's `callrec key show`.
    pub fn signed_by(&self, box_fingerprint: Option<&str>) -> Option<bool> {
        Some(self.key_fingerprint_sha256.as_deref()? == box_fingerprint?)
    }
}

/// A file name from a manifest or SHA256SUMS that stays inside the bundle folder.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// Checks a bundle folder: every file against SHA256SUMS and the manifest, the signature with
/// the bundle's box.pub, and the manifest's ledger entries. Returns the report; problems are in
/// it, errors only when the folder cannot be read at all.
pub fn verify_bundle(dir: &Path) -> Result<BundleReport, VerifyError> {
    let manifest_path = dir.join(bundle::MANIFEST);
    let manifest_bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerifyError::NotABundle(dir.display().to_string()))
        }
        Err(e) => return Err(io_err(&manifest_path)(e)),
    };
    let mut check = BundleCheck::new(dir);

    // 1. The signature over the exact manifest bytes, with the bundle's own public key.
    if let Some(vk) = check.public_key() {
        check.check_signature(&vk, &manifest_bytes);
    }
    // 2. SHA256SUMS, as `sha256sum -c` reads it.
    let in_sums = check.check_sums();
    // 3. The manifest's own file list, sizes and hashes, and its ledger entries.
    let manifest = check.parse_manifest(&manifest_bytes);
    let listed = match &manifest {
        Some(m) => check.check_manifest(m),
        None => HashSet::new(),
    };
    // 4. Nothing in the folder that neither list accounts for.
    check.check_unaccounted(manifest.is_some(), &listed, &in_sums)?;

    let mut r = check.report;
    r.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(r)
}

fn io_err(p: &Path) -> impl FnOnce(std::io::Error) -> VerifyError {
    let path = p.display().to_string();
    move |source| VerifyError::Io { path, source }
}

/// One bundle being checked: its folder, the report so far, and each file's hash (a file
/// listed in both SHA256SUMS and the manifest is read once).
struct BundleCheck<'a> {
    dir: &'a Path,
    report: BundleReport,
    hashes: HashMap<String, Option<(String, u64)>>,
}

impl<'a> BundleCheck<'a> {
    fn new(dir: &'a Path) -> Self {
        BundleCheck {
            dir,
            report: BundleReport {
                dir: dir.display().to_string(),
                call_id: None,
                files_checked: 0,
                signature_valid: false,
                key_fingerprint_sha256: None,
                ledger_entries_checked: 0,
                problems: Vec::new(),
            },
            hashes: HashMap::new(),
        }
    }

    /// SHA-256 and size of a file of the bundle, None when it cannot be read.
    fn hash_of(&mut self, name: &str) -> Option<(String, u64)> {
        let dir = self.dir;
        self.hashes
            .entry(name.to_owned())
            .or_insert_with(|| sha256_file(&dir.join(name)).ok())
            .clone()
    }

    /// A problem with the file (or ledger entry) `path` of the bundle.
    fn flag(&mut self, call_id: Option<i64>, path: &str, what: impl Into<String>) {
        self.report
            .problems
            .push(problem(ProblemKind::Bundle, call_id, Some(path), what));
    }

    fn differs(
        &mut self,
        call_id: Option<i64>,
        path: &str,
        what: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) {
        self.report.problems.push(mismatch(
            ProblemKind::Bundle,
            call_id,
            Some(path),
            what,
            expected,
            found,
        ));
    }

    /// box.pub, parsed; None (with its problem) when it cannot be read or parsed.
    fn public_key(&mut self) -> Option<ed25519_dalek::VerifyingKey> {
        match std::fs::read_to_string(self.dir.join(bundle::PUBLIC_KEY)) {
            Ok(pem) => match key::parse_public_pem(&pem) {
                Ok(vk) => Some(vk),
                Err(e) => {
                    self.flag(None, bundle::PUBLIC_KEY, e.to_string());
                    None
                }
            },
            Err(e) => {
                self.flag(
                    None,
                    bundle::PUBLIC_KEY,
                    format!("cannot read the public key: {e}"),
                );
                None
            }
        }
    }

    fn check_signature(&mut self, vk: &ed25519_dalek::VerifyingKey, manifest_bytes: &[u8]) {
        self.report.key_fingerprint_sha256 = key::fingerprint(vk).ok();
        match std::fs::read(self.dir.join(bundle::SIGNATURE)) {
            Ok(sig) if sig.len() != 64 => self.differs(
                None,
                bundle::SIGNATURE,
                "not an Ed25519 signature",
                "64 bytes",
                format!("{} bytes", sig.len()),
            ),
            Ok(sig) => {
                self.report.signature_valid = key::verify_signature(vk, manifest_bytes, &sig);
                if !self.report.signature_valid {
                    self.flag(None,
                        bundle::MANIFEST,
                        "the signature in manifest.sig does not match manifest.json with box.pub: the manifest or the signature was changed, or box.pub is not the key that signed it",
                    );
                }
            }
            Err(e) => self.flag(
                None,
                bundle::SIGNATURE,
                format!("cannot read the signature: {e}"),
            ),
        }
    }

    /// Every line of SHA256SUMS against its file; returns the names it lists.
    fn check_sums(&mut self) -> HashSet<String> {
        let mut in_sums: HashSet<String> = HashSet::new();
        let text = match std::fs::read_to_string(self.dir.join(bundle::SUMS)) {
            Ok(text) => text,
            Err(e) => {
                self.flag(None, bundle::SUMS, format!("cannot read SHA256SUMS: {e}"));
                return in_sums;
            }
        };
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let parsed = line
                .split_once("  ")
                .or_else(|| line.split_once(" *"))
                .filter(|(h, n)| crate::hash::is_sha256_hex(h) && plain_name(n));
            let Some((want, name)) = parsed else {
                self.flag(
                    None,
                    bundle::SUMS,
                    format!("line {} is not `<sha256>  <file name>`: {line:?}", i + 1),
                );
                continue;
            };
            in_sums.insert(name.to_owned());
            match self.hash_of(name) {
                None => self.flag(None, name, "listed in SHA256SUMS but missing"),
                Some((got, _)) if got != want => self.differs(
                    None,
                    name,
                    "content changed (SHA256SUMS)",
                    format!("sha256 {want}"),
                    format!("sha256 {got}"),
                ),
                Some(_) => {}
            }
        }
        in_sums
    }

    fn parse_manifest(&mut self, manifest_bytes: &[u8]) -> Option<ManifestView> {
        match serde_json::from_slice(manifest_bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                self.flag(
                    None,
                    bundle::MANIFEST,
                    format!("not a callrec manifest ({e}); it was changed or is from another tool"),
                );
                None
            }
        }
    }

    /// The manifest's format, key, files and ledger entries; returns the file names it lists.
    fn check_manifest(&mut self, m: &ManifestView) -> HashSet<String> {
        self.report.call_id = Some(m.call_id);
        self.check_format_and_key(m);
        let listed = self.check_listed_files(m);
        let original_sha = self.original_sha(m);
        self.check_ledger_entries(m, original_sha);
        self.check_recording_box_key(m, &listed);
        listed
    }

    /// At the hub: the recording box's key file is listed and is the key the manifest names.
    fn check_recording_box_key(&mut self, m: &ManifestView, listed: &HashSet<String>) {
        let id = Some(m.call_id);
        let Some(r) = &m.recorded_by else { return };
        let (Some(file), Some(want)) = (&r.key_file, &r.key_fingerprint_sha256) else {
            return;
        };
        if !listed.contains(file) {
            self.flag(
                id,
                file,
                "the recording box's key is not a file the manifest lists",
            );
            return;
        }
        let found = std::fs::read_to_string(self.dir.join(file))
            .map_err(|e| e.to_string())
            .and_then(|pem| key::parse_public_pem(&pem).map_err(|e| e.to_string()))
            .and_then(|vk| key::fingerprint(&vk).map_err(|e| e.to_string()));
        match found {
            Ok(fp) if &fp == want => {}
            Ok(fp) => self.differs(
                id,
                file,
                "the recording box's key is not the one the manifest names",
                format!("fingerprint {want}"),
                format!("fingerprint {fp}"),
            ),
            Err(e) => self.flag(id, file, e),
        }
    }

    fn check_format_and_key(&mut self, m: &ManifestView) {
        let id = Some(m.call_id);
        if m.format != bundle::FORMAT {
            self.differs(
                id,
                bundle::MANIFEST,
                "unknown bundle format",
                bundle::FORMAT,
                &m.format,
            );
        }
        if let Some(fp) = self.report.key_fingerprint_sha256.clone() {
            if fp != m.signing_key.fingerprint_sha256 {
                self.differs(
                    id,
                    bundle::PUBLIC_KEY,
                    "box.pub is not the key the manifest names",
                    format!("fingerprint {}", m.signing_key.fingerprint_sha256),
                    format!("fingerprint {fp}"),
                );
            }
        }
    }

    /// Every file the manifest lists, against its size and hash; returns their names.
    fn check_listed_files(&mut self, m: &ManifestView) -> HashSet<String> {
        let id = Some(m.call_id);
        let mut listed: HashSet<String> = HashSet::new();
        for f in &m.files {
            if !plain_name(&f.name) {
                self.flag(
                    id,
                    &f.name,
                    "the manifest names a file outside the bundle folder",
                );
                continue;
            }
            listed.insert(f.name.clone());
            self.report.files_checked += 1;
            let Some((sha, bytes)) = self.hash_of(&f.name) else {
                self.flag(id, &f.name, "listed in manifest.json but missing");
                continue;
            };
            if bytes != f.bytes {
                self.differs(
                    id,
                    &f.name,
                    "size differs from manifest.json",
                    format!("{} bytes", f.bytes),
                    format!("{bytes} bytes"),
                );
            }
            if sha != f.sha256 {
                self.differs(
                    id,
                    &f.name,
                    "content changed (manifest.json)",
                    format!("sha256 {}", f.sha256),
                    format!("sha256 {sha}"),
                );
            }
        }
        listed
    }

    /// The SHA-256 of the one original recording, checked against the call's; None (with a
    /// problem) when the manifest does not list exactly one.
    fn original_sha<'m>(&mut self, m: &'m ManifestView) -> Option<&'m str> {
        let id = Some(m.call_id);
        let originals: Vec<&FileEntry> = m
            .files
            .iter()
            .filter(|f| f.kind == "original-recording" && !f.derived)
            .collect();
        let &[one] = originals.as_slice() else {
            self.flag(
                id,
                bundle::MANIFEST,
                format!(
                    "the manifest lists {} original recordings; a bundle has exactly one",
                    originals.len()
                ),
            );
            return None;
        };
        let orig = one.sha256.as_str();
        if m.call.sha256.as_deref() != Some(orig) {
            self.differs(
                id,
                bundle::MANIFEST,
                "the call's SHA-256 in the manifest is not the original recording's",
                orig,
                m.call.sha256.as_deref().unwrap_or("none"),
            );
        }
        Some(orig)
    }

    /// Each ledger entry's own hash, that it is about this call, and that the `call` entry
    /// recorded the bundle's original.
    fn check_ledger_entries(&mut self, m: &ManifestView, original_sha: Option<&str>) {
        let id = Some(m.call_id);
        // A bundle made at the hub carries the recording box's entries, which name the box's
        // own id of the call.
        let ledger_call_id = m.recorded_by.as_ref().map_or(m.call_id, |r| r.box_call_id);
        let mut has_call_entry = false;
        for e in &m.ledger.entries {
            self.report.ledger_entries_checked += 1;
            let at = format!("ledger entry {}", e.seq);
            for p in ledger::check_entry(e) {
                self.flag(id, &at, p);
            }
            if e.call_id != ledger_call_id {
                self.differs(
                    id,
                    &at,
                    "entry is about another call",
                    ledger_call_id,
                    e.call_id,
                );
            }
            if e.kind == "call" {
                has_call_entry = true;
                if let (Some(orig), Some(f)) = (original_sha, e.file_sha256.as_deref()) {
                    if orig != f {
                        self.differs(
                            id,
                            &at,
                            "the ledger recorded a different file than the bundle's original",
                            format!("file_sha256 {f}"),
                            format!("sha256 {orig}"),
                        );
                    }
                }
            }
        }
        if !has_call_entry {
            self.flag(id,
                bundle::MANIFEST,
                "no ledger entry for the call: the box did not record this file's hash when the call ended",
            );
        }
    }

    /// Files in the folder that the manifest (when it parsed) or SHA256SUMS does not cover.
    fn check_unaccounted(
        &mut self,
        have_manifest: bool,
        listed: &HashSet<String>,
        in_sums: &HashSet<String>,
    ) -> Result<(), VerifyError> {
        let dir = self.dir;
        let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
        for de in entries {
            let de = de.map_err(io_err(dir))?;
            let name = de.file_name().to_string_lossy().into_owned();
            let fixed = [bundle::MANIFEST, bundle::SIGNATURE, bundle::SUMS];
            let call_id = self.report.call_id;
            if have_manifest && !listed.contains(&name) && !fixed.contains(&name.as_str()) {
                self.flag(call_id, &name, "a file the manifest does not list");
            } else if name != bundle::SUMS && !in_sums.contains(&name) && have_manifest {
                self.flag(call_id, &name, "a file SHA256SUMS does not cover");
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// The whole store

#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub calls: u64,
    /// Calls still recording: their files are growing, so they are not hashed.
    pub calls_recording: u64,
    /// Calls marked `garbage`: a deletion that has not finished (their files may still exist).
    pub calls_pending_deletion: u64,
    /// Calls whose recording was deleted: row and ledger tombstone kept, no file.
    pub calls_deleted: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub ledger_entries: u64,
    pub ledger_head: Option<ledger::Head>,
    pub files_in_calls_dir: u64,
    /// `*.tmp` files under calls/ (atomic writes in progress or left by a crash): counted only.
    pub temporary_files: u64,
    /// One per `garbage` call. Not a mismatch: a deletion interrupted between its two steps,
    /// finished by `callrec check --repair-garbage` or the next retention run.
    pub pending_deletions: Vec<Problem>,
    pub problems: Vec<Problem>,
    /// The `*.tmp` files counted in `temporary_files`, relative to the storage dir (for
    /// `callrec check`, which looks at their age).
    #[serde(skip)]
    pub temporary_paths: Vec<String>,
}

/// Every file under `<storage>/calls/`, as paths relative to the storage dir.
fn walk_calls(storage_dir: &Path) -> Result<Vec<String>, VerifyError> {
    let root = storage_dir.join("calls");
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == root => return Ok(out),
            Err(source) => {
                return Err(VerifyError::Io {
                    path: d.display().to_string(),
                    source,
                })
            }
        };
        for de in rd {
            let de = de.map_err(|source| VerifyError::Io {
                path: d.display().to_string(),
                source,
            })?;
            let p = de.path();
            let ft = de.file_type().map_err(|source| VerifyError::Io {
                path: p.display().to_string(),
                source,
            })?;
            if ft.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(storage_dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The differences between a ledger detail and the detail rebuilt from the current row.
fn detail_diff(ledger_detail: &str, row: &CallRow) -> Vec<(String, String, String)> {
    let now = row.ledger_detail().canonical_json();
    if now == ledger_detail {
        return Vec::new();
    }
    let parse = |s: &str| -> BTreeMap<String, serde_json::Value> {
        serde_json::from_str(s).unwrap_or_default()
    };
    let (was, is) = (parse(ledger_detail), parse(&now));
    let keys: std::collections::BTreeSet<&String> = was.keys().chain(is.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let a = was.get(k).map(|v| v.to_string()).unwrap_or("absent".into());
        let b = is.get(k).map(|v| v.to_string()).unwrap_or("absent".into());
        if a != b {
            out.push((k.clone(), a, b));
        }
    }
    if out.is_empty() {
        // Same values, different text: the stored detail is not canonical.
        out.push(("detail".into(), ledger_detail.to_owned(), now));
    }
    out
}

/// What the ledger says, indexed by call, from one pass over the chain.
struct LedgerIndex {
    /// The latest `call` entry of each call.
    calls: HashMap<i64, Entry>,
    /// The latest `tombstone` of each call.
    tombstones: HashMap<i64, Entry>,
    chain: ledger::ChainReport,
}

fn index_ledger(conn: &Connection) -> Result<LedgerIndex, VerifyError> {
    let mut calls: HashMap<i64, Entry> = HashMap::new();
    let mut tombstones: HashMap<i64, Entry> = HashMap::new();
    let chain = ledger::scan_chain(conn, |e| {
        let by_kind = if e.kind == "tombstone" {
            &mut tombstones
        } else {
            &mut calls
        };
        by_kind.insert(e.call_id, e.clone());
    })?;
    Ok(LedgerIndex {
        calls,
        tombstones,
        chain,
    })
}

/// Checks the whole store; see [`scan_store`].
pub fn verify_store(conn: &Connection, storage_dir: &Path) -> Result<StoreReport, VerifyError> {
    scan_store(conn, storage_dir).map(|(report, _)| report)
}

/// Checks the whole store, and returns the rows it checked (one snapshot) so that `callrec
/// check` can check more about the same rows. Files under `calls/` are listed first and the
/// index is read after, in one snapshot, so a call that starts meanwhile never shows up as an
/// orphan file.
///
/// The invariant, by a row's status:
/// - `complete` / `interrupted` with a hash: the file exists with the row's size and SHA-256,
///   and the call's latest ledger entry has that hash and the row's committed fields;
/// - `garbage`: a pending deletion (reported apart from the problems), with a tombstone;
/// - `deleted`: no file, and a tombstone;
/// - `recording`: the file is growing; nothing to compare yet.
///
/// Every file under calls/ is a row's recording, or the peaks beside a recording that is not
/// deleted, or a `*.tmp` (counted).
pub(crate) fn scan_store(
    conn: &Connection,
    storage_dir: &Path,
) -> Result<(StoreReport, Vec<CallRow>), VerifyError> {
    let files = walk_calls(storage_dir)?;
    let (rows, ledger_index) = read_rows_and_ledger(conn)?;
    let LedgerIndex {
        calls: latest_call_entry,
        tombstones,
        chain,
    } = ledger_index;
    let mut scan = StoreScan {
        storage_dir,
        latest_call_entry: &latest_call_entry,
        tombstones: &tombstones,
        r: StoreReport {
            calls: rows.len() as u64,
            calls_recording: 0,
            calls_pending_deletion: 0,
            calls_deleted: 0,
            files_hashed: 0,
            bytes_hashed: 0,
            ledger_entries: chain.entries,
            ledger_head: chain.head.clone(),
            files_in_calls_dir: files.len() as u64,
            temporary_files: 0,
            pending_deletions: Vec::new(),
            problems: Vec::new(),
            temporary_paths: Vec::new(),
        },
    };
    for p in chain.problems {
        scan.r.problems.push(problem(
            ProblemKind::LedgerChain,
            None,
            Some(&format!("ledger entry {}", p.seq)),
            p.problem,
        ));
    }

    let mut by_path: HashMap<&str, &CallRow> = HashMap::with_capacity(rows.len());
    let mut row_ids: HashSet<i64> = HashSet::with_capacity(rows.len());
    for c in &rows {
        by_path.insert(c.rel_path.as_str(), c);
        row_ids.insert(c.id);
        scan.check_row(c);
    }
    scan.check_ledger_calls_have_rows(&row_ids);
    scan.check_files(&files, &by_path);
    let mut r = scan.r;
    let order = |a: &Problem, b: &Problem| {
        (a.call_id.unwrap_or(i64::MAX), &a.path, a.kind).cmp(&(
            b.call_id.unwrap_or(i64::MAX),
            &b.path,
            b.kind,
        ))
    };
    r.problems.sort_by(order);
    r.pending_deletions.sort_by(order);
    Ok((r, rows))
}

/// The rows and the ledger from one read transaction: both from the same moment.
fn read_rows_and_ledger(conn: &Connection) -> Result<(Vec<CallRow>, LedgerIndex), VerifyError> {
    let tx = conn.unchecked_transaction()?;
    let rows: Vec<CallRow> = tx
        .prepare(&format!(
            "SELECT {} FROM calls ORDER BY id",
            store::CALL_COLUMNS
        ))?
        .query_map([], store::row_to_call)?
        .collect::<Result<_, _>>()?;
    let ledger_index = index_ledger(&tx)?;
    tx.finish()?;
    Ok((rows, ledger_index))
}

/// The store being checked: the ledger by call, and the report so far.
struct StoreScan<'a> {
    storage_dir: &'a Path,
    /// The latest `call` entry of each call.
    latest_call_entry: &'a HashMap<i64, Entry>,
    /// The latest `tombstone` of each call.
    tombstones: &'a HashMap<i64, Entry>,
    r: StoreReport,
}

impl StoreScan<'_> {
    /// The call's file through the one path check (`store::call_file`); a row pointing outside
    /// the storage dir is an error the caller reports, never a file read elsewhere.
    fn file_of(&self, c: &CallRow) -> std::io::Result<std::path::PathBuf> {
        crate::store::call_file(self.storage_dir, &c.rel_path).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the row's path leaves the storage dir",
            )
        })
    }

    /// One row against its file and the ledger, by its status (see [`scan_store`]).
    fn check_row(&mut self, c: &CallRow) {
        match c.status {
            CallStatus::Recording => self.r.calls_recording += 1,
            CallStatus::Garbage => {
                self.check_tombstone(c);
                self.pending_deletion(c);
            }
            CallStatus::Deleted => {
                self.check_tombstone(c);
                self.check_stays_deleted(c);
            }
            CallStatus::Complete | CallStatus::Interrupted => self.check_finalized(c),
        }
    }

    /// A `garbage` or `deleted` row has a tombstone, for its own file.
    fn check_tombstone(&mut self, c: &CallRow) {
        use ProblemKind as K;
        let (id, rel) = (Some(c.id), Some(c.rel_path.as_str()));
        match self.tombstones.get(&c.id) {
            None => self.r.problems.push(problem(
                K::TombstoneMissing,
                id,
                rel,
                format!(
                    "the row says {} but the ledger has no tombstone for the call (the status was changed outside callrec)",
                    c.status
                ),
            )),
            Some(t) if t.file_sha256 != c.sha256 => self.r.problems.push(mismatch(
                K::LedgerMismatch,
                id,
                rel,
                format!("the tombstone (ledger entry {}) names another file than the row", t.seq),
                format!("sha256 {}", c.sha256.as_deref().unwrap_or("none")),
                format!("sha256 {}", t.file_sha256.as_deref().unwrap_or("none")),
            )),
            Some(_) => {}
        }
    }

    /// A `garbage` row: reported apart from the problems.
    fn pending_deletion(&mut self, c: &CallRow) {
        self.r.calls_pending_deletion += 1;
        let left = if self.file_of(c).is_ok_and(|p| p.exists()) {
            "the file is still there"
        } else {
            "the file is gone but the row still says garbage"
        };
        self.r.pending_deletions.push(mismatch(
            ProblemKind::PendingDeletion,
            Some(c.id),
            Some(c.rel_path.as_str()),
            "marked for deletion (garbage), deletion not finished",
            "file removed and status deleted",
            left,
        ));
    }

    fn check_stays_deleted(&mut self, c: &CallRow) {
        let (id, rel) = (Some(c.id), Some(c.rel_path.as_str()));
        self.r.calls_deleted += 1;
        // A deleted call's file must stay gone: one that is back came from a backup
        // restore, an undelete tool or a power cut the unlink did not survive.
        match self.file_of(c).and_then(|p| sha256_file(&p)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.r.problems.push(problem(
                ProblemKind::ResurrectedFile,
                id,
                rel,
                format!("something is at the path of a deleted recording and cannot be read: {e}"),
            )),
            Ok((got, bytes)) => {
                let which = if c.sha256.as_deref() == Some(got.as_str()) {
                    "the deleted recording itself"
                } else {
                    "a different file"
                };
                self.r.problems.push(mismatch(
                    ProblemKind::ResurrectedFile,
                    id,
                    rel,
                    format!("resurrected file: the call was deleted but a file is at its path ({which})"),
                    format!(
                        "no file (deleted {})",
                        c.deleted_at_utc.as_deref().unwrap_or("at an unknown time")
                    ),
                    format!("{bytes} bytes, sha256 {got}"),
                ));
            }
        }
    }

    /// A `complete` or `interrupted` row: no tombstone, and (when it has a hash) its file and
    /// its latest ledger entry agree with it.
    fn check_finalized(&mut self, c: &CallRow) {
        if let Some(t) = self.tombstones.get(&c.id) {
            self.r.problems.push(mismatch(
                ProblemKind::LedgerMismatch,
                Some(c.id),
                Some(c.rel_path.as_str()),
                format!(
                    "the ledger has a tombstone for this call (entry {}) but the row is not deleted (restored outside callrec)",
                    t.seq
                ),
                "status deleted",
                format!("status {}", c.status),
            ));
        }
        let Some(want) = c.sha256.as_deref() else {
            // Finalized without audio reaching the disk: nothing to hash, no ledger entry.
            return;
        };
        self.check_file(c, want);
        self.check_ledger_entry(c, want);
    }

    /// The recording exists with the row's size and SHA-256 (`want`).
    fn check_file(&mut self, c: &CallRow, want: &str) {
        use ProblemKind as K;
        let (id, rel) = (Some(c.id), Some(c.rel_path.as_str()));
        match self.file_of(c).and_then(|p| sha256_file(&p)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.r.problems.push(mismatch(
                K::FileMissing,
                id,
                rel,
                "recording file is missing",
                format!("{} bytes, sha256 {want}", c.bytes),
                "no file",
            )),
            Err(e) => self.r.problems.push(problem(
                K::FileUnreadable,
                id,
                rel,
                format!("cannot read: {e}"),
            )),
            Ok((got, bytes)) => {
                self.r.files_hashed += 1;
                self.r.bytes_hashed += bytes;
                if bytes != c.bytes as u64 {
                    self.r.problems.push(mismatch(
                        K::SizeMismatch,
                        id,
                        rel,
                        "size differs from the index",
                        format!("{} bytes", c.bytes),
                        format!("{bytes} bytes"),
                    ));
                }
                if got != want {
                    self.r.problems.push(mismatch(
                        K::HashMismatch,
                        id,
                        rel,
                        "content changed: SHA-256 differs from the index",
                        format!("sha256 {want}"),
                        format!("sha256 {got}"),
                    ));
                }
            }
        }
    }

    /// The call's latest ledger entry has the row's hash (`want`) and committed fields.
    fn check_ledger_entry(&mut self, c: &CallRow, want: &str) {
        use ProblemKind as K;
        let (id, rel) = (Some(c.id), Some(c.rel_path.as_str()));
        let Some(e) = self.latest_call_entry.get(&c.id) else {
            self.r.problems.push(problem(
                K::LedgerEntryMissing,
                id,
                rel,
                "finalized call has no ledger entry (the row was added or changed outside callrec, or predates the ledger)",
            ));
            return;
        };
        if e.file_sha256.as_deref() != Some(want) {
            self.r.problems.push(mismatch(
                K::LedgerMismatch,
                id,
                rel,
                format!("index sha256 differs from ledger entry {}", e.seq),
                format!("sha256 {}", e.file_sha256.as_deref().unwrap_or("none")),
                format!("sha256 {want}"),
            ));
        }
        for (field, was, is) in detail_diff(&e.detail, c) {
            self.r.problems.push(mismatch(
                K::LedgerMismatch,
                id,
                rel,
                format!(
                    "index row field {field} differs from ledger entry {}",
                    e.seq
                ),
                was,
                is,
            ));
        }
    }

    /// Rows are never deleted (a deletion keeps the row and adds a tombstone), so every call the
    /// ledger names must still have one.
    fn check_ledger_calls_have_rows(&mut self, row_ids: &HashSet<i64>) {
        let mut named: BTreeMap<i64, i64> = BTreeMap::new();
        for e in self
            .latest_call_entry
            .values()
            .chain(self.tombstones.values())
        {
            let seq = named.entry(e.call_id).or_insert(e.seq);
            *seq = (*seq).min(e.seq);
        }
        for (call_id, seq) in named {
            if !row_ids.contains(&call_id) {
                self.r.problems.push(problem(
                    ProblemKind::LedgerWithoutRow,
                    Some(call_id),
                    Some(&format!("ledger entry {seq}")),
                    "the ledger has this call but the index has no row for it (the row was deleted outside callrec)",
                ));
            }
        }
    }

    /// Every file under calls/ is a row's recording, the peaks beside a recording that is not
    /// deleted, or a `*.tmp` (counted); anything else is an orphan.
    fn check_files(&mut self, files: &[String], by_path: &HashMap<&str, &CallRow>) {
        for rel in files {
            if rel.ends_with(".tmp") {
                // Written and renamed atomically by callrec (peaks, imports): one being written
                // now, or left by a process that died. Not evidence of anything; `callrec check`
                // moves old ones aside.
                self.r.temporary_files += 1;
                self.r.temporary_paths.push(rel.clone());
                continue;
            }
            // Waveform peaks beside a recording are derived data and belong to its row.
            let (audio_rel, is_peaks) = match rel.strip_suffix(".dat") {
                Some(stem) => (format!("{stem}.opus"), true),
                None => (rel.clone(), false),
            };
            let owner = by_path.get(audio_rel.as_str());
            let orphan_of = match owner {
                // The row check above already reports a deleted call's audio (resurrected file).
                Some(c) if c.status == crate::store::CallStatus::Deleted && !is_peaks => continue,
                Some(c) if c.status == crate::store::CallStatus::Deleted => Some(c.id),
                Some(_) => continue,
                None => None,
            };
            // Re-check: a file removed after the listing (a deletion finishing) is not an orphan.
            if !self.storage_dir.join(rel).exists() {
                continue;
            }
            let what = if orphan_of.is_some() {
                "waveform peaks of a deleted call (orphan)"
            } else {
                "file in calls/ that no index row accounts for (orphan)"
            };
            self.r
                .problems
                .push(problem(ProblemKind::OrphanFile, orphan_of, Some(rel), what));
        }
    }
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;
    use crate::store::lifecycle::{self, Deletion, DeletionKind};
    use crate::store::testutil::{TempStore, TestCall};

    /// The temp dir (storage), its index, and (call id, file) of each call.
    type TestStore = (tempfile::TempDir, Connection, Vec<(i64, PathBuf)>);

    /// A store with `n` finalized calls whose "recordings" are small files.
    fn store_with_calls(n: usize) -> Result<TestStore, Box<dyn std::error::Error>> {
        let TempStore { dir, conn } = TempStore::new()?;
        let mut calls = Vec::new();
        for i in 0..n {
            let call = TestCall::new()
                .seat("s1")
                .agent("alice")
                .number("+4930123456")
                .duration_ms(1000)
                .file(vec![i as u8; 1000 + i])
                .finalized("complete")
                .insert_in(&conn, dir.path())?;
            calls.push((call.id, call.path));
        }
        Ok((dir, conn, calls))
    }

    fn deletion(reason: &str) -> Deletion<'_> {
        Deletion {
            kind: DeletionKind::Manual,
            reason,
            actor: "admin",
            now_utc: "2026-12-01T00:00:00.000Z",
        }
    }

    /// (kind, call id, line) of each problem, for exact comparisons.
    fn kinds(problems: &[Problem]) -> Vec<(ProblemKind, Option<i64>)> {
        problems.iter().map(|p| (p.kind, p.call_id)).collect()
    }

    #[test]
    fn store_problems_are_named() -> TestResult {
        let (dir, conn, calls) = store_with_calls(2)?;
        let ok = verify_store(&conn, dir.path())?;
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!((ok.calls, ok.files_hashed, ok.ledger_entries), (2, 2, 2));

        let (a, pa) = &calls[0];
        let (b, pb) = &calls[1];
        // The customer's number is not in the ledger (layout v2): erasing it is no mismatch.
        conn.execute("UPDATE calls SET remote_number = NULL WHERE id = ?1", [b])?;
        assert!(verify_store(&conn, dir.path())?.problems.is_empty());

        let mut data = std::fs::read(pa)?;
        data[10] ^= 1;
        std::fs::write(pa, &data)?;
        std::fs::remove_file(pb)?;
        let orphan = dir.path().join("calls/stray.opus");
        std::fs::write(&orphan, b"x")?;
        std::fs::write(pa.with_extension("dat"), b"peaks")?;
        std::fs::write(dir.path().join("calls/.import-0123.tmp"), b"half")?;
        conn.execute("UPDATE calls SET agent = 'mallory' WHERE id = ?1", [a])?;
        let r = verify_store(&conn, dir.path())?;
        let lines: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        let has = |id: i64, s: &str| {
            lines
                .iter()
                .any(|l| l.starts_with(&format!("call {id}: ")) && l.contains(s))
        };
        assert!(has(*a, "content changed"), "{lines:#?}");
        assert!(has(*a, "index row field agent differs from ledger entry 1 (expected \"alice\", found \"mallory\")"), "{lines:#?}");
        assert!(has(*b, "recording file is missing"), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("calls/stray.opus: ") && l.contains("orphan")),
            "{lines:#?}"
        );
        assert_eq!(r.temporary_files, 1);
        assert_eq!(r.temporary_paths, vec!["calls/.import-0123.tmp"]);
        assert_eq!(
            kinds(&r.problems),
            vec![
                (ProblemKind::HashMismatch, Some(*a)),
                (ProblemKind::LedgerMismatch, Some(*a)),
                (ProblemKind::FileMissing, Some(*b)),
                (ProblemKind::OrphanFile, None),
            ],
            "the .dat beside a known recording is not an orphan: {lines:#?}"
        );
        Ok(())
    }

    #[test]
    fn deleted_and_pending_calls_follow_their_tombstones() -> TestResult {
        let (dir, conn, calls) = store_with_calls(4)?;
        let [(gone, p_gone), (pending, p_pending), (back, p_back), (live, _)] = calls.as_slice()
        else {
            return Err("four calls".into());
        };
        std::fs::write(p_gone.with_extension("dat"), b"peaks")?;
        // Deleted properly: no file, a tombstone. Not a problem.
        lifecycle::delete_calls(&conn, dir.path(), &[*gone], &deletion("rule a"))?;
        // Marked only (a crash between the two steps): pending, not a mismatch.
        lifecycle::mark_garbage(&conn, &[*pending], &deletion("rule b"))?;
        let r = verify_store(&conn, dir.path())?;
        assert!(r.problems.is_empty(), "{:#?}", r.problems);
        assert_eq!((r.calls_deleted, r.calls_pending_deletion), (1, 1));
        assert_eq!(
            kinds(&r.pending_deletions),
            vec![(ProblemKind::PendingDeletion, Some(*pending))]
        );
        assert_eq!(
            r.pending_deletions[0].found.as_deref(),
            Some("the file is still there")
        );
        assert!(!p_gone.exists() && p_pending.exists());
        // Only the finalized calls are hashed.
        assert_eq!(r.files_hashed, 2);

        // A deleted recording comes back (restored from a backup), with its peaks.
        let kept = std::fs::read(p_back)?;
        lifecycle::delete_calls(&conn, dir.path(), &[*back], &deletion("rule c"))?;
        std::fs::write(p_back, &kept)?;
        std::fs::write(p_back.with_extension("dat"), b"peaks")?;
        // A deleted row whose tombstone is missing: status set by hand, bypassing lifecycle.
        crate::store::testutil::set_deleted_by_hand(&conn, *live, "deleted", "mallory")?;
        // And the properly deleted call "undeleted" by hand: the tombstone still says deleted.
        conn.execute(
            "UPDATE calls SET status = 'complete', deletion_id = NULL WHERE id = ?1",
            [gone],
        )?;
        let r = verify_store(&conn, dir.path())?;
        let lines: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            kinds(&r.problems),
            vec![
                (ProblemKind::FileMissing, Some(*gone)),
                (ProblemKind::LedgerMismatch, Some(*gone)),
                (ProblemKind::OrphanFile, Some(*back)),
                (ProblemKind::ResurrectedFile, Some(*back)),
                (ProblemKind::TombstoneMissing, Some(*live)),
                // Its file is still there, and the row says deleted.
                (ProblemKind::ResurrectedFile, Some(*live)),
            ],
            "{lines:#?}"
        );
        let rel_back = p_back.strip_prefix(dir.path())?.display().to_string();
        let resurrected = &r.problems[3];
        assert_eq!(resurrected.path.as_deref(), Some(rel_back.as_str()));
        assert!(
            resurrected.what.contains("the deleted recording itself"),
            "{resurrected:?}"
        );
        assert_eq!(
            resurrected.found.as_deref(),
            Some(
                format!(
                    "{} bytes, sha256 {}",
                    kept.len(),
                    crate::hash::sha256_hex(&kept)
                )
                .as_str()
            )
        );
        assert!(r.problems[2]
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with(".dat")));
        assert!(lines[1].contains("tombstone"), "{lines:#?}");
        Ok(())
    }
}
