//! The fsync thread: makes call files durable off the encoding path, then records in the index
//! how much of each call is durable. Workers never wait for a disk flush.

use crate::store::{self, Progress};
use rusqlite::Connection;
use std::fs::File;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct SyncJob {
    pub file: File,
    pub call_id: i64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub dropped_frames: u64,
}

/// Runs until every sender is gone.
pub fn run(rx: Receiver<SyncJob>, db: Arc<Mutex<Connection>>) {
    while let Ok(first) = rx.recv() {
        std::thread::sleep(Duration::from_millis(50)); // gather a batch
        let mut batch = Vec::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            // After a failed fsync the file's state is unknown (fsyncgate): say so loudly.
            match job.file.sync_data() {
                Ok(()) => batch.push(Progress {
                    call_id: job.call_id,
                    duration_ms: job.duration_ms,
                    bytes: job.bytes,
                    dropped_frames: job.dropped_frames,
                }),
                Err(e) => tracing::error!(
                    call_id = job.call_id,
                    "fsync failed: {e}; the call may be incomplete on disk"
                ),
            }
        }
        if let Ok(conn) = db.lock() {
            if let Err(e) = store::update_progress(&conn, &batch) {
                tracing::error!("recording progress in the index: {e}");
            }
        }
    }
}
