//! Reads Ogg Opus files: page scanning with CRC checks (for recovery and verification) and
//! decoding to PCM with pre-skip and end trimming applied (RFC 7845 §4.2, §4.4).
//!
//! The scanner stops at the first page that is truncated or fails its checksum; everything before
//! it is intact. It never modifies the file; `reseal_last_page` is the one writer here and only
//! sets the end-of-stream flag and fixes that page's CRC.

use super::ogg_crc::crc32;
use super::opus_ms::{MsDecoder, OpusError};
use super::GRANULE_RATE_HZ;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: not an Ogg Opus file (no valid OpusHead on the first page)")]
    NotOpus(String),
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error(transparent)]
    Opus(#[from] OpusError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_rate_hz: u32,
    pub family: u8,
    pub streams: u8,
    pub coupled: u8,
    pub mapping: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub offset: usize,
    pub len: usize,
    pub header_type: u8,
    pub granule: i64,
    pub serial: u32,
    pub sequence: u32,
    /// Segment lacing values (RFC 3533 §6).
    pub lacing: Vec<u8>,
    pub body_offset: usize,
}

impl Page {
    pub fn is_eos(&self) -> bool {
        self.header_type & 0x04 != 0
    }
    fn is_continued(&self) -> bool {
        self.header_type & 0x01 != 0
    }
}

/// Parses one page at `offset`; None if it is truncated or its checksum is wrong.
pub fn parse_page(data: &[u8], offset: usize) -> Option<Page> {
    let h = data.get(offset..offset + 27)?;
    if &h[0..4] != b"OggS" || h[4] != 0 {
        return None;
    }
    let nsegs = h[26] as usize;
    let lacing = data.get(offset + 27..offset + 27 + nsegs)?.to_vec();
    let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
    let len = 27 + nsegs + body_len;
    let page = data.get(offset..offset + len)?;
    let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
    let mut copy = page.to_vec();
    copy[22..26].fill(0);
    if crc32(&copy) != stored {
        return None;
    }
    Some(Page {
        offset,
        len,
        header_type: h[5],
        granule: i64::from_le_bytes(h[6..14].try_into().ok()?),
        serial: u32::from_le_bytes(h[14..18].try_into().ok()?),
        sequence: u32::from_le_bytes(h[18..22].try_into().ok()?),
        lacing,
        body_offset: offset + 27 + nsegs,
    })
}

/// Every intact page from the start of `data`, stopping at the first damaged or partial one.
pub fn scan_pages(data: &[u8]) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut offset = 0;
    while let Some(p) = parse_page(data, offset) {
        offset += p.len;
        pages.push(p);
    }
    pages
}

/// Splits pages into packets, joining packets that continue across pages.
pub fn packets(data: &[u8], pages: &[Page]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    for p in pages {
        if !p.is_continued() {
            partial.clear();
        }
        let mut pos = p.body_offset;
        for &l in &p.lacing {
            partial.extend_from_slice(&data[pos..pos + l as usize]);
            pos += l as usize;
            if l < 255 {
                out.push(std::mem::take(&mut partial));
            }
        }
    }
    out
}

pub fn parse_head(packet: &[u8]) -> Option<OpusHead> {
    if packet.len() < 19 || &packet[0..8] != b"OpusHead" || packet[8] >> 4 != 0 {
        return None;
    }
    let channels = packet[9];
    let family = packet[18];
    let (streams, coupled, mapping) = if family == 0 {
        if channels > 2 {
            return None;
        }
        (1, channels.saturating_sub(1), (0..channels).collect())
    } else {
        let m = packet.get(21..21 + channels as usize)?;
        (packet[19], packet[20], m.to_vec())
    };
    Some(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        input_rate_hz: u32::from_le_bytes(packet[12..16].try_into().ok()?),
        family,
        streams,
        coupled,
        mapping,
    })
}

