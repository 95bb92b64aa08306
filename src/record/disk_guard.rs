//! The recorder's disk guard: one thread with its own index connection that watches the storage
//! filesystem, relieves disk pressure, and runs the "disk full" state.
//!
//! - **Pressure**: every `storage.guard_interval_ms`, if the filesystem is at or above
//!   `high_water_percent`, `storage.pressure_policy` decides (`config::PressurePolicy`):
//!   - `keep` (the default): no call goes before its retention rule allows. Retention
//!     (`store::retention`, normally hourly) runs at once, so calls already due go now; if usage
//!     is still at or above high water, alarm `disk_pressure` is raised — early, while there is
//!     room to act — and recording goes on until the disk is really full (below).
//!   - `oldest_first` (opt-in): the oldest finished calls that no legal hold covers are
//!     deleted (two-step, audited, tombstoned: `store::lifecycle`) in batches until usage is at
//!     `low_water_percent`, whatever retention promised them. If nothing more may be deleted and
//!     usage is still at or above high water, alarm `disk_pressure` is raised.
//!
//!   Either way the alarm clears once usage is below high water.
//! - **Disk full** (item 8): a reserve file ([`RESERVE_FILE`]) is kept in the storage dir, and
//!   recording is allowed only while it exists. When a writer hits ENOSPC (or free space falls
//!   below a quarter of the reserve), the shared flag stops every open call (each is sealed at
//!   its last intact Ogg page and marked `interrupted` with end reason [`END_DISK_FULL`]) and
//!   every start; the reserve is deleted so the index has room for exactly those updates, and
//!   alarm `disk_full` is raised. When twice the reserve is free again, the reserve is recreated,
//!   the alarm cleared, and seats start recording again by themselves.
//! - Pending two-step deletions are completed (`finish_garbage`) on every tick.
//!
//! This thread never touches a seat, an encoder or a ring: workers only read an atomic flag and
//! send it messages, so nothing here can stall capture. It never deletes a call that is on hold
//! or still recording (`store::lifecycle` refuses both), never deletes anything but whole calls
//! through `store::lifecycle` and its own reserve file, and never busy-waits.

use crate::config::{Config, PressurePolicy};
use crate::store::{
    self, alarms,
    lifecycle::{self, Deletion, DeletionKind},
    recovery, Finalized, StoreError,
};
use rusqlite::Connection;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The reserve file, at the root of the storage dir (beside `STORAGE-ID`, outside `calls/`).
pub const RESERVE_FILE: &str = "DISK-RESERVE";
/// `end_reason` of a call stopped because the storage filesystem was full.
pub const END_DISK_FULL: &str = "disk_full";
/// `end_reason` of a call stopped by any other write or fsync error.
pub const END_WRITE_ERROR: &str = "write_error";

/// Who the guard's deletions are attributed to (audit rows, deletion rows).
const ACTOR: &str = "callrec";
/// Reserve: 1/32 of the filesystem, at least 512 KiB (room for a few dozen index transactions
/// at 4 KiB pages) and at most 64 MiB (plenty for any number of seats; no point wasting more).
const RESERVE_MIN_BYTES: u64 = 512 * 1024;
const RESERVE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many calls per deletion transaction, so the index's write lock is held briefly.
const BATCH_MAX_CALLS: usize = 50;
/// At most this many batches per pass; the next tick continues (bounds one tick's work).
const PASS_MAX_BATCHES: usize = 100;
/// While full or with seals pending, look again at least this often.
const BUSY_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot read free space of {path}: {source}")]
    Statvfs {
        path: String,
        source: std::io::Error,
    },
    #[error("disk reserve {path}: {source}")]
    Reserve {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::LifecycleError),
    #[error(transparent)]
    Recovery(#[from] recovery::RecoveryError),
}

/// Whether an I/O error means "no space" (a full filesystem or an exhausted quota).
pub fn is_disk_full_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || e.raw_os_error().is_some_and(|c| {
            c == rustix::io::Errno::NOSPC.raw_os_error()
                || c == rustix::io::Errno::DQUOT.raw_os_error()
        })
}

/// Whether an index error means "no space" (SQLITE_FULL, or an I/O error underneath it).
pub fn is_disk_full_sql(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull
    )
}

