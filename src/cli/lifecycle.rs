//! The data-lifecycle commands of the CLI: `retention run`, `hold place|release|list`,
//! `erase` and `check`. Argument parsing and printing only; the rules live in `store::retention`,
//! `store::holds`, `store::lifecycle`, `evidence::erasure` and `check`.
//!
//! Holds and erasure change what the box keeps, so they name an admin account (`--by`) and
//! read that account's password from stdin: the "second admin" who releases a hold is then a
//! real second person, not a name typed by the first. These commands never run without that.

use super::{cli_actor, open_index, read_password_stdin};
use anyhow::bail;
use callrec::check;
use callrec::clock::utc_now;
use callrec::config::Config;
use callrec::evidence::{self, erasure};
use callrec::hub;
use callrec::store::{holds, retention, users};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum RetentionCmd {
    /// Delete every recording whose keep period ([retention] in the config) has passed; calls on
    /// legal hold are kept. The recorder also runs this every hour.
    Run {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum HoldCmd {
    /// Put calls on legal hold: nothing deletes them until a second admin releases the hold.
    /// The admin's password is read from stdin.
    #[command(group(clap::ArgGroup::new("scope").required(true)))]
    Place {
        /// One call.
        #[arg(long, group = "scope")]
        call: Option<i64>,
        /// Every call of this agent, past and future.
        #[arg(long, group = "scope")]
        agent: Option<String>,
        /// Customer numbers: one number, a prefix ending in *, or FROM-TO of equal length.
        #[arg(long, group = "scope")]
        numbers: Option<String>,
        /// The matter or case the hold is for (required).
        #[arg(long)]
        reason: String,
        /// The admin account placing the hold.
        #[arg(long)]
        by: String,
    },
    /// Release a hold; must be a different admin from the one who placed it. Password on stdin.
    Release {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
    },
    /// Holds in force (with --all, released ones too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Reads the password of `username` from stdin and checks it is an enabled admin's.
fn authenticate_admin(conn: &rusqlite::Connection, username: &str) -> anyhow::Result<()> {
    let password = read_password_stdin()?;
    users::authenticate_admin(conn, username, &password)?;
    Ok(())
}

pub fn retention(cfg: &Config, cmd: RetentionCmd) -> anyhow::Result<()> {
    let RetentionCmd::Run { dry_run, json } = cmd;
    let conn = open_index(cfg)?;
    let out = retention::run(
        &conn,
        &cfg.storage.dir,
        &cfg.retention,
        chrono::Utc::now(),
        &cli_actor(),
        dry_run,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for d in &out.plan.delete {
        println!(
            "{verb} call {:>8}  started {}  rule {:?} ({} days, due {})",
            d.call_id, d.started_at_utc, d.rule, d.keep_days, d.due_at_utc
        );
    }
    for d in &out.plan.held {
        println!(
            "kept   call {:>8}  started {}  rule {:?} due {}, but on legal hold #{}",
            d.call_id,
            d.started_at_utc,
            d.rule,
            d.due_at_utc,
            d.held_by.unwrap_or_default()
        );
    }
    for d in &out.plan.not_archived {
        println!(
            "kept   call {:>8}  started {}  rule {:?} due {}, but not yet archived (its archive copy is not confirmed; see callrec archive status)",
            d.call_id, d.started_at_utc, d.rule, d.due_at_utc
        );
    }
    let bytes: i64 = out.plan.delete.iter().map(|d| d.bytes).sum();
    if !out.plan.not_archived.is_empty() {
        println!(
            "kept: not yet archived: {} due call(s), {} bytes",
            out.plan.not_archived.len(),
            out.plan.not_archived.iter().map(|d| d.bytes).sum::<i64>()
        );
    }
    println!(
        "{verb} {} call(s), {} bytes; {} due call(s) kept on legal hold{}",
        out.plan.delete.len(),
        bytes,
        out.plan.held.len(),
        if cfg.retention.rules.is_empty() && cfg.retention.default_keep_days.is_none() {
            " (no [retention] rules in the config: recordings are kept forever)"
        } else {
            ""
        }
    );
    if !out.deleted_complaints.is_empty() {
        println!(
            "deleted {} settled complaint(s) past their keep period: {:?}",
            out.deleted_complaints.len(),
            out.deleted_complaints
        );
    }
    Ok(())
}

pub fn hold(cfg: &Config, cmd: HoldCmd) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    match cmd {
        HoldCmd::Place {
            call,
            agent,
            numbers,
            reason,
            by,
        } => {
            let scope = match (call, agent, numbers) {
                (Some(call_id), _, _) => holds::Scope::Call { call_id },
                (_, Some(agent), _) => holds::Scope::Agent { agent },
                (_, _, Some(range)) => holds::parse_range(&range)?,
                _ => bail!("give --call, --agent or --numbers"),
            };
            authenticate_admin(&conn, &by)?;
            if hub::is_hub(cfg) {
                let p = hub::orders::place_hold(&conn, cfg, &scope, &reason, &by, &utc_now())?;
                hub::orders::publish_now(&conn, cfg, &utc_now());
                println!(
                    "legal hold #{} placed by {by} at the hub: {}; ordered to box(es) {:?}{}",
                    p.hold_id,
                    describe(&scope),
                    p.boxes,
                    p.order_id
                        .map(|o| format!(" (order {o})"))
                        .unwrap_or_default()
                );
                return Ok(());
            }
            let id = holds::place(&conn, &scope, &reason, &by, &utc_now())?;
            println!("legal hold #{id} placed by {by}: {}", describe(&scope));
        }
        HoldCmd::Release { id, reason, by } => {
            authenticate_admin(&conn, &by)?;
            if hub::is_hub(cfg) {
                let (h, p) = hub::orders::release_hold(&conn, cfg, id, &by, &reason, &utc_now())?;
                hub::orders::publish_now(&conn, cfg, &utc_now());
                println!(
                    "legal hold #{id} ({}) placed by {} released by {by} at the hub; ordered to box(es) {:?}",
                    describe(&h.scope),
                    h.placed_by,
                    p.boxes
                );
                return Ok(());
            }
            let h = holds::release(&conn, id, &by, &reason, &utc_now())?;
            println!(
                "legal hold #{id} ({}) placed by {} released by {by}",
                describe(&h.scope),
                h.placed_by
            );
        }
        HoldCmd::List { all, json } => {
            let list: Vec<holds::Hold> = holds::list(&conn)?
                .into_iter()
                .filter(|h| all || h.released_at_utc.is_none())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for h in &list {
                println!(
                    "#{:<4} {:<40} placed {} by {}: {}{}",
                    h.id,
                    describe(&h.scope),
                    h.placed_at_utc,
                    h.placed_by,
                    h.reason,
                    h.released_at_utc
                        .as_deref()
                        .map(|t| format!(
                            "  [released {t} by {}]",
                            h.released_by.as_deref().unwrap_or("?")
                        ))
                        .unwrap_or_default()
                );
            }
            if list.is_empty() {
                println!("no legal holds{}", if all { "" } else { " in force" });
            }
        }
    }
    Ok(())
}

fn describe(s: &holds::Scope) -> String {
    match s {
        holds::Scope::Call { call_id } => format!("call {call_id}"),
        holds::Scope::Agent { agent } => format!("every call of agent {agent}"),
        holds::Scope::Numbers { from, to } if from == to => format!("numbers starting {from}"),
        holds::Scope::Numbers { from, to } => format!("numbers {from}-{to}"),
    }
}

#[derive(clap::Args)]
pub struct EraseArgs {
    /// The customer's number (any notation; only its digits count).
    #[arg(long, required_unless_present = "complete")]
    number: Option<String>,
    /// The erasure request's ticket or case id (recorded; must not contain the number).
    #[arg(long, required_unless_present = "complete")]
    request: Option<String>,
    /// At the hub: how long to wait for the boxes' acks before the receipt is signed; a box
    /// that has not acked by then is listed as pending.
    #[arg(long, default_value_t = 60)]
    wait_s: u64,
    /// At the hub: finish the record of an earlier erasure whose receipt (in this folder) lists
    /// boxes as pending: writes completion.json and completion.sig beside it.
    #[arg(long, conflicts_with_all = ["number", "request", "dry_run"])]
    complete: Option<PathBuf>,
    /// The admin account carrying out the request.
    #[arg(long, required_unless_present = "dry_run")]
    by: Option<String>,
    /// Folder for the signed receipt (receipt.json, receipt.sig, box.pub).
    #[arg(long, required_unless_present_any = ["dry_run", "complete"])]
    out: Option<PathBuf>,
    /// Only list the calls the request would touch.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn erase(cfg: &Config, a: EraseArgs) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    if let Some(dir) = &a.complete {
        if !hub::is_hub(cfg) {
            bail!("--complete finishes an erasure made at the fleet's hub: run it with the hub's config");
        }
        let by = a.by.unwrap_or_default();
        authenticate_admin(&conn, &by)?;
        let key = hub::orders::hub_key(cfg)?;
        let c = hub::orders::complete(cfg, &conn, &key, dir, a.wait_s, &by)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&c)?);
        } else {
            for b in &c.box_copies {
                println!(
                    "box {}: {} (calls {:?})",
                    b.box_id, b.status, b.box_call_ids
                );
            }
            println!(
                "completion.json and completion.sig written in {}; still pending: {:?}",
                dir.display(),
                c.still_pending
            );
        }
        if !c.still_pending.is_empty() {
            bail!(
                "box(es) {:?} have not acked yet; run this again when they are online",
                c.still_pending
            );
        }
        return Ok(());
    }
    let (Some(number), Some(request)) = (a.number.as_deref(), a.request.as_deref()) else {
        bail!("give --number and --request (or --complete DIR)");
    };
    if a.dry_run {
        let f = erasure::find(&conn, number)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&f)?);
        } else {
            println!(
                "would delete the recordings of call(s) {:?}; would scrub the rows of already deleted call(s) {:?}",
                f.live, f.already_deleted
            );
            if !f.held.is_empty() {
                println!(
                    "BLOCKED: (call, legal hold) {:?}: erasure would be refused",
                    f.held
                );
            }
            if !f.recording.is_empty() {
                println!("BLOCKED: call(s) {:?} still recording", f.recording);
            }
        }
        return Ok(());
    }
    let Some(out) = a.out else {
        bail!("--out DIR is required: the signed receipt is written there");
    };
    let by = a.by.unwrap_or_default();
    authenticate_admin(&conn, &by)?;
    let (key, _) = evidence::key::ensure(&cfg.storage.dir)?;
    let now = chrono::Utc::now();
    let now_utc = callrec::clock::format_utc(now);
    let req = erasure::Request {
        number,
        reference: request,
        actor: &by,
        now_utc: &now_utc,
    };
    let mut pending_boxes = Vec::new();
    let e = if hub::is_hub(cfg) {
        // At the hub: the boxes are ordered to erase, the hub deletes every archived version
        // and scrubs its index, and one receipt lists every copy (hub::orders::erase).
        let h = hub::orders::erase(cfg, &conn, &key, &req, now, a.wait_s)?;
        pending_boxes = h.pending_boxes;
        h.erased
    } else {
        // With [archive], the archived copies go too (every version), or the whole request is
        // refused when one is under COMPLIANCE retention (archive::lock::erase).
        callrec::archive::lock::erase(cfg, &conn, &key, &req, now)?
    };
    erasure::write_receipt(&out, &e, &key)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e.receipt)?);
    } else {
        print_receipt_summary(&out, &e.receipt);
    }
    if !pending_boxes.is_empty() {
        println!(
            "pending on box(es) {pending_boxes:?}: they have not acked the erasure order yet (they apply it when online); \
             then run: callrec erase --complete {} --by {by}",
            out.display()
        );
    }
    if !e.wal_emptied {
        bail!(
            "the erasure is done and its receipt written, but {}-wal could not be emptied within 10 s \
             (another process held a long read): it keeps old copies of the erased rows until the next \
             checkpoint. Stop `callrec serve` for a moment, or run `sqlite3 {} 'PRAGMA wal_checkpoint(TRUNCATE)'` \
             when nothing reads the index",
            cfg.db_path().display(),
            cfg.db_path().display()
        );
    }
    Ok(())
}

