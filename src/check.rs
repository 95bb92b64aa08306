//! `callrec check [--repair-...]`: consistency between the index, the files, the ledger, the
//! peaks and the audit log, with repairs that each need their own explicit flag.
//!
//! It sits above both `store` and `evidence` (it reuses the store scan of `evidence::verify`),
//! which is why it belongs to neither.
//!
//! The invariant (after Moonfire NVR's `check`), checked as written:
//! - the index passes `PRAGMA integrity_check` and `PRAGMA foreign_key_check`, and STORAGE-ID,
//!   the index and `storage.id` name the same storage;
//! - every finished call (`complete`, `interrupted`) with a hash has its file with the row's size
//!   and SHA-256, a ledger entry with that hash, and parseable waveform peaks beside it;
//! - every `deleted` call has no file and a ledger tombstone; a `garbage` call is a deletion in
//!   progress (a problem until finished);
//! - every file under `calls/` is a row's recording or the peaks of one that is not deleted
//!   (`*.tmp` files are writes in progress; one older than an hour is left over);
//! - a row is `recording` only while a recorder holds the storage lock;
//! - the ledger and audit hash chains verify.
//!
//! Without repair flags this only reads (a read-only connection; the storage lock is probed,
//! never held), so it runs alongside a recorder. Every repair holds the recorder's storage lock
//! for the whole run and is written to the audit log (actor `callrec check`).
//!
//! This module must never: change anything without the flag for that repair; delete a file
//! other than through [`lifecycle::finish_garbage`] (orphans are moved to `<storage>/orphans/`,
//! never deleted); "repair" a missing file, a size or hash mismatch or a disagreement between a
//! row and the ledger (that is evidence of tampering or corruption: it is only reported); put a
//! hash into the ledger, or derive peaks from audio, that does not match its row; repair while a
//! recorder holds the storage lock.

use crate::config::Config;
use crate::dsp::peaks;
use crate::evidence::verify::{self, mismatch, problem, Problem, ProblemKind, VerifyError};
use crate::hash::{sha256_file, sha256_hex};
use crate::store::ledger;
use crate::store::lifecycle::{self, LifecycleError};
use crate::store::recovery::{self, RecoveryError};
use crate::store::{audit, CallRow, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The audit log's actor for every repair.
pub const ACTOR: &str = "callrec check";

/// Where `--repair-orphans` moves files, under the storage dir (same filesystem: a rename).
pub const ORPHANS_DIR: &str = "orphans";

/// The recorder's lock file in the storage dir (`record::lock_storage` takes it exclusively for
/// the life of the recorder; the name must stay the same there and here).
pub const LOCK_FILE: &str = "recorder.lock";

/// A `*.tmp` file older than this is no write in progress (peaks take milliseconds, an import of
/// one file minutes): it was left by a process that died.
const STALE_TEMPORARY_AGE: Duration = Duration::from_secs(3600);

/// Peaks may cover a little more or less than the row's duration (the last partial pixel, the
/// codec's pre-skip, a recovered call's last page); more than this means they belong to another
/// file or were cut short.
const PEAKS_TOLERANCE_MS: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no index at {0}: nothing to check. Is storage.dir in the config right?")]
    NoIndex(String),
    #[error("a recorder is running on {dir} (it holds {lock}); repairs need it stopped (`systemctl stop callrec`). Nothing was changed. `callrec check` without repair flags runs alongside the recorder")]
    RecorderRunning { dir: String, lock: String },
    #[error(
        "{0}. Nothing was repaired: repairs on the wrong disk would move or delete the wrong files"
    )]
    Identity(String),
    #[error("the index is at schema version {found} and this callrec reads version {current}: start the recorder once (it upgrades the index), then check again")]
    OldSchema { found: i64, current: i64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl From<rusqlite::Error> for CheckError {
    fn from(e: rusqlite::Error) -> Self {
        CheckError::Store(StoreError::Sql(e))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckError + '_ {
    move |source| CheckError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One class of repair, each behind its own flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    Recording,
    Ledger,
    Garbage,
    Orphans,
    Peaks,
}

impl Repair {
    /// Every repair, in the order they run: recovery first (it finalizes calls, which then get
    /// ledger entries and peaks), peaks last (so recovered calls get theirs in the same run).
    pub const ALL: [Repair; 5] = [
        Repair::Recording,
        Repair::Ledger,
        Repair::Garbage,
        Repair::Orphans,
        Repair::Peaks,
    ];

    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Repair::Recording => "--repair-recording",
            Repair::Ledger => "--repair-ledger",
            Repair::Garbage => "--repair-garbage",
            Repair::Orphans => "--repair-orphans",
            Repair::Peaks => "--repair-peaks",
        }
    }

    /// The flag's help text.
    pub fn help(self) -> &'static str {
        match self {
            Repair::Recording => "Recover calls stuck in `recording` with no recorder running: trim each file to its last intact Ogg page and mark the call interrupted, as the recorder does at start",
            Repair::Ledger => "Add the missing ledger entry of each finished call whose file matches its row (calls finalized before the ledger existed)",
            Repair::Garbage => "Finish pending deletions: remove the files of calls marked garbage and mark them deleted",
            Repair::Orphans => "Move files under calls/ that no call accounts for (and left-over *.tmp files) to <storage>/orphans/; never deletes them",
            Repair::Peaks => "Rebuild missing or damaged waveform peaks (.dat) from recordings that match their hash",
        }
    }

    /// The repair for a kind of problem, or None: such problems are for a person to look at.
    pub fn for_kind(kind: ProblemKind) -> Option<Repair> {
        use ProblemKind as K;
        match kind {
            K::StuckRecording => Some(Repair::Recording),
            K::LedgerEntryMissing => Some(Repair::Ledger),
            K::PendingDeletion => Some(Repair::Garbage),
            K::OrphanFile | K::ResurrectedFile | K::StaleTemporaryFile => Some(Repair::Orphans),
            K::PeaksMissing | K::PeaksCorrupt => Some(Repair::Peaks),
            _ => None,
        }
    }
}

