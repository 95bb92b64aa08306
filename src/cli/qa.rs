//! `callrec qa seed-demo` (the demo's QA content) and `callrec transcript import` (a
//! speech-to-text result for one call; the web API's upload runs the same library function).

use super::{cli_actor, open_index};
use anyhow::Context;
use callrec::config::Config;
use callrec::qa::transcript::TranscriptError;
use callrec::store::audit::Actor;
use callrec::store::compliance::{self, ComplianceError};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum QaCmd {
    /// Demo content (accounts, a sampling plan drawn with a fixed seed, evaluations, a spot
    /// check) for `make demo`; does nothing if it ran before. Not for a production box.
    SeedDemo,
}

#[derive(Subcommand)]
pub enum TranscriptCmd {
    /// Import a WebVTT (.vtt) or JSON transcript for a call; replaces an earlier one.
    Import { call_id: i64, file: PathBuf },
}

pub fn qa(cfg: &Config, cmd: QaCmd) -> anyhow::Result<()> {
    let QaCmd::SeedDemo = cmd;
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
    if let Some(k) = s.complaint {
        println!("demo complaint {k}: filed by qa1, ruled justified by lead (see /complaints/{k})");
    }
    Ok(())
}

pub fn transcript(cfg: &Config, cmd: TranscriptCmd) -> anyhow::Result<()> {
    let TranscriptCmd::Import { call_id, file } = cmd;
    let conn = open_index(cfg)?;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (it must be UTF-8 text)", file.display()))?;
    let source = file.display().to_string();
    let actor = cli_actor();
    let by = Actor::local(&actor);
    let (n, format) =
        compliance::import_transcript(&conn, call_id, &text, &source, by).map_err(|e| match e {
            ComplianceError::Transcript(e @ TranscriptError::BeyondCall { .. }) => {
                anyhow::Error::new(e).context(format!("{source} does not fit call {call_id}"))
            }
            ComplianceError::Transcript(e) => {
                anyhow::Error::new(e).context(format!("parsing {source}"))
            }
            e => e.into(),
        })?;
    println!("call {call_id}: imported {n} segment(s) ({format}) from {source}");
    Ok(())
}
