//! Live listening in the browser: the seat page (`GET /live/{seat}`, played by live.js) and the
//! audio stream it plays (`GET /api/live/{seat}/audio`), a relay of the recorder's control-socket
//! `listen` stream (record::live wire format) as one chunked HTTP response.
//!
//! The audio goes out as the recorder sends it, PCM s16le, two channels at the encoder's rate
//! (16 kHz: 64 kB/s per listener): no encoding on the box, nothing to decode in the browser but
//! a byte copy, and no codec delay. That is meant for the floor's LAN, not for the internet.
//!
//! Every listen is audited: `live.start` when the stream starts (seat, the call on it) and
//! `live.end` when it ends (from–to, duration, every call heard). This module must never buffer
//! a listener's audio (a frame goes out as it comes), never listen when `[server] live_listen`
//! is false or at the hub (which has no seats), and never let a listener go unaudited.

use super::error::AppError;
use super::html::{esc, page};
use super::identity::Identity;
use super::state::St;
use crate::record::control::{LiveFormat, Request as Ctl, Response as CtlResponse};
use crate::record::live::{FLAG_PAUSED, HEADER_BYTES};
use crate::store::audit;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long the recorder may take to answer `listen` and send its first frame (it sends one
/// every 20 ms while running).
const START_WAIT: Duration = Duration::from_secs(5);
/// A recorder that sends nothing for this long mid-stream has stopped: the stream ends.
const FRAME_WAIT: Duration = Duration::from_secs(5);

/// Refuses (404, saying why) unless live listening is on, this is a box, and `seat` is one of
/// its seats.
fn check(st: &St, seat: &str) -> Result<(), AppError> {
    if st.hub.is_some() {
        return Err(AppError::not_found(
            "live listening is a box feature: the hub has no seats (open the box's own web service)",
        ));
    }
    if !st.cfg.server.live_listen {
        return Err(AppError::not_found(
            "live listening is off on this box ([server] live_listen = false)",
        ));
    }
    if !st.cfg.seats.iter().any(|s| s.id == seat) {
        return Err(AppError::not_found("no such seat on this box"));
    }
    Ok(())
}

/// `GET /live/{seat}`: the seat's live page (live.js plays it).
pub async fn page_view(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(seat): Path<String>,
) -> Result<Html<String>, AppError> {
    check(&st, &seat).map_err(|e| e.with_html(true))?;
    let body = format!(
        r#"<main id="live" data-seat="{seat}">
<h1>Live: seat {seat}</h1>
<p class="flash">Listening is audited (who, which seat and call, from–to).</p>
<section id="player">
<canvas id="live-wave" height="160"></canvas>
<div class="controls">
<button id="listen" type="button">Listen</button>
<span class="lane-ctl">Agent <button id="mute-agent" type="button" aria-pressed="false">Mute</button><button id="solo-agent" type="button" aria-pressed="false">Solo</button></span>
<span class="lane-ctl">Customer <button id="mute-customer" type="button" aria-pressed="false">Mute</button><button id="solo-customer" type="button" aria-pressed="false">Solo</button></span>
<span id="live-state">not listening</span>
</div>
</section>
</main>
<script src="/static/common.js" defer></script>
<script src="/static/live.js" defer></script>"#,
        seat = esc(&seat),
    );
    Ok(Html(page(Some(&id), &format!("Live: {seat}"), &body)))
}

/// The recorder's `listen` stream for `seat`: its format, the first frame, and the rest.
async fn connect(
    st: &St,
    seat: &str,
) -> Result<(LiveFormat, Vec<u8>, BufReader<UnixStream>), AppError> {
    let unavailable = |why: String| AppError::api(StatusCode::SERVICE_UNAVAILABLE, &why);
    let sock = st.cfg.control_socket();
    let opened = async {
        let mut stream = UnixStream::connect(&sock).await.map_err(|e| {
            unavailable(format!(
                "the recorder is not running (is `callrec record` or `callrec run` up?): {e}"
            ))
        })?;
        let mut req = serde_json::to_vec(&Ctl::Listen {
            seat: seat.to_owned(),
            max_s: None,
        })
        .map_err(|e| unavailable(e.to_string()))?;
        req.push(b'\n');
        stream
            .write_all(&req)
            .await
            .map_err(|e| unavailable(format!("talking to the recorder: {e}")))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| unavailable(format!("talking to the recorder: {e}")))?;
        let resp: CtlResponse = serde_json::from_str(&line)
            .map_err(|e| unavailable(format!("the recorder's answer: {e}")))?;
        let format = match (resp.ok, resp.live) {
            (true, Some(f)) if f.frame_bytes > HEADER_BYTES => f,
            _ => {
                return Err(unavailable(
                    resp.error
                        .unwrap_or_else(|| "the recorder refused to stream".into()),
                ))
            }
        };
        let mut first = vec![0u8; format.frame_bytes];
        reader
            .read_exact(&mut first)
            .await
            .map_err(|e| unavailable(format!("the recorder's stream: {e}")))?;
        Ok((format, first, reader))
    };
    tokio::time::timeout(START_WAIT, opened)
        .await
        .map_err(|_| unavailable("the recorder did not start the stream in time".into()))?
}

