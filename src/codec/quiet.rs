//! Which of a party's frames are quiet enough to leave out of the encoder.
//!
//! In a call each party is silent more than half the time, and libopus costs nearly as much on a
//! silent frame as on speech (SILK's noise-shaping quantizer runs either way; DTX alone saves
//! bytes, not cycles). So the recorder's writer does not run a party's encoder on frames that
//! hold nothing but that party's own background noise, and stores a DTX packet for them instead
//! (`party::dtx_packet`; decoders play comfort noise shaped like the last encoded background).
//!
//! What counts as quiet, per party and per frame (RMS over the frame, dBFS):
//! - the noise floor is tracked as a running minimum of the frame level that falls at once and
//!   rises by at most `FLOOR_RISE_DB_PER_S` (ten times that in the first `FLOOR_WARMUP_MS`),
//!   starting from `FLOOR_START_DBFS`;
//! - a frame is *active* when its level is more than `MARGIN_DB` above that floor. The margin is
//!   above the frame-to-frame wobble of steady noise (office and line noise at 20 ms: within
//!   ±3 dB of their mean, the floor sits at their minimum), and below any sound a listener can
//!   pick out of that noise: a third voice in the room 9 dB over the floor is encoded;
//! - a frame is encoded when an active frame lies at most `HANGOVER_MS` before it or at most
//!   `LOOKBACK_MS` after it. The look-back needs a delay of that length in the writer; it keeps
//!   the soft start of every utterance (fricatives, the rise of a vowel), which is quieter than
//!   the frames that trip the detector, and it gives the encoder one quiet frame to settle on
//!   before the speech. The hangover keeps trailing consonants and the gaps between words.
//!
//! What this must never do: decide from anything but the samples (no wall clock, no state shared
//! between parties), or let a frame louder than its floor by the margin go unencoded.

/// How far above the tracked noise floor a frame must be to count as sound, dB.
pub const MARGIN_DB: f32 = 9.0;
/// Frames encoded before the first active frame of an utterance.
pub const LOOKBACK_MS: u32 = 100;
/// Frames encoded after the last active frame.
pub const HANGOVER_MS: u32 = 300;
/// The floor before anything was heard: low, so the first frames of a call are all encoded.
const FLOOR_START_DBFS: f32 = -100.0;
/// How fast the floor may rise: a louder background is accepted as the new floor within seconds,
/// while a stretch of speech (its quietest frames tens of dB below its syllables) cannot lift it
/// to the speech.
const FLOOR_RISE_DB_PER_S: f32 = 3.0;
/// For the first seconds of a stream the floor rises faster, so that it reaches the background
/// soon after the start (from `FLOOR_START_DBFS` at 3 dB/s that would take half a minute).
const FLOOR_WARMUP_MS: u32 = 2000;
const FLOOR_WARMUP_RISE_DB_PER_S: f32 = 30.0;

/// RMS level of one party of an interleaved [agent, customer] frame, dBFS (-120 for silence).
/// (`dsp::level` has the same measure; `codec` sits below `dsp` and keeps its own copy.)
fn party_dbfs(interleaved: &[f32], party: usize) -> f32 {
    let n = (interleaved.len() / 2).max(1);
    let mean_sq = interleaved
        .iter()
        .skip(party)
        .step_by(2)
        .map(|x| x * x)
        .sum::<f32>()
        / n as f32;
    (10.0 * mean_sq.max(1e-12).log10()).max(-120.0)
}

/// Per-party activity with look-back and hangover; `active`/`encode` take frame indexes.
pub struct QuietFrames {
    enabled: bool,
    floor_dbfs: [f32; 2],
    rise_db_per_frame: f32,
    warmup_rise_db_per_frame: f32,
    warmup_frames: u64,
    /// Index of the last active frame seen per party.
    last_active: [Option<u64>; 2],
    lookback_frames: u64,
    hangover_frames: u64,
}

impl QuietFrames {
    /// `enabled = false`: every frame is encoded, with no delay (the encoder as before).
    pub fn new(frame_ms: u32, enabled: bool) -> Self {
        let frame_ms = frame_ms.max(1);
        QuietFrames {
            enabled,
            floor_dbfs: [FLOOR_START_DBFS; 2],
            rise_db_per_frame: FLOOR_RISE_DB_PER_S * frame_ms as f32 / 1000.0,
            warmup_rise_db_per_frame: FLOOR_WARMUP_RISE_DB_PER_S * frame_ms as f32 / 1000.0,
            warmup_frames: u64::from(FLOOR_WARMUP_MS / frame_ms),
            last_active: [None; 2],
            lookback_frames: if enabled {
                u64::from(LOOKBACK_MS.div_ceil(frame_ms))
            } else {
                0
            },
            hangover_frames: u64::from(HANGOVER_MS.div_ceil(frame_ms)),
        }
    }

    /// Frames the writer must hold back before it can decide (the look-back).
    pub fn delay_frames(&self) -> u64 {
        self.lookback_frames
    }

