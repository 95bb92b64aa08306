//! Logging in and out, and changing one's password: the pages and their handlers. Login
//! checks a per-form token against a cookie, limits attempts per client address, locks an
//! account after repeated failures, takes the same time for unknown, locked and disabled
//! accounts, and issues a fresh session id each time (no fixation).
//!
//! This module must never store a password or a session token in the clear (only hashes reach
//! the database), nor redirect after login to anything but a local path.

use super::error::AppError;
use super::html::{esc, page};
use super::identity::{client_of, cookie, ct_eq, Identity, SESSION_COOKIE};
use super::state::St;
use crate::store::audit::{self, Event};
use crate::store::users;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LOGIN_COOKIE: &str = "callrec_login";
/// Login attempts allowed per client address per window, whatever the user names.
const IP_ATTEMPTS: u32 = 30;
const IP_WINDOW: Duration = Duration::from_secs(300);
/// Client addresses the login limiter remembers at once.
const IP_TABLE_MAX: usize = 16_384;

fn session_cookie(st: &St, value: &str, max_age: Option<u64>) -> String {
    let secure = if st.cfg.server.tls { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    // Lax, not Strict: a shared `/calls/42#t=83` link opened from chat must arrive logged in;
    // every state change is protected by the CSRF token instead.
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}")
}

fn login_page(st: &St, token: &str, next: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let _ = st;
    page(
        None,
        "Log in",
        &format!(
            r#"<main class="login"><h1>Log in</h1>{err}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{token}"><input type="hidden" name="next" value="{next}">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form></main>"#,
            token = esc(token),
            next = esc(next),
        ),
    )
}

/// Only local paths, never `//host` or a scheme: no open redirect after login. Browsers drop
/// tabs and newlines from URLs (`/\t/evil.com` becomes `//evil.com`) and read `\` as `/`, so
/// only printable ASCII without spaces or backslashes passes, starting with one `/`.
fn safe_next(next: &str) -> &str {
    let printable = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if printable && next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/calls"
    }
}

pub async fn get_login(
    State(st): State<St>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let token = users::random_token()?;
    let next = q.get("next").map(String::as_str).unwrap_or("/calls");
    let body = login_page(&st, &token, safe_next(next), None);
    let secure = if st.cfg.server.tls { "; Secure" } else { "" };
    Ok((
        [(
            header::SET_COOKIE,
            format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{secure}"),
        )],
        axum::response::Html(body),
    )
        .into_response())
}

/// Whether `ip` has used up its login attempts for this window. The table holds at most
/// [`IP_TABLE_MAX`] addresses: past that the address whose window started first is forgotten, so
/// a flood from many addresses cannot grow memory.
fn ip_limited(st: &St, ip: &str) -> bool {
    let Ok(mut m) = st.login_attempts.lock() else {
        return false;
    };
    count_attempt(&mut m, ip, Instant::now())
}

fn count_attempt(m: &mut HashMap<String, (Instant, u32)>, ip: &str, now: Instant) -> bool {
    m.retain(|_, (since, _)| now.duration_since(*since) < IP_WINDOW);
    if m.len() >= IP_TABLE_MAX && !m.contains_key(ip) {
        let oldest = m
            .iter()
            .min_by_key(|(_, (since, _))| *since)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            m.remove(&k);
        }
    }
    let e = m.entry(ip.to_owned()).or_insert((now, 0));
    e.1 += 1;
    e.1 > IP_ATTEMPTS
}

/// What the login form sends.
struct LoginForm {
    username: String,
    password: String,
    next: String,
    csrf: String,
}

impl LoginForm {
    fn from(f: &HashMap<String, String>) -> LoginForm {
        let field = |k: &str| f.get(k).cloned().unwrap_or_default();
        LoginForm {
            username: field("username"),
            password: field("password"),
            next: field("next"),
            csrf: field("csrf"),
        }
    }
}

/// How a login attempt came out.
enum Verdict {
    Good(users::User),
    /// Locked until then (the password was checked anyway, so timing tells nothing).
    Locked(String),
    /// Refused: the audit detail says why (unknown user, disabled, wrong password).
    Refused(serde_json::Value),
}

/// What every refused login hears, whatever the reason (unknown user, wrong password, locked or
/// disabled account): the answer and its timing must not tell a guesser which names exist. The
/// audit log keeps the reason for the admin.
const REFUSED: &str = "Wrong user name or password, or the account is locked after too many failed logins. Wait, or ask an admin to reset the password.";