/// What to repair. All false (the default) checks only, read-only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckOptions {
    pub repair_recording: bool,
    pub repair_ledger: bool,
    pub repair_garbage: bool,
    pub repair_orphans: bool,
    pub repair_peaks: bool,
}

impl CheckOptions {
    /// `--repair`: every repair above (each is safe: none deletes evidence or hides tampering).
    pub fn repair_all() -> CheckOptions {
        CheckOptions {
            repair_recording: true,
            repair_ledger: true,
            repair_garbage: true,
            repair_orphans: true,
            repair_peaks: true,
        }
    }

    pub fn wants(&self, r: Repair) -> bool {
        match r {
            Repair::Recording => self.repair_recording,
            Repair::Ledger => self.repair_ledger,
            Repair::Garbage => self.repair_garbage,
            Repair::Orphans => self.repair_orphans,
            Repair::Peaks => self.repair_peaks,
        }
    }

    pub fn any_repair(&self) -> bool {
        Repair::ALL.iter().any(|r| self.wants(*r))
    }
}

/// One repair done (or attempted: `error` says why it was not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepairDone {
    pub repair: Repair,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
    /// Relative to the storage dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl fmt::Display for RepairDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => write!(f, "repaired ({}): ", self.repair.flag())?,
            Some(_) => write!(f, "NOT repaired ({}): ", self.repair.flag())?,
        }
        if let Some(id) = self.call_id {
            write!(f, "call {id}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.action)?;
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub storage_dir: String,
    /// A recorder held the storage lock during the check (rows in `recording` are then live).
    pub recorder_running: bool,
    pub calls: u64,
    pub calls_recording: u64,
    pub calls_pending_deletion: u64,
    pub calls_deleted: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub ledger_entries: u64,
    pub audit_rows: u64,
    pub peaks_checked: u64,
    pub temporary_files: u64,
    /// What the repair flags did, in order; empty without them.
    pub repairs: Vec<RepairDone>,
    /// What is wrong now (after the repairs, when there were any).
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Problems left: the command exits non-zero when this is not 0.
    pub fn problems(&self) -> usize {
        self.problems.len()
    }

    /// The flags that would fix some of the problems left, in the order they run.
    pub fn suggested_repairs(&self) -> Vec<Repair> {
        let set: BTreeSet<Repair> = self
            .problems
            .iter()
            .filter_map(|p| Repair::for_kind(p.kind))
            .collect();
        set.into_iter().collect()
    }
}

/// What to do about a problem no flag repairs.
fn advice(kind: ProblemKind) -> &'static str {
    use ProblemKind as K;
    match kind {
        K::DatabaseIntegrity | K::ForeignKey => {
            "not repairable here: copy the index aside and restore it from a backup"
        }
        K::StorageIdentity => "not repairable here: mount the right disk, or correct storage.id",
        K::FileUnreadable => "check the file's permissions and the disk",
        _ => "never repaired: possible tampering or corruption; keep the disk as it is and investigate",
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.repairs {
            writeln!(f, "{r}")?;
        }
        for p in &self.problems {
            let kind = serde_json::to_value(p.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            match Repair::for_kind(p.kind) {
                Some(r) => writeln!(f, "[{kind}] {p} (repair: {})", r.flag())?,
                None => writeln!(f, "[{kind}] {p} ({})", advice(p.kind))?,
            }
        }
        writeln!(
            f,
            "{}: {} call(s) ({} recording, {} pending deletion, {} deleted), {} file(s) hashed ({} bytes), {} peaks file(s) checked, {} ledger entries, {} audit rows{}",
            self.storage_dir,
            self.calls,
            self.calls_recording,
            self.calls_pending_deletion,
            self.calls_deleted,
            self.files_hashed,
            self.bytes_hashed,
            self.peaks_checked,
            self.ledger_entries,
            self.audit_rows,
            if self.recorder_running { "; a recorder is running" } else { "" }
        )?;
        if self.problems.is_empty() {
            return write!(f, "no problems");
        }
        let flags: Vec<&str> = self
            .suggested_repairs()
            .into_iter()
            .map(Repair::flag)
            .collect();
        let repairable = self
            .problems
            .iter()
            .filter(|p| Repair::for_kind(p.kind).is_some())
            .count();
        write!(
            f,
            "{} problem(s): {repairable} repairable{}, {} to investigate",
            self.problems.len(),
            if flags.is_empty() {
                String::new()
            } else {
                format!(" (stop the recorder, then {})", flags.join(" "))
            },
            self.problems.len() - repairable
        )
    }
}

// ------------------------------------------------------------------------------------------------
// The storage lock

/// True when a recorder holds the storage lock. Probes with a shared lock released at once, and
/// never creates the lock file, so a check writes nothing.
fn recorder_holds_lock(dir: &Path) -> Result<bool, CheckError> {
    use rustix::fs::{flock, FlockOperation};
    let path = dir.join(LOCK_FILE);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(&path)(e)),
    };
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        // Dropping `f` closes it, which releases the probe.
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(io_err(&path)(e.into())),
    }
}

