//! `callrec archive …`: `status` (what the shipper has not yet got into the object store; reads
//! the index only), `verify` (whether the bucket still holds what the boxes shipped; reads the
//! bucket) and `retention run` (removes archived objects whose archive keep period has passed:
//! `archive::lock::retention_run`, or at the fleet's hub `hub::orders::retention_run`). None of
//! them ships anything (the shipper is `callrec ship`).

use anyhow::Context;
use callrec::config::Config;
use callrec::store;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ArchiveRetentionCmd {
    /// Delete from the object store every version of the objects of archived calls whose
    /// archive keep period (rule archive_keep_days, else keep_days, else [archive] keep_days,
    /// else retention.default_keep_days) has passed. Calls on legal hold (here, or an object
    /// legal hold in the store) and objects the store still retains are kept, with the reason.
    /// What was removed is audited and recorded, signed with the box key.
    Run {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        /// Also write the signed record (removal.json, removal.sig, box.pub) into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ArchiveCmd {
    /// Archive retention: removing objects from the store once their rules say so.
    Retention {
        #[command(subcommand)]
        cmd: ArchiveRetentionCmd,
    },
    /// Backlog (calls, bytes, oldest age), archived and failed calls, the last upload error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Re-hash archived objects (streamed) against their sidecars and the shipped ledger; list
    /// missing, extra and altered objects. Exit status 1 when anything is found.
    Verify {
        /// Only this box's objects (default: every box under the prefix).
        #[arg(long = "box")]
        box_id: Option<String>,
        /// Only calls started on or after this day (YYYY-MM-DD, UTC); the ledger is checked whole.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a replaced box's index from the archive (calls, intervals, tags, metrics, ledger;
    /// marked archived) and optionally its recent recordings. Run on the new box, configured
    /// with the old box's id, before `callrec record` starts.
    Restore {
        /// The box to restore: this box's own id (`[box] id`).
        #[arg(long = "box")]
        box_id: String,
        /// Also download the recordings (and peaks) of calls started within this many days,
        /// each checked against its SHA-256.
        #[arg(long)]
        recordings_since: Option<u32>,
        /// Restore into an index that already holds calls (adds what is missing).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn archive(cfg: &Config, cmd: ArchiveCmd) -> anyhow::Result<()> {
    match cmd {
        ArchiveCmd::Restore {
            box_id,
            recordings_since,
            force,
            json,
        } => {
            let conn = super::open_index(cfg)?;
            let o = callrec::hub::restore::Options {
                box_id,
                recordings_since_days: recordings_since,
                force,
            };
            let r = callrec::hub::restore::restore(cfg, &conn, &o)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for (key, why) in &r.refused {
                    println!("refused sidecar {key}: {why}");
                }
                println!(
                    "box {}: {} sidecar(s), {} call(s) restored, {} ledger entr(ies) of {} found, {} segment(s); {} recording(s) downloaded ({} bytes), {} already in place",
                    r.box_id,
                    r.sidecars,
                    r.written.calls,
                    r.written.ledger_entries,
                    r.ledger_entries_found,
                    r.written.segments,
                    r.recordings,
                    r.recording_bytes,
                    r.recordings_present
                );
                if let Some(seq) = r.ledger_broken_at_seq {
                    println!("the archived ledger is not whole from entry {seq} on: entries from there were not restored; `callrec verify --store` names the calls without one. Do not start recording before the box's administrator has looked (new entries would reuse those numbers)");
                }
            }
            if !r.refused.is_empty() {
                anyhow::bail!(
                    "{} sidecar(s) refused (listed above); run `callrec archive verify --box {}`",
                    r.refused.len(),
                    r.box_id
                );
            }
            Ok(())
        }
        ArchiveCmd::Verify {
            box_id,
            since,
            json,
        } => verify(cfg, box_id, since, json),
        ArchiveCmd::Retention {
            cmd: ArchiveRetentionCmd::Run { dry_run, json, out },
        } => {
            cfg.archive.as_ref().context(
                "no [archive] section in the config: there is no archive to apply retention to",
            )?;
            let conn = super::open_index(cfg)?;
            let (key, _) = callrec::evidence::key::ensure(&cfg.storage.dir)?;
            // In a fleet the hub deletes from the archive (the boxes' store users may not); a
            // single box with delete rights runs it itself.
            let o = if callrec::hub::is_hub(cfg) {
                callrec::hub::orders::retention_run(
                    cfg,
                    &conn,
                    &key,
                    &super::cli_actor(),
                    chrono::Utc::now(),
                    dry_run,
                )?
            } else {
                callrec::archive::lock::retention_run(
                    cfg,
                    &conn,
                    &key,
                    &super::cli_actor(),
                    chrono::Utc::now(),
                    dry_run,
                )?
            };
            if let (Some(id), Some(dir)) = (o.removal_id, out.as_ref()) {
                callrec::archive::lock::write_removal(&conn, id, &key, dir)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&o)?);
                return Ok(());
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            for c in &o.removed {
                println!(
                    "{verb} call {:>8}: {} object version(s) {:?}",
                    c.call_id,
                    c.versions.len(),
                    c.versions
                        .iter()
                        .map(|v| format!("{}@{}", v.key, v.version_id))
                        .collect::<Vec<_>>()
                );
            }
            for k in &o.kept {
                println!(
                    "kept   call {:>8}: due {}, but {}",
                    k.call_id, k.due_at_utc, k.why
                );
            }
            println!(
                "{verb} {} call(s) from the archive; kept {} due call(s){}",
                o.removed.len(),
                o.kept.len(),
                o.removal_id
                    .map(|id| format!("; recorded as archive removal #{id}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        ArchiveCmd::Status { json } => {
            let a = cfg.archive.as_ref().context(
                "no [archive] section in the config: nothing is shipped (see docs/admin.md, \"Archive (S3)\")",
            )?;
            let conn = super::open_existing(cfg, ": start the recorder first")?;
            let b = store::archive::backlog(&conn, chrono::Utc::now())?;
            let alarm = store::alarms::active(&conn)?
                .into_iter()
                .find(|x| x.kind == store::alarms::ARCHIVE_BACKLOG);
            if json {
                let v = serde_json::json!({
                    "endpoint": a.endpoint,
                    "bucket": a.bucket,
                    "prefix": a.prefix,
                    "backlog": b,
                    "alarm": alarm,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "archive: {} bucket {} prefix {:?}",
                a.endpoint, a.bucket, a.prefix
            );
            println!(
                "backlog: {} call(s), {} bytes, oldest ended {} ({} s ago)",
                b.calls,
                b.bytes,
                b.oldest_ended_at_utc.as_deref().unwrap_or("-"),
                b.oldest_age_s
            );
            println!("archived: {}  failed: {}", b.archived_calls, b.failed_calls);
            match (&b.last_error, b.last_error_call_id) {
                (Some(e), Some(id)) => println!("last error (call {id}): {e}"),
                _ => println!("last error: none"),
            }
            if let Some(al) = alarm {
                println!(
                    "ALARM archive_backlog since {}: {}",
                    al.raised_at_utc, al.detail
                );
            }
            Ok(())
        }
    }
}

fn verify(
    cfg: &Config,
    box_id: Option<String>,
    since: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let a = cfg.archive.as_ref().context(
        "no [archive] section in the config: no bucket to verify (see docs/admin.md, \"Archive (S3)\")",
    )?;
    if let Some(d) = &since {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("--since {d:?}: give a day as YYYY-MM-DD"))?;
    }
    let scope = callrec::archive::verify::Scope { box_id, since };
    let report = callrec::archive::verify::run(a, &scope)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for b in &report.boxes {
            println!(
                "box {}: {} call(s), {} object(s) re-hashed ({} bytes), ledger {} entries (head seq {}), {} call(s) newer than the shipped ledger",
                b.box_id,
                b.calls,
                b.objects_hashed,
                b.bytes_hashed,
                b.ledger_entries,
                b.ledger_head_seq.map_or("-".into(), |s| s.to_string()),
                b.ledger_pending
            );
        }
        for f in &report.findings {
            println!(
                "{} {} {}: {}",
                f.kind.to_uppercase(),
                f.box_id,
                f.key,
                f.detail
            );
        }
        if report.boxes.is_empty() {
            println!(
                "no box has shipped anything under {}/{}",
                a.bucket, a.prefix
            );
        }
    }
    if !report.findings.is_empty() {
        anyhow::bail!(
            "{} finding(s) in the archive: see above",
            report.findings.len()
        );
    }
    Ok(())
}
