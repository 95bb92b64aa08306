//! Accounts, sessions and API tokens.
//!
//! Passwords are stored only as argon2id PHC strings; session and API tokens only as SHA-256
//! hashes, so a copy of the database does not let anyone log in. Nothing here ever logs or
//! returns a password or token except the freshly made one handed back to the caller once.

use super::audit::{self, Actor};
use super::StoreError;
use crate::hash::sha256_hex;
use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Supervisor,
    Qa,
    Agent,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Supervisor,
        Role::Qa,
        Role::Agent,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Qa => "qa",
            Role::Agent => "agent",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Result<Role, UserError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UserError::BadRole(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unknown role {0:?}: use admin, supervisor, qa, agent or auditor")]
    BadRole(String),
    #[error("user name {0:?} is not allowed: use 1-64 of a-z 0-9 . _ -")]
    BadName(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error("cannot read random bytes from the OS: {0}")]
    Random(String),
    #[error("API token name {0:?} is taken or invalid: use 1-64 of a-z 0-9 . _ -")]
    BadTokenName(String),
    #[error("{0:?}: not an enabled admin account, or wrong password (read from stdin); nothing was changed")]
    NotAdmin(String),
    #[error("{0:?} still has a one-time password (set by another admin or at first setup): change it first (log in to the web UI, which asks for a new one), then try again; nothing was changed")]
    MustChangePassword(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for UserError {
    fn from(e: rusqlite::Error) -> Self {
        UserError::Store(StoreError::Sql(e))
    }
}

pub const MIN_PASSWORD_LEN: usize = 12;

pub fn random_bytes<const N: usize>() -> Result<[u8; N], UserError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| UserError::Random(e.to_string()))?;
    Ok(b)
}

/// 256 random bits, hex: session ids, CSRF tokens, API tokens.
pub fn random_token() -> Result<String, UserError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// A one-time password: 20 characters from an alphabet without look-alikes (≈ 100 bits).
pub fn one_time_password() -> Result<String, UserError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = random_bytes::<20>()?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UserError::ShortPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// The name calls carry in `calls.agent` for this person (defaults to the user name).
    pub agent_id: String,
    pub team: Option<String>,
    pub must_change: bool,
    pub disabled: bool,
    pub failed_logins: u32,
    pub locked_until_utc: Option<String>,
    pub created_at_utc: String,
}

const USER_COLUMNS: &str = "id, username, role, COALESCE(agent_id, username), team, must_change, disabled, failed_logins, locked_until_utc, created_at_utc";

fn row_to_user(r: &rusqlite::Row) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        // The CHECK constraint keeps roles valid; fall back to the least privileged one.
        role: Role::parse(&role).unwrap_or(Role::Agent),
        agent_id: r.get(3)?,
        team: r.get(4)?,
        must_change: r.get(5)?,
        disabled: r.get(6)?,
        failed_logins: r.get(7)?,
        locked_until_utc: r.get(8)?,
        created_at_utc: r.get(9)?,
    })
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub role: Role,
    pub agent_id: Option<&'a str>,
    pub team: Option<&'a str>,
    pub password: &'a str,
    /// Force a change at first login (always true for passwords someone else chose or saw).
    pub must_change: bool,
}

/// Adds an account, audited as `user.add` by `by` in the same transaction.
pub fn add_user(conn: &Connection, u: &NewUser, by: Actor) -> Result<User, UserError> {
    if !valid_name(u.username) {
        return Err(UserError::BadName(u.username.to_owned()));
    }
    let hash = hash_password(u.password)?;
    write_tx(conn, |tx| {
        if get_user(tx, u.username)?.is_some() {
            return Err(UserError::Exists(u.username.to_owned()));
        }
        tx.execute(
            "INSERT INTO users (username, role, agent_id, team, password_hash, must_change, created_at_utc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                u.username,
                u.role.as_str(),
                u.agent_id,
                u.team,
                hash,
                u.must_change,
                crate::clock::utc_now()
            ],
        )?;
        let detail = serde_json::json!({"user": u.username, "role": u.role, "agent_id": u.agent_id, "team": u.team});
        audit::append(tx, &by.event("user.add", None, detail))?;
        get_user(tx, u.username)?.ok_or_else(|| UserError::NoSuchUser(u.username.to_owned()))
    })
}

