//! `callrec archive …`: `status` (what the shipper has not yet got into the object store; reads
//! the index only) and `retention run` (removes archived objects whose archive keep period has
//! passed: `archive::lock::retention_run`). Neither ships anything (the shipper is
//! `callrec ship`).

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
}

pub fn archive(cfg: &Config, cmd: ArchiveCmd) -> anyhow::Result<()> {
    match cmd {
        ArchiveCmd::Retention {
            cmd: ArchiveRetentionCmd::Run { dry_run, json, out },
        } => {
            cfg.archive.as_ref().context(
                "no [archive] section in the config: there is no archive to apply retention to",
            )?;
            let conn = super::open_index(cfg)?;
            let (key, _) = callrec::evidence::key::ensure(&cfg.storage.dir)?;
            let o = callrec::archive::lock::retention_run(
                cfg,
                &conn,
                &key,
                &super::cli_actor(),
                chrono::Utc::now(),
                dry_run,
            )?;
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
                "no [archive] section in the config: nothing is shipped (see the README, \"Archive (S3)\")",
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
