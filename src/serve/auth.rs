//! Who is asking, and may they: sessions, API tokens, CSRF, login with lockout, logout and
//! password change.
//!
//! [`guard`] runs before every routed handler. It finds the route's rule in the table built by
//! `routes.rs` (a route without a rule is refused: fail closed), identifies the caller (session
//! cookie or `Authorization: Bearer` API token), checks the role, forces a password change when
//! one is due, and checks the CSRF token on every state-changing request made with a cookie.
//! Handlers never re-decide access by role; they only narrow by scope (which calls).

use super::html::{esc, page};
use super::routes::Access;
use super::{AppError, St};
use crate::config::ReviewerScope;
use crate::store::audit::{self, Event};
use crate::store::search::Scope;
use crate::store::users::{self, ApiToken, Role, User};
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Form;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "callrec_session";
const LOGIN_COOKIE: &str = "callrec_login";
/// Login attempts allowed per client address per window, whatever the user names.
const IP_ATTEMPTS: u32 = 30;
const IP_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    User {
        user: User,
        session_sha256: String,
        csrf: String,
    },
    Token(ApiToken),
}

/// The caller of one request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Name written to the audit log: the user name, or `token:<name>`.
    pub actor: String,
    pub ip: String,
    pub caller: Caller,
}

impl Identity {
    pub fn role(&self) -> Option<Role> {
        match &self.caller {
            Caller::User { user, .. } => Some(user.role),
            _ => None,
        }
    }
    pub fn user(&self) -> Option<&User> {
        match &self.caller {
            Caller::User { user, .. } => Some(user),
            _ => None,
        }
    }
    pub fn csrf(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { csrf, .. } => Some(csrf),
            _ => None,
        }
    }
    pub fn session_sha256(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { session_sha256, .. } => Some(session_sha256),
            _ => None,
        }
    }

    /// Which calls this caller may see. API tokens drive seats but read no calls.
    pub fn scope(&self, reviewer: ReviewerScope) -> Option<Scope> {
        let user = self.user()?;
        Some(match user.role {
            Role::Admin | Role::Auditor => Scope::All,
            Role::Agent => Scope::Agent(user.agent_id.clone()),
            Role::Qa | Role::Supervisor => match (reviewer, &user.team) {
                (ReviewerScope::All, _) => Scope::All,
                (ReviewerScope::Team, Some(t)) => Scope::Team(t.clone()),
                // A reviewer without a team sees only their own calls as an agent would.
                (ReviewerScope::Team, None) => Scope::Agent(user.agent_id.clone()),
            },
        })
    }

    pub fn event<'a>(
        &'a self,
        action: &'a str,
        call_id: Option<i64>,
        detail: serde_json::Value,
    ) -> Event<'a> {
        Event {
            actor: &self.actor,
            action,
            call_id,
            detail,
            ip: Some(&self.ip),
        }
    }
}

/// Live sessions looked up within the last second, by token hash: a player fetching byte ranges
/// asks with the same cookie many times a second, and the database lookup was a tenth of the
/// streaming CPU (benches/RESULTS.md). Logout, login and password or account changes made in
/// this process take effect at once ([`SessionCache::forget`], [`SessionCache::clear`]); changes
/// made by another process (`callrec users disable`) within [`SESSION_CACHE_TTL`].
#[derive(Default)]
pub struct SessionCache {
    live: std::sync::Mutex<HashMap<String, (Instant, users::Session)>>,
}

pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// Beyond this many entries stale ones are swept on insert, so memory stays bounded.
const SESSION_CACHE_SWEEP_AT: usize = 4096;

impl SessionCache {
    fn get(&self, token_sha256: &str) -> Option<users::Session> {
        let live = self.live.lock().ok()?;
        live.get(token_sha256)
            .filter(|(at, _)| at.elapsed() < SESSION_CACHE_TTL)
            .map(|(_, s)| s.clone())
    }

    fn put(&self, session: users::Session) {
        if let Ok(mut live) = self.live.lock() {
            if live.len() >= SESSION_CACHE_SWEEP_AT {
                live.retain(|_, (at, _)| at.elapsed() < SESSION_CACHE_TTL);
            }
            live.insert(session.token_sha256.clone(), (Instant::now(), session));
        }
    }

    pub fn forget(&self, token_sha256: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(token_sha256);
        }
    }

    /// After any change to accounts or sessions: every next request asks the database.
    pub fn clear(&self) {
        if let Ok(mut live) = self.live.lock() {
            live.clear();
        }
    }
}

fn session_identity(s: users::Session, ip: String) -> Identity {
    Identity {
        actor: s.user.username.clone(),
        ip,
        caller: Caller::User {
            user: s.user,
            session_sha256: s.token_sha256,
            csrf: s.csrf,
        },
    }
}

