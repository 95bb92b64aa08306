//! One call being recorded: its row, its file, its encoder, and the order of durable writes.
//!
//! The work is split between two threads (see `indexer` for why):
//! - the indexer thread opens a call ([`open`]): the row is inserted (`recording`) → the file
//!   is created with both header pages → file and directory (and new directories' parents) are
//!   fsynced (order borrowed from Moonfire NVR). It hands the open [`CallWriter`] to the seat's
//!   worker, and at the end makes the closed file durable and completes the row ([`finalize`]).
//! - the worker thread encodes and writes audio with the [`CallWriter`]: pages are handed to the
//!   OS as they complete (≤ 500 ms apart) and fsynced at least every `fsync_interval_ms` by the
//!   syncer thread, which then has the durable length recorded in the row. To finish, the worker
//!   closes the Ogg stream ([`CallWriter::close`]: the last page is written, nothing is synced)
//!   and hands the [`Closed`] file to the indexer, which fsyncs it and writes duration, size and
//!   SHA-256 into the row (`complete`).
//!
//! When a write or fsync fails, the call is closed where it stands and handed to the disk guard
//! (`disk_guard`), which seals it at its last intact page as `interrupted` (end reason
//! `disk_full` or `write_error`). A "no space" error also stops every other call and every start
//! until space returns. This module must never block on the disk guard, never retry a failed
//! write (after a failed fsync the file's state is unknown), and never leave a row `recording`
//! without either a writer or a pending seal. [`CallWriter`] must never touch the index or fsync:
//! it runs on the worker that drains the capture rings.

use super::disk_guard::{self, GuardHandle, END_DISK_FULL, END_WRITE_ERROR};
use super::syncer::SyncJob;
use crate::clock::utc_plus_ms;
use crate::codec::ogg_write::{tags_for, OpusFileWriter, WriteError, PAGE_MS};
use crate::config::EncoderConfig;
use crate::dsp::level::rms_dbfs_channel;
use crate::dsp::peaks::{self, PeaksBuilder};
use crate::dsp::talk::{self, LevelLog, Thresholds};
use crate::store::{self, Finalized, NewCall};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("call {call_id}: {path}: {source}")]
    Io {
        call_id: i64,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("call {call_id}: {message}")]
    Encode { call_id: i64, message: String },
    #[error("call {call_id}: fsync failed: {source}; what reached the disk is unknown, so the call is sealed at its last intact page")]
    Sync {
        call_id: i64,
        source: std::io::Error,
    },
    #[error("the recorder's index thread has stopped")]
    IndexerGone,
}

impl CallError {
    /// Whether the error means the storage filesystem (or the index on it) has no space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            CallError::Io { source, .. } | CallError::Sync { source, .. } => {
                disk_guard::is_disk_full_io(source)
            }
            CallError::Store(e) => disk_guard::is_disk_full_store(e),
            CallError::Encode { .. } | CallError::IndexerGone => false,
        }
    }

    /// The row's `end_reason` for a call this error stopped.
    pub fn end_reason(&self) -> &'static str {
        if self.is_disk_full() {
            END_DISK_FULL
        } else {
            END_WRITE_ERROR
        }
    }
}

