//! The seam between a seat's state machine and everything it changes outside itself: the call's
//! row, intervals and tags in the SQLite index, the call file (encoder and Ogg writer), the fsync
//! thread, and the disk guard. [`StoreIo`] is the real side, one per worker thread; the seat's
//! unit tests put an in-memory recorder of rows in its place.
//!
//! A side carries out what the seat asks and reports what failed; it must never decide seat state
//! (idle / recording / paused is the seat's alone), never block on the disk guard or retry a
//! failed write, and never allocate per frame in `write_frame` beyond what the encoder does.

use super::call::{ActiveCall, CallContext, CallError};
use crate::store::{self, CallMeta};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// What a seat does to the store and the file of its call. Calls are named by their row id, as
/// returned by `start_call`; an id the side did not start (or already closed) is ignored.
pub trait SeatIo {
    /// True while the disk guard says the storage is full: no call may start, open calls stop.
    fn storage_full(&self) -> bool;
    /// Where calls are stored, for messages to the user.
    fn storage_dir(&self) -> &Path;
    /// Inserts the row (`recording`), creates the file with its headers, makes both durable.
    fn start_call(
        &mut self,
        seat_id: &str,
        mode: &str,
        meta: CallMeta,
        dropped_now: u64,
    ) -> Result<i64, CallError>;
    /// Writes one frame of the call (silence of the same length when `silent`) and schedules
    /// fsyncs. `captured_at` is when the frame's oldest sample entered its ring.
    fn write_frame(
        &mut self,
        call_id: i64,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
        dropped_now: u64,
    ) -> Result<(), CallError>;
    /// Audio written to the call so far.
    fn duration_ms(&self, call_id: i64) -> u64;
    /// Longest time so far from a sample entering its ring to its page reaching the OS.
    fn max_page_latency_ms(&self, call_id: i64) -> u64;
    /// Closes the file and completes the row with `end_reason`. On failure the call is sealed
    /// as `interrupted` by the disk guard; either way the side no longer holds it.
    fn finish_call(&mut self, call_id: i64, end_reason: &str) -> Result<(), CallError>;
    /// After a write error: closes the file where it stands; the disk guard seals the call.
    fn abandon_call(&mut self, call_id: i64, err: &CallError);
    /// The storage is full: closes the file; the disk guard seals the call (`disk_full`).
    fn stop_for_full_disk(&mut self, call_id: i64);
    /// Opens an interval (`pause`, `gap`) at `start_ms` into the call; returns its id.
    fn open_interval(
        &mut self,
        call_id: i64,
        kind: &str,
        start_ms: u64,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<i64, CallError>;
    /// Closes an interval at `end_ms` into its call.
    fn close_interval(&mut self, interval_id: i64, end_ms: u64) -> Result<(), CallError>;
    /// Adds tags to the call and sets the metadata fields `meta` names (others are kept).
    fn tag(&mut self, call_id: i64, tags: &[String], meta: &CallMeta) -> Result<(), CallError>;
}

/// The real side: the index behind `ctx.db`, call files, the syncer and the disk guard. Holds
/// the open calls of one worker's seats.
pub struct StoreIo<'a> {
    ctx: &'a CallContext,
    calls: HashMap<i64, ActiveCall>,
}

impl<'a> StoreIo<'a> {
    pub fn new(ctx: &'a CallContext) -> Self {
        StoreIo {
            ctx,
            calls: HashMap::new(),
        }
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
        mode: &str,
        meta: CallMeta,
        dropped_now: u64,
    ) -> Result<i64, CallError> {
        let call = ActiveCall::start(self.ctx, seat_id, mode, meta, dropped_now)?;
        let id = call.id;
        self.calls.insert(id, call);
        Ok(id)
    }

    fn write_frame(
        &mut self,
        call_id: i64,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
        dropped_now: u64,
    ) -> Result<(), CallError> {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Ok(());
        };
        call.dropped_now = dropped_now;
        call.write(self.ctx, frame, silent, captured_at)
    }

    fn duration_ms(&self, call_id: i64) -> u64 {
        self.calls.get(&call_id).map_or(0, ActiveCall::duration_ms)
    }

    fn max_page_latency_ms(&self, call_id: i64) -> u64 {
        self.calls
            .get(&call_id)
            .map_or(0, |c| c.max_page_latency_ms)
    }

    fn finish_call(&mut self, call_id: i64, end_reason: &str) -> Result<(), CallError> {
        match self.calls.remove(&call_id) {
            Some(call) => call.finish(self.ctx, end_reason).map(drop),
            None => Ok(()),
        }
    }

    fn abandon_call(&mut self, call_id: i64, err: &CallError) {
        if let Some(call) = self.calls.remove(&call_id) {
            call.abandon(self.ctx, err);
        }
    }

    fn stop_for_full_disk(&mut self, call_id: i64) {
        if let Some(call) = self.calls.remove(&call_id) {
            call.stop_for_full_disk(self.ctx);
        }
    }

    fn open_interval(
        &mut self,
        call_id: i64,
        kind: &str,
        start_ms: u64,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<i64, CallError> {
        let db = self.ctx.db()?;
        Ok(store::open_interval(
            &db, call_id, kind, start_ms, by, reason,
        )?)
    }

    fn close_interval(&mut self, interval_id: i64, end_ms: u64) -> Result<(), CallError> {
        Ok(store::close_interval(
            &*self.ctx.db()?,
            interval_id,
            end_ms,
        )?)
    }

    fn tag(&mut self, call_id: i64, tags: &[String], meta: &CallMeta) -> Result<(), CallError> {
        let db = self.ctx.db()?;
        store::add_tags(&db, call_id, tags)?;
        store::update_meta(&db, call_id, meta)?;
        Ok(())
    }
}
