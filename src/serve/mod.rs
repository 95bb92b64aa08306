//! The web service (`callrec serve`, and half of `callrec run`): QA search, replay, notes, the
//! audit log, the CTI control API, health and metrics, over HTTPS (rustls) by default.
//!
//! Layout: `routes` is the table of routes and rules; `auth` enforces it; `pages` renders HTML;
//! `api` answers JSON; `stream` serves audio and peaks; `metrics` counts requests; `db` runs
//! SQLite off the async threads; `tls` loads or generates the certificate. The server never
//! writes audio: it reads the files the recorder finished (or is writing) and drives the
//! recorder only through its control socket, exactly like `callrec call …`.

pub mod api;
pub mod auth;
pub mod calibration_api;
pub mod charts;
pub mod compliance_api;
pub mod db;
pub mod html;
pub mod metrics;
pub mod pages;
pub mod qa_api;
pub mod qa_pages;
pub mod reports;
pub mod routes;
pub mod stream;
pub mod tls;

use crate::config::Config;
use crate::store::users::{self, NewUser, Role, UserError};
use crate::store::{audit, StoreError};
use anyhow::Context;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use db::{Db, DbError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct AppState {
    pub cfg: Config,
    pub db: Db,
    pub rules: Vec<routes::Rule>,
    pub metrics: metrics::Metrics,
    /// Login attempts per client address (the account lockout lives in the database).
    pub login_attempts: Mutex<HashMap<String, (Instant, u32)>>,
    /// Verified against when a login names no existing user, so timing reveals nothing.
    pub dummy_hash: String,
    /// (session hash, call) pairs whose `play` is already audited (the table `session_plays` is
    /// the durable record; this spares a write per range request).
    pub plays_seen: Mutex<std::collections::HashSet<(String, i64)>>,
    pub sessions: auth::SessionCache,
}

pub type St = Arc<AppState>;

/// An error as the user sees it: a status, a message saying what to do, as a page or JSON.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    html: bool,
    location: Option<String>,
}

impl AppError {
    pub fn api(status: StatusCode, message: &str) -> Self {
        AppError {
            status,
            message: message.to_owned(),
            html: false,
            location: None,
        }
    }
    pub fn page(status: StatusCode, message: &str) -> Self {
        AppError {
            status,
            message: message.to_owned(),
            html: true,
            location: None,
        }
    }
    pub fn bad_request(message: &str) -> Self {
        Self::api(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: &str) -> Self {
        Self::api(StatusCode::NOT_FOUND, message)
    }
    pub fn redirect(to: &str) -> Self {
        AppError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            html: true,
            location: Some(to.to_owned()),
        }
    }
    pub fn with_html(mut self, html: bool) -> Self {
        self.html = html;
        self
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {e}");
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; it has been logged (journalctl -u callrec). Retry, and tell the administrator if it persists",
        )
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchCall(id) => Self::not_found(&format!("no call {id}")),
            other => Self::internal(other),
        }
    }
}

impl From<UserError> for AppError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::BadRole(_)
            | UserError::BadName(_)
            | UserError::Exists(_)
            | UserError::ShortPassword
            | UserError::BadTokenName(_) => Self::bad_request(&e.to_string()),
            UserError::NoSuchUser(_) => Self::not_found(&e.to_string()),
            UserError::Store(s) => s.into(),
            other => Self::internal(other),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e).into()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(to) = self.location {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
        }
        if self.html {
            let body = html::page(
                None,
                "Error",
                &format!(
                    r#"<main><h1>{} {}</h1><p class="error">{}</p><p><a href="/calls">Back to the calls</a> · <a href="/login">Log in again</a></p></main>"#,
                    self.status.as_u16(),
                    self.status.canonical_reason().unwrap_or_default(),
                    html::esc(&self.message)
                ),
            );
            (self.status, axum::response::Html(body)).into_response()
        } else {
            (
                self.status,
                axum::Json(serde_json::json!({ "error": self.message })),
            )
                .into_response()
        }
    }
}

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::not_found(&format!("no page at {}; start from /calls", uri.path()))
        .with_html(!auth::is_api(uri.path()))
}

/// Headers on every response: a strict CSP (no inline script), no sniffing, no framing, HSTS
/// under TLS, and no caching unless a handler chose otherwise.
async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    if tls {
        set(h, "strict-transport-security", "max-age=31536000");
    }
    resp
}

