//! `callrec archive …`: what the shipper has not yet got into the object store. Reads the index
//! only; never ships, marks or deletes anything (the shipper is `callrec ship`).

use anyhow::Context;
use callrec::config::Config;
use callrec::store;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ArchiveCmd {
    /// Backlog (calls, bytes, oldest age), archived and failed calls, the last upload error.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn archive(cfg: &Config, cmd: ArchiveCmd) -> anyhow::Result<()> {
    match cmd {
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
