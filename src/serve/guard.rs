//! The middleware in front of every routed handler: finds the route's rule in the table built
//! by `routes.rs` (a route without a rule is refused: fail closed), identifies the caller
//! (session cookie or `Authorization: Bearer` API token), checks the role, forces a password
//! change when one is due, and checks the CSRF token on every state-changing request made with
//! a cookie. Handlers never re-decide access by role; they only narrow by scope (which calls).
//!
//! This module must never let a request through without a rule, and never render a page of its
//! own (refusals are [`AppError`]s).

use super::access::{allowed, cross_site, Access};
use super::error::AppError;
use super::html::url_enc;
use super::identity::{
    client_of, cookie, ct_eq, is_api, session_identity, Caller, Identity, SESSION_COOKIE,
};
use super::state::St;
use crate::store::users;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::time::Instant;

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
        if let Some(s) = st.sessions.get(&crate::hash::sha256_hex(tok)) {
            return Ok(session_identity(s, ip));
        }
        let tok = tok.to_owned();
        let (idle, max) = (st.cfg.server.session_idle_s, st.cfg.server.session_max_s);
        let now = st.clock.now_utc();
        let found = st
            .db
            .read_quick(move |c| {
                users::find_session(c, &tok, idle, max, now).map_err(AppError::from)
            })
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
                        .write(move |c| users::touch_session(c, &sha, now).map_err(AppError::from))
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
    let (ip, loopback) = match peer {
        Some(a) => {
            let (client, loopback) = client_of(a.ip(), req.headers(), &st.trusted_proxies);
            (client.to_string(), loopback)
        }
        None => (String::new(), false),
    };
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
            url_enc(next)
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
        // The session cookie rides along on a cross-site top-level navigation (SameSite=Lax);
        // a route whose GET writes an audit row must not run for a request another site
        // started, or a link there could write `search` or `download` rows in this user's name.
        if rule.audited_get
            && cross_site(
                req.headers()
                    .get("sec-fetch-site")
                    .and_then(|v| v.to_str().ok()),
            )
        {
            return Err(AppError::api(
                StatusCode::FORBIDDEN,
                "this address was opened from another site; searches, downloads and the audit log open only from callrec's own pages (or typed or bookmarked)",
            ));
        }
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
