//! One seat on a worker thread: drains its input rings, aligns the parties, and runs the seat
//! state machine (idle / starting / recording / paused) for its mode: `control` (commands),
//! `vox` (voice activated with pre-roll) or `continuous` (files rolled on a fixed interval).
//!
//! Runs on a worker, never on the audio thread. Everything it changes outside itself (the index,
//! the call file, fsyncs, the disk guard) goes through a [`SeatIo`] side, so the state machine
//! is tested without a disk. While the side says the storage is full, a seat keeps draining its
//! rings (capture never backs up) but records nothing: its open call is stopped and handed to
//! the guard, and no call starts until the guard says space is back. A seat must never wait for
//! the guard or retry a start in a loop.
//!
//! A call is named by the token its side gave it: with the real side the index opens it a
//! little later (`starting`: its frames are held until then), and it may still refuse it, which
//! the seat learns from [`SeatIo::lost`] on its next tick.

use super::control::SeatStatus;
use super::indexer::{CallToken, IntervalToken, StopOutcome};
use super::lag_window::LagWindow;
use super::live::{LiveTap, Publisher};
pub use super::seat_error::{CallName, SeatError};
use super::seat_io::SeatIo;
use crate::capture::device::STALL_MS;
use crate::capture::ring::InputShared;
use crate::config::{Party, SeatConfig, SeatMode};
use crate::dsp::align::Aligner;
use crate::dsp::level::rms_dbfs_channel;
use crate::store::CallMeta;
use rtrb::Consumer;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SeatInput {
    pub label: String,
    pub shared: Arc<InputShared>,
    pub consumer: Option<Consumer<f32>>,
    /// Party index (0 agent, 1 customer) of each ring channel, in ring order.
    pub parties: Vec<usize>,
    pub rate_hz: u32,
    scratch: [Vec<f32>; 2],
    was_down: bool,
}

impl SeatInput {
    pub fn new(
        label: String,
        shared: Arc<InputShared>,
        parties: &[(Party, u16)],
        rate_hz: u32,
    ) -> Self {
        SeatInput {
            label,
            shared,
            consumer: None,
            parties: parties.iter().map(|(p, _)| p.index()).collect(),
            rate_hz,
            scratch: [Vec::new(), Vec::new()],
            was_down: false,
        }
    }
}

/// The call a seat has open: its row, and the intervals the seat keeps open in the index.
struct OpenCall {
    /// The side's token for the call (not its row id: that comes later).
    id: CallToken,
    /// The open `pause` interval: frames are written as silence while it is set (invariant 6).
    pause_interval: Option<IntervalToken>,
    /// The open `gap` interval, while an input device is down.
    gap_interval: Option<IntervalToken>,
    /// The open `hold` interval (CTI hold): marks time only, frames are written as ever.
    hold_interval: Option<IntervalToken>,
}

/// The two intervals the CTI marks on a call: a PCI pause (silence is written) and a hold
/// (only the time is marked).
#[derive(Clone, Copy)]
enum Mark {
    Pause,
    Hold,
}

impl Mark {
    /// The interval's `kind` in the index.
    fn kind(self) -> &'static str {
        match self {
            Mark::Pause => "pause",
            Mark::Hold => "hold",
        }
    }

    fn slot(self, call: &mut OpenCall) -> &mut Option<IntervalToken> {
        match self {
            Mark::Pause => &mut call.pause_interval,
            Mark::Hold => &mut call.hold_interval,
        }
    }
}

