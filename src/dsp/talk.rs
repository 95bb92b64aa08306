//! Who spoke when, and the call metrics QA uses to find risky calls: talk time and ratio, dead
//! air, overtalk (and who interrupted), agent response latency, longest hold-like silence.
//!
//! A voice-activity detector per channel works on 20 ms frame levels (dBFS): a frame is voiced
//! when it is above max(−50 dBFS, noise floor + 12 dB), the floor being the 10th percentile of the
//! channel's frame levels. Voiced runs closer than 300 ms are joined (pauses between words) and
//! runs shorter than 100 ms dropped (clicks). Because each party has its own channel, overtalk is
//! measured directly rather than guessed from a mix. Definitions follow
//! `shared/notes/qa-domain.md` §3. Runs on finished calls only; nothing here is real-time.

use serde::Serialize;

pub const FRAME_MS: u32 = 20;
const ABS_FLOOR_DBFS: f32 = -50.0;
const ABOVE_NOISE_DB: f32 = 12.0;
const JOIN_GAP_MS: u32 = 300;
const MIN_RUN_MS: u32 = 100;

/// Thresholds that vary by centre (configurable; defaults from the notes).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Both parties silent at least this long is dead air (CCAI: 5 s).
    pub dead_air_ms: u32,
    /// Both parties speaking at least this long is overtalk.
    pub overtalk_ms: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            dead_air_ms: 5000,
            overtalk_ms: 1000,
        }
    }
}

/// A stretch of time, ms from the start of the call, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start_ms: u32,
    pub end_ms: u32,
}