/// Counts and hashes every byte on its way to the file, so finishing needs no re-read.
pub struct HashingFile {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// After `err` stopped call `call_id` (file closed, row still `recording`): report a full disk,
/// and have the guard seal the call. Never blocks.
pub fn hand_over(guard: &GuardHandle, call_id: i64, err: &CallError) {
    let why = err.to_string();
    if err.is_disk_full() {
        guard.report_full(&why);
    }
    tracing::error!(call_id, "recording stopped: {why}");
    guard.seal(call_id, err.end_reason(), &why);
}

/// The open file of a call, on its seat's worker: encodes, writes pages, asks for fsyncs.
pub struct CallWriter {
    /// The call's row id.
    pub id: i64,
    path: PathBuf,
    started_at_utc: String,
    writer: OpusFileWriter<BufWriter<HashingFile>>,
    sync_handle: File,
    /// Set by the syncer when an fsync of this file failed (the errno): the call must stop.
    sync_fault: Arc<AtomicI32>,
    last_sync: Instant,
    /// Frames the call lost so far (capture rings and start backlog), for the progress rows.
    pub dropped_frames: u64,
    /// When the oldest sample of the page being filled entered its ring.
    page_oldest: Option<Instant>,
    /// Longest time from a sample entering the ring to its page reaching the OS.
    pub max_page_latency_ms: u64,
    /// Waveform for the player, written beside the file when the call finishes.
    peaks: PeaksBuilder,
    /// Per-frame party levels, for the acoustic metrics computed when the call finishes.
    levels: LevelLog,
    frame_samples: usize,
}

/// A call whose Ogg stream is closed (last page handed to the OS, not yet fsynced), on its way
/// from the worker to the indexer.
pub struct Closed {
    pub id: i64,
    path: PathBuf,
    started_at_utc: String,
    duration_ms: u64,
    file: File,
    hasher: Sha256,
    bytes: u64,
    dropped_frames: u64,
    peaks: PeaksBuilder,
    levels: LevelLog,
}

/// The Ogg page interval: audio reaches the OS a page at a time.
const PAGE: Duration = Duration::from_millis(PAGE_MS as u64);

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What the indexer keeps to open call files.
pub struct Storage {
    pub box_id: String,
    pub storage_dir: PathBuf,
    pub encoder: EncoderConfig,
    pub guard: GuardHandle,
    /// The day directory whose name (and its parents' names) this process already made durable.
    durable_dir: Option<PathBuf>,
}

impl Storage {
    pub fn new(
        box_id: String,
        storage_dir: PathBuf,
        encoder: EncoderConfig,
        guard: GuardHandle,
    ) -> Self {
        Storage {
            box_id,
            storage_dir,
            encoder,
            guard,
            durable_dir: None,
        }
    }

    /// Creates a call's directory (`calls/YYYY/MM/DD` under the storage dir) and makes its name
    /// durable. A directory's name lives in its parent and only an fsync of the parent makes it
    /// survive a power cut: fsyncing the day directory (as `write_headers` does) is not enough.
    /// Found by the power-cut campaign (RELIABILITY.md): without this a cut lost the whole
    /// `calls/` tree, finished calls included, while their rows survived. Every level up to the
    /// storage dir is fsynced, not only the ones created now (one made by a process killed
    /// before it fsynced the parent looks the same), once per process and day directory.
    fn create_dir_durable(&mut self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if self.durable_dir.as_deref() == Some(dir) {
            return Ok(());
        }
        let mut level = dir;
        while level != self.storage_dir && level.starts_with(&self.storage_dir) {
            let Some(parent) = level.parent() else { break };
            fsync_dir(parent)?;
            level = parent;
        }
        self.durable_dir = Some(dir.to_owned());
        Ok(())
    }
}

/// Builds the error for an I/O failure on call `call_id`'s file at `path`.
fn io_error(call_id: i64, path: &Path) -> impl Fn(std::io::Error) -> CallError + Copy + '_ {
    move |source| CallError::Io {
        call_id,
        path: path.display().to_string(),
        source,
    }
}

/// Opens a call, on the indexer thread: inserts the row, creates the file with its headers, and
/// makes both durable. `new.started_at_utc` is when the seat was asked to start (the worker
/// reads the clock), so the time the index took does not move the call's start.
pub fn open(
    storage: &mut Storage,
    conn: &Connection,
    new: &NewCall,
) -> Result<CallWriter, CallError> {
    let (id, rel) = match store::insert_call(conn, new) {
        Ok(x) => x,
        Err(e) => {
            // Nothing was written (the transaction rolled back); only report a full disk.
            let e = CallError::from(e);
            if e.is_disk_full() {
                storage.guard.report_full(&e.to_string());
            }
            return Err(e);
        }
    };
    let path = storage.storage_dir.join(&rel);
    match create_file(storage, id, &path, new) {
        Ok((writer, sync_handle)) => Ok(CallWriter {
            id,
            path,
            started_at_utc: new.started_at_utc.clone(),
            writer,
            sync_handle,
            sync_fault: Arc::new(AtomicI32::new(0)),
            last_sync: Instant::now(),
            dropped_frames: 0,
            page_oldest: None,
            max_page_latency_ms: 0,
            peaks: PeaksBuilder::new(storage.encoder.rate_hz),
            levels: LevelLog::default(),
            frame_samples: storage.encoder.frame_samples(),
        }),
        Err(e) => {
            if e.is_disk_full() {
                // The index may have no room either: the guard frees its reserve first.
                hand_over(&storage.guard, id, &e);
                return Err(e);
            }
            // The row must not claim a recording that never started.
            let note = e.to_string();
            let _ = store::finalize_call(
                conn,
                &Finalized {
                    call_id: id,
                    status: crate::store::CallStatus::Interrupted,
                    ended_at_utc: &new.started_at_utc,
                    duration_ms: 0,
                    bytes: 0,
                    sha256: None,
                    dropped_frames: 0,
                    end_reason: "error",
                    note: Some(&note),
                },
            );
            Err(e)
        }
    }
}