/// Whether a store error means "no space".
pub fn is_disk_full_store(e: &StoreError) -> bool {
    match e {
        StoreError::Sql(e) | StoreError::Open { source: e, .. } => is_disk_full_sql(e),
        _ => false,
    }
}

/// Space on the storage filesystem, as `df` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Free space a non-root writer may use (root may also use ext4's reserved blocks).
    pub avail_bytes: u64,
}

impl Usage {
    /// Used share of the space available to ordinary writers, like `df`'s Use%.
    pub fn used_percent(&self) -> f64 {
        let denom = self.used_bytes + self.avail_bytes;
        if denom == 0 {
            return 100.0;
        }
        self.used_bytes as f64 * 100.0 / denom as f64
    }

    /// Bytes that must be freed to be at or below `percent` used.
    pub fn bytes_above(&self, percent: u8) -> u64 {
        let denom = (self.used_bytes + self.avail_bytes) as f64;
        let target = denom * f64::from(percent) / 100.0;
        (self.used_bytes as f64 - target).max(0.0).ceil() as u64
    }
}

/// `statvfs` on the storage dir.
pub fn usage(dir: &Path) -> Result<Usage, GuardError> {
    let s = rustix::fs::statvfs(dir).map_err(|e| GuardError::Statvfs {
        path: dir.display().to_string(),
        source: e.into(),
    })?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Ok(Usage {
        total_bytes: s.f_blocks.saturating_mul(unit),
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(unit),
        avail_bytes: s.f_bavail.saturating_mul(unit),
    })
}

