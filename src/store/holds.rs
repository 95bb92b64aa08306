//! Legal holds: while a hold covers a call, nothing deletes it — not retention, not an erasure
//! request, not the disk-pressure guard (`store::lifecycle` checks inside its transaction).
//!
//! A hold covers one call, every call of an agent, or every call whose customer number falls in
//! a range. A reason is required. Releasing needs a second admin, and both acts are audited.
//! Placing and releasing need an enabled admin whose password is their own: an account still
//! on a one-time password (`must_change`) is refused, since whoever made it knows that password.
//!
//! Four eyes are enforced by the database too, whatever tool writes to it (a CHECK in migration
//! 11, triggers in migration 12): a hold row is never deleted, its placement (scope, call,
//! agent, numbers, reason, `placed_by`, `placed_at_utc`) never changes, a release must name
//! `released_by` (not `placed_by`), a time and a reason, and a release is final. This module is
//! the only writer and never tries any of those: a released hold stays as history.

use super::{audit, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a legal hold needs a reason (the case or matter it is for)")]
    NoReason,
    #[error("{0:?} is not a number range: give one number (+44 20 7946 0000), a prefix ending in * (+4420794*), or FROM-TO of equal length (442079460000-442079460999)")]
    BadRange(String),
    #[error("no legal hold #{0}")]
    NoSuchHold(i64),
    #[error("legal hold #{0} was already released")]
    AlreadyReleased(i64),
    #[error("legal hold #{id} was placed by {placed_by}; a second admin must release it")]
    SameAdmin { id: i64, placed_by: String },
    #[error("{0:?} is not an enabled admin account; holds are placed and released by admins")]
    NotAdmin(String),
    #[error("{0:?} still has a one-time password: change it first (log in to the web UI, which asks for a new one); holds are placed and released only by admins with their own password")]
    MustChangePassword(String),
}

/// What a hold covers.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum Scope {
    Call {
        call_id: i64,
    },
    Agent {
        agent: String,
    },
    /// Customer numbers whose leading digits (as many as `from` has) lie in `from..=to`; both
    /// are digits only and of equal length. One number is `from == to`, a prefix likewise.
    Numbers {
        from: String,
        to: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub id: i64,
    #[serde(flatten)]
    pub scope: Scope,
    pub reason: String,
    pub placed_by: String,
    pub placed_at_utc: String,
    pub released_by: Option<String>,
    pub released_at_utc: Option<String>,
    pub release_reason: Option<String>,
}

/// The digits of a phone number: `+44 (20) 7946-0000` → `442079460000`.
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

impl Hold {
    /// Whether this hold covers a call with these fields.
    pub fn covers(&self, call_id: i64, agent: Option<&str>, remote_number: Option<&str>) -> bool {
        match &self.scope {
            Scope::Call { call_id: c } => *c == call_id,
            Scope::Agent { agent: a } => agent == Some(a.as_str()),
            Scope::Numbers { from, to } => remote_number.is_some_and(|n| {
                let d = digits(n);
                d.len() >= from.len() && {
                    let head = &d[..from.len()];
                    head >= from.as_str() && head <= to.as_str()
                }
            }),
        }
    }
}

/// Parses a number range as the CLI and API take it (see [`HoldError::BadRange`]).
pub fn parse_range(text: &str) -> Result<Scope, HoldError> {
    let bad = || HoldError::BadRange(text.to_owned());
    let (from, to) = if let Some(prefix) = text.trim().strip_suffix('*') {
        (digits(prefix), digits(prefix))
    } else if let Some((a, b)) = text.split_once(['-', '–']).filter(|(a, b)| {
        // "+44 20 7946-0000" is one number with a dash; a range has two full numbers.
        digits(a).len() == digits(b).len() && digits(a).len() >= 3
    }) {
        (digits(a), digits(b))
    } else {
        (digits(text), digits(text))
    };
    if from.len() < 3 || from > to {
        return Err(bad());
    }
    Ok(Scope::Numbers { from, to })
}

