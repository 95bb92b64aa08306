//! Audio and waveform delivery: the original Ogg Opus bytes with Range/ETag (RFC 9110 §14),
//! a WAV rendering decoded on the fly for browsers without Ogg Opus, and the peaks file.
//!
//! Files are found only through the call row (`calls.rel_path`), never from a path in the
//! request, and the resolved path must stay inside the storage directory. Every first fetch of a
//! call's audio in a session is audited as `play`; `?download=1` is audited as `download`.

use super::api::visible_call_row;
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::codec::ogg_read;
use crate::dsp::peaks;
use crate::store::audit;
use crate::store::users;
use crate::store::CallRow;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// What a `Range` header asks of a representation `len` bytes long.
#[derive(Debug, PartialEq)]
pub enum ByteRange {
    /// No (usable) Range header: send everything with 200. RFC 9110 §14.2 lets a server ignore
    /// a malformed header or several ranges.
    Full,
    /// First and last byte, inclusive.
    Part(u64, u64),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

pub fn parse_range(h: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last n bytes.
        return match b.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if len == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part(len.saturating_sub(n), len - 1),
            Err(_) => ByteRange::Full,
        };
    }
    let Ok(first) = a.parse::<u64>() else {
        return ByteRange::Full;
    };
    let last = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(v) if v >= first => Some(v),
            _ => return ByteRange::Full,
        }
    };
    if first >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(first, last.map_or(len - 1, |l| l.min(len - 1)))
}

/// The call's file inside the storage directory. Only the index row names it, and the row may
/// only hold plain relative components (no `..`, no absolute path), so no row can point outside.
/// Symlinks the operator placed inside the storage directory (say, an old month moved to another
/// disk) are followed: the directory is callrec's own (mode 0700) and trusted.
fn call_path(root: &std::path::Path, call_id: i64, rel_path: &str) -> Result<PathBuf, AppError> {
    crate::store::call_file(root, rel_path).ok_or_else(|| {
        AppError::not_found(&format!(
            "the file path of call {call_id} is not valid; run `callrec check`"
        ))
    })
}

fn file_of(st: &St, call: &CallRow) -> Result<PathBuf, AppError> {
    if matches!(
        call.status,
        crate::store::CallStatus::Garbage | crate::store::CallStatus::Deleted
    ) {
        // 410, not 404: the call existed and its recording was deliberately removed; the call
        // page says when and why (retention, erasure, disk pressure).
        return Err(AppError::api(
            StatusCode::GONE,
            &format!(
                "the recording of call {} was deleted{}; the index keeps its row and the ledger its tombstone",
                call.id,
                call.deleted_at_utc
                    .as_deref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_default()
            ),
        ));
    }
    call_path(&st.cfg.storage.dir, call.id, &call.rel_path)
}

/// The opened recording: what [`open_and_read`] finds out.
struct Opened {
    file: std::fs::File,
    len: u64,
    mtime_ns: u128,
    /// The requested bytes when the range is small enough to read at once (the common case).
    small: Option<Vec<u8>>,
}

/// How [`open_and_read`] may read.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Only from the page cache (`preadv2` with `RWF_NOWAIT`): safe on an async worker.
    Never,
    /// Whatever the disk takes: only in the blocking pool.
    Blocking,
}