fn create_file(
    storage: &mut Storage,
    id: i64,
    path: &Path,
    new: &NewCall,
) -> Result<(OpusFileWriter<BufWriter<HashingFile>>, File), CallError> {
    let io = io_error(id, path);
    let dir = path.parent().unwrap_or(&storage.storage_dir).to_owned();
    storage.create_dir_durable(&dir).map_err(io)?;
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    write_headers(&storage.encoder, id, path, &dir, file, new).inspect_err(|_| {
        // The file we just created holds our header pages at most, never audio: remove it,
        // so no file that is not valid Ogg Opus stays in the store (invariant 4).
        if std::fs::remove_file(path).is_ok() {
            let _ = fsync_dir(&dir);
        }
    })
}

/// Writes both header pages into a new call file and makes file and directory durable.
fn write_headers(
    e: &EncoderConfig,
    id: i64,
    path: &Path,
    dir: &Path,
    file: File,
    new: &NewCall,
) -> Result<(OpusFileWriter<BufWriter<HashingFile>>, File), CallError> {
    let io = io_error(id, path);
    let sync_handle = file.try_clone().map_err(io)?;
    let m = &new.meta;
    let comments = tags_for(&[
        ("CALLREC_CALL_ID", id.to_string()),
        ("CALLREC_BOX", new.box_id.clone()),
        ("CALLREC_SEAT", new.seat_id.clone()),
        ("CALLREC_START_UTC", new.started_at_utc.clone()),
        ("CALLREC_CHANNELS", "agent,customer".into()),
        ("AGENT", m.agent.clone().unwrap_or_default()),
        ("DIRECTION", m.direction.clone().unwrap_or_default()),
        ("REMOTE_NUMBER", m.remote_number.clone().unwrap_or_default()),
        ("CAMPAIGN", m.campaign.clone().unwrap_or_default()),
        ("EXTERNAL_ID", m.external_id.clone().unwrap_or_default()),
    ]);
    let out = BufWriter::with_capacity(
        64 * 1024,
        HashingFile {
            file,
            hasher: Sha256::new(),
            bytes: 0,
        },
    );
    let writer = OpusFileWriter::new(out, e, id as u32, &comments).map_err(|err| match err {
        WriteError::Io(source) => io(source),
        other => CallError::Encode {
            call_id: id,
            message: other.to_string(),
        },
    })?;
    sync_handle.sync_all().map_err(io)?;
    fsync_dir(dir).map_err(io)?;
    Ok((writer, sync_handle))
}

impl CallWriter {
    pub fn duration_ms(&self) -> u64 {
        self.writer.duration_ms()
    }

    /// Keeps an I/O error's kind (a full disk is told apart from a codec failure by it).
    fn write_err(&self, e: WriteError) -> CallError {
        match e {
            WriteError::Io(source) => CallError::Io {
                call_id: self.id,
                path: self.path.display().to_string(),
                source,
            },
            other => CallError::Encode {
                call_id: self.id,
                message: other.to_string(),
            },
        }
    }

    fn check_sync_fault(&self) -> Result<(), CallError> {
        let fault = self.sync_fault.load(Ordering::Acquire);
        if fault != 0 {
            return Err(CallError::Sync {
                call_id: self.id,
                source: std::io::Error::from_raw_os_error(fault),
            });
        }
        Ok(())
    }