fn row_to_hold(r: &rusqlite::Row) -> rusqlite::Result<Hold> {
    let scope: String = r.get(1)?;
    let scope = match scope.as_str() {
        "call" => Scope::Call { call_id: r.get(2)? },
        "agent" => Scope::Agent { agent: r.get(3)? },
        _ => Scope::Numbers {
            from: r.get(4)?,
            to: r.get(5)?,
        },
    };
    Ok(Hold {
        id: r.get(0)?,
        scope,
        reason: r.get(6)?,
        placed_by: r.get(7)?,
        placed_at_utc: r.get(8)?,
        released_by: r.get(9)?,
        released_at_utc: r.get(10)?,
        release_reason: r.get(11)?,
    })
}

const HOLD_COLUMNS: &str = "id, scope, call_id, agent, number_from, number_to, reason, placed_by,
    placed_at_utc, released_by, released_at_utc, release_reason";

/// Holds in force.
pub fn active(conn: &Connection) -> Result<Vec<Hold>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {HOLD_COLUMNS} FROM legal_holds WHERE released_at_utc IS NULL ORDER BY id"
    ))?;
    let v = st.query_map([], row_to_hold)?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// The holds in force that cover this call.
pub fn covering(conn: &Connection, call: &super::CallRow) -> Result<Vec<Hold>, StoreError> {
    Ok(active(conn)?
        .into_iter()
        .filter(|h| {
            h.covers(
                call.id,
                call.meta.agent.as_deref(),
                call.meta.remote_number.as_deref(),
            )
        })
        .collect())
}

/// Every hold, newest first, released ones included.
pub fn list(conn: &Connection) -> Result<Vec<Hold>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {HOLD_COLUMNS} FROM legal_holds ORDER BY id DESC"
    ))?;
    let v = st.query_map([], row_to_hold)?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// `username` is an enabled admin who has changed their one-time password.
fn require_admin(conn: &Connection, username: &str) -> Result<(), HoldError> {
    let must_change: Option<bool> = conn
        .query_row(
            "SELECT must_change FROM users WHERE username = ?1 AND role = 'admin' AND disabled = 0",
            [username],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    match must_change {
        None => Err(HoldError::NotAdmin(username.to_owned())),
        Some(true) => Err(HoldError::MustChangePassword(username.to_owned())),
        Some(false) => Ok(()),
    }
}

/// Who places or releases a hold: an admin account of this index, or the fleet's hub through a
/// signed order (`archive::orders`), whose admins are the hub's accounts, not this box's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authority {
    LocalAdmin,
    HubOrder,
}

/// The name a hub admin's act carries on a box: `hub:<username>`, never a local account name.
pub fn hub_actor(hub_username: &str) -> String {
    format!("hub:{hub_username}")
}

/// Places a hold; returns its id. `by` must be an enabled admin account with its own password.
pub fn place(
    conn: &Connection,
    scope: &Scope,
    reason: &str,
    by: &str,
    now_utc: &str,
) -> Result<i64, HoldError> {
    place_as(conn, scope, reason, by, now_utc, Authority::LocalAdmin)
}

/// Places a hold a verified hub order carries (`archive::orders`): `hub_username` is the hub
/// admin who placed it at the hub (already checked there); recorded as `hub:<name>`.
pub fn place_from_hub(
    conn: &Connection,
    scope: &Scope,
    reason: &str,
    hub_username: &str,
    now_utc: &str,
) -> Result<i64, HoldError> {
    let by = hub_actor(hub_username);
    place_as(conn, scope, reason, &by, now_utc, Authority::HubOrder)
}