/// Paths answered with JSON errors rather than pages.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics" || path == "/healthz"
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn identify(st: &St, headers: &HeaderMap, ip: String) -> Result<Identity, AppError> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let Some(secret) = auth.strip_prefix("Bearer ") else {
            return Err(AppError::api(
                StatusCode::UNAUTHORIZED,
                "use `Authorization: Bearer <API token>`",
            ));
        };
        let secret = secret.trim().to_owned();
        let tok = st
            .db
            .write(move |c| users::lookup_token(c, &secret).map_err(AppError::from))
            .await?;
        return match tok {
            Some(t) => Ok(Identity {
                actor: format!("token:{}", t.name),
                ip,
                caller: Caller::Token(t),
            }),
            None => Err(AppError::api(
                StatusCode::UNAUTHORIZED,
                "unknown or revoked API token; an admin can issue one under API tokens",
            )),
        };
    }
    if let Some(tok) = cookie(headers, SESSION_COOKIE) {
        if let Some(s) = st.sessions.get(&users::sha256_hex(tok)) {
            return Ok(session_identity(s, ip));
        }
        let tok = tok.to_owned();
        let (idle, max) = (st.cfg.server.session_idle_s, st.cfg.server.session_max_s);
        let found = st
            .db
            .read_quick(move |c| users::find_session(c, &tok, idle, max).map_err(AppError::from))
            .await?;
        match found {
            users::Lookup::Missing => {}
            users::Lookup::Dead(sha) => {
                st.sessions.forget(&sha);
                st.db
                    .write(move |c| users::delete_session(c, &sha).map_err(AppError::from))
                    .await?;
            }
            users::Lookup::Live { session: s, touch } => {
                if touch {
                    let sha = s.token_sha256.clone();
                    st.db
                        .write(move |c| users::touch_session(c, &sha).map_err(AppError::from))
                        .await?;
                }
                st.sessions.put(s.clone());
                return Ok(session_identity(s, ip));
            }
        }
    }
    Ok(Identity {
        actor: "anonymous".into(),
        ip,
        caller: Caller::Anonymous,
    })
}

fn allowed(access: &Access, id: &Identity, loopback: bool) -> bool {
    match (access, &id.caller) {
        (Access::Public, _) => true,
        (Access::Session, Caller::User { .. }) => true,
        (Access::Roles(roles), Caller::User { user, .. }) => roles.contains(&user.role),
        (Access::Control, Caller::Token(_)) => true,
        (Access::Control, Caller::User { user, .. }) => {
            matches!(user.role, Role::Admin | Role::Supervisor)
        }
        // The local Prometheus scrapes without an account; from elsewhere a session is needed.
        (Access::Metrics, _) if loopback => true,
        (Access::Metrics, Caller::User { user, .. }) => {
            matches!(user.role, Role::Admin | Role::Supervisor | Role::Auditor)
        }
        _ => false,
    }
}

/// The CSRF token sent with a state-changing request: header, form field, or (for the one route
/// fed by `navigator.sendBeacon`, which cannot set headers) the query string.
async fn csrf_of(req: Request, query_ok: bool) -> Result<(Option<String>, Request), AppError> {
    if let Some(h) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        let t = h.to_owned();
        return Ok((Some(t), req));
    }
    if query_ok {
        let q = req.uri().query().unwrap_or_default();
        let found = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v);
        if found.is_some() {
            return Ok((found, req));
        }
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| AppError::page(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v);
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

