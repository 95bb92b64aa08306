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
pub mod complaints_api;
pub mod compliance_api;
pub mod db;
pub mod erasure_pages;
pub mod error;
pub mod export_api;
pub mod figures_api;
pub mod floor;
pub mod guard;
pub mod holds_pages;
pub mod html;
pub mod identity;
mod list_page;
mod live;
pub mod login;
pub mod metrics;
pub mod operator;
pub mod outcomes_api;
pub mod pages;
pub mod qa_api;
pub mod qa_pages;
pub mod remote;
pub mod reports;
pub mod routes;
pub mod state;
pub mod stream;
pub mod targets_api;
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

/// How often the web service deletes expired sessions.
const SESSION_PRUNE_EVERY: Duration = Duration::from_secs(300);

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
    rt.block_on(serve(cfg, stop, clock, None))
}

/// The web service of the hub (`callrec hub`): the same routes over the hub's index, its calls'
/// audio and peaks from the object store through `hub`. Blocks the calling thread.
pub fn run_hub(
    cfg: Config,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
    hub: Arc<crate::hub::remote::Remote>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, stop, clock, Some(hub)))
}

async fn serve(
    cfg: Config,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn crate::clock::Clock>,
    hub: Option<Arc<crate::hub::remote::Remote>>,
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
    let categories = db.write_blocking(crate::store::complaints::seed_categories)??;
    if categories > 0 {
        tracing::info!(categories, "installed the default complaint categories");
    }
    let lists = db.write_blocking(crate::store::outcomes::seed_defaults)??;
    if !lists.is_empty() {
        tracing::info!(campaigns = ?lists, "installed the default outcome lists");
    }
    if let Some(pw) = bootstrap_admin(&db)? {
        println!("callrec: first start: created user `admin` with one-time password: {pw}");
        println!("callrec: log in and choose a new password; this one is not shown again");
    }
    files_for_connections(cfg.server.max_connections)?;
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
        metrics_running: Mutex::new(std::collections::HashSet::new()),
        sessions: identity::SessionCache::default(),
        trusted_proxies: cfg.server.trusted_proxy_nets(),
        hub,
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
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(cfg.server.request_body_timeout_ms),
            body_deadline,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            cfg.server.max_body_bytes,
        ))
        .with_state(st.clone())
        .into_make_service_with_connect_info::<SocketAddr>();

    // Expired sessions nobody presents again would otherwise stay for ever (logins prune too).
    let pruner = st.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SESSION_PRUNE_EVERY).await;
            let (idle, max) = (
                pruner.cfg.server.session_idle_s,
                pruner.cfg.server.session_max_s,
            );
            let now = pruner.clock.now_utc();
            let pruned = pruner
                .db
                .write(move |c| Ok::<_, db::DbError>(users::prune_sessions(c, idle, max, now)))
                .await;
            match pruned {
                Ok(Ok(n)) if n > 0 => tracing::debug!(sessions = n, "pruned expired sessions"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("pruning expired sessions: {e}"),
                Err(e) => tracing::warn!("pruning expired sessions: {e}"),
            }
        }
    });
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
    let limits = Limits::new(&cfg.server);
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
        // The cap is checked at TCP accept, before the handshake costs anything.
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rc)
            .handshake_timeout(Duration::from_millis(cfg.server.tls_handshake_timeout_ms))
            .acceptor(limits);
        let server = with_limits(
            axum_server::bind(addr).acceptor(acceptor),
            &cfg.server,
            handle.clone(),
        );
        println!("callrec: web UI at {shown}");
        server
            .serve(app)
            .await
            .with_context(|| format!("serving on {addr}"))?;
    } else {
        tracing::warn!(
            "TLS is off (server.tls = false): use this only on loopback or behind a TLS proxy"
        );
        let server = with_limits(
            axum_server::bind(addr).acceptor(limits),
            &cfg.server,
            handle.clone(),
        );
        println!("callrec: web UI at {shown}");
        server
            .serve(app)
            .await
            .with_context(|| format!("serving on {addr}"))?;
    }
    Ok(())
}