impl Span {
    pub fn len_ms(&self) -> u32 {
        self.end_ms - self.start_ms
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overtalk {
    pub start_ms: u32,
    pub end_ms: u32,
    /// The party who started speaking second: "agent" or "customer".
    pub interrupter: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub duration_ms: u32,
    pub agent_talk_ms: u32,
    pub customer_talk_ms: u32,
    /// Agent talk ÷ all talk; None when nobody spoke.
    pub talk_ratio: Option<f64>,
    pub dead_air: Vec<Span>,
    pub dead_air_count: u32,
    pub dead_air_total_ms: u32,
    pub dead_air_longest_ms: u32,
    pub overtalk: Vec<Overtalk>,
    pub overtalk_count: u32,
    pub overtalk_total_ms: u32,
    /// Overtalk started by the agent (the agent cut in on the customer).
    pub agent_interruptions: u32,
    /// From the end of a customer turn to the start of the agent's next turn.
    pub response_latency_mean_ms: Option<u32>,
    pub response_latency_max_ms: Option<u32>,
    /// The longest stretch inside the conversation when neither party spoke.
    pub longest_silence_ms: u32,
    pub agent_speech: Vec<Span>,
    pub customer_speech: Vec<Span>,
}

/// Voiced spans of one channel from its frame levels.
pub fn voiced_spans(levels_dbfs: &[f32]) -> Vec<Span> {
    let mut sorted: Vec<f32> = levels_dbfs
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted.get(sorted.len() / 10).copied().unwrap_or(-120.0);
    let threshold = (floor + ABOVE_NOISE_DB).max(ABS_FLOOR_DBFS);
    let mut runs: Vec<Span> = Vec::new();
    for (i, v) in levels_dbfs.iter().enumerate() {
        if *v <= threshold {
            continue;
        }
        let (start, end) = (i as u32 * FRAME_MS, (i as u32 + 1) * FRAME_MS);
        match runs.last_mut() {
            Some(last) if start - last.end_ms <= JOIN_GAP_MS => last.end_ms = end,
            _ => runs.push(Span {
                start_ms: start,
                end_ms: end,
            }),
        }
    }
    runs.retain(|r| r.len_ms() >= MIN_RUN_MS);
    runs
}

/// Spans where both lists overlap.
fn overlaps(a: &[Span], b: &[Span]) -> Vec<(Span, bool)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].start_ms.max(b[j].start_ms);
        let end = a[i].end_ms.min(b[j].end_ms);
        if start < end {
            // true when the `a` party started second (it interrupted).
            out.push((
                Span {
                    start_ms: start,
                    end_ms: end,
                },
                a[i].start_ms > b[j].start_ms,
            ));
        }
        if a[i].end_ms < b[j].end_ms {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Stretches inside [first speech, last speech] when neither party speaks.
fn silences(agent: &[Span], customer: &[Span]) -> Vec<Span> {
    let mut all: Vec<Span> = agent.iter().chain(customer).copied().collect();
    all.sort_by_key(|s| s.start_ms);
    let mut out = Vec::new();
    let mut covered_to: Option<u32> = None;
    for s in all {
        if let Some(end) = covered_to {
            if s.start_ms > end {
                out.push(Span {
                    start_ms: end,
                    end_ms: s.start_ms,
                });
            }
        }
        covered_to = Some(covered_to.map_or(s.end_ms, |e| e.max(s.end_ms)));
    }
    out
}

/// Agent response latencies: each customer turn's end to the agent's next start, when the agent
/// was not already speaking at that moment and starts before the customer speaks again.
fn response_latencies(agent: &[Span], customer: &[Span]) -> Vec<u32> {
    let mut out = Vec::new();
    for (k, c) in customer.iter().enumerate() {
        let agent_busy = agent
            .iter()
            .any(|a| a.start_ms <= c.end_ms && a.end_ms > c.end_ms);
        if agent_busy {
            continue;
        }
        let next_customer = customer.get(k + 1).map_or(u32::MAX, |n| n.start_ms);
        if let Some(a) = agent.iter().find(|a| a.start_ms >= c.end_ms) {
            if a.start_ms < next_customer {
                out.push(a.start_ms - c.end_ms);
            }
        }
    }
    out
}

/// All metrics from per-frame levels of the two channels (20 ms frames, same length).
pub fn metrics(agent_dbfs: &[f32], customer_dbfs: &[f32], t: Thresholds) -> Metrics {
    let duration_ms = agent_dbfs.len().max(customer_dbfs.len()) as u32 * FRAME_MS;
    let agent = voiced_spans(agent_dbfs);
    let customer = voiced_spans(customer_dbfs);
    let total = |v: &[Span]| v.iter().map(Span::len_ms).sum::<u32>();
    let (agent_talk_ms, customer_talk_ms) = (total(&agent), total(&customer));
    let talk = agent_talk_ms + customer_talk_ms;
    let quiet = silences(&agent, &customer);
    let dead_air: Vec<Span> = quiet
        .iter()
        .copied()
        .filter(|s| s.len_ms() >= t.dead_air_ms)
        .collect();
    let overtalk: Vec<Overtalk> = overlaps(&agent, &customer)
        .into_iter()
        .filter(|(s, _)| s.len_ms() >= t.overtalk_ms)
        .map(|(s, agent_second)| Overtalk {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            interrupter: if agent_second { "agent" } else { "customer" },
        })
        .collect();
    let lat = response_latencies(&agent, &customer);
    Metrics {
        duration_ms,
        agent_talk_ms,
        customer_talk_ms,
        talk_ratio: (talk > 0).then(|| f64::from(agent_talk_ms) / f64::from(talk)),
        dead_air_count: dead_air.len() as u32,
        dead_air_total_ms: total(&dead_air),
        dead_air_longest_ms: dead_air.iter().map(Span::len_ms).max().unwrap_or(0),
        dead_air,
        overtalk_count: overtalk.len() as u32,
        overtalk_total_ms: overtalk.iter().map(|o| o.end_ms - o.start_ms).sum(),
        agent_interruptions: overtalk.iter().filter(|o| o.interrupter == "agent").count() as u32,
        overtalk,
        response_latency_mean_ms: (!lat.is_empty())
            .then(|| lat.iter().sum::<u32>() / lat.len() as u32),
        response_latency_max_ms: lat.iter().max().copied(),
        longest_silence_ms: quiet.iter().map(Span::len_ms).max().unwrap_or(0),
        agent_speech: agent,
        customer_speech: customer,
    }
}

/// Per-frame levels of interleaved two-channel PCM (for finished files and tests).
pub fn frame_levels(interleaved: &[f32], rate_hz: u32) -> (Vec<f32>, Vec<f32>) {
    let frame = (rate_hz * FRAME_MS / 1000) as usize * 2;
    interleaved
        .chunks(frame)
        .map(|f| {
            (
                crate::dsp::level::rms_dbfs_channel(f, 2, 0),
                crate::dsp::level::rms_dbfs_channel(f, 2, 1),
            )
        })
        .unzip()
}

/// [`frame_levels`] of interleaved stereo that arrives in pieces (a decoder's packets), holding
/// one frame at a time: the levels of a one-hour call take 1.4 MB, where its PCM would take
/// hundreds. The result equals [`frame_levels`] over the whole.
pub struct LevelMeter {
    frame_len: usize,
    pending: Vec<f32>,
    log: LevelLog,
}

impl LevelMeter {
    pub fn new(rate_hz: u32) -> LevelMeter {
        let frame_len = (rate_hz * FRAME_MS / 1000) as usize * 2;
        LevelMeter {
            frame_len,
            pending: Vec::with_capacity(frame_len),
            log: LevelLog::default(),
        }
    }

    pub fn push(&mut self, mut interleaved: &[f32]) {
        while !interleaved.is_empty() {
            let take = (self.frame_len - self.pending.len()).min(interleaved.len());
            self.pending.extend_from_slice(&interleaved[..take]);
            interleaved = &interleaved[take..];
            if self.pending.len() == self.frame_len {
                self.flush();
            }
        }
    }

    /// The levels, the last partial frame included (as [`frame_levels`] counts it).
    pub fn finish(mut self) -> LevelLog {
        if !self.pending.is_empty() {
            self.flush();
        }
        self.log
    }

    fn flush(&mut self) {
        let f = &self.pending;
        self.log.push(
            crate::dsp::level::rms_dbfs_channel(f, 2, 0),
            crate::dsp::level::rms_dbfs_channel(f, 2, 1),
        );
        self.pending.clear();
    }
}

/// Metrics of a stored recording (a call that has none: recovered after a crash, or recorded
/// before metrics existed), decoded page by page from the file into a [`LevelMeter`]: memory is
/// the levels (1.4 MB per call-hour) plus one page and the decoder, never the file or its PCM
/// (about 460 MB for an hour at 16 kHz). `tests/metrics_memory.rs` holds an hour under 16 MB.
pub fn metrics_of_file(
    path: &std::path::Path,
    rate_hz: u32,
    t: Thresholds,
) -> Result<Metrics, crate::codec::ogg_read::ReadError> {
    use crate::codec::ogg_read::{self, ReadError};
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut meter = LevelMeter::new(rate_hz);
    ogg_read::decode_each_from(std::io::BufReader::new(file), rate_hz, |pcm| {
        meter.push(pcm)
    })?;
    let levels = meter.finish();
    Ok(metrics(&levels.agent, &levels.customer, t))
}

/// Collects frame levels while a call is recorded (one push per encoder frame).
#[derive(Default)]
pub struct LevelLog {
    pub agent: Vec<f32>,
    pub customer: Vec<f32>,
}

impl LevelLog {
    pub fn push(&mut self, agent_dbfs: f32, customer_dbfs: f32) {
        self.agent.push(agent_dbfs);
        self.customer.push(customer_dbfs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_meter_in_pieces_equals_frame_levels_over_the_whole() {
        let pcm = fixture(3.03, &[(0.2, 1.0)], &[(1.5, 2.5)]);
        let (agent, customer) = frame_levels(&pcm, 16000);
        let mut meter = LevelMeter::new(16000);
        // Pieces of awkward sizes, as a decoder's packets and a partial last frame give them.
        let mut rest = &pcm[..];
        for n in [1usize, 639, 641, 2, 960, 7].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*n).min(rest.len());
            meter.push(&rest[..n]);
            rest = &rest[n..];
        }
        let log = meter.finish();
        assert_eq!(log.agent, agent);
        assert_eq!(log.customer, customer);
    }

    /// Two channels at 16 kHz: tone bursts at the given spans (seconds) over −65 dBFS noise.
    fn fixture(total_s: f32, agent: &[(f32, f32)], customer: &[(f32, f32)]) -> Vec<f32> {
        let rate = 16000.0;
        let n = (total_s * rate) as usize;
        let mut seed = 12345u32;
        let mut noise = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        let mut out = vec![0f32; n * 2];
        for i in 0..n {
            let t = i as f32 / rate;
            for (c, spans) in [(0, agent), (1, customer)] {
                let on = spans.iter().any(|(a, b)| t >= *a && t < *b);
                // Syllable-like 4 Hz amplitude wobble, never quite silent while "speaking".
                let env = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0).sin().abs();
                let v = if on {
                    0.3 * env * (t * 2.0 * std::f32::consts::PI * (180.0 + 60.0 * c as f32)).sin()
                } else {
                    0.0
                };
                out[2 * i + c] = v + 0.0005 * noise();
            }
        }
        out
    }

    fn near(a: u32, b: u32, what: &str) {
        assert!(a.abs_diff(b) <= 100, "{what}: {a} ms vs {b} ms");
    }

    #[test]
    fn metrics_match_constructed_call() {
        // Agent 0–3 s; customer 3.8–6 s; dead air 6–13 s; agent 13–16 s; customer cuts in at
        // 15 s and talks to 18 s (overtalk 15–16 s, customer interrupted); agent 18.5–19 s.
        let pcm = fixture(
            20.0,
            &[(0.0, 3.0), (13.0, 16.0), (18.5, 19.0)],
            &[(3.8, 6.0), (15.0, 18.0)],
        );
        let (a, c) = frame_levels(&pcm, 16000);
        let m = metrics(&a, &c, Thresholds::default());
        near(m.agent_talk_ms, 3000 + 3000 + 500, "agent talk");
        near(m.customer_talk_ms, 2200 + 3000, "customer talk");
        assert_eq!(m.dead_air_count, 1);
        near(m.dead_air[0].start_ms, 6000, "dead air start");
        near(m.dead_air_longest_ms, 7000, "dead air length");
        assert_eq!(m.overtalk_count, 1);
        near(m.overtalk_total_ms, 1000, "overtalk");
        assert_eq!(m.overtalk[0].interrupter, "customer");
        assert_eq!(m.agent_interruptions, 0);
        // Latencies: customer ends 6 s → agent 13 s (7000); customer ends 18 s → agent 18.5 s (500).
        near(m.response_latency_max_ms.unwrap_or(0), 7000, "max latency");
        near(
            m.response_latency_mean_ms.unwrap_or(0),
            3750,
            "mean latency",
        );
        near(m.longest_silence_ms, 7000, "longest silence");
        let ratio = m.talk_ratio.unwrap_or(f64::NAN);
        assert!((ratio - 6.5 / 11.7).abs() < 0.02, "talk ratio {ratio}");
    }

    #[test]
    fn agent_interrupting_and_short_gaps() {
        // Customer 0–4 s with a 200 ms breath at 2 s (joined); agent cuts in at 3 s.
        let pcm = fixture(6.0, &[(3.0, 5.5)], &[(0.0, 2.0), (2.2, 4.0)]);
        let (a, c) = frame_levels(&pcm, 16000);
        let m = metrics(&a, &c, Thresholds::default());
        assert_eq!(m.customer_speech.len(), 1, "{:?}", m.customer_speech);
        assert_eq!(m.overtalk_count, 1);
        assert_eq!(m.overtalk[0].interrupter, "agent");
        assert_eq!(m.agent_interruptions, 1);
        assert_eq!(m.dead_air_count, 0);
        assert_eq!(
            m.response_latency_max_ms, None,
            "the agent was already talking"
        );
    }

    #[test]
    fn silence_only() {
        let pcm = fixture(3.0, &[], &[]);
        let (a, c) = frame_levels(&pcm, 16000);
        let m = metrics(&a, &c, Thresholds::default());
        assert_eq!(
            (m.agent_talk_ms, m.customer_talk_ms, m.talk_ratio),
            (0, 0, None)
        );
        assert_eq!(m.duration_ms, 3000);
    }
}
