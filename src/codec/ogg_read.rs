//! Reads Ogg Opus files: page scanning with CRC checks (for recovery and verification) and
//! decoding to PCM with pre-skip and end trimming applied (RFC 7845 §4.2, §4.4).
//!
//! The scanner stops at the first page that is truncated or fails its checksum; everything before
//! it is intact. It never modifies the file; `reseal_last_page` is the one writer here and only
//! sets the end-of-stream flag and fixes that page's CRC.
//!
//! Two ways in: the slice functions (`inspect`, `decode_each`, `decode_window`) for callers that
//! already hold the bytes, and the reader ones (`PageReader`, `scan_from`, `decode_each_from`,
//! `WindowDecoder`) for the web service, which must not hold a recording in memory per request:
//! they keep one page (at most 65 307 bytes) and one decoder, whatever the file's length. The
//! slice functions are built on the reader ones, so both read a file the same way.

use super::ogg_crc::crc32;
use super::opus_ms::{MsDecoder, OpusError};
use super::GRANULE_RATE_HZ;
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
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
    /// An I/O error from a reader (the reader functions do not know a path; callers add it).
    #[error("reading the audio: {0}")]
    Stream(std::io::Error),
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
    sink: impl FnMut(&[f32]),
) -> Result<usize, ReadError> {
    decode_each_from(std::io::Cursor::new(data), rate_hz, sink)
}

/// [`decode_each`] from a seekable reader (a file): two passes, the first finds the header and
/// the playable length (the last intact page's granule), the second decodes. Memory is one page
/// and the decoder, never the file.
pub fn decode_each_from<R: Read + Seek>(
    mut r: R,
    rate_hz: u32,
    sink: impl FnMut(&[f32]),
) -> Result<usize, ReadError> {
    let info = scan_from(&mut r, false)?;
    r.seek(SeekFrom::Start(0)).map_err(ReadError::Stream)?;
    decode_scanned(r, &info, rate_hz, sink)
}

/// The decoding pass of [`decode_each_from`], for callers that scanned already (they needed the
/// channel count before the first PCM). `r` must be at the start of the stream.
pub fn decode_scanned<R: Read>(
    r: R,
    info: &StreamInfo,
    rate_hz: u32,
    mut sink: impl FnMut(&[f32]),
) -> Result<usize, ReadError> {
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
    let mut pages = PageReader::new(r, 0);
    let mut packets = Packets::default();
    // The first two packets are OpusHead and OpusTags (RFC 7845 §3).
    let mut headers_left = 2usize;
    'pages: while let Some(page) = pages.next_page()? {
        packets.push_page(&page)?;
        while let Some(packet) = packets.ready.pop_front() {
            if headers_left > 0 {
                headers_left -= 1;
                continue;
            }
            if to_keep == 0 {
                break 'pages;
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
    }
    Ok(channels)
}

/// One page as [`PageReader`] hands it out: borrowed from the reader's buffer until the next.
pub struct PageBuf<'a> {
    pub offset: u64,
    pub len: usize,
    pub header_type: u8,
    pub granule: i64,
    /// Segment lacing values (RFC 3533 §6).
    pub lacing: &'a [u8],
    pub body: &'a [u8],
}

impl PageBuf<'_> {
    pub fn is_continued(&self) -> bool {
        self.header_type & 0x01 != 0
    }
}

/// Reads Ogg pages one at a time, with the checks of [`parse_page`] (capture pattern, version,
/// CRC): stops at the first page that is truncated or damaged, as [`scan_pages`] does.
pub struct PageReader<R> {
    r: R,
    offset: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: Read> PageReader<R> {
    /// `offset` is where `r` stands in the file (only reported back in [`PageBuf::offset`]).
    pub fn new(r: R, offset: u64) -> Self {
        PageReader {
            r,
            offset,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next intact page; None at the end of the stream or at the first bad page.
    pub fn next_page(&mut self) -> Result<Option<PageBuf<'_>>, ReadError> {
        if self.done || !self.fill()? {
            self.done = true;
            return Ok(None);
        }
        let nsegs = self.buf[26] as usize;
        let offset = self.offset;
        self.offset += self.buf.len() as u64;
        Ok(Some(PageBuf {
            offset,
            len: self.buf.len(),
            header_type: self.buf[5],
            granule: i64::from_le_bytes(self.buf[6..14].try_into().unwrap_or_default()),
            lacing: &self.buf[27..27 + nsegs],
            body: &self.buf[27 + nsegs..],
        }))
    }

    /// Reads one whole page into `buf` and checks it; false if it is partial or damaged.
    fn fill(&mut self) -> Result<bool, ReadError> {
        self.buf.clear();
        self.buf.resize(27, 0);
        if !read_full(&mut self.r, &mut self.buf[..])? {
            return Ok(false);
        }
        if &self.buf[0..4] != b"OggS" || self.buf[4] != 0 {
            return Ok(false);
        }
        let nsegs = self.buf[26] as usize;
        self.buf.resize(27 + nsegs, 0);
        if !read_full(&mut self.r, &mut self.buf[27..])? {
            return Ok(false);
        }
        let body_len: usize = self.buf[27..].iter().map(|&l| l as usize).sum();
        self.buf.resize(27 + nsegs + body_len, 0);
        if !read_full(&mut self.r, &mut self.buf[27 + nsegs..])? {
            return Ok(false);
        }
        let stored = u32::from_le_bytes([self.buf[22], self.buf[23], self.buf[24], self.buf[25]]);
        self.buf[22..26].fill(0);
        let intact = crc32(&self.buf) == stored;
        self.buf[22..26].copy_from_slice(&stored.to_le_bytes());
        Ok(intact)
    }
}

/// Fills `buf` from `r`; false if the stream ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, ReadError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Stream(e)),
        }
    }
    Ok(true)
}

