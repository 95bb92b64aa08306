//! `callrec complaints`: the complaints register from the box's command line — file, take a
//! step (ack, investigate, respond, rule, appeal, decide), list and show. Every step names the
//! account it is taken for (`--as USER`): the store applies that account's role and scope, as
//! on the web, and the audit row names the command line's login too (`cli:<login>`).

use super::{cli_actor, open_existing, open_index};
use anyhow::Context;
use callrec::config::Config;
use callrec::store::audit::Actor;
use callrec::store::complaints::{self, Complaint, Filter, NewComplaint, Ruling, Source, Who};
use callrec::store::search::Scope;
use callrec::store::users::{self, Role};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ComplaintsCmd {
    /// File a complaint against a call (--call) or an agent and a time (--agent, --at).
    File {
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        call: Option<i64>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        at: Option<String>,
        /// Filed for the --as supervisor's department (their team), not for a customer.
        #[arg(long)]
        department: bool,
        #[arg(long)]
        category: String,
        #[arg(long)]
        text: String,
    },
    /// Acknowledge (a lead over the agent).
    Ack {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
    },
    /// Start investigating (a lead over the agent).
    Investigate {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
    },
    /// The agent's response, before the ruling.
    Respond {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        text: String,
    },
    /// Rule: justified | partly_justified | not_justified, with a reason.
    Rule {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        ruling: String,
        #[arg(long)]
        reason: String,
    },
    /// The one appeal (the agent concerned or whoever filed it).
    Appeal {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        text: String,
    },
    /// Decide the appeal (a lead other than the one who ruled): final.
    Decide {
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        ruling: String,
        #[arg(long)]
        reason: String,
    },
    /// The complaints an account may see (without --as: all of them).
    List {
        #[arg(long = "as")]
        as_user: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// Only those past their final-response deadline and not ruled.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
    },
    /// One complaint.
    Show {
        id: i64,
        #[arg(long = "as")]
        as_user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn who(conn: &rusqlite::Connection, cfg: &Config, name: Option<&str>) -> anyhow::Result<Who> {
    match name {
        Some(n) => {
            let u = users::get_user(conn, n)?
                .with_context(|| format!("--as {n:?}: no such account"))?;
            anyhow::ensure!(!u.disabled, "--as {n:?}: the account is disabled");
            Ok(Who::of(&u, cfg.server.reviewer_scope))
        }
        // The box's operator reads everything, as an auditor would.
        None => Ok(Who {
            name: cli_actor(),
            role: Role::Auditor,
            agent: String::new(),
            team: None,
            scope: Scope::All,
        }),
    }
}

fn ruling(s: &str) -> anyhow::Result<Ruling> {
    Ruling::parse(s).with_context(|| {
        format!("--ruling {s:?}: use justified, partly_justified or not_justified")
    })
}

fn line(k: &Complaint) -> String {
    format!(
        "{} {} agent {} call {} {} {}{}{}",
        k.id,
        k.status.as_str(),
        k.agent,
        k.call_id.map_or("-".into(), |c| c.to_string()),
        k.category,
        k.final_ruling.map_or("", Ruling::as_str),
        if k.overdue { " OVERDUE" } else { "" },
        format_args!(" due {}", k.due_at_utc),
    )
}

pub fn complaints(cfg: &Config, cmd: ComplaintsCmd) -> anyhow::Result<()> {
    // Listing and showing only read; every other command writes (and audits).
    let conn = match cmd {
        ComplaintsCmd::List { .. } | ComplaintsCmd::Show { .. } => {
            open_existing(cfg, " yet: start `callrec record` with this config first")?
        }
        _ => {
            drop(open_existing(
                cfg,
                " yet: start `callrec record` with this config first",
            )?);
            open_index(cfg)?
        }
    };
    let now = callrec::clock::utc_now();
    let login = cli_actor();
    let by = Actor::local(&login);
    let done = |k: Complaint| {
        println!("{}", line(&k));
        Ok(())
    };
    match cmd {
        ComplaintsCmd::File {
            as_user,
            call,
            agent,
            at,
            department,
            category,
            text,
        } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            let n = NewComplaint {
                call_id: call,
                agent,
                at_utc: at,
                source: if department {
                    Source::Department
                } else {
                    Source::Customer
                },
                category,
                text,
            };
            done(complaints::file(
                &conn,
                &w,
                &n,
                cfg.complaints.response_days,
                &now,
                by,
            )?)
        }
        ComplaintsCmd::Ack { id, as_user } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::acknowledge(&conn, &w, id, &now, by)?)
        }
        ComplaintsCmd::Investigate { id, as_user } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::investigate(&conn, &w, id, &now, by)?)
        }
        ComplaintsCmd::Respond { id, as_user, text } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::respond(&conn, &w, id, &text, &now, by)?)
        }
        ComplaintsCmd::Rule {
            id,
            as_user,
            ruling: r,
            reason,
        } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::rule(
                &conn,
                &w,
                id,
                ruling(&r)?,
                &reason,
                &now,
                by,
            )?)
        }
        ComplaintsCmd::Appeal { id, as_user, text } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::appeal(&conn, &w, id, &text, &now, by)?)
        }
        ComplaintsCmd::Decide {
            id,
            as_user,
            ruling: r,
            reason,
        } => {
            let w = who(&conn, cfg, Some(&as_user))?;
            done(complaints::decide(
                &conn,
                &w,
                id,
                ruling(&r)?,
                &reason,
                &now,
                by,
            )?)
        }
        ComplaintsCmd::List {
            as_user,
            agent,
            overdue,
            json,
        } => {
            let w = who(&conn, cfg, as_user.as_deref())?;
            let f = Filter {
                agent,
                overdue,
                ..Filter::default()
            };
            let rows = complaints::list(&conn, &w, &f, &now)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for k in &rows {
                    println!("{}", line(k));
                }
            }
            Ok(())
        }
        ComplaintsCmd::Show { id, as_user, json } => {
            let w = who(&conn, cfg, as_user.as_deref())?;
            let k = complaints::get(&conn, &w, id, &now)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&k)?);
            } else {
                println!("{}", line(&k));
                for (label, v) in [
                    ("text", &k.text),
                    ("response", &k.response),
                    ("reason", &k.ruling_reason),
                    ("appeal", &k.appeal_text),
                    ("appeal reason", &k.appeal_reason),
                ] {
                    if let Some(v) = v {
                        println!("{label}: {v}");
                    }
                }
            }
            Ok(())
        }
    }
}
