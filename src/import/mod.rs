//! `callrec import PATH...`: legacy recordings into the box's own format and index.
//!
//! For each source file (directories are walked recursively; there only files with an audio
//! extension are taken, the rest are listed as ignored):
//! 1. SHA-256 of the source bytes. If the `imports` table already maps that hash to a complete
//!    call, the file is skipped ("already imported as call N"); the same content twice in one
//!    batch is imported once. This is what makes re-running an import safe.
//! 2. Metadata from the CSV sidecar (`sidecar`), if a row names the file; the start time comes
//!    from the sidecar, else from the file's modification time (reported as such: legacy files
//!    copied without preserving times get the copy time, so pass a sidecar when it matters).
//! 3. Decode (`decode`: symphonia; Ogg Opus through callrec's own reader and libopus), resample to
//!    the box's encoder rate, encode with the box's encoder settings into the box format
//!    (`transcode`, `opus_out`), into a temporary file beside its final place; fsync it.
//! 4. Under the index lock: insert the call row, rename the file to `calls/YYYY/MM/DD/<id>.opus`
//!    (the recorder's layout), fsync the directory, record the `imports` row, then finalize the
//!    call (`complete`, duration from the samples, size, SHA-256, and its evidence-ledger entry in
//!    the same transaction), and tag it `imported` + `source:<container>/<codec>`. A crash before
//!    the row leaves only a temporary file (`.import-*.tmp`, overwritten by the next attempt); a
//!    crash between the row and its finalization leaves a `recording` row that start-up recovery
//!    seals as `interrupted`, and the `imports` row (if written) is then not counted as done, so
//!    the next run imports the file again.
//!
//! Decisions written down:
//! - **Mono sources** (the common legacy case: one mix of both parties) are stored in *both*
//!   channels, tagged `mono-mix`. Putting the mix in the agent channel only would leave a silent
//!   customer channel that looks like evidence the customer never spoke, and a reviewer soloing
//!   the customer would hear nothing; in both channels every player plays it naturally and
//!   neither party's words are missing from either channel. The two streams carry the same packet
//!   (encoded once). Talk metrics (talk ratio, overtalk) are not computed for a mono mix.
//! - **Stereo sources**: channel `agent_channel` (default 0) is the agent, the other the customer.
//!   More than two channels is refused (the file is reported, the batch goes on).
//! - **`mode`**: the calls table only allows `control`, `vox`, `continuous`; an imported call is a
//!   whole, explicitly delimited call, so it is stored as `control`, on seat `import` (or the seat
//!   the request names), with `end_reason = imported` and the tags above marking it as an import.
//!   `started_mono_ms` is 0: there is no monotonic clock reading for a call made elsewhere.
//! - **Damaged sources**: a file that ends early (a WAV whose header promises more data, a torn
//!   MP3 frame, an Ogg file without its last pages) is imported with the audio that is there —
//!   the same rule as crash recovery — and reported as imported *with a warning*; the call gets
//!   the tag `source-damaged` and the warning in its note. A file with no decodable audio, or in
//!   no supported format, is reported as failed with the reason and skipped.
//! - **Parallelism**: `jobs` worker threads (default: one per core) take whole files from a
//!   shared counter (`std::thread::scope`; files are coarse units, so rayon's work stealing would
//!   add a dependency and a global pool for nothing). Within a stereo file the two parties are
//!   encoded on two threads, so even a single long file uses two cores.
//!
//! Like the recorder, an import checks the storage identity first (`store::identity`): it never
//! creates a store on an unmounted disk nor writes into one whose identity does not match.
//!
//! This module never modifies a source file, never deletes or rewrites an existing call, and never
//! lets one bad file stop the batch: every per-file problem becomes a line in the summary.

pub mod decode;
pub mod opus_out;
pub mod sidecar;
pub mod transcode;