    /// Writes one frame (or silence while paused: invariant 6) and schedules fsyncs.
    /// `captured_at` is when the frame's oldest sample entered its ring.
    pub fn write(
        &mut self,
        syncer: &Sender<SyncJob>,
        fsync_interval: Duration,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
    ) -> Result<(), CallError> {
        self.check_sync_fault()?;
        self.page_oldest.get_or_insert(captured_at);
        if silent {
            self.peaks.push_silence(self.frame_samples);
            self.levels.push(f32::NEG_INFINITY, f32::NEG_INFINITY);
        } else {
            self.peaks.push(frame);
            self.levels
                .push(rms_dbfs_channel(frame, 2, 0), rms_dbfs_channel(frame, 2, 1));
        }
        let page_done = if silent {
            self.writer.push_silence()
        } else {
            self.writer.push_frame(frame)
        }
        .map_err(|e| self.write_err(e))?;
        if page_done {
            if let Some(t) = self.page_oldest.take() {
                // The page's first frames came in before `t`: the writer holds frames back for
                // its look-back (`codec::quiet`), so the page's oldest sample is that much older.
                let latency_ms = t.elapsed().as_millis() as u64 + self.writer.delay_ms();
                self.max_page_latency_ms = self.max_page_latency_ms.max(latency_ms);
            }
        }
        // A sync is only sent when a page completes, up to one page after it is due: ask one
        // page early, so that what a power cut loses stays within `fsync_interval_ms` plus the
        // page being filled. Found by the power-cut campaign (RELIABILITY.md): asking on time
        // lost up to 2.4 s with the default 2 s interval (interval + a page + sync latency).
        let due = fsync_interval.saturating_sub(PAGE);
        if page_done && self.last_sync.elapsed() >= due {
            self.last_sync = Instant::now();
            if let Ok(handle) = self.sync_handle.try_clone() {
                let _ = syncer.send(SyncJob {
                    file: handle,
                    fault: self.sync_fault.clone(),
                    call_id: self.id,
                    duration_ms: self.writer.duration_ms(),
                    bytes: self.writer.writer_mut().get_ref().bytes,
                    dropped_frames: self.dropped_frames,
                });
            }
        }
        Ok(())
    }

    /// Closes the Ogg stream: the encoder is flushed and the last page handed to the OS. No
    /// fsync, no index: the indexer does both with the returned [`Closed`] ([`finalize`]).
    pub fn close(self) -> Result<Closed, CallError> {
        let id = self.id;
        self.check_sync_fault()?;
        let duration_ms = self.writer.duration_ms();
        let io = io_error(id, &self.path);
        let buf = self.writer.finish().map_err(|e| match e {
            WriteError::Io(source) => io(source),
            other => CallError::Encode {
                call_id: id,
                message: other.to_string(),
            },
        })?;
        let hf = buf.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(Closed {
            id,
            path: self.path,
            started_at_utc: self.started_at_utc,
            duration_ms,
            file: hf.file,
            hasher: hf.hasher,
            bytes: hf.bytes,
            dropped_frames: self.dropped_frames,
            peaks: self.peaks,
            levels: self.levels,
        })
    }
}

/// Finishes a closed call, on the indexer thread: makes the file durable and completes the row.
/// If that fails, the call is handed to the disk guard to be sealed as `interrupted` (its row
/// is never left behind).
pub fn finalize(
    guard: &GuardHandle,
    conn: &Connection,
    closed: Closed,
    end_reason: &str,
) -> Result<i64, CallError> {
    let id = closed.id;
    finalize_inner(conn, closed, end_reason).inspect_err(|e| hand_over(guard, id, e))
}

fn finalize_inner(conn: &Connection, c: Closed, end_reason: &str) -> Result<i64, CallError> {
    let id = c.id;
    c.file.sync_all().map_err(io_error(id, &c.path))?;
    let sha = hex::encode(c.hasher.finalize());
    // Peaks are derived data (the server recomputes them if missing): a failure is logged,
    // never allowed to fail the call.
    if let Err(e) = peaks::write(&peaks::path_for(&c.path), &c.peaks.finish()) {
        tracing::warn!(call_id = id, "writing waveform peaks: {e}");
    }
    let metrics = talk::metrics(&c.levels.agent, &c.levels.customer, Thresholds::default());
    store::finalize_call(
        conn,
        &Finalized {
            call_id: id,
            status: crate::store::CallStatus::Complete,
            ended_at_utc: &utc_plus_ms(&c.started_at_utc, c.duration_ms),
            duration_ms: c.duration_ms,
            bytes: c.bytes,
            sha256: Some(&sha),
            dropped_frames: c.dropped_frames,
            end_reason,
            note: None,
        },
    )?;
    // Derived data, like the peaks: a failure is logged and the server recomputes it.
    if let Err(e) = store::metrics::put(conn, id, &metrics) {
        tracing::warn!(call_id = id, "storing call metrics: {e}");
    }
    // Each party's loudest frame: what the completeness alarms and report judge a call by
    // (record::completeness). Paused frames are -inf: they prove nothing about the input.
    let (agent, customer) = (loudest(&c.levels.agent), loudest(&c.levels.customer));
    if let Err(e) = store::completeness::put_loudest(conn, id, agent, customer) {
        tracing::warn!(call_id = id, "storing the parties' loudest frames: {e}");
    }
    Ok(id)
}

