//! The `callrec` command line: parse arguments, then call into the library. Errors reach the user
//! as one line saying what went wrong and what to do; exit status is non-zero on any failure.

use anyhow::{bail, Context};
use callrec::config::{Config, EncoderConfig, DEFAULT_CONFIG_PATH};
use callrec::evidence;
use callrec::record::control::{self, Request};
use callrec::store::{self, users, CallFilter, CallMeta};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod lifecycle_cli;

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
    /// Run the web service only (search, replay, audit, control API).
    Serve,
    /// Run the recorder and the web service in one process (the systemd default).
    Run,
    /// Web UI accounts.
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// API tokens for CTI integrations (control API).
    Tokens {
        #[command(subcommand)]
        cmd: TokensCmd,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
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
    /// Import legacy recordings (WAV incl. µ-law/A-law, MP3, FLAC, Ogg Vorbis, Ogg Opus) into
    /// the store, with metadata from an optional CSV sidecar. The same source twice is imported
    /// once; a bad file is reported and skipped.
    Import {
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
    },
    /// Quality review helpers.
    Qa {
        #[command(subcommand)]
        cmd: QaCmd,
    },
    /// Transcripts made by an external speech-to-text: searchable, and used to suggest script steps.
    Transcript {
        #[command(subcommand)]
        cmd: TranscriptCmd,
    },
    /// The box's Ed25519 key, which signs evidence bundles.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Export calls as evidence bundles (one folder per call), verifiable with sha256sum and
    /// openssl alone. Audited.
    Export {
        /// Call ids.
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Folder to write `call-<id>/` bundles into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also the whole call decoded to WAV (marked derived).
        #[arg(long)]
        wav: bool,
        /// Also an excerpt WAV from this many seconds into the call (with --to).
        #[arg(long, requires = "to")]
        from: Option<f64>,
        /// End of the excerpt, seconds from the start of the call (with --from).
        #[arg(long, requires = "from")]
        to: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Consistency of index, files, ledger, peaks and audit log; repairs only with --repair-*
    /// flags (and only while the recorder is stopped). Exits non-zero on any problem left.
    Check(lifecycle_cli::CheckArgs),
    /// Retention rules: delete what has outlived its keep period ([retention] in the config).
    Retention {
        #[command(subcommand)]
        cmd: lifecycle_cli::RetentionCmd,
    },
    /// Legal holds: calls that nothing may delete until a second admin releases them.
    Hold {
        #[command(subcommand)]
        cmd: lifecycle_cli::HoldCmd,
    },
    /// GDPR erasure: delete every recording of one customer number and scrub the number from
    /// the index; writes a receipt signed with the box key. The admin's password is read from
    /// stdin.
    Erase {
        /// The customer's number (any notation; only its digits count).
        #[arg(long)]
        number: String,
        /// The erasure request's ticket or case id (recorded; must not contain the number).
        #[arg(long)]
        request: String,
        /// The admin account carrying out the request.
        #[arg(long, required_unless_present = "dry_run")]
        by: Option<String>,
        /// Folder for the signed receipt (receipt.json, receipt.sig, box.pub).
        #[arg(long, required_unless_present = "dry_run")]
        out: Option<PathBuf>,
        /// Only list the calls the request would touch.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Verify an evidence bundle folder, or with --store every recording against the index and
    /// the ledger; exits non-zero on any mismatch.
    Verify {
        /// A `call-<id>` folder made by `callrec export`.
        #[arg(required_unless_present = "store", conflicts_with = "store")]
        bundle: Option<PathBuf>,
        /// Check the whole store instead: files vs index rows vs ledger, the ledger chain,
        /// orphan files.
        #[arg(long)]
        store: bool,
        #[arg(long)]
        json: bool,
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
enum UsersCmd {
    /// Add a user; prints a one-time password they must change at first login.
    Add {
        name: String,
        /// admin | supervisor | qa | agent | auditor
        #[arg(long)]
        role: String,
        /// The agent name calls carry for this person (default: the user name).
        #[arg(long)]
        agent_id: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// Read the password from stdin instead (for automation); no change is forced.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a user a new one-time password (also unlocks a locked account, ends sessions).
    Passwd {
        name: String,
        /// Read the password from stdin instead; no change is forced.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account and end its sessions.
    Disable { name: String },
    /// Re-enable an account.
    Enable { name: String },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokensCmd {
    /// Create a token for one integration; prints the secret once.
    Add { name: String },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the hash chain; exits non-zero and names each bad row if it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Print the public key (PEM) and its SHA-256 fingerprint (of the DER form).
    Show {
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
enum QaCmd {
    /// Demo content (accounts, a sampling plan drawn with a fixed seed, evaluations, a spot
    /// check) for `make demo`; does nothing if it ran before. Not for a production box.
    SeedDemo,
}

#[derive(Subcommand)]
enum TranscriptCmd {
    /// Import a WebVTT (.vtt) or JSON transcript for a call; replaces an earlier one.
    Import { call_id: i64, file: PathBuf },
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
    /// An agent sits down at a seat: later calls without --agent carry this agent.
    Login {
        #[arg(long)]
        seat: String,
        #[arg(long)]
        agent: String,
    },
    /// The seat's agent leaves.
    Logout {
        #[arg(long)]
        seat: String,
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
        Cmd::Record => {
            let cfg = Config::load(&cli.config)?;
            box_key_at_start(&cfg);
            callrec::record::run(cfg)
        }
        Cmd::Serve => {
            let cfg = Config::load(&cli.config)?;
            box_key_at_start(&cfg);
            serve(cfg)
        }
        Cmd::Run => {
            let cfg = Config::load(&cli.config)?;
            box_key_at_start(&cfg);
            run_both(cfg)
        }
        Cmd::Key {
            cmd: KeyCmd::Show { json },
        } => key_show(&Config::load(&cli.config)?, json),
        Cmd::Export {
            ids,
            out,
            wav,
            from,
            to,
            json,
        } => export(
            &Config::load(&cli.config)?,
            &ids,
            &out,
            evidence::bundle::Options {
                wav,
                excerpt_s: from.zip(to),
            },
            json,
        ),
        Cmd::Verify {
            bundle,
            store: whole,
            json,
        } => match bundle {
            Some(dir) if !whole => verify_bundle(&cli.config, &dir, json),
            _ => verify_store(&Config::load(&cli.config)?, json),
        },
        Cmd::Check(a) => lifecycle_cli::check_cmd(&Config::load(&cli.config)?, a),
        Cmd::Retention { cmd } => lifecycle_cli::retention_cmd(&Config::load(&cli.config)?, cmd),
        Cmd::Hold { cmd } => lifecycle_cli::hold_cmd(&Config::load(&cli.config)?, cmd),
        Cmd::Erase {
            number,
            request,
            by,
            out,
            dry_run,
            json,
        } => lifecycle_cli::erase_cmd(
            &Config::load(&cli.config)?,
            lifecycle_cli::EraseArgs {
                number,
                request,
                by: by.unwrap_or_default(),
                out,
                dry_run,
                json,
            },
        ),
        Cmd::Users { cmd } => users(&Config::load(&cli.config)?, cmd),
        Cmd::Tokens { cmd } => tokens(&Config::load(&cli.config)?, cmd),
        Cmd::Qa {
            cmd: QaCmd::SeedDemo,
        } => seed_demo(&Config::load(&cli.config)?),
        Cmd::Import {
            paths,
            sidecar,
            col_file,
            col_agent,
            col_number,
            col_started,
            col_direction,
            col_campaign,
            col_external_id,
            time_format,
            agent_channel,
            jobs,
            dry_run,
            json,
        } => {
            let req = callrec::import::ImportRequest {
                paths,
                sidecar,
                columns: callrec::import::sidecar::ColumnMap {
                    file: col_file,
                    agent: col_agent,
                    number: col_number,
                    started: col_started,
                    direction: col_direction,
                    campaign: col_campaign,
                    external_id: col_external_id,
                },
                time_format,
                agent_channel,
                jobs,
                dry_run,
                actor: cli_actor(),
                ..Default::default()
            };
            import(&Config::load(&cli.config)?, &req, json)
        }
        Cmd::Transcript {
            cmd: TranscriptCmd::Import { call_id, file },
        } => transcript_import(&Config::load(&cli.config)?, call_id, &file),
        Cmd::Audit {
            cmd: AuditCmd::Verify { json },
        } => audit_verify(&Config::load(&cli.config)?, json),
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

fn serve(cfg: Config) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    callrec::serve::run(cfg, stop)
}

/// Recorder and web service in one process. Recording never depends on the web half: if the
/// server cannot start (port taken, bad certificate) the error is logged and recording goes on.
fn run_both(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    // Migrate once, before either half opens the index.
    drop(store::open_rw(&cfg.db_path())?);
    if !cfg.server.enabled {
        return callrec::record::run(cfg);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (scfg, sstop) = (cfg.clone(), stop.clone());
    let server = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            if let Err(e) = callrec::serve::run(scfg, sstop) {
                tracing::error!("web service stopped: {e:#}; recording continues");
            }
        })?;
    let result = callrec::record::run(cfg);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    result
}

fn open_index(cfg: &Config) -> anyhow::Result<rusqlite::Connection> {
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    Ok(store::open_rw(&cfg.db_path())?)
}

/// Who ran a CLI command, for the audit log.
fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    format!("cli:{user}")
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn audit_cli(
    conn: &rusqlite::Connection,
    action: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let actor = cli_actor();
    store::audit::append(
        conn,
        &store::audit::Event {
            actor: &actor,
            action,
            call_id: None,
            detail,
            ip: None,
        },
    )?;
    Ok(())
}

fn users(cfg: &Config, cmd: UsersCmd) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    match cmd {
        UsersCmd::Add {
            name,
            role,
            agent_id,
            team,
            password_stdin,
        } => {
            let role = users::Role::parse(&role)?;
            let (pw, forced) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (users::one_time_password()?, true)
            };
            users::add_user(
                &conn,
                &users::NewUser {
                    username: &name,
                    role,
                    agent_id: agent_id.as_deref(),
                    team: team.as_deref(),
                    password: &pw,
                    must_change: forced,
                },
            )?;
            audit_cli(
                &conn,
                "user.add",
                serde_json::json!({"user": name, "role": role, "agent_id": agent_id, "team": team}),
            )?;
            if forced {
                println!("{name}: one-time password (change at first login): {pw}");
            } else {
                println!("{name}: added");
            }
        }
        UsersCmd::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, forced) = if password_stdin {
                (read_password_stdin()?, false)
            } else {
                (users::one_time_password()?, true)
            };
            users::set_password(&conn, &name, &pw, forced)?;
            audit_cli(&conn, "user.passwd", serde_json::json!({"user": name}))?;
            if forced {
                println!("{name}: one-time password (change at first login): {pw}");
            } else {
                println!("{name}: password set");
            }
        }
        UsersCmd::Disable { name } => {
            users::set_disabled(&conn, &name, true)?;
            audit_cli(&conn, "user.disable", serde_json::json!({"user": name}))?;
            println!("{name}: disabled");
        }
        UsersCmd::Enable { name } => {
            users::set_disabled(&conn, &name, false)?;
            audit_cli(&conn, "user.enable", serde_json::json!({"user": name}))?;
            println!("{name}: enabled");
        }
        UsersCmd::List { json } => {
            let list = users::list_users(&conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<20} {:<10} {:<16} {:<10} state",
                    "user", "role", "agent id", "team"
                );
                for u in list {
                    let state = if u.disabled {
                        "disabled"
                    } else if u
                        .locked_until_utc
                        .as_deref()
                        .is_some_and(|t| *t > *callrec::clock::utc_now())
                    {
                        "locked"
                    } else if u.must_change {
                        "must change password"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<20} {:<10} {:<16} {:<10} {state}",
                        u.username,
                        u.role.as_str(),
                        u.agent_id,
                        u.team.unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

fn tokens(cfg: &Config, cmd: TokensCmd) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    match cmd {
        TokensCmd::Add { name } => {
            let (secret, _) = users::add_token(&conn, &name, &cli_actor())?;
            audit_cli(&conn, "token.add", serde_json::json!({"token": name}))?;
            println!("{secret}");
        }
        TokensCmd::List { json } => {
            let list = users::list_tokens(&conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for t in list {
                    println!(
                        "{:<20} created {} by {}  last used {}{}",
                        t.name,
                        t.created_at_utc,
                        t.created_by,
                        t.last_used_utc.unwrap_or_else(|| "never".into()),
                        t.revoked_at_utc
                            .map(|r| format!("  REVOKED {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        TokensCmd::Revoke { name } => {
            users::revoke_token(&conn, &name)?;
            audit_cli(&conn, "token.revoke", serde_json::json!({"token": name}))?;
            println!("{name}: revoked");
        }
    }
    Ok(())
}

fn import(cfg: &Config, req: &callrec::import::ImportRequest, json: bool) -> anyhow::Result<()> {
    let summary = callrec::import::run(cfg, req, !json)?;
    if json {
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

fn seed_demo(cfg: &Config) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    let Some(s) = callrec::demo::seed(&conn, &cli_actor())? else {
        println!("demo QA content is there already");
        return Ok(());
    };
    for (name, role, password) in &s.accounts {
        println!(
            "demo account {name} ({}): one-time password {password}",
            role.as_str()
        );
    }
    println!(
        "demo plan drawn with seed {}: {} call(s) assigned, {} evaluated, {} spot check(s)",
        callrec::demo::SEED,
        s.assignments,
        s.evaluations.len(),
        s.checks.len()
    );
    Ok(())
}

fn transcript_import(cfg: &Config, call_id: i64, file: &Path) -> anyhow::Result<()> {
    use callrec::qa::transcript;
    use callrec::store::compliance;
    let conn = open_index(cfg)?;
    let call = store::get_call(&conn, call_id)?;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {} (it must be UTF-8 text)", file.display()))?;
    let (segments, format) =
        transcript::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
    transcript::check_max_ms(
        &segments,
        callrec::serve::compliance_api::max_transcript_ms(call.duration_ms),
    )
    .with_context(|| format!("{} does not fit call {call_id}", file.display()))?;
    let source = file.display().to_string();
    let n = compliance::put_transcript(&conn, call_id, &segments, format, &source, &cli_actor())?;
    store::audit::append(
        &conn,
        &store::audit::Event {
            actor: &cli_actor(),
            action: "transcript.import",
            call_id: Some(call_id),
            detail: serde_json::json!({"format": format, "segments": n, "source": source}),
            ip: None,
        },
    )?;
    println!("call {call_id}: imported {n} segment(s) ({format}) from {source}");
    Ok(())
}

fn audit_verify(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let db = cfg.db_path();
    if !db.exists() {
        bail!("no index at {}: nothing to verify", db.display());
    }
    let conn = store::open_ro(&db)?;
    let r = store::audit::verify(&conn)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for b in &r.breaks {
            println!("row {}: {}", b.id, b.problem);
        }
        println!("{} rows, head {}", r.rows, r.head_hash);
    }
    if !r.breaks.is_empty() {
        bail!("the audit chain is broken at {} place(s); treat the log as tampered and keep a copy of the database", r.breaks.len());
    }
    if !json {
        println!("audit chain intact");
    }
    Ok(())
}

/// Makes the box key on first start (or loads it) and logs its fingerprint. Recording never
/// depends on it: a problem is logged and the daemon goes on; `callrec export` then refuses with
/// the same reason until it is fixed.
fn box_key_at_start(cfg: &Config) {
    // An unmounted or wrong disk: write nothing (the recorder and server refuse it next).
    if store::identity::precheck(&cfg.storage.dir, cfg.storage.id.as_deref()).is_err() {
        return;
    }
    match evidence::key::ensure(&cfg.storage.dir) {
        Ok((k, made)) => tracing::info!(
            fingerprint_sha256 = k.fingerprint_sha256(),
            "{} box key {}",
            if made { "made a new" } else { "using" },
            k.paths.public.display()
        ),
        Err(e) => tracing::error!(
            "box key: {e}. Recording goes on; evidence export is refused until this is fixed"
        ),
    }
}

fn key_show(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let k = evidence::key::load(&cfg.storage.dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "public_key_pem": k.public_pem(),
                "fingerprint_sha256": k.fingerprint_sha256(),
                "public_key_file": k.paths.public.display().to_string(),
                "algorithm": "Ed25519",
            }))?
        );
    } else {
        print!("{}", k.public_pem());
        println!(
            "fingerprint (SHA-256 of the DER public key): {}",
            k.fingerprint_sha256()
        );
        println!(
            "file: {}  (check: openssl pkey -pubin -in {} -outform DER | sha256sum)",
            k.paths.public.display(),
            k.paths.public.display()
        );
    }
    Ok(())
}

fn export(
    cfg: &Config,
    ids: &[i64],
    out: &Path,
    options: evidence::bundle::Options,
    json: bool,
) -> anyhow::Result<()> {
    if let Some((from, to)) = options.excerpt_s {
        if !(from.is_finite() && to.is_finite() && from >= 0.0 && to > from) {
            bail!(
                "--from {from} --to {to}: give seconds from the start of the call, 0 ≤ from < to"
            );
        }
    }
    let db = cfg.db_path();
    if !db.exists() {
        bail!("no index at {}: nothing to export", db.display());
    }
    let (key, made) = evidence::key::ensure(&cfg.storage.dir)?;
    if made {
        eprintln!(
            "made the box key {} (fingerprint {})",
            key.paths.public.display(),
            key.fingerprint_sha256()
        );
    }
    let conn = open_index(cfg)?;
    let actor = cli_actor();
    let x = evidence::bundle::Exporter {
        conn: &conn,
        storage_dir: &cfg.storage.dir,
        box_id: &cfg.box_.id,
        key: &key,
        actor: &actor,
        out_dir: out,
        options,
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &id in ids {
        match evidence::bundle::export_call(&x, id) {
            Ok(e) => {
                if !json {
                    println!(
                        "call {id}: {} ({} files, manifest sha256 {})",
                        e.dir,
                        e.files.len() + 3,
                        e.manifest_sha256
                    );
                }
                done.push(e);
            }
            Err(e) => {
                eprintln!("callrec: export of call {id} failed: {e}");
                failed.push(serde_json::json!({"call_id": id, "error": e.to_string()}));
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"exported": done, "failed": failed}))?
        );
    } else if let Some(first) = done.first() {
        println!(
            "verify without callrec: {}",
            evidence::bundle::verify_command(first.call_id)
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} call(s) not exported (see above); the others are in {}",
            failed.len(),
            ids.len(),
            out.display()
        );
    }
    Ok(())
}

fn verify_bundle(config: &Path, dir: &Path, json: bool) -> anyhow::Result<()> {
    let r = evidence::verify::verify_bundle(dir)?;
    // On the box itself, say whether this box signed the bundle (a bundle from another box is
    // fine; the fingerprint must then be compared with that box's `callrec key show`).
    let this_box = Config::load(config)
        .ok()
        .and_then(|c| evidence::key::load(&c.storage.dir).ok())
        .map(|k| k.fingerprint_sha256().to_owned());
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["signed_by_this_box"] = match (&this_box, &r.key_fingerprint_sha256) {
            (Some(a), Some(b)) => serde_json::Value::Bool(a == b),
            _ => serde_json::Value::Null,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for p in &r.problems {
            println!("{p}");
        }
        println!(
            "{}: call {}, {} file(s) checked, signature {}, {} ledger entr{} checked",
            r.dir,
            r.call_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "?".into()),
            r.files_checked,
            if r.signature_valid {
                "valid"
            } else {
                "INVALID"
            },
            r.ledger_entries_checked,
            if r.ledger_entries_checked == 1 {
                "y"
            } else {
                "ies"
            }
        );
        if let Some(fp) = &r.key_fingerprint_sha256 {
            match &this_box {
                Some(mine) if mine == fp => println!("signed by this box's key ({fp})"),
                Some(mine) => println!(
                    "signed by key {fp}, which is NOT this box's key ({mine}): compare it with `callrec key show` on the box that exported it"
                ),
                None => println!(
                    "signing key fingerprint {fp}: compare it with `callrec key show` on the box"
                ),
            }
        }
    }
    if !r.problems.is_empty() {
        bail!(
            "the bundle does not verify: {} problem(s); do not rely on it, and ask for a fresh export from the box",
            r.problems.len()
        );
    }
    if !json {
        println!("bundle intact");
    }
    Ok(())
}

fn verify_store(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let db = cfg.db_path();
    if !db.exists() {
        bail!("no index at {}: nothing to verify", db.display());
    }
    let conn = store::open_ro(&db)?;
    let r = evidence::verify::verify_store(&conn, &cfg.storage.dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for p in &r.problems {
            println!("{p}");
        }
        if r.temporary_files > 0 {
            println!(
                "{} temporary *.tmp file(s) under calls/ (a write in progress, or left by a crash; not checked)",
                r.temporary_files
            );
        }
        for p in &r.pending_deletions {
            println!("pending deletion: {p}");
        }
        if !r.pending_deletions.is_empty() {
            println!(
                "{} deletion(s) pending (the recorder finishes them; or stop it and run `callrec check --repair-garbage`)",
                r.pending_deletions.len()
            );
        }
        println!(
            "{} call(s) ({} still recording), {} file(s) hashed ({} bytes), {} ledger entries, head {}",
            r.calls,
            r.calls_recording,
            r.files_hashed,
            r.bytes_hashed,
            r.ledger_entries,
            r.ledger_head
                .as_ref()
                .map(|h| format!("#{} {}", h.seq, h.entry_sha256))
                .unwrap_or_else(|| "none".into())
        );
    }
    if !r.problems.is_empty() {
        bail!(
            "the store does not verify: {} problem(s) listed above; keep the disk as it is (no repair, no cleanup) and treat the calls named as possibly tampered",
            r.problems.len()
        );
    }
    if !json {
        println!("store intact: every recording matches its index row and the ledger");
    }
    Ok(())
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
                if !["recording", "complete", "interrupted", "garbage", "deleted"]
                    .contains(&s.as_str())
                {
                    bail!(
                        "--status {s:?}: use recording, complete, interrupted, garbage or deleted"
                    );
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
        CallCmd::Login { seat, agent } => (Request::Login { seat, agent }, false),
        CallCmd::Logout { seat } => (Request::Logout { seat }, false),
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
