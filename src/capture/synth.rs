//! A deterministic, speech-like two-party conversation for demos and capacity benches.
//!
//! Turns alternate between agent and customer with pauses and occasional overlaps; inside a turn,
//! voiced "syllables" (a harmonic wavetable at a wandering pitch under a syllable envelope) at
//! about −20 dBFS. It is cheap (a table lookup per sample) so hundreds of seats can run in real
//! time, and the same seed yields the same conversation on two inputs with different clocks.
//!
//! Three kinds (`SyntheticSpeech`): `turns`, the generator as it always was (digital silence
//! between turns); `conversation`, a realistic call for the capacity bench — each party talks
//! 35–50 % of the time with short overlaps and pauses, the customer 0–10 dB quieter than the
//! agent, over office noise on the agent's side and line noise on the customer's, joined a seeded
//! 0–60 s into the call so that seats are not in step; `continuous`,
//! both parties talking all the time over the same noise, the encoder's worst case. The noise
//! comes from two tables computed once per process and shared by every seat (each seat reads
//! them from its own offset), so it costs a lookup per sample, not a generator.

use crate::config::SyntheticSpeech;
use std::f32::consts::PI;
use std::sync::OnceLock;

const TABLE_LEN: usize = 2048;

/// splitmix64: tiny, seedable, good enough to schedule turns.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Voice {
    table: Vec<f32>,
    base_hz: f32,
    syllable_s: f32,
    phase: f32,
    /// Pitch step and syllable gain, recomputed every `CONTROL_EVERY` samples (they move slowly).
    step: f32,
    gain: f32,
    counter: u32,
}

/// Control-rate decimation for the pitch and envelope (≈ 0.7 ms at 48 kHz).
const CONTROL_EVERY: u32 = 32;

impl Voice {
    fn new(base_hz: f32, syllable_s: f32, formant_hz: f32) -> Self {
        // One period of a harmonic series shaped by a single formant bump.
        let mut table = vec![0f32; TABLE_LEN];
        for k in 1..=24 {
            let f = base_hz * k as f32;
            let amp = (1.0 / k as f32) * (1.0 + 3.0 * (-((f - formant_hz) / 300.0).powi(2)).exp());
            for (i, v) in table.iter_mut().enumerate() {
                *v += amp * (2.0 * PI * k as f32 * i as f32 / TABLE_LEN as f32).sin();
            }
        }
        let peak = table.iter().fold(0f32, |m, v| m.max(v.abs()));
        for v in &mut table {
            *v *= 0.25 / peak;
        }
        Voice {
            table,
            base_hz,
            syllable_s,
            phase: 0.0,
            step: 0.0,
            gain: 0.0,
            counter: 0,
        }
    }

    fn sample(&mut self, t_in_turn_s: f32, rate_hz: f32) -> f32 {
        if self.counter == 0 {
            let f0 = self.base_hz * (1.0 + 0.08 * (2.0 * PI * 0.6 * t_in_turn_s).sin());
            self.step = f0 / rate_hz;
            let syl = (PI * (t_in_turn_s / self.syllable_s).fract()).sin();
            self.gain = syl * syl;
        }
        self.counter = (self.counter + 1) % CONTROL_EVERY;
        self.phase += self.step;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        let pos = self.phase * TABLE_LEN as f32;
        let i = (pos as usize).min(TABLE_LEN - 1);
        let frac = pos - i as f32;
        let v = self.table[i] * (1.0 - frac) + self.table[(i + 1) % TABLE_LEN] * frac;
        v * self.gain
    }
}

/// A turn: who speaks, from which sample to which (at the nominal rate).
#[derive(Clone, Copy, Debug)]
struct Turn {
    agent: bool,
    start: u64,
    end: u64,
}

/// Length of the shared noise tables, samples at `NOISE_RATE_HZ` (long enough not to be heard
/// as a loop in a bench, small enough to share: 2 × 750 KB).
const NOISE_LEN: usize = 48_000 * 4;
const NOISE_RATE_HZ: u32 = 48_000;
/// Background levels, dBFS RMS: an open-plan office at a headset microphone, and the hiss of a
/// PSTN/VoIP line tap.
const OFFICE_NOISE_DBFS: f32 = -55.0;
const LINE_NOISE_DBFS: f32 = -64.0;