/// A frame's sequence number, flags and call (0: none), from its header (zeros for a frame
/// shorter than one, which `connect` never lets through).
fn header_of(frame: &[u8]) -> (u32, u16, i64) {
    let bytes = |r: std::ops::Range<usize>| frame.get(r).unwrap_or_default();
    let seq = <[u8; 4]>::try_from(bytes(0..4)).map_or(0, u32::from_le_bytes);
    let flags = <[u8; 2]>::try_from(bytes(4..6)).map_or(0, u16::from_le_bytes);
    let call = <[u8; 8]>::try_from(bytes(8..16)).map_or(0, i64::from_le_bytes);
    (seq, flags, call)
}

/// What one listen heard, written as its `live.end` audit row when the response is dropped
/// (the browser closed it, the stream ended, or the server stops).
struct Listen {
    st: St,
    id: Identity,
    seat: String,
    from_utc: String,
    started: Instant,
    calls: BTreeSet<i64>,
    frames: u64,
    /// Frames the recorder numbered but this listener did not get (its ring was full).
    missed_frames: u64,
    paused_frames: u64,
    last_seq: Option<u32>,
}

impl Listen {
    fn saw(&mut self, frame: &[u8]) {
        let (seq, flags, call) = header_of(frame);
        if let Some(last) = self.last_seq {
            self.missed_frames += u64::from(seq.wrapping_sub(last).saturating_sub(1));
        }
        self.last_seq = Some(seq);
        self.frames += 1;
        if flags & FLAG_PAUSED != 0 {
            self.paused_frames += 1;
        }
        if call != 0 {
            self.calls.insert(call);
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let calls: Vec<i64> = self.calls.iter().copied().collect();
        let detail = serde_json::json!({
            "seat": self.seat,
            "from_utc": self.from_utc,
            "to_utc": crate::clock::utc_now(),
            "duration_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "calls": calls,
            "frames": self.frames,
            "missed_frames": self.missed_frames,
            "paused_frames": self.paused_frames,
        });
        let (st, id, call) = (self.st.clone(), self.id.clone(), calls.first().copied());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(seat = %self.seat, actor = %self.id.actor, "live listen ended outside the runtime: its end is not audited ({detail})");
            return;
        };
        rt.spawn(async move {
            let written = st
                .db
                .write(move |c| {
                    audit::append(c, &id.event("live.end", call, detail)).map_err(AppError::from)
                })
                .await;
            if let Err(e) = written {
                tracing::error!("auditing the end of a live listen: {}", e.message);
            }
        });
    }
}

/// `GET /api/live/{seat}/audio`: the seat's frames as they are made (record::live format:
/// 16-byte header, then s16le agent/customer pairs), until the browser closes the response.
pub async fn audio(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(seat): Path<String>,
) -> Result<Response, AppError> {
    check(&st, &seat)?;
    let (format, first, reader) = connect(&st, &seat).await?;
    let (_, _, call) = header_of(&first);
    let call = (call != 0).then_some(call);
    {
        let (id, seat) = (id.clone(), seat.clone());
        st.db
            .write(move |c| {
                audit::append(
                    c,
                    &id.event("live.start", call, serde_json::json!({"seat": seat})),
                )
                .map_err(AppError::from)
            })
            .await?;
    }
    let mut listen = Listen {
        st: st.clone(),
        id,
        seat,
        from_utc: crate::clock::utc_now(),
        started: Instant::now(),
        calls: BTreeSet::new(),
        frames: 0,
        missed_frames: 0,
        paused_frames: 0,
        last_seq: None,
    };
    listen.saw(&first);
    let frame_bytes = format.frame_bytes;
    let rest = futures_util::stream::unfold(
        (reader, listen),
        move |(mut reader, mut listen)| async move {
            let mut frame = vec![0u8; frame_bytes];
            match tokio::time::timeout(FRAME_WAIT, reader.read_exact(&mut frame)).await {
                Ok(Ok(_)) => {
                    listen.saw(&frame);
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(frame)),
                        (reader, listen),
                    ))
                }
                // The recorder stopped, hit the time limit or went silent: the stream ends
                // (and `listen` is dropped, writing its audit row).
                _ => None,
            }
        },
    );
    let first = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
    use futures_util::StreamExt as _;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            // A proxy that buffers would add its buffer to the delay.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                "no".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-live-rate-hz"),
                format.rate_hz.to_string(),
            ),
            (
                header::HeaderName::from_static("x-live-frame-bytes"),
                format.frame_bytes.to_string(),
            ),
        ],
        Body::from_stream(first.chain(rest)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_reads_as_record_live_writes_it() {
        let mut f = Vec::new();
        f.extend_from_slice(&7u32.to_le_bytes());
        f.extend_from_slice(&3u16.to_le_bytes());
        f.extend_from_slice(&320u16.to_le_bytes());
        f.extend_from_slice(&(5_000_000_123i64).to_le_bytes());
        assert_eq!(header_of(&f), (7, 3, 5_000_000_123));
    }
}
