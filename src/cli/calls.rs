//! `callrec calls list|show` (read the index) and `callrec call start|stop|pause|…` (drive a
//! running recorder through its control socket, the same requests the CTI sends).

use super::open_existing;
use anyhow::{bail, Context};
use callrec::config::Config;
use callrec::record::control::{self, Request};
use callrec::store::{self, CallFilter, CallMeta, CallStatus};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CallsCmd {
    /// List calls, newest first.
    List {
        #[arg(long)]
        seat: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// recording | complete | interrupted | garbage | deleted
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
pub struct MetaArgs {
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
pub enum CallCmd {
    /// Start recording a call on a seat.
    Start {
        #[arg(long)]
        seat: String,
        #[command(flatten)]
        meta: MetaArgs,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Stop the seat's call, optionally recording its outcome (a code of its campaign's list,
    /// `callrec outcomes list --campaign C`).
    Stop {
        #[arg(long)]
        seat: String,
        #[arg(long)]
        outcome: Option<String>,
        /// The outcome's amount (a sale's value), for outcomes that take one.
        #[arg(long, requires = "outcome")]
        amount: Option<f64>,
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
    /// CTI hold: the customer waits. Marks time on the call (shown on the waveform, counted as
    /// hold); the audio is recorded as ever.
    Hold {
        #[arg(long)]
        seat: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a hold.
    Unhold {
        #[arg(long)]
        seat: String,
    },
    /// An agent sits down at a seat: later calls without --agent carry this agent; logged-in
    /// time starts.
    Login {
        #[arg(long)]
        seat: String,
        #[arg(long)]
        agent: String,
    },
    /// The seat's agent leaves (ends logged-in time and any wrap-up).
    Logout {
        #[arg(long)]
        seat: String,
    },
    /// After a call: after-call work on the seat's last call begins.
    Wrapup {
        #[arg(long)]
        seat: String,
    },
    /// The agent is ready for the next call: ends the wrap-up.
    Ready {
        #[arg(long)]
        seat: String,
    },
    /// Per-seat state, levels, dropped frames and lag.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn calls(cfg: &Config, cmd: CallsCmd) -> anyhow::Result<()> {
    let conn = open_existing(cfg, " yet: start `callrec record` with this config first")?;
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
            let status = status
                .map(|s| {
                    CallStatus::parse(&s)
                        .with_context(|| format!("--status {s:?}"))
                        .map(|_| s)
                })
                .transpose()?;
            let f = CallFilter {
                seat,
                agent,
                status,
                since_utc: bound(since, "since")?,
                until_utc: bound(until, "until")?,
                limit: Some(limit),
            };
            print_list(cfg, store::list_calls(&conn, &f)?, json)
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

/// A `--since`/`--until` bound as the index stores times.
fn bound(value: Option<String>, name: &str) -> anyhow::Result<Option<String>> {
    value
        .map(|v| {
            callrec::clock::parse_bound(&v).with_context(|| {
                format!("--{name} {v:?}: use RFC 3339 (2026-11-27T10:00:00Z) or YYYY-MM-DD")
            })
        })
        .transpose()
}

fn print_list(cfg: &Config, rows: Vec<store::CallRow>, json: bool) -> anyhow::Result<()> {
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

pub fn call(cfg: &Config, cmd: CallCmd) -> anyhow::Result<()> {
    let mut json = false;
    let req = match cmd {
        CallCmd::Start { seat, meta, tags } => Request::Start {
            seat,
            meta: meta.meta(),
            tags,
        },
        CallCmd::Stop {
            seat,
            outcome,
            amount,
        } => Request::Stop {
            seat,
            meta: Default::default(),
            outcome,
            amount,
            by: Some(super::cli_actor()),
        },
        CallCmd::Pause { seat, by, reason } => Request::Pause { seat, by, reason },
        CallCmd::Resume { seat } => Request::Resume { seat },
        CallCmd::Tag { seat, tags, meta } => Request::Tag {
            seat,
            tags,
            meta: meta.meta(),
        },
        CallCmd::Hold { seat, reason } => Request::Hold {
            seat,
            by: Some(super::cli_actor()),
            reason,
        },
        CallCmd::Unhold { seat } => Request::Unhold { seat },
        CallCmd::Login { seat, agent } => Request::Login {
            seat,
            agent,
            by: Some(super::cli_actor()),
        },
        CallCmd::Logout { seat } => Request::Logout {
            seat,
            by: Some(super::cli_actor()),
        },
        CallCmd::Wrapup { seat } => Request::Wrapup {
            seat,
            by: Some(super::cli_actor()),
        },
        CallCmd::Ready { seat } => Request::Ready {
            seat,
            by: Some(super::cli_actor()),
        },
        CallCmd::Status { json: j } => {
            json = j;
            Request::Status
        }
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
        print_status(resp.seats, json)?;
        if !json {
            print_archive_backlog(cfg);
        }
    } else if let Some(id) = resp.call_id {
        println!("{id}");
    }
    Ok(())
}

/// With `[archive]`, one more line: the shipper's backlog and last error, read from the index
/// (the recorder itself knows nothing of the archive). `--json` keeps its seat array as it was;
/// scripts read the backlog from `callrec archive status --json`.
fn print_archive_backlog(cfg: &Config) {
    if cfg.archive.is_none() {
        return;
    }
    let backlog = super::open_existing(cfg, "")
        .and_then(|c| Ok(store::archive::backlog(&c, chrono::Utc::now())?));
    match backlog {
        Ok(b) => println!(
            "archive    backlog {} call(s), {} bytes, oldest {} s; archived {}, failed {}; last error: {}",
            b.calls,
            b.bytes,
            b.oldest_age_s,
            b.archived_calls,
            b.failed_calls,
            b.last_error.as_deref().unwrap_or("none")
        ),
        Err(e) => println!("archive    backlog unknown: {e:#}"),
    }
}

fn print_status(seats: Vec<control::SeatStatus>, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&seats)?);
        return Ok(());
    }
    for s in seats {
        println!(
            "{:<10} {:<10} {:<9} call {:<6} {:>7.1}s  agent {:>6.1} dBFS  customer {:>6.1} dBFS  dropped {}  lag {} ms (max {} in the last minute, {} since start){}",
            s.seat,
            s.mode,
            s.state,
            s.call_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            s.call_duration_ms as f64 / 1000.0,
            s.agent_dbfs,
            s.customer_dbfs,
            s.dropped_frames,
            s.lag_ms,
            s.max_lag_1m_ms,
            s.max_lag_ms,
            if s.inputs_down.is_empty() { String::new() } else { format!("  DOWN: {}", s.inputs_down.join(", ")) }
        );
    }
    Ok(())
}
