//! The seam between a seat's state machine and everything it changes outside itself: the call's
//! row, intervals and tags in the SQLite index, the call file (encoder and Ogg writer), the fsync
//! thread, and the disk guard. [`StoreIo`] is the real side, one per worker thread; the seat's
//! unit tests put an in-memory recorder of rows in its place.
//!
//! The real side is asynchronous: everything that touches the index or fsyncs runs on the
//! indexer thread (`indexer`), and nothing here ever waits for it. A call is named by a token
//! from its start request on; while the indexer opens it, its frames are held in a bounded
//! backlog ([`BACKLOG_MS`]) and written, in order, once the open file comes back. A stop that
//! arrives meanwhile is carried out once the backlog is written.
//!
//! A side carries out what the seat asks and reports what failed; it must never decide seat state
//! (idle / starting / recording / paused is the seat's alone), never block on the disk guard, the
//! index or an fsync, never retry a failed write, and never allocate per frame in `write_frame`
//! beyond what the encoder does (the backlog grows by doubling, only while a call is opening).

use super::call::{hand_over, CallError, CallWriter};
use super::control::Response;
use super::disk_guard::{GuardHandle, END_DISK_FULL};
use super::indexer::{AgentState, CallToken, IntervalToken, Job, Opened, Reply, StopOutcome};
use super::syncer::SyncJob;
use crate::config::EncoderConfig;
use crate::store::CallMeta;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the workers share: where files go, the encoder, and the queues to the syncer and the
/// indexer. Nothing in it can make a worker wait (no lock, no connection).
pub struct CallContext {
    pub storage_dir: PathBuf,
    pub encoder: EncoderConfig,
    pub fsync_interval: Duration,
    pub syncer: Sender<SyncJob>,
    pub indexer: Sender<Job>,
    /// The disk guard: whether the storage is full, and where stopped calls go to be sealed.
    pub guard: GuardHandle,
    /// Where a call's start time comes from (its end is the start plus its audio's length).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Source of worker-side call and interval tokens, unique in this process.
    next_token: AtomicI64,
}

impl CallContext {
    pub fn new(
        storage_dir: PathBuf,
        encoder: EncoderConfig,
        fsync_interval: Duration,
        syncer: Sender<SyncJob>,
        indexer: Sender<Job>,
        guard: GuardHandle,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        CallContext {
            storage_dir,
            encoder,
            fsync_interval,
            syncer,
            indexer,
            guard,
            clock,
            next_token: AtomicI64::new(1),
        }
    }

