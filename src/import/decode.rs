//! Turns one legacy recording into blocks of planar f32 PCM at the source's own rate.
//!
//! Two decoders sit behind [`PcmSource`]:
//! - **Ogg Opus** (a first page carrying `OpusHead`) goes through callrec's own reader
//!   (`codec::ogg_read`: page scan with CRC checks, packet joining) and libopus
//!   (`codec::opus_ms::MsDecoder`), decoding straight at the box's encoder rate, with the pre-skip
//!   and the end trim of RFC 7845 §4.2/§4.4 applied.
//! - **Everything else** is probed and decoded by symphonia: WAV (PCM, IEEE float, µ-law, A-law),
//!   MP3, FLAC, Ogg Vorbis.
//!
//! Damage policy, the same as the recorder's crash recovery ("nothing that reached the disk is
//! thrown away"): a source that ends early (a header promising more data than the file holds, a
//! torn last page or frame) yields the audio that is there, and says so in [`PcmSource::notes`]; a
//! packet that fails to decode in the middle is skipped and counted. A source from which no audio
//! at all can be decoded is an error.
//!
//! symphonia is a dependency callrec does not control, and some malformed headers make it panic
//! (fuzzing found an assertion in its Vorbis setup-header reader, `lookup1_values`, on a crafted
//! Ogg Vorbis file). Every call into it goes through [`contained`], so such a file fails alone
//! as [`DecodeError::Corrupt`] and the reader and decoder are never used again after a panic;
//! one damaged legacy file must never take the import down.
//!
//! This module only reads: it must never write, rename or delete anything, and never touch the
//! index. It keeps at most one compressed file (Ogg Opus) or one packet (symphonia) in memory,
//! never a whole decoded call.

use crate::codec::ogg_read;
use crate::codec::opus_ms::MsDecoder;
use crate::codec::GRANULE_RATE_HZ;
use indicatif::ProgressBar;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// More channels than this cannot be mapped onto agent + customer.
pub const MAX_CHANNELS: usize = 2;

/// Packets that fail to decode, in a row, before the rest of the source is given up as damaged.
const MAX_BAD_PACKETS_IN_A_ROW: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a supported audio file ({0}); supported: WAV (PCM, float, µ-law, A-law), MP3, FLAC, Ogg Vorbis, Ogg Opus")]
    Unsupported(String),
    #[error("{channels} channels; only mono (a mix) or stereo (agent + customer) can be imported")]
    TooManyChannels { channels: usize },
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    #[error("the file holds no decodable audio")]
    NoAudio,
}

/// What a source is, known once it is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// `container/codec`, e.g. `wave/pcm_mulaw`, `mp3/mp3`, `ogg/opus`.
    pub format: String,
    pub rate_hz: u32,
    pub channels: usize,
    /// Frames the container says it holds, when it says (used to detect truncation).
    pub expected_frames: Option<u64>,
}

/// A decoder that hands out planar f32 blocks.
pub trait PcmSource: Send {
    fn info(&self) -> &SourceInfo;
    /// Replaces `planes` with the next block (one Vec per channel). False at the end.
    fn next_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<bool, DecodeError>;
    /// Damage found while decoding (truncation, skipped packets), for the report and the row.
    fn notes(&self) -> Vec<String>;
}

/// Opens `path`, choosing the decoder by content (never by extension alone). `out_rate_hz` is
/// the rate an Ogg Opus source is decoded at (the encoder's, so no resampling is needed).
/// `progress` advances by the bytes of the file as they are consumed.
pub fn open(
    path: &Path,
    out_rate_hz: u32,
    progress: Option<ProgressBar>,
) -> Result<Box<dyn PcmSource>, DecodeError> {
    let file = File::open(path)?;
    let len = file.metadata().ok().map(|m| m.len());
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    probe(file, len, ext.as_deref(), out_rate_hz, progress)
}

