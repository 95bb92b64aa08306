//! Start-up crash recovery (invariant 2): every call still marked `recording` belonged to a
//! process that died. Its file is trimmed to the last intact Ogg page, the final page is resealed
//! with end-of-stream, and the row gets the true duration, size and hash and status `interrupted`.
//!
//! Nothing that reached the disk as a complete page is thrown away; only a torn, partial page at
//! the end (which no decoder could use) is cut, and the row notes how many bytes that was.
//! A file that never received an audio page (the process died within the call's first page,
//! ≤ 500 ms) holds only header pages, whole or torn: no player accepts it as a recording, so it is
//! removed and the call sealed without a file, as when the process died before creating it.

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
        // Recovery truncates and rewrites the file: only ever one under the storage dir.
        let path =
            super::call_file(storage_dir, &call.rel_path).ok_or_else(|| RecoveryError::Io {
                path: call.rel_path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the row's path leaves the storage dir; not touched",
                ),
            })?;
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
            Ok(data) => repair_file(call.id, &path, data, call.bytes).map_err(io)?,
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

/// More than any header this recorder writes (OpusHead and OpusTags are a few hundred bytes):
/// a larger file without audio is no crash leftover, and is kept for inspection.
const MAX_HEADER_ONLY_BYTES: u64 = 64 * 1024;

/// `synced_bytes` is the durable length the syncer last recorded in the row (0 until the first
/// audio fsync).
fn repair_file(
    call_id: i64,
    path: &Path,
    mut data: Vec<u8>,
    synced_bytes: i64,
) -> std::io::Result<Recovered> {
    let total = data.len() as u64;
    let inspected = ogg_read::inspect(&data);
    // Found by the crash campaign (RELIABILITY.md): a call killed before its first audio page
    // was left as a header-only file (opusinfo: "stream 1 is empty"), without peaks, and
    // `callrec check` reported it for ever. The header pages are fsynced before any audio is
    // written, and the row records a durable length only after audio was fsynced, so a file
    // with no audio page whose row recorded none never held audio: remove it (durably, before
    // the row says there is no file). A torn header is the same case (the process died, or the
    // power went, while creating the file).
    let has_audio = inspected.as_ref().is_ok_and(|i| i.samples_48k > 0);
    if !has_audio && synced_bytes == 0 && total <= MAX_HEADER_ONLY_BYTES {
        std::fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        return Ok(Recovered {
            call_id,
            duration_ms: 0,
            bytes: 0,
            trimmed_bytes: total,
            note: format!(
                "process stopped before the first audio page reached the disk; the file held \
                 only {total} bytes of headers and was removed"
            ),
        });
    }
    let Ok(info) = inspected else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ogg_write::OpusFileWriter;
    use crate::store::testutil::{TempStore, TestCall, TestResult};

    /// A new call's file as the recorder leaves it after `write_headers`, plus `pages` audio
    /// pages (of 500 ms).
    fn call_file(id: i64, pages: usize) -> TestResult<Vec<u8>> {
        let mut w = OpusFileWriter::new(
            Vec::new(),
            &crate::config::EncoderConfig::default(),
            id as u32,
            &[],
        )?;
        let frame = vec![0.1f32; 320 * 2];
        let mut done = 0;
        while done < pages {
            if w.push_frame(&frame)? {
                done += 1;
            }
        }
        Ok(w.writer_mut().clone())
    }

    fn row(conn: &Connection, id: i64) -> TestResult<CallRow> {
        Ok(crate::store::get_call(conn, id)?)
    }

    #[test]
    fn a_file_without_audio_is_removed_and_the_call_sealed_without_one() -> TestResult {
        let TempStore { dir, conn } = TempStore::new()?;
        let header = call_file(1, 0)?;
        // Whole headers, a torn header, an empty file: the process died creating the call.
        for content in [
            header.clone(),
            header[..header.len() / 2].to_vec(),
            Vec::new(),
        ] {
            let call = TestCall::new().insert_in(&conn, dir.path())?;
            let path = dir.path().join(&call.rel_path);
            std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
            std::fs::write(&path, &content)?;
            let r = recover_call(&conn, dir.path(), &row(&conn, call.id)?)?;
            assert_eq!((r.duration_ms, r.bytes), (0, 0));
            assert!(
                !path.exists(),
                "{} bytes of headers left behind",
                content.len()
            );
            let c = row(&conn, call.id)?;
            assert_eq!(c.status, "interrupted");
            assert_eq!((c.duration_ms, c.bytes, c.sha256), (0, 0, None));
        }
        Ok(())
    }

    #[test]
    fn audio_is_kept_and_a_header_only_file_with_synced_audio_is_left_for_inspection() -> TestResult
    {
        let TempStore { dir, conn } = TempStore::new()?;
        let call = TestCall::new().insert_in(&conn, dir.path())?;
        let path = dir.path().join(&call.rel_path);
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, call_file(call.id, 2)?)?;
        let r = recover_call(&conn, dir.path(), &row(&conn, call.id)?)?;
        assert!(r.duration_ms >= 900, "{} ms", r.duration_ms);
        assert_eq!(
            row(&conn, call.id)?.sha256,
            Some(sha256_hex(std::fs::read(&path)?))
        );
        // The row says audio was made durable, but the file has none: not a crash leftover.
        let header = call_file(2, 0)?;
        let call = TestCall::new().bytes(4000).insert_in(&conn, dir.path())?;
        let path = dir.path().join(&call.rel_path);
        std::fs::write(&path, &header)?;
        let r = recover_call(&conn, dir.path(), &row(&conn, call.id)?)?;
        assert_eq!(r.duration_ms, 0);
        assert!(path.exists(), "kept for inspection");
        Ok(())
    }
}
