//! `callrec targets`: a lead's goals for the figures of a team or a campaign, and how the
//! actual figures compare (current period and the four before it). The rules are
//! `store::targets`, which `/api/targets` uses too.

use super::{cli_actor, open_existing, open_index};
use anyhow::Context;
use callrec::config::Config;
use callrec::store::audit::Actor;
use callrec::store::targets::{self, Direction, Period, Scope, Target};
use clap::Subcommand;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["team", "campaign"])))]
pub struct ScopeArgs {
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    campaign: Option<String>,
}

impl ScopeArgs {
    fn scope(self) -> anyhow::Result<Scope> {
        match (self.team, self.campaign) {
            (Some(t), _) => Ok(Scope::Team(t)),
            (None, Some(c)) => Ok(Scope::Campaign(c)),
            (None, None) => anyhow::bail!("give --team or --campaign"),
        }
    }
}

#[derive(Subcommand)]
pub enum TargetsCmd {
    /// Set (or replace) the goal for a figure (see `callrec figures --definitions`). Audited.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        figure: String,
        /// day | week (from Monday) | month, UTC.
        #[arg(long)]
        period: String,
        #[arg(long)]
        goal: f64,
        /// higher | lower: which way is better.
        #[arg(long)]
        direction: String,
        /// How far on the wrong side of the goal is still "near", in the figure's units.
        #[arg(long, default_value_t = 0.0)]
        tolerance: f64,
    },
    /// Every goal against the actual figures: met / near / missed now, and the four periods
    /// before.
    Show {
        #[command(flatten)]
        scope: ScopeArgs,
        /// A time in the period to show (default now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn targets(cfg: &Config, cmd: TargetsCmd) -> anyhow::Result<()> {
    match cmd {
        TargetsCmd::Set {
            scope,
            figure,
            period,
            goal,
            direction,
            tolerance,
        } => {
            let period = Period::parse(&period)
                .with_context(|| format!("--period {period:?}: use day, week or month"))?;
            let direction = match direction.as_str() {
                "higher" => Direction::Higher,
                "lower" => Direction::Lower,
                other => anyhow::bail!("--direction {other:?}: use higher or lower"),
            };
            let t = Target {
                scope: scope.scope()?,
                figure,
                period,
                goal,
                direction,
                tolerance,
            };
            let conn = open_index(cfg)?;
            let who = cli_actor();
            targets::set(&conn, &t, Actor::local(&who))?;
            println!(
                "{} {} per {}: goal {} ({} is better, tolerance {})",
                serde_json::to_string(&t.scope)?,
                t.figure,
                t.period.as_str(),
                t.goal,
                t.direction.as_str(),
                t.tolerance
            );
            Ok(())
        }
        TargetsCmd::Show { scope, at, json } => {
            let now = callrec::clock::utc_now();
            let at = match at {
                Some(a) => callrec::clock::parse_bound(&a)
                    .with_context(|| format!("--at {a:?}: give a date or an RFC 3339 time"))?,
                None => now.clone(),
            };
            let conn = open_existing(cfg, " yet: start `callrec record` with this config first")?;
            let reports = targets::report(&conn, &scope.scope()?, &at, &now)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
                return Ok(());
            }
            let v = |p: &targets::Point| {
                format!(
                    "{} {}",
                    p.actual.map_or("-".into(), |a| format!("{a:.1}")),
                    serde_json::to_value(p.verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )
            };
            for r in reports {
                let trend: Vec<String> = r.trend.iter().map(v).collect();
                println!(
                    "{} per {}: goal {} ({} better, ±{}): now {}; before: {}",
                    r.target.figure,
                    r.target.period.as_str(),
                    r.target.goal,
                    r.target.direction.as_str(),
                    r.target.tolerance,
                    v(&r.current),
                    trend.join(", ")
                );
            }
            Ok(())
        }
    }
}
