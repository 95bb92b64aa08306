//! Live listening: a seat's aligned 20 ms frames, handed to whoever listens to the seat right
//! now (a supervisor's browser, through the control socket's `listen` request and the web
//! service's `/api/live/{seat}/audio`).
//!
//! The seat's worker publishes each frame after pause handling (a paused (PCI) call is silence
//! here too, as on disk) into one bounded ring per listener; a control-socket thread drains
//! that ring into the listener's connection. The capture callback never sees any of this.
//!
//! This module must never make the worker wait: it only `try_lock`s the listener list, copies
//! nothing while no one listens (one atomic load per frame), and when a listener's ring is full
//! the frame is dropped for that listener alone (counted) — the recording goes on untouched.
//! A listener's thread may wait (on its socket), bounded by a write timeout and a time limit.
//!
//! Wire format of one frame (documented in docs/integration.md, "Live listening"), little
//! endian: `u32` sequence number of the frame at the seat (a jump means frames were dropped
//! for this listener), `u16` flags ([`FLAG_PAUSED`], [`FLAG_CALL`]), `u16` samples per
//! channel `n`, `i64` call row id (0: none yet), then `n` interleaved pairs of `i16`
//! (agent, customer) at the encoder's rate.

use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes before a frame's samples.
pub const HEADER_BYTES: usize = 16;
/// The frame is silence because the call is paused (PCI): the audio was never copied.
pub const FLAG_PAUSED: u16 = 1;
/// A call is being recorded on the seat (its id is in the header once the index has it).
pub const FLAG_CALL: u16 = 2;
/// Listeners of one seat at once; one more is refused.
pub const MAX_PER_SEAT: usize = 4;
/// Listeners of the whole box at once; one more is refused. Each one holds a control-socket
/// thread, so this stays well under `control::MAX_IN_FLIGHT`.
pub const MAX_TOTAL: usize = 16;
/// A listener's ring holds this many frames (1 s at 20 ms): a listener that falls further
/// behind loses frames rather than adding delay.
pub const RING_FRAMES: usize = 50;

/// Bytes of one frame on the wire for `frame_samples` samples per channel.
pub fn frame_bytes(frame_samples: usize) -> usize {
    HEADER_BYTES + frame_samples * 2 * 2
}

/// One listener as the worker sees it: the producing end of its ring.
struct Sink {
    id: u64,
    ring: Producer<u8>,
    dropped_frames: Arc<AtomicU64>,
}

/// A seat's tap, shared by its worker (publishes) and the control socket (subscribes).
#[derive(Default)]
pub struct LiveTap {
    /// Listeners subscribed: the worker's whole cost while it is 0 is loading this.
    listeners: AtomicUsize,
    sinks: Mutex<Vec<Sink>>,
    next_id: AtomicU64,
}

/// Why a listener was not admitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ListenError {
    #[error("seat {seat:?} already has {MAX_PER_SEAT} listeners; try again later")]
    SeatFull { seat: String },
    #[error("the recorder already serves {MAX_TOTAL} live listeners; try again later")]
    BoxFull,
}

/// A listener's end: the frames its seat published for it, until dropped (then the worker
/// forgets it on its next frame).
pub struct Listener {
    tap: Arc<LiveTap>,
    total: Arc<AtomicUsize>,
    id: u64,
    pub frames: Consumer<u8>,
    /// Frames the worker could not hand to this listener (its ring was full, or the list was
    /// busy being changed).
    pub dropped_frames: Arc<AtomicU64>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Ok(mut sinks) = self.tap.sinks.lock() {
            sinks.retain(|s| s.id != self.id);
            self.tap.listeners.store(sinks.len(), Ordering::Release);
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LiveTap {
    /// Subscribes a listener with a ring of [`RING_FRAMES`] frames of `frame_samples`, if
    /// neither the seat's nor the box's (`total`) limit is reached.
    pub fn subscribe(
        self: &Arc<Self>,
        seat: &str,
        frame_samples: usize,
        total: &Arc<AtomicUsize>,
    ) -> Result<Listener, ListenError> {
        let mut sinks = self.sinks.lock().map_err(|_| ListenError::BoxFull)?;
        if sinks.len() >= MAX_PER_SEAT {
            return Err(ListenError::SeatFull { seat: seat.into() });
        }
        if total.fetch_add(1, Ordering::AcqRel) >= MAX_TOTAL {
            total.fetch_sub(1, Ordering::AcqRel);
            return Err(ListenError::BoxFull);
        }
        let (ring, frames) = RingBuffer::new(frame_bytes(frame_samples) * RING_FRAMES);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped_frames = Arc::new(AtomicU64::new(0));
        sinks.push(Sink {
            id,
            ring,
            dropped_frames: dropped_frames.clone(),
        });
        self.listeners.store(sinks.len(), Ordering::Release);
        Ok(Listener {
            tap: self.clone(),
            total: total.clone(),
            id,
            frames,
            dropped_frames,
        })
    }

    /// Listeners subscribed right now.
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Acquire)
    }
}

/// The worker's side of a seat's tap: numbers frames and encodes them once per frame for all
/// of the seat's listeners.
pub struct Publisher {
    tap: Arc<LiveTap>,
    seq: u32,
    scratch: Vec<u8>,
}