/// Takes the recorder's lock exclusively (as the recorder does), without waiting: while it is
/// held no recorder can start, so nothing writes recordings under the repairs.
fn take_lock(dir: &Path) -> Result<std::fs::File, CheckError> {
    use rustix::fs::{flock, FlockOperation};
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(CheckError::RecorderRunning {
            dir: dir.display().to_string(),
            lock: path.display().to_string(),
        }),
        Err(e) => Err(io_err(&path)(e.into())),
    }
}

// ------------------------------------------------------------------------------------------------
// Checking

/// Checks the store and, with repair flags, repairs it; see the module documentation. The
/// report lists the problems left (after the repairs) and what each repair did.
pub fn run(cfg: &Config, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let dir = &cfg.storage.dir;
    let db = cfg.db_path();
    if !db.exists() {
        return Err(CheckError::NoIndex(db.display().to_string()));
    }
    if !opts.any_repair() {
        let conn = crate::store::open_ro(&db)?;
        // A read-only check cannot upgrade the index, and the scan needs the current columns.
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found < crate::store::schema_version() {
            return Err(CheckError::OldSchema {
                found,
                current: crate::store::schema_version(),
            });
        }
        return inspect(&conn, cfg, || recorder_holds_lock(dir));
    }
    crate::store::identity::precheck(dir, cfg.storage.id.as_deref())
        .map_err(|e| CheckError::Identity(e.to_string()))?;
    let _lock = take_lock(dir)?;
    let conn = crate::store::open_rw(&db)?;
    // We hold the lock: no recorder runs, so every `recording` row is stuck.
    let before = inspect(&conn, cfg, || Ok(false))?;
    if let Some(p) = before
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::StorageIdentity)
    {
        return Err(CheckError::Identity(p.to_string()));
    }
    let mut repairs = Vec::new();
    let mut recovered = Vec::new();
    if opts.repair_recording {
        recovered = repair_recording(&conn, dir, &before, &mut repairs)?;
    }
    if opts.repair_ledger {
        repair_ledger(&conn, &before, &mut repairs)?;
    }
    if opts.repair_garbage {
        repair_garbage(&conn, dir, &before, &mut repairs)?;
    }
    if opts.repair_orphans {
        repair_orphans(&conn, dir, &before, &mut repairs)?;
    }
    if opts.repair_peaks {
        repair_peaks(&conn, dir, &before, &recovered, &mut repairs)?;
    }
    let mut after = inspect(&conn, cfg, || Ok(false))?;
    after.repairs = repairs;
    Ok(after)
}

