//! The fsync thread: makes call files durable off the encoding path, then has the indexer
//! record how much of each call is durable. Workers never wait for a disk flush, and this thread
//! never waits for the index (it only queues the batch to the indexer).
//!
//! After a failed fsync the file's contents are unknown ("fsyncgate"): the syncer never retries
//! it and never records progress for it; it flags the call so its worker stops it, and the disk
//! guard seals it at its last intact page. A full index is reported to the disk guard by the
//! indexer.

use crate::store::Progress;
use std::fs::File;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

pub struct SyncJob {
    pub file: File,
    /// The call's fault flag: set to the errno when this fsync fails.
    pub fault: Arc<AtomicI32>,
    pub call_id: i64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub dropped_frames: u64,
}

/// Runs until every sender is gone.
/// `record` queues a batch of durable lengths to the indexer (false: it is gone).
pub fn run(rx: Receiver<SyncJob>, record: impl Fn(Vec<Progress>) -> bool) {
    while let Ok(first) = rx.recv() {
        std::thread::sleep(Duration::from_millis(50)); // gather a batch
        let mut batch = Vec::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            match job.file.sync_data() {
                Ok(()) => batch.push(Progress {
                    call_id: job.call_id,
                    duration_ms: job.duration_ms,
                    bytes: job.bytes,
                    dropped_frames: job.dropped_frames,
                }),
                Err(e) => {
                    tracing::error!(
                        call_id = job.call_id,
                        "fsync failed: {e}; the call is stopped and sealed at its last intact page"
                    );
                    // EIO when the kernel gives no errno: the call must stop either way.
                    let errno = e
                        .raw_os_error()
                        .filter(|c| *c != 0)
                        .unwrap_or(rustix::io::Errno::IO.raw_os_error());
                    job.fault.store(errno, Ordering::Release);
                }
            }
        }
        if !batch.is_empty() && !record(batch) {
            tracing::warn!("indexer gone: durable lengths not recorded (recovery measures them)");
        }
    }
}