pub struct Seat {
    pub cfg: SeatConfig,
    inputs: Vec<SeatInput>,
    aligner: Aligner,
    frame: Vec<f32>,
    call: Option<OpenCall>,
    preroll: VecDeque<Vec<f32>>,
    vox_silent_ms: u32,
    frame_ms: u32,
    /// While every input is down: when audio stopped, and how much silence was added since.
    fill: Option<(Instant, usize)>,
    pub status: Arc<Mutex<SeatStatus>>,
    max_lag_ms: u64,
    /// The worst lag of the last minute (`max_lag_ms` also holds every start-up).
    lag_window: LagWindow,
    max_page_latency_ms: u64,
    /// When the oldest sample drained in this pass entered its ring (tick start minus backlog).
    captured_at: Instant,
    /// After a failed automatic start (vox/continuous), no retry before this (e.g. disk full).
    retry_after: Option<Instant>,
    /// The agent logged in at this seat (CTI `login`): calls that name no agent get this one.
    agent: Option<String>,
    /// Frames the side dropped (a call's backlog full while the index kept it from opening),
    /// counted with the rings' drops in the status.
    held_dropped_frames: u64,
    /// Where listeners get this seat's frames live (the control socket subscribes them).
    pub live_tap: Arc<LiveTap>,
    live: Publisher,
}

/// Pause between automatic start attempts after one failed.
const RETRY_START: Duration = Duration::from_secs(5);

fn mode_name(m: SeatMode) -> &'static str {
    match m {
        SeatMode::Control => "control",
        SeatMode::Vox => "vox",
        SeatMode::Continuous => "continuous",
    }
}

impl Seat {
    pub fn new(cfg: SeatConfig, inputs: Vec<SeatInput>, aligner: Aligner, frame_ms: u32) -> Self {
        let status = Arc::new(Mutex::new(SeatStatus {
            seat: cfg.id.clone(),
            mode: mode_name(cfg.mode).into(),
            state: "idle".into(),
            ..Default::default()
        }));
        let frame = vec![0.0; aligner.frame_samples() * 2];
        let live_tap = Arc::new(LiveTap::default());
        Seat {
            live: Publisher::new(live_tap.clone()),
            live_tap,
            cfg,
            inputs,
            aligner,
            frame,
            call: None,
            preroll: VecDeque::new(),
            vox_silent_ms: 0,
            frame_ms,
            fill: None,
            status,
            max_lag_ms: 0,
            lag_window: LagWindow::new(Instant::now()),
            max_page_latency_ms: 0,
            captured_at: Instant::now(),
            retry_after: None,
            agent: None,
            held_dropped_frames: 0,
        }
    }