/// Runs `f` in a transaction that holds the write lock (the audit chain needs it, see
/// [`audit::append`]), or inside the caller's transaction when there is one.
fn write_tx<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, UserError>,
) -> Result<T, UserError> {
    if !conn.is_autocommit() {
        return f(conn);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

pub fn get_user(conn: &Connection, username: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
            [username],
            row_to_user,
        )
        .optional()?)
}

pub fn password_hash_of(conn: &Connection, user_id: i64) -> Result<String, UserError> {
    Ok(conn.query_row(
        "SELECT password_hash FROM users WHERE id = ?1",
        [user_id],
        |r| r.get(0),
    )?)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>, UserError> {
    let mut st = conn.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))?;
    let users = st.query_map([], row_to_user)?.collect::<Result<_, _>>()?;
    Ok(users)
}

pub fn count_users(conn: &Connection) -> Result<i64, UserError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Sets a new password chosen or seen by someone else (an admin's reset, a one-time password):
/// clears any lockout, ends every session of that user, and is audited as `user.passwd`.
pub fn reset_password(
    conn: &Connection,
    username: &str,
    password: &str,
    must_change: bool,
    by: Actor,
) -> Result<(), UserError> {
    let hash = hash_password(password)?;
    write_tx(conn, |tx| {
        store_password(tx, username, &hash, must_change)?;
        let detail = serde_json::json!({"user": username});
        audit::append(tx, &by.event("user.passwd", None, detail))?;
        Ok(())
    })
}

/// A user's change of their own password (the old one already checked): ends every session of
/// that user, and is audited as `password.change`.
pub fn change_own_password(
    conn: &Connection,
    username: &str,
    password: &str,
    by: Actor,
) -> Result<(), UserError> {
    let hash = hash_password(password)?;
    write_tx(conn, |tx| {
        store_password(tx, username, &hash, false)?;
        let detail = serde_json::json!({"user": username});
        audit::append(tx, &by.event("password.change", None, detail))?;
        Ok(())
    })
}

/// Stores a password hash, clears any lockout and ends every session of that user.
fn store_password(
    tx: &Connection,
    username: &str,
    hash: &str,
    must_change: bool,
) -> Result<(), UserError> {
    let n = tx.execute(
        "UPDATE users SET password_hash = ?2, must_change = ?3, failed_logins = 0,
             locked_until_utc = NULL, password_changed_at_utc = ?4 WHERE username = ?1",
        params![username, hash, must_change, crate::clock::utc_now()],
    )?;
    if n == 0 {
        return Err(UserError::NoSuchUser(username.to_owned()));
    }
    tx.execute(
        "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
        [username],
    )?;
    Ok(())
}

/// Disables or re-enables an account (audited as `user.disable` / `user.enable`); disabling
/// ends its sessions at once.
pub fn set_disabled(
    conn: &Connection,
    username: &str,
    disabled: bool,
    by: Actor,
) -> Result<(), UserError> {
    write_tx(conn, |tx| {
        let n = tx.execute(
            "UPDATE users SET disabled = ?2 WHERE username = ?1",
            params![username, disabled],
        )?;
        if n == 0 {
            return Err(UserError::NoSuchUser(username.to_owned()));
        }
        if disabled {
            tx.execute(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
                [username],
            )?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        audit::append(
            tx,
            &by.event(action, None, serde_json::json!({"user": username})),
        )?;
        Ok(())
    })
}

/// Changes an account's role, agent id and team, audited as `user.role`.
pub fn set_role(
    conn: &Connection,
    username: &str,
    role: Role,
    agent_id: Option<&str>,
    team: Option<&str>,
    by: Actor,
) -> Result<(), UserError> {
    write_tx(conn, |tx| {
        let n = tx.execute(
            "UPDATE users SET role = ?2, agent_id = ?3, team = ?4 WHERE username = ?1",
            params![username, role.as_str(), agent_id, team],
        )?;
        if n == 0 {
            return Err(UserError::NoSuchUser(username.to_owned()));
        }
        let detail =
            serde_json::json!({"user": username, "role": role, "agent_id": agent_id, "team": team});
        audit::append(tx, &by.event("user.role", None, detail))?;
        // A changed role takes effect on the next request: sessions look the user up every time.
        Ok(())
    })
}

/// Checks that `username` is an enabled admin whose password is `password`: the proof a
/// second person gives before a hold, a release or an erasure. The same answer for every way
/// of failing, so it tells a guesser nothing. Only once the password is right: an admin whose
/// password is still a one-time password (`must_change`) is refused with
/// [`UserError::MustChangePassword`] — whoever made the account has seen that password, so it
/// proves no second person.
pub fn authenticate_admin(
    conn: &Connection,
    username: &str,
    password: &str,
) -> Result<User, UserError> {
    let user = get_user(conn, username)?;
    match user {
        Some(u)
            if !u.disabled
                && u.role == Role::Admin
                && verify_password(password, &password_hash_of(conn, u.id)?) =>
        {
            if u.must_change {
                return Err(UserError::MustChangePassword(u.username));
            }
            Ok(u)
        }
        _ => Err(UserError::NotAdmin(username.to_owned())),
    }
}

/// A login attempt, counted before its password is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The account is locked until then: refuse, whatever the password.
    Locked(String),
    /// This is failure-in-waiting number `n` since the last good login.
    Counted(u32),
}

/// Counts a login attempt against the account before its password is checked, in one write
/// transaction: parallel guesses each get their own number, so none slips past the limit. An
/// attempt past `lockout_after` locks the account (if it is not yet) and is refused.
pub fn begin_login_attempt(
    conn: &Connection,
    user_id: i64,
    lockout_after: u32,
    lockout_s: u64,
    now: DateTime<Utc>,
) -> Result<Attempt, UserError> {
    let now_text = crate::clock::format_utc(now);
    write_tx(conn, |tx| {
        let locked: Option<String> = tx.query_row(
            "SELECT locked_until_utc FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )?;
        if let Some(until) = locked.filter(|t| *t > now_text) {
            return Ok(Attempt::Locked(until));
        }
        let n: u32 = tx.query_row(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 RETURNING failed_logins",
            [user_id],
            |r| r.get(0),
        )?;
        if n > lockout_after {
            return Ok(Attempt::Locked(lock(tx, user_id, lockout_s, now)?));
        }
        Ok(Attempt::Counted(n))
    })
}

/// The password of attempt `n` ([`begin_login_attempt`]) was wrong: at the limit the account is
/// locked for `lockout_s`; returns the lockout end then.
pub fn fail_login_attempt(
    conn: &Connection,
    user_id: i64,
    n: u32,
    lockout_after: u32,
    lockout_s: u64,
    now: DateTime<Utc>,
) -> Result<Option<String>, UserError> {
    if n < lockout_after {
        return Ok(None);
    }
    write_tx(conn, |tx| lock(tx, user_id, lockout_s, now).map(Some))
}

fn lock(
    tx: &Connection,
    user_id: i64,
    lockout_s: u64,
    now: DateTime<Utc>,
) -> Result<String, UserError> {
    let until = crate::clock::format_utc(now + chrono::Duration::seconds(lockout_s as i64));
    tx.execute(
        "UPDATE users SET locked_until_utc = ?2, failed_logins = 0 WHERE id = ?1",
        params![user_id, until],
    )?;
    Ok(until)
}

pub fn record_good_login(conn: &Connection, user_id: i64) -> Result<(), UserError> {
    conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until_utc = NULL WHERE id = ?1",
        [user_id],
    )?;
    Ok(())
}

/// A live session as the server sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_sha256: String,
    pub csrf: String,
    pub user: User,
}

