//! Capture devices through cpal's ALSA host: listing, opening with an explicit `StreamConfig`
//! and `BufferSize::Fixed`, and a supervisor thread that notices errors and stalls and reopens
//! devices without restarting the daemon (unplugged USB headset, line adapter reset).
//!
//! One device may feed many seats (a multichannel interface named by a `[[device]]`): it is
//! opened once, and its callback fans each buffer out into every seat's ring ([`Fanout`]). A
//! fault on the device (error, stall, unplug) marks every seat input on it down at once.
//!
//! cpal streams are owned by the supervisor thread only. The data callback does nothing but
//! `Fanout::push`; the error callback only raises atomic flags.

use super::ring::{Fanout, InputShared, Tap};
use crate::config::DeviceConfig;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No frames for this long means the device has stalled or gone.
pub const STALL_MS: u64 = 500;
/// How often a down device is retried.
const REOPEN_EVERY_MS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("device id {id:?} is malformed ({message}); ids look like \"alsa:hw:CARD=seat01,DEV=0\" (see `callrec devices`)")]
    BadId { id: String, message: String },
    #[error(
        "capture device {0:?} not found; is it plugged in? `callrec devices` lists what is present"
    )]
    NotFound(String),
    #[error("capture device {id:?} does not offer {channels} channel(s) at {rate_hz} Hz; it offers: {offers}")]
    Unsupported {
        id: String,
        channels: u16,
        rate_hz: u32,
        offers: String,
    },
    #[error("capture device {id:?}: {message}")]
    Device { id: String, message: String },
}

fn dev_err(id: &str, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Device {
        id: id.to_owned(),
        message: e.to_string(),
    }
}

/// One line per input device: id, description and what it supports.
pub fn list_devices() -> Result<Vec<DeviceInfo>, CaptureError> {
    let host = cpal::default_host();
    let devices = host.input_devices().map_err(|e| dev_err("(host)", e))?;
    let mut out = Vec::new();
    for d in devices {
        let Ok(id) = d.id() else { continue };
        let description = d.description().map(|x| x.to_string()).unwrap_or_default();
        let configs = d
            .supported_input_configs()
            .map(|c| summarize(c.collect()))
            .unwrap_or_else(|e| vec![format!("(cannot query: {e})")]);
        out.push(DeviceInfo {
            id: id.to_string(),
            description,
            configs,
        });
    }
    Ok(out)
}

#[derive(Debug, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub description: String,
    pub configs: Vec<String>,
}

/// Collapses cpal's one-entry-per-(channels, format) list into "channels 1-64 @ 4000-192000 Hz: I16 F32".
fn summarize(ranges: Vec<cpal::SupportedStreamConfigRange>) -> Vec<String> {
    let mut by_rate: BTreeMap<(u32, u32), (Vec<u16>, Vec<String>)> = BTreeMap::new();
    for r in ranges {
        let e = by_rate
            .entry((r.min_sample_rate(), r.max_sample_rate()))
            .or_default();
        if !e.0.contains(&r.channels()) {
            e.0.push(r.channels());
        }
        let f = format!("{:?}", r.sample_format());
        if !e.1.contains(&f) {
            e.1.push(f);
        }
    }
    by_rate
        .into_iter()
        .map(|((lo, hi), (mut ch, fmts))| {
            ch.sort_unstable();
            let chs = match (ch.first(), ch.last()) {
                (Some(a), Some(b)) if a != b && ch.len() == usize::from(b - a + 1) => {
                    format!("{a}-{b}")
                }
                _ => ch.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
            };
            let hi = if hi > 768_000 {
                "any".to_string()
            } else {
                format!("{hi}")
            };
            format!("channels {chs} @ {lo}-{hi} Hz: {}", fmts.join(" "))
        })
        .collect()
}

fn find_device(id: &str) -> Result<cpal::Device, CaptureError> {
    let parsed = cpal::DeviceId::from_str(id).map_err(|e| CaptureError::BadId {
        id: id.into(),
        message: e.to_string(),
    })?;
    let host = cpal::host_from_id(parsed.host()).map_err(|e| dev_err(id, e))?;
    host.device_by_id(&parsed)
        .ok_or_else(|| CaptureError::NotFound(id.into()))
}

/// Picks the best sample format the device offers for this channel count and rate.
fn pick_format(
    dev: &cpal::Device,
    id: &str,
    cfg: &DeviceConfig,
) -> Result<SampleFormat, CaptureError> {
    let ranges: Vec<_> = dev
        .supported_input_configs()
        .map_err(|e| dev_err(id, e))?
        .collect();
    let fits = |f: SampleFormat| {
        ranges.iter().any(|r| {
            r.channels() == cfg.channels
                && r.sample_format() == f
                && (r.min_sample_rate()..=r.max_sample_rate()).contains(&cfg.rate_hz)
        })
    };
    [SampleFormat::I16, SampleFormat::F32, SampleFormat::I32]
        .into_iter()
        .find(|f| fits(*f))
        .ok_or_else(|| CaptureError::Unsupported {
            id: id.into(),
            channels: cfg.channels,
            rate_hz: cfg.rate_hz,
            offers: summarize(ranges).join("; "),
        })
}