    /// A new token, never handed out before in this process.
    pub fn token(&self) -> i64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a seat does to the store and the file of its call. Calls and intervals are named by
/// the tokens `start_call` and `open_interval` return; a token the side does not hold (any
/// more) is ignored.
pub trait SeatIo {
    /// True while the disk guard says the storage is full: no call may start, open calls stop.
    fn storage_full(&self) -> bool;
    /// Where calls are stored, for messages to the user.
    fn storage_dir(&self) -> &Path;
    /// Asks for the call to be opened (row `recording`, file with headers, both durable); from
    /// now on its frames are accepted. Its row id follows ([`SeatIo::row_id`]), or, if the
    /// start fails, [`SeatIo::lost`] says so.
    fn start_call(
        &mut self,
        seat_id: &str,
        mode: &'static str,
        meta: CallMeta,
        dropped_now: u64,
    ) -> Result<CallToken, CallError>;
    /// The call's row id, once known (`None` while it is being opened).
    fn row_id(&self, call: CallToken) -> Option<i64>;
    /// True once, when the side ended the call on its own (the index refused its start, or a
    /// held frame could not be written): the seat is idle again.
    fn lost(&mut self, call: CallToken) -> bool;
    /// Writes one frame of the call (silence of the same length when `silent`) and schedules
    /// fsyncs. `captured_at` is when the frame's oldest sample entered its ring. `Ok(false)`:
    /// the frame was dropped, the call's backlog being full.
    fn write_frame(
        &mut self,
        call: CallToken,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
        dropped_now: u64,
    ) -> Result<bool, CallError>;
    /// Audio accepted for the call so far (written or held).
    fn duration_ms(&self, call: CallToken) -> u64;
    /// Longest time so far from a sample entering its ring to its page reaching the OS.
    fn max_page_latency_ms(&self, call: CallToken) -> u64;
    /// Closes the file and completes the row with `end_reason` (once the call is open and its
    /// backlog written). On failure the call is sealed as `interrupted` by the disk guard;
    /// either way the seat no longer holds it.
    fn finish_call(&mut self, call: CallToken, end_reason: &str) -> Result<(), CallError>;
    /// After a write error: closes the file where it stands; the disk guard seals the call.
    fn abandon_call(&mut self, call: CallToken, err: &CallError);
    /// The storage is full: closes the file; the disk guard seals the call (`disk_full`).
    fn stop_for_full_disk(&mut self, call: CallToken);
    /// Opens an interval (`pause`, `gap`) at `start_ms` into the call; returns its token.
    fn open_interval(
        &mut self,
        call: CallToken,
        kind: &'static str,
        start_ms: u64,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<IntervalToken, CallError>;
    /// Closes an interval of the call at `end_ms` into it.
    fn close_interval(
        &mut self,
        call: CallToken,
        interval: IntervalToken,
        end_ms: u64,
    ) -> Result<(), CallError>;
    /// Adds tags to the call and sets the metadata fields `meta` names (others are kept).
    fn tag(&mut self, call: CallToken, tags: &[String], meta: &CallMeta) -> Result<(), CallError>;
    /// Records the call's outcome (checked against its campaign's list by the indexer).
    fn set_outcome(&mut self, call: CallToken, outcome: StopOutcome);
    /// Answers `reply` with the call's row id once what was asked of the call so far is done
    /// (or with why it failed).
    fn reply_when_done(&mut self, call: CallToken, reply: Reply);
    /// Records a state the CTI reported for the seat's agent, timed now, and answers `reply`
    /// once it is stored (or refused: a wrap-up with no call to wrap up).
    fn agent_state(&mut self, seat: &str, change: AgentChange, reply: Reply);
    /// The CTI announced a call at `seat` (a control `start`, now): `Ok` the call the seat
    /// started for it, `Err` why the seat refused it. For the completeness report and alarm.
    fn announced(&mut self, seat: &str, call: Result<CallToken, String>);
}

/// A CTI agent state for [`SeatIo::agent_state`].
pub struct AgentChange {
    pub state: AgentState,
    /// The agent logging in.
    pub agent: Option<String>,
    /// Who reported it, for the audit row.
    pub by: String,
    /// The seat's call, if one is open.
    pub current_call: Option<CallToken>,
}

/// Longest a call's audio is held while the indexer opens it; beyond, frames are dropped (and
/// counted, and logged). At 16 kHz stereo that is ~7.7 MB per waiting seat, allocated only while
/// it waits.
pub const BACKLOG_MS: u64 = 60_000;
/// Held frames written per call and poll (10 ms) once the call is open: 16 × 20 ms = 32× real
/// time, so a full backlog drains in ~2 s without one poll encoding for long.
const CATCH_UP_FRAMES_PER_POLL: usize = 16;

/// Frames held, in order, while the call is opened.
#[derive(Default)]
struct Backlog {
    samples: Vec<f32>,
    /// Per frame: written as silence, and when its oldest sample entered its ring.
    frames: VecDeque<(bool, Instant)>,
    /// Start in `samples` of the oldest frame still held.
    read: usize,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn push(&mut self, frame: &[f32], silent: bool, at: Instant) {
        self.samples.extend_from_slice(frame);
        self.frames.push_back((silent, at));
    }