/// What an Ogg Opus file holds, as far as its intact pages go.
#[derive(Debug)]
pub struct FileInfo {
    pub head: OpusHead,
    pub comments: Vec<String>,
    pub pages: Vec<Page>,
    /// Bytes covered by intact pages; anything after is damage or a torn write.
    pub valid_bytes: usize,
    /// Playable length from the last granule (48 kHz units, pre-skip removed).
    pub samples_48k: u64,
}

impl FileInfo {
    pub fn duration_ms(&self) -> u64 {
        self.samples_48k / 48
    }
    pub fn has_eos(&self) -> bool {
        self.pages.last().is_some_and(Page::is_eos)
    }
}

pub fn read_file(path: &Path) -> Result<(Vec<u8>, FileInfo), ReadError> {
    let data = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let info = inspect(&data).map_err(|e| match e {
        ReadError::NotOpus(_) => ReadError::NotOpus(path.display().to_string()),
        other => other,
    })?;
    Ok((data, info))
}

pub fn inspect(data: &[u8]) -> Result<FileInfo, ReadError> {
    let pages = scan_pages(data);
    let pk = packets(data, &pages);
    let head = pk
        .first()
        .and_then(|p| parse_head(p))
        .ok_or_else(|| ReadError::NotOpus(String::new()))?;
    let comments = pk.get(1).map(|p| parse_tags(p)).unwrap_or_default();
    let valid_bytes = pages.last().map_or(0, |p| p.offset + p.len);
    let last_granule = pages
        .iter()
        .rev()
        .find(|p| p.granule >= 0)
        .map_or(0, |p| p.granule as u64);
    let samples_48k = last_granule.saturating_sub(u64::from(head.pre_skip));
    Ok(FileInfo {
        head,
        comments,
        pages,
        valid_bytes,
        samples_48k,
    })
}

fn parse_tags(p: &[u8]) -> Vec<String> {
    let rd = |o: usize| -> Option<usize> {
        Some(u32::from_le_bytes(p.get(o..o + 4)?.try_into().ok()?) as usize)
    };
    let mut out = Vec::new();
    if p.len() < 16 || &p[0..8] != b"OpusTags" {
        return out;
    }
    let Some(vlen) = rd(8) else { return out };
    let mut o = 12 + vlen;
    let Some(n) = rd(o) else { return out };
    o += 4;
    for _ in 0..n {
        let Some(l) = rd(o) else { break };
        let Some(s) = p.get(o + 4..o + 4 + l) else {
            break;
        };
        out.push(String::from_utf8_lossy(s).into_owned());
        o += 4 + l;
    }
    out
}

/// Decoded PCM, interleaved, pre-skip and end padding removed.
pub struct Decoded {
    pub channels: usize,
    pub rate_hz: u32,
    pub samples: Vec<f32>,
}

impl Decoded {
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }
    pub fn channel(&self, c: usize) -> Vec<f32> {
        self.samples
            .iter()
            .skip(c)
            .step_by(self.channels)
            .copied()
            .collect()
    }
}

/// Decodes every intact page of `data` with libopus at `rate_hz`.
pub fn decode(data: &[u8], rate_hz: u32) -> Result<Decoded, ReadError> {
    let mut samples = Vec::new();
    let channels = decode_each(data, rate_hz, |pcm| samples.extend_from_slice(pcm))?;
    Ok(Decoded {
        channels,
        rate_hz,
        samples,
    })
}