/// Starts a session; returns the cookie value (never stored) and the session.
pub fn create_session(
    conn: &Connection,
    user: &User,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, Session), UserError> {
    let token = random_token()?;
    let csrf = random_token()?;
    let token_sha256 = sha256_hex(&token);
    let now = crate::clock::format_utc(now);
    conn.execute(
        "INSERT INTO sessions (token_sha256, user_id, csrf, created_at_utc, last_seen_utc, ip)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![token_sha256, user.id, csrf, now, ip],
    )?;
    Ok((
        token,
        Session {
            token_sha256,
            csrf,
            user: user.clone(),
        },
    ))
}

/// What a cookie value refers to, found with reads only (so the server can look sessions up on
/// its read connections and write only when something must change).
#[derive(Debug)]
pub enum Lookup {
    Missing,
    /// Expired (idle or absolute), or its user is gone or disabled: delete it.
    Dead(String),
    /// Valid; `touch` says `last_seen` is old enough to be refreshed.
    Live {
        session: Session,
        touch: bool,
    },
}

/// Finds the session for a cookie value, enforcing idle and absolute expiry and the account's
/// state. `last_seen` needs refreshing only every 15 s (or a quarter of the idle limit) so that
/// streaming many ranges does not turn every read into a write.
pub fn find_session(
    conn: &Connection,
    token: &str,
    idle_s: u64,
    max_s: u64,
    now: DateTime<Utc>,
) -> Result<Lookup, UserError> {
    let token_sha256 = sha256_hex(token);
    // One cached statement: this runs on every authenticated request. The subquery renames the
    // session's columns so `USER_COLUMNS` stay unambiguous.
    let sql = format!(
        "SELECT {USER_COLUMNS}, s_csrf, s_created, s_seen FROM
           (SELECT user_id, csrf AS s_csrf, created_at_utc AS s_created, last_seen_utc AS s_seen
              FROM sessions WHERE token_sha256 = ?1)
         JOIN users ON users.id = user_id"
    );
    let found: Option<(User, String, String, String)> = conn
        .prepare_cached(&sql)?
        .query_row([&token_sha256], |r| {
            Ok((row_to_user(r)?, r.get(10)?, r.get(11)?, r.get(12)?))
        })
        .optional()?;
    let Some((user, csrf, created, last_seen)) = found else {
        return Ok(Lookup::Missing);
    };
    let ago = |s: u64| crate::clock::format_utc(now - chrono::Duration::seconds(s as i64));
    if created < ago(max_s) || last_seen < ago(idle_s) || user.disabled {
        return Ok(Lookup::Dead(token_sha256));
    }
    Ok(Lookup::Live {
        touch: last_seen < ago((idle_s / 4).clamp(1, 15)),
        session: Session {
            token_sha256,
            csrf,
            user,
        },
    })
}

