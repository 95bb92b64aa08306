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

/// The status and byte span (first, last) to answer with: the client's Range, unless an
/// If-Range does not name this representation (RFC 9110 §13.1.5: only a strong, matching
/// validator keeps the Range); a 416 response when the Range cannot be satisfied.
fn answer_range(
    headers: &HeaderMap,
    len: u64,
    etag: &str,
) -> Result<(StatusCode, u64, u64), Box<Response>> {
    let mut range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    if let Some(ir) = headers.get(header::IF_RANGE) {
        if etag.starts_with("W/") || ir.to_str().ok() != Some(etag) {
            range = ByteRange::Full;
        }
    }
    match range {
        ByteRange::Full => Ok((StatusCode::OK, 0, len.saturating_sub(1))),
        ByteRange::Part(a, b) => Ok((StatusCode::PARTIAL_CONTENT, a, b)),
        ByteRange::Unsatisfiable => Err(Box::new(
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{len}")),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                ],
            )
                .into_response(),
        )),
    }
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
    if st.hub.is_some() {
        return hub_audio(&st, &id, &call, download, &headers).await;
    }
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
    let (status, first, last) = match answer_range(&headers, len, &etag) {
        Ok(r) => r,
        Err(unsatisfiable) => return Ok(*unsatisfiable),
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

/// `GET /api/calls/{id}/audio` for a hub call: the object's bytes from the archive, the Range
/// passed through (one ranged GET), audited as a listen on a box is.
async fn hub_audio(
    st: &St,
    id: &Identity,
    call: &CallRow,
    download: bool,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let (remote, o) = super::remote::objects(st, call).await?;
    let len = o.audio_bytes;
    let etag = etag_for(call, len, 0);
    let cache = "private, no-cache";
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
    let (status, first, last) = match answer_range(headers, len, &etag) {
        Ok(r) => r,
        Err(unsatisfiable) => return Ok(*unsatisfiable),
    };
    let n = if len == 0 { 0 } else { last - first + 1 };
    let detail = serde_json::json!({
        "bytes": format!("{first}-{last}/{len}"),
        "format": "ogg",
        "from": "archive",
        "box": o.box_id,
        "box_call_id": o.box_call_id,
    });
    audit_listen(
        st,
        id,
        call.id,
        if download { "download" } else { "play" },
        detail,
    )
    .await?;
    let body = if n == 0 {
        Body::empty()
    } else {
        Body::from_stream(
            remote
                .range(&o.audio_key, first, last)
                .await
                .map_err(|e| super::remote::store_failed(call.id, &e))?,
        )
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
            format!("attachment; filename=\"call-{}.opus\"", call.id),
        );
    }
    resp.body(body)
        .map_err(|e| AppError::bad_request(&e.to_string()))
}

/// Ranges up to this size are read in one go; larger ones (whole-file downloads) are streamed.
const SMALL_RANGE_BYTES: u64 = 1 << 20;

const WAV_HEADER_BYTES: u64 = 44;
/// PCM bytes decoded per step when streaming WAV (0.5 s of the recorder's 16 kHz stereo): what a
/// client that stops reading can leave waiting in hyper's queue beside the decoder's state.
const WAV_CHUNK_BYTES: u64 = 32 * 1024;