    /// Writes up to `max` held frames with `w`; returns the first error.
    fn write_some(
        &mut self,
        max: usize,
        frame_len: usize,
        mut w: impl FnMut(&[f32], bool, Instant) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        for _ in 0..max {
            let Some((silent, at)) = self.frames.pop_front() else {
                break;
            };
            let start = self.read;
            self.read += frame_len;
            w(&self.samples[start..self.read], silent, at)?;
        }
        if self.frames.is_empty() {
            // Capacity is kept for the rest of the call: no reallocation if it waits again.
            self.samples.clear();
            self.read = 0;
        } else if self.read > self.samples.len() / 2 {
            self.samples.drain(..self.read);
            self.read = 0;
        }
        Ok(())
    }
}

/// How a call the seat let go of ends, once it is open and its backlog written.
enum Ending {
    Finish {
        end_reason: String,
        replies: Vec<Reply>,
    },
    /// Hand it to the disk guard to seal (write error, full disk): the backlog is discarded.
    Seal {
        end_reason: &'static str,
        why: String,
    },
}

/// A call of one of the worker's seats, from its start request to its `End` job.
struct Slot {
    /// `None` while the indexer opens the call (or after its start failed).
    writer: Option<CallWriter>,
    /// The start failed, or a held frame could not be written: the call is over.
    failed: bool,
    backlog: Backlog,
    frame_len: usize,
    frames_accepted: u64,
    dropped_at_start: u64,
    dropped_now: u64,
    /// Frames dropped because the backlog was full.
    overflow_frames: u64,
    ending: Option<Ending>,
}

impl Slot {
    fn dropped_frames(&self) -> u64 {
        self.dropped_now.saturating_sub(self.dropped_at_start) + self.overflow_frames
    }
}

/// The real side: call files, the indexer's queue, the syncer and the disk guard. Holds the
/// calls of one worker's seats. [`StoreIo::poll`] and [`StoreIo::flush`] run every tick.
pub struct StoreIo<'a> {
    ctx: &'a CallContext,
    calls: HashMap<CallToken, Slot>,
    opened_tx: Sender<Opened>,
    opened_rx: Receiver<Opened>,
    /// Jobs of this tick, sent by `flush` (so that a request's reply can ride on its last job).
    outbox: Vec<Job>,
    /// Start answers, sent by `flush` once the seats have published the new state.
    answers: Vec<(Reply, Response)>,
    max_backlog_frames: usize,
    frame_ms: u64,
}

impl<'a> StoreIo<'a> {
    pub fn new(ctx: &'a CallContext) -> Self {
        let (opened_tx, opened_rx) = mpsc::channel();
        let frame_ms = u64::from(ctx.encoder.frame_ms.max(1));
        StoreIo {
            ctx,
            calls: HashMap::new(),
            opened_tx,
            opened_rx,
            outbox: Vec::new(),
            answers: Vec::new(),
            max_backlog_frames: (BACKLOG_MS / frame_ms) as usize,
            frame_ms,
        }
    }

    /// True when no call is held (all ended and handed to the indexer).
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.outbox.is_empty() && self.answers.is_empty()
    }

    /// Takes the calls the indexer opened, writes held frames, and ends the calls whose seat let
    /// go of them once their backlog is written. Never blocks.
    pub fn poll(&mut self) {
        while let Ok(opened) = self.opened_rx.try_recv() {
            self.answers.extend(opened.answers);
            let Some(slot) = self.calls.get_mut(&opened.call) else {
                continue;
            };
            match opened.result {
                Ok(mut w) => {
                    w.dropped_frames = slot.dropped_frames();
                    slot.writer = Some(w);
                }
                Err(_) => {
                    // The indexer logged why; the seat learns it through `lost`.
                    slot.failed = true;
                    slot.backlog = Backlog::default();
                }
            }
        }
        let ctx = self.ctx;
        let mut done = Vec::new();
        for (&token, slot) in &mut self.calls {
            let dropped = slot.dropped_frames();
            if let (Some(w), false) = (slot.writer.as_mut(), slot.backlog.is_empty()) {
                let budget = if matches!(slot.ending, Some(Ending::Seal { .. })) {
                    0
                } else {
                    CATCH_UP_FRAMES_PER_POLL
                };
                w.dropped_frames = dropped;
                let r = slot
                    .backlog
                    .write_some(budget, slot.frame_len, |f, silent, at| {
                        w.write(&ctx.syncer, ctx.fsync_interval, f, silent, at)
                    });
                if let Err(e) = r {
                    if let Some(w) = slot.writer.take() {
                        let id = w.id;
                        drop(w);
                        hand_over(&ctx.guard, id, &e);
                    }
                    slot.failed = true;
                    slot.backlog = Backlog::default();
                    if matches!(slot.ending, Some(Ending::Seal { .. })) {
                        slot.ending = None;
                    }
                }
            }
            let ready = slot.failed
                || matches!(slot.ending, Some(Ending::Seal { .. })) && slot.writer.is_some()
                || slot.writer.is_some() && slot.backlog.is_empty();
            if slot.ending.is_some() && ready {
                done.push(token);
            }
        }
        for token in done {
            if let Some(slot) = self.calls.remove(&token) {
                self.end(token, slot);
            }
        }
    }

    /// Sends this tick's jobs to the indexer and the start answers to their clients.
    pub fn flush(&mut self) {
        for job in self.outbox.drain(..) {
            if let Err(lost) = self.ctx.indexer.send(job) {
                lost.0.refuse("the recorder is shutting down");
            }
        }
        for (reply, resp) in self.answers.drain(..) {
            let _ = reply.send(resp);
        }
    }

