//! The box format written from two independently encoded parties, so that an import can use
//! both cores on one file.
//!
//! A callrec file (see `codec`) is Ogg Opus with channel mapping family 1, two streams, none
//! coupled: every Ogg packet is a multistream packet holding the agent's Opus packet in
//! self-delimiting framing (RFC 6716 Appendix B) followed by the customer's in normal framing
//! (RFC 7845 §5.1.1.2 — "all but the last stream use self-delimiting framing"). libopus's
//! multistream encoder produces exactly that from two mono encoders run one after the other, and so
//! does the recorder's writer from two `codec::party::PartyEncoder`s. Here the two encoders (same
//! settings: VOIP application, voice signal, the per-party bitrate, the box's complexity) run on
//! two threads; a mono source (a mix of both parties, stored in both
//! channels) is encoded once and its packet used for both streams, halving the work. The one
//! setting the recorder does not make: a source sampled below the encoder's rate (8 kHz µ-law)
//! gets a matching maximum bandwidth, so no bits or cycles go to a band that is empty.
//!
//! The Ogg layout mirrors `codec::ogg_write::OpusFileWriter` page for page (OpusHead alone on page
//! 0, OpusTags ending page 1, a page every `PAGE_MS`, the last granule trimming the encoder's
//! padding); the unit test `same_bytes_as_the_recorder_writer` proves the output is byte-identical
//! to what the recorder's writer makes from the same samples, so there is one box format, not two.
//!
//! This module writes only to the `Write` it is given; it never opens, renames or deletes files.

use crate::codec::ogg_write::PAGE_MS;
use crate::codec::party::PartyError;
use crate::codec::GRANULE_RATE_HZ;
use crate::config::EncoderConfig;
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum OutError {
    #[error("writing the Ogg Opus file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Party(#[from] PartyError),
}

/// Ogg pages for pre-encoded two-stream packets, one per frame.
pub struct PacketFileWriter<W: Write> {
    pw: PacketWriter<'static, W>,
    serial: u32,
    pre_skip_48k: u64,
    frame_48k: u64,
    frames: u64,
    packets_in_page: u32,
    packets_per_page: u32,
}

impl<W: Write> PacketFileWriter<W> {
    /// Writes both header pages. `lookahead` is the encoder's, in samples at `e.rate_hz`.
    pub fn new(
        out: W,
        e: &EncoderConfig,
        lookahead: usize,
        serial: u32,
        comments: &[String],
    ) -> Result<Self, OutError> {
        let scale = u64::from(GRANULE_RATE_HZ / e.rate_hz);
        let pre_skip_48k = lookahead as u64 * scale;
        let frame_48k = e.frame_samples() as u64 * scale;
        let frame_ms = (e.frame_ms).max(1);
        let mut pw = PacketWriter::new(out);
        pw.write_packet(
            crate::codec::ogg_write::opus_head(pre_skip_48k as u16, e.rate_hz),
            serial,
            PacketWriteEndInfo::EndPage,
            0,
        )?;
        pw.write_packet(
            crate::codec::ogg_write::opus_tags(comments),
            serial,
            PacketWriteEndInfo::EndPage,
            0,
        )?;
        Ok(PacketFileWriter {
            pw,
            serial,
            pre_skip_48k,
            frame_48k,
            frames: 0,
            packets_in_page: 0,
            packets_per_page: (PAGE_MS / frame_ms).max(1),
        })
    }

    /// Appends one frame's packet.
    pub fn push(&mut self, packet: Vec<u8>) -> Result<(), OutError> {
        self.frames += 1;
        self.packets_in_page += 1;
        let end_page = self.packets_in_page >= self.packets_per_page;
        let info = if end_page {
            self.packets_in_page = 0;
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.pw
            .write_packet(packet, self.serial, info, self.frames * self.frame_48k)?;
        Ok(())
    }

    /// Audio written so far, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames * self.frame_48k / 48
    }

    /// Silent frames the encoders must still emit so the lookahead is flushed.
    pub fn padding_frames(&self) -> u64 {
        self.pre_skip_48k.div_ceil(self.frame_48k).max(1)
    }

