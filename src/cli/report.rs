//! `callrec report completeness`: per seat, for a box-local day, calls announced vs recorded,
//! one-sided calls, gaps and dropped frames, as a table or JSON. The figures are
//! `store::completeness::report` (the web service's `/api/reports/completeness` gives the same
//! numbers); this only reads the index and prints.

use super::open_existing;
use anyhow::Context;
use callrec::config::Config;
use callrec::store::completeness;

#[derive(clap::Subcommand)]
pub enum ReportCmd {
    /// Proof that recording is complete, per seat, for one day.
    Completeness {
        /// The box's local date, YYYY-MM-DD; default today.
        #[arg(long)]
        day: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn report(cfg: &Config, cmd: ReportCmd) -> anyhow::Result<()> {
    let ReportCmd::Completeness { day, json } = cmd;
    let (day, from, to) = callrec::clock::local_day(day.as_deref(), chrono::Utc::now())
        .with_context(|| format!("--day {day:?}: give a date, YYYY-MM-DD"))?;
    let conn = open_existing(cfg, ": nothing recorded yet")?;
    let seats: Vec<String> = cfg.seats.iter().map(|s| s.id.clone()).collect();
    let floor = cfg.alarms.noise_floor_dbfs;
    let rows = completeness::report(&conn, &cfg.box_.id, &seats, &from, &to, floor)?;
    if json {
        let doc = serde_json::json!({
            "day": day, "from_utc": from, "to_utc": to, "noise_floor_dbfs": floor, "seats": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("completeness on {day} (calls started {from} to {to}; one-sided: a party's loudest 20 ms under {floor} dBFS)");
    println!(
        "{:<16} {:>9} {:>7} {:>6} {:>8} {:>11} {:>9} {:>5} {:>8} {:>8}",
        "seat",
        "announced",
        "refused",
        "calls",
        "recorded",
        "interrupted",
        "one-sided",
        "gaps",
        "gap s",
        "dropped"
    );
    for r in rows {
        println!(
            "{:<16} {:>9} {:>7} {:>6} {:>8} {:>11} {:>9} {:>5} {:>8.1} {:>8}",
            r.seat,
            r.announced,
            r.refused,
            r.calls,
            r.recorded,
            r.interrupted,
            r.one_sided,
            r.gaps,
            r.gap_ms as f64 / 1000.0,
            r.dropped_frames
        );
    }
    Ok(())
}
