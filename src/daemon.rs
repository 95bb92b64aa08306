//! The long-running processes, assembled: `callrec record` (the recorder), `callrec serve` (the
//! web service), `callrec ship` (the archive shipper), `callrec run` (all in one process, for
//! the demo and small boxes; the shipper only with `[archive]`) and `callrec hub` (the fleet's
//! QA hub: the web service over the archive, and its indexer).
//!
//! Start-up order and signal handling live here once, for all three: the box key is made or
//! loaded before anything records, SIGTERM/SIGINT ask for a clean stop (a second signal exits at
//! once), and in `run` the index is migrated before either half opens it.
//!
//! This module must never let the web half or the shipper stop the recorder: one that fails to
//! start or dies is logged, and recording goes on.

use crate::config::Config;
use crate::{archive, clock, evidence, hub, record, serve, store};
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The recorder daemon until SIGTERM/SIGINT.
pub fn record(cfg: Config) -> anyhow::Result<()> {
    box_key_at_start(&cfg);
    let stop = stop_on_signals()?;
    record::run(cfg, stop, clock::system())
}

/// The web service until SIGTERM/SIGINT.
pub fn serve(cfg: Config) -> anyhow::Result<()> {
    box_key_at_start(&cfg);
    let stop = stop_on_signals()?;
    serve::run(cfg, stop, clock::system())
}

/// The archive shipper until SIGTERM/SIGINT (`[archive]` must be set).
pub fn ship(cfg: Config) -> anyhow::Result<()> {
    if cfg.archive.is_none() {
        return Err(archive::ArchiveError::NotConfigured.into());
    }
    let stop = stop_on_signals()?;
    archive::ship::run(cfg, stop, clock::system())
}

/// The fleet's QA hub until SIGTERM/SIGINT: the indexer (its own thread, connection and
/// runtime) and the web service over the hub's index. Needs `[archive]`; refuses `[[seat]]` (the
/// hub records nothing). Holds `<storage dir>/hub.lock` while it runs, so `callrec hub
/// restore-state` cannot swap the index under it.
pub fn hub(cfg: Config) -> anyhow::Result<()> {
    if cfg.archive.is_none() {
        return Err(archive::ArchiveError::NotConfigured.into());
    }
    if !cfg.seats.is_empty() {
        anyhow::bail!(
            "the hub records nothing: remove the {} [[seat]] section(s) from its config",
            cfg.seats.len()
        );
    }
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    let _lock = hub::lock(&cfg.storage.dir)?;
    // Migrate once, before the indexer and the web service open the index.
    drop(store::open_rw(&cfg.db_path())?);
    let remote = Arc::new(hub::remote::Remote::new(&cfg)?);
    let stop = stop_on_signals()?;
    let (ix_cfg, ix_stop) = (cfg.clone(), stop.clone());
    let indexer = std::thread::Builder::new()
        .name("hub-index".into())
        .spawn(move || {
            if let Err(e) = hub::indexer::run(ix_cfg, ix_stop, clock::system()) {
                tracing::error!("hub indexer stopped: {e}");
            }
        })?;
    let result = serve::run_hub(cfg, stop.clone(), clock::system(), remote);
    stop.store(true, Ordering::Relaxed);
    let _ = indexer.join();
    result
}

/// Recorder and web service in one process. Recording never depends on the web half: if the
/// server cannot start (port taken, bad certificate) the error is logged and recording goes on.
pub fn run_both(cfg: Config) -> anyhow::Result<()> {
    box_key_at_start(&cfg);
    std::fs::create_dir_all(&cfg.storage.dir)
        .with_context(|| format!("creating storage dir {}", cfg.storage.dir.display()))?;
    // Migrate once, before either half opens the index.
    drop(store::open_rw(&cfg.db_path())?);
    let stop = stop_on_signals()?;
    // The shipper: its own thread, its own connection and runtime; it never touches the
    // recorder's threads, and its failure is logged while recording goes on.
    let shipper = match cfg.archive.is_some() {
        true => {
            let (ship_cfg, ship_stop) = (cfg.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("ship".into())
                    .spawn(move || {
                        if let Err(e) = archive::ship::run(ship_cfg, ship_stop, clock::system()) {
                            tracing::error!("archive shipper stopped: {e:#}; recording continues");
                        }
                    })?,
            )
        }
        false => None,
    };
    let result = run_recorder_and_web(cfg, stop.clone());
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = shipper {
        let _ = s.join();
    }
    result
}

fn run_recorder_and_web(cfg: Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    if !cfg.server.enabled {
        return record::run(cfg, stop, clock::system());
    }
    let (web_cfg, web_stop) = (cfg.clone(), stop.clone());
    let server = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            if let Err(e) = serve::run(web_cfg, web_stop, clock::system()) {
                tracing::error!("web service stopped: {e:#}; recording continues");
            }
        })?;
    let result = record::run(cfg, stop.clone(), clock::system());
    // The recorder stopped (a signal, or an error): the web half stops with it.
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    result
}

/// A flag set by the first SIGTERM or SIGINT; a second one exits at once (status 1).
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Makes the box key on first start (or loads it) and logs its fingerprint. Recording never
/// depends on it: a problem is logged and the daemon goes on; `callrec export` then refuses with
/// the same reason until it is fixed.
fn box_key_at_start(cfg: &Config) {
    // An unmounted or wrong disk: write nothing (the recorder and server refuse it next).
    if store::identity::precheck(&cfg.storage.dir, cfg.storage.id.as_deref()).is_err() {
        return;
    }
    match evidence::key::ensure(&cfg.storage.dir) {
        Ok((k, made)) => tracing::info!(
            fingerprint_sha256 = k.fingerprint_sha256(),
            "{} box key {}",
            if made { "made a new" } else { "using" },
            k.paths.public.display()
        ),
        Err(e) => tracing::error!(
            "box key: {e}. Recording goes on; evidence export is refused until this is fixed"
        ),
    }
}