/// The highest finite level of a party's frames (dBFS), `None` if every frame was paused.
fn loudest(levels_dbfs: &[f32]) -> Option<f32> {
    levels_dbfs
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(f32::max)
}

impl Storage {
    /// The row of a call the seat asked to start at `started_at_utc` (`started_mono_ms` on
    /// the monotonic clock).
    pub fn new_call(
        &self,
        seat_id: &str,
        mode: &str,
        meta: store::CallMeta,
        started_at_utc: String,
        started_mono_ms: i64,
    ) -> NewCall {
        NewCall {
            box_id: self.box_id.clone(),
            seat_id: seat_id.to_owned(),
            mode: mode.to_owned(),
            started_at_utc,
            started_mono_ms,
            rate_hz: self.encoder.rate_hz,
            bitrate_bps: self.encoder.bitrate_bps,
            meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SimClock};
    use crate::codec::ogg_read;
    use crate::config::Config;
    use crate::store::CallMeta;
    use std::sync::mpsc::Receiver;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    struct Setup {
        storage: Storage,
        conn: Connection,
        syncer: Sender<SyncJob>,
        fsync_interval: Duration,
        /// Keeps the fsync queue open (nothing needs its jobs here).
        _jobs: Receiver<SyncJob>,
    }

    /// The indexer's side of a recorder on a temp storage dir, with `clock`.
    fn setup(dir: &Path, clock: Arc<dyn Clock>) -> Result<Setup, Box<dyn std::error::Error>> {
        let text = format!(
            "[box]\nid = \"floor-1\"\n[storage]\ndir = {:?}\n[[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n",
            dir.display().to_string()
        );
        let cfg = Config::parse(&text, Path::new("t.toml"))?;
        let conn = store::open_rw(&cfg.db_path())?;
        let (_guard, guard) = disk_guard::Guard::new(&cfg, clock)?;
        let (syncer, jobs) = std::sync::mpsc::channel();
        let storage = Storage::new(
            cfg.box_.id.clone(),
            dir.to_owned(),
            cfg.encoder.clone(),
            guard,
        );
        Ok(Setup {
            storage,
            conn,
            syncer,
            fsync_interval: Duration::from_millis(cfg.storage.fsync_interval_ms),
            _jobs: jobs,
        })
    }

    /// An NTP correction of ±1 h in the middle of a call: the call keeps the start it had, its
    /// duration and end come from its audio, and the file holds exactly that audio.
    #[test]
    fn a_wall_clock_step_mid_call_moves_neither_its_start_nor_its_length() -> TestResult {
        for step_ms in [3_600_000, -3_600_000] {
            let dir = tempfile::tempdir()?;
            let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")?.to_utc();
            let clock = SimClock::at(t0);
            let mut s = setup(dir.path(), clock.clone())?;
            let mono_at_start = clock.mono_ms();
            let new = s.storage.new_call(
                "s1",
                "control",
                CallMeta::default(),
                clock.utc_string(),
                clock.mono_ms(),
            );
            let mut call = open(&mut s.storage, &s.conn, &new)?;
            let frame = vec![0.25f32; s.storage.encoder.frame_samples() * 2];
            for i in 0..150 {
                if i == 75 {
                    clock.step_wall(step_ms);
                }
                clock.advance(20);
                call.write(&s.syncer, s.fsync_interval, &frame, false, Instant::now())?;
            }
            let id = finalize(&s.storage.guard, &s.conn, call.close()?, "stop")?;
            let row = store::get_call(&s.conn, id)?;
            assert_eq!(
                row.started_at_utc, "2026-11-27T10:00:00.000Z",
                "step {step_ms}"
            );
            assert_eq!(row.started_mono_ms, mono_at_start);
            assert_eq!(row.duration_ms, 3000, "step {step_ms}");
            assert_eq!(
                row.ended_at_utc.as_deref(),
                Some("2026-11-27T10:00:03.000Z"),
                "the end is start + audio, whatever the wall clock says now"
            );
            let (data, _) = ogg_read::read_file(&dir.path().join(&row.rel_path))?;
            let decoded = ogg_read::decode(&data, 48_000)?;
            assert_eq!(decoded.frames(), 3 * 48_000, "step {step_ms}");
        }
        Ok(())
    }
}