/// Resolves, opens, stats and (for a small satisfiable range) reads. With [`Wait::Never`] it
/// answers `Ok(None)` when the bytes are not all in the page cache, and the caller retries in
/// the blocking pool: a hand-off costs more than the read of a cached range, and most ranges
/// are cached (a listener's player fetches the same file over and over).
fn open_and_read(
    path: &std::path::Path,
    call_id: i64,
    range_header: Option<&str>,
    wait: Wait,
) -> Result<Option<Opened>, AppError> {
    use std::os::unix::fs::FileExt;
    let cannot = |e: std::io::Error| {
        AppError::not_found(&format!(
            "cannot read the audio of call {call_id}: {e}; run `callrec check`"
        ))
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let len = meta.len();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let small = match parse_range(range_header, len) {
        ByteRange::Part(a, b) if b - a < SMALL_RANGE_BYTES => {
            let mut buf = vec![0u8; (b - a + 1) as usize];
            if wait == Wait::Never {
                let cached = rustix::io::preadv2(
                    &file,
                    &mut [std::io::IoSliceMut::new(&mut buf)],
                    a,
                    rustix::io::ReadWriteFlags::NOWAIT,
                );
                // EAGAIN (not cached), a short read (partly cached) or a filesystem without
                // RWF_NOWAIT support: let the blocking pool do it.
                if !matches!(cached, Ok(got) if got == buf.len()) {
                    return Ok(None);
                }
            } else {
                file.read_exact_at(&mut buf, a).map_err(cannot)?;
            }
            Some(buf)
        }
        _ => None,
    };
    Ok(Some(Opened {
        file,
        len,
        mtime_ns,
        small,
    }))
}

fn etag_for(call: &CallRow, len: u64, mtime_ns: u128) -> String {
    match (&call.sha256, call.status) {
        // A finished file never changes: its hash is the strongest validator there is.
        (Some(sha), s) if s != crate::store::CallStatus::Recording => {
            format!("\"{}\"", &sha[..sha.len().min(32)])
        }
        _ => format!("W/\"{len}-{mtime_ns}\""),
    }
}

fn matches_etag(h: Option<&HeaderValue>, etag: &str) -> bool {
    h.and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// (session, call) pairs the server remembers as already audited as played.
const PLAYS_SEEN_MAX: usize = 65_536;

async fn audit_listen(
    st: &St,
    id: &Identity,
    call_id: i64,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    // Most range requests of a listen are repeats: answer those from memory, not a DB write.
    let key = id.session_sha256().map(|sha| (sha.to_owned(), call_id));
    if action == "play" {
        if let (Some(k), Ok(seen)) = (&key, st.plays_seen.lock()) {
            if seen.contains(k) {
                return Ok(());
            }
        }
    }
    let id = id.clone();
    st.db
        .write(move |c| {
            let first = match (action, id.session_sha256()) {
                ("play", Some(sha)) => users::first_play(c, sha, call_id)?,
                _ => true,
            };
            if first {
                audit::append(c, &id.event(action, Some(call_id), detail))?;
            }
            Ok::<_, AppError>(())
        })
        .await?;
    if let (Some(k), Ok(mut seen)) = (key, st.plays_seen.lock()) {
        // A cache in front of `session_plays` (the durable record): emptied when full, which
        // costs one lookup per session and call afterwards, never a second audit row.
        if seen.len() >= PLAYS_SEEN_MAX {
            seen.clear();
        }
        seen.insert(k);
    }
    Ok(())
}

/// `GET /api/calls/{id}/audio`: the original recording, byte for byte.
pub async fn audio(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let call = visible_call_row(&st, &id, call_id).await?;
    let download = q.get("download").is_some_and(|v| v == "1");
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = file_of(&st, &call)?;
    let cached = open_and_read(&path, call_id, range_header.as_deref(), Wait::Never)?;
    let opened = match cached {
        Some(o) => o,
        None => tokio::task::spawn_blocking(move || {
            open_and_read(&path, call_id, range_header.as_deref(), Wait::Blocking)
        })
        .await
        .map_err(|_| AppError::not_found("reading the audio failed; retry"))??
        .ok_or_else(|| AppError::not_found("reading the audio failed; retry"))?,
    };
    let Opened {
        file,
        len,
        mtime_ns,
        mut small,
    } = opened;
    let etag = etag_for(&call, len, mtime_ns);
    let cache = if call.status == crate::store::CallStatus::Recording {
        "no-store"
    } else {
        "private, no-cache"
    };
    if !download && matches_etag(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache.to_owned()),
            ],
        )
            .into_response());
    }
    let mut range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    if let Some(ir) = headers.get(header::IF_RANGE) {
        // RFC 9110 §13.1.5: only a strong, matching validator keeps the Range.
        if etag.starts_with("W/") || ir.to_str().ok() != Some(etag.as_str()) {
            range = ByteRange::Full;
        }
    }
    let (status, first, last) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len.saturating_sub(1)),
        ByteRange::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        ByteRange::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{len}")),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
            )
                .into_response());
        }
    };
    let n = if len == 0 { 0 } else { last - first + 1 };
    let detail = serde_json::json!({"bytes": format!("{first}-{last}/{len}"), "format": "ogg"});
    if download {
        audit_listen(&st, &id, call_id, "download", detail).await?;
    } else {
        audit_listen(&st, &id, call_id, "play", detail).await?;
    }
    // The bytes read ahead are the answer only if the Range still stands (If-Range matched);
    // they came from the same header and length, so they are exactly first..=last.
    let body = match small
        .take()
        .filter(|_| status == StatusCode::PARTIAL_CONTENT)
    {
        Some(bytes) => Body::from(bytes),
        None => {
            let mut file = tokio::fs::File::from_std(file);
            file.seek(std::io::SeekFrom::Start(first))
                .await
                .map_err(|e| AppError::not_found(&e.to_string()))?;
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                file.take(n),
                64 * 1024,
            ))
        }
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/ogg; codecs=opus")
        .header(header::CONTENT_LENGTH, n)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache);
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
    }
    if download {
        resp = resp.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"call-{call_id}.opus\""),
        );
    }
    resp.body(body)
        .map_err(|e| AppError::bad_request(&e.to_string()))
}

/// Ranges up to this size are read in one go; larger ones (whole-file downloads) are streamed.
const SMALL_RANGE_BYTES: u64 = 1 << 20;

const WAV_HEADER_BYTES: u64 = 44;
/// Decoded per step when streaming WAV: 10 s keeps memory flat for any call length.
const WAV_STEP_S: u64 = 10;

