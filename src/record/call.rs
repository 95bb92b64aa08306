//! One call being recorded: its row, its file, its encoder, and the order of durable writes.
//!
//! Order (borrowed from Moonfire NVR): the row is inserted (`recording`) → the file is created
//! with both header pages → file and directory are fsynced. Audio pages are handed to the OS as
//! they complete (≤ 500 ms apart) and fsynced every `fsync_interval_ms` by the syncer thread,
//! which then records the durable length in the row. Finishing flushes the encoder, fsyncs, and
//! writes duration, size and SHA-256 into the row (`complete`).

use super::syncer::SyncJob;
use crate::clock::utc_plus_ms;
use crate::codec::ogg_write::{tags_for, OpusFileWriter};
use crate::config::EncoderConfig;
use crate::dsp::level::rms_dbfs_channel;
use crate::dsp::peaks::{self, PeaksBuilder};
use crate::dsp::talk::{self, LevelLog, Thresholds};
use crate::store::{self, CallMeta, Finalized, NewCall};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
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
    #[error("the index is unavailable (a thread panicked holding it)")]
    Poisoned,
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

/// What every call on this box shares.
pub struct CallContext {
    pub box_id: String,
    pub storage_dir: PathBuf,
    pub encoder: EncoderConfig,
    pub fsync_interval: Duration,
    pub db: Arc<Mutex<Connection>>,
    pub syncer: Sender<SyncJob>,
}

impl CallContext {
    pub fn db(&self) -> Result<std::sync::MutexGuard<'_, Connection>, CallError> {
        self.db.lock().map_err(|_| CallError::Poisoned)
    }
}

