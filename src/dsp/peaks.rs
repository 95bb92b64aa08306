//! Waveform peaks for the player, in the audiowaveform `.dat` layout (version 2, 8-bit, two
//! channels: agent then customer), written by our own code so the GPL tool is not needed.
//!
//! Layout (audiowaveform `doc/DataFormat.md`, little-endian): i32 version = 2, u32 flags (bit 0 =
//! 8-bit samples), i32 sample_rate, i32 samples_per_pixel, u32 length (min/max pairs per
//! channel), i32 channels; then for each pixel, for each channel, min and max. The v2 header is
//! 24 bytes. At 100 pixels per second a call costs 400 bytes per second.
//!
//! The builder runs on the encoder worker (one call per frame): it must not allocate per frame
//! beyond amortised `Vec` growth.

use std::io::Write;
use std::path::Path;

pub const PIXELS_PER_SECOND: u32 = 100;
const HEADER_BYTES: usize = 24;
const CHANNELS: usize = 2;

/// Accumulates min/max per pixel from interleaved two-channel frames.
pub struct PeaksBuilder {
    rate_hz: u32,
    samples_per_pixel: u32,
    in_pixel: u32,
    min: [f32; CHANNELS],
    max: [f32; CHANNELS],
    data: Vec<i8>,
}

fn to_i8(v: f32) -> i8 {
    (v.clamp(-1.0, 1.0) * 127.0).round() as i8
}

impl PeaksBuilder {
    pub fn new(rate_hz: u32) -> Self {
        PeaksBuilder {
            rate_hz,
            samples_per_pixel: (rate_hz / PIXELS_PER_SECOND).max(1),
            in_pixel: 0,
            min: [f32::INFINITY; CHANNELS],
            max: [f32::NEG_INFINITY; CHANNELS],
            data: Vec::new(),
        }
    }

    /// Adds interleaved (agent, customer) samples.
    pub fn push(&mut self, interleaved: &[f32]) {
        for fr in interleaved.chunks_exact(CHANNELS) {
            self.push_frame([fr[0], fr[1]]);
        }
    }

    /// Adds `frames` frames of silence.
    pub fn push_silence(&mut self, frames: usize) {
        for _ in 0..frames {
            self.push_frame([0.0; CHANNELS]);
        }
    }

    fn push_frame(&mut self, fr: [f32; CHANNELS]) {
        for (c, v) in fr.into_iter().enumerate() {
            self.min[c] = self.min[c].min(v);
            self.max[c] = self.max[c].max(v);
        }
        self.in_pixel += 1;
        if self.in_pixel == self.samples_per_pixel {
            self.flush_pixel();
        }
    }

    fn flush_pixel(&mut self) {
        for c in 0..CHANNELS {
            self.data.push(to_i8(self.min[c]));
            self.data.push(to_i8(self.max[c]));
        }
        self.in_pixel = 0;
        self.min = [f32::INFINITY; CHANNELS];
        self.max = [f32::NEG_INFINITY; CHANNELS];
    }

    /// The complete `.dat` file.
    pub fn finish(mut self) -> Vec<u8> {
        if self.in_pixel > 0 {
            self.flush_pixel();
        }
        let length = (self.data.len() / (2 * CHANNELS)) as u32;
        let mut out = Vec::with_capacity(HEADER_BYTES + self.data.len());
        out.extend_from_slice(&2i32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(self.rate_hz as i32).to_le_bytes());
        out.extend_from_slice(&(self.samples_per_pixel as i32).to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(CHANNELS as i32).to_le_bytes());
        out.extend(self.data.iter().map(|v| *v as u8));
        out
    }
}

/// Peaks for an existing recording (calls recovered after a crash, or made before peaks existed).
pub fn from_opus(data: &[u8], rate_hz: u32) -> Result<Vec<u8>, crate::codec::ogg_read::ReadError> {
    from_reader(std::io::Cursor::new(data), rate_hz)
}

