//! Start-up crash recovery (invariant 2): every call still marked `recording` belonged to a
//! process that died. Its file is trimmed to the last intact Ogg page, the final page is resealed
//! with end-of-stream, and the row gets the true duration, size and hash and status `interrupted`.
//!
//! Nothing that reached the disk as a complete page is thrown away; only a torn, partial page at
//! the end (which no decoder could use) is cut, and the row notes how many bytes that was.

use super::{finalize_call, recording_calls, CallRow, Finalized, StoreError};
use crate::clock::utc_plus_ms;
use crate::codec::ogg_read;
use crate::hash::sha256_hex;
use rusqlite::Connection;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recovering {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Recovered {
    pub call_id: i64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub trimmed_bytes: u64,
    pub note: String,
}

pub fn recover_all(conn: &Connection, storage_dir: &Path) -> Result<Vec<Recovered>, RecoveryError> {
    recording_calls(conn)?
        .iter()
        .map(|call| recover_call(conn, storage_dir, call))
        .collect()
}

/// Seals one call whose recorder stopped writing (crash, or a write error while running).
pub fn recover_call(
    conn: &Connection,
    storage_dir: &Path,
    call: &CallRow,
) -> Result<Recovered, RecoveryError> {
    {
        let path = storage_dir.join(&call.rel_path);
        let io = |source| RecoveryError::Io {
            path: path.display().to_string(),
            source,
        };
        let r = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Recovered {
                call_id: call.id,
                duration_ms: 0,
                bytes: 0,
                trimmed_bytes: 0,
                note: "recorder stopped before the file was created; no audio reached the disk"
                    .into(),
            },
            Err(e) => return Err(io(e)),
            Ok(data) => repair_file(call.id, &path, data).map_err(io)?,
        };
        let sealed = if r.bytes > 0 || path.exists() {
            std::fs::read(&path).ok()
        } else {
            None
        };
        let sha = sealed.as_deref().map(sha256_hex);
        if let Some(data) = sealed.as_deref().filter(|_| r.duration_ms > 0) {
            write_peaks(&path, data, call);
        }
        finalize_call(
            conn,
            &Finalized {
                call_id: call.id,
                status: crate::store::CallStatus::Interrupted,
                ended_at_utc: &utc_plus_ms(&call.started_at_utc, r.duration_ms),
                duration_ms: r.duration_ms,
                bytes: r.bytes,
                sha256: sha.as_deref(),
                dropped_frames: call.dropped_frames as u64,
                end_reason: "recovered",
                note: Some(&r.note),
            },
        )?;
        tracing::warn!(
            call_id = call.id,
            duration_ms = r.duration_ms,
            "recovered interrupted call: {}",
            r.note
        );
        Ok(r)
    }
}

/// The waveform peaks the recorder would have written at the end of the call (streamed, so a
/// one-hour call costs no more memory than its file). Peaks can always be rebuilt
/// (`callrec check --repair-peaks`), so a failure here is logged, not fatal.
fn write_peaks(path: &Path, data: &[u8], call: &CallRow) {
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let written = crate::dsp::peaks::from_opus(data, rate_hz)
        .map_err(|e| e.to_string())
        .and_then(|dat| {
            crate::dsp::peaks::write(&crate::dsp::peaks::path_for(path), &dat)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        tracing::warn!(
            call_id = call.id,
            "no waveform peaks for the recovered call: {e}"
        );
    }
}

fn repair_file(call_id: i64, path: &Path, mut data: Vec<u8>) -> std::io::Result<Recovered> {
    let total = data.len() as u64;
    let Ok(info) = ogg_read::inspect(&data) else {
        return Ok(Recovered {
            call_id,
            duration_ms: 0,
            bytes: total,
            trimmed_bytes: 0,
            note: "no intact Ogg Opus header; file kept untouched for inspection".into(),
        });
    };
    let valid = info.valid_bytes;
    data.truncate(valid);
    if let Some(last) = info.pages.last().filter(|p| !p.is_eos()) {
        ogg_read::reseal_last_page(&mut data, last);
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(valid as u64)?;
    if let Some(last) = info.pages.last() {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(last.offset as u64))?;
        f.write_all(&data[last.offset..last.offset + last.len])?;
    }
    f.sync_all()?;
    let trimmed = total - valid as u64;
    Ok(Recovered {
        call_id,
        duration_ms: info.duration_ms(),
        bytes: valid as u64,
        trimmed_bytes: trimmed,
        note: format!(
            "process stopped while recording; kept {} ms in {} intact pages, cut a torn page of {trimmed} bytes",
            info.duration_ms(),
            info.pages.len()
        ),
    })
}
