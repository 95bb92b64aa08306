//! Writes one call as an Ogg Opus file (RFC 7845) with the `ogg` crate's page writer.
//!
//! Layout: OpusHead alone on page 0, OpusTags ending page 1 (§3), then audio pages that end at
//! least every `page_ms` so a killed process loses at most that much (invariant 3). Granule
//! positions count 48 kHz samples including the pre-skip (§4); the last page's granule trims the
//! encoder's padding (§4.4). Writing never seeks: the file is valid up to its last complete page
//! at every moment, which is what crash recovery relies on.

use super::party::{dtx_packet, join_streams, PartyEncoder, PartyError};
use super::quiet::QuietFrames;
use super::{CHANNELS, GRANULE_RATE_HZ};
use crate::config::{EncoderConfig, QuietFramesMode};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use std::collections::VecDeque;
use std::io::Write;

/// A page ends at least this often; half the "≤ 1 s" durability goal leaves room for lag.
pub const PAGE_MS: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing the Ogg Opus file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Opus(#[from] PartyError),
}

/// Metadata carried in OpusTags (RFC 7845 §5.2) so a file describes itself without the index.
pub fn tags_for(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", v.replace(['\n', '\r'], " ")))
        .collect()
}

/// The identification header (RFC 7845 §5.1) of a callrec file: two uncoupled mono streams.
pub fn opus_head(pre_skip: u16, input_rate_hz: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(21);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(CHANNELS as u8);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_rate_hz.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(1); // channel mapping family 1 (§5.1.1.2)
    h.push(2); // stream count
    h.push(0); // coupled stream count: agent and customer stay separate
    h.extend_from_slice(&[0, 1]); // channel 0 <- stream 0 (agent), 1 <- stream 1 (customer)
    h
}

/// The comment header (RFC 7845 §5.2) with these `KEY=value` comments.
pub fn opus_tags(comments: &[String]) -> Vec<u8> {
    let vendor = format!("callrec {} (libopus)", env!("CARGO_PKG_VERSION"));
    let mut t = Vec::new();
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in comments {
        t.extend_from_slice(&(c.len() as u32).to_le_bytes());
        t.extend_from_slice(c.as_bytes());
    }
    t
}

/// One frame held back for the look-back of `QuietFrames`.
struct Held {
    samples: Vec<f32>,
    /// Paused or fault silence written on purpose: always encoded, never seen by the floor.
    forced: bool,
}

/// Encoders + Ogg writer for one file. Feed 20 ms frames of interleaved [agent, customer] samples.
///
/// Each party has its own mono encoder; their packets are joined into one two-stream packet per
/// frame (`party::join_streams`). A party's quiet frames (`quiet`) skip its encoder and carry a
/// DTX packet, decided after a look-back of `QuietFrames::delay_frames` frames: frames go out
/// that many frames after they came in.
pub struct OpusFileWriter<W: Write> {
    pw: PacketWriter<'static, W>,
    enc: [PartyEncoder; 2],
    /// TOC of each party's last real packet (the DTX packets repeat it).
    toc: [Option<u8>; 2],
    quiet: QuietFrames,
    quiet_mode: QuietFramesMode,
    /// The configured complexity, for every frame that is not quiet.
    complexity: i32,
    /// `low` mode's complexity for quiet frames (`encoder.quiet_complexity`).
    quiet_complexity: i32,
    held: VecDeque<Held>,
    spare: Option<Vec<f32>>,
    /// Frames taken in (`push_*`); the timeline of the call.
    frames_in: u64,
    /// Frames written to the Ogg stream.
    frames_out: u64,
    /// Party frames that went through the encoder / that were stored as DTX.
    encoded: u64,
    skipped: u64,
    serial: u32,
    pre_skip_48k: u64,
    frame_48k: u64,
    frame_ms: u32,
    frame_samples: usize,
    packets_in_page: u32,
    packets_per_page: u32,
    mono: Vec<f32>,
    pages: u64,
}

impl<W: Write> OpusFileWriter<W> {
    /// Writes both header pages and flushes them to `out`.
    pub fn new(
        out: W,
        e: &EncoderConfig,
        serial: u32,
        comments: &[String],
    ) -> Result<Self, WriteError> {
        let mut enc = [
            PartyEncoder::new(e, opus::Bandwidth::Fullband)?,
            PartyEncoder::new(e, opus::Bandwidth::Fullband)?,
        ];
        let rate_hz = e.rate_hz;
        let frame_samples = e.frame_samples();
        let scale = u64::from(GRANULE_RATE_HZ / rate_hz);
        let pre_skip_48k = enc[0].lookahead()? as u64 * scale;
        let frame_48k = frame_samples as u64 * scale;
        let frame_ms = (frame_samples as u32 * 1000 / rate_hz).max(1);
        let mut pw = PacketWriter::new(out);
        pw.write_packet(
            opus_head(pre_skip_48k as u16, rate_hz),
            serial,
            PacketWriteEndInfo::EndPage,
            0,
        )?;
        pw.write_packet(opus_tags(comments), serial, PacketWriteEndInfo::EndPage, 0)?;
        pw.inner_mut().flush()?;
        Ok(OpusFileWriter {
            pw,
            enc,
            toc: [None; 2],
            quiet: QuietFrames::new(frame_ms, e.quiet_frames != QuietFramesMode::Encode),
            quiet_mode: e.quiet_frames,
            complexity: e.complexity as i32,
            quiet_complexity: e.quiet_complexity.min(e.complexity) as i32,
            held: VecDeque::new(),
            spare: None,
            frames_in: 0,
            frames_out: 0,
            encoded: 0,
            skipped: 0,
            serial,
            pre_skip_48k,
            frame_48k,
            frame_ms,
            frame_samples,
            packets_in_page: 0,
            packets_per_page: (PAGE_MS / frame_ms).max(1),
            mono: vec![0.0; frame_samples],
            pages: 2,
        })
    }