use crate::clock::{format_utc, utc_now, utc_plus_ms};
use crate::codec::ogg_write::tags_for;
use crate::config::{Config, EncoderConfig, OPUS_RATES_HZ};
use crate::hash::sha256_file;
use crate::store::{self, audit, CallMeta, Finalized, NewCall, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sidecar::{ColumnMap, Lookup, Sidecar, SidecarError};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// File extensions taken when walking a directory (case-insensitive). Files named explicitly are
/// always tried, whatever their name: the decoder goes by content.
pub const AUDIO_EXTENSIONS: [&str; 7] = ["wav", "wave", "mp3", "flac", "ogg", "oga", "opus"];

/// Seat id of imported calls unless the request names one.
pub const DEFAULT_SEAT: &str = "import";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("import: {0}")]
    Invalid(String),
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] store::identity::IdentityError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// Files and directories (walked recursively).
    pub paths: Vec<PathBuf>,
    /// CSV with one row per recording.
    pub sidecar: Option<PathBuf>,
    pub columns: ColumnMap,
    /// strptime-style layout of the sidecar's start times (chrono syntax); None: RFC 3339 or
    /// `%Y-%m-%d %H:%M:%S` UTC.
    pub time_format: Option<String>,
    /// In a stereo source, which channel (0 or 1) is the agent; the other is the customer.
    pub agent_channel: u8,
    /// Worker threads; 0 = one per core.
    pub jobs: usize,
    /// Decode and check everything, write nothing (no files, no rows, no audit).
    pub dry_run: bool,
    /// Who runs the import (audit actor and `imports.imported_by`).
    pub actor: String,
    /// Seat id for the imported calls (default `import`).
    pub seat_id: String,
}

impl Default for ImportRequest {
    fn default() -> Self {
        ImportRequest {
            paths: Vec::new(),
            sidecar: None,
            columns: ColumnMap::default(),
            time_format: None,
            agent_channel: 0,
            jobs: 0,
            dry_run: false,
            actor: "cli".into(),
            seat_id: DEFAULT_SEAT.into(),
        }
    }
}

/// Where an imported call's start time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartSource {
    Sidecar,
    Mtime,
}