    fn dropped_total(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| i.shared.dropped_frames.load(Ordering::Relaxed))
            .sum()
    }

    /// One pass: drain rings, fill gaps, run frames through the state machine.
    pub fn tick(&mut self, io: &mut dyn SeatIo) {
        if self.call.as_ref().is_some_and(|c| io.lost(c.id)) {
            // The side logged why (start refused by the index, held audio not written).
            self.call = None;
            if !matches!(self.cfg.mode, SeatMode::Control) {
                self.retry_after = Some(Instant::now() + RETRY_START);
            }
        }
        if io.storage_full() {
            if let Some(call) = self.call.take() {
                tracing::warn!(seat = %self.cfg.id, call_id = call.id, "storage full: call stopped");
                io.stop_for_full_disk(call.id);
            }
        }
        let mut agent_s = 0.0;
        let mut lag_ms = 0u64;
        for inp in &mut self.inputs {
            if let Some(fresh) = inp
                .shared
                .new_consumer
                .lock()
                .ok()
                .and_then(|mut s| s.take())
            {
                inp.consumer = Some(fresh);
                self.aligner.reset_drift();
            }
            let Some(cons) = inp.consumer.as_mut() else {
                continue;
            };
            let n = inp.parties.len();
            let avail = cons.slots() / n * n;
            lag_ms = lag_ms.max((avail / n) as u64 * 1000 / u64::from(inp.rate_hz));
            let Ok(chunk) = cons.read_chunk(avail) else {
                continue;
            };
            let (a, b) = chunk.as_slices();
            for s in &mut inp.scratch {
                s.clear();
            }
            for (i, &v) in a.iter().chain(b.iter()).enumerate() {
                inp.scratch[inp.parties[i % n]].push(v);
            }
            chunk.commit_all();
            for &p in &inp.parties {
                self.aligner.push(p, &inp.scratch[p]);
                if p == 0 {
                    agent_s = inp.scratch[0].len() as f64 / f64::from(inp.rate_hz);
                }
            }
        }
        self.captured_at = Instant::now() - Duration::from_millis(lag_ms);
        self.aligner.steer(agent_s);
        self.fill_gaps(io);
        while self.aligner.pop_frame(&mut self.frame) {
            let frame = std::mem::take(&mut self.frame);
            self.on_frame(io, &frame);
            self.publish_live(io, &frame);
            self.frame = frame;
        }
        self.max_lag_ms = self.max_lag_ms.max(lag_ms);
        self.lag_window.record(Instant::now(), lag_ms);
        self.publish(io, lag_ms);
    }

    /// Keeps the timeline whole while a device is down: silence of the same length (invariant 8).
    fn fill_gaps(&mut self, io: &mut dyn SeatIo) {
        let down: Vec<bool> = self
            .inputs
            .iter()
            .map(|i| i.shared.down.load(Ordering::Relaxed))
            .collect();
        let all_down = down.iter().all(|d| *d);
        if all_down {
            let (since, padded) = *self
                .fill
                .get_or_insert((Instant::now() - Duration::from_millis(STALL_MS), 0));
            let due =
                (since.elapsed().as_secs_f64() * f64::from(self.aligner.enc_rate_hz())) as usize;
            self.aligner.pad_both(due.saturating_sub(padded));
            self.fill = Some((since, due.max(padded)));
        } else {
            self.fill = None;
            for (inp, d) in self.inputs.iter().zip(&down) {
                if *d {
                    for &p in &inp.parties {
                        self.aligner.pad_to_match(p);
                    }
                }
            }
        }
        let any_down = down.iter().any(|d| *d);
        let reason = self
            .inputs
            .iter()
            .zip(&down)
            .filter(|(_, d)| **d)
            .map(|(i, _)| {
                format!(
                    "{} down: {}",
                    i.label,
                    i.shared
                        .last_error
                        .lock()
                        .ok()
                        .and_then(|g| g.clone())
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        for (inp, d) in self.inputs.iter_mut().zip(&down) {
            inp.was_down = *d;
        }
        self.mark_gap(io, any_down, &reason);
    }

    /// Opens the call's `gap` interval when an input went down, closes it when all are back.
    fn mark_gap(&mut self, io: &mut dyn SeatIo, any_down: bool, reason: &str) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let at = io.duration_ms(call.id);
        match (any_down, call.gap_interval) {
            (true, None) => {
                call.gap_interval = io
                    .open_interval(call.id, "gap", at, Some("device"), Some(reason))
                    .ok()
            }
            (false, Some(iv)) => {
                let _ = io.close_interval(call.id, iv, at);
                call.gap_interval = None;
            }
            _ => {}
        }
    }

    fn on_frame(&mut self, io: &mut dyn SeatIo, frame: &[f32]) {
        let (la, lc) = (rms_dbfs_channel(frame, 2, 0), rms_dbfs_channel(frame, 2, 1));
        if let Ok(mut st) = self.status.lock() {
            st.agent_dbfs = la;
            st.customer_dbfs = lc;
        }
        let active = la.max(lc) > self.cfg.vox_threshold_dbfs;
        match self.cfg.mode {
            SeatMode::Control => {}
            SeatMode::Vox if self.call.is_none() => {
                let keep = (self.cfg.vox_pre_roll_ms / self.frame_ms) as usize;
                self.preroll.push_back(frame.to_vec());
                while self.preroll.len() > keep.max(1) {
                    self.preroll.pop_front();
                }
                if active {
                    self.vox_silent_ms = 0;
                    if self.auto_start(io) {
                        // The current frame is the last pre-roll frame; write them all.
                        let pre: Vec<Vec<f32>> = self.preroll.drain(..).collect();
                        for f in pre {
                            self.write(io, &f);
                        }
                    }
                }
                return;
            }
            SeatMode::Vox => {
                self.vox_silent_ms = if active {
                    0
                } else {
                    self.vox_silent_ms + self.frame_ms
                };
                if self.vox_silent_ms >= self.cfg.vox_stop_after_ms {
                    self.vox_silent_ms = 0;
                    let _ = self.stop(io, "vox_silence");
                    return;
                }
            }
            SeatMode::Continuous => {
                let roll = self.call.as_ref().is_some_and(|c| {
                    io.duration_ms(c.id) >= u64::from(self.cfg.roll_interval_s) * 1000
                });
                if roll {
                    let _ = self.stop(io, "roll");
                }
                if self.call.is_none() {
                    self.auto_start(io);
                }
            }
        }
        self.write(io, frame);
    }

    /// The frame for live listeners, after pause handling: silence while the call is paused,
    /// as on disk (invariant 6). Costs an atomic load while no one listens.
    fn publish_live(&mut self, io: &dyn SeatIo, frame: &[f32]) {
        let paused = self
            .call
            .as_ref()
            .is_some_and(|c| c.pause_interval.is_some());
        let call = self.call.as_ref().map(|c| c.id);
        let row = || call.and_then(|c| io.row_id(c));
        self.live.publish(frame, paused, row, call.is_some());
    }

    fn write(&mut self, io: &mut dyn SeatIo, frame: &[f32]) {
        let dropped = self.dropped_total();
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let silent = call.pause_interval.is_some();
        let result = io.write_frame(call.id, frame, silent, self.captured_at, dropped);
        self.max_page_latency_ms = self
            .max_page_latency_ms
            .max(io.max_page_latency_ms(call.id));
        match result {
            Ok(true) => {}
            Ok(false) => self.held_dropped_frames += 1,
            Err(e) => {
                if let Some(c) = self.call.take() {
                    io.abandon_call(c.id, &e);
                }
            }
        }
    }

    /// A start by the seat itself (vox, continuous); after a failure, waits before retrying so a
    /// full disk does not turn into a row per frame.
    fn auto_start(&mut self, io: &mut dyn SeatIo) -> bool {
        // While full, the guard's flag is the whole answer: no attempt, no error per frame, and
        // the first frame after space returns starts the call.
        if io.storage_full() || self.retry_after.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let ok = self.start(io, CallMeta::default()).is_ok();
        self.retry_after = (!ok).then(|| Instant::now() + RETRY_START);
        ok
    }

    /// The open call's side token.
    pub fn current_call(&self) -> Option<CallToken> {
        self.call.as_ref().map(|c| c.id)
    }

    /// Logs an agent in (Some) or out (None) of this seat; a call in progress keeps its agent.
    pub fn set_agent(&mut self, agent: Option<String>) {
        tracing::info!(seat = %self.cfg.id, agent = ?agent, "seat agent changed");
        if let Ok(mut st) = self.status.lock() {
            st.agent = agent.clone();
        }
        self.agent = agent;
    }

    /// Starts a call; returns its token (the row id comes with the side's answer).
    pub fn start(
        &mut self,
        io: &mut dyn SeatIo,
        mut meta: CallMeta,
    ) -> Result<CallToken, SeatError> {
        check_direction(&meta)?;
        if meta.agent.is_none() {
            meta.agent = self.agent.clone();
        }
        if let Some(c) = &self.call {
            return Err(SeatError::AlreadyRecording {
                seat: self.cfg.id.clone(),
                call: CallName(io.row_id(c.id)),
            });
        }
        if io.storage_full() {
            return Err(SeatError::StorageFull {
                dir: io.storage_dir().display().to_string(),
                seat: self.cfg.id.clone(),
            });
        }
        let mode = mode_name(self.cfg.mode);
        let id = io
            .start_call(&self.cfg.id, mode, meta, self.dropped_total())
            .map_err(|source| {
                tracing::error!(seat = %self.cfg.id, "cannot start a call: {source}");
                SeatError::Start {
                    seat: self.cfg.id.clone(),
                    source,
                }
            })?;
        tracing::debug!(seat = %self.cfg.id, call = id, "call starting");
        self.call = Some(OpenCall {
            id,
            pause_interval: None,
            gap_interval: None,
            hold_interval: None,
        });
        Ok(id)
    }

    /// Finishes the open call; the seat is idle afterwards even if finishing failed (the disk
    /// guard then seals the call). A pause or gap still open ends with the call.
    /// Returns the call's token; with the real side, the row is completed later (the
    /// indexer logs it and answers the request).
    pub fn stop(&mut self, io: &mut dyn SeatIo, reason: &str) -> Result<CallToken, SeatError> {
        let id = self.active()?.id;
        self.call = None;
        io.finish_call(id, reason).map_err(|source| {
            tracing::error!(seat = %self.cfg.id, call = id, "finishing the call: {source}");
            SeatError::Finish {
                seat: self.cfg.id.clone(),
                call_id: io.row_id(id).unwrap_or_default(),
                source,
            }
        })?;
        tracing::debug!(seat = %self.cfg.id, call = id, reason, "call stopping");
        Ok(id)
    }

    fn active(&mut self) -> Result<&mut OpenCall, SeatError> {
        let seat = &self.cfg.id;
        self.call
            .as_mut()
            .ok_or_else(|| SeatError::NotRecording { seat: seat.clone() })
    }

    /// PCI pause: from the next frame on, silence is written instead of audio (invariant 6).
    pub fn pause(
        &mut self,
        io: &mut dyn SeatIo,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<CallToken, SeatError> {
        self.open_mark(io, Mark::Pause, by, reason)
    }

    pub fn resume(&mut self, io: &mut dyn SeatIo) -> Result<CallToken, SeatError> {
        self.close_mark(io, Mark::Pause)
    }

    /// CTI hold: opens the call's `hold` interval. Nothing about the audio changes (a pause
    /// silences it; a hold only marks the time the customer waited).
    pub fn hold(
        &mut self,
        io: &mut dyn SeatIo,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<CallToken, SeatError> {
        self.open_mark(io, Mark::Hold, by, reason)
    }

    /// CTI unhold: closes the call's `hold` interval.
    pub fn unhold(&mut self, io: &mut dyn SeatIo) -> Result<CallToken, SeatError> {
        self.close_mark(io, Mark::Hold)
    }

    /// Opens the open call's pause or hold interval at the call's current time.
    fn open_mark(
        &mut self,
        io: &mut dyn SeatIo,
        mark: Mark,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<CallToken, SeatError> {
        let seat = self.cfg.id.clone();
        let call = self.active()?;
        let token = call.id;
        if mark.slot(call).is_some() {
            let call = CallName(io.row_id(token));
            return Err(match mark {
                Mark::Pause => SeatError::AlreadyPaused { seat, call },
                Mark::Hold => SeatError::AlreadyOnHold { seat, call },
            });
        }
        let at = io.duration_ms(token);
        let iv = io
            .open_interval(token, mark.kind(), at, by, reason)
            .map_err(|source| {
                let call_id = io.row_id(token).unwrap_or_default();
                match mark {
                    Mark::Pause => SeatError::Pause {
                        seat,
                        call_id,
                        source,
                    },
                    Mark::Hold => SeatError::Hold {
                        seat,
                        call_id,
                        source,
                    },
                }
            })?;
        *mark.slot(self.active()?) = Some(iv);
        Ok(token)
    }

    /// Closes the open call's pause or hold interval at the call's current time.
    fn close_mark(&mut self, io: &mut dyn SeatIo, mark: Mark) -> Result<CallToken, SeatError> {
        let seat = self.cfg.id.clone();
        let call = self.active()?;
        let token = call.id;
        let Some(iv) = mark.slot(call).take() else {
            let call = CallName(io.row_id(token));
            return Err(match mark {
                Mark::Pause => SeatError::NotPaused { seat, call },
                Mark::Hold => SeatError::NotOnHold { seat, call },
            });
        };
        let at = io.duration_ms(token);
        io.close_interval(token, iv, at).map_err(|source| {
            let call_id = io.row_id(token).unwrap_or_default();
            match mark {
                Mark::Pause => SeatError::Resume {
                    seat,
                    call_id,
                    source,
                },
                Mark::Hold => SeatError::Unhold {
                    seat,
                    call_id,
                    source,
                },
            }
        })?;
        Ok(token)
    }

    /// Wrap-up is after a call: refused while the seat records one (the CTI must stop it
    /// first, or the work would be counted twice, as talk and as ACW).
    pub fn check_not_recording(&self, io: &dyn SeatIo) -> Result<(), SeatError> {
        match &self.call {
            Some(c) => Err(SeatError::WrapupWhileRecording {
                seat: self.cfg.id.clone(),
                call: CallName(io.row_id(c.id)),
            }),
            None => Ok(()),
        }
    }

    pub fn tag(
        &mut self,
        io: &mut dyn SeatIo,
        tags: &[String],
        meta: &CallMeta,
    ) -> Result<CallToken, SeatError> {
        check_direction(meta)?;
        let seat = self.cfg.id.clone();
        let token = self.active()?.id;
        io.tag(token, tags, meta).map_err(|source| SeatError::Tag {
            seat,
            call_id: io.row_id(token).unwrap_or_default(),
            source,
        })?;
        Ok(token)
    }

    /// Records the outcome sent with a stop (before the stop itself, so it reaches the index
    /// before the call's end).
    pub fn set_outcome(
        &mut self,
        io: &mut dyn SeatIo,
        outcome: StopOutcome,
    ) -> Result<CallToken, SeatError> {
        let token = self.active()?.id;
        io.set_outcome(token, outcome);
        Ok(token)
    }

    /// Clean shutdown: finish the open call (SIGTERM, invariant 2's happy path).
    pub fn shutdown(&mut self, io: &mut dyn SeatIo) {
        if self.call.is_some() {
            let _ = self.stop(io, "shutdown");
        }
        self.publish(io, 0);
    }

    fn publish(&mut self, io: &dyn SeatIo, lag_ms: u64) {
        let dropped = self.dropped_total() + self.held_dropped_frames;
        let correction = self.aligner.correction_ppm();
        let down: Vec<String> = self
            .inputs
            .iter()
            .filter(|i| i.was_down)
            .map(|i| i.label.clone())
            .collect();
        if let Ok(mut st) = self.status.lock() {
            let row = self.call.as_ref().and_then(|c| io.row_id(c.id));
            st.state = match &self.call {
                None => "idle",
                // The index has not opened it yet: its audio is held.
                Some(_) if row.is_none() => "starting",
                Some(c) if c.pause_interval.is_some() => "paused",
                Some(_) => "recording",
            }
            .into();
            st.call_id = row;
            st.call_duration_ms = self.call.as_ref().map_or(0, |c| io.duration_ms(c.id));
            st.on_hold = self
                .call
                .as_ref()
                .is_some_and(|c| c.hold_interval.is_some());
            st.dropped_frames = dropped;
            st.lag_ms = lag_ms;
            st.max_lag_ms = self.max_lag_ms;
            st.max_lag_1m_ms = self.lag_window.max_ms(Instant::now());
            st.max_page_latency_ms = self.max_page_latency_ms;
            st.drift_correction_ppm = correction;
            st.inputs_down = down;
        }
    }
}

/// A call's direction, when given, is `inbound` or `outbound`.
fn check_direction(meta: &CallMeta) -> Result<(), SeatError> {
    match meta.direction.as_deref() {
        None | Some("inbound") | Some("outbound") => Ok(()),
        Some(other) => Err(SeatError::Direction(other.to_owned())),
    }
}

#[cfg(test)]
mod tests;
