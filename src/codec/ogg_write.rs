//! Writes one call as an Ogg Opus file (RFC 7845) with the `ogg` crate's page writer.
//!
//! Layout: OpusHead alone on page 0, OpusTags ending page 1 (§3), then audio pages that end at
//! least every `page_ms` so a killed process loses at most that much (invariant 3). Granule
//! positions count 48 kHz samples including the pre-skip (§4); the last page's granule trims the
//! encoder's padding (§4.4). Writing never seeks: the file is valid up to its last complete page
//! at every moment, which is what crash recovery relies on.

use super::opus_ms::{MsEncoder, OpusError};
use super::{CHANNELS, GRANULE_RATE_HZ};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use std::io::Write;

/// A page ends at least this often; half the "≤ 1 s" durability goal leaves room for lag.
pub const PAGE_MS: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing the Ogg Opus file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Opus(#[from] OpusError),
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

/// Encoder + Ogg writer for one file. Feed 20 ms frames of interleaved [agent, customer] samples.
pub struct OpusFileWriter<W: Write> {
    pw: PacketWriter<'static, W>,
    enc: MsEncoder,
    serial: u32,
    pre_skip_48k: u64,
    frame_48k: u64,
    frames: u64,
    packets_in_page: u32,
    packets_per_page: u32,
    packet: Vec<u8>,
    silence: Vec<f32>,
    pages: u64,
}

impl<W: Write> OpusFileWriter<W> {
    /// Writes both header pages and flushes them to `out`.
    pub fn new(
        out: W,
        rate_hz: u32,
        frame_samples: usize,
        bitrate_bps: u32,
        complexity: u32,
        serial: u32,
        comments: &[String],
    ) -> Result<Self, WriteError> {
        let enc = MsEncoder::new(rate_hz, frame_samples, bitrate_bps, complexity)?;
        let scale = u64::from(GRANULE_RATE_HZ / rate_hz);
        let pre_skip_48k = enc.lookahead()? as u64 * scale;
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
            serial,
            pre_skip_48k,
            frame_48k,
            frames: 0,
            packets_in_page: 0,
            packets_per_page: (PAGE_MS / frame_ms).max(1),
            packet: vec![0u8; 4000],
            silence: vec![0.0; frame_samples * CHANNELS],
            pages: 2,
        })
    }

    /// Encodes one frame. Returns true when it completed a page (and flushed it to the writer).
    pub fn push_frame(&mut self, interleaved: &[f32]) -> Result<bool, WriteError> {
        let n = self.enc.encode(interleaved, &mut self.packet)?;
        self.frames += 1;
        self.packets_in_page += 1;
        let end_page = self.packets_in_page >= self.packets_per_page;
        let info = if end_page {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        // Granules count decoded samples, pre-skip included (RFC 7845 §4); only the last page trims.
        let granule = self.frames * self.frame_48k;
        self.pw
            .write_packet(self.packet[..n].to_vec(), self.serial, info, granule)?;
        if end_page {
            self.packets_in_page = 0;
            self.pages += 1;
            self.pw.inner_mut().flush()?;
        }
        Ok(end_page)
    }

    /// One silent frame; used for paused audio (invariant 6) and fault gaps.
    pub fn push_silence(&mut self) -> Result<bool, WriteError> {
        let silence = std::mem::take(&mut self.silence);
        let r = self.push_frame(&silence);
        self.silence = silence;
        r
    }

    /// Audio written so far, in milliseconds (from the sample count, never the wall clock).
    pub fn duration_ms(&self) -> u64 {
        self.frames * self.frame_48k / 48
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn writer_mut(&mut self) -> &mut W {
        self.pw.inner_mut()
    }

    /// Flushes the encoder's lookahead with silent frames and closes the stream with an
    /// end-trimmed final granule (RFC 7845 §4.4). Returns the inner writer.
    pub fn finish(mut self) -> Result<W, WriteError> {
        let input_48k = self.frames * self.frame_48k;
        let final_granule = self.pre_skip_48k + input_48k;
        let pad_frames = self.pre_skip_48k.div_ceil(self.frame_48k).max(1);
        for i in 0..pad_frames {
            let n = self.enc.encode(&self.silence, &mut self.packet)?;
            let last = i + 1 == pad_frames;
            let info = if last {
                PacketWriteEndInfo::EndStream
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.pw
                .write_packet(self.packet[..n].to_vec(), self.serial, info, final_granule)?;
        }
        let mut out = self.pw.into_inner();
        out.flush()?;
        Ok(out)
    }
}
