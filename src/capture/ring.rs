//! The hand-off from a capture callback to the workers: one rtrb SPSC ring per input.
//!
//! `RingWriter::push` runs on the audio thread: it copies and converts samples, never blocks,
//! locks, allocates, logs or does I/O (invariant 1). When the ring is full, the frames that do not
//! fit are counted in `dropped_frames` and discarded. Everything else on `InputShared` is read
//! by the workers and the device supervisor.
//!
//! One device can feed many seats ([`Fanout`]): its callback de-interleaves each callback
//! buffer straight into every seat's ring, with no intermediate buffer and no allocation.

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

/// One ring fed by a device: the seat input it belongs to and the device channel of each of
/// its party channels, in ring order (agent first).
pub struct Tap {
    pub shared: std::sync::Arc<InputShared>,
    pub map: Vec<usize>,
}

/// The callback side of one device shared by several seats: a ring writer per tap.
pub struct Fanout {
    writers: Vec<RingWriter>,
}

impl Fanout {
    /// Fresh rings for every tap of a `device_channels`-channel device at `rate_hz`; the
    /// consumers come back in tap order.
    pub fn new(rate_hz: u32, device_channels: usize, taps: &[Tap]) -> (Fanout, Vec<Consumer<f32>>) {
        let (writers, consumers) = taps
            .iter()
            .map(|t| RingWriter::new(rate_hz, device_channels, t.map.clone(), t.shared.clone()))
            .unzip();
        (Fanout { writers }, consumers)
    }

    /// Audio thread: every tap takes its channels from the callback's interleaved buffer,
    /// converted on the way into its ring (no copy in between, no allocation, no lock).
    pub fn push<T: Copy>(&mut self, data: &[T], to_f32: impl Fn(T) -> f32) {
        for w in &mut self.writers {
            w.push(data, &to_f32);
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

    /// Counts allocations made by the current thread, so the audio-thread path can be shown to
    /// make none.
    struct Counting;

    thread_local! {
        static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocs() -> u64 {
        ALLOCS.with(|a| a.get())
    }

    #[test]
    fn fanout_splits_one_device_into_seat_rings_without_allocating() {
        // A 6-channel device: seat A = ch 0 + 1, seat B = ch 3 (agent) + 2, seat C = only ch 5.
        let shared: Vec<Arc<InputShared>> =
            (0..3).map(|_| Arc::new(InputShared::default())).collect();
        let maps = [vec![0, 1], vec![3, 2], vec![5]];
        let taps: Vec<Tap> = shared
            .iter()
            .zip(maps)
            .map(|(s, map)| Tap {
                shared: s.clone(),
                map,
            })
            .collect();
        let (mut fan, mut rings) = Fanout::new(1000, 6, &taps);
        // Sample value = 100 * frame + channel.
        let data: Vec<i16> = (0..10 * 6).map(|i| (i / 6 * 100 + i % 6) as i16).collect();
        let before = allocs();
        fan.push(&data, f32::from);
        assert_eq!(allocs(), before, "the callback path allocated");
        let pop_all =
            |r: &mut Consumer<f32>| -> Vec<f32> { std::iter::from_fn(|| r.pop().ok()).collect() };
        let a = pop_all(&mut rings[0]);
        let b = pop_all(&mut rings[1]);
        let c = pop_all(&mut rings[2]);
        assert_eq!(a.len(), 20);
        assert_eq!(&a[..4], &[0.0, 1.0, 100.0, 101.0]);
        assert_eq!(&b[..4], &[3.0, 2.0, 103.0, 102.0]);
        assert_eq!(&c[..3], &[5.0, 105.0, 205.0]);
        for s in &shared {
            assert_eq!(s.frames_in.load(Ordering::Relaxed), 10);
            assert_eq!(s.dropped_frames.load(Ordering::Relaxed), 0);
        }
    }
}
