//! The web service (`callrec serve`, and half of `callrec run`): QA search, replay, notes, the
//! audit log, the CTI control API, health and metrics, over HTTPS (rustls) by default.
//!
//! Layout: `routes` is the table of routes and their rules (`access`); `guard` enforces them
//! with `identity` (who is calling); `login` starts and ends sessions; `pages` renders HTML;
//! `api` answers JSON; `error` and `state` are what every handler shares; `stream` serves audio
//! and peaks; `metrics` counts requests; `db` runs SQLite off the async threads; `tls` loads or
//! generates the certificate. This file only assembles them. The server never
//! writes audio: it reads the files the recorder finished (or is writing) and drives the
//! recorder only through its control socket, exactly like `callrec call …`.

pub mod access;
pub mod api;
pub mod calibration_api;
pub mod charts;
pub mod compliance_api;
pub mod db;
pub mod error;
pub mod guard;
pub mod html;
pub mod identity;
pub mod login;
pub mod metrics;
pub mod pages;
pub mod qa_api;
pub mod qa_pages;
pub mod reports;
pub mod routes;
pub mod state;
pub mod stream;
pub mod tls;

use crate::config::Config;
use crate::store::audit;
use crate::store::users::{self, NewUser, Role, UserError};
use anyhow::Context;
use axum::http::HeaderValue;
use axum::response::Response;
use db::Db;
use error::AppError;
use state::{AppState, St};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::not_found(&format!("no page at {}; start from /calls", uri.path()))
        .with_html(!identity::is_api(uri.path()))
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
            audit::Actor::local("system"),
        )?;
        Ok(Some(pw))
    })?
    .map_err(Into::into)
}

/// Runs the web service until `stop` is set. Blocks the calling thread.
pub fn run(
    cfg: Config,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
) -> anyhow::Result<()> {
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
    rt.block_on(serve(cfg, stop, clock))
}

async fn serve(
    cfg: Config,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
) -> anyhow::Result<()> {
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
        clock,
        db,
        rules,
        metrics: metrics::Metrics::default(),
        login_attempts: Mutex::new(HashMap::new()),
        dummy_hash,
        plays_seen: Mutex::new(std::collections::HashSet::new()),
        sessions: identity::SessionCache::default(),
    });
    let app = router
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            guard::guard,
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
