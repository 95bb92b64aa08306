//! `callrec hub …`: the fleet's QA hub. Without a subcommand it runs (indexer and web service);
//! `rebuild` re-reads every sidecar in the bucket, `backup` and `restore-state` save and bring
//! back the hub's own state. Parsing and printing only; the work is in the library's `hub`.

use callrec::config::Config;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum HubCmd {
    /// What the hub holds: calls per box (floor), and the sidecars it refused with why.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Recreate the calls index from the bucket alone: every sidecar is read again; known calls
    /// keep their hub id (matched by box and box call id), so QA records stay linked.
    Rebuild {
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent snapshot of the hub's index (users, QA, audit, calls) to the bucket
    /// under <prefix>hub/backup/<utc>.sqlite, with its SHA-256.
    Backup {
        #[arg(long)]
        json: bool,
    },
    /// Put the newest snapshot (or --at KEY) in place of the hub's index, after checking its
    /// SHA-256 and PRAGMA integrity_check. Refused while the hub runs.
    RestoreState {
        /// A snapshot key, e.g. fleet/hub/backup/20261205T180000Z.sqlite.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn hub(cfg: Config, cmd: Option<HubCmd>) -> anyhow::Result<()> {
    let print = |json: bool, v: serde_json::Value, text: String| -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{text}");
        }
        Ok(())
    };
    match cmd {
        None => callrec::daemon::hub(cfg),
        Some(HubCmd::Status { json }) => {
            let conn = super::open_existing(&cfg, ": start callrec hub first")?;
            let boxes = callrec::store::hub::per_box(&conn)?;
            let rejected = callrec::store::hub::rejected(&conn)?;
            let mut text = String::new();
            for (b, n) in &boxes {
                text.push_str(&format!("box {b}: {n} call(s)\n"));
            }
            text.push_str(&format!("refused sidecars: {}", rejected.len()));
            for (k, why) in &rejected {
                text.push_str(&format!("\n  {k}: {why}"));
            }
            let v = serde_json::json!({
                "boxes": boxes.iter().map(|(b, n)| serde_json::json!({"box_id": b, "calls": n})).collect::<Vec<_>>(),
                "rejected": rejected.iter().map(|(k, r)| serde_json::json!({"key": k, "reason": r})).collect::<Vec<_>>(),
            });
            print(json, v, text)
        }
        Some(HubCmd::Rebuild { json }) => {
            let r = callrec::hub::indexer::rebuild(&cfg, callrec::clock::system())?;
            let text = format!(
                "rebuilt: {} sidecar(s) listed, {} new, {} updated, {} unchanged, {} refused; {} hub call(s); {} no longer in the bucket{}",
                r.pass.listed,
                r.pass.new,
                r.pass.updated,
                r.pass.unchanged,
                r.pass.rejected,
                r.calls,
                r.missing_from_bucket.len(),
                if r.missing_from_bucket.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.missing_from_bucket.join(", "))
                }
            );
            print(json, serde_json::to_value(&r)?, text)
        }
        Some(HubCmd::Backup { json }) => {
            let s = callrec::hub::backup::backup(&cfg, chrono::Utc::now())?;
            let text = format!(
                "backed up: {} ({} bytes, sha256 {})",
                s.key, s.bytes, s.sha256
            );
            print(json, serde_json::to_value(&s)?, text)
        }
        Some(HubCmd::RestoreState { at, json }) => {
            let r = callrec::hub::backup::restore_state(&cfg, at.as_deref(), chrono::Utc::now())?;
            let text = format!(
                "restored {} ({} bytes, sha256 {}){}",
                r.key,
                r.bytes,
                r.sha256,
                r.previous
                    .as_ref()
                    .map(|p| format!("; the previous index is {}", p.display()))
                    .unwrap_or_default()
            );
            print(json, serde_json::to_value(&r)?, text)
        }
    }
}
