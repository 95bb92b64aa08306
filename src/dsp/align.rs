//! Turns each seat's input samples into aligned 20 ms [agent, customer] frames at the encoder rate.
//!
//! With one device per seat both parties share a clock and stay in lockstep. With two devices
//! (agent headset + customer line tap) the clocks drift (±200 ppm is common: 0.72 s per hour). The
//! agent's device is the seat's reference clock; the customer's resampler ratio is steered by a
//! PI controller on the customer's *lead* — how much more customer audio than agent audio is
//! buffered, in seconds. Keeping that lead constant keeps the two channels aligned. The control
//! loop counts time in agent samples, not wall-clock time, so it behaves the same in simulation.

use super::resample::{PartyResampler, ResampleError};
use std::collections::VecDeque;

/// Proportional and integral gains (per second of lead error). ζ≈1, ω≈0.05 rad/s: a 200 ppm step
/// settles within about a minute with under 2 ms of peak error.
const KP: f64 = 0.1;
const KI: f64 = 0.0025;
/// Seconds of agent audio before the lead is taken as the reference.
const WARMUP_S: f64 = 0.5;
/// Low-pass on the measured lead (callback and chunk jitter), seconds.
const LEAD_TAU_S: f64 = 1.0;
/// Correction limit, relative (drift beyond ±1000 ppm is a broken clock, not drift).
const MAX_CORRECTION: f64 = 0.001;

struct Drift {
    elapsed_s: f64,
    lead_filtered: Option<f64>,
    target: Option<f64>,
    integral: f64,
    correction: f64,
}

pub struct Aligner {
    rs: [PartyResampler; 2],
    fifo: [VecDeque<f32>; 2],
    in_rate_hz: [u32; 2],
    enc_rate_hz: u32,
    frame: usize,
    drift: Option<Drift>,
}

impl Aligner {
    /// `two_clocks`: the parties come from two devices and the customer clock must be tracked.
    pub fn new(
        agent_rate_hz: u32,
        customer_rate_hz: u32,
        enc_rate_hz: u32,
        frame: usize,
        two_clocks: bool,
    ) -> Result<Self, ResampleError> {
        let ra = PartyResampler::new(agent_rate_hz, enc_rate_hz, false)?;
        let rc = PartyResampler::new(customer_rate_hz, enc_rate_hz, two_clocks)?;
        let mut a = Aligner {
            rs: [ra, rc],
            fifo: [VecDeque::new(), VecDeque::new()],
            in_rate_hz: [agent_rate_hz, customer_rate_hz],
            enc_rate_hz,
            frame,
            drift: two_clocks.then_some(Drift {
                elapsed_s: 0.0,
                lead_filtered: None,
                target: None,
                integral: 0.0,
                correction: 0.0,
            }),
        };
        a.equalize_delay();
        Ok(a)
    }

    /// The two resampler kinds delay differently; pre-pad the quicker one so channels line up.
    fn equalize_delay(&mut self) {
        let (da, dc) = (self.rs[0].output_delay(), self.rs[1].output_delay());
        // Emitting `extra` leading zeros on the less-delayed side delays it to match the other.
        let (party, extra) = if da > dc { (1, da - dc) } else { (0, dc - da) };
        self.fifo[party].extend(std::iter::repeat_n(0.0, extra));
    }

    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// The rate of the frames this aligner emits (the encoder's).
    pub fn enc_rate_hz(&self) -> u32 {
        self.enc_rate_hz
    }

    /// Resamples new input for one party (0 = agent, 1 = customer).
    pub fn push(&mut self, party: usize, samples: &[f32]) {
        self.rs[party].process(samples, &mut self.fifo[party]);
        if party == 0 {
            if let Some(d) = self.drift.as_mut() {
                d.elapsed_s += samples.len() as f64 / f64::from(self.in_rate_hz[0]);
            }
        }
    }

    /// Customer audio buffered ahead of agent audio, in seconds.
    fn lead_s(&self) -> f64 {
        let side = |p: usize| {
            self.rs[p].pending() as f64 / f64::from(self.in_rate_hz[p])
                + self.fifo[p].len() as f64 / f64::from(self.enc_rate_hz)
        };
        side(1) - side(0)
    }

    /// Steers the customer resampler; call after each batch of pushes with the agent time it covered.
    pub fn steer(&mut self, dt_s: f64) {
        let lead = self.lead_s();
        let Some(d) = self.drift.as_mut() else { return };
        let alpha = (dt_s / LEAD_TAU_S).min(1.0);
        let filtered = d.lead_filtered.map_or(lead, |f| f + alpha * (lead - f));
        d.lead_filtered = Some(filtered);
        if d.elapsed_s < WARMUP_S {
            return;
        }
        let target = *d.target.get_or_insert(filtered);
        let err = filtered - target;
        d.integral = (d.integral + err * dt_s).clamp(-MAX_CORRECTION / KI, MAX_CORRECTION / KI);
        d.correction = (KP * err + KI * d.integral).clamp(-MAX_CORRECTION, MAX_CORRECTION);
        // A positive lead means the customer clock runs fast: consume its input faster.
        self.rs[1].set_relative(1.0 - d.correction);
    }

