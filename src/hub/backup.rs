//! The hub's own state (users, QA records, audit, the hub index) to the bucket and back:
//! `callrec hub backup` writes a consistent snapshot (`VACUUM INTO`, safe while the hub runs) as
//! `<prefix>hub/backup/<yyyymmddThhmmssZ>.sqlite` with its SHA-256 beside it (`.sha256`, the
//! `sha256sum` format, and the object's `x-amz-meta-sha256`); `callrec hub restore-state`
//! fetches the newest (or a named) snapshot, checks its hash and `PRAGMA integrity_check`, and
//! puts it in place of the index, keeping the old one beside it. Refused while the hub runs.
//!
//! This module must never replace the index with bytes whose hash or integrity check failed, and
//! never delete the index it replaces (it is renamed to `callrec.db.before-restore-<utc>`).

use super::{prefix_path, HubError};
use crate::archive::META_SHA256;
use crate::config::Config;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Above this a snapshot goes up in parts.
const SINGLE_PUT_MAX_BYTES: u64 = 32 << 20;
const PART_BYTES: usize = 8 << 20;

/// `<prefix>hub/backup/`: where snapshots live.
pub fn backup_prefix(prefix: &str) -> String {
    format!("{prefix}hub/backup/")
}

#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> HubError + '_ {
    move |e| HubError::Io(format!("{}: {e}", p.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime, HubError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HubError::Io(format!("starting a runtime: {e}")))
}

/// Writes a snapshot of the hub's index to the bucket; returns its key and hash.
pub fn backup(cfg: &Config, now: chrono::DateTime<chrono::Utc>) -> Result<Snapshot, HubError> {
    let a = cfg
        .archive
        .as_ref()
        .ok_or(crate::archive::ArchiveError::NotConfigured)?;
    let db = cfg.db_path();
    if !db.exists() {
        return Err(HubError::Refused(format!(
            "no hub index at {}: start callrec hub first",
            db.display()
        )));
    }
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let dir = cfg.storage.dir.join("backup");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let local = dir.join(format!("{stamp}.sqlite"));
    let _ = std::fs::remove_file(&local);
    {
        // A read transaction of its own: consistent even while the hub writes.
        let conn = crate::store::open_ro(&db)?;
        conn.execute("VACUUM INTO ?1", [local.to_string_lossy()])
            .map_err(|e| HubError::Io(format!("VACUUM INTO {}: {e}", local.display())))?;
    }
    let result = upload(cfg, a, &local, &stamp);
    let _ = std::fs::remove_file(&local);
    result
}

fn upload(
    cfg: &Config,
    a: &crate::config::ArchiveConfig,
    local: &Path,
    stamp: &str,
) -> Result<Snapshot, HubError> {
    let (sha256, bytes) = crate::hash::sha256_file(local).map_err(io(local))?;
    let key = format!("{}{stamp}.sqlite", backup_prefix(&a.prefix));
    let store = super::store_client(cfg)?;
    let attrs = || {
        Attributes::from_iter([
            (
                Attribute::Metadata(META_SHA256.into()),
                AttributeValue::from(sha256.clone()),
            ),
            (
                Attribute::ContentType,
                AttributeValue::from("application/vnd.sqlite3"),
            ),
        ])
    };
    let rt = runtime()?;
    let path = ObjPath::from(key.as_str());
    rt.block_on(async {
        if bytes <= SINGLE_PUT_MAX_BYTES {
            let body = std::fs::read(local).map_err(io(local))?;
            let opts = PutOptions {
                attributes: attrs(),
                ..PutOptions::default()
            };
            store
                .put_opts(&path, PutPayload::from(body), opts)
                .await
                .map_err(|e| HubError::remote(&e, a))?;
        } else {
            let opts = PutMultipartOptions {
                attributes: attrs(),
                ..PutMultipartOptions::default()
            };
            let up = store
                .put_multipart_opts(&path, opts)
                .await
                .map_err(|e| HubError::remote(&e, a))?;
            let mut w = WriteMultipart::new_with_chunk_size(up, PART_BYTES);
            let mut f = std::fs::File::open(local).map_err(io(local))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                w.wait_for_capacity(2)
                    .await
                    .map_err(|e| HubError::remote(&e, a))?;
                let n = f.read(&mut buf).map_err(io(local))?;
                if n == 0 {
                    break;
                }
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(|e| HubError::remote(&e, a))?;
        }
        let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
        let line = format!("{sha256}  {name}\n");
        store
            .put(
                &ObjPath::from(format!("{key}.sha256")),
                PutPayload::from(line.into_bytes()),
            )
            .await
            .map_err(|e| HubError::remote(&e, a))?;
        Ok::<_, HubError>(())
    })?;
    Ok(Snapshot { key, sha256, bytes })
}

