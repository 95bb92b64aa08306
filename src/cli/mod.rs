//! The `callrec` command line: one file per command group, each only parsing, calling one
//! library function and printing. The config is loaded once per command, here.
//!
//! Nothing in `cli/` decides anything a web user could also do: such rules live in the library,
//! where the web service reuses them.

mod accounts;
mod archive;
mod calls;
mod complaints;
mod evidence;
mod figures;
mod hub;
mod lifecycle;
mod media;
mod outcomes;
mod qa;
mod report;
mod targets;

use anyhow::Context;
use callrec::config::{Config, DEFAULT_CONFIG_PATH};
use callrec::store;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "callrec",
    version,
    about = "Call recorder: seats -> Ogg Opus -> SQLite"
)]
pub struct Cli {
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
    /// Run the web service only (search, replay, audit, control API).
    Serve,
    /// Run the recorder and the web service in one process (the systemd default); with
    /// [archive] also the shipper.
    Run,
    /// Ship finished calls to the S3 object store of [archive] (its own process).
    Ship,
    /// The fleet's QA hub: the web UI over every box's archived calls (needs [archive]; no
    /// seats). Subcommands rebuild its index from the bucket and back up or restore its state.
    Hub {
        #[command(subcommand)]
        cmd: Option<hub::HubCmd>,
    },
    /// The archive: what is not yet in the object store.
    Archive {
        #[command(subcommand)]
        cmd: archive::ArchiveCmd,
    },
    /// Web UI accounts.
    Users {
        #[command(subcommand)]
        cmd: accounts::UsersCmd,
    },
    /// API tokens for CTI integrations (control API).
    Tokens {
        #[command(subcommand)]
        cmd: accounts::TokensCmd,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        cmd: accounts::AuditCmd,
    },
    /// List capture devices with their supported channels, rates and formats; propose a seat
    /// map (--propose), or show live levels per channel (--listen DEVICE).
    Devices(media::DevicesArgs),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Find and inspect recorded calls.
    Calls {
        #[command(subcommand)]
        cmd: calls::CallsCmd,
    },
    /// Drive a running recorder through its control socket.
    Call {
        #[command(subcommand)]
        cmd: calls::CallCmd,
    },
    /// Import legacy recordings (WAV incl. µ-law/A-law, MP3, FLAC, Ogg Vorbis, Ogg Opus) into
    /// the store, with metadata from an optional CSV sidecar. The same source twice is imported
    /// once; a bad file is reported and skipped.
    Import(media::ImportArgs),
    /// The operator's figures (calls, talk, hold, ACW, AHT, logged-in time, occupancy,
    /// conversion, survey response rate, QA and compliance) of an agent or a team over a period.
    Figures(figures::FiguresArgs),
    /// Reports from the index: `completeness` (calls announced vs recorded, one-sided calls,
    /// gaps and drops per seat for a day).
    Report {
        #[command(subcommand)]
        cmd: report::ReportCmd,
    },
    /// Goals for the figures of a team or a campaign, and how the actual figures compare.
    Targets {
        #[command(subcommand)]
        cmd: targets::TargetsCmd,
    },
    /// The complaints register: file, acknowledge, investigate, respond, rule, appeal, decide,
    /// list, show (each step for an account: `--as USER`).
    Complaints {
        #[command(subcommand)]
        cmd: complaints::ComplaintsCmd,
    },
    /// Call outcomes (disposition codes): per-campaign lists and the dialler/CRM back-fill.
    Outcomes {
        #[command(subcommand)]
        cmd: outcomes::OutcomesCmd,
    },
    /// Quality review helpers.
    Qa {
        #[command(subcommand)]
        cmd: qa::QaCmd,
    },
    /// Transcripts made by an external speech-to-text: searchable, and used to suggest script steps.
    Transcript {
        #[command(subcommand)]
        cmd: qa::TranscriptCmd,
    },
    /// The box's Ed25519 key, which signs evidence bundles.
    Key {
        #[command(subcommand)]
        cmd: evidence::KeyCmd,
    },
    /// Export calls as evidence bundles (one folder per call), verifiable with sha256sum and
    /// openssl alone. Audited.
    Export(evidence::ExportArgs),
    /// Consistency of index, files, ledger, peaks and audit log; repairs only with --repair-*
    /// flags (and only while the recorder is stopped). Exits non-zero on any problem left.
    Check(lifecycle::CheckArgs),
    /// Retention rules: delete what has outlived its keep period ([retention] in the config).
    Retention {
        #[command(subcommand)]
        cmd: lifecycle::RetentionCmd,
    },
    /// Legal holds: calls that nothing may delete until a second admin releases them.
    Hold {
        #[command(subcommand)]
        cmd: lifecycle::HoldCmd,
    },
    /// GDPR erasure: delete every recording of one customer number and scrub the number from
    /// the index; writes a receipt signed with the box key. The admin's password is read from
    /// stdin.
    Erase(lifecycle::EraseArgs),
    /// Verify an evidence bundle folder, or with --store every recording against the index and
    /// the ledger; exits non-zero on any mismatch.
    Verify(evidence::VerifyArgs),
    /// Encode a WAV file (ch 0 agent, ch 1 customer) through the recorder's pipeline.
    Encode(media::EncodeArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate the config; names the offending key on error.
    Check,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config;
    let load = || Config::load(&path);
    match cli.cmd {
        Cmd::Record => callrec::daemon::record(load()?),
        Cmd::Serve => callrec::daemon::serve(load()?),
        Cmd::Run => callrec::daemon::run_both(load()?),
        Cmd::Ship => callrec::daemon::ship(load()?),
        Cmd::Hub { cmd } => hub::hub(load()?, cmd),
        Cmd::Archive { cmd } => archive::archive(&load()?, cmd),
        Cmd::Key { cmd } => evidence::key(&load()?, cmd),
        Cmd::Export(a) => evidence::export(&load()?, a),
        // A bundle can be checked anywhere; on the box itself the config tells whose key it is.
        Cmd::Verify(a) if !a.store => evidence::verify_bundle(load().ok().as_ref(), a),
        Cmd::Verify(a) => evidence::verify_store(&load()?, a.json),
        Cmd::Check(a) => lifecycle::check(&load()?, a),
        Cmd::Retention { cmd } => lifecycle::retention(&load()?, cmd),
        Cmd::Hold { cmd } => lifecycle::hold(&load()?, cmd),
        Cmd::Erase(a) => lifecycle::erase(&load()?, a),
        Cmd::Users { cmd } => accounts::users(&load()?, cmd),
        Cmd::Tokens { cmd } => accounts::tokens(&load()?, cmd),
        Cmd::Audit { cmd } => accounts::audit(&load()?, cmd),
        Cmd::Outcomes { cmd } => outcomes::outcomes(&load()?, cmd),
        Cmd::Complaints { cmd } => complaints::complaints(&load()?, cmd),
        Cmd::Figures(a) => figures::figures(&load()?, a),
        Cmd::Targets { cmd } => targets::targets(&load()?, cmd),
        Cmd::Report { cmd } => report::report(&load()?, cmd),
        Cmd::Qa { cmd } => qa::qa(&load()?, cmd),
        Cmd::Transcript { cmd } => qa::transcript(&load()?, cmd),
        Cmd::Import(a) => media::import(&load()?, a),
        // Encoding needs no box: the config's encoder section when there is a config.
        Cmd::Encode(a) => media::encode(path.exists().then(load).transpose()?, a),
        Cmd::Devices(a) => media::devices(a),
        Cmd::Config {
            cmd: ConfigCmd::Check,
        } => {
            // Every unit runs this as ExecStartPre: the journal line must say what refused.
            let c = load()
                .context("callrec config check failed; no callrec unit starts until it passes")?;
            println!(
                "{}: ok ({} seat(s), storage {})",
                path.display(),
                c.seats.len(),
                c.storage.dir.display()
            );
            Ok(())
        }
        Cmd::Calls { cmd } => calls::calls(&load()?, cmd),
        Cmd::Call { cmd } => calls::call(&load()?, cmd),
    }
}

/// The index for a command that writes (made, and migrated, if it is not there yet).
fn open_index(cfg: &Config) -> anyhow::Result<rusqlite::Connection> {
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    Ok(store::open_rw(&cfg.db_path())?)
}

/// The index for a command that only reads: refused, with what to do, when there is none yet.
fn open_existing(cfg: &Config, what_to_do: &str) -> anyhow::Result<rusqlite::Connection> {
    let db = cfg.db_path();
    if !db.exists() {
        anyhow::bail!("no index at {}{what_to_do}", db.display());
    }
    Ok(store::open_ro(&db)?)
}

/// Who ran a CLI command, for the audit log: `cli:<login>`.
fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    format!("cli:{user}")
}

/// One line from stdin without its line ending: passwords never travel on the command line,
/// where `ps` and shell history would see them.
fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