/// [`from_opus`] from a file, read page by page: memory is the peaks (about 1 MB per call-hour)
/// plus one page and the decoder, never the recording.
pub fn from_reader<R: std::io::Read + std::io::Seek>(
    mut r: R,
    rate_hz: u32,
) -> Result<Vec<u8>, crate::codec::ogg_read::ReadError> {
    use crate::codec::ogg_read::{self, ReadError};
    let info = ogg_read::scan_from(&mut r, false)?;
    r.seek(std::io::SeekFrom::Start(0))
        .map_err(ReadError::Stream)?;
    let channels = info.head.channels as usize;
    let mut b = PeaksBuilder::new(rate_hz);
    // Streamed packet by packet: a one-hour call never sits in memory as PCM.
    ogg_read::decode_scanned(r, &info, rate_hz, |pcm| {
        if channels == CHANNELS {
            b.push(pcm);
        } else {
            // Not a callrec file layout: show the first channel in both lanes.
            for s in pcm.iter().step_by(channels.max(1)) {
                b.push(&[*s, *s]);
            }
        }
    })?;
    Ok(b.finish())
}

/// Where a call's peaks live: beside its audio, same stem.
pub fn path_for(audio: &Path) -> std::path::PathBuf {
    audio.with_extension("dat")
}

/// Writes atomically (temp file + rename) so a reader never sees half a file, and durably: the
/// file is fsynced before the rename and its directory after, so a call whose row says finished
/// has its peaks on disk. Found by the power-cut campaign (RELIABILITY.md): without the fsyncs
/// a cut left empty or missing peaks beside finished calls, and `callrec check` failed on them.
pub fn write(path: &Path, dat: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("dat.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(dat)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The parsed header and data, for tests and `callrec check`.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub sample_rate: i32,
    pub samples_per_pixel: i32,
    pub length: u32,
    pub channels: i32,
    pub data: Vec<i8>,
}

pub fn parse(dat: &[u8]) -> Option<Parsed> {
    let word = |i: usize| -> Option<[u8; 4]> { dat.get(i * 4..i * 4 + 4)?.try_into().ok() };
    if i32::from_le_bytes(word(0)?) != 2 || u32::from_le_bytes(word(1)?) & 1 != 1 {
        return None;
    }
    let p = Parsed {
        sample_rate: i32::from_le_bytes(word(2)?),
        samples_per_pixel: i32::from_le_bytes(word(3)?),
        length: u32::from_le_bytes(word(4)?),
        channels: i32::from_le_bytes(word(5)?),
        data: dat.get(HEADER_BYTES..)?.iter().map(|b| *b as i8).collect(),
    };
    (p.data.len() == p.length as usize * 2 * p.channels.max(0) as usize).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_audiowaveform_v2() {
        let rate = 16000;
        let mut b = PeaksBuilder::new(rate);
        // 1.5 pixels: agent a ramp to 0.5, customer constant -1.0.
        let spp = (rate / PIXELS_PER_SECOND) as usize;
        let frames: Vec<f32> = (0..spp * 3 / 2)
            .flat_map(|i| [i as f32 / (spp * 3) as f32, -1.0])
            .collect();
        b.push(&frames);
        b.push_silence(spp);
        let dat = b.finish();
        assert_eq!(&dat[..4], &2i32.to_le_bytes());
        let Some(p) = parse(&dat) else {
            panic!("our own .dat does not parse: {dat:?}");
        };
        assert_eq!(
            (p.sample_rate, p.samples_per_pixel, p.channels, p.length),
            (16000, 160, 2, 3)
        );
        // Pixel 0: agent ramp 0 → 159/480; customer constant -1.
        assert_eq!(&p.data[0..4], &[0, 42, -127, -127]);
        // Pixel 1: the ramp's end (to 239/480) then silence; pixel 2: silence only.
        assert_eq!(&p.data[4..8], &[0, 63, -127, 0]);
        assert_eq!(&p.data[8..12], &[0, 0, 0, 0]);
        assert_eq!(dat.len(), 24 + 3 * 4);
    }
}