impl Publisher {
    pub fn new(tap: Arc<LiveTap>) -> Self {
        Publisher {
            tap,
            seq: 0,
            scratch: Vec::new(),
        }
    }

    /// Hands one aligned frame (interleaved agent, customer) to every listener whose ring has
    /// room. `paused`: the call is paused, so silence goes out instead of `frame`; `call`
    /// names the call's row (asked only while someone listens). Never waits.
    pub fn publish(
        &mut self,
        frame: &[f32],
        paused: bool,
        call: impl FnOnce() -> Option<i64>,
        recording: bool,
    ) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if self.tap.listeners.load(Ordering::Acquire) == 0 {
            return;
        }
        let Ok(mut sinks) = self.tap.sinks.try_lock() else {
            // A listener is being added or removed this very moment: this frame is lost for
            // the listeners (their next frame's sequence number shows the jump); the worker
            // goes on.
            return;
        };
        let n = frame.len() / 2;
        let flags = if paused { FLAG_PAUSED } else { 0 } | if recording { FLAG_CALL } else { 0 };
        self.scratch.clear();
        self.scratch.extend_from_slice(&seq.to_le_bytes());
        self.scratch.extend_from_slice(&flags.to_le_bytes());
        self.scratch
            .extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes());
        self.scratch
            .extend_from_slice(&call().unwrap_or(0).to_le_bytes());
        for &v in frame {
            let s = if paused {
                0
            } else {
                (v.clamp(-1.0, 1.0) * 32767.0) as i16
            };
            self.scratch.extend_from_slice(&s.to_le_bytes());
        }
        for sink in sinks.iter_mut() {
            if sink.ring.push_entire_slice(&self.scratch).is_err() {
                sink.dropped_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> (u32, u16, u16, i64) {
        (
            u32::from_le_bytes(bytes[0..4].try_into().unwrap()),
            u16::from_le_bytes(bytes[4..6].try_into().unwrap()),
            u16::from_le_bytes(bytes[6..8].try_into().unwrap()),
            i64::from_le_bytes(bytes[8..16].try_into().unwrap()),
        )
    }

    fn drain(l: &mut Listener) -> Vec<u8> {
        let n = l.frames.slots();
        let chunk = l.frames.read_chunk(n).unwrap();
        let (a, b) = chunk.as_slices();
        let v = [a, b].concat();
        chunk.commit_all();
        v
    }

    #[test]
    fn frames_reach_a_listener_with_header_and_pcm_and_pause_is_silence() {
        let tap = Arc::new(LiveTap::default());
        let total = Arc::new(AtomicUsize::new(0));
        let mut p = Publisher::new(tap.clone());
        let frame = [0.5f32, -0.25, 0.5, -0.25];
        p.publish(&frame, false, || None, false); // nobody listens: seq 0 goes nowhere
        let mut l = tap.subscribe("s1", 2, &total).unwrap();
        p.publish(&frame, false, || Some(7), true);
        p.publish(&frame, true, || Some(7), true);
        let bytes = drain(&mut l);
        assert_eq!(bytes.len(), 2 * frame_bytes(2));
        assert_eq!(header(&bytes), (1, FLAG_CALL, 2, 7));
        let pcm: Vec<i16> = bytes[16..24]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(pcm, vec![16383, -8191, 16383, -8191]);
        let second = &bytes[frame_bytes(2)..];
        assert_eq!(header(second), (2, FLAG_PAUSED | FLAG_CALL, 2, 7));
        assert!(
            second[16..].iter().all(|b| *b == 0),
            "paused frame not silent"
        );
    }

    #[test]
    fn a_full_ring_drops_frames_for_that_listener_only_and_limits_hold() {
        let tap = Arc::new(LiveTap::default());
        let total = Arc::new(AtomicUsize::new(0));
        let mut p = Publisher::new(tap.clone());
        let mut fast = tap.subscribe("s1", 2, &total).unwrap();
        let slow = tap.subscribe("s1", 2, &total).unwrap();
        let frame = [0.1f32; 4];
        for _ in 0..RING_FRAMES + 10 {
            p.publish(&frame, false, || None, false);
            drain(&mut fast);
        }
        assert_eq!(slow.dropped_frames.load(Ordering::Relaxed), 10);
        assert_eq!(fast.dropped_frames.load(Ordering::Relaxed), 0);
        let _more: Vec<Listener> = (0..2)
            .map(|_| tap.subscribe("s1", 2, &total).unwrap())
            .collect();
        assert_eq!(
            tap.subscribe("s1", 2, &total).err(),
            Some(ListenError::SeatFull { seat: "s1".into() })
        );
        drop(slow);
        assert_eq!(tap.listeners(), 3);
        assert_eq!(total.load(Ordering::Relaxed), 3);
        let others: Vec<Arc<LiveTap>> = (0..5).map(|_| Arc::new(LiveTap::default())).collect();
        let mut held = Vec::new();
        for t in &others {
            for _ in 0..3 {
                if let Ok(l) = t.subscribe("x", 2, &total) {
                    held.push(l);
                }
            }
        }
        assert_eq!(held.len(), MAX_TOTAL - 3);
        assert_eq!(
            Arc::new(LiveTap::default()).subscribe("y", 2, &total).err(),
            Some(ListenError::BoxFull)
        );
    }
}