/// Size of the reserve for a filesystem of `total_bytes`.
pub fn reserve_bytes_for(total_bytes: u64) -> u64 {
    (total_bytes / 32).clamp(RESERVE_MIN_BYTES, RESERVE_MAX_BYTES)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// What workers send the guard.
#[derive(Debug)]
enum Msg {
    /// A writer hit "no space" (the flag is already set).
    Full {
        why: String,
    },
    /// A call whose recording stopped on an error: seal it at its last intact page.
    Seal {
        call_id: i64,
        end_reason: &'static str,
        why: String,
    },
    Stop,
}

/// The workers' side of the guard: a flag to read every tick and a way to report.
#[derive(Clone)]
pub struct GuardHandle {
    full: Arc<AtomicBool>,
    tx: Sender<Msg>,
}

impl GuardHandle {
    /// True while the storage is full: no call may start, open calls must stop.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// A writer hit "no space": stop recording everywhere at once, and wake the guard.
    pub fn report_full(&self, why: &str) {
        self.full.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Full {
            why: why.to_owned(),
        });
    }

    /// Hands a call whose file is closed (but whose row still says `recording`) to the guard to
    /// seal. Sealing needs index space, which the guard frees first if the disk is full.
    pub fn seal(&self, call_id: i64, end_reason: &'static str, why: &str) {
        if self
            .tx
            .send(Msg::Seal {
                call_id,
                end_reason,
                why: why.to_owned(),
            })
            .is_err()
        {
            // The guard is gone (shutting down): the next start's crash recovery seals it.
            tracing::warn!(
                call_id,
                "disk guard not running; the call is sealed at the next start"
            );
        }
    }

    /// Asks the guard to seal what is pending and exit.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

struct PendingSeal {
    call_id: i64,
    end_reason: &'static str,
    why: String,
    attempts: u32,
}

/// The guard thread's state. Build with [`Guard::new`], then run [`Guard::run`] on its thread.
pub struct Guard {
    conn: Connection,
    dir: PathBuf,
    high_percent: u8,
    low_percent: u8,
    /// Which promise wins above high water: retention's (`keep`) or recording's.
    policy: PressurePolicy,
    interval: Duration,
    reserve_path: PathBuf,
    reserve_bytes: u64,
    full: Arc<AtomicBool>,
    rx: Receiver<Msg>,
    /// The guard's view: true from entering the full state until resuming.
    in_full: bool,
    /// Why the disk is full, as reported; used for the alarm's detail.
    full_why: Option<String>,
    /// The `disk_full` alarm still has to be written (the write failed or is not done yet).
    full_alarm_due: bool,
    /// Whether an alarm of each kind may be active in the index (true at start: a previous run
    /// may have left one), so the guard clears it once instead of writing every tick.
    full_alarm_maybe_active: bool,
    pressure_alarm_maybe_active: bool,
    pending: Vec<PendingSeal>,
    /// Last error logged per source, so a persistent failure is logged once, not every tick.
    last_error: Option<String>,
    /// `[retention]` from the config, applied every [`RETENTION_EVERY`].
    retention: crate::config::RetentionConfig,
    next_retention: std::time::Instant,
    /// Stamps alarms and deletions, and decides what retention has made due.
    clock: Arc<dyn crate::clock::Clock>,
}

/// How often the guard applies the retention rules: a call is deleted at most this long after
/// its keep period ends (and never before).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Guard {
    /// Opens the guard's own index connection and looks at the disk once. If it is (nearly)
    /// full, the reserve is released at once so start-up recovery can update the index, and the
    /// recorder starts in the full state (no call starts until space returns).
    pub fn new(
        cfg: &Config,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<(Guard, GuardHandle), GuardError> {
        let dir = cfg.storage.dir.clone();
        let conn = store::open_rw(&cfg.db_path())?;
        let u = usage(&dir)?;
        let (tx, rx) = mpsc::channel();
        let full = Arc::new(AtomicBool::new(false));
        let mut g = Guard {
            conn,
            reserve_path: dir.join(RESERVE_FILE),
            reserve_bytes: reserve_bytes_for(u.total_bytes),
            dir,
            high_percent: cfg.storage.high_water_percent,
            low_percent: cfg.storage.low_water_percent,
            policy: cfg.storage.pressure_policy,
            interval: Duration::from_millis(cfg.storage.guard_interval_ms.max(1)),
            full: full.clone(),
            rx,
            in_full: false,
            full_why: None,
            full_alarm_due: false,
            full_alarm_maybe_active: true,
            pressure_alarm_maybe_active: true,
            pending: Vec::new(),
            last_error: None,
            retention: cfg.retention.clone(),
            // The first pass a minute after start, so start-up and recovery come first.
            next_retention: std::time::Instant::now() + Duration::from_secs(60),
            clock,
        };
        if let Some(why) = g.check_space(&u) {
            g.enter_full(why);
        }
        Ok((g, GuardHandle { full, tx }))
    }

    /// Whether the disk is full: `None` if recording may go on (creating the reserve if it is
    /// missing and there is room), or why not.
    fn check_space(&mut self, u: &Usage) -> Option<String> {
        if u.avail_bytes < self.reserve_bytes / 4 {
            return Some(format!(
                "only {} free on the storage filesystem",
                mib(u.avail_bytes)
            ));
        }
        if self.reserve_present() {
            return None;
        }
        if u.avail_bytes < 2 * self.reserve_bytes {
            return Some(format!(
                "only {} free, less than twice the {} reserve",
                mib(u.avail_bytes),
                mib(self.reserve_bytes)
            ));
        }
        match self.create_reserve() {
            Ok(()) => None,
            Err(e) => Some(format!("cannot write the disk reserve: {e}")),
        }
    }

    fn reserve_present(&self) -> bool {
        std::fs::metadata(&self.reserve_path).is_ok_and(|m| m.len() >= self.reserve_bytes)
    }

    /// Writes the reserve under a temporary name and renames it into place, so a half-written
    /// reserve is never taken for a whole one.
    fn create_reserve(&self) -> Result<(), GuardError> {
        let tmp = self.dir.join(format!("{RESERVE_FILE}.tmp"));
        let err = |source| GuardError::Reserve {
            path: tmp.display().to_string(),
            source,
        };
        let written = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            // fallocate reserves blocks without writing them; where the filesystem cannot,
            // zeros are written instead.
            match rustix::fs::fallocate(
                &f,
                rustix::fs::FallocateFlags::empty(),
                0,
                self.reserve_bytes,
            ) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                    let zeros = vec![0u8; 64 * 1024];
                    let mut left = self.reserve_bytes;
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        f.write_all(&zeros[..n])?;
                        left -= n as u64;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &self.reserve_path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }

    fn remove_reserve(&self) {
        for p in [
            self.reserve_path.clone(),
            self.dir.join(format!("{RESERVE_FILE}.tmp")),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!("releasing the disk reserve {}: {e}", p.display()),
            }
        }
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!("fsync {}: {e}", self.dir.display());
        }
    }

    fn enter_full(&mut self, why: String) {
        self.full.store(true, Ordering::Release);
        self.in_full = true;
        // Free the reserve first: the index updates that seal the stopped calls need the room.
        self.remove_reserve();
        tracing::error!(
            storage = %self.dir.display(),
            "storage is full ({why}): open calls are sealed as interrupted (end_reason {END_DISK_FULL}) and no call starts until space returns"
        );
        self.full_why = Some(why);
        self.full_alarm_due = true;
    }

    /// Leaves the full state once twice the reserve is free: the reserve is recreated first, so
    /// the next "disk full" again has room to seal its calls.
    fn try_resume(&mut self) {
        let u = match usage(&self.dir) {
            Ok(u) => u,
            Err(e) => return self.log_once(e.to_string()),
        };
        if u.avail_bytes < 2 * self.reserve_bytes || u.avail_bytes < self.reserve_bytes / 4 {
            return;
        }
        if let Err(e) = self.create_reserve() {
            return self.log_once(format!("disk reserve: {e}"));
        }
        match alarms::clear(&self.conn, alarms::DISK_FULL, &self.clock.utc_string()) {
            Ok(_) => self.full_alarm_maybe_active = false,
            Err(e) => return self.log_once(format!("clearing alarm {}: {e}", alarms::DISK_FULL)),
        }
        self.in_full = false;
        self.full_why = None;
        self.full_alarm_due = false;
        self.full.store(false, Ordering::Release);
        tracing::info!(
            storage = %self.dir.display(),
            free = %mib(u.avail_bytes),
            "storage has space again: recording resumes"
        );
    }

    fn log_once(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::error!("disk guard: {msg}");
            self.last_error = Some(msg);
        }
    }

    /// Takes one message; returns true on `Stop`.
    fn take(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Full { why } => {
                if !self.in_full {
                    self.enter_full(why);
                }
            }
            Msg::Seal {
                call_id,
                end_reason,
                why,
            } => self.pending.push(PendingSeal {
                call_id,
                end_reason,
                why,
                attempts: 0,
            }),
            Msg::Stop => return true,
        }
        false
    }

    /// Runs until [`GuardHandle::stop`] (or every handle is gone), sealing what is pending
    /// before it returns.
    pub fn run(mut self) {
        let mut stopping = false;
        loop {
            // Messages first, so a "full" report is acted on before anything else writes.
            while let Ok(msg) = self.rx.try_recv() {
                stopping |= self.take(msg);
            }
            if stopping {
                // Only what the workers handed over; no deleting on the way out.
                self.seal_pending();
                break;
            }
            self.tick();
            let wait = if self.in_full || !self.pending.is_empty() {
                self.interval.min(BUSY_WAIT)
            } else {
                self.interval
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => stopping |= self.take(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
        }
        if !self.pending.is_empty() {
            tracing::warn!(
                calls = self.pending.len(),
                "stopping with calls not yet sealed; start-up recovery seals them next time"
            );
        }
    }

    fn tick(&mut self) {
        if !self.in_full {
            let why = if self.full.load(Ordering::Acquire) {
                Some("a writer reported no space left".to_owned())
            } else {
                match usage(&self.dir) {
                    Ok(u) => self.check_space(&u),
                    Err(e) => {
                        self.log_once(e.to_string());
                        None
                    }
                }
            };
            if let Some(why) = why {
                self.enter_full(why);
            }
        }
        if self.in_full && self.full_alarm_due {
            let detail = format!(
                "storage {} is full ({}); recording stopped, open calls were sealed as interrupted; free space on it (recording resumes by itself)",
                self.dir.display(),
                self.full_why.as_deref().unwrap_or("no space left")
            );
            match alarms::raise(
                &self.conn,
                alarms::DISK_FULL,
                &detail,
                &self.clock.utc_string(),
            ) {
                Ok(_) => {
                    self.full_alarm_due = false;
                    self.full_alarm_maybe_active = true;
                }
                Err(e) => self.log_once(format!("raising alarm {}: {e}", alarms::DISK_FULL)),
            }
        }
        self.seal_pending();
        match lifecycle::finish_garbage(&self.conn, &self.dir, &self.clock.utc_string()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(calls = n, "completed pending deletions"),
            Err(e) => self.log_once(format!("completing pending deletions: {e}")),
        }
        if let Err(e) = self.pressure_pass() {
            self.log_once(format!("disk pressure: {e}"));
        }
        self.retention_pass();
        if self.in_full {
            self.try_resume();
        } else if self.full_alarm_maybe_active {
            // An alarm left by a previous run whose disk has space now.
            if alarms::clear(&self.conn, alarms::DISK_FULL, &self.clock.utc_string()).is_ok() {
                self.full_alarm_maybe_active = false;
            }
        }
    }

    /// Applies the retention rules once an hour (`store::retention`; held calls are kept).
    fn retention_pass(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_retention {
            return;
        }
        self.next_retention = now + RETENTION_EVERY;
        let run = crate::store::retention::run(
            &self.conn,
            &self.dir,
            &self.retention,
            self.clock.now_utc(),
            ACTOR,
            false,
        );
        match run {
            Ok(o) if o.deleted_calls > 0 => tracing::info!(
                calls = o.deleted_calls,
                bytes = o.freed_bytes,
                held = o.plan.held.len(),
                "retention: deleted recordings past their keep period"
            ),
            Ok(_) => {}
            Err(e) => self.log_once(format!("retention: {e}")),
        }
    }

    fn seal_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for mut p in pending {
            match seal(&self.conn, &self.dir, p.call_id, p.end_reason, &p.why) {
                Ok(()) => {}
                Err(e) => {
                    p.attempts += 1;
                    if p.attempts == 1 {
                        tracing::error!(
                            call_id = p.call_id,
                            "sealing the interrupted call failed (retrying): {e}"
                        );
                    }
                    self.pending.push(p);
                }
            }
        }
    }

    /// At or above high water, applies `storage.pressure_policy`; raises or clears
    /// `disk_pressure`.
    fn pressure_pass(&mut self) -> Result<(), GuardError> {
        let u = usage(&self.dir)?;
        if u.used_percent() < f64::from(self.high_percent) {
            if self.pressure_alarm_maybe_active {
                alarms::clear(&self.conn, alarms::DISK_PRESSURE, &self.clock.utc_string())?;
                self.pressure_alarm_maybe_active = false;
            }
            return Ok(());
        }
        // With [archive], a call whose archive copy is not confirmed goes under neither policy:
        // retention's plan keeps it (`Plan::not_archived`) and the pressure candidates leave it
        // out; the alarm says so when that is what keeps the disk full.
        match self.policy {
            PressurePolicy::Keep => self.pressure_keep(),
            PressurePolicy::OldestFirst => self.pressure_oldest_first(u),
        }
    }

    /// With `[archive]`: what the archive backlog is, for the `disk_pressure` alarm (the
    /// shipper's last error says why it is stuck). Empty without an archive or a backlog.
    fn backlog_note(&self) -> Result<String, GuardError> {
        if !self.retention.require_archived {
            return Ok(String::new());
        }
        let b = store::archive::backlog(&self.conn, self.clock.now_utc())?;
        if b.calls == 0 {
            return Ok(String::new());
        }
        Ok(format!(
            " (archive backlog: {} call(s), {} bytes not archived, the oldest ended {}; last shipper error: {})",
            b.calls,
            b.bytes,
            b.oldest_ended_at_utc.as_deref().unwrap_or("?"),
            b.last_error.as_deref().unwrap_or("none recorded; is `callrec ship` running?")
        ))
    }

    /// `keep`: only what retention has already made due may go. Retention runs now rather than
    /// at its next hourly pass; if the disk is still at or above high water, the alarm says
    /// that no promise was broken and what to do.
    fn pressure_keep(&mut self) -> Result<(), GuardError> {
        let out = crate::store::retention::run(
            &self.conn,
            &self.dir,
            &self.retention,
            self.clock.now_utc(),
            ACTOR,
            false,
        )?;
        if out.deleted_calls > 0 {
            tracing::warn!(
                calls = out.deleted_calls,
                bytes = out.freed_bytes,
                "disk pressure: ran retention early; deleted the recordings already past their keep period"
            );
        }
        let u = usage(&self.dir)?;
        if u.used_percent() >= f64::from(self.high_percent) {
            let held = out.plan.held.len();
            let mut held = if held > 0 {
                format!(", {held} due call(s) kept on legal hold")
            } else {
                String::new()
            };
            let unarchived = &out.plan.not_archived;
            if !unarchived.is_empty() {
                held.push_str(&format!(
                    ", {} due call(s) ({} bytes) kept because their archive copy is not confirmed yet{}",
                    unarchived.len(),
                    unarchived.iter().map(|d| d.bytes).sum::<i64>(),
                    self.backlog_note()?
                ));
            }
            let detail = format!(
                "storage {} is {:.1}% used (high water {}%), {} free. pressure_policy = \"keep\": no call is deleted before its retention period ends, and none more is due{held}. Free space or add storage, or shorten [retention] rules; new calls are refused only once the disk is full (pressure_policy = \"oldest_first\" would delete the oldest calls instead)",
                self.dir.display(),
                u.used_percent(),
                self.high_percent,
                mib(u.avail_bytes)
            );
            alarms::raise(
                &self.conn,
                alarms::DISK_PRESSURE,
                &detail,
                &self.clock.utc_string(),
            )?;
            self.pressure_alarm_maybe_active = true;
        } else if self.pressure_alarm_maybe_active {
            alarms::clear(&self.conn, alarms::DISK_PRESSURE, &self.clock.utc_string())?;
            self.pressure_alarm_maybe_active = false;
        }
        Ok(())
    }

    /// `oldest_first`: deletes the oldest deletable calls while usage is at or above high water,
    /// down to low water.
    fn pressure_oldest_first(&mut self, mut u: Usage) -> Result<(), GuardError> {
        let high = f64::from(self.high_percent);
        let reason = format!(
            "disk pressure: storage {:.0}% used (high water {}%)",
            u.used_percent(),
            self.high_percent
        );
        let first_need = u.bytes_above(self.low_percent);
        let mut freed_claimed = 0u64;
        let mut exhausted = false;
        for _ in 0..PASS_MAX_BATCHES {
            if u.used_percent() <= f64::from(self.low_percent) {
                break;
            }
            // Deleted files may stay allocated while someone holds them open (a download in
            // progress): stop after twice what was needed and let the next tick look again,
            // rather than delete everything for space that does not come back yet.
            if freed_claimed > 2 * first_need + self.reserve_bytes {
                tracing::warn!(
                    "disk pressure: deleted {} but usage is still {:.1}%; files may be held open; waiting for the next check",
                    mib(freed_claimed),
                    u.used_percent()
                );
                break;
            }
            let need = u.bytes_above(self.low_percent);
            let candidates = lifecycle::pressure_candidates(
                &self.conn,
                BATCH_MAX_CALLS,
                self.retention.require_archived,
            )?;
            if candidates.is_empty() {
                exhausted = true;
                break;
            }
            let mut ids = Vec::new();
            let mut sum = 0u64;
            for (id, bytes) in candidates {
                if sum >= need && !ids.is_empty() {
                    break;
                }
                ids.push(id);
                sum += bytes.max(0) as u64;
            }
            let before = u.used_percent();
            match lifecycle::delete_calls(
                &self.conn,
                &self.dir,
                &ids,
                &Deletion {
                    kind: DeletionKind::Pressure,
                    reason: &reason,
                    actor: ACTOR,
                    now_utc: &self.clock.utc_string(),
                },
            ) {
                Ok(_) => {}
                // A hold placed since the candidates were listed: list again.
                Err(lifecycle::LifecycleError::Held { call_id, .. }) => {
                    tracing::info!(
                        call_id,
                        "disk pressure: call put on hold meanwhile; skipped"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            freed_claimed += sum;
            let used_before = u.used_bytes;
            u = usage(&self.dir)?;
            tracing::warn!(
                calls = ?ids,
                bytes = sum,
                "disk pressure: deleted the oldest {} call(s) not on hold; storage {:.1}% -> {:.1}% used (high water {}%, low water {}%)",
                ids.len(),
                before,
                u.used_percent(),
                self.high_percent,
                self.low_percent
            );
            if u.used_bytes >= used_before {
                // Nothing came back (files held open, or the index grew by more than the
                // calls took): deleting on would not help now; look again next tick.
                tracing::warn!(
                    "disk pressure: the deletion freed no space yet; waiting for the next check"
                );
                break;
            }
        }
        if u.used_percent() >= high {
            if exhausted {
                let why = if self.retention.require_archived {
                    format!(
                        "every remaining call is on legal hold, still recording, or not yet confirmed in the archive{}. Free space, release holds, or get the shipper through its backlog",
                        self.backlog_note()?
                    )
                } else {
                    "every remaining call is on legal hold or still recording. Free space or release holds".to_owned()
                };
                let detail = format!(
                    "storage {} is {:.1}% used (high water {}%), {} free, and nothing more may be deleted: {why}",
                    self.dir.display(),
                    u.used_percent(),
                    self.high_percent,
                    mib(u.avail_bytes)
                );
                alarms::raise(
                    &self.conn,
                    alarms::DISK_PRESSURE,
                    &detail,
                    &self.clock.utc_string(),
                )?;
                self.pressure_alarm_maybe_active = true;
            }
        } else if self.pressure_alarm_maybe_active {
            alarms::clear(&self.conn, alarms::DISK_PRESSURE, &self.clock.utc_string())?;
            self.pressure_alarm_maybe_active = false;
        }
        Ok(())
    }
}

/// Seals a call whose recording stopped on an error: the file is trimmed to its last intact
/// page and resealed (start-up recovery's logic), the row gets its true duration, size and hash,
/// status `interrupted`, `end_reason` and a note saying why. A call already finalized is left
/// alone.
pub fn seal(
    conn: &Connection,
    storage_dir: &Path,
    call_id: i64,
    end_reason: &str,
    why: &str,
) -> Result<(), GuardError> {
    let row = store::get_call(conn, call_id)?;
    if row.status != crate::store::CallStatus::Recording {
        return Ok(());
    }
    let r = recovery::recover_call(conn, storage_dir, &row)?;
    let sealed = store::get_call(conn, call_id)?;
    let what = if end_reason == END_DISK_FULL {
        "the storage filesystem is full"
    } else {
        "a write error"
    };
    let torn = if r.trimmed_bytes > 0 {
        format!(", cut a torn page of {} bytes", r.trimmed_bytes)
    } else {
        String::new()
    };
    let note = format!(
        "recording stopped: {what} ({why}); kept the {} ms that reached the disk{torn}",
        r.duration_ms
    );
    // The same figures again with the true reason: the ledger entry (which carries no reason)
    // is unchanged, so finalizing twice adds no second entry.
    store::finalize_call(
        conn,
        &Finalized {
            call_id,
            status: crate::store::CallStatus::Interrupted,
            ended_at_utc: sealed
                .ended_at_utc
                .as_deref()
                .unwrap_or(&sealed.started_at_utc),
            duration_ms: sealed.duration_ms.max(0) as u64,
            bytes: sealed.bytes.max(0) as u64,
            sha256: sealed.sha256.as_deref(),
            dropped_frames: sealed.dropped_frames.max(0) as u64,
            end_reason,
            note: Some(&note),
        },
    )?;
    tracing::warn!(
        call_id,
        duration_ms = r.duration_ms,
        end_reason,
        "call sealed as interrupted: {note}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_percent_and_bytes_above() {
        let u = Usage {
            total_bytes: 1000,
            used_bytes: 960,
            avail_bytes: 40,
        };
        assert!((u.used_percent() - 96.0).abs() < 1e-9);
        assert_eq!(u.bytes_above(90), 60);
        assert_eq!(u.bytes_above(97), 0);
    }

    #[test]
    fn reserve_is_clamped() {
        assert_eq!(reserve_bytes_for(1 << 20), RESERVE_MIN_BYTES);
        assert_eq!(reserve_bytes_for(32 << 20), 1 << 20);
        assert_eq!(reserve_bytes_for(1 << 40), RESERVE_MAX_BYTES);
    }

    #[test]
    fn no_space_errors_are_recognised() {
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        assert!(is_disk_full_io(&e));
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(!is_disk_full_io(&e));
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(is_disk_full_sql(&full));
    }
}