pub async fn post_login(
    State(st): State<St>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let form = LoginForm::from(&f);
    // Behind a trusted proxy each client has its own bucket (`[server] trusted_proxies`).
    let ip = client_of(peer.ip(), &headers, &st.trusted_proxies)
        .0
        .to_string();
    let again = |status, msg: &str| login_again(&st, &form.next, status, msg);
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| !c.is_empty() && ct_eq(c, &form.csrf)) {
        return again(
            StatusCode::FORBIDDEN,
            "The login form expired. Please try again.",
        );
    }
    if ip_limited(&st, &ip) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many login attempts from this address. Wait five minutes and try again.",
        );
    }
    let now = st.clock.now_utc();
    match attempt_login(&st, &form, &ip, now).await? {
        Verdict::Good(user) => start_session(&st, &headers, user, &ip, &form.next, now).await,
        Verdict::Locked(until) => {
            let detail = serde_json::json!({"reason": "locked", "locked_until_utc": until});
            audit_login(&st, &form.username, &ip, "login.refused", detail).await?;
            again(StatusCode::UNAUTHORIZED, REFUSED)
        }
        Verdict::Refused(detail) => {
            audit_login(&st, &form.username, &ip, "login.failed", detail).await?;
            again(StatusCode::UNAUTHORIZED, REFUSED)
        }
    }
}

/// The login page again with `msg`, and a fresh form token.
fn login_again(st: &St, next: &str, status: StatusCode, msg: &str) -> Result<Response, AppError> {
    let token = users::random_token()?;
    let secure = if st.cfg.server.tls { "; Secure" } else { "" };
    Ok((
        status,
        [(
            header::SET_COOKIE,
            format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{secure}"),
        )],
        axum::response::Html(login_page(st, &token, safe_next(next), Some(msg))),
    )
        .into_response())
}

/// One login attempt: counted against the account before the password is checked (so parallel
/// guesses cannot pass the limit), then the password checked — for unknown users against a
/// dummy hash and for locked accounts too, so the time taken tells a guesser nothing.
async fn attempt_login(
    st: &St,
    form: &LoginForm,
    ip: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verdict, AppError> {
    let name = form.username.clone();
    let user = st
        .db
        .read(move |c| users::get_user(c, &name).map_err(AppError::from))
        .await?;
    let (after, secs) = (st.cfg.server.lockout_after, st.cfg.server.lockout_s);
    let (hash, attempt) = match &user {
        Some(u) => {
            let id = u.id;
            st.db
                .write(move |c| {
                    let hash = users::password_hash_of(c, id)?;
                    let attempt = users::begin_login_attempt(c, id, after, secs, now)?;
                    Ok::<_, AppError>((hash, Some(attempt)))
                })
                .await?
        }
        None => (st.dummy_hash.clone(), None),
    };
    let pw = form.password.clone();
    let good = tokio::task::spawn_blocking(move || users::verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let (Some(user), Some(attempt)) = (user, attempt) else {
        return Ok(Verdict::Refused(
            serde_json::json!({"reason": "bad credentials"}),
        ));
    };
    let n = match attempt {
        users::Attempt::Locked(until) => return Ok(Verdict::Locked(until)),
        users::Attempt::Counted(n) => n,
    };
    if user.disabled {
        return Ok(Verdict::Refused(serde_json::json!({"reason": "disabled"})));
    }
    if good {
        return Ok(Verdict::Good(user));
    }
    let id = user.id;
    let locked = st
        .db
        .write(move |c| {
            users::fail_login_attempt(c, id, n, after, secs, now).map_err(AppError::from)
        })
        .await?;
    if let Some(until) = locked {
        let detail = serde_json::json!({"locked_until_utc": until});
        audit_login(st, &form.username, ip, "login.locked", detail).await?;
    }
    Ok(Verdict::Refused(
        serde_json::json!({"reason": "bad credentials"}),
    ))
}

/// An audit row for a login attempt, in the name the attempt gave.
async fn audit_login(
    st: &St,
    username: &str,
    ip: &str,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let (username, ip) = (username.to_owned(), ip.to_owned());
    st.db
        .write(move |c| {
            let event = Event {
                actor: &username,
                action,
                call_id: None,
                detail,
                ip: Some(&ip),
            };
            audit::append(c, &event).map(drop).map_err(AppError::from)
        })
        .await
}

/// A good login: a fresh session id (no fixation; whatever cookie came in is discarded),
/// audited, and on to the page asked for (or to the password change a one-time password needs).
async fn start_session(
    st: &St,
    headers: &HeaderMap,
    user: users::User,
    ip: &str,
    next: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Response, AppError> {
    let old = cookie(headers, SESSION_COOKIE).map(crate::hash::sha256_hex);
    if let Some(old) = &old {
        st.sessions.forget(old);
    }
    let (u2, ip2) = (user.clone(), ip.to_owned());
    let (idle, max) = (st.cfg.server.session_idle_s, st.cfg.server.session_max_s);
    let token = st
        .db
        .write(move |c| {
            if let Some(old) = old {
                users::delete_session(c, &old)?;
            }
            // Every login adds a row: take the expired ones out at the same time, so the table
            // stays as large as the sessions alive (the serve loop also prunes every 5 min).
            users::prune_sessions(c, idle, max, now)?;
            users::record_good_login(c, u2.id)?;
            let (token, _) = users::create_session(c, &u2, Some(&ip2), now)?;
            audit::append(
                c,
                &Event {
                    actor: &u2.username,
                    action: "login",
                    call_id: None,
                    detail: serde_json::json!({}),
                    ip: Some(&ip2),
                },
            )?;
            Ok::<_, AppError>(token)
        })
        .await?;
    let to = if user.must_change {
        "/password"
    } else {
        safe_next(next)
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(st, &token, None)),
            (header::LOCATION, to.to_owned()),
        ],
    )
        .into_response())
}

