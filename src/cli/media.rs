//! Audio in without a seat: `callrec import` (legacy recordings into the store), `callrec encode`
//! (one WAV through the recorder's pipeline) and `callrec devices` (what a seat could capture).

use super::cli_actor;
use anyhow::bail;
use anyhow::Context;
use callrec::config::{Config, EncoderConfig, QuietFramesMode};
use callrec::import::{sidecar::ColumnMap, ImportRequest};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// CSV with one row per recording (column names below).
    #[arg(long)]
    sidecar: Option<PathBuf>,
    #[arg(long, value_name = "COLUMN")]
    col_file: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_agent: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_number: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_started: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_direction: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_campaign: Option<String>,
    #[arg(long, value_name = "COLUMN")]
    col_external_id: Option<String>,
    /// Layout of the sidecar's start times (chrono/strptime, UTC), e.g. "%d/%m/%Y %H:%M".
    #[arg(long)]
    time_format: Option<String>,
    /// In stereo sources, the agent's channel (0 or 1); the other is the customer.
    #[arg(long, default_value_t = 0)]
    agent_channel: u8,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Check and decode everything, write nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct EncodeArgs {
    input: PathBuf,
    output: PathBuf,
    /// Override encoder.rate_hz.
    #[arg(long)]
    rate_hz: Option<u32>,
    /// Override encoder.bitrate_bps (per channel).
    #[arg(long)]
    bitrate_bps: Option<u32>,
    /// Override encoder.complexity.
    #[arg(long)]
    complexity: Option<u32>,
    /// Override encoder.quiet_frames: `dtx` (quiet frames skip the encoder), `low`
    /// (`--quiet-complexity` for them) or `encode`.
    #[arg(long, value_parser = ["dtx", "low", "encode"])]
    quiet_frames: Option<String>,
    /// Override encoder.quiet_complexity: the complexity of quiet frames with `--quiet-frames low`
    #[arg(long)]
    quiet_complexity: Option<u32>,
    #[arg(long)]
    json: bool,
}

pub fn import(cfg: &Config, a: ImportArgs) -> anyhow::Result<()> {
    let req = ImportRequest {
        paths: a.paths,
        sidecar: a.sidecar,
        columns: ColumnMap {
            file: a.col_file,
            agent: a.col_agent,
            number: a.col_number,
            started: a.col_started,
            direction: a.col_direction,
            campaign: a.col_campaign,
            external_id: a.col_external_id,
        },
        time_format: a.time_format,
        agent_channel: a.agent_channel,
        jobs: a.jobs,
        dry_run: a.dry_run,
        actor: cli_actor(),
        ..Default::default()
    };
    let summary = callrec::import::run(cfg, &req, !a.json)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    if summary.has_failures() {
        bail!(
            "{} file(s) could not be imported (listed above); the others were",
            summary.failed
        );
    }
    Ok(())
}

