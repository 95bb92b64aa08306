//! `callrec users …`, `callrec tokens …` and `callrec audit verify`: accounts, API tokens and the
//! audit chain. Every change goes through `store::users`, which audits it in the same
//! transaction, exactly as the web UI's admin pages do.

use super::{cli_actor, open_existing, open_index, read_password_stdin};
use anyhow::bail;
use callrec::config::Config;
use callrec::store::audit::{self, Actor};
use callrec::store::users;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Add a user; prints a one-time password they must change at first login.
    Add {
        name: String,
        /// admin | supervisor | qa | agent | auditor
        #[arg(long)]
        role: String,
        /// The agent name calls carry for this person (default: the user name).
        #[arg(long)]
        agent_id: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// Read the password from stdin instead (for automation); no change is forced.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a user a new one-time password (also unlocks a locked account, ends sessions).
    Passwd {
        name: String,
        /// Read the password from stdin instead; no change is forced.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account and end its sessions.
    Disable { name: String },
    /// Re-enable an account.
    Enable { name: String },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token for one integration; prints the secret once.
    Add { name: String },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Recompute the hash chain; exits non-zero and names each bad row if it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Rows that mention a number (in any notation) or a text, found by its keyed hash: the log
    /// never holds either in the clear. "Who searched for this number?"
    Mentions {
        /// A customer's number; only its digits count.
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        number: Option<String>,
        /// Exact text (a note, a CTI id, a search term).
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn audit_mentions(
    cfg: &Config,
    number: Option<&str>,
    text: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let conn = open_existing(cfg, ": no audit log yet")?;
    let key = callrec::store::pseudonym::Key::load(&cfg.storage.dir)?;
    let pseudonym = match (number, text) {
        (Some(n), _) => key.number(n),
        (None, Some(t)) => key.text(t),
        (None, None) => bail!("give --number or --text"),
    };
    let rows = audit::list(
        &conn,
        &audit::Filter {
            mentions: Some(pseudonym.clone()),
            limit: u32::MAX,
            ..Default::default()
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in &rows {
        let call = r.call_id.map(|c| format!(" call {c}")).unwrap_or_default();
        println!(
            "{} {} {} {}{call} {}",
            r.id, r.at_utc, r.actor, r.action, r.detail
        );
    }
    println!("{} row(s) mention {pseudonym}", rows.len());
    Ok(())
}

/// A password from stdin (not forced to change), or a fresh one-time password (forced).
fn new_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    Ok(if from_stdin {
        (read_password_stdin()?, false)
    } else {
        (users::one_time_password()?, true)
    })
}

fn print_password(name: &str, pw: &str, forced: bool, done: &str) {
    if forced {
        println!("{name}: one-time password (change at first login): {pw}");
    } else {
        println!("{name}: {done}");
    }
}

pub fn users(cfg: &Config, cmd: UsersCmd) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    let actor = cli_actor();
    let by = Actor::local(&actor);
    match cmd {
        UsersCmd::Add {
            name,
            role,
            agent_id,
            team,
            password_stdin,
        } => {
            let role = users::Role::parse(&role)?;
            let (pw, forced) = new_password(password_stdin)?;
            let new = users::NewUser {
                username: &name,
                role,
                agent_id: agent_id.as_deref(),
                team: team.as_deref(),
                password: &pw,
                must_change: forced,
            };
            users::add_user(&conn, &new, by)?;
            print_password(&name, &pw, forced, "added");
        }
        UsersCmd::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, forced) = new_password(password_stdin)?;
            users::reset_password(&conn, &name, &pw, forced, by)?;
            print_password(&name, &pw, forced, "password set");
        }
        UsersCmd::Disable { name } => {
            users::set_disabled(&conn, &name, true, by)?;
            println!("{name}: disabled");
        }
        UsersCmd::Enable { name } => {
            users::set_disabled(&conn, &name, false, by)?;
            println!("{name}: enabled");
        }
        UsersCmd::List { json } => print_users(&users::list_users(&conn)?, json)?,
    }
    Ok(())
}

fn print_users(list: &[users::User], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<16} {:<10} state",
        "user", "role", "agent id", "team"
    );
    let now = callrec::clock::utc_now();
    for u in list {
        let state = if u.disabled {
            "disabled"
        } else if u.locked_until_utc.as_deref().is_some_and(|t| *t > *now) {
            "locked"
        } else if u.must_change {
            "must change password"
        } else {
            "active"
        };
        println!(
            "{:<20} {:<10} {:<16} {:<10} {state}",
            u.username,
            u.role.as_str(),
            u.agent_id,
            u.team.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

pub fn tokens(cfg: &Config, cmd: TokensCmd) -> anyhow::Result<()> {
    let conn = open_index(cfg)?;
    let actor = cli_actor();
    let by = Actor::local(&actor);
    match cmd {
        TokensCmd::Add { name } => {
            let (secret, _) = users::add_token(&conn, &name, by)?;
            println!("{secret}");
        }
        TokensCmd::List { json } => {
            let list = users::list_tokens(&conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for t in list {
                println!(
                    "{:<20} created {} by {}  last used {}{}",
                    t.name,
                    t.created_at_utc,
                    t.created_by,
                    t.last_used_utc.unwrap_or_else(|| "never".into()),
                    t.revoked_at_utc
                        .map(|r| format!("  REVOKED {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokensCmd::Revoke { name } => {
            users::revoke_token(&conn, &name, by)?;
            println!("{name}: revoked");
        }
    }
    Ok(())
}

pub fn audit(cfg: &Config, cmd: AuditCmd) -> anyhow::Result<()> {
    let json = match cmd {
        AuditCmd::Verify { json } => json,
        AuditCmd::Mentions { number, text, json } => {
            return audit_mentions(cfg, number.as_deref(), text.as_deref(), json)
        }
    };
    let conn = open_existing(cfg, ": nothing to verify")?;
    let r = audit::verify(&conn)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for b in &r.breaks {
            println!("row {}: {}", b.id, b.problem);
        }
        println!("{} rows, head {}", r.rows, r.head_hash);
    }
    if !r.breaks.is_empty() {
        bail!("the audit chain is broken at {} place(s); treat the log as tampered and keep a copy of the database", r.breaks.len());
    }
    if !json {
        println!("audit chain intact");
    }
    Ok(())
}