pub fn touch_session(
    conn: &Connection,
    token_sha256: &str,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    conn.execute(
        "UPDATE sessions SET last_seen_utc = ?2 WHERE token_sha256 = ?1",
        params![token_sha256, crate::clock::format_utc(now)],
    )?;
    Ok(())
}

/// [`find_session`] plus the resulting write, on one connection.
pub fn lookup_session(
    conn: &Connection,
    token: &str,
    idle_s: u64,
    max_s: u64,
    now: DateTime<Utc>,
) -> Result<Option<Session>, UserError> {
    match find_session(conn, token, idle_s, max_s, now)? {
        Lookup::Missing => Ok(None),
        Lookup::Dead(sha) => {
            delete_session(conn, &sha)?;
            Ok(None)
        }
        Lookup::Live { session, touch } => {
            if touch {
                touch_session(conn, &session.token_sha256, now)?;
            }
            Ok(Some(session))
        }
    }
}

pub fn delete_session(conn: &Connection, token_sha256: &str) -> Result<(), UserError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_sha256 = ?1",
        [token_sha256],
    )?;
    Ok(())
}

/// Deletes every session past its idle or absolute limit at `now` (with its `session_plays`
/// rows, by cascade); returns how many went. Without this, sessions nobody presents again (a
/// closed browser, a flood of logins) would stay in the table for ever.
pub fn prune_sessions(
    conn: &Connection,
    idle_s: u64,
    max_s: u64,
    now: DateTime<Utc>,
) -> Result<usize, UserError> {
    let ago = |s: u64| crate::clock::format_utc(now - chrono::Duration::seconds(s as i64));
    let n = conn.execute(
        "DELETE FROM sessions WHERE created_at_utc < ?1 OR last_seen_utc < ?2",
        params![ago(max_s), ago(idle_s)],
    )?;
    Ok(n)
}