pub async fn post_logout(
    State(st): State<St>,
    axum::Extension(id): axum::Extension<Identity>,
) -> Result<Response, AppError> {
    if let Some(sha) = id.session_sha256().map(str::to_owned) {
        st.sessions.forget(&sha);
        let id2 = id.clone();
        st.db
            .write(move |c| {
                users::delete_session(c, &sha)?;
                audit::append(c, &id2.event("logout", None, serde_json::json!({})))?;
                Ok::<_, AppError>(())
            })
            .await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&st, "", Some(0))),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response())
}

fn password_page(id: &Identity, error: Option<&str>) -> String {
    let forced = id.user().is_some_and(|u| u.must_change);
    let intro = if forced {
        r#"<p class="flash">You are using a one-time password. Choose your own to continue.</p>"#
    } else {
        ""
    };
    let err = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    page(
        Some(id),
        "Change password",
        &format!(
            r#"<main class="login"><h1>Change password</h1>{intro}{err}
<form method="post" action="/password"><input type="hidden" name="csrf" value="{csrf}">
<label>Current password <input name="current" type="password" autocomplete="current-password" required></label>
<label>New password (at least {min} characters) <input name="new" type="password" autocomplete="new-password" minlength="{min}" required></label>
<label>New password again <input name="confirm" type="password" autocomplete="new-password" minlength="{min}" required></label>
<button type="submit">Change password</button></form></main>"#,
            csrf = esc(id.csrf().unwrap_or_default()),
            min = users::MIN_PASSWORD_LEN,
        ),
    )
}

pub async fn get_password(
    axum::Extension(id): axum::Extension<Identity>,
) -> axum::response::Html<String> {
    axum::response::Html(password_page(&id, None))
}

pub async fn post_password(
    State(st): State<St>,
    axum::Extension(id): axum::Extension<Identity>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (current, new, confirm) = (field("current"), field("new"), field("confirm"));
    let Some(user) = id.user().cloned() else {
        return Err(AppError::page(
            StatusCode::FORBIDDEN,
            "only users have passwords",
        ));
    };
    let fail = |msg: &str| {
        Ok((
            StatusCode::BAD_REQUEST,
            axum::response::Html(password_page(&id, Some(msg))),
        )
            .into_response())
    };
    if new != confirm {
        return fail("The two new passwords differ.");
    }
    if new == current {
        return fail("The new password must differ from the current one.");
    }
    if new.chars().count() < users::MIN_PASSWORD_LEN {
        return fail(&format!(
            "The new password must be at least {} characters.",
            users::MIN_PASSWORD_LEN
        ));
    }
    let uid = user.id;
    let hash = st
        .db
        .read(move |c| users::password_hash_of(c, uid).map_err(AppError::from))
        .await?;
    let good = tokio::task::spawn_blocking(move || users::verify_password(&current, &hash))
        .await
        .unwrap_or(false);
    if !good {
        return fail("The current password is wrong.");
    }
    let (id2, ip) = (id.clone(), id.ip.clone());
    let now = st.clock.now_utc();
    let token = st
        .db
        .write(move |c| {
            // Ends every session of the user, this one included; then a fresh one for this browser.
            users::change_own_password(c, &user.username, &new, id2.who())?;
            let fresh = users::get_user(c, &user.username)?
                .ok_or_else(|| users::UserError::NoSuchUser(user.username.clone()))?;
            let (token, _) = users::create_session(c, &fresh, Some(&ip), now)?;
            Ok::<_, AppError>(token)
        })
        .await?;
    st.sessions.clear();
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&st, &token, None)),
            (header::LOCATION, "/calls".to_owned()),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_local_path() {
        for ok in ["/calls", "/calls/42#t=83", "/calls?number=%2B49&page=2"] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "//evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\\evil.com",
            "https://evil.com",
            "evil.com",
            "/ /evil.com",
            "",
        ] {
            assert_eq!(safe_next(bad), "/calls", "{bad:?}");
        }
    }

    #[test]
    fn the_login_limiter_counts_per_address_and_stays_bounded() {
        let mut m = HashMap::new();
        let t0 = Instant::now();
        for _ in 0..IP_ATTEMPTS {
            assert!(!count_attempt(&mut m, "10.0.0.1", t0));
        }
        assert!(count_attempt(&mut m, "10.0.0.1", t0), "one past the limit");
        for i in 0..IP_TABLE_MAX * 2 {
            count_attempt(
                &mut m,
                &format!("fd00::{i:x}"),
                t0 + Duration::from_millis(1),
            );
        }
        assert!(m.len() <= IP_TABLE_MAX, "{} addresses held", m.len());
        assert!(
            !count_attempt(&mut m, "10.0.0.1", t0 + IP_WINDOW),
            "a new window"
        );
    }
}
