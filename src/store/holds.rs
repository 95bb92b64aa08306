//! Legal holds: while a hold covers a call, nothing deletes it — not retention, not an erasure
//! request, not the disk-pressure guard (`store::lifecycle` checks inside its transaction).
//!
//! A hold covers one call, every call of an agent, or every call whose customer number falls in
//! a range. A reason is required. Releasing needs a second admin: the database itself refuses a
//! release by the admin who placed the hold (a CHECK constraint in migration 11), and both acts
//! are audited. This module never deletes a hold row: a released hold stays as history.

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
}

/// What a hold covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

fn require_admin(conn: &Connection, username: &str) -> Result<(), HoldError> {
    let ok: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM users WHERE username = ?1 AND role = 'admin' AND disabled = 0",
            [username],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    ok.map(|_| ())
        .ok_or_else(|| HoldError::NotAdmin(username.to_owned()))
}

/// Places a hold; returns its id. `by` must be an enabled admin account.
pub fn place(
    conn: &Connection,
    scope: &Scope,
    reason: &str,
    by: &str,
    now_utc: &str,
) -> Result<i64, HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    require_admin(&tx, by)?;
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

/// Releases a hold. `by` must be an enabled admin other than the one who placed it.
pub fn release(
    conn: &Connection,
    hold_id: i64,
    by: &str,
    reason: &str,
    now_utc: &str,
) -> Result<Hold, HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    require_admin(&tx, by)?;
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