/// The longest packet the reader joins across pages. An Opus packet is at most 1 275 bytes per
/// stream (RFC 6716 §3.2.1) and a file has at most 255 streams: anything longer is damage, and
/// without a cap a crafted chain of continued pages would grow one packet without bound.
const MAX_PACKET_BYTES: usize = 255 * 1275 + 255 * 2;

/// Joins segments into packets across pages (RFC 3533 §6), as [`packets`] does, one page at a
/// time: the completed packets of the last page wait in `ready`.
#[derive(Default)]
struct Packets {
    partial: Vec<u8>,
    ready: VecDeque<Vec<u8>>,
}

impl Packets {
    fn push_page(&mut self, page: &PageBuf<'_>) -> Result<(), ReadError> {
        if !page.is_continued() {
            self.partial.clear();
        }
        let mut pos = 0;
        for &l in page.lacing {
            self.partial
                .extend_from_slice(&page.body[pos..pos + l as usize]);
            pos += l as usize;
            if self.partial.len() > MAX_PACKET_BYTES {
                return Err(ReadError::Corrupt {
                    path: String::new(),
                    message: format!(
                        "a packet longer than {MAX_PACKET_BYTES} bytes at page offset {}",
                        page.offset
                    ),
                });
            }
            if l < 255 {
                self.ready.push_back(std::mem::take(&mut self.partial));
            }
        }
        Ok(())
    }
}

/// Where a page starts and the granule it ends at: what seeking needs, 24 bytes a page (about
/// 170 KB for an hour of the recorder's half-second pages).
#[derive(Debug, Clone, Copy)]
pub struct PageMark {
    pub offset: u64,
    pub granule: i64,
    pub continued: bool,
}

/// What [`scan_from`] finds: [`FileInfo`] without the page bodies.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub head: OpusHead,
    /// Every intact page, when the scan was asked to keep them (for seeking); else empty.
    pub marks: Vec<PageMark>,
    /// Bytes covered by intact pages.
    pub valid_bytes: u64,
    /// Playable length from the last granule (48 kHz units, pre-skip removed).
    pub samples_48k: u64,
}

impl StreamInfo {
    /// The same facts from a slice's [`FileInfo`].
    pub fn of(info: &FileInfo) -> StreamInfo {
        StreamInfo {
            head: info.head.clone(),
            marks: info
                .pages
                .iter()
                .map(|p| PageMark {
                    offset: p.offset as u64,
                    granule: p.granule,
                    continued: p.is_continued(),
                })
                .collect(),
            valid_bytes: info.valid_bytes as u64,
            samples_48k: info.samples_48k,
        }
    }
}

/// Reads a whole stream once, page by page, as [`inspect`] reads a slice: the header, the
/// playable length and (with `keep_marks`) where each page starts.
pub fn scan_from<R: Read>(r: R, keep_marks: bool) -> Result<StreamInfo, ReadError> {
    let mut pages = PageReader::new(r, 0);
    let mut packets = Packets::default();
    let mut head: Option<Option<OpusHead>> = None;
    let mut marks = Vec::new();
    let mut valid_bytes = 0;
    let mut last_granule = 0u64;
    while let Some(page) = pages.next_page()? {
        if keep_marks {
            marks.push(PageMark {
                offset: page.offset,
                granule: page.granule,
                continued: page.is_continued(),
            });
        }
        valid_bytes = page.offset + page.len as u64;
        if page.granule >= 0 {
            last_granule = page.granule as u64;
        }
        if head.is_none() {
            packets.push_page(&page)?;
            if let Some(first) = packets.ready.pop_front() {
                head = Some(parse_head(&first));
                packets = Packets::default();
            }
        }
    }
    let head = head
        .flatten()
        .ok_or_else(|| ReadError::NotOpus(String::new()))?;
    Ok(StreamInfo {
        samples_48k: last_granule.saturating_sub(u64::from(head.pre_skip)),
        head,
        marks,
        valid_bytes,
    })
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
    let mut w = WindowDecoder::new(
        std::io::Cursor::new(data),
        &StreamInfo::of(info),
        rate_hz,
        from_frame,
        frames as u64,
    )?;
    let mut out = Vec::with_capacity(frames.saturating_mul(channels).min(1 << 24));
    while let Some(pcm) = w.next_chunk(frames)? {
        out.extend_from_slice(&pcm);
    }
    Ok(out)
}