/// `cfg` is the box's config when there is one; otherwise the seat defaults encode.
pub fn encode(cfg: Option<Config>, a: EncodeArgs) -> anyhow::Result<()> {
    let mut enc: EncoderConfig = cfg.map(|c| c.encoder).unwrap_or_default();
    enc.rate_hz = a.rate_hz.unwrap_or(enc.rate_hz);
    enc.bitrate_bps = a.bitrate_bps.unwrap_or(enc.bitrate_bps);
    enc.complexity = a.complexity.unwrap_or(enc.complexity);
    enc.quiet_complexity = a.quiet_complexity.unwrap_or(enc.quiet_complexity);
    anyhow::ensure!(
        enc.quiet_complexity <= enc.complexity,
        "--quiet-complexity {} is above the complexity {}: give 0..={}",
        enc.quiet_complexity,
        enc.complexity,
        enc.complexity
    );
    match a.quiet_frames.as_deref() {
        Some("dtx") => enc.quiet_frames = QuietFramesMode::Dtx,
        Some("low") => enc.quiet_frames = QuietFramesMode::Low,
        Some(_) => enc.quiet_frames = QuietFramesMode::Encode,
        None => {}
    }
    let r = callrec::encode::encode_file(&a.input, &a.output, &enc)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{}: {} ms, {} bytes, sha256 {}",
            a.output.display(),
            r.duration_ms,
            r.bytes,
            r.sha256
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct DevicesArgs {
    #[arg(long)]
    json: bool,
    /// Print [[device]]/[[seat]] sections for what is plugged in (to paste below [box] and
    /// [storage]), grouped by USB port and channel pairs.
    #[arg(long, conflicts_with_all = ["json", "listen"])]
    propose: bool,
    /// With --propose: print the udev rules that pin the proposed card names instead.
    #[arg(long, requires = "propose")]
    udev: bool,
    /// A device's own channel count where it cannot be read (a converting ALSA PCM):
    /// `--channels alsa:desk=16`; with --listen, just the count.
    #[arg(long)]
    channels: Vec<String>,
    /// Live levels per channel of DEVICE (a cpal id, e.g. alsa:hw:CARD=desk01,DEV=0), about 5
    /// times a second, until Ctrl-C or --seconds.
    #[arg(long, value_name = "DEVICE", conflicts_with = "json")]
    listen: Option<String>,
    /// With --listen: stop after this many seconds.
    #[arg(long, requires = "listen")]
    seconds: Option<f64>,
    /// With --listen: capture rate.
    #[arg(long, default_value_t = 48_000, requires = "listen")]
    rate_hz: u32,
}

pub fn devices(a: DevicesArgs) -> anyhow::Result<()> {
    if let Some(dev) = &a.listen {
        return listen(dev, &a);
    }
    if a.propose {
        let mut given = Vec::new();
        for c in &a.channels {
            let (id, n) = c
                .rsplit_once('=')
                .and_then(|(id, n)| Some((id.to_owned(), n.parse::<u16>().ok()?)))
                .with_context(|| {
                    format!("--channels {c:?}: write it as DEVICE=N, e.g. alsa:desk=16")
                })?;
            given.push((id, n));
        }
        let found = callrec::capture::device::survey(&given)?;
        let p = callrec::capture::survey::propose(&found);
        print!("{}", if a.udev { p.udev_rules } else { p.config });
        return Ok(());
    }
    let list = callrec::capture::device::list_devices()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no capture devices found (is the ALSA config right? see hw/README.md)");
    }
    for d in list {
        println!("{}  {}", d.id, d.description);
        for c in d.configs {
            println!("    {c}");
        }
    }
    Ok(())
}

/// Refresh period of the level meter (~5 per second).
const LISTEN_EVERY_MS: u64 = 200;
/// Width of a level bar: -60 dBFS (empty) to 0 dBFS (full), 1 character per 1.5 dB.
const BAR_CHARS: usize = 40;

/// `callrec devices --listen`: per channel, RMS dBFS over the last 200 ms and a bar, so a
/// technician tapping a headset sees which channel moves.
fn listen(dev: &str, a: &DevicesArgs) -> anyhow::Result<()> {
    let channels = match a.channels.as_slice() {
        [] => 2,
        [n] => n
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=callrec::config::MAX_DEVICE_CHANNELS).contains(n))
            .with_context(|| format!("--channels {n:?}: a channel count 1..=64"))?,
        _ => anyhow::bail!("--listen takes one --channels N"),
    };
    let mut l = callrec::capture::device::listen(dev, channels, a.rate_hz)?;
    let stop = callrec::daemon::stop_on_signals()?;
    let t0 = std::time::Instant::now();
    let n = usize::from(channels);
    let mut per_channel: Vec<Vec<f32>> = vec![Vec::new(); n];
    println!(
        "listening to {dev}: {channels} channel(s) at {} Hz (Ctrl-C ends)",
        a.rate_hz
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && a.seconds.is_none_or(|s| t0.elapsed().as_secs_f64() < s)
    {
        std::thread::sleep(std::time::Duration::from_millis(LISTEN_EVERY_MS));
        for c in &mut per_channel {
            c.clear();
        }
        let avail = l.samples.slots() / n * n;
        if let Ok(chunk) = l.samples.read_chunk(avail) {
            let (x, y) = chunk.as_slices();
            for (i, v) in x.iter().chain(y).enumerate() {
                per_channel[i % n].push(*v);
            }
            chunk.commit_all();
        }
        let down = l
            .shared
            .error_flag
            .load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "t={:.1}s{}",
            t0.elapsed().as_secs_f64(),
            if down {
                "  (device reported an error)"
            } else {
                ""
            }
        );
        for (c, x) in per_channel.iter().enumerate() {
            let db = callrec::dsp::level::rms_dbfs(x).max(-99.0);
            let fill = (((db + 60.0) / 60.0).clamp(0.0, 1.0) * BAR_CHARS as f32) as usize;
            println!(
                "  ch {c:>2} (input {:>2}) {db:>6.1} dBFS |{}{}|",
                c + 1,
                "#".repeat(fill),
                " ".repeat(BAR_CHARS - fill)
            );
        }
    }
    drop(l.stream);
    Ok(())
}