fn place_as(
    conn: &Connection,
    scope: &Scope,
    reason: &str,
    by: &str,
    now_utc: &str,
    authority: Authority,
) -> Result<i64, HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    if authority == Authority::LocalAdmin {
        require_admin(&tx, by)?;
    }
    let (kind, call_id, agent, from, to) = match scope {
        Scope::Call { call_id } => {
            super::get_call_row(&tx, *call_id)?;
            ("call", Some(*call_id), None, None, None)
        }
        Scope::Agent { agent } => ("agent", None, Some(agent.as_str()), None, None),
        Scope::Numbers { from, to } => (
            "numbers",
            None,
            None,
            Some(from.as_str()),
            Some(to.as_str()),
        ),
    };
    tx.execute(
        "INSERT INTO legal_holds (scope, call_id, agent, number_from, number_to, reason, placed_by, placed_at_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![kind, call_id, agent, from, to, reason, by, now_utc],
    )
    .map_err(StoreError::from)?;
    let id = tx.last_insert_rowid();
    audit::append(
        &tx,
        &audit::Event {
            actor: by,
            action: "hold.place",
            call_id,
            detail: serde_json::json!({"hold_id": id, "scope": scope, "reason": reason}),
            ip: None,
        },
    )?;
    tx.commit().map_err(StoreError::from)?;
    Ok(id)
}

/// Releases a hold. `by` must be an enabled admin, with its own password, other than the one
/// who placed it.
pub fn release(
    conn: &Connection,
    hold_id: i64,
    by: &str,
    reason: &str,
    now_utc: &str,
) -> Result<Hold, HoldError> {
    release_as(conn, hold_id, by, reason, now_utc, Authority::LocalAdmin)
}

/// Releases a hold a hub order placed, as the hub admin `hub_username` (`hub:<name>`); the
/// four-eyes rule still holds here (and in the database's triggers): the releasing hub admin
/// is not the placing one.
pub fn release_from_hub(
    conn: &Connection,
    hold_id: i64,
    hub_username: &str,
    reason: &str,
    now_utc: &str,
) -> Result<Hold, HoldError> {
    let by = hub_actor(hub_username);
    release_as(conn, hold_id, &by, reason, now_utc, Authority::HubOrder)
}

