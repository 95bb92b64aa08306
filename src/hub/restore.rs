//! `callrec archive restore --box B`: a replaced box's index rebuilt from the archive alone, and
//! optionally its recent recordings. Every sidecar under `<prefix><B>/` is checked by
//! `hub::sidecar` (the one validation of sidecars) and becomes the call it was, under its own id;
//! the box's ledger comes back from the shipped segments (and the entries the sidecars carry),
//! exactly as written, as far as it is one unbroken chain from entry 1; each restored call is
//! marked archived. `--recordings-since D` downloads the recordings (and peaks) of calls started
//! within D days, streamed to a temporary file, checked against the sidecar's SHA-256, then
//! renamed into place.
//!
//! This module must never write to or delete from the bucket, never restore into an index that
//! holds calls unless forced, and never keep a recording whose SHA-256 was not checked.

use super::{sidecar, HubError};
use crate::config::Config;
use crate::store::archive::Segment;
use crate::store::hub::HubCall;
use crate::store::ledger::{self, Entry};
use crate::store::restore::{self as sql, RestoredCall};
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A ledger segment larger than this is refused unread (the shipper writes at most
/// `LEDGER_SEGMENT_MAX_ENTRIES` entries of well under 1 KiB each).
const MAX_SEGMENT_BYTES: usize = 64 << 20;

pub struct Options {
    pub box_id: String,
    /// Download the recordings of calls started within this many days.
    pub recordings_since_days: Option<u32>,
    /// Restore into an index that already holds calls (what is there stays).
    pub force: bool,
}

/// What a restore found and did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub box_id: String,
    pub sidecars: usize,
    pub written: sql::Written,
    /// The ledger entries found in the archive, and where the chain stops being whole (the
    /// first missing or inconsistent seq), if it does.
    pub ledger_entries_found: usize,
    pub ledger_broken_at_seq: Option<i64>,
    pub recordings: usize,
    pub recording_bytes: u64,
    /// Recordings already in place with the right SHA-256.
    pub recordings_present: usize,
    /// Sidecars refused by the checks: (key, why).
    pub refused: Vec<(String, String)>,
}

fn remote(e: &object_store::Error, cfg: &crate::config::ArchiveConfig) -> HubError {
    HubError::remote(e, cfg)
}

/// Restores box `o.box_id` into `conn` (this box's index; `cfg` is this box's config).
pub fn restore(cfg: &Config, conn: &Connection, o: &Options) -> Result<Report, HubError> {
    let archive = cfg
        .archive
        .clone()
        .ok_or(crate::archive::ArchiveError::NotConfigured)?;
    if o.box_id != cfg.box_.id {
        return Err(HubError::Refused(format!(
            "this box is {:?}; restore box {:?} on a box configured with `[box] id = {:?}` (its calls keep their ids and object keys)",
            cfg.box_.id, o.box_id, o.box_id
        )));
    }
    if !sidecar::valid_box_id(&o.box_id) {
        return Err(HubError::Refused("not a box id".into()));
    }
    let held = sql::call_count(conn)?;
    if held > 0 && !o.force {
        return Err(HubError::Refused(format!(
            "the index already holds {held} call(s): restore is for a replaced box's empty index. Add --force to add what is missing (nothing present is changed)"
        )));
    }
    let store = super::store_client(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HubError::Io(format!("starting a runtime: {e}")))?;
    let base = format!("{}{}/", archive.prefix, o.box_id);
    let listed = rt.block_on(async {
        let mut out = Vec::new();
        let mut l = store.list(Some(&ObjPath::from(base.trim_end_matches('/'))));
        while let Some(m) = l.next().await {
            out.push(m.map_err(|e| remote(&e, &archive))?);
        }
        Ok::<_, HubError>(out)
    })?;
    let mut r = Report {
        box_id: o.box_id.clone(),
        ..Report::default()
    };
    let mut calls: Vec<(HubCall, String)> = Vec::new();
    let mut etags: BTreeMap<String, String> = BTreeMap::new();
    let mut entries: BTreeMap<i64, Entry> = BTreeMap::new();
    let mut segments = Vec::new();
    for m in &listed {
        etags.insert(m.location.to_string(), m.e_tag.clone().unwrap_or_default());
    }
    for m in &listed {
        let key = m.location.to_string();
        let etag = m.e_tag.clone().unwrap_or_default();
        if super::indexer::is_sidecar_key(&archive.prefix, &key) {
            r.sidecars += 1;
            if m.size > sidecar::MAX_SIDECAR_BYTES {
                r.refused.push((key, "too large for a sidecar".into()));
                continue;
            }
            let bytes = get(&rt, store.as_ref(), &key, &archive)?;
            match sidecar::parse(&bytes, &key, &etag, &archive.prefix) {
                Ok(c) => {
                    for e in &c.ledger {
                        entries.entry(e.seq).or_insert_with(|| e.clone());
                    }
                    calls.push((c, etag));
                }
                Err(why) => r.refused.push((key, why)),
            }
        } else if key.starts_with(&format!("{base}ledger/")) && key.ends_with(".jsonl") {
            if m.size > MAX_SEGMENT_BYTES as u64 {
                r.refused
                    .push((key, "too large for a ledger segment".into()));
                continue;
            }
            let bytes = get(&rt, store.as_ref(), &key, &archive)?;
            let (first, last) = parse_segment(&bytes, &mut entries)
                .map_err(|why| HubError::Refused(format!("ledger segment {key}: {why}")))?;
            segments.push(Segment {
                first_seq: first,
                last_seq: last,
                object_key: key,
                sha256: crate::hash::sha256_hex(&bytes),
                etag,
                shipped_at_utc: m.last_modified.to_rfc3339(),
            });
        }
    }
    // The chain as far as it is whole from entry 1: each entry's own hash, its seq, its link.
    r.ledger_entries_found = entries.len();
    let mut chain: Vec<Entry> = Vec::new();
    let mut prev = ledger::GENESIS.to_owned();
    for (seq, e) in &entries {
        let next = chain.len() as i64 + 1;
        if *seq != next || e.prev_sha256 != prev || !ledger::check_entry(e).is_empty() {
            r.ledger_broken_at_seq = Some(next);
            break;
        }
        prev = e.entry_sha256.clone();
        chain.push(e.clone());
    }
    // Segments only while the chain covers them, so the shipper ships the rest again.
    let whole_through = chain.last().map_or(0, |e| e.seq);
    segments.retain(|s| s.last_seq <= whole_through);
    let restored: Vec<RestoredCall> = calls
        .iter()
        .filter_map(|(c, _)| {
            Some(RestoredCall {
                call: c,
                rel_path: rel_path(&c.started_at_utc, c.box_call_id)?,
                audio_etag: etags.get(&c.objects.audio_key).cloned().unwrap_or_default(),
            })
        })
        .collect();
    r.written = sql::write(conn, &restored, &chain, &segments, &crate::clock::utc_now())?;
    if let Some(days) = o.recordings_since_days {
        let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let since = since.format("%Y-%m-%dT%H:%M:%S").to_string();
        for rc in &restored {
            if rc.call.started_at_utc.as_str() < since.as_str() {
                continue;
            }
            fetch_recording(&rt, &store, &archive, &cfg.storage.dir, rc, &mut r)?;
        }
    }
    Ok(r)
}

