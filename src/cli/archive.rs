//! `callrec archive …`: what the shipper has not yet got into the object store (`status`, reads
//! the index), and whether the bucket still holds what the boxes shipped (`verify`, reads the
//! bucket). Never ships, marks or deletes anything (the shipper is `callrec ship`).

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
}

pub fn archive(cfg: &Config, cmd: ArchiveCmd) -> anyhow::Result<()> {
    match cmd {
        ArchiveCmd::Verify {
            box_id,
            since,
            json,
        } => verify(cfg, box_id, since, json),
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

fn verify(
    cfg: &Config,
    box_id: Option<String>,
    since: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let a = cfg.archive.as_ref().context(
        "no [archive] section in the config: no bucket to verify (see the README, \"Archive (S3)\")",
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