fn print_receipt_summary(out: &Path, r: &erasure::Receipt) {
    println!(
        "erasure {} (request {}): deleted {} recording(s) {:?}; scrubbed {} already deleted call row(s)",
        r.deletion_id,
        r.request_reference,
        r.deleted_recordings.len(),
        r.deleted_recordings
            .iter()
            .map(|c| c.call_id)
            .collect::<Vec<_>>(),
        r.scrubbed_rows.len()
    );
    if !r.archive_removed.is_empty() {
        println!(
            "removed from the archive: {} object version(s) of call(s) {:?}",
            r.archive_removed
                .iter()
                .map(|c| c.versions.len())
                .sum::<usize>(),
            r.archive_removed
                .iter()
                .map(|c| c.call_id)
                .collect::<Vec<_>>()
        );
    }
    for b in &r.box_copies {
        println!(
            "box {}: {} (its calls {:?}, order {})",
            b.box_id, b.status, b.box_call_ids, b.order_id
        );
    }
    println!(
        "signed receipt in {}; check it with:\n  cd {} && {}",
        out.display(),
        out.display(),
        erasure::verify_command()
    );
}

/// `callrec check` flags: without any it only reads (and may run beside the recorder).
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Every repair below (none deletes evidence or hides tampering).
    #[arg(long)]
    repair: bool,
    /// Recover calls stuck in `recording` with no recorder running: trim each file to its last
    /// intact Ogg page and mark the call interrupted, as the recorder does at start.
    #[arg(long)]
    repair_recording: bool,
    /// Add the missing ledger entry of each finished call whose file matches its row (calls
    /// finalized before the ledger existed).
    #[arg(long)]
    repair_ledger: bool,
    /// Finish pending deletions: remove the files of calls marked garbage and mark them deleted.
    #[arg(long)]
    repair_garbage: bool,
    /// Move files under calls/ that no call accounts for (and left-over *.tmp files) to
    /// <storage>/orphans/; never deletes them.
    #[arg(long)]
    repair_orphans: bool,
    /// Rebuild missing or damaged waveform peaks (.dat) from recordings that match their hash.
    #[arg(long)]
    repair_peaks: bool,
    #[arg(long)]
    json: bool,
}

pub fn check(cfg: &Config, a: CheckArgs) -> anyhow::Result<()> {
    let opts = if a.repair {
        check::CheckOptions::repair_all()
    } else {
        check::CheckOptions {
            repair_recording: a.repair_recording,
            repair_ledger: a.repair_ledger,
            repair_garbage: a.repair_garbage,
            repair_orphans: a.repair_orphans,
            repair_peaks: a.repair_peaks,
        }
    };
    let report = check::run(cfg, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if report.problems() > 0 {
        bail!(
            "{} problem(s) in the store (listed above)",
            report.problems()
        );
    }
    Ok(())
}