/// Office noise (low-passed, slowly swelling murmur) and line noise (hiss with a faint 50 Hz hum),
/// each scaled to its RMS level.
fn noise_tables() -> &'static [Vec<f32>; 2] {
    static TABLES: OnceLock<[Vec<f32>; 2]> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut rng = Rng(0x0ff1_ce00);
        let mut white = move || rng.range(-1.0, 1.0) as f32;
        let rate = NOISE_RATE_HZ as f32;
        let (mut lp1, mut lp2) = (0f32, 0f32);
        let office: Vec<f32> = (0..NOISE_LEN)
            .map(|i| {
                // Two one-pole low-passes (≈ 300 Hz and 1.5 kHz) give a murmur-like tilt; a 0.3 Hz
                // swell of ±4 dB keeps it from being stationary.
                let w = white();
                lp1 += 0.04 * (w - lp1);
                lp2 += 0.18 * (w - lp2);
                let swell = 1.0 + 0.45 * (2.0 * PI * 0.3 * i as f32 / rate).sin();
                (2.0 * lp1 + 0.5 * lp2) * swell
            })
            .collect();
        let mut prev = 0f32;
        let line: Vec<f32> = (0..NOISE_LEN)
            .map(|i| {
                // First difference: a hiss tilted to the top of the band, plus mains hum.
                let w = white();
                let hiss = w - 0.5 * prev;
                prev = w;
                hiss + 0.3 * (2.0 * PI * 50.0 * i as f32 / rate).sin()
            })
            .collect();
        [
            scale_to(office, OFFICE_NOISE_DBFS),
            scale_to(line, LINE_NOISE_DBFS),
        ]
    })
}