/// Ends every other session of a user (after a password change).
pub fn delete_other_sessions(
    conn: &Connection,
    user_id: i64,
    keep_sha256: &str,
) -> Result<(), UserError> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_sha256 != ?2",
        params![user_id, keep_sha256],
    )?;
    Ok(())
}

/// True the first time a session fetches a call's audio (so `play` is audited once per session).
pub fn first_play(conn: &Connection, token_sha256: &str, call_id: i64) -> Result<bool, UserError> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO session_plays (token_sha256, call_id) VALUES (?1, ?2)",
        params![token_sha256, call_id],
    )?;
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_by: String,
    pub created_at_utc: String,
    pub revoked_at_utc: Option<String>,
    pub last_used_utc: Option<String>,
}

fn row_to_token(r: &rusqlite::Row) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        created_by: r.get(2)?,
        created_at_utc: r.get(3)?,
        revoked_at_utc: r.get(4)?,
        last_used_utc: r.get(5)?,
    })
}

/// Makes an API token for one integration, audited as `token.add`; returns the secret (shown
/// once) and its record.
pub fn add_token(
    conn: &Connection,
    name: &str,
    by: Actor,
) -> Result<(String, ApiToken), UserError> {
    if !valid_name(name) {
        return Err(UserError::BadTokenName(name.to_owned()));
    }
    let secret = format!("crt_{}", random_token()?);
    write_tx(conn, |tx| {
        tx.execute(
            "INSERT INTO api_tokens (name, token_sha256, created_by, created_at_utc) VALUES (?1, ?2, ?3, ?4)",
            params![name, sha256_hex(&secret), by.name, crate::clock::utc_now()],
        )
        .map_err(|_| UserError::BadTokenName(name.to_owned()))?;
        let tok = tx.query_row(
            "SELECT id, name, created_by, created_at_utc, revoked_at_utc, last_used_utc FROM api_tokens WHERE name = ?1",
            [name],
            row_to_token,
        )?;
        audit::append(
            tx,
            &by.event("token.add", None, serde_json::json!({"token": name})),
        )?;
        Ok((secret, tok))
    })
}

