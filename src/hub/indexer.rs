//! The hub's indexer: lists the bucket for sidecars (`*.json` under `<prefix><box>/yyyy/mm/dd/`)
//! and indexes the new or changed ones (`callrec hub`'s indexer thread; `callrec hub rebuild`).
//!
//! Keeping the listing cheap: a poll (every `hub.poll_s`) lists only the box prefixes
//! (one request with a delimiter) and then, per box, today's and yesterday's day prefixes (UTC):
//! its cost grows with one box-day of calls, never with the archive (10 M calls over years). A
//! sweep (the first poll after a start, then every `hub.sweep_s`) lists every box's whole prefix
//! to catch calls shipped late into an older day (a box offline for days, a backlog). A sidecar
//! whose listed ETag is the one it was indexed (or refused) with is not fetched again: the ETag
//! is kept in the index, so a restart fetches nothing twice. Key order cannot serve as a
//! high-water mark here, because call ids are not zero-padded ("10.json" sorts before "9.json").
//!
//! Idempotent: a sidecar indexed twice leaves one row (matched by box and box call id), a
//! re-shipped sidecar with other bytes rewrites its row under the same hub id. A bad sidecar is
//! logged, remembered with its reason (`hub_rejected`) and skipped; it never stops the pass.
//! This module must never hold a write transaction across a network request.

use super::{prefix_path, sidecar, HubError};
use crate::clock::Clock;
use crate::config::{ArchiveConfig, Config};
use crate::store::{self, hub as hubstore};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore};
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pass {
    /// Sidecar keys listed.
    pub listed: usize,
    /// Sidecars fetched (new or changed ETag).
    pub fetched: usize,
    pub new: usize,
    pub updated: usize,
    /// Fetched again but with the same bytes (a new ETag only).
    pub unchanged: usize,
    pub rejected: usize,
}

pub struct Indexer {
    archive: ArchiveConfig,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    clock: Arc<dyn Clock>,
}

/// `<prefix><box>/<yyyy>/<mm>/<dd>/<digits>.json`: the shape of a sidecar key (its content is
/// checked against it later); anything else in the bucket (audio, peaks, ledger segments, the
/// hub's backups) is not a sidecar.
pub fn is_sidecar_key(prefix: &str, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    parts.len() == 5
        && sidecar::valid_box_id(parts[0])
        && digits(parts[1], 4)
        && digits(parts[2], 2)
        && digits(parts[3], 2)
        && parts[4].strip_suffix(".json").is_some_and(|id| {
            !id.is_empty() && id.len() <= 19 && id.bytes().all(|c| c.is_ascii_digit())
        })
}

impl Indexer {
    pub fn new(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Indexer, HubError> {
        let archive = cfg
            .archive
            .clone()
            .ok_or(crate::archive::ArchiveError::NotConfigured)?;
        let store = super::store_client(cfg)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HubError::Io(format!("starting the indexer's runtime: {e}")))?;
        Ok(Indexer {
            archive,
            store,
            rt,
            clock,
        })
    }

    fn list(&self, prefix: Option<&ObjPath>) -> Result<Vec<ObjectMeta>, HubError> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut l = self.store.list(prefix);
            while let Some(m) = l.next().await {
                let m = m.map_err(|e| HubError::remote(&e, &self.archive))?;
                if is_sidecar_key(&self.archive.prefix, m.location.as_ref()) {
                    out.push(m);
                }
            }
            Ok(out)
        })
    }

    /// The box prefixes under the archive's prefix (`<prefix><box>`), one delimited listing.
    fn boxes(&self) -> Result<Vec<String>, HubError> {
        let p = prefix_path(&self.archive.prefix);
        let l = self
            .rt
            .block_on(self.store.list_with_delimiter(p.as_ref()))
            .map_err(|e| HubError::remote(&e, &self.archive))?;
        Ok(l.common_prefixes
            .iter()
            .map(|p| p.to_string())
            .filter(|p| {
                p.strip_prefix(&self.archive.prefix)
                    .is_some_and(sidecar::valid_box_id)
            })
            .collect())
    }

    /// Sidecars to look at: every one under the prefix (`full`), or today's and yesterday's of
    /// every box.
    fn candidates(&self, full: bool) -> Result<Vec<ObjectMeta>, HubError> {
        if full {
            return self.list(prefix_path(&self.archive.prefix).as_ref());
        }
        let now = self.clock.now_utc();
        let days: Vec<String> = [now, now - chrono::Duration::days(1)]
            .iter()
            .map(|d| d.format("%Y/%m/%d").to_string())
            .collect();
        let mut out = Vec::new();
        for b in self.boxes()? {
            for d in &days {
                out.extend(self.list(Some(&ObjPath::from(format!("{b}/{d}"))))?);
            }
        }
        Ok(out)
    }

    /// One pass: lists, then fetches and indexes what is new or changed.
    pub fn pass(&self, conn: &Connection, full: bool) -> Result<Pass, HubError> {
        let listed = self.candidates(full)?;
        let mut p = Pass {
            listed: listed.len(),
            ..Pass::default()
        };
        for m in listed {
            let key = m.location.to_string();
            let etag = m.e_tag.clone().unwrap_or_default();
            if !etag.is_empty() && hubstore::known_etag(conn, &key)?.as_deref() == Some(&etag) {
                continue;
            }
            p.fetched += 1;
            let now = self.clock.utc_string();
            let parsed = if m.size > sidecar::MAX_SIDECAR_BYTES {
                Err(format!(
                    "{} bytes, more than a sidecar may have ({})",
                    m.size,
                    sidecar::MAX_SIDECAR_BYTES
                ))
            } else {
                match self.fetch(&m.location) {
                    Ok(bytes) => sidecar::parse(&bytes, &key, &etag, &self.archive.prefix),
                    // The store failing is not the sidecar's fault: try again next pass.
                    Err(e) => return Err(e),
                }
            };
            match parsed {
                Ok(call) => match hubstore::upsert(conn, &call, &now)? {
                    hubstore::Indexed::New(id) => {
                        tracing::debug!(call_id = id, key, "hub: indexed");
                        p.new += 1;
                    }
                    hubstore::Indexed::Updated(id) => {
                        tracing::info!(call_id = id, key, "hub: sidecar changed; row updated");
                        p.updated += 1;
                    }
                    hubstore::Indexed::Same(_) => p.unchanged += 1,
                },
                Err(reason) => {
                    tracing::warn!(key, "hub: skipped sidecar {key}: {reason}");
                    hubstore::reject(conn, &key, &etag, &reason, &now)?;
                    p.rejected += 1;
                }
            }
        }
        Ok(p)
    }

    fn fetch(&self, key: &ObjPath) -> Result<Vec<u8>, HubError> {
        self.rt.block_on(async {
            let g = self
                .store
                .get(key)
                .await
                .map_err(|e| HubError::remote(&e, &self.archive))?;
            let b = g
                .bytes()
                .await
                .map_err(|e| HubError::remote(&e, &self.archive))?;
            Ok(b.to_vec())
        })
    }
}

