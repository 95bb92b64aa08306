//! The `callrec` command line: parse arguments, then call into the library. Errors reach the user
//! as one line saying what went wrong and what to do; exit status is non-zero on any failure.

use anyhow::{bail, Context};
use callrec::config::{Config, EncoderConfig, DEFAULT_CONFIG_PATH};
use callrec::record::control::{self, Request};
use callrec::store::{self, CallFilter, CallMeta};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "callrec",
    version,
    about = "Call recorder: seats -> Ogg Opus -> SQLite"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "CALLREC_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the recorder daemon (recovers interrupted calls first).
    Record,
    /// List capture devices with their supported channels, rates and formats.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Find and inspect recorded calls.
    Calls {
        #[command(subcommand)]
        cmd: CallsCmd,
    },
    /// Drive a running recorder through its control socket.
    Call {
        #[command(subcommand)]
        cmd: CallCmd,
    },
    /// Encode a WAV file (ch 0 agent, ch 1 customer) through the recorder's pipeline.
    Encode {
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
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the config; names the offending key on error.
    Check,
}

#[derive(Subcommand)]
enum CallsCmd {
    /// List calls, newest first.
    List {
        #[arg(long)]
        seat: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// recording | complete | interrupted
        #[arg(long)]
        status: Option<String>,
        /// Start at or after (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Start before (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one call with its pause/gap intervals and tags.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct MetaArgs {
    #[arg(long)]
    agent: Option<String>,
    /// inbound | outbound
    #[arg(long)]
    direction: Option<String>,
    #[arg(long)]
    number: Option<String>,
    #[arg(long)]
    campaign: Option<String>,
    #[arg(long)]
    external_id: Option<String>,
}

impl MetaArgs {
    fn meta(self) -> CallMeta {
        CallMeta {
            agent: self.agent,
            direction: self.direction,
            remote_number: self.number,
            campaign: self.campaign,
            external_id: self.external_id,
        }
    }
}

#[derive(Subcommand)]
enum CallCmd {
    /// Start recording a call on a seat.
    Start {
        #[arg(long)]
        seat: String,
        #[command(flatten)]
        meta: MetaArgs,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Stop the seat's call.
    Stop {
        #[arg(long)]
        seat: String,
    },
    /// PCI pause: audio from now on is replaced by silence.
    Pause {
        #[arg(long)]
        seat: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a PCI pause.
    Resume {
        #[arg(long)]
        seat: String,
    },
    /// Add tags or metadata to the seat's current call.
    Tag {
        #[arg(long)]
        seat: String,
        tags: Vec<String>,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Per-seat state, levels, dropped frames and lag.
    Status {
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("callrec: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Record => callrec::record::run(Config::load(&cli.config)?),
        Cmd::Devices { json } => devices(json),
        Cmd::Config {
            cmd: ConfigCmd::Check,
        } => {
            let c = Config::load(&cli.config)?;
            println!(
                "{}: ok ({} seat(s), storage {})",
                cli.config.display(),
                c.seats.len(),
                c.storage.dir.display()
            );
            Ok(())
        }
        Cmd::Calls { cmd } => calls(&Config::load(&cli.config)?, cmd),
        Cmd::Call { cmd } => call(&Config::load(&cli.config)?, cmd),
        Cmd::Encode {
            input,
            output,
            rate_hz,
            bitrate_bps,
            complexity,
            json,
        } => {
            let mut enc = encoder_defaults(&cli.config)?;
            enc.rate_hz = rate_hz.unwrap_or(enc.rate_hz);
            enc.bitrate_bps = bitrate_bps.unwrap_or(enc.bitrate_bps);
            enc.complexity = complexity.unwrap_or(enc.complexity);
            let r = callrec::encode::encode_file(&input, &output, &enc)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: {} ms, {} bytes, sha256 {}",
                    output.display(),
                    r.duration_ms,
                    r.bytes,
                    r.sha256
                );
            }
            Ok(())
        }
    }
}

/// The config's encoder section when a config exists, otherwise the seat defaults.
fn encoder_defaults(path: &Path) -> anyhow::Result<EncoderConfig> {
    if path.exists() {
        Ok(Config::load(path)?.encoder)
    } else {
        Ok(EncoderConfig::default())
    }
}

fn devices(json: bool) -> anyhow::Result<()> {
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

fn calls(cfg: &Config, cmd: CallsCmd) -> anyhow::Result<()> {
    let db = cfg.db_path();
    if !db.exists() {
        bail!(
            "no index at {} yet: start `callrec record` with this config first",
            db.display()
        );
    }
    let conn = store::open_ro(&db)?;
    match cmd {
        CallsCmd::List {
            seat,
            agent,
            status,
            since,
            until,
            limit,
            json,
        } => {
            let bound = |s: Option<String>, name: &str| -> anyhow::Result<Option<String>> {
                s.map(|v| {
                    callrec::clock::parse_bound(&v).with_context(|| {
                        format!("--{name} {v:?}: use RFC 3339 (2026-11-27T10:00:00Z) or YYYY-MM-DD")
                    })
                })
                .transpose()
            };
            if let Some(s) = &status {
                if !["recording", "complete", "interrupted"].contains(&s.as_str()) {
                    bail!("--status {s:?}: use recording, complete or interrupted");
                }
            }
            let f = CallFilter {
                seat,
                agent,
                status,
                since_utc: bound(since, "since")?,
                until_utc: bound(until, "until")?,
                limit: Some(limit),
            };
            let rows = store::list_calls(&conn, &f)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:>6}  {:<24}  {:<10}  {:<11}  {:>10}  {:<12}  file",
                "id", "started (UTC)", "seat", "status", "duration", "agent"
            );
            for c in rows {
                println!(
                    "{:>6}  {:<24}  {:<10}  {:<11}  {:>9.1}s  {:<12}  {}",
                    c.id,
                    c.started_at_utc,
                    c.seat_id,
                    c.status,
                    c.duration_ms as f64 / 1000.0,
                    c.meta.agent.unwrap_or_default(),
                    cfg.storage.dir.join(&c.rel_path).display()
                );
            }
            Ok(())
        }
        CallsCmd::Show { id, json } => {
            let c = store::get_call(&conn, id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&c)?.trim_matches(['{', '}', '\n'])
                );
                println!("  file: {}", cfg.storage.dir.join(&c.rel_path).display());
            }
            Ok(())
        }
    }
}