/// Whether the device offers `rate_hz` with `channels` channels in a sample format the
/// recorder takes (asks only: opens no stream).
pub fn offers_rate(id: &str, channels: u16, rate_hz: u32) -> Result<bool, CaptureError> {
    let dev = find_device(id)?;
    let probe = DeviceConfig {
        name: String::new(),
        pcm: id.into(),
        channels,
        rate_hz,
        buffer_frames: rate_hz / 50,
    };
    match pick_format(&dev, id, &probe) {
        Ok(_) => Ok(true),
        Err(CaptureError::Unsupported { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens and starts a capture stream that fans out into a fresh ring per tap; returns the
/// stream. Each tap's new consumer is left in its `InputShared` for the worker to take.
pub fn open(cfg: &DeviceConfig, taps: &[Tap]) -> Result<cpal::Stream, CaptureError> {
    let id = cfg.pcm.as_str();
    let dev = find_device(id)?;
    let format = pick_format(&dev, id, cfg)?;
    let (fanout, consumers) = Fanout::new(cfg.rate_hz, usize::from(cfg.channels), taps);
    let stream_cfg = cpal::StreamConfig {
        channels: cfg.channels,
        sample_rate: cfg.rate_hz,
        buffer_size: cpal::BufferSize::Fixed(cfg.buffer_frames),
    };
    let flags: Vec<Arc<InputShared>> = taps.iter().map(|t| t.shared.clone()).collect();
    let stream = match format {
        SampleFormat::I16 => build::<i16>(&dev, stream_cfg, fanout, flags),
        SampleFormat::I32 => build::<i32>(&dev, stream_cfg, fanout, flags),
        _ => build::<f32>(&dev, stream_cfg, fanout, flags),
    }
    .map_err(|e| dev_err(id, e))?;
    stream.play().map_err(|e| dev_err(id, e))?;
    for (tap, consumer) in taps.iter().zip(consumers) {
        if let Ok(mut slot) = tap.shared.new_consumer.lock() {
            *slot = Some(consumer);
        }
    }
    Ok(stream)
}

fn build<T>(
    dev: &cpal::Device,
    cfg: cpal::StreamConfig,
    mut fanout: Fanout,
    flags: Vec<Arc<InputShared>>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    dev.build_input_stream::<T, _, _>(
        cfg,
        move |data: &[T], _info| fanout.push(data, f32::from_sample_),
        // Error callback: raise flags only; the supervisor decides what to do.
        move |_e| {
            for f in &flags {
                f.error_flag.store(true, Ordering::Relaxed);
            }
        },
        Some(Duration::from_secs(5)),
    )
}

/// Supervises device inputs: opens them, watches for errors and stalls, reopens when they return.
pub struct Supervisor {
    inputs: Vec<Supervised>,
}

struct Supervised {
    label: String,
    cfg: DeviceConfig,
    /// Every seat input this device feeds; all share its fate.
    taps: Vec<Tap>,
    stream: Option<cpal::Stream>,
    last_frames: u64,
    last_change: Instant,
    next_try: Instant,
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor { inputs: Vec::new() }
    }

    /// Registers a device and the seat inputs it feeds (at least one); the first open happens
    /// on the supervisor thread.
    pub fn add(&mut self, label: String, cfg: DeviceConfig, taps: Vec<Tap>) {
        for t in &taps {
            t.shared.down.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        self.inputs.push(Supervised {
            label,
            cfg,
            taps,
            stream: None,
            last_frames: 0,
            last_change: now,
            next_try: now,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Runs until `stop`; opens every device once before signalling `ready`.
    pub fn run(mut self, stop: Arc<AtomicBool>, ready: std::sync::mpsc::Sender<()>) {
        self.tick();
        let _ = ready.send(());
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            self.tick();
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for s in &mut self.inputs {
            // Every tap of a device counts the same frames: the first one speaks for all.
            let Some(first) = s.taps.first() else {
                continue;
            };
            let frames = first.shared.frames_in.load(Ordering::Relaxed);
            if frames != s.last_frames {
                s.last_frames = frames;
                s.last_change = now;
                let mut was_down = false;
                if s.stream.is_some() {
                    for t in &s.taps {
                        was_down |= t.shared.down.swap(false, Ordering::Relaxed);
                    }
                }
                if was_down {
                    tracing::info!(input = %s.label, seats = s.taps.len(), "capture device delivering again");
                }
            }
            let stalled = s.stream.is_some()
                && now.duration_since(s.last_change) > Duration::from_millis(STALL_MS);
            let mut errored = false;
            for t in &s.taps {
                errored |= t.shared.error_flag.swap(false, Ordering::Relaxed);
            }
            if (stalled || errored) && s.stream.is_some() {
                let why = if errored {
                    "device reported an error"
                } else {
                    "no audio for 500 ms"
                };
                tracing::warn!(input = %s.label, seats = s.taps.len(), "capture device down: {why}; will reopen");
                mark_down(&s.taps, why);
                // Closing a stalled stream can block until the device wakes up (a read in
                // progress); close it on its own thread so other seats stay supervised.
                if let Some(stream) = s.stream.take() {
                    let _ = std::thread::Builder::new()
                        .name("close-device".into())
                        .spawn(move || drop(stream));
                }
                s.next_try = now + Duration::from_millis(REOPEN_EVERY_MS);
            }
            if s.stream.is_none() && now >= s.next_try {
                match open(&s.cfg, &s.taps) {
                    Ok(stream) => {
                        tracing::info!(input = %s.label, seats = s.taps.len(), "capture device open");
                        s.stream = Some(stream);
                        s.last_change = now;
                    }
                    Err(e) => {
                        for t in &s.taps {
                            t.shared.set_error(e.to_string());
                        }
                        s.next_try = now + Duration::from_millis(REOPEN_EVERY_MS);
                        tracing::warn!(input = %s.label, "cannot open capture device: {e}");
                    }
                }
            }
        }
    }
}

/// A device fault takes down every seat input on the device (each fills its gap with silence).
fn mark_down(taps: &[Tap], why: &str) {
    for t in taps {
        t.shared.set_error(why.into());
        t.shared.down.store(true, Ordering::Relaxed);
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

/// Every capture device with what `callrec devices --propose` needs: its native channel
/// count (from `channels`, `ID=N` pairs the technician gave, for converting PCMs), a rate
/// (48 kHz when offered) and, for a card, where it is plugged in.
pub fn survey(channels: &[(String, u16)]) -> Result<Vec<super::survey::Found>, CaptureError> {
    let host = cpal::default_host();
    let devices = host.input_devices().map_err(|e| dev_err("(host)", e))?;
    let mut out = Vec::new();
    for d in devices {
        let Ok(id) = d.id() else { continue };
        let id = id.to_string();
        let ranges: Vec<_> = d
            .supported_input_configs()
            .map(|c| c.collect())
            .unwrap_or_default();
        let mut counts: Vec<u16> = ranges.iter().map(|r| r.channels()).collect();
        counts.sort_unstable();
        counts.dedup();
        // A converting PCM (ALSA plug) offers every count up to dozens: its own is unknown.
        let native = match counts.last() {
            Some(&max) if counts.len() < 8 => Some(max),
            _ => None,
        };
        let given = channels.iter().find(|(i, _)| *i == id).map(|(_, n)| *n);
        let offers = |hz: u32| {
            ranges
                .iter()
                .any(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&hz))
        };
        let rate_hz = [48_000, 44_100, 32_000, 16_000]
            .into_iter()
            .find(|hz| offers(*hz))
            .or_else(|| ranges.iter().map(|r| r.max_sample_rate()).max())
            .unwrap_or(48_000);
        let card = super::survey::card_of(&id)
            .and_then(|c| super::survey::card_info(std::path::Path::new("/"), c));
        out.push(super::survey::Found {
            description: d.description().map(|x| x.to_string()).unwrap_or_default(),
            channels: given.or(native),
            rate_hz,
            card,
            id,
        });
    }
    Ok(out)
}

/// A device opened for `callrec devices --listen`: all its channels into one ring.
pub struct Listening {
    /// Kept open while listening; dropped to close the device.
    pub stream: cpal::Stream,
    pub samples: rtrb::Consumer<f32>,
    pub shared: Arc<InputShared>,
}

/// Opens `pcm` with `channels` channels at `rate_hz` for a live level meter (the recorder must
/// not hold it: `hw:` devices open once).
pub fn listen(pcm: &str, channels: u16, rate_hz: u32) -> Result<Listening, CaptureError> {
    let cfg = DeviceConfig {
        name: "listen".into(),
        pcm: pcm.into(),
        channels,
        rate_hz,
        buffer_frames: rate_hz / 50,
    };
    let shared = Arc::new(InputShared::default());
    let tap = Tap {
        shared: shared.clone(),
        map: (0..usize::from(channels)).collect(),
    };
    let stream = open(&cfg, std::slice::from_ref(&tap))?;
    let samples = shared
        .new_consumer
        .lock()
        .ok()
        .and_then(|mut s| s.take())
        .ok_or_else(|| dev_err(pcm, "the capture ring was not handed over"))?;
    Ok(Listening {
        stream,
        samples,
        shared,
    })
}
