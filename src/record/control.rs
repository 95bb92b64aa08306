//! The local control socket: one JSON request per connection, one JSON reply.
//!
//! `callrec call start|stop|pause|resume|tag|status` and CTI glue on the box talk to the running
//! recorder through it. The socket file is created mode 0660 so only root and the callrec group
//! can drive recordings. Requests are routed to the worker that owns the seat.
//!
//! Each connection is served on a thread of its own (at most [`MAX_IN_FLIGHT`] at once): a
//! start or stop is answered once the index has it, which can take seconds while another
//! process holds the index's write lock, and `call status` must still answer meanwhile. These
//! threads may wait; the workers never do.

use super::live::{self, LiveTap};
use crate::store::CallMeta;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Start {
        seat: String,
        #[serde(default)]
        meta: CallMeta,
        #[serde(default)]
        tags: Vec<String>,
    },
    /// Stops the seat's call; `meta` is set first, and `outcome` (a code of the call's
    /// campaign's list, store::outcomes) with its `amount` is recorded by the indexer before
    /// the call is finished. A refused outcome does not keep the call recording: it stops, and
    /// the answer says the outcome was not set.
    Stop {
        seat: String,
        #[serde(default)]
        meta: CallMeta,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<f64>,
        /// Who set the outcome, for its audit row (else `control:<seat>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    Pause {
        seat: String,
        by: Option<String>,
        reason: Option<String>,
    },
    Resume {
        seat: String,
    },
    Tag {
        seat: String,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        meta: CallMeta,
    },
    /// CTI hold: the customer is on hold from now on. Marks time on the call (an interval of
    /// kind `hold`, drawn on the waveform); unlike a pause the audio is recorded as ever.
    Hold {
        seat: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// CTI unhold: ends the hold.
    Unhold {
        seat: String,
    },
    /// An agent sits down at a seat: later calls without an explicit agent carry this one.
    /// Logged-in time runs from here to the seat's next login or logout (store::agent_states).
    Login {
        seat: String,
        agent: String,
        /// Who reported it, for the audit row (else `control:<seat>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    Logout {
        seat: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// After a call: after-call work on the seat's last call begins (refused while recording).
    Wrapup {
        seat: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The agent is ready for the next call: ends the wrap-up (ACW = wrapup → ready).
    Ready {
        seat: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    Status,
    /// Live listening: the reply line is followed by the seat's frames (`record::live` wire
    /// format) until the client closes, `max_s` (at most [`LISTEN_MAX`]) ends, or the client
    /// stops reading for [`LISTEN_WRITE_TIMEOUT`].
    Listen {
        seat: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_s: Option<u64>,
    },
}

impl Request {
    pub fn seat(&self) -> Option<&str> {
        match self {
            Request::Start { seat, .. }
            | Request::Stop { seat, .. }
            | Request::Pause { seat, .. }
            | Request::Resume { seat }
            | Request::Tag { seat, .. }
            | Request::Hold { seat, .. }
            | Request::Unhold { seat }
            | Request::Login { seat, .. }
            | Request::Logout { seat, .. }
            | Request::Wrapup { seat, .. }
            | Request::Ready { seat, .. }
            | Request::Listen { seat, .. } => Some(seat),
            Request::Status => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeatStatus {
    pub seat: String,
    pub mode: String,
    pub state: String,
    pub call_id: Option<i64>,
    pub call_duration_ms: u64,
    pub dropped_frames: u64,
    pub lag_ms: u64,
    /// The worst lag since the seat started (start-ups included).
    pub max_lag_ms: u64,
    /// The worst lag in the last minute (`record::lag_window`): whether the box keeps up now.
    #[serde(default)]
    pub max_lag_1m_ms: u64,
    /// Longest time from a sample entering its ring to its Ogg page reaching the OS.
    pub max_page_latency_ms: u64,
    pub agent_dbfs: f32,
    pub customer_dbfs: f32,
    pub drift_correction_ppm: f64,
    pub inputs_down: Vec<String>,
    /// The agent logged in at the seat, if any.
    #[serde(default)]
    pub agent: Option<String>,
    /// The seat's call has the customer on hold (CTI `hold`).
    #[serde(default)]
    pub on_hold: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<SeatStatus>,
    /// The answer to `listen`: what the frames that follow hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveFormat>,
}

/// The frames of a `listen` stream: `rate_hz` samples per second and channel, two channels
/// (agent, customer), `frame_samples` per channel in each frame of `frame_bytes` bytes
/// (`header_bytes` of them the header); the stream ends after `max_s` at the latest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiveFormat {
    pub rate_hz: u32,
    pub channels: u16,
    pub frame_samples: usize,
    pub header_bytes: usize,
    pub frame_bytes: usize,
    pub max_s: u64,
}

impl Response {
    pub fn from_result(r: Result<i64, impl std::fmt::Display>) -> Self {
        match r {
            Ok(id) => Response {
                ok: true,
                call_id: Some(id),
                ..Default::default()
            },
            Err(e) => Self::refused(e),
        }
    }

    /// A request that was not carried out, and why.
    pub fn refused(why: impl std::fmt::Display) -> Self {
        Response {
            ok: false,
            error: Some(why.to_string()),
            ..Default::default()
        }
    }
}

pub type Routed = (Request, Sender<Response>);

/// Everything the control thread needs to answer.
pub struct Router {
    pub workers: HashMap<String, Sender<Routed>>,
    pub status: Vec<Arc<Mutex<SeatStatus>>>,
    /// Each seat's live tap, for `listen`.
    pub live: HashMap<String, Arc<LiveTap>>,
    /// The encoder's rate and frame length: what the seats' frames are.
    pub rate_hz: u32,
    pub frame_samples: usize,
    /// Live listeners of the whole box right now (bounded by `live::MAX_TOTAL`).
    pub live_total: Arc<AtomicUsize>,
}

/// The longest a `listen` stream lasts; a client that wants more asks again.
pub const LISTEN_MAX: Duration = Duration::from_secs(4 * 3600);
/// A listener that takes none of its frames for this long (beyond what the socket buffers) is
/// cut off: its thread is not parked on it.
pub const LISTEN_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a listener's thread looks for new frames (the worker publishes every 10 ms).
const LISTEN_POLL: Duration = Duration::from_millis(5);

/// Connections served at once; more are refused at once (the socket is local and group-only:
/// this only bounds a runaway client).
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a request waits for its seat's worker and the index. Under the client's 15 s, and
/// over the index's 10 s busy timeout, so a start held up by a locked index still gets its id.
const ANSWER_WAIT: Duration = Duration::from_secs(12);

/// Serves the socket until `stop` is set.
pub fn serve(listener: UnixListener, router: Router, stop: Arc<AtomicBool>) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!("control socket: {e}");
        return;
    }
    let router = Arc::new(router);
    let in_flight = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    let _ = refuse_busy(stream);
                    continue;
                }
                let (r, n, st) = (router.clone(), in_flight.clone(), stop.clone());
                let spawned = std::thread::Builder::new()
                    .name("control-req".into())
                    .spawn(move || {
                        if let Err(e) = handle(stream, &r, &st) {
                            tracing::warn!("control request: {e}");
                        }
                        n.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!("control request: no thread for it: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => tracing::warn!("control socket accept: {e}"),
        }
    }
}

fn refuse_busy(stream: UnixStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let resp = Response::refused(format!(
        "the recorder is answering {MAX_IN_FLIGHT} requests already; try again"
    ));
    let mut out = serde_json::to_vec(&resp).unwrap_or_default();
    out.push(b'\n');
    (&stream).write_all(&out)
}

fn handle(stream: UnixStream, router: &Router, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .take(64 * 1024)
        .read_line(&mut line)?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response {
            ok: false,
            error: Some(format!("malformed request: {e}")),
            ..Default::default()
        },
        Ok(Request::Status) => Response {
            ok: true,
            seats: router
                .status
                .iter()
                .filter_map(|s| s.lock().ok().map(|g| g.clone()))
                .collect(),
            ..Default::default()
        },
        Ok(Request::Listen { seat, max_s }) => return listen(&stream, router, &seat, max_s, stop),
        Ok(req) => route(req, router),
    };
    let mut out = serde_json::to_vec(&resp).unwrap_or_default();
    out.push(b'\n');
    (&stream).write_all(&out)
}

/// Serves one `listen`: the reply line, then the seat's frames as they come, until the client
/// closes (a write fails), stops reading for [`LISTEN_WRITE_TIMEOUT`], the time limit passes or
/// the recorder stops. The worker never waits for any of this (see `record::live`).
fn listen(
    stream: &UnixStream,
    router: &Router,
    seat: &str,
    max_s: Option<u64>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let limit = max_s
        .map(Duration::from_secs)
        .unwrap_or(LISTEN_MAX)
        .min(LISTEN_MAX);
    let subscribed = match router.live.get(seat) {
        None => Err(format!("no seat {seat:?} on this box")),
        Some(tap) => tap
            .subscribe(seat, router.frame_samples, &router.live_total)
            .map_err(|e| e.to_string()),
    };
    let mut listener = match subscribed {
        Ok(l) => l,
        Err(why) => {
            let mut out = serde_json::to_vec(&Response::refused(why)).unwrap_or_default();
            out.push(b'\n');
            return (&*stream).write_all(&out);
        }
    };
    let frame_bytes = live::frame_bytes(router.frame_samples);
    let resp = Response {
        ok: true,
        live: Some(LiveFormat {
            rate_hz: router.rate_hz,
            channels: 2,
            frame_samples: router.frame_samples,
            header_bytes: live::HEADER_BYTES,
            frame_bytes,
            max_s: limit.as_secs(),
        }),
        ..Default::default()
    };
    stream.set_write_timeout(Some(LISTEN_WRITE_TIMEOUT))?;
    let mut out = serde_json::to_vec(&resp).unwrap_or_default();
    out.push(b'\n');
    (&*stream).write_all(&out)?;
    tracing::info!(seat, max_s = limit.as_secs(), "live listener connected");
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; frame_bytes * live::RING_FRAMES];
    let outcome = loop {
        if stop.load(Ordering::Relaxed) {
            break "the recorder is stopping";
        }
        if started.elapsed() >= limit {
            break "time limit reached";
        }
        let n = listener.frames.pop_partial_slice(&mut buf).0.len();
        if n == 0 {
            std::thread::sleep(LISTEN_POLL);
            continue;
        }
        if let Err(e) = (&*stream).write_all(&buf[..n]) {
            break match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "the listener stopped reading"
                }
                _ => "the listener went away",
            };
        }
    };
    tracing::info!(
        seat,
        seconds = started.elapsed().as_secs(),
        dropped_frames = listener.dropped_frames.load(Ordering::Relaxed),
        "live listener disconnected: {outcome}"
    );
    Ok(())
}