pub struct ActiveCall {
    pub id: i64,
    path: PathBuf,
    started_at_utc: String,
    writer: OpusFileWriter<BufWriter<HashingFile>>,
    sync_handle: File,
    last_sync: Instant,
    pub pause_interval: Option<i64>,
    pub gap_interval: Option<i64>,
    dropped_at_start: u64,
    pub dropped_now: u64,
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

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl ActiveCall {
    pub fn start(
        ctx: &CallContext,
        seat_id: &str,
        mode: &str,
        meta: CallMeta,
        dropped_now: u64,
    ) -> Result<ActiveCall, CallError> {
        let started_at_utc = crate::clock::utc_now();
        let new = NewCall {
            box_id: ctx.box_id.clone(),
            seat_id: seat_id.to_owned(),
            mode: mode.to_owned(),
            started_at_utc: started_at_utc.clone(),
            started_mono_ms: crate::clock::mono_ms(),
            rate_hz: ctx.encoder.rate_hz,
            bitrate_bps: ctx.encoder.bitrate_bps,
            meta: meta.clone(),
        };
        let (id, rel) = store::insert_call(&*ctx.db()?, &new)?;
        let path = ctx.storage_dir.join(&rel);
        match Self::create_file(ctx, id, &path, &new) {
            Ok((writer, sync_handle)) => Ok(ActiveCall {
                id,
                path,
                started_at_utc,
                writer,
                sync_handle,
                last_sync: Instant::now(),
                pause_interval: None,
                gap_interval: None,
                dropped_at_start: dropped_now,
                dropped_now,
                page_oldest: None,
                max_page_latency_ms: 0,
                peaks: PeaksBuilder::new(ctx.encoder.rate_hz),
                levels: LevelLog::default(),
                frame_samples: ctx.encoder.frame_samples(),
            }),
            Err(e) => {
                // The row must not claim a recording that never started.
                let note = e.to_string();
                let _ = store::finalize_call(
                    &*ctx.db()?,
                    &Finalized {
                        call_id: id,
                        status: "interrupted",
                        ended_at_utc: &started_at_utc,
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
        ctx: &CallContext,
        id: i64,
        path: &Path,
        new: &NewCall,
    ) -> Result<(OpusFileWriter<BufWriter<HashingFile>>, File), CallError> {
        let io = |source| CallError::Io {
            call_id: id,
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().unwrap_or(&ctx.storage_dir);
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
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
        let e = &ctx.encoder;
        let writer = OpusFileWriter::new(
            out,
            e.rate_hz,
            e.frame_samples(),
            e.bitrate_bps,
            e.complexity,
            id as u32,
            &comments,
        )
        .map_err(|err| CallError::Encode {
            call_id: id,
            message: err.to_string(),
        })?;
        sync_handle.sync_all().map_err(io)?;
        fsync_dir(dir).map_err(io)?;
        Ok((writer, sync_handle))
    }

    pub fn duration_ms(&self) -> u64 {
        self.writer.duration_ms()
    }

    fn enc_err(&self, e: impl std::fmt::Display) -> CallError {
        CallError::Encode {
            call_id: self.id,
            message: e.to_string(),
        }
    }

    /// Writes one frame (or silence while paused: invariant 6) and schedules fsyncs.
    /// `captured_at` is when the frame's oldest sample entered its ring.
    pub fn write(
        &mut self,
        ctx: &CallContext,
        frame: &[f32],
        silent: bool,
        captured_at: Instant,
    ) -> Result<(), CallError> {
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
        .map_err(|e| self.enc_err(e))?;
        if page_done {
            if let Some(t) = self.page_oldest.take() {
                self.max_page_latency_ms =
                    self.max_page_latency_ms.max(t.elapsed().as_millis() as u64);
            }
        }
        if page_done && self.last_sync.elapsed() >= ctx.fsync_interval {
            self.last_sync = Instant::now();
            if let Ok(handle) = self.sync_handle.try_clone() {
                let _ = ctx.syncer.send(SyncJob {
                    file: handle,
                    call_id: self.id,
                    duration_ms: self.writer.duration_ms(),
                    bytes: self.writer.writer_mut().get_ref().bytes,
                    dropped_frames: self.dropped_now - self.dropped_at_start,
                });
            }
        }
        Ok(())
    }

    /// Closes the stream, makes it durable and completes the row.
    pub fn finish(self, ctx: &CallContext, end_reason: &str) -> Result<i64, CallError> {
        let id = self.id;
        let duration_ms = self.writer.duration_ms();
        let io = |source| CallError::Io {
            call_id: id,
            path: self.path.display().to_string(),
            source,
        };
        let buf = self.writer.finish().map_err(|e| CallError::Encode {
            call_id: id,
            message: e.to_string(),
        })?;
        let hf = buf.into_inner().map_err(|e| io(e.into_error()))?;
        hf.file.sync_all().map_err(io)?;
        let sha = hex::encode(hf.hasher.finalize());
        // Peaks are derived data (the server recomputes them if missing): a failure is logged,
        // never allowed to fail the call.
        if let Err(e) = peaks::write(&peaks::path_for(&self.path), &self.peaks.finish()) {
            tracing::warn!(call_id = id, "writing waveform peaks: {e}");
        }
        let metrics = talk::metrics(
            &self.levels.agent,
            &self.levels.customer,
            Thresholds::default(),
        );
        store::finalize_call(
            &*ctx.db()?,
            &Finalized {
                call_id: id,
                status: "complete",
                ended_at_utc: &utc_plus_ms(&self.started_at_utc, duration_ms),
                duration_ms,
                bytes: hf.bytes,
                sha256: Some(&sha),
                dropped_frames: self.dropped_now - self.dropped_at_start,
                end_reason,
                note: None,
            },
        )?;
        // Derived data, like the peaks: a failure is logged and the server recomputes it.
        if let Err(e) = store::metrics::put(&*ctx.db()?, id, &metrics) {
            tracing::warn!(call_id = id, "storing call metrics: {e}");
        }
        Ok(id)
    }

    /// After a write error: close the file, keep what reached the disk, mark the row interrupted.
    pub fn abandon(self, ctx: &CallContext, why: &str) {
        let id = self.id;
        drop(self);
        tracing::error!(call_id = id, "recording stopped by a write error: {why}");
        let Ok(db) = ctx.db() else { return };
        let sealed = store::get_call(&db, id)
            .map_err(|e| e.to_string())
            .and_then(|row| {
                store::recovery::recover_call(&db, &ctx.storage_dir, &row)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = sealed {
            tracing::error!(call_id = id, "could not seal the interrupted call: {e}");
        }
    }
}