#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
    /// Where the replaced index went (None when there was none).
    pub previous: Option<PathBuf>,
}

/// Puts the newest snapshot (or `at`) in place of the hub's index. Refused while the hub runs
/// (its lock is held), when the snapshot's hash differs from its `.sha256`, or when SQLite's
/// integrity check fails; the index in place is then untouched.
pub fn restore_state(
    cfg: &Config,
    at: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Restored, HubError> {
    let a = cfg
        .archive
        .as_ref()
        .ok_or(crate::archive::ArchiveError::NotConfigured)?;
    std::fs::create_dir_all(&cfg.storage.dir).map_err(io(&cfg.storage.dir))?;
    let _lock = super::lock(&cfg.storage.dir)?;
    let store = super::store_client(cfg)?;
    let rt = runtime()?;
    let under = backup_prefix(&a.prefix);
    let key = match at {
        Some(k) if k.starts_with(&under) && k.ends_with(".sqlite") => k.to_owned(),
        Some(k) => {
            return Err(HubError::Refused(format!(
                "{k:?} is not a snapshot key: snapshots are {under}<utc>.sqlite"
            )))
        }
        None => {
            let p = prefix_path(&under);
            let keys: Vec<String> = rt.block_on(async {
                let mut out = Vec::new();
                let mut l = store.list(p.as_ref());
                while let Some(m) = l.next().await {
                    let m = m.map_err(|e| HubError::remote(&e, a))?;
                    out.push(m.location.to_string());
                }
                Ok::<_, HubError>(out)
            })?;
            // The stamps sort as times.
            keys.into_iter()
                .filter(|k| k.ends_with(".sqlite"))
                .max()
                .ok_or_else(|| {
                    HubError::Refused(format!(
                        "no snapshot under {under}: run callrec hub backup first"
                    ))
                })?
        }
    };
    let tmp = cfg.storage.dir.join("callrec.db.restore-tmp");
    let _ = std::fs::remove_file(&tmp);
    let (want, got, bytes) = rt.block_on(async {
        let side = store
            .get(&ObjPath::from(format!("{key}.sha256")))
            .await
            .map_err(|e| HubError::remote(&e, a))?
            .bytes()
            .await
            .map_err(|e| HubError::remote(&e, a))?;
        let want: String = String::from_utf8_lossy(&side).chars().take(64).collect();
        let g = store
            .get(&ObjPath::from(key.as_str()))
            .await
            .map_err(|e| HubError::remote(&e, a))?;
        let mut s = g.into_stream();
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut h = sha2::Sha256::new();
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            let c = c.map_err(|e| HubError::remote(&e, a))?;
            h.update(&c);
            n += c.len() as u64;
            f.write_all(&c).map_err(io(&tmp))?;
        }
        f.sync_all().map_err(io(&tmp))?;
        Ok::<_, HubError>((want, hex::encode(h.finalize()), n))
    })?;
    if !crate::hash::is_sha256_hex(&want) || want != got {
        let _ = std::fs::remove_file(&tmp);
        return Err(HubError::Refused(format!(
            "{key}: its SHA-256 is {got}, its .sha256 says {want:?}: not restored"
        )));
    }
    let check: Result<Vec<String>, rusqlite::Error> = (|| {
        let c = rusqlite::Connection::open_with_flags(
            &tmp,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let rows = c
            .prepare("PRAGMA integrity_check")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    })();
    match check {
        Ok(rows) if rows == ["ok"] => {}
        Ok(rows) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(HubError::Refused(format!(
                "{key}: PRAGMA integrity_check says {}: not restored",
                rows.join("; ")
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(HubError::Refused(format!(
                "{key}: not an SQLite index ({e}): not restored"
            )));
        }
    }
    let db = cfg.db_path();
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut previous = None;
    if db.exists() {
        let aside = cfg
            .storage
            .dir
            .join(format!("callrec.db.before-restore-{stamp}"));
        std::fs::rename(&db, &aside).map_err(io(&db))?;
        // The old index's WAL must not be replayed into the restored one.
        for ext in ["-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{ext}", db.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{ext}", aside.display()));
                std::fs::rename(&from, &to).map_err(io(&from))?;
            }
        }
        previous = Some(aside);
    }
    std::fs::rename(&tmp, &db).map_err(io(&db))?;
    std::fs::File::open(&cfg.storage.dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&cfg.storage.dir))?;
    // A snapshot of an older schema is brought up to date now, not on the next start.
    drop(crate::store::open_rw(&db)?);
    Ok(Restored {
        key,
        sha256: got,
        bytes,
        previous,
    })
}