/// Creates `admin` with a random one-time password if there are no users yet, and returns it
/// (printed once by the caller; only its hash is stored).
fn bootstrap_admin(db: &Db) -> anyhow::Result<Option<String>> {
    db.write_blocking(|c| -> Result<Option<String>, UserError> {
        if users::count_users(c)? > 0 {
            return Ok(None);
        }
        let pw = users::one_time_password()?;
        users::add_user(
            c,
            &NewUser {
                username: "admin",
                role: Role::Admin,
                agent_id: None,
                team: None,
                password: &pw,
                must_change: true,
            },
        )?;
        audit::append(
            c,
            &audit::Event {
                actor: "system",
                action: "user.add",
                call_id: None,
                detail: serde_json::json!({"user": "admin", "role": "admin", "why": "first start"}),
                ip: None,
            },
        )?;
        Ok(Some(pw))
    })?
    .map_err(Into::into)
}

/// Runs the web service until `stop` is set. Blocks the calling thread.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File and database work waits in the blocking pool. Tokio's default cap (512) let 200
        // streaming clients grow it to ~200 threads that mostly woke each other; a small pool
        // queues instead, which costs nothing on 2 cores with page-cached files.
        .max_blocking_threads(64)
        .thread_name("http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, stop))
}

async fn serve(cfg: Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::store::identity::precheck(&cfg.storage.dir, cfg.storage.id.as_deref())?;
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    let db = Db::open(&cfg.db_path())?;
    let (dir, expected) = (cfg.storage.dir.clone(), cfg.storage.id.clone());
    db.write_blocking(|c| crate::store::identity::ensure(&dir, c, expected.as_deref()))??;
    let seeded = db.write_blocking(crate::store::qa::seed_default_cards)??;
    if !seeded.is_empty() {
        tracing::info!(cards = ?seeded, "installed the default scorecards");
    }
    let scripts = db.write_blocking(crate::store::compliance::seed_default_scripts)??;
    if !scripts.is_empty() {
        tracing::info!(scripts = ?scripts, "installed the default call scripts");
    }
    if let Some(pw) = bootstrap_admin(&db)? {
        println!("callrec: first start: created user `admin` with one-time password: {pw}");
        println!("callrec: log in and choose a new password; this one is not shown again");
    }
    let addr: SocketAddr = cfg
        .server
        .bind
        .parse()
        .with_context(|| format!("server.bind {:?}", cfg.server.bind))?;
    let tls_on = cfg.server.tls;
    let dummy_hash = users::hash_password("not-a-password-of-anyone")?;
    let (router, rules) = routes::router();
    let st: St = Arc::new(AppState {
        cfg: cfg.clone(),
        db,
        rules,
        metrics: metrics::Metrics::default(),
        login_attempts: Mutex::new(HashMap::new()),
        dummy_hash,
        plays_seen: Mutex::new(std::collections::HashSet::new()),
        sessions: auth::SessionCache::default(),
    });
    let app = router
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            auth::guard,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            tls_on,
            security_headers,
        ))
        .with_state(st.clone())
        .into_make_service_with_connect_info::<SocketAddr>();

    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h2.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let scheme = if tls_on { "https" } else { "http" };
    let shown = if addr.ip().is_unspecified() {
        format!("{scheme}://localhost:{}/", addr.port())
    } else {
        format!("{scheme}://{addr}/")
    };
    if tls_on {
        let (cert, key, made) = tls::ensure_pair(
            cfg.server.cert_path.as_deref(),
            cfg.server.key_path.as_deref(),
            &cfg.tls_dir(),
            &cfg.box_.id,
        )?;
        if made {
            println!(
                "callrec: generated a self-signed certificate at {}",
                cert.display()
            );
        }
        let rc = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .with_context(|| {
                format!(
                    "loading TLS certificate {} / key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        let server = axum_server::bind_rustls(addr, rc).handle(handle.clone());
        println!("callrec: web UI at {shown}");
        server
            .serve(app)
            .await
            .with_context(|| format!("serving on {addr}"))?;
    } else {
        tracing::warn!(
            "TLS is off (server.tls = false): use this only on loopback or behind a TLS proxy"
        );
        let server = axum_server::bind(addr).handle(handle.clone());
        println!("callrec: web UI at {shown}");
        server
            .serve(app)
            .await
            .with_context(|| format!("serving on {addr}"))?;
    }
    Ok(())
}