/// Decodes every intact page of `data` with libopus at `rate_hz`, handing the interleaved PCM
/// to `sink` one packet at a time (pre-skip and end padding removed, RFC 7845 §4.2 and §4.5),
/// so a one-hour call is never in memory as PCM. Returns the channel count.
pub fn decode_each(
    data: &[u8],
    rate_hz: u32,
    mut sink: impl FnMut(&[f32]),
) -> Result<usize, ReadError> {
    let info = inspect(data)?;
    let channels = info.head.channels as usize;
    let mut dec = MsDecoder::new(
        rate_hz,
        info.head.streams,
        info.head.coupled,
        &info.head.mapping,
    )?;
    let scale = f64::from(rate_hz) / f64::from(GRANULE_RATE_HZ);
    let mut buf = vec![0f32; rate_hz as usize * 120 / 1000 * channels];
    let mut to_skip = (f64::from(info.head.pre_skip) * scale).round() as usize * channels;
    // The last granule is the file's word (up to 2^63): saturate, never wrap, so a huge claim
    // keeps everything decodable instead of wrapping to "keep nothing" (fuzzing finding).
    let mut to_keep = ((info.samples_48k as f64 * scale).round() as usize).saturating_mul(channels);
    for packet in packets(data, &info.pages).into_iter().skip(2) {
        if to_keep == 0 {
            break;
        }
        let n = dec.decode(&packet, &mut buf, channels)? * channels;
        let skipped = to_skip.min(n);
        to_skip -= skipped;
        let kept = (n - skipped).min(to_keep);
        to_keep -= kept;
        if kept > 0 {
            sink(&buf[skipped..skipped + kept]);
        }
    }
    Ok(channels)
}

/// Decoder pre-roll before a seek target: RFC 7845 §4.6 recommends at least 80 ms, because a
/// fresh decoder needs that long to converge.
const SEEK_PREROLL_48K: i64 = 3840;

/// Decodes `frames` frames starting at playable frame `from_frame` (at `rate_hz`), starting the
/// decoder at the page that begins at least 80 ms before the target instead of at the start of
/// the file: seeking in a one-hour call costs one page range, not an hour of decoding.
pub fn decode_window(
    data: &[u8],
    info: &FileInfo,
    rate_hz: u32,
    from_frame: u64,
    frames: usize,
) -> Result<Vec<f32>, ReadError> {
    let channels = info.head.channels as usize;
    let to48 = |f: u64| (f as f64 * f64::from(GRANULE_RATE_HZ) / f64::from(rate_hz)).round() as i64;
    let pre_skip = i64::from(info.head.pre_skip);
    let target48 = to48(from_frame) + pre_skip;
    // Header pages carry granule 0; audio starts on the first page with a positive granule.
    let first_audio = info
        .pages
        .iter()
        .position(|p| p.granule > 0)
        .unwrap_or(info.pages.len());
    let mut k = first_audio;
    for i in first_audio + 1..info.pages.len() {
        if info.pages[i - 1].granule <= target48 - SEEK_PREROLL_48K {
            k = i;
        } else {
            break;
        }
    }
    while k > first_audio && info.pages[k].is_continued() {
        k -= 1;
    }
    let start48 = if k == first_audio {
        0
    } else {
        info.pages[k - 1].granule
    };
    let mut dec = MsDecoder::new(
        rate_hz,
        info.head.streams,
        info.head.coupled,
        &info.head.mapping,
    )?;
    let scale = f64::from(rate_hz) / f64::from(GRANULE_RATE_HZ);
    // Position (in output frames, pre-skip included) of the next decoded frame.
    let mut pos = (start48 as f64 * scale).round() as i64;
    let want_from = ((target48) as f64 * scale).round() as i64;
    let total = ((info.samples_48k as i64 + pre_skip) as f64 * scale).round() as i64;
    let want_to = (want_from + frames as i64).min(total);
    let mut buf = vec![0f32; rate_hz as usize * 120 / 1000 * channels];
    let mut out = Vec::with_capacity(frames * channels);
    for packet in packets(data, &info.pages[k..]) {
        if pos >= want_to {
            break;
        }
        let n = dec.decode(&packet, &mut buf, channels)? as i64;
        let lo = (want_from - pos).clamp(0, n);
        let hi = (want_to - pos).clamp(0, n);
        if hi > lo {
            out.extend_from_slice(&buf[lo as usize * channels..hi as usize * channels]);
        }
        pos += n;
    }
    Ok(out)
}

