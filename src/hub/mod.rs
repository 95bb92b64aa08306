//! The fleet's QA hub (`callrec hub`): the existing web UI over every floor's calls, indexed from
//! the sidecars the boxes ship to the archive. The hub is the one place of truth for QA in a
//! fleet: scorecards, evaluations, sampling, calibration, spot checks, transcripts and reports
//! live in its own index (same schema as a box's), which it backs up to the bucket.
//!
//! Layout: `sidecar` checks a sidecar from the bucket and turns it into a hub call (outside
//! input: every field is validated, nothing panics); `indexer` lists the bucket and indexes new
//! or changed sidecars (`callrec hub`'s indexer thread, and `callrec hub rebuild`); `remote`
//! streams audio from the store with Range passed through and keeps the bounded on-disk cache
//! for readers of whole files; `backup` writes and restores the hub's own state; `export` makes
//! evidence bundles of archived calls; `restore` rebuilds a replaced box's index from the archive
//! (`callrec archive restore`).
//!
//! `orders` carries legal holds, releases and erasures made at the hub to the boxes, and is the
//! fleet's one deleter of archive objects (erasure, archive retention).
//!
//! This module must never write to the bucket except under `<prefix>hub/` (its backups and
//! key) and `<prefix>orders/`, never delete an object except through `orders` (which never
//! deletes one under a hold or a COMPLIANCE date), and never delete a `calls` row (QA rows
//! may point at it).

pub mod backup;
pub mod export;
pub mod indexer;
pub mod orders;
pub mod remote;
pub mod restore;
pub mod sidecar;

use crate::archive::{self, ArchiveError, Credentials};
use crate::config::{Config, HubConfig};
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("object store: {0}")]
    Remote(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Refused(String),
}

impl HubError {
    pub(crate) fn remote(e: &object_store::Error, cfg: &crate::config::ArchiveConfig) -> HubError {
        HubError::Remote(archive::describe_store_error(e, &cfg.endpoint, &cfg.bucket))
    }
}

/// The hub's settings: `[hub]` or its defaults.
pub fn settings(cfg: &Config) -> HubConfig {
    cfg.hub.clone().unwrap_or_default()
}

/// The store client of `[archive]` (credentials checked as the shipper checks them).
pub fn store_client(cfg: &Config) -> Result<Arc<dyn ObjectStore>, HubError> {
    let a = cfg.archive.as_ref().ok_or(ArchiveError::NotConfigured)?;
    let creds = Credentials::load(&a.credentials_file)?;
    Ok(Arc::new(archive::client(a, &creds)?))
}

/// The object-store path of a key prefix (`fleet/` → `fleet`; empty → the whole bucket).
pub(crate) fn prefix_path(prefix: &str) -> Option<object_store::path::Path> {
    let p = prefix.trim_end_matches('/');
    (!p.is_empty()).then(|| object_store::path::Path::from(p))
}

/// Whether `cfg` is the fleet hub's: it has `[hub]`, or `callrec hub` has run on its storage
/// dir. Holds, erasure and archive retention then run the hub's way (`orders`).
pub fn is_hub(cfg: &Config) -> bool {
    cfg.hub.is_some() || lock_path(&cfg.storage.dir).exists()
}

/// `<storage dir>/hub.lock`: held (flock) by a running `callrec hub`.
pub fn lock_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join("hub.lock")
}

/// The running hub's lock: held for as long as this lives.
pub struct HubLock {
    _file: std::fs::File,
}

/// Takes the hub's lock without waiting; refused (naming the file) while another process holds
/// it, i.e. while `callrec hub` runs on this storage dir.
pub fn lock(storage_dir: &Path) -> Result<HubLock, HubError> {
    let path = lock_path(storage_dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HubError::Io(format!("{}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            HubError::Refused(format!(
                "the hub is running on {} (it holds {}): stop it first (systemctl stop callrec-hub)",
                storage_dir.display(),
                path.display()
            ))
        },
    )?;
    Ok(HubLock { _file: file })
}
