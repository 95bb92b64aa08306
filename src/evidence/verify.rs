//! `callrec verify`: checks an evidence bundle, or the whole store (every recording against its
//! index row and its ledger entry, the ledger chain, and files nobody accounts for).
//!
//! Every mismatch becomes one [`Problem`] naming the call, the file, what was expected and what
//! was found; the caller exits non-zero when there is any. Files are hashed in chunks (see
//! [`super::sha256_file`]), one at a time.
//!
//! This module only reads: it must never repair, rewrite, rename or delete anything, in a bundle
//! or in the store (repairs belong to `callrec check --repair`, with explicit flags).

use super::bundle::{self, FileEntry};
use super::key;
use super::ledger::{self, CallDetail, Entry};
use super::sha256_file;
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

/// One thing that does not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
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

fn problem(call_id: Option<i64>, path: Option<&str>, what: impl Into<String>) -> Problem {
    Problem {
        call_id,
        path: path.map(str::to_owned),
        what: what.into(),
        expected: None,
        found: None,
    }
}

fn mismatch(
    call_id: Option<i64>,
    path: Option<&str>,
    what: impl Into<String>,
    expected: impl ToString,
    found: impl ToString,
) -> Problem {
    Problem {
        expected: Some(expected.to_string()),
        found: Some(found.to_string()),
        ..problem(call_id, path, what)
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
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| VerifyError::Io { path, source }
    };
    let manifest_path = dir.join(bundle::MANIFEST);
    let manifest_bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerifyError::NotABundle(dir.display().to_string()))
        }
        Err(e) => return Err(io(&manifest_path)(e)),
    };
    let mut r = BundleReport {
        dir: dir.display().to_string(),
        call_id: None,
        files_checked: 0,
        signature_valid: false,
        key_fingerprint_sha256: None,
        ledger_entries_checked: 0,
        problems: Vec::new(),
    };
    let mut hashes: HashMap<String, Option<(String, u64)>> = HashMap::new();
    let mut hash_of = |name: &str| -> Option<(String, u64)> {
        hashes
            .entry(name.to_owned())
            .or_insert_with(|| sha256_file(&dir.join(name)).ok())
            .clone()
    };

    // 1. The signature over the exact manifest bytes, with the bundle's own public key.
    let vk = match std::fs::read_to_string(dir.join(bundle::PUBLIC_KEY)) {
        Ok(pem) => match key::parse_public_pem(&pem) {
            Ok(vk) => Some(vk),
            Err(e) => {
                r.problems
                    .push(problem(None, Some(bundle::PUBLIC_KEY), e.to_string()));
                None
            }
        },
        Err(e) => {
            r.problems.push(problem(
                None,
                Some(bundle::PUBLIC_KEY),
                format!("cannot read the public key: {e}"),
            ));
            None
        }
    };
    if let Some(vk) = &vk {
        r.key_fingerprint_sha256 = key::fingerprint(vk).ok();
        match std::fs::read(dir.join(bundle::SIGNATURE)) {
            Ok(sig) if sig.len() != 64 => r.problems.push(mismatch(
                None,
                Some(bundle::SIGNATURE),
                "not an Ed25519 signature",
                "64 bytes",
                format!("{} bytes", sig.len()),
            )),
            Ok(sig) => {
                r.signature_valid = key::verify_signature(vk, &manifest_bytes, &sig);
                if !r.signature_valid {
                    r.problems.push(problem(
                        None,
                        Some(bundle::MANIFEST),
                        "the signature in manifest.sig does not match manifest.json with box.pub: the manifest or the signature was changed, or box.pub is not the key that signed it",
                    ));
                }
            }
            Err(e) => r.problems.push(problem(
                None,
                Some(bundle::SIGNATURE),
                format!("cannot read the signature: {e}"),
            )),
        }
    }

    // 2. SHA256SUMS, as `sha256sum -c` reads it.
    let mut in_sums: HashSet<String> = HashSet::new();
    match std::fs::read_to_string(dir.join(bundle::SUMS)) {
        Ok(text) => {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                let parsed = line
                    .split_once("  ")
                    .or_else(|| line.split_once(" *"))
                    .filter(|(h, n)| super::is_sha256_hex(h) && plain_name(n));
                let Some((want, name)) = parsed else {
                    r.problems.push(problem(
                        None,
                        Some(bundle::SUMS),
                        format!("line {} is not `<sha256>  <file name>`: {line:?}", i + 1),
                    ));
                    continue;
                };
                in_sums.insert(name.to_owned());
                match hash_of(name) {
                    None => r.problems.push(problem(
                        None,
                        Some(name),
                        "listed in SHA256SUMS but missing",
                    )),
                    Some((got, _)) if got != want => r.problems.push(mismatch(
                        None,
                        Some(name),
                        "content changed (SHA256SUMS)",
                        format!("sha256 {want}"),
                        format!("sha256 {got}"),
                    )),
                    Some(_) => {}
                }
            }
        }
        Err(e) => r.problems.push(problem(
            None,
            Some(bundle::SUMS),
            format!("cannot read SHA256SUMS: {e}"),
        )),
    }

    // 3. The manifest's own file list, sizes and hashes, and its ledger entries.
    let manifest: Option<ManifestView> = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            r.problems.push(problem(
                None,
                Some(bundle::MANIFEST),
                format!("not a callrec manifest ({e}); it was changed or is from another tool"),
            ));
            None
        }
    };
    let mut listed: HashSet<String> = HashSet::new();
    if let Some(m) = &manifest {
        let id = Some(m.call_id);
        r.call_id = id;
        if m.format != bundle::FORMAT {
            r.problems.push(mismatch(
                id,
                Some(bundle::MANIFEST),
                "unknown bundle format",
                bundle::FORMAT,
                &m.format,
            ));
        }
        if let Some(fp) = &r.key_fingerprint_sha256 {
            if *fp != m.signing_key.fingerprint_sha256 {
                r.problems.push(mismatch(
                    id,
                    Some(bundle::PUBLIC_KEY),
                    "box.pub is not the key the manifest names",
                    format!("fingerprint {}", m.signing_key.fingerprint_sha256),
                    format!("fingerprint {fp}"),
                ));
            }
        }
        for f in &m.files {
            if !plain_name(&f.name) {
                r.problems.push(problem(
                    id,
                    Some(&f.name),
                    "the manifest names a file outside the bundle folder",
                ));
                continue;
            }
            listed.insert(f.name.clone());
            r.files_checked += 1;
            match hash_of(&f.name) {
                None => r.problems.push(problem(
                    id,
                    Some(&f.name),
                    "listed in manifest.json but missing",
                )),
                Some((sha, bytes)) => {
                    if bytes != f.bytes {
                        r.problems.push(mismatch(
                            id,
                            Some(&f.name),
                            "size differs from manifest.json",
                            format!("{} bytes", f.bytes),
                            format!("{bytes} bytes"),
                        ));
                    }
                    if sha != f.sha256 {
                        r.problems.push(mismatch(
                            id,
                            Some(&f.name),
                            "content changed (manifest.json)",
                            format!("sha256 {}", f.sha256),
                            format!("sha256 {sha}"),
                        ));
                    }
                }
            }
        }
        let originals: Vec<&FileEntry> = m
            .files
            .iter()
            .filter(|f| f.kind == "original-recording" && !f.derived)
            .collect();
        let original_sha = match originals.as_slice() {
            [one] => Some(one.sha256.as_str()),
            _ => {
                r.problems.push(problem(
                    id,
                    Some(bundle::MANIFEST),
                    format!(
                        "the manifest lists {} original recordings; a bundle has exactly one",
                        originals.len()
                    ),
                ));
                None
            }
        };
        if let Some(orig) = original_sha {
            if m.call.sha256.as_deref() != Some(orig) {
                r.problems.push(mismatch(
                    id,
                    Some(bundle::MANIFEST),
                    "the call's SHA-256 in the manifest is not the original recording's",
                    orig,
                    m.call.sha256.as_deref().unwrap_or("none"),
                ));
            }
        }
        let mut has_call_entry = false;
        for e in &m.ledger.entries {
            r.ledger_entries_checked += 1;
            let at = format!("ledger entry {}", e.seq);
            for p in ledger::check_entry(e) {
                r.problems.push(problem(id, Some(&at), p));
            }
            if e.call_id != m.call_id {
                r.problems.push(mismatch(
                    id,
                    Some(&at),
                    "entry is about another call",
                    m.call_id,
                    e.call_id,
                ));
            }
            if e.kind == "call" {
                has_call_entry = true;
                if let (Some(orig), Some(f)) = (original_sha, e.file_sha256.as_deref()) {
                    if orig != f {
                        r.problems.push(mismatch(
                            id,
                            Some(&at),
                            "the ledger recorded a different file than the bundle's original",
                            format!("file_sha256 {f}"),
                            format!("sha256 {orig}"),
                        ));
                    }
                }
            }
        }
        if !has_call_entry {
            r.problems.push(problem(
                id,
                Some(bundle::MANIFEST),
                "no ledger entry for the call: the box did not record this file's hash when the call ended",
            ));
        }
    }

    // 4. Nothing in the folder that neither list accounts for.
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for de in entries {
        let de = de.map_err(io(dir))?;
        let name = de.file_name().to_string_lossy().into_owned();
        let fixed = [bundle::MANIFEST, bundle::SIGNATURE, bundle::SUMS];
        if manifest.is_some() && !listed.contains(&name) && !fixed.contains(&name.as_str()) {
            r.problems.push(problem(
                r.call_id,
                Some(&name),
                "a file the manifest does not list",
            ));
        } else if name != bundle::SUMS && !in_sums.contains(&name) && manifest.is_some() {
            r.problems.push(problem(
                r.call_id,
                Some(&name),
                "a file SHA256SUMS does not cover",
            ));
        }
    }
    r.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(r)
}