use std::io::Read as _;

fn route(req: Request, router: &Router) -> Response {
    let seat = req.seat().unwrap_or_default().to_owned();
    let Some(tx) = router.workers.get(&seat) else {
        return Response::refused(format!("no seat {seat:?} on this box"));
    };
    let (rtx, rrx) = mpsc::channel();
    if tx.send((req, rtx)).is_err() {
        return Response::refused("the recorder is shutting down");
    }
    rrx.recv_timeout(ANSWER_WAIT).unwrap_or_else(|_| {
        Response::refused(format!(
            "no answer within {} s (the index may be locked by another process); the request may still be carried out: `callrec call status` shows the seat",
            ANSWER_WAIT.as_secs()
        ))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the recorder at {path}: {err}. Is `callrec record` (or `callrec run`) running with this config?")]
    Connect { path: String, err: std::io::Error },
    #[error("talking to the recorder: {0}")]
    Io(#[from] std::io::Error),
    #[error("the recorder sent an unreadable reply: {0}")]
    Reply(#[from] serde_json::Error),
}

/// Sends one request and waits for the reply.
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|err| ClientError::Connect {
        path: socket.display().to_string(),
        err,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut body = serde_json::to_vec(req)?;
    body.push(b'\n');
    (&stream).write_all(&body)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(serde_json::from_str(&line)?)
}