fn release_as(
    conn: &Connection,
    hold_id: i64,
    by: &str,
    reason: &str,
    now_utc: &str,
    authority: Authority,
) -> Result<Hold, HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    if authority == Authority::LocalAdmin {
        require_admin(&tx, by)?;
    }
    let hold = tx
        .query_row(
            &format!("SELECT {HOLD_COLUMNS} FROM legal_holds WHERE id = ?1"),
            [hold_id],
            row_to_hold,
        )
        .optional()
        .map_err(StoreError::from)?
        .ok_or(HoldError::NoSuchHold(hold_id))?;
    if hold.released_at_utc.is_some() {
        return Err(HoldError::AlreadyReleased(hold_id));
    }
    if hold.placed_by == by {
        return Err(HoldError::SameAdmin {
            id: hold_id,
            placed_by: hold.placed_by,
        });
    }
    tx.execute(
        "UPDATE legal_holds SET released_by = ?2, released_at_utc = ?3, release_reason = ?4 WHERE id = ?1",
        params![hold_id, by, now_utc, reason],
    )
    .map_err(StoreError::from)?;
    let call_id = match hold.scope {
        Scope::Call { call_id } => Some(call_id),
        _ => None,
    };
    audit::append(
        &tx,
        &audit::Event {
            actor: by,
            action: "hold.release",
            call_id,
            detail: serde_json::json!({"hold_id": hold_id, "placed_by": hold.placed_by, "reason": reason}),
            ip: None,
        },
    )?;
    tx.commit().map_err(StoreError::from)?;
    Ok(Hold {
        released_by: Some(by.to_owned()),
        released_at_utc: Some(now_utc.to_owned()),
        release_reason: Some(reason.to_owned()),
        ..hold
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::Actor;
    use crate::store::testutil::{TempStore, TestResult};
    use crate::store::users::{self, NewUser, Role, UserError};

    const NOW: &str = "2026-12-05T10:00:00.000Z";

    fn add_admin(conn: &Connection, name: &str, must_change: bool) -> TestResult {
        users::add_user(
            conn,
            &NewUser {
                username: name,
                role: Role::Admin,
                agent_id: None,
                team: None,
                password: &format!("{name}-secret-password"),
                must_change,
            },
            Actor::local("test"),
        )?;
        Ok(())
    }

    /// Runs `sql` behind the store's back and returns SQLite's refusal; fails if it was accepted.
    fn refused(conn: &Connection, sql: &str) -> String {
        match conn.execute_batch(sql) {
            Ok(()) => panic!("SQLite accepted {sql:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn row(conn: &Connection, id: i64) -> TestResult<Hold> {
        Ok(conn.query_row(
            &format!("SELECT {HOLD_COLUMNS} FROM legal_holds WHERE id = ?1"),
            [id],
            row_to_hold,
        )?)
    }

    /// Every way round four eyes with raw SQL, as a tool other than callrec could try it: SQLite
    /// refuses each one (migration 12's triggers, migration 11's CHECK), and the row is as it
    /// was.
    #[test]
    fn the_database_refuses_every_bypass_of_four_eyes() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        add_admin(&conn, "ann", false)?;
        add_admin(&conn, "ben", false)?;
        let scope = Scope::Agent {
            agent: "dave".into(),
        };
        let id = place(&conn, &scope, "case 17", "ann", NOW)?;
        let placed = row(&conn, id)?;

        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET released_at_utc = '{NOW}' WHERE id = {id}"),
        );
        assert!(e.contains("released_by naming a second admin"), "{e}");
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET released_at_utc = '{NOW}', release_reason = 'x', released_by = NULL WHERE id = {id}"),
        );
        assert!(e.contains("second admin"), "{e}");
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET released_at_utc = '{NOW}', release_reason = 'x', released_by = 'ann' WHERE id = {id}"),
        );
        assert!(e.contains("not the one who placed it"), "{e}");
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET placed_by = 'zed' WHERE id = {id}"),
        );
        assert!(e.contains("placement never changes"), "{e}");
        // Swapping the placer for the would-be releaser in the same statement: refused too
        // (whichever trigger fires first).
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET placed_by = 'ben', released_by = 'ann', released_at_utc = '{NOW}', release_reason = 'x' WHERE id = {id}"),
        );
        assert!(
            e.contains("placement never changes") || e.contains("second admin"),
            "{e}"
        );
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET reason = 'something else' WHERE id = {id}"),
        );
        assert!(e.contains("placement never changes"), "{e}");
        for column in [
            "scope = 'numbers', number_from = '123', number_to = '123', agent = NULL",
            "agent = 'erin'",
            "placed_at_utc = '2030-01-01T00:00:00.000Z'",
            "id = id + 100",
        ] {
            let e = refused(
                &conn,
                &format!("UPDATE legal_holds SET {column} WHERE id = {id}"),
            );
            assert!(e.contains("placement never changes"), "{column}: {e}");
        }
        let e = refused(&conn, &format!("DELETE FROM legal_holds WHERE id = {id}"));
        assert!(e.contains("never deleted"), "{e}");
        let e = refused(
            &conn,
            &format!("INSERT INTO legal_holds (scope, agent, reason, placed_by, placed_at_utc, released_at_utc)
                      VALUES ('agent', 'dave', 'r', 'ann', '{NOW}', '{NOW}')"),
        );
        assert!(e.contains("placed unreleased"), "{e}");
        assert_eq!(active(&conn)?.len(), 1, "the hold is still in force");
        assert_eq!(format!("{:?}", row(&conn, id)?), format!("{placed:?}"));

        // The real release by a second admin passes; after it, the release is final.
        let released = release(&conn, id, "ben", "case closed", NOW)?;
        assert_eq!(released.released_by.as_deref(), Some("ben"));
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET released_at_utc = NULL, released_by = NULL, release_reason = NULL WHERE id = {id}"),
        );
        assert!(e.contains("release is final"), "{e}");
        let e = refused(
            &conn,
            &format!("UPDATE legal_holds SET released_at_utc = NULL WHERE id = {id}"),
        );
        assert!(e.contains("release is final"), "{e}");
        for change in [
            "released_by = 'carl'",
            "release_reason = 'other'",
            "released_at_utc = '2020-01-01T00:00:00.000Z'",
        ] {
            let e = refused(
                &conn,
                &format!("UPDATE legal_holds SET {change} WHERE id = {id}"),
            );
            assert!(e.contains("release is final"), "{change}: {e}");
        }
        let e = refused(&conn, &format!("DELETE FROM legal_holds WHERE id = {id}"));
        assert!(e.contains("never deleted"), "{e}");
        assert!(active(&conn)?.is_empty());
        assert_eq!(format!("{:?}", row(&conn, id)?), format!("{released:?}"));
        Ok(())
    }

    /// An admin still on a one-time password (whoever made the account knows it) can neither
    /// place nor release a hold, and `authenticate_admin` refuses them once the password is
    /// right; once they set their own password, they can.
    #[test]
    fn an_admin_with_a_one_time_password_can_neither_place_nor_release() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        add_admin(&conn, "ann", false)?;
        add_admin(&conn, "otp", true)?;
        let scope = Scope::Agent {
            agent: "dave".into(),
        };
        let e = place(&conn, &scope, "case 17", "otp", NOW).unwrap_err();
        assert!(
            matches!(e, HoldError::MustChangePassword(ref u) if u == "otp"),
            "{e}"
        );
        assert!(e.to_string().contains("change it first"), "{e}");
        let id = place(&conn, &scope, "case 17", "ann", NOW)?;
        let e = release(&conn, id, "otp", "done", NOW).unwrap_err();
        assert!(matches!(e, HoldError::MustChangePassword(_)), "{e}");
        assert_eq!(active(&conn)?.len(), 1);

        let e = users::authenticate_admin(&conn, "otp", "otp-secret-password").unwrap_err();
        assert!(matches!(e, UserError::MustChangePassword(_)), "{e}");
        assert!(e.to_string().contains("one-time password"), "{e}");
        let e = users::authenticate_admin(&conn, "otp", "a-wrong-password").unwrap_err();
        assert!(
            matches!(e, UserError::NotAdmin(_)),
            "a wrong password tells nothing more: {e}"
        );

        users::change_own_password(&conn, "otp", "otp-own-new-password", Actor::local("otp"))?;
        users::authenticate_admin(&conn, "otp", "otp-own-new-password")?;
        release(&conn, id, "otp", "done", NOW)?;
        assert!(active(&conn)?.is_empty());
        Ok(())
    }

    fn numbers(from: &str, to: &str) -> Hold {
        Hold {
            id: 1,
            scope: Scope::Numbers {
                from: from.into(),
                to: to.into(),
            },
            reason: "r".into(),
            placed_by: "a".into(),
            placed_at_utc: String::new(),
            released_by: None,
            released_at_utc: None,
            release_reason: None,
        }
    }

    #[test]
    fn ranges_parse_and_cover_by_leading_digits() {
        assert_eq!(
            parse_range("442079460000-442079460999").ok(),
            Some(Scope::Numbers {
                from: "442079460000".into(),
                to: "442079460999".into()
            })
        );
        assert_eq!(
            parse_range("+44 20 7946-0000").ok(),
            Some(Scope::Numbers {
                from: "442079460000".into(),
                to: "442079460000".into()
            })
        );
        assert_eq!(
            parse_range("+4420794*").ok(),
            Some(Scope::Numbers {
                from: "4420794".into(),
                to: "4420794".into()
            })
        );
        assert!(parse_range("12").is_err());
        assert!(parse_range("999-100").is_err(), "from must not exceed to");
        let h = numbers("442079460000", "442079460999");
        assert!(h.covers(1, None, Some("+44 20 7946 0500")));
        assert!(!h.covers(1, None, Some("+44 20 7946 1000")));
        assert!(
            !h.covers(1, None, Some("+44 20 794")),
            "shorter numbers are not in range"
        );
        assert!(!h.covers(1, None, None));
        let p = numbers("4420794", "4420794");
        assert!(p.covers(1, None, Some("+44 20 7946 0500")));
        assert!(!p.covers(1, None, Some("+44 20 7956 0500")));
    }
}