/// The result for one source file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Imported {
        /// None in a dry run.
        call_id: Option<i64>,
        source_format: String,
        source_sha256: String,
        duration_ms: u64,
        started_at_utc: String,
        started_from: StartSource,
        /// Sidecar line that described the file.
        sidecar_line: Option<u64>,
        /// Damage found in the source (imported anyway, see the module doc).
        warnings: Vec<String>,
    },
    Skipped {
        reason: String,
        /// The call that already holds this source.
        call_id: Option<i64>,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    pub path: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The whole batch: printable (`Display`) and serialisable (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub dry_run: bool,
    pub imported: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Audio imported (or, in a dry run, that would be), in seconds.
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    /// One line per source file, in the order given (directories sorted by path).
    pub files: Vec<FileReport>,
    /// Files found in directories without an audio extension (not tried).
    pub ignored: Vec<String>,
    /// Sidecar lines that matched no imported, skipped or failed file.
    pub sidecar_unmatched_lines: Vec<u64>,
}

impl ImportSummary {
    /// True when at least one file failed (the CLI exits non-zero then).
    pub fn has_failures(&self) -> bool {
        self.failed > 0
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.files {
            match &r.outcome {
                Outcome::Imported {
                    call_id,
                    source_format,
                    duration_ms,
                    started_at_utc,
                    started_from,
                    warnings,
                    ..
                } => {
                    let what = match call_id {
                        Some(id) => format!("imported as call {id}"),
                        None => "would import".into(),
                    };
                    let from = match started_from {
                        StartSource::Sidecar => "sidecar",
                        StartSource::Mtime => "file mtime",
                    };
                    writeln!(
                        f,
                        "{}: {what} ({source_format}, {:.1} s, start {started_at_utc} from {from})",
                        r.path,
                        *duration_ms as f64 / 1000.0
                    )?;
                    for w in warnings {
                        writeln!(f, "  warning: {w}")?;
                    }
                }
                Outcome::Skipped { reason, .. } => writeln!(f, "{}: skipped: {reason}", r.path)?,
                Outcome::Failed { reason } => writeln!(f, "{}: failed: {reason}", r.path)?,
            }
        }
        if !self.ignored.is_empty() {
            writeln!(
                f,
                "{} file(s) without an audio extension ignored (name them explicitly to try them)",
                self.ignored.len()
            )?;
        }
        if !self.sidecar_unmatched_lines.is_empty() {
            let lines: Vec<String> = self
                .sidecar_unmatched_lines
                .iter()
                .map(u64::to_string)
                .collect();
            writeln!(
                f,
                "sidecar lines naming no file of this batch: {}",
                lines.join(", ")
            )?;
        }
        writeln!(
            f,
            "{}{} imported, {} skipped, {} failed; {:.1} s of audio in {:.1} s",
            if self.dry_run { "dry run: " } else { "" },
            self.imported,
            self.skipped,
            self.failed,
            self.audio_seconds,
            self.wall_seconds
        )
    }
}

/// Everything the workers share.
struct Ctx<'a> {
    cfg: &'a Config,
    req: &'a ImportRequest,
    sidecar: Option<Sidecar>,
    db: Option<Mutex<Connection>>,
    /// Source hashes taken by a worker in this batch → the path that took it.
    claimed: Mutex<HashMap<String, String>>,
    /// Sidecar lines used.
    used_lines: Mutex<HashSet<u64>>,
    progress: Option<ProgressBar>,
    now_utc: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Imports `req.paths` into the store of `cfg`. `progress`: draw a progress bar on stderr (only
/// when stderr is a terminal). Per-file problems are in the summary; an `Err` means the batch
/// could not start (bad request, unreadable sidecar, index unavailable).
pub fn run(
    cfg: &Config,
    req: &ImportRequest,
    progress: bool,
) -> Result<ImportSummary, ImportError> {
    let t0 = Instant::now();
    if req.agent_channel > 1 {
        return Err(ImportError::Invalid(format!(
            "--agent-channel {} is not 0 or 1",
            req.agent_channel
        )));
    }
    if !OPUS_RATES_HZ.contains(&cfg.encoder.rate_hz) {
        return Err(ImportError::Invalid(format!(
            "encoder.rate_hz {} is not an Opus rate {OPUS_RATES_HZ:?}",
            cfg.encoder.rate_hz
        )));
    }
    if req.seat_id.trim().is_empty() {
        return Err(ImportError::Invalid("the seat id is empty".into()));
    }
    let sidecar = match &req.sidecar {
        Some(p) => Some(Sidecar::load(p, &req.columns, req.time_format.as_deref())?),
        None => None,
    };
    let (sources, ignored, mut missing) = collect(&req.paths, req.sidecar.as_deref());
    let db = open_db(cfg, req.dry_run)?;
    let total_bytes: u64 = sources.iter().map(|s| s.size).sum();
    let progress = (progress && std::io::stderr().is_terminal() && !sources.is_empty())
        .then(|| make_bar(total_bytes));
    let ctx = Ctx {
        cfg,
        req,
        sidecar,
        db: db.map(Mutex::new),
        claimed: Mutex::new(HashMap::new()),
        used_lines: Mutex::new(HashSet::new()),
        progress,
        now_utc: utc_now(),
    };
    let jobs = if req.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        req.jobs
    }
    .clamp(1, sources.len().max(1));
    let results: Vec<Mutex<Option<FileReport>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(src) = sources.get(i) else { break };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    process_one(&ctx, src)
                }))
                .unwrap_or_else(|panic| {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Outcome::Failed {
                        reason: format!("the decoder crashed on this file: {msg}"),
                    }
                });
                if let Some(pb) = &ctx.progress {
                    pb.set_message(src.display.clone());
                }
                *lock(&results[i]) = Some(FileReport {
                    path: src.display.clone(),
                    outcome,
                });
            });
        }
    });
    if let Some(pb) = &ctx.progress {
        pb.finish_and_clear();
    }
    let mut files: Vec<FileReport> = results
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    files.append(&mut missing);
    let mut summary = ImportSummary {
        dry_run: req.dry_run,
        imported: 0,
        skipped: 0,
        failed: 0,
        audio_seconds: 0.0,
        wall_seconds: 0.0,
        files,
        ignored,
        sidecar_unmatched_lines: Vec::new(),
    };
    let mut audio_ms = 0u64;
    for r in &summary.files {
        match &r.outcome {
            Outcome::Imported { duration_ms, .. } => {
                summary.imported += 1;
                audio_ms += duration_ms;
            }
            Outcome::Skipped { .. } => summary.skipped += 1,
            Outcome::Failed { .. } => summary.failed += 1,
        }
    }
    summary.audio_seconds = audio_ms as f64 / 1000.0;
    if let Some(sc) = &ctx.sidecar {
        let used = lock(&ctx.used_lines);
        summary.sidecar_unmatched_lines = sc
            .rows
            .iter()
            .map(|r| r.line)
            .filter(|l| !used.contains(l))
            .collect();
    }
    summary.wall_seconds = t0.elapsed().as_secs_f64();
    if let Some(db) = &ctx.db {
        if !req.dry_run {
            audit_batch(&lock(db), req, &summary)?;
        }
    }
    Ok(summary)
}