/// What `callrec hub rebuild` did: the pass, and the hub calls the bucket no longer has a
/// sidecar for (kept: QA rows may point at them).
#[derive(Debug, serde::Serialize)]
pub struct Rebuilt {
    pub pass: Pass,
    pub calls: usize,
    pub missing_from_bucket: Vec<String>,
}

/// Re-reads every sidecar in the bucket (`callrec hub rebuild`): an empty index gets every
/// call; an existing one has every row rewritten from its sidecar in place, matched by (box,
/// box call id), so hub ids and the QA rows on them stay.
pub fn rebuild(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Rebuilt, HubError> {
    std::fs::create_dir_all(&cfg.storage.dir)
        .map_err(|e| HubError::Io(format!("{}: {e}", cfg.storage.dir.display())))?;
    let _lock = super::lock(&cfg.storage.dir)?;
    let ix = Indexer::new(cfg, clock)?;
    let conn = store::open_rw(&cfg.db_path())?;
    hubstore::forget_etags(&conn)?;
    let pass = ix.pass(&conn, true)?;
    let known = hubstore::known(&conn)?;
    let missing_from_bucket = known
        .iter()
        .filter(|k| k.sidecar_etag.is_empty())
        .map(|k| k.sidecar_key.clone())
        .collect();
    Ok(Rebuilt {
        pass,
        calls: known.len(),
        missing_from_bucket,
    })
}

/// The indexer thread of `callrec hub`: a sweep at start, then a poll every `hub.poll_s` and a
/// sweep every `hub.sweep_s`, each followed by a round of orders to the boxes (`hub::orders`),
/// until `stop`. Store or index errors are logged and retried at the next poll; they never end
/// the loop.
pub fn run(cfg: Config, stop: Arc<AtomicBool>, clock: Arc<dyn Clock>) -> Result<(), HubError> {
    let settings = super::settings(&cfg);
    let ix = Indexer::new(&cfg, clock)?;
    let conn = store::open_rw(&cfg.db_path())?;
    let poll = Duration::from_secs(settings.poll_s);
    let sweep = Duration::from_secs(settings.sweep_s);
    let mut last_sweep: Option<Instant> = None;
    tracing::info!(
        poll_s = settings.poll_s,
        sweep_s = settings.sweep_s,
        "hub indexer started"
    );
    while !stop.load(Ordering::Relaxed) {
        let full = last_sweep.is_none_or(|t| t.elapsed() >= sweep);
        let t0 = Instant::now();
        match ix.pass(&conn, full) {
            Ok(p) => {
                if full {
                    last_sweep = Some(t0);
                }
                if p.new + p.updated + p.rejected > 0 || full {
                    tracing::info!(
                        full,
                        listed = p.listed,
                        new = p.new,
                        updated = p.updated,
                        rejected = p.rejected,
                        ms = t0.elapsed().as_millis() as u64,
                        "hub: indexed"
                    );
                }
            }
            Err(e) => tracing::error!("hub indexer: {e}; retried in {} s", settings.poll_s),
        }
        // Orders to the boxes (holds, releases, erasures): published, and their acks read.
        match super::orders::round(&conn, &cfg, &crate::clock::format_utc(chrono::Utc::now())) {
            Ok(r) if r.published + r.acked > 0 => tracing::info!(
                published = r.published,
                acked = r.acked,
                "hub: orders to the boxes"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("hub orders: {e}; retried in {} s", settings.poll_s),
        }
        let until = Instant::now() + poll;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    tracing::info!("hub indexer stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sidecar_shaped_keys_are_candidates() {
        for (k, ok) in [
            ("fleet/floor-1/2026/12/05/42.json", true),
            ("fleet/floor-1/2026/12/05/42.opus", false),
            (
                "fleet/floor-1/ledger/000000000001-000000000003.jsonl",
                false,
            ),
            ("fleet/hub/backup/20261205T101010Z.sqlite", false),
            ("fleet/floor 1/2026/12/05/42.json", false),
            ("fleet/floor-1/2026/12/5/42.json", false),
            ("fleet/floor-1/2026/12/05/x.json", false),
            ("other/floor-1/2026/12/05/42.json", false),
            ("fleet/floor-1/2026/12/05/.json", false),
        ] {
            assert_eq!(is_sidecar_key("fleet/", k), ok, "{k}");
        }
        assert!(is_sidecar_key("", "b/2026/12/05/1.json"));
    }
}
