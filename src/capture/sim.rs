//! Simulated inputs (WAV files and synthetic conversations) delivered in real time by one
//! thread, into the same rings a capture callback fills. A `drift_ppm` makes a synthetic input's
//! clock run fast or slow, to exercise two-clock alignment.

use super::ring::{InputShared, RingWriter};
use super::synth::Conversation;
use crate::config::{InputConfig, InputKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("file input {path}: {message}")]
    File { path: String, message: String },
}

enum Source {
    File { samples: Vec<f32>, pos: usize },
    Synthetic(Conversation),
}

struct SimInput {
    source: Source,
    writer: RingWriter,
    channels: usize,
    agent_ch: Option<usize>,
    customer_ch: Option<usize>,
    rate_hz: f64,
    produced: u64,
    scratch: Vec<f32>,
}

/// Reads a WAV file fully (fixtures are small) as interleaved f32.
fn load_wav(path: &Path, cfg: &InputConfig) -> Result<Vec<f32>, SimError> {
    let err = |message: String| SimError::File {
        path: path.display().to_string(),
        message,
    };
    let mut r = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = r.spec();
    if spec.sample_rate != cfg.rate_hz || spec.channels != cfg.channels {
        return Err(err(format!(
            "is {} Hz / {} ch but the input says rate_hz = {}, channels = {}",
            spec.sample_rate, spec.channels, cfg.rate_hz, cfg.channels
        )));
    }
    let samples: Result<Vec<f32>, _> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    };
    let samples = samples.map_err(|e| err(e.to_string()))?;
    if samples.is_empty() {
        return Err(err("holds no audio".into()));
    }
    Ok(samples)
}

pub struct Simulator {
    inputs: Vec<SimInput>,
}

impl Simulator {
    pub fn new() -> Self {
        Simulator { inputs: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Adds a file or synthetic input and hands its consumer to the worker via `shared`.
    pub fn add(&mut self, cfg: &InputConfig, shared: &Arc<InputShared>) -> Result<(), SimError> {
        let source = match cfg.kind {
            InputKind::File => {
                let path = cfg.path.clone().unwrap_or_default();
                Source::File {
                    samples: load_wav(&path, cfg)?,
                    pos: 0,
                }
            }
            _ => Source::Synthetic(Conversation::with_speech(cfg.seed, cfg.rate_hz, cfg.speech)),
        };
        let (writer, consumer) = RingWriter::for_input(cfg, shared);
        if let Ok(mut slot) = shared.new_consumer.lock() {
            *slot = Some(consumer);
        }
        self.inputs.push(SimInput {
            source,
            writer,
            channels: usize::from(cfg.channels),
            agent_ch: cfg.agent_channel.map(usize::from),
            customer_ch: cfg.customer_channel.map(usize::from),
            rate_hz: f64::from(cfg.rate_hz) * (1.0 + cfg.drift_ppm * 1e-6),
            produced: 0,
            scratch: Vec::new(),
        });
        Ok(())
    }

    /// Delivers due audio every 10 ms, like a device callback, until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        let t0 = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let elapsed = t0.elapsed().as_secs_f64();
            for inp in &mut self.inputs {
                let due = (elapsed * inp.rate_hz) as u64 - inp.produced;
                inp.generate(due as usize);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl SimInput {
    fn generate(&mut self, frames: usize) {
        self.scratch.clear();
        self.scratch.resize(frames * self.channels, 0.0);
        match &mut self.source {
            Source::File { samples, pos } => {
                for v in self.scratch.iter_mut() {
                    *v = samples[*pos];
                    *pos = (*pos + 1) % samples.len();
                }
            }
            Source::Synthetic(conv) => {
                for f in 0..frames {
                    let (a, c) = conv.next_pair();
                    if let Some(ch) = self.agent_ch {
                        self.scratch[f * self.channels + ch] = a;
                    }
                    if let Some(ch) = self.customer_ch {
                        self.scratch[f * self.channels + ch] = c;
                    }
                }
            }
        }
        self.writer.push(&self.scratch, |x| x);
        self.produced += frames as u64;
    }
}