    /// Writes the padding packets (encoded silence, `padding_frames()` of them) with the final,
    /// end-trimming granule (RFC 7845 §4.4) and returns the inner writer.
    pub fn finish(mut self, padding: Vec<Vec<u8>>) -> Result<W, OutError> {
        let final_granule = self.pre_skip_48k + self.frames * self.frame_48k;
        let n = padding.len();
        for (i, p) in padding.into_iter().enumerate() {
            let info = if i + 1 == n {
                PacketWriteEndInfo::EndStream
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.pw.write_packet(p, self.serial, info, final_granule)?;
        }
        let mut out = self.pw.into_inner();
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ogg_write::OpusFileWriter;
    use crate::codec::party::{join_streams, PartyEncoder};
    use crate::config::QuietFramesMode;

    /// Two different "voices": a gliding tone for the agent, pulsed noise for the customer.
    fn signal(frames: usize, rate: u32) -> (Vec<f32>, Vec<f32>) {
        let mut seed = 0x1234_5678u32;
        let mut a = Vec::with_capacity(frames);
        let mut c = Vec::with_capacity(frames);
        for i in 0..frames {
            let t = i as f32 / rate as f32;
            a.push(0.3 * (2.0 * std::f32::consts::PI * (200.0 + 150.0 * t) * t).sin());
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            c.push(if (t * 3.0) as u32 % 2 == 0 {
                noise * 0.4
            } else {
                0.0
            });
        }
        (a, c)
    }

    fn write_split(
        a: &[f32],
        c: &[f32],
        e: &EncoderConfig,
        tags: &[String],
    ) -> TestResult<Vec<u8>> {
        let mut ea = PartyEncoder::new(e, opus::Bandwidth::Fullband)?;
        let mut ec = PartyEncoder::new(e, opus::Bandwidth::Fullband)?;
        let la = ea.lookahead()?;
        let mut w = PacketFileWriter::new(Vec::new(), e, la, 7, tags)?;
        let n = e.frame_samples();
        for (fa, fc) in a.chunks_exact(n).zip(c.chunks_exact(n)) {
            w.push(join_streams(&ea.encode(fa)?, &ec.encode(fc)?)?)?;
        }
        let silence = vec![0f32; n];
        let mut pad = Vec::new();
        for _ in 0..w.padding_frames() {
            pad.push(join_streams(&ea.encode(&silence)?, &ec.encode(&silence)?)?);
        }
        Ok(w.finish(pad)?)
    }

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    #[test]
    fn same_bytes_as_the_recorder_writer() -> TestResult {
        for rate in [16_000u32, 48_000] {
            let e = EncoderConfig {
                rate_hz: rate,
                ..EncoderConfig::default()
            };
            let (a, c) = signal(rate as usize * 3, rate);
            let tags = vec!["CALLREC_BOX=t".to_owned()];
            let mine = write_split(&a, &c, &e, &tags)?;
            // The recorder's writer with every frame encoded, as the import does.
            let every_frame = EncoderConfig {
                quiet_frames: QuietFramesMode::Encode,
                ..e.clone()
            };
            let mut theirs = OpusFileWriter::new(Vec::new(), &every_frame, 7, &tags)?;
            let mut frame = vec![0f32; e.frame_samples() * 2];
            for (fa, fc) in a
                .chunks_exact(e.frame_samples())
                .zip(c.chunks_exact(e.frame_samples()))
            {
                for i in 0..fa.len() {
                    frame[2 * i] = fa[i];
                    frame[2 * i + 1] = fc[i];
                }
                theirs.push_frame(&frame)?;
            }
            let theirs = theirs.finish()?;
            assert_eq!(mine.len(), theirs.len(), "{rate} Hz: file sizes differ");
            assert!(mine == theirs, "{rate} Hz: files differ");
        }
        Ok(())
    }

    #[test]
    fn joined_packets_decode_to_both_parties() -> TestResult {
        let e = EncoderConfig::default();
        let (a, c) = signal(16_000 * 2, 16_000);
        let data = write_split(&a, &c, &e, &[])?;
        let d = crate::codec::ogg_read::decode(&data, 16_000)?;
        assert_eq!(d.channels, 2);
        assert_eq!(d.frames(), a.len());
        // Each party's energy lands in its own channel.
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let (da, dc) = (d.channel(0), d.channel(1));
        assert!((rms(&da) - rms(&a)).abs() < 0.3 * rms(&a), "agent level");
        assert!((rms(&dc) - rms(&c)).abs() < 0.5 * rms(&c), "customer level");
        Ok(())
    }
}