    /// Queues the `End` job of a call the seat let go of (open, backlog written, or failed).
    fn end(&mut self, token: CallToken, mut slot: Slot) {
        let (closed, end_reason, replies) = match slot.ending.take() {
            Some(Ending::Finish {
                end_reason,
                replies,
            }) => {
                let closed = slot.writer.take().map(|mut w| {
                    w.dropped_frames = slot.dropped_frames();
                    let id = w.id;
                    w.close().inspect_err(|e| hand_over(&self.ctx.guard, id, e))
                });
                (closed, end_reason, replies)
            }
            Some(Ending::Seal { end_reason, why }) => {
                if let Some(w) = slot.writer.take() {
                    let id = w.id;
                    drop(w);
                    self.ctx.guard.seal(id, end_reason, &why);
                }
                (None, end_reason.to_owned(), Vec::new())
            }
            None => (None, String::new(), Vec::new()),
        };
        if slot.overflow_frames > 0 {
            tracing::warn!(
                call = token,
                frames = slot.overflow_frames,
                "frames dropped while the index was unavailable (backlog of {} s full)",
                BACKLOG_MS / 1000
            );
        }
        self.outbox.push(Job::End {
            call: token,
            closed,
            end_reason,
            replies,
        });
    }

    /// The seat let go of a call: end it now if it can be, else once it is open.
    fn let_go(&mut self, call: CallToken, ending: Ending) {
        let Some(slot) = self.calls.get_mut(&call) else {
            return;
        };
        if matches!(ending, Ending::Seal { .. }) {
            slot.backlog = Backlog::default();
        }
        slot.ending = Some(ending);
        let ready = slot.failed || slot.writer.is_some() && slot.backlog.is_empty();
        if ready {
            if let Some(slot) = self.calls.remove(&call) {
                self.end(call, slot);
            }
        }
    }

    /// The last job queued this tick for `call`, if any.
    fn last_job(&mut self, call: CallToken) -> Option<&mut Job> {
        self.outbox
            .iter_mut()
            .rev()
            .find(|j| j.call() == Some(call))
    }
}

