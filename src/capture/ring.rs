//! The hand-off from a capture callback to the workers: one rtrb SPSC ring per input.
//!
//! `RingWriter::push` runs on the audio thread: it copies and converts samples, never blocks,
//! locks, allocates, logs or does I/O (invariant 1). When the ring is full, the frames that do not
//! fit are counted in `dropped_frames` and discarded. Everything else on `InputShared` is read
//! by the workers and the device supervisor.

use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Ring capacity: long enough to ride out a slow disk or a busy worker without dropping.
pub const RING_MS: u32 = 2000;

/// State one input shares between its callback, the workers and the device supervisor.
#[derive(Default)]
pub struct InputShared {
    /// Frames the device delivered that did not fit in the ring.
    pub dropped_frames: AtomicU64,
    /// Frames the device delivered, including dropped ones.
    pub frames_in: AtomicU64,
    /// Set when the device errors, stalls or is absent; the seat fills the gap with silence.
    pub down: AtomicBool,
    /// Set by the cpal error callback; the supervisor reopens the device.
    pub error_flag: AtomicBool,
    /// A fresh consumer after the device was (re)opened; the worker takes it.
    pub new_consumer: Mutex<Option<Consumer<f32>>>,
    /// Why the input is down, for `callrec call status` and logs.
    pub last_error: Mutex<Option<String>>,
}

impl InputShared {
    pub fn set_error(&self, message: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(message);
        }
    }
}

/// Producer side of an input's ring, owned by the audio callback.
pub struct RingWriter {
    producer: Producer<f32>,
    /// Device channel index of each party carried by this input, in ring order.
    map: Vec<usize>,
    device_channels: usize,
    shared: std::sync::Arc<InputShared>,
}

impl RingWriter {
    /// Creates a ring for `map.len()` party channels at `rate_hz` and returns both ends.
    pub fn new(
        rate_hz: u32,
        device_channels: usize,
        map: Vec<usize>,
        shared: std::sync::Arc<InputShared>,
    ) -> (RingWriter, Consumer<f32>) {
        let cap = (rate_hz as usize * RING_MS as usize / 1000) * map.len();
        let (producer, consumer) = RingBuffer::new(cap);
        (
            RingWriter {
                producer,
                map,
                device_channels,
                shared,
            },
            consumer,
        )
    }

    /// The ring for one configured input, carrying the parties it is mapped to.
    pub fn for_input(
        cfg: &crate::config::InputConfig,
        shared: &std::sync::Arc<InputShared>,
    ) -> (RingWriter, Consumer<f32>) {
        let map = cfg
            .party_channels()
            .iter()
            .map(|(_, c)| usize::from(*c))
            .collect();
        Self::new(cfg.rate_hz, usize::from(cfg.channels), map, shared.clone())
    }

    /// Audio thread: converts interleaved device samples and pushes the party channels.
    pub fn push<T: Copy>(&mut self, data: &[T], to_f32: impl Fn(T) -> f32) {
        let frames = data.len() / self.device_channels;
        let n = self.map.len();
        let fit = frames.min(self.producer.slots() / n);
        if fit > 0 {
            if let Ok(chunk) = self.producer.write_chunk_uninit(fit * n) {
                let map = &self.map;
                let dc = self.device_channels;
                let it = (0..fit * n).map(|i| to_f32(data[(i / n) * dc + map[i % n]]));
                chunk.fill_from_iter(it);
            }
        }
        self.shared
            .frames_in
            .fetch_add(frames as u64, Ordering::Relaxed);
        if fit < frames {
            self.shared
                .dropped_frames
                .fetch_add((frames - fit) as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn maps_channels_and_counts_drops() {
        let shared = Arc::new(InputShared::default());
        // 1 kHz for 2 s ring -> 2000 frames of 2 party channels.
        let (mut w, mut c) = RingWriter::new(1000, 3, vec![2, 0], shared.clone());
        let frames: Vec<i16> = (0..1500 * 3).map(|i| i as i16).collect();
        w.push(&frames, f32::from);
        assert_eq!(c.slots(), 3000);
        let (a, b) = (c.pop().ok(), c.pop().ok());
        assert_eq!((a, b), (Some(2.0), Some(0.0))); // party 0 <- device ch 2, party 1 <- ch 0
        w.push(&frames, f32::from); // 1500 more frames, room for 501
        assert_eq!(shared.dropped_frames.load(Ordering::Relaxed), 999);
        assert_eq!(shared.frames_in.load(Ordering::Relaxed), 3000);
    }
}