/// Sets end-of-stream on the page at `page` and recomputes its CRC, in the given buffer.
pub fn reseal_last_page(data: &mut [u8], page: &Page) {
    let bytes = &mut data[page.offset..page.offset + page.len];
    bytes[5] |= 0x04;
    bytes[22..26].fill(0);
    let crc = crc32(bytes);
    bytes[22..26].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;
    use crate::codec::ogg_write::OpusFileWriter;

    fn tone_file(frames: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut w = OpusFileWriter::new(Vec::new(), 16000, 320, 16000, 5, 7, &["A=b".into()])?;
        let mut t = 0usize;
        for _ in 0..frames {
            let mut f = vec![0f32; 640];
            for i in 0..320 {
                f[2 * i] = 0.3 * ((t as f32) * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin();
                t += 1;
            }
            w.push_frame(&f)?;
        }
        Ok(w.finish()?)
    }

    #[test]
    fn writes_family1_head_and_exact_length() -> TestResult {
        let data = tone_file(100)?;
        let info = inspect(&data)?;
        assert_eq!(info.head.family, 1);
        assert_eq!((info.head.streams, info.head.coupled), (2, 0));
        assert_eq!(info.head.mapping, vec![0, 1]);
        assert_eq!(info.head.pre_skip, 312);
        assert_eq!(info.comments, vec!["A=b".to_string()]);
        assert!(info.has_eos());
        assert_eq!(info.duration_ms(), 2000);
        // Page 0 holds only OpusHead, page 1 ends with OpusTags (RFC 7845 §3).
        assert_eq!(info.pages[0].lacing.len(), 1);
        assert_eq!(info.pages[0].granule, 0);
        let dec = decode(&data, 48000)?;
        assert_eq!(dec.frames(), 96000);
        // The tone is on channel 0 only; channel 1 stays silent (uncoupled streams).
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        assert!(rms(&dec.channel(0)) > 0.1);
        assert!(rms(&dec.channel(1)) < 1e-3);
        Ok(())
    }

    #[test]
    fn pages_at_most_every_half_second() -> TestResult {
        let data = tone_file(200)?;
        let info = inspect(&data)?;
        let audio: Vec<_> = info.pages.iter().skip(2).collect();
        for w in audio.windows(2) {
            assert!(
                w[1].granule - w[0].granule <= 24000,
                "{} -> {}",
                w[0].granule,
                w[1].granule
            );
        }
        Ok(())
    }

    #[test]
    fn truncation_stops_at_last_intact_page() -> TestResult {
        let data = tone_file(100)?;
        let cut = &data[..data.len() - 10];
        let info = inspect(cut)?;
        assert!(!info.has_eos());
        assert!(info.valid_bytes < cut.len());
        assert_eq!((info.samples_48k + 312) % 24000, 0);
        let mut fixed = cut[..info.valid_bytes].to_vec();
        let last = info.pages.last().ok_or("no pages")?.clone();
        reseal_last_page(&mut fixed, &last);
        let again = inspect(&fixed)?;
        assert!(again.has_eos());
        assert_eq!(again.valid_bytes, fixed.len());
        Ok(())
    }

    #[test]
    fn window_decode_matches_full_decode_after_preroll() -> TestResult {
        // 6 s of tone: seek to 4.2 s (several pages in) and compare with the full decode.
        let data = tone_file(300)?;
        let info = inspect(&data)?;
        let full = decode(&data, 16000)?;
        let from = 67_200u64; // 4.2 s at 16 kHz
        let win = decode_window(&data, &info, 16000, from, 1600)?;
        assert_eq!(win.len(), 1600 * 2);
        let reference = &full.samples[from as usize * 2..(from as usize + 1600) * 2];
        let err: f32 = win
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.05, "max difference {err} after pre-roll");
        // Past the end: clamped to what the file holds.
        let tail = decode_window(&data, &info, 16000, full.frames() as u64 - 100, 1000)?;
        assert_eq!(tail.len(), 200);
        Ok(())
    }
}