/// RIFF/WAVE header for 16-bit PCM (the same 44 bytes hound writes).
fn wav_header(rate_hz: u32, channels: u16, frames: u64) -> Vec<u8> {
    let data = frames * u64::from(channels) * 2;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&((36 + data).min(u64::from(u32::MAX)) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate_hz.to_le_bytes());
    h.extend_from_slice(&(rate_hz * u32::from(channels) * 2).to_le_bytes());
    h.extend_from_slice(&(channels * 2).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    h
}

/// `GET /api/calls/{id}/audio.wav`: 16-bit PCM decoded with libopus as it is sent, with Range
/// support (a byte offset maps to a sample, decoding starts at the page before it).
pub async fn wav(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let call = visible_call_row(&st, &id, call_id).await?;
    let path = file_of(&st, &call)?;
    let data = tokio::fs::read(&path).await.map_err(|e| {
        AppError::not_found(&format!("cannot read the audio of call {call_id}: {e}"))
    })?;
    let info = ogg_read::inspect(&data)
        .map_err(|e| AppError::not_found(&format!("call {call_id}: {e}; run `callrec check`")))?;
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let channels = u16::from(info.head.channels);
    let frame_bytes = u64::from(channels) * 2;
    let frames = info.samples_48k * u64::from(rate_hz) / 48_000;
    let len = WAV_HEADER_BYTES + frames * frame_bytes;
    let (status, first, last) = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    ) {
        ByteRange::Full => (StatusCode::OK, 0, len - 1),
        ByteRange::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        ByteRange::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    audit_listen(
        &st,
        &id,
        call_id,
        "play",
        serde_json::json!({"bytes": format!("{first}-{last}/{len}"), "format": "wav"}),
    )
    .await?;
    let header_bytes = wav_header(rate_hz, channels, frames);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut pos = first;
        if pos < WAV_HEADER_BYTES {
            let end = (last + 1).min(WAV_HEADER_BYTES);
            if tx
                .blocking_send(Ok(header_bytes[pos as usize..end as usize].to_vec()))
                .is_err()
            {
                return;
            }
            pos = end;
        }
        let step = WAV_STEP_S * u64::from(rate_hz);
        while pos <= last {
            let frame = (pos - WAV_HEADER_BYTES) / frame_bytes;
            let want = step.min(frames - frame) as usize;
            let pcm = match ogg_read::decode_window(&data, &info, rate_hz, frame, want) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            let mut bytes: Vec<u8> = pcm
                .iter()
                .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
                .collect();
            // Pad if the decoder returned fewer frames than the header promised.
            bytes.resize(want * frame_bytes as usize, 0);
            let chunk_start = WAV_HEADER_BYTES + frame * frame_bytes;
            let lo = (pos - chunk_start) as usize;
            let hi = ((last + 1 - chunk_start) as usize).min(bytes.len());
            if lo >= hi || tx.blocking_send(Ok(bytes[lo..hi].to_vec())).is_err() {
                return;
            }
            pos = chunk_start + hi as u64;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::CONTENT_LENGTH, last - first + 1)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Some(sha) = &call.sha256 {
        resp = resp.header(
            header::ETAG,
            format!("\"wav-{}\"", &sha[..sha.len().min(32)]),
        );
    }
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
    }
    resp.body(Body::from_stream(stream))
        .map_err(|e| AppError::bad_request(&e.to_string()))
}

/// `GET /api/calls/{id}/peaks.dat`: the waveform; computed and stored on first request for
/// calls that have none (recovered after a crash, or still recording: then not stored).
pub async fn peaks(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let call = visible_call_row(&st, &id, call_id).await?;
    let audio = file_of(&st, &call)?;
    let dat_path = peaks::path_for(&audio);
    let recording = call.status == crate::store::CallStatus::Recording;
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let dat = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        if !recording {
            if let Ok(d) = std::fs::read(&dat_path) {
                return Ok(d);
            }
        }
        let data = std::fs::read(&audio).map_err(|e| e.to_string())?;
        let dat = peaks::from_opus(&data, rate_hz).map_err(|e| e.to_string())?;
        if !recording {
            if let Err(e) = peaks::write(&dat_path, &dat) {
                tracing::warn!(call_id, "storing peaks: {e}");
            }
        }
        Ok(dat)
    })
    .await
    .map_err(|_| AppError::not_found("computing the waveform failed"))?
    .map_err(|e| AppError::not_found(&format!("no waveform for call {call_id}: {e}")))?;
    let etag = format!(
        "\"peaks-{}-{}\"",
        call.sha256
            .as_deref()
            .map_or("rec", |s| &s[..s.len().min(16)]),
        dat.len()
    );
    if !recording && matches_etag(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let cache = if recording {
        "no-store"
    } else {
        "private, max-age=86400"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::ETAG, etag),
        ],
        dat,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Part(0, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=x-"), 100), Full);
    }

    #[test]
    fn wav_header_is_what_hound_reads() -> Result<(), hound::Error> {
        let mut h = wav_header(16000, 2, 16000);
        h.extend(std::iter::repeat_n(0u8, 64_000));
        let r = hound::WavReader::new(std::io::Cursor::new(h))?;
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (16000, 2, 16)
        );
        assert_eq!(r.duration(), 16000);
        Ok(())
    }
}