/// Access control for every routed request (see the module comment).
pub async fn guard(State(st): State<St>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path_pattern = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let api = is_api(req.uri().path());
    let resp = match check(&st, &mut req, &path_pattern, &method, api).await {
        Ok(Some(id)) => {
            req.extensions_mut().insert(id);
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(e) => e.with_html(!api).into_response(),
    };
    st.metrics.observe(
        &method,
        &path_pattern,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn check(
    st: &St,
    req: &mut Request,
    pattern: &str,
    method: &Method,
    api: bool,
) -> Result<Option<Identity>, AppError> {
    let Some(rule) = st
        .rules
        .iter()
        .find(|r| r.method == *method && r.path == pattern)
    else {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            "this route has no access rule; refusing",
        ));
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = peer.map(|a| a.ip().to_string()).unwrap_or_default();
    let loopback = peer.is_some_and(|a| a.ip().is_loopback());
    if matches!(rule.access, Access::Public) {
        return Ok(None);
    }
    let id = identify(st, req.headers(), ip).await?;
    if matches!(id.caller, Caller::Anonymous)
        && !(matches!(rule.access, Access::Metrics) && loopback)
    {
        if api {
            return Err(AppError::api(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /login) or send an API token",
            ));
        }
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Err(AppError::redirect(&format!(
            "/login?next={}",
            super::html::url_enc(next)
        )));
    }
    if !allowed(&rule.access, &id, loopback) {
        return Err(AppError::api(
            StatusCode::FORBIDDEN,
            &format!(
                "{} may not use {method} {pattern}; ask an admin if you need it",
                id.actor
            ),
        ));
    }
    if let Caller::User { user, csrf, .. } = &id.caller {
        if user.must_change && !matches!(rule.access, Access::Session) {
            if api {
                return Err(AppError::api(
                    StatusCode::FORBIDDEN,
                    "change your one-time password first (GET /password)",
                ));
            }
            return Err(AppError::redirect("/password"));
        }
        if *method != Method::GET {
            let taken = std::mem::take(req);
            let (token, back) = csrf_of(taken, rule.csrf_in_query).await?;
            *req = back;
            if !token.is_some_and(|t| ct_eq(&t, csrf)) {
                return Err(AppError::api(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token; reload the page and try again",
                ));
            }
        }
    }
    Ok(Some(id))
}

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

/// Only local paths, never `//host` or a scheme: no open redirect after login.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
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

fn ip_limited(st: &St, ip: &str) -> bool {
    let Ok(mut m) = st.login_attempts.lock() else {
        return false;
    };
    let now = Instant::now();
    m.retain(|_, (since, _)| now.duration_since(*since) < IP_WINDOW);
    let e = m.entry(ip.to_owned()).or_insert((now, 0));
    e.1 += 1;
    e.1 > IP_ATTEMPTS
}

pub async fn post_login(
    State(st): State<St>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (username, password, next) = (field("username"), field("password"), field("next"));
    let ip = peer.ip().to_string();
    let again = |status: StatusCode, msg: &str| -> Result<Response, AppError> {
        let token = users::random_token()?;
        let secure = if st.cfg.server.tls { "; Secure" } else { "" };
        Ok((
            status,
            [(
                header::SET_COOKIE,
                format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict{secure}"),
            )],
            axum::response::Html(login_page(&st, &token, safe_next(&next), Some(msg))),
        )
            .into_response())
    };
    let form_token = field("csrf");
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| !c.is_empty() && ct_eq(c, &form_token)) {
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
    let name = username.clone();
    let user = st
        .db
        .read(move |c| users::get_user(c, &name).map_err(AppError::from))
        .await?;
    let hash = match &user {
        Some(u) => {
            let id = u.id;
            st.db
                .read(move |c| users::password_hash_of(c, id).map_err(AppError::from))
                .await?
        }
        None => st.dummy_hash.clone(),
    };
    let now = crate::clock::utc_now();
    let locked = user
        .as_ref()
        .and_then(|u| u.locked_until_utc.clone())
        .filter(|t| *t > now);
    // Verify even for unknown users and locked accounts, so timing tells nothing.
    let pw = password.clone();
    let good = tokio::task::spawn_blocking(move || users::verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let audit_fail = |action: &'static str, detail: serde_json::Value| {
        let (st, ip, username) = (st.clone(), ip.clone(), username.clone());
        async move {
            st.db
                .write(move |c| {
                    audit::append(
                        c,
                        &Event {
                            actor: &username,
                            action,
                            call_id: None,
                            detail,
                            ip: Some(&ip),
                        },
                    )
                    .map_err(AppError::from)
                })
                .await
        }
    };
    if let Some(until) = locked {
        audit_fail(
            "login.refused",
            serde_json::json!({"reason": "locked", "locked_until_utc": until}),
        )
        .await?;
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("This account is locked until {until} after too many failed logins. Wait, or ask an admin to reset the password."),
        );
    }
    let Some(user) = user.filter(|u| good && !u.disabled) else {
        let mut detail = serde_json::json!({"reason": "bad credentials"});
        if let Some(u) = st
            .db
            .read({
                let n = username.clone();
                move |c| users::get_user(c, &n).map_err(AppError::from)
            })
            .await?
        {
            let (id, after, secs) = (u.id, st.cfg.server.lockout_after, st.cfg.server.lockout_s);
            if u.disabled {
                detail = serde_json::json!({"reason": "disabled"});
            } else if let Some(until) = st
                .db
                .write(move |c| {
                    users::record_failed_login(c, id, after, secs).map_err(AppError::from)
                })
                .await?
            {
                audit_fail(
                    "login.locked",
                    serde_json::json!({"locked_until_utc": until}),
                )
                .await?;
            }
        }
        audit_fail("login.failed", detail).await?;
        return again(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    };
    // A fresh session id at every login (no fixation); whatever cookie came in is discarded.
    let old = cookie(&headers, SESSION_COOKIE).map(users::sha256_hex);
    if let Some(old) = &old {
        st.sessions.forget(old);
    }
    let (u2, ip2) = (user.clone(), ip.clone());
    let token = st
        .db
        .write(move |c| {
            if let Some(old) = old {
                users::delete_session(c, &old)?;
            }
            users::record_good_login(c, u2.id)?;
            let (token, _) = users::create_session(c, &u2, Some(&ip2))?;
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
        safe_next(&next)
    };
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session_cookie(&st, &token, None)),
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
    let token = st
        .db
        .write(move |c| {
            // Ends every session of the user, this one included; then a fresh one for this browser.
            users::set_password(c, &user.username, &new, false)?;
            let fresh = users::get_user(c, &user.username)?
                .ok_or_else(|| users::UserError::NoSuchUser(user.username.clone()))?;
            let (token, _) = users::create_session(c, &fresh, Some(&ip))?;
            audit::append(
                c,
                &id2.event(
                    "password.change",
                    None,
                    serde_json::json!({"user": user.username}),
                ),
            )?;
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