    /// Takes frame `index` (interleaved [agent, customer]) into both parties' floors.
    pub fn observe(&mut self, index: u64, interleaved: &[f32]) {
        if !self.enabled {
            return;
        }
        let rise = if index < self.warmup_frames {
            self.warmup_rise_db_per_frame
        } else {
            self.rise_db_per_frame
        };
        for party in 0..2 {
            let level = party_dbfs(interleaved, party);
            let floor = &mut self.floor_dbfs[party];
            let active = level > *floor + MARGIN_DB;
            *floor = if level < *floor {
                level
            } else {
                (*floor + rise).min(level)
            };
            if active {
                self.last_active[party] = Some(index);
            }
        }
    }

    /// Whether frame `index` of `party` must go through the encoder. Valid once every frame up
    /// to `index + delay_frames()` was observed (or at the end of the stream).
    pub fn encode(&self, party: usize, index: u64) -> bool {
        !self.enabled
            || self.last_active[party].is_some_and(|a| {
                a + self.hangover_frames >= index && a <= index + self.lookback_frames
            })
    }

    /// The floor currently tracked for `party`, dBFS.
    pub fn floor_dbfs(&self, party: usize) -> f32 {
        self.floor_dbfs[party]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(agent: f32, customer: f32) -> Vec<f32> {
        // A 20 ms frame at 16 kHz whose two channels have these RMS amplitudes (a square wave).
        (0..320)
            .flat_map(|i| {
                let s = if i % 2 == 0 { 1.0 } else { -1.0 };
                [agent * s, customer * s]
            })
            .collect()
    }

    fn db(dbfs: f32) -> f32 {
        10f32.powf(dbfs / 20.0)
    }

    /// Feeds frames of (agent, customer) dBFS and returns each frame's decisions, each asked
    /// when the writer asks it: once the look-back's frames after it were observed.
    fn decide(q: &mut QuietFrames, levels: &[(f32, f32)]) -> Vec<[bool; 2]> {
        let d = q.delay_frames() as usize;
        let mut out = Vec::new();
        for (i, (a, c)) in levels.iter().enumerate() {
            q.observe(i as u64, &frame(db(*a), db(*c)));
            if i >= d {
                let k = (i - d) as u64;
                out.push([q.encode(0, k), q.encode(1, k)]);
            }
        }
        for k in out.len()..levels.len() {
            out.push([q.encode(0, k as u64), q.encode(1, k as u64)]);
        }
        out
    }

    #[test]
    fn noise_alone_is_quiet_and_speech_over_it_with_its_edges_is_encoded() {
        let mut q = QuietFrames::new(20, true);
        assert_eq!(q.delay_frames(), 5);
        // 10 s of noise wobbling ±2 dB around -62 dBFS on both parties, then quiet speech at
        // -45 dBFS on the customer only (frames 500..525), then noise again.
        let mut levels = Vec::new();
        for k in 0..500 {
            let wobble = [-2.0, 0.0, 2.0, 1.0, -1.0][k % 5];
            levels.push((-62.0 + wobble, -62.0 + wobble));
        }
        levels.extend(std::iter::repeat_n((-62.0, -45.0), 25));
        levels.extend(std::iter::repeat_n((-62.0, -62.0), 100));
        let enc = decide(&mut q, &levels);
        let floor = q.floor_dbfs(0);
        assert!((-65.0..-62.0).contains(&floor), "floor {floor}");
        // Noise frames after the floor settled are not encoded.
        assert!((200..494).all(|f| !enc[f][0] && !enc[f][1]));
        assert!(!enc[494][1], "before the look-back");
        assert!((495..525).all(|f| enc[f][1]), "look-back and speech");
        assert!((525..540).all(|f| enc[f][1]), "hangover");
        assert!((540..625).all(|f| !enc[f][1]), "after the hangover");
        assert!((200..625).all(|f| !enc[f][0]), "the agent stayed quiet");
    }

    #[test]
    fn a_third_voice_just_above_the_floor_is_kept_and_the_floor_does_not_climb_to_speech() {
        let mut q = QuietFrames::new(20, true);
        let mut i = 0u64;
        for _ in 0..300 {
            q.observe(i, &frame(db(-60.0), 0.0));
            i += 1;
        }
        // A voice in the room 10 dB over the background.
        q.observe(i, &frame(db(-50.0), 0.0));
        assert!(q.encode(0, i));
        i += 1;
        // 20 s of speech whose quietest frames are 20 dB under its loud ones: the floor
        // follows the quiet frames, so the loud ones stay active to the end.
        for k in 0..1000u64 {
            let level = if k % 10 == 0 { -50.0 } else { -30.0 };
            q.observe(i, &frame(db(level), 0.0));
            i += 1;
        }
        assert!(q.encode(0, i - 1));
        assert!(q.floor_dbfs(0) < -45.0, "floor {}", q.floor_dbfs(0));
    }

    #[test]
    fn disabled_encodes_everything_without_delay() {
        let mut q = QuietFrames::new(20, false);
        q.observe(0, &frame(0.0, 0.0));
        assert_eq!(q.delay_frames(), 0);
        assert!(q.encode(0, 0) && q.encode(1, 12345));
    }
}