/// The probe behind [`open`], over any seekable byte source (`len` is its size when known,
/// `ext` the lowercased file extension, a hint only): sniffs the first bytes and hands the
/// source to the Ogg Opus reader or to symphonia. Everything it reads is untrusted; a source it
/// cannot use is a [`DecodeError`], never a panic.
pub fn probe<R: Read + Seek + Send + Sync + 'static>(
    mut src: R,
    len: Option<u64>,
    ext: Option<&str>,
    out_rate_hz: u32,
    progress: Option<ProgressBar>,
) -> Result<Box<dyn PcmSource>, DecodeError> {
    let mut magic = [0u8; 36];
    let n = read_up_to(&mut src, &mut magic)?;
    src.seek(SeekFrom::Start(0))?;
    if n == 0 {
        return Err(DecodeError::Unsupported("the file is empty".into()));
    }
    // An Ogg page header is 27 bytes + lacing; OpusHead starts the first packet (RFC 7845 §3).
    if n >= 36 && &magic[0..4] == b"OggS" && magic[28..36] == *b"OpusHead" {
        let mut data = Vec::new();
        src.read_to_end(&mut data)?;
        if let Some(pb) = &progress {
            pb.inc(data.len() as u64);
        }
        return Ok(Box::new(OggOpusSource::new(data, out_rate_hz)?));
    }
    Ok(Box::new(SymphoniaSource::new(src, len, ext, progress)?))
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Milliseconds of `frames` at `rate_hz`. The frame count can be a container's claim (an Ogg
/// granule up to 2^63): computed wide and saturated, never wrapped (fuzzing finding).
fn ms(frames: u64, rate_hz: u32) -> u64 {
    let ms = u128::from(frames) * 1000 / u128::from(rate_hz.max(1));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// symphonia

/// A source that advances a progress bar as far as symphonia has read it contiguously from the
/// start (the probe's jump to the end for trailing tags is not progress).
struct CountingFile<R> {
    file: R,
    len: Option<u64>,
    progress: Option<ProgressBar>,
    pos: u64,
    reported: u64,
}

impl<R: Read> Read for CountingFile<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.pos;
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        if start <= self.reported && self.pos > self.reported {
            if let Some(pb) = &self.progress {
                pb.inc(self.pos - self.reported);
            }
            self.reported = self.pos;
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingFile<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(pos)?;
        Ok(self.pos)
    }
}

impl<R: Read + Seek + Send + Sync> MediaSource for CountingFile<R> {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        self.len
    }
}

struct SymphoniaSource {
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: SourceInfo,
    frames: u64,
    bad_in_a_row: u32,
    bad_total: u64,
    ended_early: Option<String>,
    done: bool,
}

/// Runs one call into symphonia; a panic inside it becomes [`DecodeError::Corrupt`] (see the
/// module doc). The caller must drop or stop using whatever symphonia state the call touched.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, DecodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        DecodeError::Corrupt(format!("the decoder failed on damaged data ({what})"))
    })
}