/// One audit row for the batch: counts, the calls made, the failures.
fn audit_batch(
    conn: &Connection,
    req: &ImportRequest,
    s: &ImportSummary,
) -> Result<(), ImportError> {
    let calls: Vec<i64> = s
        .files
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::Imported { call_id, .. } => call_id,
            _ => None,
        })
        .collect();
    let failed: Vec<serde_json::Value> = s
        .files
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { reason } => {
                Some(serde_json::json!({ "path": r.path, "reason": reason }))
            }
            _ => None,
        })
        .collect();
    audit::append(
        conn,
        &audit::Event {
            actor: &req.actor,
            action: "import",
            call_id: None,
            detail: serde_json::json!({
                "paths": req.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "sidecar": req.sidecar.as_ref().map(|p| p.display().to_string()),
                "imported": s.imported,
                "skipped": s.skipped,
                "failed": s.failed,
                "audio_seconds": s.audio_seconds,
                "calls": calls,
                "failures": failed,
            }),
            ip: None,
        },
    )?;
    Ok(())
}

fn make_bar(total_bytes: u64) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
    ) {
        pb.set_style(style);
    }
    pb
}

fn open_db(cfg: &Config, dry_run: bool) -> Result<Option<Connection>, ImportError> {
    let path = cfg.db_path();
    if dry_run {
        if path.exists() {
            return Ok(Some(store::open_ro(&path)?));
        }
        return Ok(None);
    }
    // The same wrong-disk guard as the recorder: never create a store on an unmounted disk,
    // never write into a store whose identity file does not match its index.
    let expected = cfg.storage.id.as_deref();
    store::identity::precheck(&cfg.storage.dir, expected)?;
    std::fs::create_dir_all(&cfg.storage.dir).map_err(|source| ImportError::Io {
        path: cfg.storage.dir.display().to_string(),
        source,
    })?;
    let conn = store::open_rw(&path)?;
    store::identity::ensure(&cfg.storage.dir, &conn, expected)?;
    Ok(Some(conn))
}

struct Source {
    path: PathBuf,
    /// As the user will recognise it.
    display: String,
    size: u64,
}

/// Expands the request's paths: files as given, directories walked (sorted) for audio files.
/// Returns the sources, the ignored files, and failure lines for paths that do not exist.
fn collect(
    paths: &[PathBuf],
    sidecar: Option<&Path>,
) -> (Vec<Source>, Vec<String>, Vec<FileReport>) {
    let mut sources = Vec::new();
    let mut ignored = Vec::new();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    let skip = sidecar.and_then(|p| p.canonicalize().ok());
    let mut add = |p: PathBuf, sources: &mut Vec<Source>| {
        let key = p.canonicalize().unwrap_or_else(|_| p.clone());
        if Some(&key) == skip.as_ref() || !seen.insert(key) {
            return;
        }
        let size = std::fs::metadata(&p).map_or(0, |m| m.len());
        sources.push(Source {
            display: p.display().to_string(),
            path: p,
            size,
        });
    };
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(p, &mut found, &mut ignored);
                found.sort();
                for f in found {
                    add(f, &mut sources);
                }
            }
            Ok(_) => add(p.clone(), &mut sources),
            Err(e) => missing.push(FileReport {
                path: p.display().to_string(),
                outcome: Outcome::Failed {
                    reason: format!("cannot open: {e}"),
                },
            }),
        }
    }
    ignored.sort();
    (sources, ignored, missing)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, ignored: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        ignored.push(dir.display().to_string());
        return;
    };
    for entry in rd.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Symlinked directories are not followed (no loops); symlinked files are.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, found, ignored);
        } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
            let audio = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.as_str()));
            if audio {
                found.push(p);
            } else {
                ignored.push(p.display().to_string());
            }
        }
    }
}

