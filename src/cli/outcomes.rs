//! `callrec outcomes`: the per-campaign outcome lists (disposition codes) and the dialler/CRM
//! back-fill. The rules (validation, fallback to the `default` list, history, audit) are in
//! `store::outcomes`, which the web service uses too.

use super::{cli_actor, open_existing, open_index};
use anyhow::Context;
use callrec::config::Config;
use callrec::store::audit::Actor;
use callrec::store::outcomes::{self, List};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum OutcomesCmd {
    /// The outcome lists: every campaign's, or the one a campaign's calls use (its own or
    /// `default`).
    List {
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replace a campaign's list with the one in a TOML or JSON file (`[[outcome]]` entries with
    /// code, label, class and optionally amount = true; see docs/qa-lead.md). Audited.
    Set {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Back-fill outcomes from a dialler/CRM CSV: a header with call_id or external_id, outcome
    /// and optionally amount. All or nothing: any bad line refuses the file. Audited per call.
    Import { file: PathBuf },
}

pub fn outcomes(cfg: &Config, cmd: OutcomesCmd) -> anyhow::Result<()> {
    match cmd {
        OutcomesCmd::List { campaign, json } => {
            let conn = open_existing(cfg, " yet: start `callrec record` with this config first")?;
            let lists: Vec<(String, List)> = match campaign {
                Some(c) => vec![outcomes::list_for(&conn, Some(&c))?],
                None => outcomes::all_lists(&conn)?,
            };
            if json {
                let v: serde_json::Map<String, serde_json::Value> = lists
                    .into_iter()
                    .map(|(c, l)| Ok((c, serde_json::to_value(l)?)))
                    .collect::<Result<_, serde_json::Error>>()?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            for (c, l) in lists {
                println!("{c}:");
                for o in l.outcome {
                    let amount = if o.amount { " (amount)" } else { "" };
                    println!(
                        "  {:<20} {:<16} {}{amount}",
                        o.code,
                        o.class.as_str(),
                        o.label
                    );
                }
            }
            Ok(())
        }
        OutcomesCmd::Set { campaign, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let json = file.extension().is_some_and(|e| e == "json");
            let list =
                outcomes::parse_list(&text, json).with_context(|| format!("{}", file.display()))?;
            let conn = open_index(cfg)?;
            outcomes::seed_defaults(&conn)?;
            let who = cli_actor();
            outcomes::set_list(&conn, &campaign, &list, Actor::local(&who))?;
            println!("campaign {campaign}: {} outcome(s) set", list.outcome.len());
            Ok(())
        }
        OutcomesCmd::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let conn = open_index(cfg)?;
            outcomes::seed_defaults(&conn)?;
            let who = cli_actor();
            let done = outcomes::import_csv(&conn, &text, Actor::local(&who))
                .with_context(|| format!("{}", file.display()))?;
            println!("{} call outcome(s) set", done.set.len());
            Ok(())
        }
    }
}