impl SeatIo for StoreIo<'_> {
    fn storage_full(&self) -> bool {
        self.ctx.guard.is_full()
    }

    fn storage_dir(&self) -> &Path {
        &self.ctx.storage_dir
    }

    fn start_call(
        &mut self,
        seat_id: &str,
        mode: &'static str,
        meta: CallMeta,
        dropped_now: u64,
    ) -> Result<CallToken, CallError> {
        let call = self.ctx.token();
        // The call starts now, whatever the index makes it wait: its start time and its first
        // frame are this request's.
        self.outbox.push(Job::Start {
            call,
            seat: seat_id.to_owned(),
            mode,
            meta,
            tags: Vec::new(),
            started_at_utc: self.ctx.clock.utc_string(),
            started_mono_ms: self.ctx.clock.mono_ms(),
            worker: self.opened_tx.clone(),
            replies: Vec::new(),
        });
        self.calls.insert(
            call,
            Slot {
                writer: None,
                failed: false,
                backlog: Backlog::default(),
                frame_len: 0,
                frames_accepted: 0,
                dropped_at_start: dropped_now,
                dropped_now,
                overflow_frames: 0,
                ending: None,
            },
        );
        Ok(call)
    }

    fn row_id(&self, call: CallToken) -> Option<i64> {
        self.calls.get(&call)?.writer.as_ref().map(|w| w.id)
    }

    fn lost(&mut self, call: CallToken) -> bool {
        let failed = self
            .calls
            .get(&call)
            .is_some_and(|s| s.failed && s.ending.is_none());
        if failed {
            if let Some(slot) = self.calls.remove(&call) {
                self.end(call, slot);
            }
        }
        failed
    }

    fn write_frame(
        &mut self,
        call: CallToken,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
        dropped_now: u64,
    ) -> Result<bool, CallError> {
        let Some(slot) = self.calls.get_mut(&call) else {
            return Ok(true);
        };
        if slot.failed || slot.ending.is_some() {
            return Ok(true);
        }
        slot.dropped_now = dropped_now;
        slot.frame_len = frame.len();
        if let (Some(w), true) = (slot.writer.as_mut(), slot.backlog.is_empty()) {
            w.dropped_frames =
                slot.dropped_now.saturating_sub(slot.dropped_at_start) + slot.overflow_frames;
            w.write(
                &self.ctx.syncer,
                self.ctx.fsync_interval,
                frame,
                silent,
                captured_at,
            )?;
        } else if slot.backlog.frames.len() < self.max_backlog_frames {
            slot.backlog.push(frame, silent, captured_at);
        } else {
            if slot.overflow_frames == 0 {
                tracing::warn!(
                    call,
                    "the index has kept this call from opening for {} s: its frames are dropped until it opens",
                    BACKLOG_MS / 1000
                );
            }
            slot.overflow_frames += 1;
            return Ok(false);
        }
        slot.frames_accepted += 1;
        Ok(true)
    }

    fn duration_ms(&self, call: CallToken) -> u64 {
        self.calls
            .get(&call)
            .map_or(0, |s| s.frames_accepted * self.frame_ms)
    }

    fn max_page_latency_ms(&self, call: CallToken) -> u64 {
        self.calls
            .get(&call)
            .and_then(|s| s.writer.as_ref())
            .map_or(0, |w| w.max_page_latency_ms)
    }

    fn finish_call(&mut self, call: CallToken, end_reason: &str) -> Result<(), CallError> {
        self.let_go(
            call,
            Ending::Finish {
                end_reason: end_reason.to_owned(),
                replies: Vec::new(),
            },
        );
        Ok(())
    }

    fn abandon_call(&mut self, call: CallToken, err: &CallError) {
        let why = err.to_string();
        if err.is_disk_full() {
            self.ctx.guard.report_full(&why);
        }
        tracing::error!(call, "recording stopped: {why}");
        self.let_go(
            call,
            Ending::Seal {
                end_reason: err.end_reason(),
                why,
            },
        );
    }

    fn stop_for_full_disk(&mut self, call: CallToken) {
        self.let_go(
            call,
            Ending::Seal {
                end_reason: END_DISK_FULL,
                why: "storage full: recording stopped on every seat".into(),
            },
        );
    }

    fn open_interval(
        &mut self,
        call: CallToken,
        kind: &'static str,
        start_ms: u64,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<IntervalToken, CallError> {
        let interval = self.ctx.token();
        self.outbox.push(Job::OpenInterval {
            call,
            interval,
            kind,
            start_ms,
            by: by.map(str::to_owned),
            reason: reason.map(str::to_owned),
            replies: Vec::new(),
        });
        Ok(interval)
    }

    fn close_interval(
        &mut self,
        call: CallToken,
        interval: IntervalToken,
        end_ms: u64,
    ) -> Result<(), CallError> {
        self.outbox.push(Job::CloseInterval {
            call,
            interval,
            end_ms,
            replies: Vec::new(),
        });
        Ok(())
    }

    fn tag(&mut self, call: CallToken, tags: &[String], meta: &CallMeta) -> Result<(), CallError> {
        // Tags sent with the start ride on it: the start is answered once they are stored.
        if let Some(Job::Start {
            tags: start_tags,
            meta: start_meta,
            ..
        }) = self.last_job(call)
        {
            start_tags.extend(tags.iter().cloned());
            merge_meta(start_meta, meta);
            return Ok(());
        }
        self.outbox.push(Job::Tag {
            call,
            tags: tags.to_vec(),
            meta: meta.clone(),
            replies: Vec::new(),
        });
        Ok(())
    }

    fn set_outcome(&mut self, call: CallToken, outcome: StopOutcome) {
        // Queued before the call's End (a stop sets it first), so the indexer has the row.
        self.outbox.push(Job::Outcome { call, outcome });
    }

    fn reply_when_done(&mut self, call: CallToken, reply: Reply) {
        if let Some(replies) = self.last_job(call).and_then(Job::replies_mut) {
            replies.push(reply);
            return;
        }
        if let Some(Ending::Finish { replies, .. }) =
            self.calls.get_mut(&call).and_then(|s| s.ending.as_mut())
        {
            replies.push(reply);
            return;
        }
        self.outbox.push(Job::Reply {
            call,
            replies: vec![reply],
        });
    }

    fn agent_state(&mut self, seat: &str, change: AgentChange, reply: Reply) {
        // Timed here, when the request arrived, whatever the index makes the job wait.
        self.outbox.push(Job::AgentState {
            seat: seat.to_owned(),
            state: change.state,
            agent: change.agent,
            at_utc: self.ctx.clock.utc_string(),
            by: change.by,
            current_call: change.current_call,
            replies: vec![reply],
        });
    }

    fn announced(&mut self, seat: &str, call: Result<CallToken, String>) {
        // Queued after the call's start, so the indexer knows its row (or why it failed).
        self.outbox.push(Job::Announced {
            seat: seat.to_owned(),
            at_utc: self.ctx.clock.utc_string(),
            call,
        });
    }
}