/// Files the process needs besides its connections: the index, audio files being streamed,
/// the blocking pool's work, the certificate, logs.
const FILES_BESIDES_CONNECTIONS: u64 = 256;

/// Makes sure `server.max_connections` fits in the file limit (raising the soft limit up to the
/// hard one if needed), so a full connection table can never starve the index or a stream of a
/// file descriptor. Refuses to start when it cannot fit.
fn files_for_connections(max_connections: usize) -> anyhow::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let need = max_connections as u64 + FILES_BESIDES_CONNECTIONS;
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|cur| cur < need) {
        let hard = lim.maximum.unwrap_or(u64::MAX);
        lim.current = Some(need.min(hard));
        // Best effort: if this fails the check below names the setting.
        let _ = setrlimit(Resource::Nofile, lim);
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if have < need {
        anyhow::bail!(
            "server.max_connections = {max_connections} needs a file limit of at least {need} \
             (the web unit's LimitNOFILE=), but this process may open only {have}"
        );
    }
    Ok(())
}

/// The HTTP side of the limits: header-read and first-request timeouts, request-head size,
/// per-connection buffers, and HTTP/2 streams per connection.
fn with_limits<Acc>(
    mut server: axum_server::Server<SocketAddr, Acc>,
    sc: &crate::config::ServerConfig,
    handle: axum_server::Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, Acc> {
    let header_read = Duration::from_millis(sc.header_read_timeout_ms);
    let b = server.http_builder();
    b.http1()
        .header_read_timeout(header_read)
        // The read buffer bounds the request head (over it: 431) and what one connection may
        // buffer (hyper's default is ~400 KiB); response bodies are queued, not copied into it.
        .max_buf_size(sc.max_header_bytes);
    b.http2()
        .max_concurrent_streams(32)
        .max_header_list_size(u32::try_from(sc.max_header_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(64 * 1024);
    server
        .handle(handle)
        // Also bounds hyper's protocol detection and a first HTTP/2 request.
        .first_request_timeout(header_read)
        .accept_error_handler(|peer, e| {
            tracing::debug!(?peer, "connection not accepted: {e}");
        })
}

/// Fails the request if its body has not all arrived by the deadline (a slow drip of a form
/// or JSON body), so no handler waits on a client for longer than
/// `server.request_body_timeout_ms`.
async fn body_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::body::HttpBody as _;
    use futures_util::StreamExt as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let req = req.map(|body| {
        let chunks =
            futures_util::stream::unfold(Some(body.into_data_stream()), move |s| async move {
                let mut s = s?;
                match tokio::time::timeout_at(deadline, s.next()).await {
                    Ok(Some(chunk)) => Some((chunk, Some(s))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(axum::Error::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "request body not received in server.request_body_timeout_ms",
                        ))),
                        None,
                    )),
                }
            });
        axum::body::Body::from_stream(chunks)
    });
    next.run(req).await
}

/// Connection caps, checked when a TCP connection is accepted: in total and per client address
/// (IPv6: per /64). A connection over a cap is closed at once, never queued, so memory and file
/// descriptors stay bounded whatever clients do. Every admitted connection also gets an idle
/// timeout (nothing read or written for `server.idle_timeout_ms` closes it).
#[derive(Clone)]
struct Limits(Arc<LimitsInner>);

struct LimitsInner {
    max_total: usize,
    max_per_client: usize,
    idle: Duration,
    /// Open connections in total and per client; entries exist only while connections do.
    open: Mutex<(usize, HashMap<std::net::IpAddr, usize>)>,
    refused: std::sync::atomic::AtomicU64,
}