fn call(cfg: &Config, cmd: CallCmd) -> anyhow::Result<()> {
    let (req, json) = match cmd {
        CallCmd::Start { seat, meta, tags } => (
            Request::Start {
                seat,
                meta: meta.meta(),
                tags,
            },
            false,
        ),
        CallCmd::Stop { seat } => (Request::Stop { seat }, false),
        CallCmd::Pause { seat, by, reason } => (Request::Pause { seat, by, reason }, false),
        CallCmd::Resume { seat } => (Request::Resume { seat }, false),
        CallCmd::Tag { seat, tags, meta } => (
            Request::Tag {
                seat,
                tags,
                meta: meta.meta(),
            },
            false,
        ),
        CallCmd::Status { json } => (Request::Status, json),
    };
    let resp = control::request(&cfg.control_socket(), &req)?;
    if !resp.ok {
        bail!(
            "{}",
            resp.error
                .unwrap_or_else(|| "the recorder refused the request".into())
        );
    }
    if matches!(req, Request::Status) {
        if json {
            println!("{}", serde_json::to_string_pretty(&resp.seats)?);
        } else {
            for s in resp.seats {
                println!(
                    "{:<10} {:<10} {:<9} call {:<6} {:>7.1}s  agent {:>6.1} dBFS  customer {:>6.1} dBFS  dropped {}  lag {} ms (max {}){}",
                    s.seat,
                    s.mode,
                    s.state,
                    s.call_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    s.call_duration_ms as f64 / 1000.0,
                    s.agent_dbfs,
                    s.customer_dbfs,
                    s.dropped_frames,
                    s.lag_ms,
                    s.max_lag_ms,
                    if s.inputs_down.is_empty() { String::new() } else { format!("  DOWN: {}", s.inputs_down.join(", ")) }
                );
            }
        }
    } else if let Some(id) = resp.call_id {
        println!("{id}");
    }
    Ok(())
}
