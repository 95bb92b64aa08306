//! Audio in without a seat: `callrec import` (legacy recordings into the store), `callrec encode`
//! (one WAV through the recorder's pipeline) and `callrec devices` (what a seat could capture).

use super::cli_actor;
use anyhow::bail;
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
    /// (complexity 0 for them) or `encode`.
    #[arg(long, value_parser = ["dtx", "low", "encode"])]
    quiet_frames: Option<String>,
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

pub fn devices(json: bool) -> anyhow::Result<()> {
    let list = callrec::capture::device::list_devices()?;
    if json {
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