fn sym_err(e: SymError) -> DecodeError {
    match e {
        SymError::IoError(io) => DecodeError::Io(io),
        SymError::Unsupported(what) => DecodeError::Unsupported(what.to_owned()),
        SymError::DecodeError(what) => DecodeError::Corrupt(what.to_owned()),
        SymError::LimitError(what) => DecodeError::Corrupt(format!("limit reached: {what}")),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

impl SymphoniaSource {
    fn new<R: Read + Seek + Send + Sync + 'static>(
        file: R,
        len: Option<u64>,
        ext: Option<&str>,
        progress: Option<ProgressBar>,
    ) -> Result<Self, DecodeError> {
        let source = CountingFile {
            file,
            len,
            progress,
            pos: 0,
            reported: 0,
        };
        let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(e) = ext {
            hint.with_extension(e);
        }
        let reader = contained(|| {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        })?
        .map_err(|e| match e {
            // The probe reports "no format found" as Unsupported; an I/O error while probing
            // a tiny file means the same thing.
            SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                DecodeError::Unsupported("no known audio format found".into())
            }
            other => sym_err(other),
        })?;
        let track = reader
            .default_track(TrackType::Audio)
            .ok_or_else(|| DecodeError::Unsupported("no audio track".into()))?;
        let Some(CodecParameters::Audio(params)) = &track.codec_params else {
            return Err(DecodeError::Unsupported("no audio track".into()));
        };
        let track_id = track.id;
        let expected_frames = track.num_frames;
        let decoder = contained(|| {
            symphonia::default::get_codecs()
                .make_audio_decoder(params, &AudioDecoderOptions::default())
        })?
        .map_err(sym_err)?;
        let rate_hz = params
            .sample_rate
            .ok_or_else(|| DecodeError::Unsupported("the sample rate is not stated".into()))?;
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        if channels > MAX_CHANNELS {
            return Err(DecodeError::TooManyChannels { channels });
        }
        let format = format!(
            "{}/{}",
            reader.format_info().short_name,
            decoder.codec_info().short_name
        );
        Ok(SymphoniaSource {
            reader,
            decoder,
            track_id,
            info: SourceInfo {
                format,
                rate_hz,
                channels,
                expected_frames,
            },
            frames: 0,
            bad_in_a_row: 0,
            bad_total: 0,
            ended_early: None,
            done: false,
        })
    }

    /// The source stops here; an error before any audio was decoded is the file's error.
    fn stop(&mut self, why: DecodeError) -> Result<bool, DecodeError> {
        self.done = true;
        if self.frames == 0 {
            return Err(why);
        }
        self.ended_early = Some(why.to_string());
        Ok(false)
    }
}