/// Decodes a window of a stream a bounded piece at a time ([`WindowDecoder::next_chunk`]): the
/// WAV route keeps one per response and decodes only when the client has taken the last piece,
/// so a client that stops reading costs this struct (one page, one decoder) and nothing else.
pub struct WindowDecoder<R> {
    pages: PageReader<R>,
    packets: Packets,
    dec: MsDecoder,
    channels: usize,
    buf: Vec<f32>,
    /// Position (in output frames, pre-skip included) of the next decoded frame.
    pos: i64,
    want_from: i64,
    want_to: i64,
}

impl<R: Read + Seek> WindowDecoder<R> {
    /// Seeks `r` to the page where decoding must start for `from_frame` (marks from a
    /// [`scan_from`] with `keep_marks`); the marks are not needed afterwards.
    pub fn new(
        mut r: R,
        info: &StreamInfo,
        rate_hz: u32,
        from_frame: u64,
        frames: u64,
    ) -> Result<Self, ReadError> {
        let marks = &info.marks;
        let channels = info.head.channels as usize;
        let to48 =
            |f: u64| (f as f64 * f64::from(GRANULE_RATE_HZ) / f64::from(rate_hz)).round() as i64;
        let pre_skip = i64::from(info.head.pre_skip);
        let target48 = to48(from_frame).saturating_add(pre_skip);
        // Header pages carry granule 0; audio starts on the first page with a positive granule.
        let first_audio = marks
            .iter()
            .position(|p| p.granule > 0)
            .unwrap_or(marks.len());
        let mut k = first_audio;
        for i in first_audio + 1..marks.len() {
            if marks[i - 1].granule <= target48.saturating_sub(SEEK_PREROLL_48K) {
                k = i;
            } else {
                break;
            }
        }
        while k > first_audio && marks[k].continued {
            k -= 1;
        }
        let start48 = if k == first_audio {
            0
        } else {
            marks[k - 1].granule
        };
        let start_offset = marks.get(k).map_or(info.valid_bytes, |m| m.offset);
        r.seek(SeekFrom::Start(start_offset))
            .map_err(ReadError::Stream)?;
        let dec = MsDecoder::new(
            rate_hz,
            info.head.streams,
            info.head.coupled,
            &info.head.mapping,
        )?;
        let scale = f64::from(rate_hz) / f64::from(GRANULE_RATE_HZ);
        let want_from = (target48 as f64 * scale).round() as i64;
        let total = ((info.samples_48k as f64 + pre_skip as f64) * scale).round() as i64;
        let want_to = want_from
            .saturating_add(i64::try_from(frames).unwrap_or(i64::MAX))
            .min(total);
        Ok(WindowDecoder {
            pages: PageReader::new(r, start_offset),
            packets: Packets::default(),
            dec,
            channels,
            buf: vec![0f32; rate_hz as usize * 120 / 1000 * channels],
            pos: (start48 as f64 * scale).round() as i64,
            want_from,
            want_to,
        })
    }
}

impl<R: Read> WindowDecoder<R> {
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The next interleaved PCM of the window: about `max_frames` frames (at most one packet,
    /// 120 ms, more), or None when the window is done or the intact pages end.
    pub fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Vec<f32>>, ReadError> {
        let ch = self.channels;
        let mut out = Vec::new();
        while out.len() < max_frames.saturating_mul(ch) && self.pos < self.want_to {
            let packet = match self.packets.ready.pop_front() {
                Some(p) => p,
                None => match self.pages.next_page()? {
                    Some(page) => {
                        self.packets.push_page(&page)?;
                        continue;
                    }
                    None => {
                        self.want_to = self.pos;
                        break;
                    }
                },
            };
            let n = self.dec.decode(&packet, &mut self.buf, ch)? as i64;
            let lo = (self.want_from - self.pos).clamp(0, n);
            let hi = (self.want_to - self.pos).clamp(0, n);
            if hi > lo {
                out.extend_from_slice(&self.buf[lo as usize * ch..hi as usize * ch]);
            }
            self.pos += n;
        }
        Ok((!out.is_empty()).then_some(out))
    }
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
        let mut w = OpusFileWriter::new(
            Vec::new(),
            &crate::config::EncoderConfig::default(),
            7,
            &["A=b".into()],
        )?;
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