fn scale_to(mut v: Vec<f32>, dbfs: f32) -> Vec<f32> {
    let rms = (v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let gain = 10f64.powf(f64::from(dbfs) / 20.0) / rms.max(1e-12);
    for x in &mut v {
        *x = (f64::from(*x) * gain) as f32;
    }
    v
}

/// Reads a shared noise table at a seat's own offset, at any output rate (fixed-point step).
struct NoiseReader {
    pos_q16: u64,
    step_q16: u64,
}

impl NoiseReader {
    fn new(offset: u64, rate_hz: u32) -> Self {
        NoiseReader {
            pos_q16: (offset % NOISE_LEN as u64) << 16,
            step_q16: (u64::from(NOISE_RATE_HZ) << 16) / u64::from(rate_hz.max(1)),
        }
    }

    fn next(&mut self, table: &[f32]) -> f32 {
        let v = table[(self.pos_q16 >> 16) as usize % NOISE_LEN];
        self.pos_q16 = (self.pos_q16 + self.step_q16) % ((NOISE_LEN as u64) << 16);
        v
    }
}

/// The background and levels of the `conversation` and `continuous` kinds.
struct Realism {
    tables: &'static [Vec<f32>; 2],
    noise: [NoiseReader; 2],
    /// Voice gains per party (the customer is 0–10 dB quieter than the agent).
    gain: [f32; 2],
}

/// Generates both parties; `next` yields (agent, customer) samples at `rate_hz`.
pub struct Conversation {
    rng: Rng,
    rate_hz: u32,
    t: u64,
    turns: Vec<Turn>,
    agent: Voice,
    customer: Voice,
    speech: SyntheticSpeech,
    realism: Option<Realism>,
}

impl Conversation {
    /// The `turns` kind (the generator as it always was).
    pub fn new(seed: u64, rate_hz: u32) -> Self {
        Self::with_speech(seed, rate_hz, SyntheticSpeech::Turns)
    }

    pub fn with_speech(seed: u64, rate_hz: u32, speech: SyntheticSpeech) -> Self {
        let rng = Rng(seed ^ 0x5eed);
        let realism = (speech != SyntheticSpeech::Turns).then(|| {
            let mut pick = Rng(seed ^ 0x0a15e);
            let offsets = [pick.next_u64(), pick.next_u64()];
            Realism {
                tables: noise_tables(),
                noise: [
                    NoiseReader::new(offsets[0], rate_hz),
                    NoiseReader::new(offsets[1], rate_hz),
                ],
                gain: [1.0, 10f64.powf(-pick.range(0.0, 10.0) / 20.0) as f32],
            }
        });
        let first_end = if speech == SyntheticSpeech::Continuous {
            u64::MAX
        } else {
            rate_hz as u64 * 3
        };
        let turns = match speech {
            SyntheticSpeech::Continuous => vec![
                Turn {
                    agent: true,
                    start: 0,
                    end: first_end,
                },
                Turn {
                    agent: false,
                    start: 0,
                    end: first_end,
                },
            ],
            _ => vec![Turn {
                agent: true,
                start: rate_hz as u64 / 2,
                end: first_end,
            }],
        };
        // A floor's calls are not in step: each `conversation` joins its call a seeded 0–60 s
        // after it began, so hundreds of seats started at once do not all greet, pause and
        // answer together for the first minute (which no real floor does, and which made the
        // capacity bench's CPU load swing with the common rhythm).
        let joined_at = if speech == SyntheticSpeech::Conversation {
            (Rng(seed ^ 0x00c0_11ed).range(0.0, 60.0) * f64::from(rate_hz)) as u64
        } else {
            0
        };
        Conversation {
            rng,
            rate_hz,
            t: joined_at,
            turns,
            agent: Voice::new(120.0, 0.19, 700.0),
            customer: Voice::new(205.0, 0.23, 1100.0),
            speech,
            realism,
        }
    }

    fn extend_schedule(&mut self) {
        while self
            .turns
            .last()
            .is_some_and(|l| l.end <= self.t + self.rate_hz as u64)
        {
            let Some(last) = self.turns.last().copied() else {
                return;
            };
            let r = f64::from(self.rate_hz);
            // `conversation`: shorter overlaps (a backchannel, a barge-in) and pauses, so each
            // party talks 35–50 % of the time (the test below checks the share).
            let (overlap_s, pause_s, turn_s) = match self.speech {
                SyntheticSpeech::Conversation => ((0.2, 0.6), (0.1, 0.9), (1.5, 5.0)),
                _ => ((0.3, 1.0), (0.2, 1.5), (1.0, 4.5)),
            };
            let agent = if self.rng.range(0.0, 1.0) < 0.15 {
                last.agent
            } else {
                !last.agent
            };
            let overlap = agent != last.agent && self.rng.range(0.0, 1.0) < 0.1;
            let start = if overlap {
                last.end
                    .saturating_sub((self.rng.range(overlap_s.0, overlap_s.1) * r) as u64)
            } else {
                last.end + (self.rng.range(pause_s.0, pause_s.1) * r) as u64
            };
            let end = start + (self.rng.range(turn_s.0, turn_s.1) * r) as u64;
            self.turns.push(Turn { agent, start, end });
            if self.turns.len() > 64 {
                self.turns.drain(..32);
            }
        }
    }

    pub fn next_pair(&mut self) -> (f32, f32) {
        self.extend_schedule();
        let (mut a, mut c) = (0.0, 0.0);
        let rate = self.rate_hz as f32;
        for turn in self
            .turns
            .iter()
            .filter(|tr| tr.start <= self.t && self.t < tr.end)
        {
            let in_turn = (self.t - turn.start) as f32 / rate;
            if turn.agent {
                a = self.agent.sample(in_turn, rate);
            } else {
                c = self.customer.sample(in_turn, rate);
            }
        }
        self.t += 1;
        match self.realism.as_mut() {
            None => (a, c),
            Some(r) => (
                a * r.gain[0] + r.noise[0].next(&r.tables[0]),
                c * r.gain[1] + r.noise[1].next(&r.tables[1]),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parties_talk_and_it_is_deterministic() {
        let mut a = Conversation::new(7, 16000);
        let mut b = Conversation::new(7, 16000);
        let (mut ea, mut ec, mut both_silent) = (0f64, 0f64, 0usize);
        for _ in 0..16000 * 60 {
            let x = a.next_pair();
            assert_eq!(x, b.next_pair());
            ea += f64::from(x.0 * x.0);
            ec += f64::from(x.1 * x.1);
            both_silent += usize::from(x.0 == 0.0 && x.1 == 0.0);
        }
        assert!(ea > 100.0 && ec > 100.0, "agent {ea} customer {ec}");
        let silent_share = both_silent as f64 / (16000.0 * 60.0);
        assert!((0.05..0.6).contains(&silent_share), "{silent_share}");
    }

    fn rms_dbfs(x: &[f32]) -> f32 {
        let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
        10.0 * mean_sq.max(1e-12).log10()
    }

    /// Share of 20 ms frames whose level is 15 dB over the party's background, per party.
    fn talk_shares(speech: SyntheticSpeech, seed: u64, seconds: usize) -> [f64; 2] {
        let rate = 16000usize;
        let mut conv = Conversation::with_speech(seed, rate as u32, speech);
        let floor = [OFFICE_NOISE_DBFS, LINE_NOISE_DBFS];
        let mut talking = [0usize; 2];
        let frames = seconds * 50;
        let mut buf = [Vec::with_capacity(rate / 50), Vec::with_capacity(rate / 50)];
        for _ in 0..frames {
            buf.iter_mut().for_each(Vec::clear);
            for _ in 0..rate / 50 {
                let (a, c) = conv.next_pair();
                buf[0].push(a);
                buf[1].push(c);
            }
            for (p, b) in buf.iter().enumerate() {
                if rms_dbfs(b) > floor[p] + 15.0 {
                    talking[p] += 1;
                }
            }
        }
        talking.map(|t| t as f64 / frames as f64)
    }

    #[test]
    fn a_realistic_call_has_each_party_talking_35_to_50_percent_over_noise() {
        for seed in [1u64, 2, 3] {
            let shares = talk_shares(SyntheticSpeech::Conversation, seed, 120);
            for (p, share) in shares.iter().enumerate() {
                // Syllable gaps inside a turn dip under the threshold, so the share of loud
                // frames is a little under the share of time in turns.
                assert!(
                    (0.30..0.50).contains(share),
                    "seed {seed} party {p}: {share:.2}"
                );
            }
        }
        let both = talk_shares(SyntheticSpeech::Continuous, 1, 20);
        assert!(both.iter().all(|s| *s > 0.6), "continuous: {both:?}");
    }

    #[test]
    fn seats_started_together_are_not_in_step() {
        // Which party talks in the first second, per seed: a call that started with everyone
        // (the agent greeting at 0.5 s) would give "agent" for all 32.
        let mut first = [0usize; 3]; // agent, customer, nobody
        for seed in 0..32 {
            let [agent, customer] = talk_shares(SyntheticSpeech::Conversation, seed, 1);
            let who = if agent > 0.5 {
                0
            } else if customer > 0.5 {
                1
            } else {
                2
            };
            first[who] += 1;
        }
        assert!(
            first[0] >= 4 && first[1] >= 4 && first[0] < 28,
            "agent, customer, nobody: {first:?}"
        );
    }

    #[test]
    fn the_background_is_at_its_level_between_turns_and_deterministic() {
        let mut a = Conversation::with_speech(9, 16000, SyntheticSpeech::Conversation);
        let mut b = Conversation::with_speech(9, 16000, SyntheticSpeech::Conversation);
        // Per party, the samples of 10 s at which the schedule gives that party no turn.
        let mut background = [Vec::new(), Vec::new()];
        let mut head = Vec::new();
        for _ in 0..16000 * 10 {
            a.extend_schedule();
            let t = a.t;
            let talking = |agent: bool| {
                a.turns
                    .iter()
                    .any(|tr| tr.agent == agent && tr.start <= t && t < tr.end)
            };
            let quiet = [!talking(true), !talking(false)];
            let x = a.next_pair();
            assert_eq!(x, b.next_pair());
            for (p, v) in [x.0, x.1].into_iter().enumerate() {
                if quiet[p] {
                    background[p].push(v);
                }
            }
            head.push(x);
        }
        let level = |p: usize| {
            assert!(
                background[p].len() > 16000,
                "party {p}: under 1 s between turns"
            );
            rms_dbfs(&background[p])
        };
        assert!(
            (level(0) - OFFICE_NOISE_DBFS).abs() < 4.0,
            "office {}",
            level(0)
        );
        assert!(
            (level(1) - LINE_NOISE_DBFS).abs() < 3.0,
            "line {}",
            level(1)
        );
        // Another seed reads the tables elsewhere.
        let mut c = Conversation::with_speech(10, 16000, SyntheticSpeech::Conversation);
        assert_ne!(c.next_pair(), head[0]);
    }
}