    /// Takes one frame. Returns true when a page was completed (and flushed to the writer).
    pub fn push_frame(&mut self, interleaved: &[f32]) -> Result<bool, WriteError> {
        self.quiet.observe(self.frames_in, interleaved);
        self.hold(interleaved, false)
    }

    /// One silent frame; used for paused audio (invariant 6) and fault gaps. Always encoded, so
    /// a pause decodes as the same silence it always did.
    pub fn push_silence(&mut self) -> Result<bool, WriteError> {
        let silence = vec![0.0; self.frame_samples * CHANNELS];
        self.hold(&silence, true)
    }

    fn hold(&mut self, interleaved: &[f32], forced: bool) -> Result<bool, WriteError> {
        let mut samples = self.spare.take().unwrap_or_default();
        samples.clear();
        samples.extend_from_slice(interleaved);
        self.held.push_back(Held { samples, forced });
        self.frames_in += 1;
        if self.held.len() as u64 <= self.quiet.delay_frames() {
            return Ok(false);
        }
        let Some(h) = self.held.pop_front() else {
            return Ok(false);
        };
        let done = self.write_out(&h);
        // The buffer serves the next frame: the look-back does not allocate per frame.
        self.spare = Some(h.samples);
        done
    }

    /// Encodes (or stores as DTX) the oldest held frame and writes its packet.
    fn write_out(&mut self, h: &Held) -> Result<bool, WriteError> {
        let index = self.frames_out;
        let mut packets: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for (party, packet) in packets.iter_mut().enumerate() {
            let quiet = !h.forced && !self.quiet.encode(party, index);
            *packet = match (self.toc[party], quiet, self.quiet_mode) {
                (Some(toc), true, QuietFramesMode::Dtx) => {
                    self.skipped += 1;
                    dtx_packet(toc)
                }
                _ => {
                    let complexity = if quiet && self.quiet_mode == QuietFramesMode::Low {
                        self.skipped += 1;
                        self.quiet_complexity
                    } else {
                        self.encoded += 1;
                        self.complexity
                    };
                    self.enc[party].set_complexity(complexity)?;
                    for (m, s) in self
                        .mono
                        .iter_mut()
                        .zip(h.samples.iter().skip(party).step_by(CHANNELS))
                    {
                        *m = *s;
                    }
                    let p = self.enc[party].encode(&self.mono)?;
                    self.toc[party] = p.first().copied();
                    p
                }
            };
        }
        let packet = join_streams(&packets[0], &packets[1])?;
        self.frames_out += 1;
        self.packets_in_page += 1;
        let end_page = self.packets_in_page >= self.packets_per_page;
        let info = if end_page {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        // Granules count decoded samples, pre-skip included (RFC 7845 §4); only the last page trims.
        let granule = self.frames_out * self.frame_48k;
        self.pw.write_packet(packet, self.serial, info, granule)?;
        if end_page {
            self.packets_in_page = 0;
            self.pages += 1;
            self.pw.inner_mut().flush()?;
        }
        Ok(end_page)
    }

    /// Audio taken in so far, in milliseconds (from the sample count, never the wall clock).
    pub fn duration_ms(&self) -> u64 {
        self.frames_in * self.frame_48k / 48
    }

    /// How long a frame waits in the writer before it is written (the quiet-frame look-back).
    pub fn delay_ms(&self) -> u64 {
        self.quiet.delay_frames() * u64::from(self.frame_ms)
    }

    /// Party frames encoded at the configured complexity, and quiet party frames (stored as DTX
    /// or encoded at `quiet_complexity`), so far.
    pub fn party_frames(&self) -> (u64, u64) {
        (self.encoded, self.skipped)
    }

    pub fn writer_mut(&mut self) -> &mut W {
        self.pw.inner_mut()
    }

    /// Writes the frames still held, flushes the encoders' lookahead with silent frames and
    /// closes the stream with an end-trimmed final granule (RFC 7845 §4.4). Returns the inner
    /// writer.
    pub fn finish(mut self) -> Result<W, WriteError> {
        while let Some(h) = self.held.pop_front() {
            self.write_out(&h)?;
        }
        let input_48k = self.frames_in * self.frame_48k;
        let final_granule = self.pre_skip_48k + input_48k;
        let pad_frames = self.pre_skip_48k.div_ceil(self.frame_48k).max(1);
        let silence = vec![0.0; self.frame_samples];
        for i in 0..pad_frames {
            let a = self.enc[0].encode(&silence)?;
            let c = self.enc[1].encode(&silence)?;
            let last = i + 1 == pad_frames;
            let info = if last {
                PacketWriteEndInfo::EndStream
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.pw
                .write_packet(join_streams(&a, &c)?, self.serial, info, final_granule)?;
        }
        let mut out = self.pw.into_inner();
        out.flush()?;
        Ok(out)
    }
}