/// The whole check, reading only. `recorder_running` is asked after the rows are read (see
/// [`stuck_recordings`]).
fn inspect(
    conn: &Connection,
    cfg: &Config,
    recorder_running: impl FnOnce() -> Result<bool, CheckError>,
) -> Result<CheckReport, CheckError> {
    let dir = &cfg.storage.dir;
    let mut problems = identity_problems(conn, dir, cfg.storage.id.as_deref())?;
    problems.extend(database_problems(conn)?);
    let (store, rows) = verify::scan_store(conn, dir)?;
    let running = recorder_running()?;
    problems.extend(stuck_recordings(conn, &rows, running)?);
    let audit_report = audit::verify(conn)?;
    for b in &audit_report.breaks {
        problems.push(problem(
            ProblemKind::AuditChain,
            None,
            Some(&format!("audit row {}", b.id)),
            b.problem.clone(),
        ));
    }
    // Peaks only beside audio that is there: a missing file is its own problem.
    let no_audio: HashSet<i64> = store
        .problems
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                ProblemKind::FileMissing | ProblemKind::FileUnreadable
            )
        })
        .filter_map(|p| p.call_id)
        .collect();
    let mut peaks_checked = 0u64;
    for c in rows.iter().filter(|c| is_finished(c) && c.sha256.is_some()) {
        if no_audio.contains(&c.id) {
            continue;
        }
        peaks_checked += 1;
        problems.extend(peaks_problem(dir, c));
    }
    problems.extend(stale_temporaries(dir, &store.temporary_paths));
    problems.extend(store.problems);
    problems.extend(store.pending_deletions);
    problems.sort_by(|a, b| {
        (a.call_id.unwrap_or(i64::MAX), &a.path, a.kind).cmp(&(
            b.call_id.unwrap_or(i64::MAX),
            &b.path,
            b.kind,
        ))
    });
    Ok(CheckReport {
        storage_dir: dir.display().to_string(),
        recorder_running: running,
        calls: store.calls,
        calls_recording: store.calls_recording,
        calls_pending_deletion: store.calls_pending_deletion,
        calls_deleted: store.calls_deleted,
        files_hashed: store.files_hashed,
        bytes_hashed: store.bytes_hashed,
        ledger_entries: store.ledger_entries,
        audit_rows: audit_report.rows,
        peaks_checked,
        temporary_files: store.temporary_files,
        repairs: Vec::new(),
        problems,
    })
}

fn is_finished(c: &CallRow) -> bool {
    matches!(
        c.status,
        crate::store::CallStatus::Complete | crate::store::CallStatus::Interrupted
    )
}