pub fn lookup_token(conn: &Connection, secret: &str) -> Result<Option<ApiToken>, UserError> {
    let tok = conn
        .query_row(
            "SELECT id, name, created_by, created_at_utc, revoked_at_utc, last_used_utc FROM api_tokens
             WHERE token_sha256 = ?1 AND revoked_at_utc IS NULL",
            [sha256_hex(secret)],
            row_to_token,
        )
        .optional()?;
    if let Some(t) = &tok {
        conn.execute(
            "UPDATE api_tokens SET last_used_utc = ?2 WHERE id = ?1",
            params![t.id, crate::clock::utc_now()],
        )?;
    }
    Ok(tok)
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<ApiToken>, UserError> {
    let mut st = conn.prepare(
        "SELECT id, name, created_by, created_at_utc, revoked_at_utc, last_used_utc FROM api_tokens ORDER BY name",
    )?;
    let v = st.query_map([], row_to_token)?.collect::<Result<_, _>>()?;
    Ok(v)
}

/// Revokes a token at once, audited as `token.revoke`.
pub fn revoke_token(conn: &Connection, name: &str, by: Actor) -> Result<(), UserError> {
    write_tx(conn, |tx| {
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at_utc = ?2 WHERE name = ?1 AND revoked_at_utc IS NULL",
            params![name, crate::clock::utc_now()],
        )?;
        if n == 0 {
            return Err(UserError::NoSuchUser(format!("token {name}")));
        }
        audit::append(
            tx,
            &by.event("token.revoke", None, serde_json::json!({"token": name})),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{TempStore, TestResult};

    /// Sessions nobody presents again go at the next prune, with the plays they recorded; live
    /// ones stay. Time passes on a `SimClock`, as the server's clock would.
    #[test]
    fn expired_sessions_and_their_plays_are_pruned() -> TestResult {
        use crate::clock::{Clock, SimClock};
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let u = add_user(
            &conn,
            &NewUser {
                username: "alice",
                role: Role::Qa,
                agent_id: None,
                team: None,
                password: "correct horse battery",
                must_change: false,
            },
            Actor::local("cli:test"),
        )?;
        let call = crate::store::testutil::TestCall::new().insert(&conn)?;
        let clock = SimClock::at(chrono::Utc::now());
        let (idle_s, max_s) = (60, 3600);
        let count = |table: &str| -> rusqlite::Result<i64> {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        };
        // Ten sessions that each play the call, then go quiet.
        for _ in 0..10 {
            let (_, s) = create_session(&conn, &u, None, clock.now_utc())?;
            assert!(first_play(&conn, &s.token_sha256, call.id)?);
        }
        clock.advance(30_000);
        let (live, _) = create_session(&conn, &u, None, clock.now_utc())?;
        assert_eq!(prune_sessions(&conn, idle_s, max_s, clock.now_utc())?, 0);
        assert_eq!((count("sessions")?, count("session_plays")?), (11, 10));
        // 61 s after the ten were last seen: idle; the eleventh (31 s) lives on.
        clock.advance(31_000);
        assert_eq!(prune_sessions(&conn, idle_s, max_s, clock.now_utc())?, 10);
        assert_eq!((count("sessions")?, count("session_plays")?), (1, 0));
        assert!(lookup_session(&conn, &live, idle_s, max_s, clock.now_utc())?.is_some());
        // Kept busy, a session still ends at its absolute limit.
        for _ in 0..64 {
            clock.advance(55_000);
            assert!(lookup_session(&conn, &live, idle_s, max_s, clock.now_utc())?.is_some());
        }
        clock.advance(55_000); // 3 606 s old, seen 55 s ago
        assert_eq!(prune_sessions(&conn, idle_s, max_s, clock.now_utc())?, 1);
        assert_eq!(count("sessions")?, 0);
        Ok(())
    }

    #[test]
    fn passwords_sessions_and_lockout() -> TestResult {
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let by = Actor::local("cli:test");
        assert!(matches!(
            hash_password("short"),
            Err(UserError::ShortPassword)
        ));
        let u = add_user(
            &conn,
            &NewUser {
                username: "alice",
                role: Role::Qa,
                agent_id: None,
                team: Some("red"),
                password: "correct horse battery",
                must_change: true,
            },
            by,
        )?;
        assert_eq!(u.agent_id, "alice");
        let phc = password_hash_of(&conn, u.id)?;
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterz", &phc));
        assert!(matches!(
            add_user(
                &conn,
                &NewUser {
                    username: "Bob; DROP",
                    role: Role::Qa,
                    agent_id: None,
                    team: None,
                    password: "correct horse battery",
                    must_change: true
                },
                by
            ),
            Err(UserError::BadName(_))
        ));

        let now = chrono::Utc::now();
        let (cookie, s) = create_session(&conn, &u, None, now)?;
        assert_ne!(cookie, s.token_sha256, "only the hash is stored");
        assert!(lookup_session(&conn, &cookie, 60, 3600, now)?.is_some());
        assert!(lookup_session(&conn, "forged", 60, 3600, now)?.is_none());

        for n in 1..3 {
            assert_eq!(
                begin_login_attempt(&conn, u.id, 3, 60, now)?,
                Attempt::Counted(n)
            );
            assert_eq!(fail_login_attempt(&conn, u.id, n, 3, 60, now)?, None);
        }
        assert_eq!(
            begin_login_attempt(&conn, u.id, 3, 60, now)?,
            Attempt::Counted(3)
        );
        assert!(fail_login_attempt(&conn, u.id, 3, 3, 60, now)?.is_some());
        assert!(matches!(
            begin_login_attempt(&conn, u.id, 3, 60, now)?,
            Attempt::Locked(_)
        ));
        let locked = get_user(&conn, "alice")?.ok_or("not found")?;
        assert!(locked.locked_until_utc.is_some());

        reset_password(&conn, "alice", "another long password", false, by)?;
        assert!(
            lookup_session(&conn, &cookie, 60, 3600, now)?.is_none(),
            "a password change ends sessions"
        );
        let after = get_user(&conn, "alice")?.ok_or("not found")?;
        assert!(after.locked_until_utc.is_none() && !after.must_change);

        let (secret, t) = add_token(&conn, "cti", Actor::local("admin"))?;
        assert_eq!(lookup_token(&conn, &secret)?.ok_or("not found")?.id, t.id);
        revoke_token(&conn, "cti", by)?;
        // Each change wrote its audit row, in order, with who made it.
        let actions: Vec<(String, String)> = conn
            .prepare("SELECT action, actor FROM audit ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let want = [
            ("user.add", "cli:test"),
            ("user.passwd", "cli:test"),
            ("token.add", "admin"),
            ("token.revoke", "cli:test"),
        ];
        assert_eq!(
            actions,
            want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
        );
        assert!(lookup_token(&conn, &secret)?.is_none());
        Ok(())
    }

    /// Sessions end after `idle_s` without a request and `max_s` after login, whatever the
    /// traffic; a lockout lasts `lockout_s`. Driven by a simulated clock.
    #[test]
    fn sessions_expire_and_lockouts_end_on_the_clock() -> TestResult {
        use crate::clock::{Clock, SimClock};
        let TempStore { dir: _dir, conn } = TempStore::new()?;
        let clock =
            SimClock::at(chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")?.to_utc());
        let u = add_user(
            &conn,
            &NewUser {
                username: "bob",
                role: Role::Agent,
                agent_id: None,
                team: None,
                password: "correct horse battery",
                must_change: false,
            },
            Actor::local("cli:test"),
        )?;
        let (idle_s, max_s) = (60, 300);
        let (cookie, _) = create_session(&conn, &u, None, clock.now_utc())?;
        // Kept alive by a request every 50 s (each touches it)...
        for _ in 0..5 {
            clock.advance(50_000);
            assert!(lookup_session(&conn, &cookie, idle_s, max_s, clock.now_utc())?.is_some());
        }
        // ...until the absolute limit: past 300 s after login, whatever the traffic.
        clock.advance(51_000);
        assert!(lookup_session(&conn, &cookie, idle_s, max_s, clock.now_utc())?.is_none());

        let (idle_cookie, _) = create_session(&conn, &u, None, clock.now_utc())?;
        clock.advance(59_000);
        assert!(lookup_session(&conn, &idle_cookie, idle_s, max_s, clock.now_utc())?.is_some());
        clock.advance(61_000);
        assert!(
            lookup_session(&conn, &idle_cookie, idle_s, max_s, clock.now_utc())?.is_none(),
            "61 s idle ends a session with a 60 s idle limit"
        );

        // The third failure locks for 120 s from that moment.
        let now = clock.now_utc();
        for n in 1..=2 {
            begin_login_attempt(&conn, u.id, 3, 120, now)?;
            assert_eq!(fail_login_attempt(&conn, u.id, n, 3, 120, now)?, None);
        }
        begin_login_attempt(&conn, u.id, 3, 120, now)?;
        let until = fail_login_attempt(&conn, u.id, 3, 3, 120, now)?.ok_or("not locked")?;
        clock.advance(119_000);
        let locked = begin_login_attempt(&conn, u.id, 3, 120, clock.now_utc())?;
        assert_eq!(locked, Attempt::Locked(until.clone()));
        clock.advance(1_000);
        assert_eq!(until, clock.utc_string());
        assert_eq!(
            begin_login_attempt(&conn, u.id, 3, 120, clock.now_utc())?,
            Attempt::Counted(1),
            "the lock is over and the count starts again"
        );

        // Guesses in parallel: each is counted before its password is checked, so five at
        // once against a limit of 3 leave two refused whatever their password.
        record_good_login(&conn, u.id)?;
        let outcomes: Vec<Attempt> = (0..5)
            .map(|_| begin_login_attempt(&conn, u.id, 3, 120, clock.now_utc()))
            .collect::<Result<_, _>>()?;
        let locked = outcomes
            .iter()
            .filter(|a| matches!(a, Attempt::Locked(_)))
            .count();
        assert_eq!(locked, 2, "{outcomes:?}");
        Ok(())
    }
}