// ------------------------------------------------------------------------------------------------
// The whole store

#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub calls: u64,
    /// Calls still recording: their files are growing, so they are not hashed.
    pub calls_recording: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub ledger_entries: u64,
    pub ledger_head: Option<ledger::Head>,
    pub files_in_calls_dir: u64,
    /// `*.tmp` files under calls/ (atomic writes in progress or left by a crash): counted only.
    pub temporary_files: u64,
    pub problems: Vec<Problem>,
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
    let now = CallDetail::of(row).canonical_json();
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

/// Checks the whole store. Files under `calls/` are listed first and the index is read after,
/// in one snapshot, so a call that starts meanwhile never shows up as an orphan file.
pub fn verify_store(conn: &Connection, storage_dir: &Path) -> Result<StoreReport, VerifyError> {
    let files = walk_calls(storage_dir)?;
    let (rows, latest_call_entry, chain) = {
        // One read transaction: rows and ledger from the same moment.
        let tx = conn.unchecked_transaction()?;
        let rows: Vec<CallRow> = tx
            .prepare(&format!(
                "SELECT {} FROM calls ORDER BY id",
                store::CALL_COLUMNS
            ))?
            .query_map([], store::row_to_call)?
            .collect::<Result<_, _>>()?;
        let mut latest: HashMap<i64, Entry> = HashMap::new();
        let mut tombstoned: HashSet<i64> = HashSet::new();
        let chain = ledger::scan_chain(&tx, |e| {
            if e.kind == "call" {
                latest.insert(e.call_id, e.clone());
            } else {
                tombstoned.insert(e.call_id);
            }
        })?;
        tx.finish()?;
        for id in tombstoned {
            latest.remove(&id);
        }
        (rows, latest, chain)
    };
    let mut r = StoreReport {
        calls: rows.len() as u64,
        calls_recording: 0,
        files_hashed: 0,
        bytes_hashed: 0,
        ledger_entries: chain.entries,
        ledger_head: chain.head.clone(),
        files_in_calls_dir: files.len() as u64,
        temporary_files: 0,
        problems: Vec::new(),
    };
    for p in chain.problems {
        r.problems.push(problem(
            None,
            Some(&format!("ledger entry {}", p.seq)),
            p.problem,
        ));
    }

    let mut known: HashSet<&str> = HashSet::with_capacity(rows.len());
    let mut row_ids: HashSet<i64> = HashSet::with_capacity(rows.len());
    for c in &rows {
        known.insert(c.rel_path.as_str());
        row_ids.insert(c.id);
        let id = Some(c.id);
        let rel = Some(c.rel_path.as_str());
        if c.status == "recording" {
            r.calls_recording += 1;
            continue;
        }
        let Some(want) = c.sha256.as_deref() else {
            // Finalized without audio reaching the disk: nothing to hash, no ledger entry.
            continue;
        };
        let path = storage_dir.join(&c.rel_path);
        match sha256_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.problems.push(mismatch(
                id,
                rel,
                "recording file is missing",
                format!("{} bytes, sha256 {want}", c.bytes),
                "no file",
            )),
            Err(e) => r
                .problems
                .push(problem(id, rel, format!("cannot read: {e}"))),
            Ok((got, bytes)) => {
                r.files_hashed += 1;
                r.bytes_hashed += bytes;
                if bytes != c.bytes as u64 {
                    r.problems.push(mismatch(
                        id,
                        rel,
                        "size differs from the index",
                        format!("{} bytes", c.bytes),
                        format!("{bytes} bytes"),
                    ));
                }
                if got != want {
                    r.problems.push(mismatch(
                        id,
                        rel,
                        "content changed: SHA-256 differs from the index",
                        format!("sha256 {want}"),
                        format!("sha256 {got}"),
                    ));
                }
            }
        }
        match latest_call_entry.get(&c.id) {
            None => r.problems.push(problem(
                id,
                rel,
                "finalized call has no ledger entry (the row was added or changed outside callrec, or predates the ledger)",
            )),
            Some(e) => {
                if e.file_sha256.as_deref() != Some(want) {
                    r.problems.push(mismatch(
                        id,
                        rel,
                        format!("index sha256 differs from ledger entry {}", e.seq),
                        format!("sha256 {}", e.file_sha256.as_deref().unwrap_or("none")),
                        format!("sha256 {want}"),
                    ));
                }
                for (field, was, is) in detail_diff(&e.detail, c) {
                    r.problems.push(mismatch(
                        id,
                        rel,
                        format!("index row field {field} differs from ledger entry {}", e.seq),
                        was,
                        is,
                    ));
                }
            }
        }
    }
    for (call_id, e) in &latest_call_entry {
        if !row_ids.contains(call_id) {
            r.problems.push(problem(
                Some(*call_id),
                Some(&format!("ledger entry {}", e.seq)),
                "the ledger has this call but the index has no row and the ledger no tombstone (the row was deleted outside callrec)",
            ));
        }
    }

    for rel in &files {
        let is_known = if let Some(stem) = rel.strip_suffix(".opus") {
            known.contains(format!("{stem}.opus").as_str())
        } else if rel.ends_with(".tmp") {
            // Written and renamed atomically by callrec (peaks, imports): one being written now,
            // or left by a process that died. Not evidence of anything; `callrec check` cleans up.
            r.temporary_files += 1;
            continue;
        } else if let Some(stem) = rel.strip_suffix(".dat") {
            // Waveform peaks beside a recording are derived data.
            known.contains(format!("{stem}.opus").as_str())
        } else {
            false
        };
        // Re-check: a call deleted (with its row) after the listing is not an orphan.
        if !is_known && storage_dir.join(rel).exists() {
            r.problems.push(problem(
                None,
                Some(rel),
                "file in calls/ that no index row accounts for (orphan)",
            ));
        }
    }
    r.problems.sort_by(|a, b| {
        (a.call_id.unwrap_or(i64::MAX), &a.path).cmp(&(b.call_id.unwrap_or(i64::MAX), &b.path))
    });
    Ok(r)
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;
    use crate::store::{CallMeta, Finalized, NewCall};

    /// The temp dir (storage), its index, and (call id, file) of each call.
    type TestStore = (tempfile::TempDir, Connection, Vec<(i64, PathBuf)>);

    /// A store with two finalized calls whose "recordings" are small files.
    fn store_with_calls() -> Result<TestStore, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let conn = store::open_rw(&dir.path().join("callrec.db"))?;
        let mut calls = Vec::new();
        for i in 0..2 {
            let (id, rel) = store::insert_call(
                &conn,
                &NewCall {
                    box_id: "b".into(),
                    seat_id: "s1".into(),
                    mode: "control".into(),
                    started_at_utc: "2026-11-27T10:00:00.000Z".into(),
                    started_mono_ms: 0,
                    rate_hz: 16000,
                    bitrate_bps: 16000,
                    meta: CallMeta {
                        agent: Some("alice".into()),
                        ..Default::default()
                    },
                },
            )?;
            let path = dir.path().join(&rel);
            std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
            let data = vec![i as u8; 1000 + i];
            std::fs::write(&path, &data)?;
            store::finalize_call(
                &conn,
                &Finalized {
                    call_id: id,
                    status: "complete",
                    ended_at_utc: "2026-11-27T10:00:01.000Z",
                    duration_ms: 1000,
                    bytes: data.len() as u64,
                    sha256: Some(&super::super::sha256_hex(&data)),
                    dropped_frames: 0,
                    end_reason: "stop",
                    note: None,
                },
            )?;
            calls.push((id, path));
        }
        Ok((dir, conn, calls))
    }

    #[test]
    fn store_problems_are_named() -> TestResult {
        let (dir, conn, calls) = store_with_calls()?;
        let ok = verify_store(&conn, dir.path())?;
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!((ok.calls, ok.files_hashed, ok.ledger_entries), (2, 2, 2));

        let (a, pa) = &calls[0];
        let (b, pb) = &calls[1];
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
        assert_eq!(
            lines.len(),
            4,
            "the .dat beside a known recording is not an orphan: {lines:#?}"
        );
        Ok(())
    }
}