impl PcmSource for SymphoniaSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<bool, DecodeError> {
        while !self.done {
            let next = match contained(|| self.reader.next_packet()) {
                Ok(next) => next,
                Err(panicked) => return self.stop(panicked),
            };
            let packet = match next {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                // A file cut short: what was read is kept (see the module doc).
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    break;
                }
                Err(SymError::ResetRequired) => {
                    return self.stop(DecodeError::Unsupported(
                        "a chained stream; only its first part was imported".into(),
                    ))
                }
                Err(e) => return self.stop(sym_err(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let decoded = match contained(|| self.decoder.decode(&packet)) {
                Ok(decoded) => decoded,
                Err(panicked) => return self.stop(panicked),
            };
            let problem = match decoded {
                Ok(buf) => {
                    self.bad_in_a_row = 0;
                    if buf.frames() == 0 {
                        continue;
                    }
                    let rate = buf.spec().rate();
                    let ch = buf.spec().channels().count();
                    if self.info.channels == 0 && ch <= MAX_CHANNELS {
                        self.info.channels = ch;
                    }
                    if rate != self.info.rate_hz {
                        DecodeError::Unsupported(format!(
                            "the sample rate changes mid-stream ({} → {rate} Hz)",
                            self.info.rate_hz
                        ))
                    } else if ch != self.info.channels {
                        DecodeError::Unsupported(format!(
                            "the channel count changes mid-stream ({} → {ch})",
                            self.info.channels
                        ))
                    } else {
                        buf.copy_to_vecs_planar::<f32>(planes);
                        self.frames += buf.frames() as u64;
                        return Ok(true);
                    }
                }
                Err(SymError::DecodeError(_)) => {
                    self.bad_total += 1;
                    self.bad_in_a_row += 1;
                    if self.bad_in_a_row < MAX_BAD_PACKETS_IN_A_ROW {
                        continue;
                    }
                    DecodeError::Corrupt(format!(
                        "{MAX_BAD_PACKETS_IN_A_ROW} packets in a row failed to decode"
                    ))
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    continue;
                }
                Err(e) => sym_err(e),
            };
            return self.stop(problem);
        }
        if self.frames == 0 {
            return Err(DecodeError::NoAudio);
        }
        Ok(false)
    }

    fn notes(&self) -> Vec<String> {
        let rate = self.info.rate_hz;
        let mut out = Vec::new();
        if let Some(expected) = self.info.expected_frames {
            // One codec frame of slack (an MP3 frame is 1152 samples; FLAC blocks up to 4608).
            if self.frames + 4608 < expected {
                out.push(format!(
                    "source truncated: the header promises {} ms, the file holds {} ms",
                    ms(expected, rate),
                    ms(self.frames, rate)
                ));
            }
        }
        if let Some(why) = &self.ended_early {
            out.push(format!(
                "decoding stopped after {} ms: {why}",
                ms(self.frames, rate)
            ));
        }
        if self.bad_total > 0 {
            out.push(format!(
                "{} damaged packet(s) skipped (their audio is missing)",
                self.bad_total
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Ogg Opus (callrec's own reader + libopus)

struct OggOpusSource {
    packets: std::vec::IntoIter<Vec<u8>>,
    decoder: MsDecoder,
    info: SourceInfo,
    /// Decoded frames still to drop at the start (pre-skip, at the output rate).
    skip: usize,
    /// Playable frames left to hand out (end trim).
    remaining: u64,
    buf: Vec<f32>,
    frames: u64,
    has_eos: bool,
    trailing_garbage: usize,
}

impl OggOpusSource {
    /// `data` is the whole file; only its packets are kept.
    fn new(data: Vec<u8>, rate_hz: u32) -> Result<Self, DecodeError> {
        let info = ogg_read::inspect(&data).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        let head = &info.head;
        let channels = usize::from(head.channels);
        if channels == 0 {
            return Err(DecodeError::Corrupt("OpusHead declares 0 channels".into()));
        }
        if channels > MAX_CHANNELS {
            return Err(DecodeError::TooManyChannels { channels });
        }
        let decoder = MsDecoder::new(rate_hz, head.streams, head.coupled, &head.mapping)
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        let scale = f64::from(rate_hz) / f64::from(GRANULE_RATE_HZ);
        let skip = (f64::from(head.pre_skip) * scale).round() as usize;
        let remaining = (info.samples_48k as f64 * scale).round() as u64;
        // Packets 0 and 1 are OpusHead and OpusTags.
        let packets: Vec<Vec<u8>> = ogg_read::packets(&data, &info.pages)
            .into_iter()
            .skip(2)
            .collect();
        let has_eos = info.has_eos();
        let trailing_garbage = data.len().saturating_sub(info.valid_bytes);
        Ok(OggOpusSource {
            packets: packets.into_iter(),
            decoder,
            info: SourceInfo {
                format: "ogg/opus".into(),
                rate_hz,
                channels,
                expected_frames: None,
            },
            skip,
            remaining,
            buf: vec![0f32; rate_hz as usize * 120 / 1000 * channels],
            frames: 0,
            has_eos,
            trailing_garbage,
        })
    }
}

impl PcmSource for OggOpusSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_block(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<bool, DecodeError> {
        let ch = self.info.channels;
        while self.remaining > 0 {
            let Some(packet) = self.packets.next() else {
                break;
            };
            let n = self
                .decoder
                .decode(&packet, &mut self.buf, ch)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            let drop = self.skip.min(n);
            self.skip -= drop;
            let keep = ((n - drop) as u64).min(self.remaining) as usize;
            if keep == 0 {
                continue;
            }
            self.remaining -= keep as u64;
            planes.resize(ch, Vec::new());
            for (c, plane) in planes.iter_mut().enumerate() {
                plane.clear();
                plane.extend(
                    self.buf[drop * ch..(drop + keep) * ch]
                        .iter()
                        .skip(c)
                        .step_by(ch),
                );
            }
            self.frames += keep as u64;
            return Ok(true);
        }
        if self.frames == 0 {
            return Err(DecodeError::NoAudio);
        }
        Ok(false)
    }

    fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.has_eos {
            out.push(format!(
                "source truncated: no end-of-stream page; imported the {} ms of intact pages",
                ms(self.frames, self.info.rate_hz)
            ));
        }
        if self.trailing_garbage > 0 {
            out.push(format!(
                "{} byte(s) after the last intact Ogg page ignored",
                self.trailing_garbage
            ));
        }
        out
    }
}