    /// Current customer-clock correction in ppm (positive = customer clock measured fast).
    pub fn correction_ppm(&self) -> f64 {
        self.drift.as_ref().map_or(0.0, |d| d.correction * 1e6)
    }

    /// Forgets the drift reference (after a device reopened, its buffering restarts).
    pub fn reset_drift(&mut self) {
        if let Some(d) = self.drift.as_mut() {
            d.lead_filtered = None;
            d.target = None;
            d.elapsed_s = 0.0;
        }
    }

    pub fn buffered(&self, party: usize) -> usize {
        self.fifo[party].len()
    }

    /// Adds silence to one party (its input is down) so it keeps pace with the other.
    pub fn pad_to_match(&mut self, party: usize) {
        let other = self.fifo[1 - party].len();
        let n = other.saturating_sub(self.fifo[party].len());
        self.fifo[party].extend(std::iter::repeat_n(0.0, n));
    }

    /// Adds `n` samples of silence to both parties (every input is down).
    pub fn pad_both(&mut self, n: usize) {
        for f in &mut self.fifo {
            f.extend(std::iter::repeat_n(0.0, n));
        }
    }

    /// Pops one interleaved [agent, customer] frame if both parties have one.
    pub fn pop_frame(&mut self, out: &mut [f32]) -> bool {
        if self.fifo.iter().any(|f| f.len() < self.frame) {
            return false;
        }
        for i in 0..self.frame {
            out[2 * i] = self.fifo[0].pop_front().unwrap_or(0.0);
            out[2 * i + 1] = self.fifo[1].pop_front().unwrap_or(0.0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5 ms 1 kHz burst every 10 s of true time.
    fn burst(t_s: f64) -> f32 {
        if t_s % 10.0 < 0.005 {
            (2.0 * std::f64::consts::PI * 1000.0 * t_s).sin() as f32 * 0.8
        } else {
            0.0
        }
    }

    /// Runs `seconds` of two devices, the customer's clock off by `ppm`, and returns the largest
    /// misalignment between the bursts' onsets in the two output channels, in ms.
    fn worst_misalignment_ms(ppm: f64, seconds: u64) -> f64 {
        let (rate, enc) = (48000u32, 16000u32);
        let Ok(mut al) = Aligner::new(rate, rate, enc, 320, true) else {
            panic!("a 48 kHz → 16 kHz aligner must build");
        };
        let cust_rate = f64::from(rate) * (1.0 + ppm * 1e-6);
        let (mut na, mut nc) = (0u64, 0u64);
        let mut frame = vec![0f32; 640];
        let mut out_pos = 0u64;
        let mut onsets: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let mut last_loud = [0u64; 2];
        let (mut buf_a, mut buf_c) = (Vec::new(), Vec::new());
        for tick in 1..=seconds * 100 {
            let t_end = tick as f64 / 100.0;
            let due_a = (t_end * f64::from(rate)) as u64;
            let due_c = (t_end * cust_rate) as u64;
            buf_a.clear();
            buf_a.extend((na..due_a).map(|n| burst(n as f64 / f64::from(rate))));
            buf_c.clear();
            buf_c.extend((nc..due_c).map(|n| burst(n as f64 / cust_rate)));
            al.push(0, &buf_a);
            al.push(1, &buf_c);
            al.steer((due_a - na) as f64 / f64::from(rate));
            na = due_a;
            nc = due_c;
            while al.pop_frame(&mut frame) {
                for i in 0..320 {
                    for p in 0..2 {
                        if frame[2 * i + p].abs() > 0.3 {
                            if out_pos - last_loud[p] > u64::from(enc) {
                                onsets[p].push(out_pos);
                            }
                            last_loud[p] = out_pos;
                        }
                    }
                    out_pos += 1;
                }
            }
        }
        assert!(
            onsets[0].len() as u64 >= seconds / 10 - 1,
            "bursts found: {}",
            onsets[0].len()
        );
        assert_eq!(onsets[0].len(), onsets[1].len());
        onsets[0]
            .iter()
            .zip(&onsets[1])
            .map(|(a, c)| (*a as f64 - *c as f64).abs() * 1000.0 / f64::from(enc))
            .fold(0.0, f64::max)
    }

    #[test]
    fn one_hour_at_plus_and_minus_200_ppm_stays_within_20_ms() {
        let plus = std::thread::spawn(|| worst_misalignment_ms(200.0, 3600));
        let minus = worst_misalignment_ms(-200.0, 3600);
        let plus = plus.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        eprintln!(
            "worst misalignment over one hour: +200 ppm {plus:.2} ms, -200 ppm {minus:.2} ms"
        );
        // Uncorrected, 200 ppm over an hour is 720 ms.
        assert!(plus < 20.0, "+200 ppm: worst {plus:.2} ms");
        assert!(minus < 20.0, "-200 ppm: worst {minus:.2} ms");
    }

    #[test]
    fn same_clock_stays_sample_aligned() {
        assert!(worst_misalignment_ms(0.0, 120) < 1.0);
    }
}
