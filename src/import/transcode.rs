//! One decoded source → one box-format Ogg Opus stream: channel mapping, resampling to the
//! encoder rate with the recorder's resampler (`dsp::resample::PartyResampler`), 20 ms framing,
//! encoding on helper threads (one per party for a stereo source, each allowed to run up to
//! `IN_FLIGHT` seconds ahead of the other because conversational turns load them unevenly; one
//! encoder shared by both channels for a mono mix; see `opus_out`), with waveform peaks and
//! per-frame levels computed on the way. The calling thread decodes, resamples and writes.
//!
//! Channel mapping: a stereo source's `agent_channel` (0 or 1) becomes the agent, the other
//! channel the customer. A mono source is a mix of both parties that cannot be separated; it is
//! stored in *both* channels (see the `import` module doc for why).
//!
//! Length: the output holds exactly as many samples as the source (resampler delay removed, its
//! tail flushed), rounded up to whole 20 ms frames with silence, so an imported call is never
//! shorter than its source and at most one frame longer.
//!
//! This module writes only to the writer it is given and never touches the index or the file
//! system; the caller decides where bytes go and when they are made durable.

use super::decode::{DecodeError, PcmSource, SourceInfo};
use super::opus_out::{OutError, PacketFileWriter};
use crate::codec::party::{join_streams, PartyEncoder, PartyError};
use crate::config::EncoderConfig;
use crate::dsp::level::rms_dbfs;
use crate::dsp::peaks::PeaksBuilder;
use crate::dsp::resample::{PartyResampler, ResampleError};
use crate::dsp::talk::LevelLog;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc;

/// Frames encoded per hand-off between the two encoder threads (1 s at 20 ms).
const BATCH_FRAMES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Out(#[from] OutError),
    #[error(transparent)]
    Party(#[from] PartyError),
    #[error("the customer-channel encoder thread stopped unexpectedly")]
    EncoderThread,
}

/// Counts and hashes every byte on its way out, so finishing needs no re-read.
pub struct HashingWriter<W: Write> {
    pub inner: W,
    hasher: Sha256,
    pub bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    /// Lowercase hex SHA-256 of everything written.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What came out.
pub struct Transcoded {
    /// Playable length of the written file.
    pub duration_ms: u64,
    /// Length of the decoded source.
    pub source_ms: u64,
    /// Mono source stored in both channels.
    pub mono_mix: bool,
    /// audiowaveform `.dat` bytes for the player.
    pub peaks: Vec<u8>,
    /// Per-frame levels (dBFS) for the talk metrics; None for a mono mix (both channels are the
    /// same signal, so talk/overtalk figures would be meaningless).
    pub levels: Option<LevelLog>,
    /// Damage found in the source.
    pub notes: Vec<String>,
}

/// One party's resampler and its output queue.
struct Lane {
    rs: PartyResampler,
    fifo: VecDeque<f32>,
    /// Leading samples still to drop (the resampler's delay).
    to_drop: usize,
}

impl Lane {
    fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        let rs = PartyResampler::new(from_hz, to_hz, false)?;
        let to_drop = rs.output_delay();
        Ok(Lane {
            rs,
            fifo: VecDeque::new(),
            to_drop,
        })
    }

    fn push(&mut self, input: &[f32]) {
        self.rs.process(input, &mut self.fifo);
        let d = self.to_drop.min(self.fifo.len());
        self.fifo.drain(..d);
        self.to_drop -= d;
    }
}

/// Batches handed to an encoder thread but not yet collected. Turns in a conversation leave one
/// party silent (cheap to encode) while the other speaks, for seconds at a time; letting each
/// encoder run up to this many batches (seconds) ahead of the other keeps both cores busy.
const IN_FLIGHT: usize = 16;

type Packets = Result<Vec<Vec<u8>>, OutError>;

/// One encoder on its own thread: batches of samples in, packets out, in order.
struct EncoderThread {
    to: mpsc::SyncSender<Vec<f32>>,
    from: mpsc::Receiver<Packets>,
}

impl EncoderThread {
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        mut enc: PartyEncoder,
        frame: usize,
    ) -> EncoderThread {
        let (to, rx) = mpsc::sync_channel::<Vec<f32>>(IN_FLIGHT);
        let (tx, from) = mpsc::sync_channel::<Packets>(IN_FLIGHT);
        scope.spawn(move || {
            for batch in rx {
                let r: Packets = batch
                    .chunks_exact(frame)
                    .map(|f| Ok(enc.encode(f)?))
                    .collect();
                if tx.send(r).is_err() {
                    break;
                }
            }
        });
        EncoderThread { to, from }
    }

    fn send(&self, batch: Vec<f32>) -> Result<(), TranscodeError> {
        self.to
            .send(batch)
            .map_err(|_| TranscodeError::EncoderThread)
    }

    fn recv(&self) -> Result<Vec<Vec<u8>>, TranscodeError> {
        Ok(self
            .from
            .recv()
            .map_err(|_| TranscodeError::EncoderThread)??)
    }
}