/// The complete call that already holds this source, if any. A claim whose call never completed
/// (a crash mid-import) does not count.
fn already_imported(conn: &Connection, sha: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT i.call_id FROM imports i JOIN calls c ON c.id = i.call_id
             WHERE i.source_sha256 = ?1 AND c.status = 'complete'",
            [sha],
            |r| r.get(0),
        )
        .optional()?)
}

fn failed(reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
    }
}

/// The whole life of one file; never panics on bad input and never returns an error: every
/// problem is the file's outcome.
fn process_one(ctx: &Ctx, src: &Source) -> Outcome {
    let done_bytes = |n: u64| {
        if let Some(pb) = &ctx.progress {
            pb.inc(n);
        }
    };
    let meta = match std::fs::metadata(&src.path) {
        Ok(m) => m,
        Err(e) => {
            done_bytes(src.size);
            return failed(format!("cannot open: {e}"));
        }
    };
    let sha = match sha256_file(&src.path) {
        Ok((s, _)) => s,
        Err(e) => {
            done_bytes(src.size);
            return failed(format!("cannot read: {e}"));
        }
    };
    // 1. Idempotency: in the index, then within this batch.
    if let Some(db) = &ctx.db {
        match already_imported(&lock(db), &sha) {
            Ok(Some(id)) => {
                done_bytes(src.size);
                return Outcome::Skipped {
                    reason: format!("already imported as call {id}"),
                    call_id: Some(id),
                };
            }
            Ok(None) => {}
            Err(e) => {
                done_bytes(src.size);
                return failed(format!("checking the index: {e}"));
            }
        }
    }
    {
        let mut claimed = lock(&ctx.claimed);
        if let Some(other) = claimed.get(&sha) {
            done_bytes(src.size);
            return Outcome::Skipped {
                reason: format!("same content as {other} in this batch"),
                call_id: None,
            };
        }
        claimed.insert(sha.clone(), src.display.clone());
    }
    let outcome = process_claimed(ctx, src, &meta, sha.clone(), &done_bytes);
    if matches!(outcome, Outcome::Failed { .. }) {
        // Free the claim so that nothing in this batch is skipped for a file that failed.
        lock(&ctx.claimed).remove(&sha);
    }
    outcome
}

/// Steps 2–4 for a source whose content this worker has claimed.
fn process_claimed(
    ctx: &Ctx,
    src: &Source,
    meta: &std::fs::Metadata,
    sha: String,
    done_bytes: &dyn Fn(u64),
) -> Outcome {
    // 2. Sidecar metadata and start time.
    let mut call_meta = CallMeta::default();
    let mut sidecar_line = None;
    let mut started = None;
    if let Some(sc) = &ctx.sidecar {
        match sc.lookup(&src.path) {
            Lookup::Found(row) => {
                lock(&ctx.used_lines).insert(row.line);
                if let Some(e) = &row.error {
                    done_bytes(src.size);
                    return failed(e.clone());
                }
                call_meta = row.meta.clone();
                sidecar_line = Some(row.line);
                started = row.started_at_utc.clone();
            }
            Lookup::Ambiguous(lines) => {
                lock(&ctx.used_lines).extend(lines.iter().copied());
                done_bytes(src.size);
                let l: Vec<String> = lines.iter().map(u64::to_string).collect();
                return failed(format!(
                    "sidecar lines {} all name this file; give paths relative to the CSV to tell them apart",
                    l.join(", ")
                ));
            }
            Lookup::None => {}
        }
    }
    let (started_at_utc, started_from) = match started {
        Some(t) => (t, StartSource::Sidecar),
        None => {
            let t = meta
                .modified()
                .map(|m| format_utc(chrono::DateTime::<chrono::Utc>::from(m)))
                .unwrap_or_else(|_| ctx.now_utc.clone());
            (t, StartSource::Mtime)
        }
    };
    // 3. Decode (and encode).
    let enc = &ctx.cfg.encoder;
    let progress = ctx.progress.clone();
    let mut source = match decode::open(&src.path, enc.rate_hz, progress) {
        Ok(s) => s,
        Err(e) => {
            done_bytes(src.size);
            return failed(e.to_string());
        }
    };
    let info = source.info().clone();
    if ctx.req.dry_run || ctx.db.is_none() {
        let r = transcode::measure(source.as_mut());
        return match r {
            Ok(ms) => Outcome::Imported {
                call_id: None,
                source_format: info.format,
                source_sha256: sha,
                duration_ms: ms,
                started_at_utc,
                started_from,
                sidecar_line,
                warnings: source.notes(),
            },
            Err(e) => failed(e.to_string()),
        };
    }
    let job = Job {
        ctx,
        src,
        sha: &sha,
        info: &info,
        meta: call_meta,
        started_at_utc: &started_at_utc,
        started_from,
        sidecar_line,
    };
    job.encode_and_commit(source.as_mut())
        .unwrap_or_else(failed)
}