/// Sets in `into` the fields `from` names (as `store::update_meta` does in the row).
fn merge_meta(into: &mut CallMeta, from: &CallMeta) {
    let pairs = [
        (&mut into.agent, &from.agent),
        (&mut into.direction, &from.direction),
        (&mut into.remote_number, &from.remote_number),
        (&mut into.campaign, &from.campaign),
        (&mut into.external_id, &from.external_id),
    ];
    for (to, from) in pairs {
        if from.is_some() {
            to.clone_from(from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::config::Config;
    use crate::record::call::Storage;
    use crate::record::disk_guard::Guard;
    use crate::record::indexer::Indexer;
    use crate::store::{self, CallStatus};
    use std::time::Duration;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The real side and a real indexer thread, while another connection holds the index's
    /// write lock: frames of a call being opened are held (no write waits), a stop is taken
    /// meanwhile, and once the lock goes the call ends complete with every frame, the start
    /// answered with its row id and the stop once the row is final.
    #[test]
    fn frames_are_held_while_the_index_is_locked_and_written_once_the_call_opens() -> TestResult {
        let dir = tempfile::tempdir()?;
        let text = format!(
            "[box]\nid = \"floor-1\"\n[storage]\ndir = {:?}\n[[seat]]\nid = \"s1\"\n[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n",
            dir.path().display().to_string()
        );
        let cfg = Config::parse(&text, Path::new("t.toml"))?;
        let clock =
            SimClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")?.to_utc());
        let conn = store::open_rw(&cfg.db_path())?;
        let (_guard, guard) = Guard::new(&cfg, clock.clone())?;
        let storage = Storage::new(
            cfg.box_.id.clone(),
            dir.path().to_owned(),
            cfg.encoder.clone(),
            guard.clone(),
        );
        let (index_tx, index_rx) = mpsc::channel();
        let rules = crate::record::completeness::Rules::new(&cfg);
        let indexer = std::thread::spawn(move || Indexer::new(conn, storage, rules).run(index_rx));
        let (sync_tx, _sync_rx) = mpsc::channel();
        let ctx = CallContext::new(
            dir.path().to_owned(),
            cfg.encoder.clone(),
            Duration::from_millis(cfg.storage.fsync_interval_ms),
            sync_tx,
            index_tx,
            guard,
            clock,
        );
        let locker = rusqlite::Connection::open(cfg.db_path())?;
        locker.execute_batch("BEGIN IMMEDIATE")?;

        let mut io = StoreIo::new(&ctx);
        let call = io.start_call("s1", "control", CallMeta::default(), 0)?;
        let (start_tx, start_rx) = mpsc::channel();
        io.reply_when_done(call, start_tx);
        io.flush();
        let frame = vec![0.1f32; ctx.encoder.frame_samples() * 2];
        let t0 = Instant::now();
        for _ in 0..100 {
            io.poll();
            assert!(io.write_frame(call, &frame, false, Instant::now(), 0)?);
            io.flush();
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "a write waited");
        assert_eq!(io.row_id(call), None, "the index is locked: not open yet");
        assert_eq!(io.duration_ms(call), 2000);
        io.finish_call(call, "stop")?;
        let (stop_tx, stop_rx) = mpsc::channel();
        io.reply_when_done(call, stop_tx);
        io.flush();
        assert!(start_rx.try_recv().is_err() && stop_rx.try_recv().is_err());

        locker.execute_batch("COMMIT")?;
        let t1 = Instant::now();
        while !io.is_idle() {
            assert!(
                t1.elapsed() < Duration::from_secs(20),
                "the call never ended"
            );
            std::thread::sleep(Duration::from_millis(10));
            io.poll();
            io.flush();
        }
        let start = start_rx.recv_timeout(Duration::from_secs(20))?;
        let stop = stop_rx.recv_timeout(Duration::from_secs(20))?;
        assert!(start.ok && stop.ok, "{start:?} {stop:?}");
        let id = start.call_id.ok_or("no call id")?;
        assert_eq!(stop.call_id, Some(id));
        let row = store::get_call(&locker, id)?;
        assert_eq!(row.status, CallStatus::Complete);
        assert_eq!(row.duration_ms, 2000);
        assert_eq!(row.started_at_utc, "2026-11-27T10:00:00.000Z");
        drop(io);
        drop(ctx);
        indexer.join().map_err(|_| "indexer panicked")?;
        Ok(())
    }
}