/// The agent's encoder thread and, for a stereo source, the customer's. A mono mix is encoded
/// once and its packet serves both streams.
struct Encoders {
    agent: EncoderThread,
    customer: Option<EncoderThread>,
    in_flight: usize,
}

impl Encoders {
    /// Queues one batch (whole frames); `customer` is ignored for a mono mix.
    fn submit(&mut self, agent: Vec<f32>, customer: Vec<f32>) -> Result<(), TranscodeError> {
        self.agent.send(agent)?;
        if let Some(c) = &self.customer {
            c.send(customer)?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// The oldest queued batch as two-stream packets.
    fn collect(&mut self) -> Result<Vec<Vec<u8>>, TranscodeError> {
        let mine = self.agent.recv()?;
        self.in_flight -= 1;
        match &self.customer {
            None => mine.iter().map(|p| Ok(join_streams(p, p)?)).collect(),
            Some(c) => {
                let theirs = c.recv()?;
                if theirs.len() != mine.len() {
                    return Err(TranscodeError::EncoderThread);
                }
                mine.iter()
                    .zip(&theirs)
                    .map(|(a, c)| Ok(join_streams(a, c)?))
                    .collect()
            }
        }
    }
}

/// The highest Opus bandwidth a source sampled at `rate_hz` can have content in. Telling the
/// encoder spares it coding an empty band (an 8 kHz µ-law call is narrowband whatever the box's
/// encoder rate) and roughly halves SILK's work for narrowband sources.
fn source_bandwidth(rate_hz: u32) -> opus::Bandwidth {
    match rate_hz {
        0..=8_000 => opus::Bandwidth::Narrowband,
        8_001..=12_000 => opus::Bandwidth::Mediumband,
        12_001..=16_000 => opus::Bandwidth::Wideband,
        16_001..=24_000 => opus::Bandwidth::Superwideband,
        _ => opus::Bandwidth::Fullband,
    }
}

/// Decodes `src` to the end and writes the box format to `out`. `agent_channel` picks the
/// agent in a stereo source. Returns the writer (for its hash and fsync) and what was made.
pub fn transcode<W: Write + Send>(
    src: &mut dyn PcmSource,
    agent_channel: usize,
    e: &EncoderConfig,
    out: W,
    serial: u32,
    comments: &[String],
) -> Result<(W, Transcoded), TranscodeError> {
    let info = src.info().clone();
    std::thread::scope(|scope| -> Result<(W, Transcoded), TranscodeError> {
        let mut pipeline = Pipeline::start(scope, e, &info, out, serial, comments)?;
        let mut planes: Vec<Vec<f32>> = Vec::new();
        while src.next_block(&mut planes)? {
            if planes.is_empty() {
                continue;
            }
            pipeline.feed(&planes, agent_channel)?;
        }
        pipeline.flush_tails()?;
        pipeline.finish(src.notes())
    })
}

/// Everything between the decoder and the writer: one resampling lane per party, the encoder
/// threads, the Ogg writer, and the peaks and levels computed on the way.
struct Pipeline<W: Write> {
    mono_mix: bool,
    source_rate_hz: u32,
    out_rate_hz: u32,
    /// Samples per 20 ms frame at the encoder rate.
    frame: usize,
    /// Samples per party handed to the encoders at once.
    batch: usize,
    lanes: Vec<Lane>,
    encoders: Encoders,
    writer: PacketFileWriter<W>,
    peaks: PeaksBuilder,
    levels: LevelLog,
    interleaved: Vec<f32>,
    /// Decoded source frames so far.
    src_frames: u64,
    /// Samples per party taken from the lanes so far.
    out_samples: u64,
}

impl<W: Write + Send> Pipeline<W> {
    /// Starts the encoder threads in `scope`, writes the headers, and sets up the lanes.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        e: &EncoderConfig,
        info: &SourceInfo,
        out: W,
        serial: u32,
        comments: &[String],
    ) -> Result<Self, TranscodeError> {
        let mono_mix = info.channels < 2;
        let frame = e.frame_samples();
        let bandwidth = source_bandwidth(info.rate_hz);
        let mut agent_enc = PartyEncoder::new(e, bandwidth)?;
        let lookahead = agent_enc.lookahead()?;
        let customer = if mono_mix {
            None
        } else {
            Some(EncoderThread::spawn(
                scope,
                PartyEncoder::new(e, bandwidth)?,
                frame,
            ))
        };
        let encoders = Encoders {
            agent: EncoderThread::spawn(scope, agent_enc, frame),
            customer,
            in_flight: 0,
        };
        let writer = PacketFileWriter::new(out, e, lookahead, serial, comments)?;
        let lanes_n = if mono_mix { 1 } else { 2 };
        let mut lanes = Vec::with_capacity(lanes_n);
        for _ in 0..lanes_n {
            lanes.push(Lane::new(info.rate_hz, e.rate_hz)?);
        }
        let batch = BATCH_FRAMES * frame;
        Ok(Pipeline {
            mono_mix,
            source_rate_hz: info.rate_hz,
            out_rate_hz: e.rate_hz,
            frame,
            batch,
            lanes,
            encoders,
            writer,
            peaks: PeaksBuilder::new(e.rate_hz),
            levels: LevelLog::default(),
            interleaved: Vec::with_capacity(batch * 2),
            src_frames: 0,
            out_samples: 0,
        })
    }

    /// One decoded block (at least one plane) into the lanes; encodes what makes whole batches.
    fn feed(&mut self, planes: &[Vec<f32>], agent_channel: usize) -> Result<(), TranscodeError> {
        self.src_frames += planes[0].len() as u64;
        if self.mono_mix {
            self.lanes[0].push(&planes[0]);
        } else {
            let a = agent_channel.min(1);
            self.lanes[0].push(&planes[a]);
            self.lanes[1].push(&planes[1 - a]);
        }
        if self.available() >= self.batch {
            self.drain(false)?;
        }
        Ok(())
    }

    /// Samples every lane has ready.
    fn available(&self) -> usize {
        self.lanes.iter().map(|l| l.fifo.len()).min().unwrap_or(0)
    }

    /// Takes whole batches from the lanes (at the end also the remainder, completed with
    /// silence to a whole frame), queues them for encoding, and writes what is done.
    fn drain(&mut self, final_flush: bool) -> Result<(), TranscodeError> {
        loop {
            let avail = self.available();
            let n = if avail >= self.batch {
                self.batch
            } else if final_flush {
                avail
            } else {
                break;
            };
            if n == 0 {
                break;
            }
            let (a, c) = self.take(n);
            self.analyse(&a, &c);
            self.encoders.submit(a, c)?;
            self.out_samples += n as u64;
            while self.encoders.in_flight >= IN_FLIGHT {
                self.write_oldest()?;
            }
            if n < self.batch {
                break;
            }
        }
        Ok(())
    }

    /// `n` samples of each party, padded with silence to whole frames. The customer's is empty
    /// for a mono mix (its one lane serves both channels).
    fn take(&mut self, n: usize) -> (Vec<f32>, Vec<f32>) {
        let padded = n.div_ceil(self.frame) * self.frame;
        let mut a: Vec<f32> = self.lanes[0].fifo.drain(..n).collect();
        a.resize(padded, 0.0);
        let c: Vec<f32> = match self.lanes.get_mut(1) {
            Some(l) => {
                let mut c: Vec<f32> = l.fifo.drain(..n).collect();
                c.resize(padded, 0.0);
                c
            }
            None => Vec::new(),
        };
        (a, c)
    }

    /// Waveform peaks of both channels and, for two parties, the per-frame levels.
    fn analyse(&mut self, a: &[f32], c: &[f32]) {
        let cust: &[f32] = if c.is_empty() { a } else { c };
        self.interleaved.clear();
        for (x, y) in a.iter().zip(cust) {
            self.interleaved.push(*x);
            self.interleaved.push(*y);
        }
        self.peaks.push(&self.interleaved);
        if !c.is_empty() {
            let frame = self.frame;
            for (fa, fc) in a.chunks_exact(frame).zip(c.chunks_exact(frame)) {
                self.levels.push(rms_dbfs(fa), rms_dbfs(fc));
            }
        }
    }

    /// The oldest batch queued for encoding, written.
    fn write_oldest(&mut self) -> Result<(), TranscodeError> {
        for p in self.encoders.collect()? {
            self.writer.push(p)?;
        }
        Ok(())
    }

    /// Flushes the resamplers' tails, then keeps exactly the source's length, and encodes it.
    fn flush_tails(&mut self) -> Result<(), TranscodeError> {
        let expected = (self.src_frames as u128 * u128::from(self.out_rate_hz)
            / u128::from(self.source_rate_hz.max(1))) as u64;
        let want = expected.saturating_sub(self.out_samples) as usize;
        let zeros = vec![0f32; 480];
        for lane in self.lanes.iter_mut() {
            let mut guard = 0;
            while lane.fifo.len() < want && guard < 1000 {
                lane.push(&zeros);
                guard += 1;
            }
            lane.fifo.truncate(want);
        }
        self.drain(true)
    }

    /// Writes every batch still queued and the padding, and closes the file.
    fn finish(mut self, notes: Vec<String>) -> Result<(W, Transcoded), TranscodeError> {
        while self.encoders.in_flight > 0 {
            self.write_oldest()?;
        }
        let duration_ms = self.writer.duration_ms();
        // Encoded silence flushes the encoders' lookahead (RFC 7845 §4.4).
        let silence = vec![0f32; self.frame * self.writer.padding_frames() as usize];
        self.encoders.submit(silence.clone(), silence)?;
        let padding = self.encoders.collect()?;
        let Pipeline {
            mono_mix,
            source_rate_hz,
            encoders,
            writer,
            peaks,
            levels,
            src_frames,
            ..
        } = self;
        let mut out = writer.finish(padding)?;
        out.flush().map_err(OutError::Io)?;
        // Dropping the encoders closes their queues; the scope joins the threads.
        drop(encoders);
        Ok((
            out,
            Transcoded {
                duration_ms,
                source_ms: src_frames * 1000 / u64::from(source_rate_hz.max(1)),
                mono_mix,
                peaks: peaks.finish(),
                levels: (!mono_mix).then_some(levels),
                notes,
            },
        ))
    }
}

/// Decodes `src` to the end without encoding (for `--dry-run`); returns its length in ms.
pub fn measure(src: &mut dyn PcmSource) -> Result<u64, DecodeError> {
    let rate = u64::from(src.info().rate_hz.max(1));
    let mut planes = Vec::new();
    let mut frames = 0u64;
    while src.next_block(&mut planes)? {
        frames += planes.first().map_or(0, |p| p.len() as u64);
    }
    Ok(frames * 1000 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::decode::SourceInfo;
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A tone per channel, handed out in odd-sized blocks.
    struct Tones {
        info: SourceInfo,
        freqs: Vec<f32>,
        left: u64,
        pos: u64,
    }

    impl PcmSource for Tones {
        fn info(&self) -> &SourceInfo {
            &self.info
        }
        fn next_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<bool, DecodeError> {
            let n = self.left.min(1237);
            if n == 0 {
                return Ok(false);
            }
            planes.resize(self.freqs.len(), Vec::new());
            let rate = self.info.rate_hz as f32;
            for (plane, f) in planes.iter_mut().zip(&self.freqs) {
                plane.clear();
                plane.extend(
                    (self.pos..self.pos + n)
                        .map(|i| 0.4 * (2.0 * std::f32::consts::PI * f * i as f32 / rate).sin()),
                );
            }
            self.pos += n;
            self.left -= n;
            Ok(true)
        }
        fn notes(&self) -> Vec<String> {
            Vec::new()
        }
    }

    fn tones(rate_hz: u32, freqs: &[f32], ms: u64) -> Tones {
        Tones {
            info: SourceInfo {
                format: "test/tone".into(),
                rate_hz,
                channels: freqs.len(),
                expected_frames: None,
            },
            freqs: freqs.to_vec(),
            left: u64::from(rate_hz) * ms / 1000,
            pos: 0,
        }
    }

    /// Goertzel level of `f` in `x` (sample rate `rate`), in dB.
    fn level_db(x: &[f32], f: f32, rate: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * f / rate;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f32, 0f32);
        for &v in x {
            let s = v + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let p = (s1 * s1 + s2 * s2 - c * s1 * s2).max(1e-12);
        10.0 * (p / (x.len() as f32).powi(2)).log10()
    }

    #[test]
    fn keeps_the_source_length_at_any_rate() -> TestResult {
        let e = EncoderConfig::default();
        for rate in [8_000u32, 11_025, 16_000, 22_050, 44_100, 48_000] {
            for ms in [1_000u64, 2_345] {
                let mut src = tones(rate, &[440.0, 1000.0], ms);
                let (out, t) = transcode(&mut src, 0, &e, Vec::new(), 1, &[])?;
                assert!(
                    t.duration_ms >= ms && t.duration_ms < ms + 20,
                    "{rate} Hz, {ms} ms: wrote {} ms",
                    t.duration_ms
                );
                assert!(
                    t.source_ms.abs_diff(ms) <= 1,
                    "{rate} Hz: source {} ms",
                    t.source_ms
                );
                let d = crate::codec::ogg_read::decode(&out, 16_000)?;
                assert_eq!(d.frames() as u64, t.duration_ms * 16, "{rate} Hz");
            }
        }
        Ok(())
    }

    #[test]
    fn maps_channels_and_mono() -> TestResult {
        let e = EncoderConfig::default();
        // Agent on channel 1: the 700 Hz tone must land in channel 0 (agent) of the file.
        let mut src = tones(44_100, &[1_900.0, 700.0], 1_500);
        let (out, t) = transcode(&mut src, 1, &e, Vec::new(), 1, &[])?;
        assert!(!t.mono_mix && t.levels.is_some());
        let d = crate::codec::ogg_read::decode(&out, 16_000)?;
        let (a, c) = (d.channel(0), d.channel(1));
        let (a, c) = (&a[4_000..20_000], &c[4_000..20_000]);
        assert!(level_db(a, 700.0, 16e3) > level_db(a, 1_900.0, 16e3) + 25.0);
        assert!(level_db(c, 1_900.0, 16e3) > level_db(c, 700.0, 16e3) + 25.0);
        // A mono source is in both channels, identically.
        let mut src = tones(8_000, &[500.0], 1_000);
        let (out, t) = transcode(&mut src, 0, &e, Vec::new(), 1, &[])?;
        assert!(t.mono_mix && t.levels.is_none());
        let d = crate::codec::ogg_read::decode(&out, 16_000)?;
        assert_eq!(d.channel(0), d.channel(1));
        assert!(level_db(&d.channel(0)[4_000..12_000], 500.0, 16e3) > -15.0);
        Ok(())
    }
}
