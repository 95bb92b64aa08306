//! `callrec figures`: the operator's figures of an agent or a team over a period, as a table
//! or JSON. The definitions and the arithmetic are `store::figures` (the web service's
//! `/api/figures` gives the same numbers); this only reads the index and prints.

use super::open_existing;
use anyhow::Context;
use callrec::config::Config;
use callrec::store::figures::{self, Figures, Subject, DEFINITIONS};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["agent", "team"])))]
pub struct FiguresArgs {
    /// One agent (their agent id, as calls carry it).
    #[arg(long)]
    agent: Option<String>,
    /// A team: the sum over its members (users with this team).
    #[arg(long)]
    team: Option<String>,
    /// Start of the period (a date, midnight UTC, or an RFC 3339 time), included.
    #[arg(long)]
    from: String,
    /// End of the period, excluded.
    #[arg(long)]
    to: String,
    #[arg(long)]
    json: bool,
    /// Print each figure's definition under the table.
    #[arg(long)]
    definitions: bool,
}

fn ms(v: i64) -> String {
    let s = v / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} %"))
}

fn print(f: &Figures) {
    let who = match &f.subject {
        Subject::Agent(a) => format!("agent {a}"),
        Subject::Team(t) => format!("team {t} ({})", f.agents.join(", ")),
        Subject::Campaign(c) => format!("campaign {c}"),
    };
    println!("{who}, {} to {}", f.from_utc, f.to_utc);
    let rows: Vec<(&str, String)> = vec![
        (
            "calls handled",
            format!(
                "{} ({} in, {} out)",
                f.calls_handled, f.calls_inbound, f.calls_outbound
            ),
        ),
        ("talk", ms(f.talk_ms)),
        ("hold", ms(f.hold_ms)),
        ("after-call work", ms(f.acw_ms)),
        ("AHT", f.aht_ms.map_or("-".into(), ms)),
        ("logged in", ms(f.logged_in_ms)),
        (
            "calls per logged-in hour",
            f.calls_per_logged_in_hour
                .map_or("-".into(), |v| format!("{v:.2}")),
        ),
        ("occupancy", pct(f.occupancy_percent)),
        (
            "conversion",
            format!(
                "{} ({} of {} right-party contacts; {} without outcome)",
                pct(f.conversion_percent),
                f.positive_outcomes,
                f.right_party_contacts,
                f.calls_without_outcome
            ),
        ),
        (
            "survey response rate",
            format!(
                "{} ({} of {})",
                pct(f.survey_response_rate_percent),
                f.survey_completes,
                f.survey_attempts
            ),
        ),
        (
            "mean QA score",
            format!("{} ({} evaluations)", pct(f.qa_mean_percent), f.evaluations),
        ),
        ("QA pass rate", pct(f.qa_pass_rate_percent)),
        (
            "compliance pass rate",
            format!(
                "{} ({} checks)",
                pct(f.compliance_pass_rate_percent),
                f.compliance_checks
            ),
        ),
        (
            "complaints",
            f.complaints.as_ref().map_or("-".into(), |k| {
                format!(
                    "{} filed, {} justified, {} partly, {} not, {} pending, {} overdue",
                    k.filed, k.justified, k.partly_justified, k.not_justified, k.pending, k.overdue
                )
            }),
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<26} {v}");
    }
}

pub fn figures(cfg: &Config, a: FiguresArgs) -> anyhow::Result<()> {
    let bound = |k: &str, v: &str| {
        callrec::clock::parse_bound(v)
            .with_context(|| format!("--{k} {v:?}: give a date (2026-12-01) or an RFC 3339 time"))
    };
    let (from, to) = (bound("from", &a.from)?, bound("to", &a.to)?);
    if from >= to {
        anyhow::bail!("--from must be before --to");
    }
    let subject = match (a.agent, a.team) {
        (Some(agent), _) => Subject::Agent(agent),
        (None, Some(team)) => Subject::Team(team),
        (None, None) => anyhow::bail!("give --agent or --team"),
    };
    let conn = open_existing(cfg, " yet: start `callrec record` with this config first")?;
    let f = figures::compute(&conn, &subject, &from, &to, &callrec::clock::utc_now())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(());
    }
    print(&f);
    if a.definitions {
        println!();
        for (name, def) in DEFINITIONS {
            println!("{name}: {def}");
        }
    }
    Ok(())
}