/// The rel path of a call's peaks file.
fn peaks_rel(rel_path: &str) -> String {
    peaks::path_for(Path::new(rel_path))
        .to_string_lossy()
        .into_owned()
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`, one problem per line they print.
fn database_problems(conn: &Connection) -> Result<Vec<Problem>, CheckError> {
    let mut out = Vec::new();
    let lines: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for line in lines.into_iter().filter(|l| l != "ok") {
        out.push(problem(
            ProblemKind::DatabaseIntegrity,
            None,
            Some("callrec.db"),
            format!("integrity_check: {line}"),
        ));
    }
    let broken: Vec<(String, Option<i64>, String)> = conn
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (table, rowid, parent) in broken {
        let row = rowid.map_or_else(|| "a row".to_owned(), |id| format!("row {id}"));
        out.push(problem(
            ProblemKind::ForeignKey,
            None,
            Some("callrec.db"),
            format!("{row} of table {table} refers to a row of {parent} that does not exist"),
        ));
    }
    Ok(out)
}

/// STORAGE-ID, the index's `storage_id` and `storage.id` must agree (store::identity writes
/// them; this only reads).
fn identity_problems(
    conn: &Connection,
    dir: &Path,
    configured: Option<&str>,
) -> Result<Vec<Problem>, CheckError> {
    let file_path = dir.join(crate::store::identity::FILE);
    let name = Some(crate::store::identity::FILE);
    let mut out = Vec::new();
    let file = match std::fs::read_to_string(&file_path) {
        Ok(t) => Some(t.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&file_path)(e)),
    };
    let index: Option<String> = conn
        .query_row(
            "SELECT value FROM box_meta WHERE key = 'storage_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let k = ProblemKind::StorageIdentity;
    match (&file, &index) {
        (Some(f), Some(i)) if f != i => out.push(mismatch(
            k,
            None,
            name,
            "the index belongs to another storage than this disk",
            format!("storage {i} (index)"),
            format!("storage {f} (file)"),
        )),
        (None, Some(i)) => out.push(mismatch(
            k,
            None,
            name,
            "the identity file is missing",
            format!("storage {i} (index)"),
            "no file",
        )),
        _ => {}
    }
    if let Some(want) = configured {
        if file.as_deref() != Some(want) {
            out.push(mismatch(
                k,
                None,
                name,
                "this is not the storage the config names (storage.id): is the right disk mounted?",
                format!("storage {want}"),
                file.as_deref()
                    .map_or_else(|| "no identity file".to_owned(), |f| format!("storage {f}")),
            ));
        }
    }
    Ok(out)
}

/// Rows `recording` in the snapshot while no recorder runs. The lock is probed after the rows
/// were read and the statuses are read again after: a row still `recording` then was stuck when
/// the lock was free (a recorder that stopped in between would have finalized it, and one that
/// starts in between recovers it).
fn stuck_recordings(
    conn: &Connection,
    rows: &[CallRow],
    recorder_running: bool,
) -> Result<Vec<Problem>, CheckError> {
    let mut out = Vec::new();
    if recorder_running {
        return Ok(out);
    }
    let mut st = conn.prepare("SELECT status FROM calls WHERE id = ?1")?;
    for c in rows
        .iter()
        .filter(|c| c.status == crate::store::CallStatus::Recording)
    {
        let now: Option<String> = st.query_row([c.id], |r| r.get(0)).optional()?;
        if now.as_deref() == Some("recording") {
            out.push(mismatch(
                ProblemKind::StuckRecording,
                Some(c.id),
                Some(&c.rel_path),
                "status recording but no recorder is running (the recorder that wrote it died; the next start recovers it)",
                format!("a recorder holding {LOCK_FILE}"),
                format!("{} ms, {} bytes durable so far", c.duration_ms, c.bytes),
            ));
        }
    }
    Ok(out)
}

/// Checks the peaks beside a finished call's audio.
fn peaks_problem(dir: &Path, c: &CallRow) -> Option<Problem> {
    let rel = peaks_rel(&c.rel_path);
    let id = Some(c.id);
    let expected = "audiowaveform .dat v2, 8-bit, 2 channels";
    // Through the one path check: a row pointing outside the storage dir reads nothing there.
    let read = crate::store::call_file(dir, &rel)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the row's path leaves the storage dir",
            )
        })
        .and_then(std::fs::read);
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(mismatch(
                ProblemKind::PeaksMissing,
                id,
                Some(&rel),
                "waveform peaks are missing",
                expected,
                "no file",
            ))
        }
        Err(e) => {
            return Some(problem(
                ProblemKind::PeaksCorrupt,
                id,
                Some(&rel),
                format!("waveform peaks cannot be read: {e}"),
            ))
        }
    };
    let corrupt = |what: &str, found: String| {
        Some(mismatch(
            ProblemKind::PeaksCorrupt,
            id,
            Some(&rel),
            format!("waveform peaks are damaged: {what}"),
            expected,
            found,
        ))
    };
    let Some(p) = peaks::parse(&bytes) else {
        return corrupt(
            "the header is not v2 8-bit, or the length disagrees with the size",
            format!("{} bytes", bytes.len()),
        );
    };
    if p.channels != 2 || p.sample_rate <= 0 || p.samples_per_pixel <= 0 {
        return corrupt(
            "unexpected header",
            format!(
                "{} channel(s), {} Hz, {} samples per pixel",
                p.channels, p.sample_rate, p.samples_per_pixel
            ),
        );
    }
    let covered_ms =
        i64::from(p.length) * i64::from(p.samples_per_pixel) * 1000 / i64::from(p.sample_rate);
    if (covered_ms - c.duration_ms).abs() > PEAKS_TOLERANCE_MS {
        return Some(mismatch(
            ProblemKind::PeaksCorrupt,
            id,
            Some(&rel),
            "waveform peaks do not cover the call",
            format!("{} ms", c.duration_ms),
            format!("{covered_ms} ms"),
        ));
    }
    None
}

/// `*.tmp` files older than [`STALE_TEMPORARY_AGE`].
fn stale_temporaries(dir: &Path, temporary_paths: &[String]) -> Vec<Problem> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for rel in temporary_paths {
        let Ok(modified) = std::fs::metadata(dir.join(rel)).and_then(|m| m.modified()) else {
            continue; // renamed into place meanwhile: a write that finished
        };
        let age = now.duration_since(modified).unwrap_or_default();
        if age > STALE_TEMPORARY_AGE {
            out.push(mismatch(
                ProblemKind::StaleTemporaryFile,
                None,
                Some(rel),
                "left-over temporary file (a write that never finished)",
                format!("younger than {} s", STALE_TEMPORARY_AGE.as_secs()),
                format!("{} s old", age.as_secs()),
            ));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Repairs (the storage lock is held)

fn audit_repair(
    conn: &Connection,
    action: &str,
    call_id: Option<i64>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    audit::append(
        conn,
        &audit::Event {
            actor: ACTOR,
            action,
            call_id,
            detail,
            ip: None,
        },
    )
    .map(|_| ())
}

fn ids_of(before: &CheckReport, kinds: &[ProblemKind]) -> BTreeSet<i64> {
    before
        .problems
        .iter()
        .filter(|p| kinds.contains(&p.kind))
        .filter_map(|p| p.call_id)
        .collect()
}

/// Calls whose audio did not verify in the check (missing, unreadable, other size or hash):
/// nothing may be derived from it or certified about it.
fn unverified_audio(before: &CheckReport) -> BTreeSet<i64> {
    use ProblemKind as K;
    ids_of(
        before,
        &[
            K::FileMissing,
            K::FileUnreadable,
            K::SizeMismatch,
            K::HashMismatch,
        ],
    )
}

/// `--repair-recording`: start-up recovery for each stuck row. Returns the recovered call ids.
fn repair_recording(
    conn: &Connection,
    dir: &Path,
    before: &CheckReport,
    out: &mut Vec<RepairDone>,
) -> Result<Vec<i64>, CheckError> {
    let mut recovered = Vec::new();
    for id in ids_of(before, &[ProblemKind::StuckRecording]) {
        let row = crate::store::get_call_row(conn, id)?;
        let mut done = RepairDone {
            repair: Repair::Recording,
            call_id: Some(id),
            path: Some(row.rel_path.clone()),
            action: "recovered as interrupted".into(),
            error: None,
        };
        if row.status != crate::store::CallStatus::Recording {
            done.error = Some(format!("status is now {}; left alone", row.status));
            out.push(done);
            continue;
        }
        match recovery::recover_call(conn, dir, &row) {
            Ok(r) => {
                done.action = format!("recovered as interrupted: {}", r.note);
                audit_repair(
                    conn,
                    "check.recover",
                    Some(id),
                    serde_json::json!({
                        "duration_ms": r.duration_ms,
                        "bytes": r.bytes,
                        "trimmed_bytes": r.trimmed_bytes,
                        "note": r.note,
                    }),
                )?;
                recovered.push(id);
            }
            Err(RecoveryError::Store(e)) => return Err(e.into()),
            Err(e) => done.error = Some(e.to_string()),
        }
        out.push(done);
    }
    Ok(recovered)
}

/// `--repair-ledger`: the missing entry of each finished call whose file matched its row.
fn repair_ledger(
    conn: &Connection,
    before: &CheckReport,
    out: &mut Vec<RepairDone>,
) -> Result<(), CheckError> {
    let unverified = unverified_audio(before);
    for id in ids_of(before, &[ProblemKind::LedgerEntryMissing]) {
        let mut done = RepairDone {
            repair: Repair::Ledger,
            call_id: Some(id),
            path: None,
            action: "ledger entry added".into(),
            error: None,
        };
        if unverified.contains(&id) {
            done.error = Some("the file does not match its row: the ledger must not certify a hash the recording does not have".into());
            out.push(done);
            continue;
        }
        // One transaction with the write lock: the row read, the entry and its audit row.
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let row = crate::store::get_call_row(&tx, id)?;
        done.path = Some(row.rel_path.clone());
        if !is_finished(&row) {
            done.error = Some(format!("status is now {}; left alone", row.status));
            out.push(done);
            continue;
        }
        match ledger::append_call(&tx, row.id, row.sha256.as_deref(), &row.ledger_detail())? {
            Some(e) => {
                done.action = format!("ledger entry {} added", e.seq);
                audit_repair(
                    &tx,
                    "check.ledger",
                    Some(id),
                    serde_json::json!({
                        "seq": e.seq,
                        "file_sha256": e.file_sha256,
                        "entry_sha256": e.entry_sha256,
                    }),
                )?;
            }
            None => done.action = "already in the ledger".into(),
        }
        tx.commit()?;
        out.push(done);
    }
    Ok(())
}

/// `--repair-garbage`: the second step of each pending deletion.
fn repair_garbage(
    conn: &Connection,
    dir: &Path,
    before: &CheckReport,
    out: &mut Vec<RepairDone>,
) -> Result<(), CheckError> {
    let ids = ids_of(before, &[ProblemKind::PendingDeletion]);
    if ids.is_empty() {
        return Ok(());
    }
    let failed = match lifecycle::finish_garbage(conn, dir, &crate::clock::utc_now()) {
        Ok(_) => None,
        Err(LifecycleError::Store(e)) => return Err(e.into()),
        Err(e) => Some(e.to_string()),
    };
    for id in ids {
        let row = crate::store::get_call_row(conn, id)?;
        let mut done = RepairDone {
            repair: Repair::Garbage,
            call_id: Some(id),
            path: Some(row.rel_path.clone()),
            action: "deletion finished: file removed, status deleted".into(),
            error: None,
        };
        if row.status == crate::store::CallStatus::Deleted {
            audit_repair(
                conn,
                "check.garbage",
                Some(id),
                serde_json::json!({"rel_path": row.rel_path, "file_sha256": row.sha256}),
            )?;
        } else {
            done.error = Some(
                failed
                    .clone()
                    .unwrap_or_else(|| format!("status is {}", row.status)),
            );
        }
        out.push(done);
    }
    Ok(())
}

/// A free destination under `<storage>/orphans/`, keeping the file's path under the storage dir.
fn orphan_destination(dir: &Path, rel: &str) -> PathBuf {
    let base = dir.join(ORPHANS_DIR).join(rel);
    let mut dest = base.clone();
    let mut n = 1;
    while dest.symlink_metadata().is_ok() {
        let mut name = base.as_os_str().to_owned();
        name.push(format!(".{n}"));
        dest = PathBuf::from(name);
        n += 1;
    }
    dest
}

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all())
}

/// `--repair-orphans`: moves each orphan, resurrected or left-over temporary file aside.
fn repair_orphans(
    conn: &Connection,
    dir: &Path,
    before: &CheckReport,
    out: &mut Vec<RepairDone>,
) -> Result<(), CheckError> {
    use ProblemKind as K;
    let mut owner = conn.prepare("SELECT status FROM calls WHERE rel_path = ?1")?;
    let mut moved_from = HashSet::new();
    for p in before.problems.iter().filter(|p| {
        matches!(
            p.kind,
            K::OrphanFile | K::ResurrectedFile | K::StaleTemporaryFile
        )
    }) {
        let Some(rel) = p.path.as_deref() else {
            continue;
        };
        if !moved_from.insert(rel.to_owned()) {
            continue;
        }
        let mut done = RepairDone {
            repair: Repair::Orphans,
            call_id: p.call_id,
            path: Some(rel.to_owned()),
            action: String::new(),
            error: None,
        };
        // Ask the index again: an import may have claimed the path since the check.
        if p.kind != K::StaleTemporaryFile {
            let audio_rel = match rel.strip_suffix(".dat") {
                Some(stem) => format!("{stem}.opus"),
                None => rel.to_owned(),
            };
            let status: Option<String> = owner.query_row([&audio_rel], |r| r.get(0)).optional()?;
            if status.as_deref().is_some_and(|s| s != "deleted") {
                done.action = "left in place".into();
                done.error = Some(format!(
                    "a call with status {} now owns it",
                    status.unwrap_or_default()
                ));
                out.push(done);
                continue;
            }
        }
        let src = dir.join(rel);
        let dest = orphan_destination(dir, rel);
        let moved = (|| -> std::io::Result<(String, u64)> {
            let (sha, bytes) = sha256_file(&src)?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&src, &dest)?;
            // Both directory entries durable: the file is never in neither place after a crash.
            if let Some(parent) = dest.parent() {
                fsync_dir(parent)?;
            }
            if let Some(parent) = src.parent() {
                fsync_dir(parent)?;
            }
            Ok((sha, bytes))
        })();
        let to = dest
            .strip_prefix(dir)
            .unwrap_or(&dest)
            .to_string_lossy()
            .into_owned();
        match moved {
            Ok((sha, bytes)) => {
                done.action = format!("moved to {to}");
                audit_repair(
                    conn,
                    "check.orphan",
                    p.call_id,
                    serde_json::json!({
                        "from": rel,
                        "to": to,
                        "bytes": bytes,
                        "sha256": sha,
                        "kind": p.kind,
                    }),
                )?;
            }
            Err(e) => {
                done.action = format!("not moved to {to}");
                done.error = Some(e.to_string());
            }
        }
        out.push(done);
    }
    Ok(())
}

/// Rebuilds one call's peaks from its audio, which must match the row's hash.
fn rebuild_peaks(dir: &Path, row: &CallRow) -> Result<u32, String> {
    if !is_finished(row) {
        return Err(format!("status is {}", row.status));
    }
    let want = row.sha256.as_deref().ok_or("the call has no audio")?;
    // Peaks are written beside the audio: only ever under the storage dir.
    let audio = crate::store::call_file(dir, &row.rel_path)
        .ok_or("the row's path leaves the storage dir; nothing built")?;
    let data = std::fs::read(&audio).map_err(|e| e.to_string())?;
    let got = sha256_hex(&data);
    if got != want {
        return Err(format!(
            "the recording does not match its hash (expected sha256 {want}, found sha256 {got}); peaks are not built from unverified audio"
        ));
    }
    let rate_hz = u32::try_from(row.rate_hz).map_err(|_| format!("bad rate {}", row.rate_hz))?;
    let dat = peaks::from_opus(&data, rate_hz).map_err(|e| e.to_string())?;
    peaks::write(&peaks::path_for(&audio), &dat).map_err(|e| e.to_string())?;
    Ok(peaks::parse(&dat).map_or(0, |p| p.length))
}

/// `--repair-peaks`: peaks for each call found without good ones, and for calls recovered in
/// this run (recovery writes none).
fn repair_peaks(
    conn: &Connection,
    dir: &Path,
    before: &CheckReport,
    recovered: &[i64],
    out: &mut Vec<RepairDone>,
) -> Result<(), CheckError> {
    let unverified = unverified_audio(before);
    let mut ids = ids_of(
        before,
        &[ProblemKind::PeaksMissing, ProblemKind::PeaksCorrupt],
    );
    for id in recovered {
        let row = crate::store::get_call_row(conn, *id)?;
        if row.sha256.is_some() && peaks_problem(dir, &row).is_some() {
            ids.insert(*id);
        }
    }
    for id in ids {
        let row = crate::store::get_call_row(conn, id)?;
        let rel = peaks_rel(&row.rel_path);
        let mut done = RepairDone {
            repair: Repair::Peaks,
            call_id: Some(id),
            path: Some(rel.clone()),
            action: "waveform peaks rebuilt from the recording".into(),
            error: None,
        };
        let built = if unverified.contains(&id) {
            Err("the recording did not verify; peaks are not built from unverified audio".into())
        } else {
            rebuild_peaks(dir, &row)
        };
        match built {
            Ok(pixels) => audit_repair(
                conn,
                "check.peaks",
                Some(id),
                serde_json::json!({"path": rel, "pixels": pixels}),
            )?,
            Err(e) => done.error = Some(e),
        }
        out.push(done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    #[test]
    fn the_lock_probe_sees_a_holder_and_repairs_are_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        // No lock file: no recorder ever ran here, and probing creates none.
        assert!(!recorder_holds_lock(dir.path())?);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let held = take_lock(dir.path())?;
        assert!(recorder_holds_lock(dir.path())?);
        assert!(matches!(
            take_lock(dir.path()),
            Err(CheckError::RecorderRunning { .. })
        ));
        drop(held);
        assert!(!recorder_holds_lock(dir.path())?);
        Ok(())
    }

    #[test]
    fn identity_disagreements_are_named() -> TestResult {
        let dir = tempfile::tempdir()?;
        let conn = crate::store::open_rw(&dir.path().join("callrec.db"))?;
        let (id, _) = crate::store::identity::ensure(dir.path(), &conn, None)?;
        assert!(identity_problems(&conn, dir.path(), Some(&id))?.is_empty());
        let other = "0".repeat(32);
        let p = identity_problems(&conn, dir.path(), Some(&other))?;
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0].expected.as_deref(),
            Some(format!("storage {other}").as_str())
        );
        std::fs::write(
            dir.path().join(crate::store::identity::FILE),
            format!("{other}\n"),
        )?;
        let p = identity_problems(&conn, dir.path(), None)?;
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].kind, ProblemKind::StorageIdentity);
        assert_eq!(
            p[0].found.as_deref(),
            Some(format!("storage {other} (file)").as_str())
        );
        Ok(())
    }

    #[test]
    fn peaks_must_parse_and_cover_the_call() -> TestResult {
        use crate::store::testutil::{TempStore, TestCall};
        let TempStore { dir, conn } = TempStore::new()?;
        let call = TestCall::new().seat("s1").insert(&conn)?;
        let (id, rel) = (call.id, call.rel_path);
        let mut row = crate::store::get_call_row(&conn, id)?;
        row.duration_ms = 3000;
        let dat = dir.path().join(peaks_rel(&rel));
        std::fs::create_dir_all(dat.parent().ok_or("no parent")?)?;
        let kind = |row: &CallRow| peaks_problem(dir.path(), row).map(|p| p.kind);
        assert_eq!(kind(&row), Some(ProblemKind::PeaksMissing));
        let mut b = peaks::PeaksBuilder::new(16000);
        b.push_silence(16000 * 3);
        let good = b.finish();
        std::fs::write(&dat, &good)?;
        assert_eq!(kind(&row), None);
        row.duration_ms = 9000; // peaks of another, shorter file
        assert_eq!(kind(&row), Some(ProblemKind::PeaksCorrupt));
        row.duration_ms = 3000;
        std::fs::write(&dat, &good[..good.len() - 1])?;
        assert_eq!(kind(&row), Some(ProblemKind::PeaksCorrupt));
        Ok(())
    }
}