struct Job<'a> {
    ctx: &'a Ctx<'a>,
    src: &'a Source,
    sha: &'a str,
    info: &'a decode::SourceInfo,
    meta: CallMeta,
    started_at_utc: &'a str,
    started_from: StartSource,
    sidecar_line: Option<u64>,
}

/// The box's encoder settings, at the source's own rate when that is lower: the smallest Opus
/// rate that holds the source (an 8 kHz µ-law call is encoded at 8 kHz). Upsampling first
/// would add no content, only two resampling passes (ours up, libopus's back down to the
/// source's band); skipping them more than halves the import time of telephone-rate archives.
fn encoder_for(box_encoder: &EncoderConfig, source_rate_hz: u32) -> EncoderConfig {
    let rate_hz = OPUS_RATES_HZ
        .iter()
        .copied()
        .find(|&r| r >= source_rate_hz)
        .unwrap_or(box_encoder.rate_hz)
        .min(box_encoder.rate_hz);
    EncoderConfig {
        rate_hz,
        ..box_encoder.clone()
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The encoded file, still at its temporary path, and what the encoder made on the way.
struct Encoded {
    t: transcode::Transcoded,
    sha256: String,
    bytes: u64,
}

/// Removes the temporary file of an import that failed; returns why it failed.
fn discard(tmp: &Path, why: String) -> String {
    let _ = std::fs::remove_file(tmp);
    why
}

/// Moves the encoded file from `tmp` (in `dir`) to its final path and makes the directory
/// entries durable.
fn place(tmp: &Path, final_path: &Path, dir: &Path) -> std::io::Result<()> {
    let final_dir = final_path.parent().unwrap_or(dir);
    std::fs::create_dir_all(final_dir)?;
    std::fs::rename(tmp, final_path)?;
    fsync_dir(final_dir)?;
    if final_dir != dir {
        fsync_dir(dir)?;
    }
    Ok(())
}

impl Job<'_> {
    fn encode_and_commit(&self, source: &mut dyn decode::PcmSource) -> Result<Outcome, String> {
        let cfg = self.ctx.cfg;
        let enc = &encoder_for(&cfg.encoder, self.info.rate_hz);
        let dir = cfg.storage.dir.join("calls").join(self.day());
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let tmp = dir.join(format!(".import-{}.tmp", &self.sha[..16]));
        let file_name = self
            .src
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let encoded = self.encode(source, enc, &tmp, &file_name)?;

        // 4. Index, rename, finalize — under the lock, so the idempotency check is exact.
        let Some(db) = &self.ctx.db else {
            return Err(discard(&tmp, "the index is not open".into()));
        };
        let conn = lock(db);
        match already_imported(&conn, self.sha) {
            Ok(Some(id)) => {
                drop(conn);
                let _ = std::fs::remove_file(&tmp);
                return Ok(Outcome::Skipped {
                    reason: format!("already imported as call {id}"),
                    call_id: Some(id),
                });
            }
            Ok(None) => {}
            Err(e) => return Err(discard(&tmp, format!("checking the index: {e}"))),
        }
        let (id, rel) = store::insert_call(&conn, &self.new_call(enc))
            .map_err(|e| discard(&tmp, format!("indexing: {e}")))?;
        let final_path = cfg.storage.dir.join(&rel);
        if let Err(e) = place(&tmp, &final_path, &dir) {
            let why = format!("placing {}: {e}", final_path.display());
            let _ = std::fs::remove_file(&tmp);
            // The row must not claim audio that is not there.
            self.seal_without_audio(&conn, id, &why);
            return Err(why);
        }
        let note = self.note(&file_name, &encoded.t);
        if let Err(e) = self.record(&conn, id, &encoded, &note) {
            // The file is in place and the row says `recording`: start-up recovery seals it as
            // interrupted, and the next import of this source tries again.
            return Err(format!("indexing call {id}: {e}"));
        }
        let warnings = self.tag_and_measure(&conn, id, &encoded.t);
        drop(conn);
        let t = &encoded.t;
        // Derived data as well; never a reason to fail the import.
        let _ = crate::dsp::peaks::write(&crate::dsp::peaks::path_for(&final_path), &t.peaks);
        Ok(Outcome::Imported {
            call_id: Some(id),
            source_format: self.info.format.clone(),
            source_sha256: self.sha.to_owned(),
            duration_ms: t.duration_ms,
            started_at_utc: self.started_at_utc.to_owned(),
            started_from: self.started_from,
            sidecar_line: self.sidecar_line,
            warnings,
        })
    }

    /// `YYYY/MM/DD` of the start: the recorder's layout under calls/.
    fn day(&self) -> String {
        self.started_at_utc
            .get(0..10)
            .unwrap_or("0000-00-00")
            .replace('-', "/")
    }

    /// Encodes the source into `tmp` and makes it durable; `tmp` is removed on failure.
    fn encode(
        &self,
        source: &mut dyn decode::PcmSource,
        enc: &EncoderConfig,
        tmp: &Path,
        file_name: &str,
    ) -> Result<Encoded, String> {
        let file = File::create(tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let comments = self.comments(file_name);
        let serial = u32::from_str_radix(&self.sha[..8], 16).unwrap_or(1);
        let out = transcode::HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let result = transcode::transcode(
            source,
            usize::from(self.ctx.req.agent_channel),
            enc,
            out,
            serial,
            &comments,
        );
        let (out, t) = result.map_err(|e| discard(tmp, e.to_string()))?;
        let sha256 = out.sha256();
        let bytes = out.bytes;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| discard(tmp, format!("writing {}: {}", tmp.display(), e.error())))?;
        // After a failed fsync the file's contents are unknown: give it up (storage lessons).
        file.sync_all()
            .map_err(|e| discard(tmp, format!("fsync {}: {e}", tmp.display())))?;
        drop(file);
        Ok(Encoded { t, sha256, bytes })
    }

    /// The Ogg comments of the box format, with where the call was imported from.
    fn comments(&self, file_name: &str) -> Vec<String> {
        let ctx = self.ctx;
        let m = &self.meta;
        tags_for(&[
            ("CALLREC_BOX", ctx.cfg.box_.id.clone()),
            ("CALLREC_SEAT", ctx.req.seat_id.clone()),
            ("CALLREC_START_UTC", self.started_at_utc.to_owned()),
            ("CALLREC_CHANNELS", "agent,customer".into()),
            ("CALLREC_IMPORTED_FROM", file_name.to_owned()),
            ("CALLREC_SOURCE_FORMAT", self.info.format.clone()),
            ("CALLREC_SOURCE_SHA256", self.sha.to_owned()),
            ("AGENT", m.agent.clone().unwrap_or_default()),
            ("DIRECTION", m.direction.clone().unwrap_or_default()),
            ("REMOTE_NUMBER", m.remote_number.clone().unwrap_or_default()),
            ("CAMPAIGN", m.campaign.clone().unwrap_or_default()),
            ("EXTERNAL_ID", m.external_id.clone().unwrap_or_default()),
        ])
    }

    fn new_call(&self, enc: &EncoderConfig) -> NewCall {
        NewCall {
            box_id: self.ctx.cfg.box_.id.clone(),
            seat_id: self.ctx.req.seat_id.clone(),
            mode: "control".into(),
            started_at_utc: self.started_at_utc.to_owned(),
            started_mono_ms: 0,
            rate_hz: enc.rate_hz,
            bitrate_bps: enc.bitrate_bps,
            meta: self.meta.clone(),
        }
    }

    /// The call's note: the source, where the start time came from, and any damage.
    fn note(&self, file_name: &str, t: &transcode::Transcoded) -> String {
        let mut note = format!(
            "imported from {file_name} ({}, {} ch, {} Hz, sha256 {}); start time from {}",
            self.info.format,
            self.info.channels,
            self.info.rate_hz,
            self.sha,
            match (self.started_from, self.sidecar_line) {
                (StartSource::Sidecar, Some(l)) => format!("sidecar line {l}"),
                _ => "the file's mtime".into(),
            }
        );
        if t.mono_mix {
            note.push_str("; mono mix stored in both channels");
        }
        for w in &t.notes {
            note.push_str("; ");
            note.push_str(w);
        }
        note
    }

    /// Finalizes the row as interrupted, with no audio: its file could not be put in place.
    fn seal_without_audio(&self, conn: &Connection, id: i64, why: &str) {
        let _ = store::finalize_call(
            conn,
            &Finalized {
                call_id: id,
                status: crate::store::CallStatus::Interrupted,
                ended_at_utc: self.started_at_utc,
                duration_ms: 0,
                bytes: 0,
                sha256: None,
                dropped_frames: 0,
                end_reason: "error",
                note: Some(why),
            },
        );
    }

    /// The `imports` row, then the call finalized as complete.
    fn record(
        &self,
        conn: &Connection,
        id: i64,
        encoded: &Encoded,
        note: &str,
    ) -> Result<(), StoreError> {
        let ctx = self.ctx;
        let t = &encoded.t;
        conn.execute(
                "INSERT INTO imports (source_sha256, call_id, source_path, source_format, imported_by, imported_at_utc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (source_sha256) DO UPDATE SET call_id = excluded.call_id,
                     source_path = excluded.source_path, source_format = excluded.source_format,
                     imported_by = excluded.imported_by, imported_at_utc = excluded.imported_at_utc",
                params![
                    self.sha,
                    id,
                    self.src
                        .path
                        .canonicalize()
                        .unwrap_or_else(|_| self.src.path.clone())
                        .display()
                        .to_string(),
                    self.info.format,
                    ctx.req.actor,
                    ctx.now_utc
                ],
            )
            .map_err(StoreError::from)
            .and_then(|_| {
                store::finalize_call(
                    conn,
                    &Finalized {
                        call_id: id,
                        status: crate::store::CallStatus::Complete,
                        ended_at_utc: &utc_plus_ms(self.started_at_utc, t.duration_ms),
                        duration_ms: t.duration_ms,
                        bytes: encoded.bytes,
                        sha256: Some(&encoded.sha256),
                        dropped_frames: 0,
                        end_reason: "imported",
                        note: Some(note),
                    },
                )
            })
    }

    /// Tags the call as an import (and mono mix, damaged source) and stores its talk metrics.
    /// Returns the source's warnings, plus one if tagging failed.
    fn tag_and_measure(
        &self,
        conn: &Connection,
        id: i64,
        t: &transcode::Transcoded,
    ) -> Vec<String> {
        let mut warnings = t.notes.clone();
        let mut tags = vec![
            "imported".to_owned(),
            format!("source:{}", self.info.format),
        ];
        if t.mono_mix {
            tags.push("mono-mix".into());
        }
        if !warnings.is_empty() {
            tags.push("source-damaged".into());
        }
        if let Err(e) = store::add_tags(conn, id, &tags) {
            warnings.push(format!("tagging the call: {e}"));
        }
        if let Some(levels) = &t.levels {
            let metrics = crate::dsp::talk::metrics(
                &levels.agent,
                &levels.customer,
                crate::dsp::talk::Thresholds::default(),
            );
            // Derived data: the server recomputes it if missing.
            let _ = store::metrics::put(conn, id, &metrics);
        }
        warnings
    }
}