impl Limits {
    fn new(sc: &crate::config::ServerConfig) -> Limits {
        Limits(Arc::new(LimitsInner {
            max_total: sc.max_connections,
            max_per_client: sc.max_connections_per_client,
            idle: Duration::from_millis(sc.idle_timeout_ms),
            open: Mutex::new((0, HashMap::new())),
            refused: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// One client: an IPv4 address, or an IPv6 /64 (what one host or site usually holds).
    fn client(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).into()
            }
            v4 => v4,
        }
    }

    /// A slot for one more connection from `ip`, or which cap it is over.
    fn admit(&self, ip: std::net::IpAddr) -> Result<Slot, &'static str> {
        let client = Self::client(ip);
        let mut open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        if *total >= self.0.max_total {
            return Err("server.max_connections");
        }
        let n = per_client.get(&client).copied().unwrap_or(0);
        if n >= self.0.max_per_client {
            return Err("server.max_connections_per_client");
        }
        per_client.insert(client, n + 1);
        *total += 1;
        Ok(Slot {
            limits: self.0.clone(),
            client,
        })
    }
}

/// One admitted connection's place under the caps; given back when the connection is dropped.
struct Slot {
    limits: Arc<LimitsInner>,
    client: std::net::IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for Limits {
    type Stream = Limited;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Limited, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let admitted = stream.peer_addr().and_then(|peer| {
            self.admit(peer.ip()).map_err(|cap| {
                let n = self.0.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(%peer, refused_total = n, "connection closed at accept: over {cap}");
                }
                std::io::Error::other(format!("over {cap}"))
            })
        });
        // On refusal `stream` is dropped here: the client sees the connection closed.
        std::future::ready(admitted.map(|slot| {
            let idle = self.0.idle;
            let timer = Box::pin(tokio::time::sleep(idle));
            let io = Limited {
                io: stream,
                _slot: slot,
                idle,
                timer,
            };
            (io, service)
        }))
    }
}

/// An admitted connection: holds its [`Slot`] and closes itself (an I/O error) when nothing has
/// been read or written for the idle timeout while the server waits on the client.
struct Limited {
    io: tokio::net::TcpStream,
    _slot: Slot,
    idle: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Limited {
    fn progress(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
    }

    /// Called when the socket is not ready: pending, or an error once the client is idle too long.
    fn pending<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future as _;
        match self.timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection idle longer than server.idle_timeout_ms",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for Limited {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut me.io).poll_read(cx, buf) {
            std::task::Poll::Pending => me.pending(cx),
            std::task::Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    me.progress();
                }
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl tokio::io::AsyncWrite for Limited {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        match std::pin::Pin::new(&mut me.io).poll_write(cx, data) {
            std::task::Poll::Pending => me.pending(cx),
            std::task::Poll::Ready(Ok(n)) => {
                if n > 0 {
                    me.progress();
                }
                std::task::Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        match std::pin::Pin::new(&mut me.io).poll_write_vectored(cx, bufs) {
            std::task::Poll::Pending => me.pending(cx),
            std::task::Poll::Ready(Ok(n)) => {
                if n > 0 {
                    me.progress();
                }
                std::task::Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_client_and_slots_come_back() {
        let sc = crate::config::ServerConfig {
            max_connections: 3,
            max_connections_per_client: 2,
            ..Default::default()
        };
        let l = Limits::new(&sc);
        let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
        let a1 = l.admit(ip("10.0.0.1")).unwrap();
        let a2 = l.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            l.admit(ip("10.0.0.1")).err(),
            Some("server.max_connections_per_client")
        );
        // One IPv6 /64 is one client; an IPv4-mapped address is its IPv4 client.
        let b1 = l.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8::2")).err(),
            Some("server.max_connections")
        );
        drop(a1);
        let b2 = l.admit(ip("2001:db8::ffff")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8::3")).err(),
            Some("server.max_connections")
        );
        drop((a2, b1, b2));
        let m = l.admit(ip("::ffff:10.0.0.1")).unwrap();
        {
            let open = l.0.open.lock().unwrap();
            assert_eq!(open.0, 1);
            assert_eq!(open.1.keys().collect::<Vec<_>>(), vec![&ip("10.0.0.1")]);
        }
        drop(m);
        let open = l.0.open.lock().unwrap();
        assert_eq!(
            (open.0, open.1.len()),
            (0, 0),
            "entries exist only while connections do"
        );
    }
}