/// `calls/<yyyy>/<mm>/<dd>/<id>.opus`, as the recorder names a call's file.
fn rel_path(started_at_utc: &str, call_id: i64) -> Option<String> {
    let day = started_at_utc.get(0..10)?.replace('-', "/");
    Some(format!("calls/{day}/{call_id}.opus"))
}

fn get(
    rt: &tokio::runtime::Runtime,
    store: &dyn ObjectStore,
    key: &str,
    archive: &crate::config::ArchiveConfig,
) -> Result<Vec<u8>, HubError> {
    rt.block_on(async {
        let g = store
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| remote(&e, archive))?;
        let b = g.bytes().await.map_err(|e| remote(&e, archive))?;
        Ok(b.to_vec())
    })
}

/// A ledger segment's entries (JSON lines) into `entries`; its first and last seq.
fn parse_segment(bytes: &[u8], entries: &mut BTreeMap<i64, Entry>) -> Result<(i64, i64), String> {
    let mut seqs = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let e: Entry = serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some(p) = ledger::check_entry(&e).first() {
            return Err(format!("entry {}: {p}", e.seq));
        }
        seqs.push(e.seq);
        entries.insert(e.seq, e);
    }
    match (seqs.iter().min(), seqs.iter().max()) {
        (Some(a), Some(b)) => Ok((*a, *b)),
        _ => Err("no entries".into()),
    }
}

/// The call's recording and peaks into the storage dir, each checked against its sidecar.
fn fetch_recording(
    rt: &tokio::runtime::Runtime,
    store: &std::sync::Arc<dyn ObjectStore>,
    archive: &crate::config::ArchiveConfig,
    storage_dir: &Path,
    rc: &RestoredCall,
    r: &mut Report,
) -> Result<(), HubError> {
    let o = &rc.call.objects;
    let dest = crate::store::call_file(storage_dir, &rc.rel_path)
        .ok_or_else(|| HubError::Refused(format!("{:?} is not a call path", rc.rel_path)))?;
    if crate::hash::sha256_file(&dest).is_ok_and(|(sha, _)| sha == o.audio_sha256) {
        r.recordings_present += 1;
        return Ok(());
    }
    let mut objects = vec![(o.audio_key.clone(), o.audio_sha256.clone(), dest.clone())];
    if let (Some(k), Some(s)) = (&o.peaks_key, &o.peaks_sha256) {
        objects.push((k.clone(), s.clone(), dest.with_extension("dat")));
    }
    for (key, sha, to) in objects {
        let n = download_checked(rt, store.as_ref(), archive, &key, &sha, &to)?;
        if to == dest {
            r.recordings += 1;
            r.recording_bytes += n;
        }
    }
    Ok(())
}

/// Streams `key` into a temporary file next to `to`, checks its SHA-256, renames it into place.
fn download_checked(
    rt: &tokio::runtime::Runtime,
    store: &dyn ObjectStore,
    archive: &crate::config::ArchiveConfig,
    key: &str,
    sha256: &str,
    to: &Path,
) -> Result<u64, HubError> {
    use sha2::Digest;
    use std::io::Write;
    let io = |e: std::io::Error| HubError::Io(format!("{}: {e}", to.display()));
    let dir = to
        .parent()
        .ok_or_else(|| HubError::Io(format!("{} has no parent", to.display())))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = to.with_extension("restore.tmp");
    let got = rt.block_on(async {
        let g = store
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| remote(&e, archive))?;
        let mut s = g.into_stream();
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let mut h = sha2::Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| remote(&e, archive))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            f.write_all(&chunk).map_err(io)?;
        }
        f.sync_all().map_err(io)?;
        Ok::<_, HubError>((hex::encode(h.finalize()), n))
    });
    let (found, n) = match got {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if found != sha256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(HubError::Refused(format!(
            "{key} in the archive has SHA-256 {found}, its sidecar says {sha256}: not restored; run `callrec archive verify`"
        )));
    }
    std::fs::rename(&tmp, to).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(n)
}