/// RIFF/WAVE header for 16-bit PCM (the same 44 bytes hound writes).
fn wav_header(rate_hz: u32, channels: u16, frames: u64) -> Vec<u8> {
    let data = frames.saturating_mul(u64::from(channels) * 2);
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(data.saturating_add(36).min(u64::from(u32::MAX)) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate_hz.to_le_bytes());
    h.extend_from_slice(
        &rate_hz
            .saturating_mul(u32::from(channels) * 2)
            .to_le_bytes(),
    );
    h.extend_from_slice(&(channels * 2).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    h
}

/// The WAV rendering's length: frames at `rate_hz` and bytes (header included), or None when
/// the file's last granule (its own claim, up to 2^63) makes either overflow: a damaged file.
fn wav_size(samples_48k: u64, rate_hz: u32, frame_bytes: u64) -> Option<(u64, u64)> {
    let frames = samples_48k.checked_mul(u64::from(rate_hz))? / 48_000;
    let len = frames
        .checked_mul(frame_bytes)?
        .checked_add(WAV_HEADER_BYTES)?;
    Some((frames, len))
}

/// One WAV response's state between the client's reads: the bytes `pos..=last` are still to
/// send. Decoding happens in [`WavBody::produce`], called only when hyper asks for the next
/// piece, i.e. once the client has taken the previous one.
struct WavBody {
    header: Vec<u8>,
    pos: u64,
    last: u64,
    frame_bytes: u64,
    /// Bytes of the first decoded frame that lie before the range (a range that starts mid-frame).
    skip_bytes: usize,
    /// None when the range covers the header only.
    dec: Option<ogg_read::WindowDecoder<std::fs::File>>,
}

impl WavBody {
    /// The body for bytes `first..=last` of the rendering of `file` (scanned into `info` with
    /// marks; `frames` from [`wav_size`]). Blocking: seeks and creates the decoder.
    fn open(
        file: std::fs::File,
        info: &ogg_read::StreamInfo,
        rate_hz: u32,
        frames: u64,
        first: u64,
        last: u64,
    ) -> Result<WavBody, ogg_read::ReadError> {
        let channels = u16::from(info.head.channels);
        let frame_bytes = u64::from(channels.max(1)) * 2;
        let data_from = first.max(WAV_HEADER_BYTES) - WAV_HEADER_BYTES;
        let from_frame = data_from / frame_bytes;
        let dec = if last >= WAV_HEADER_BYTES {
            let want = frames.saturating_sub(from_frame);
            Some(ogg_read::WindowDecoder::new(
                file, info, rate_hz, from_frame, want,
            )?)
        } else {
            None
        };
        Ok(WavBody {
            header: wav_header(rate_hz, channels, frames),
            pos: first,
            last,
            frame_bytes,
            skip_bytes: (data_from % frame_bytes) as usize,
            dec,
        })
    }

    /// The next piece of the body (at most [`WAV_CHUNK_BYTES`] plus one packet), or None when
    /// the range is sent. Blocking: file reads and decoding.
    fn produce(&mut self) -> Result<Option<Vec<u8>>, std::io::Error> {
        if self.pos > self.last {
            return Ok(None);
        }
        if self.pos < WAV_HEADER_BYTES {
            let end = (self.last + 1).min(WAV_HEADER_BYTES);
            let piece = self.header[self.pos as usize..end as usize].to_vec();
            self.pos = end;
            return Ok(Some(piece));
        }
        let remaining = self.last + 1 - self.pos;
        let chunk_frames = (WAV_CHUNK_BYTES / self.frame_bytes).max(1) as usize;
        while let Some(dec) = self.dec.as_mut() {
            let Some(pcm) = dec
                .next_chunk(chunk_frames)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            else {
                self.dec = None;
                break;
            };
            let mut bytes: Vec<u8> = pcm
                .iter()
                .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
                .collect();
            let skip = self.skip_bytes.min(bytes.len());
            self.skip_bytes -= skip;
            bytes.drain(..skip);
            bytes.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
            if !bytes.is_empty() {
                self.pos += bytes.len() as u64;
                return Ok(Some(bytes));
            }
        }
        // The decoder returned fewer frames than the header promised (pages that end early):
        // silence up to the length already announced in Content-Length.
        let n = remaining.min(WAV_CHUNK_BYTES);
        self.pos += n;
        Ok(Some(vec![0u8; n as usize]))
    }
}

/// `GET /api/calls/{id}/audio.wav`: 16-bit PCM decoded with libopus as it is sent, with Range
/// support (a byte offset maps to a sample, decoding starts at the page before it).
///
/// Bounded work per request: the file is scanned once (page headers and CRCs, in the blocking
/// pool, not held), then each piece of the body is decoded in a short blocking task only when
/// hyper asks for it, i.e. when the client has taken the previous one. A client that stops
/// reading holds a file handle, a decoder, one page and what hyper and TLS buffer (bounded by
/// `server.max_header_bytes` and rustls's 64 KiB): no thread, no recording in memory.
pub async fn wav(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let call = visible_call_row(&st, &id, call_id).await?;
    let path = match st.hub {
        Some(_) => super::remote::local_file(&st, &call).await?,
        None => file_of(&st, &call)?,
    };
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let scanned = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let info = ogg_read::scan_from(std::io::BufReader::new(&mut file), true)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok::<_, std::io::Error>((file, info))
    })
    .await
    .map_err(|_| AppError::not_found("reading the audio failed; retry"))?;
    let (file, info) = scanned.map_err(|e| {
        AppError::not_found(&format!(
            "cannot read the audio of call {call_id}: {e}; run `callrec check`"
        ))
    })?;
    let channels = u16::from(info.head.channels);
    let frame_bytes = u64::from(channels.max(1)) * 2;
    let Some((frames, len)) = wav_size(info.samples_48k, rate_hz, frame_bytes) else {
        return Err(AppError::api(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "the audio of call {call_id} claims a length ({} samples at 48 kHz) too large \
                 to render as WAV: the file is damaged; run `callrec check`",
                info.samples_48k
            ),
        ));
    };
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
    // Seeking reads only the marks; the body keeps the file and a decoder, not the marks.
    let body = tokio::task::spawn_blocking(move || {
        WavBody::open(file, &info, rate_hz, frames, first, last)
    })
    .await
    .map_err(|_| AppError::not_found("reading the audio failed; retry"))?
    .map_err(|e| {
        AppError::not_found(&format!(
            "cannot decode the audio of call {call_id}: {e}; run `callrec check`"
        ))
    })?;
    // `unfold` runs the next step only when the body is polled: hyper polls when the client has
    // drained what it queued, so a stalled client leaves this future idle, holding no thread.
    let stream = futures_util::stream::unfold(Some(body), |state| async move {
        let mut body = state?;
        let step = tokio::task::spawn_blocking(move || {
            let piece = body.produce();
            (body, piece)
        })
        .await;
        match step {
            Ok((body, Ok(Some(bytes)))) => Some((Ok(bytes), Some(body))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
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
    if st.hub.is_some() {
        let dat = super::remote::peaks(&st, &call).await?;
        return Ok(peaks_response(&call, dat, false, &headers));
    }
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
        // Page by page from the file: never the whole recording in memory.
        let file = std::fs::File::open(&audio).map_err(|e| e.to_string())?;
        let dat = peaks::from_reader(std::io::BufReader::new(file), rate_hz)
            .map_err(|e| e.to_string())?;
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
    if !recording {
        forget_peaks_of_deleted(&st, call_id, &peaks::path_for(&file_of(&st, &call)?)).await?;
    }
    Ok(peaks_response(&call, dat, recording, &headers))
}

/// The peaks reply: ETag from the call's hash and the peaks' size, cached a day once final.
fn peaks_response(call: &CallRow, dat: Vec<u8>, recording: bool, headers: &HeaderMap) -> Response {
    let etag = format!(
        "\"peaks-{}-{}\"",
        call.sha256
            .as_deref()
            .map_or("rec", |s| &s[..s.len().min(16)]),
        dat.len()
    );
    if !recording && matches_etag(headers.get(header::IF_NONE_MATCH), &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let cache = if recording {
        "no-store"
    } else {
        "private, max-age=86400"
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::ETAG, etag),
        ],
        dat,
    )
        .into_response()
}

/// A deletion may have unlinked the call's files while its peaks were being computed: then the
/// peaks file just written would outlive the call (and an erasure). Seen after the write, the
/// status says so; the file goes and the answer is the deleted call's 410.
async fn forget_peaks_of_deleted(
    st: &St,
    call_id: i64,
    dat_path: &std::path::Path,
) -> Result<(), AppError> {
    let status = st
        .db
        .read_quick(move |c| crate::store::get_call_row(c, call_id).map_err(AppError::from))
        .await?
        .status;
    if matches!(
        status,
        crate::store::CallStatus::Garbage | crate::store::CallStatus::Deleted
    ) {
        let _ = std::fs::remove_file(dat_path);
        return Err(AppError::api(
            StatusCode::GONE,
            &format!("call {call_id} was deleted"),
        ));
    }
    Ok(())
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

    /// A 6 s tone file (16 kHz stereo, tone on channel 0) in a temp dir.
    fn tone_file() -> Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
        use crate::codec::ogg_write::OpusFileWriter;
        let mut w =
            OpusFileWriter::new(Vec::new(), &crate::config::EncoderConfig::default(), 7, &[])?;
        let mut t = 0usize;
        for _ in 0..300 {
            let mut f = vec![0f32; 640];
            for i in 0..320 {
                f[2 * i] = 0.3 * ((t as f32) * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin();
                t += 1;
            }
            w.push_frame(&f)?;
        }
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tone.opus");
        std::fs::write(&path, w.finish()?)?;
        Ok((dir, path))
    }

    /// Bytes `first..=last` of the WAV rendering, produced piece by piece as the route does.
    fn render(
        path: &std::path::Path,
        first: Option<u64>,
        last: Option<u64>,
    ) -> Result<(u64, Vec<u8>, usize), Box<dyn std::error::Error>> {
        let info = ogg_read::scan_from(std::fs::File::open(path)?, true)?;
        let (frames, len) = wav_size(info.samples_48k, 16000, 4).ok_or("size")?;
        let (first, last) = (first.unwrap_or(0), last.unwrap_or(len - 1));
        let mut body = WavBody::open(
            std::fs::File::open(path)?,
            &info,
            16000,
            frames,
            first,
            last,
        )?;
        let (mut out, mut pieces) = (Vec::new(), 0);
        while let Some(piece) = body.produce()? {
            assert!(
                piece.len() as u64 <= WAV_CHUNK_BYTES + 120 * 16 * 4,
                "piece of {}",
                piece.len()
            );
            out.extend_from_slice(&piece);
            pieces += 1;
        }
        Ok((len, out, pieces))
    }

    #[test]
    fn wav_streams_in_bounded_pieces_and_ranges_match_the_whole(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, path) = tone_file()?;
        let (len, whole, pieces) = render(&path, None, None)?;
        assert_eq!(whole.len() as u64, len);
        assert_eq!(len, WAV_HEADER_BYTES + 96_000 * 4, "6 s at 16 kHz stereo");
        assert!(pieces > 10, "{pieces} pieces for 384 kB");
        let r = hound::WavReader::new(std::io::Cursor::new(&whole))?;
        assert_eq!(r.duration(), 96_000);
        let pcm = |b: &[u8]| -> Vec<i16> {
            b.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        // Inside the header, across its end, mid-frame (odd offsets), a seek several pages in
        // (decoded from a page before it: close, not bit-exact), and the last bytes.
        for (a, b) in [
            (0, 10),
            (20, 99),
            (45, 70_001),
            (200_001, 250_000),
            (len - 3, len - 1),
        ] {
            let (_, part, _) = render(&path, Some(a), Some(b))?;
            assert_eq!(part.len() as u64, b - a + 1, "range {a}-{b}");
            let want = &whole[a as usize..=b as usize];
            if b < WAV_HEADER_BYTES || a < 1_000 {
                assert_eq!(part, want, "range {a}-{b}");
            } else {
                // Compare as samples, aligned to the sample grid of the whole file.
                let off = ((a - WAV_HEADER_BYTES) % 2) as usize;
                let (got, exp) = (pcm(&part[off..]), pcm(&want[off..]));
                let worst = got
                    .iter()
                    .zip(&exp)
                    .map(|(g, e)| (g - e).unsigned_abs())
                    .max();
                assert!(worst.unwrap_or(0) < 1_600, "range {a}-{b}: worst {worst:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn wav_size_refuses_granules_that_overflow() {
        assert_eq!(wav_size(48_000, 16000, 4), Some((16_000, 44 + 64_000)));
        assert_eq!(wav_size(i64::MAX as u64, 16000, 4), None);
        assert_eq!(wav_size(u64::MAX / 16000, 16000, 1 << 20), None);
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
