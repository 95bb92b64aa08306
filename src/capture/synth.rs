//! A deterministic, speech-like two-party conversation for demos and capacity benches.
//!
//! Turns alternate between agent and customer with pauses and occasional overlaps; inside a turn,
//! voiced "syllables" (a harmonic wavetable at a wandering pitch under a syllable envelope) at
//! about −20 dBFS. It is cheap (a table lookup per sample) so hundreds of seats can run in real
//! time, and the same seed yields the same conversation on two inputs with different clocks.

use std::f32::consts::PI;

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

/// Generates both parties; `next` yields (agent, customer) samples at `rate_hz`.
pub struct Conversation {
    rng: Rng,
    rate_hz: u32,
    t: u64,
    turns: Vec<Turn>,
    agent: Voice,
    customer: Voice,
}

impl Conversation {
    pub fn new(seed: u64, rate_hz: u32) -> Self {
        Conversation {
            rng: Rng(seed ^ 0x5eed),
            rate_hz,
            t: 0,
            turns: vec![Turn {
                agent: true,
                start: rate_hz as u64 / 2,
                end: rate_hz as u64 * 3,
            }],
            agent: Voice::new(120.0, 0.19, 700.0),
            customer: Voice::new(205.0, 0.23, 1100.0),
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
            let agent = if self.rng.range(0.0, 1.0) < 0.15 {
                last.agent
            } else {
                !last.agent
            };
            let overlap = agent != last.agent && self.rng.range(0.0, 1.0) < 0.1;
            let start = if overlap {
                last.end
                    .saturating_sub((self.rng.range(0.3, 1.0) * r) as u64)
            } else {
                last.end + (self.rng.range(0.2, 1.5) * r) as u64
            };
            let end = start + (self.rng.range(1.0, 4.5) * r) as u64;
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
        (a, c)
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
}
