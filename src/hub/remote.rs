//! Hub calls' audio and peaks from the object store: byte ranges passed straight through (a seek
//! in an hour-long call fetches only the bytes the player asks for), the peaks object whole, and
//! a bounded on-disk cache under `<storage dir>/cache/` for the readers that need a whole file
//! (WAV rendering, metrics, exports). A cached file is downloaded once, checked against the
//! sidecar's SHA-256 before it is used, and evicted least recently used over `hub.cache_bytes`.
//!
//! This module must never serve or keep bytes whose SHA-256 was not checked when they are kept
//! whole (the cache, peaks), and never write outside `<storage dir>/cache/`.

use super::HubError;
use crate::config::{ArchiveConfig, Config};
use crate::store::hub::HubObjects;
use futures_util::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stream of the object's bytes, as the store sends them.
pub type ByteStream = futures_util::stream::BoxStream<'static, Result<Vec<u8>, std::io::Error>>;

pub struct Remote {
    archive: ArchiveConfig,
    store: Arc<dyn ObjectStore>,
    storage_dir: PathBuf,
    cache_bytes: u64,
    /// One download into the cache at a time: two viewers of one call fetch it once, and the
    /// eviction that follows sees a settled directory.
    filling: tokio::sync::Mutex<()>,
}

impl Remote {
    pub fn new(cfg: &Config) -> Result<Remote, HubError> {
        let archive = cfg
            .archive
            .clone()
            .ok_or(crate::archive::ArchiveError::NotConfigured)?;
        Ok(Remote {
            archive,
            store: super::store_client(cfg)?,
            storage_dir: cfg.storage.dir.clone(),
            cache_bytes: super::settings(cfg).cache_bytes,
            filling: tokio::sync::Mutex::new(()),
        })
    }

    fn err(&self, e: &object_store::Error) -> HubError {
        HubError::remote(e, &self.archive)
    }

    /// Bytes `first..=last` of the object at `key`: one ranged GET, streamed as it arrives.
    pub async fn range(&self, key: &str, first: u64, last: u64) -> Result<ByteStream, HubError> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(first..last + 1)),
            ..GetOptions::default()
        };
        let g = self
            .store
            .get_opts(&ObjPath::from(key), opts)
            .await
            .map_err(|e| self.err(&e))?;
        let expected = last + 1 - first;
        if g.range.end - g.range.start != expected {
            return Err(HubError::Remote(format!(
                "asked {key} for {expected} bytes from {first}, the store answered {:?}",
                g.range
            )));
        }
        Ok(g.into_stream()
            .map(|r| r.map(|b| b.to_vec()).map_err(std::io::Error::other))
            .boxed())
    }

    /// A whole small object (peaks), checked against its SHA-256 and size.
    pub async fn whole(&self, key: &str, sha256: &str, bytes: u64) -> Result<Vec<u8>, HubError> {
        if bytes > 64 << 20 {
            return Err(HubError::Refused(format!(
                "{key}: {bytes} bytes is too large to fetch whole"
            )));
        }
        let g = self
            .store
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| self.err(&e))?;
        let b = g.bytes().await.map_err(|e| self.err(&e))?;
        if b.len() as u64 != bytes || crate::hash::sha256_hex(&b) != sha256 {
            return Err(HubError::Refused(format!(
                "{key} in the store is not what its sidecar says (size or SHA-256 differ): run callrec archive verify"
            )));
        }
        Ok(b.to_vec())
    }

    /// The call's audio as a local file (`<storage dir>/<rel_path>`, under `cache/`): the cached
    /// copy when there is one of the right size, else downloaded, SHA-256-checked, and the
    /// cache trimmed to `hub.cache_bytes` (least recently used first).
    pub async fn cached_file(&self, rel_path: &str, o: &HubObjects) -> Result<PathBuf, HubError> {
        let path = crate::store::call_file(&self.storage_dir, rel_path)
            .filter(|_| rel_path.starts_with("cache/"))
            .ok_or_else(|| HubError::Refused(format!("{rel_path:?} is not a hub cache path")))?;
        if fresh(&path, o.audio_bytes) {
            return Ok(path);
        }
        let _one = self.filling.lock().await;
        if fresh(&path, o.audio_bytes) {
            return Ok(path);
        }
        let dir = path
            .parent()
            .ok_or_else(|| HubError::Io(format!("{} has no parent", path.display())))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| HubError::Io(format!("{}: {e}", dir.display())))?;
        let tmp = path.with_extension(format!("part-{}", std::process::id()));
        let got = self.download(&o.audio_key, &tmp).await;
        let (sha, n) = match got {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if sha != o.audio_sha256 || n != o.audio_bytes {
            let _ = std::fs::remove_file(&tmp);
            return Err(HubError::Refused(format!(
                "{} in the store is not what its sidecar says ({n} bytes, SHA-256 {sha}; expected {} bytes, {}): not cached; run callrec archive verify",
                o.audio_key, o.audio_bytes, o.audio_sha256
            )));
        }
        std::fs::rename(&tmp, &path)
            .map_err(|e| HubError::Io(format!("{}: {e}", path.display())))?;
        let cache = self.storage_dir.join("cache");
        let limit = self.cache_bytes;
        let keep = path.clone();
        // Walking the cache is file-system work: off the async threads.
        let _ = tokio::task::spawn_blocking(move || evict(&cache, limit, &keep)).await;
        Ok(path)
    }

    /// A sidecar's bytes and ETag, refused unread beyond `sidecar::MAX_SIDECAR_BYTES`.
    pub(crate) async fn sidecar(&self, key: &str) -> Result<(Vec<u8>, String), HubError> {
        let g = self
            .store
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| self.err(&e))?;
        if g.meta.size > super::sidecar::MAX_SIDECAR_BYTES {
            return Err(HubError::Refused(format!(
                "{key}: {} bytes, more than a sidecar may have",
                g.meta.size
            )));
        }
        let etag = g.meta.e_tag.clone().unwrap_or_default();
        let b = g.bytes().await.map_err(|e| self.err(&e))?;
        Ok((b.to_vec(), etag))
    }

    /// The whole object at `key` streamed into the new file `to` (never whole in memory);
    /// its SHA-256 and size.
    pub(crate) async fn download(&self, key: &str, to: &Path) -> Result<(String, u64), HubError> {
        let g = self
            .store
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| self.err(&e))?;
        let mut s = g.into_stream();
        let mut f = std::fs::File::create(to)
            .map_err(|e| HubError::Io(format!("{}: {e}", to.display())))?;
        let mut h = sha2::Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| self.err(&e))?;
            h.update(&chunk);
            n += chunk.len() as u64;
            f.write_all(&chunk)
                .map_err(|e| HubError::Io(format!("{}: {e}", to.display())))?;
        }
        Ok((hex::encode(h.finalize()), n))
    }
}

/// A cached file of the expected size; touched (mtime = now) so that eviction sees it as used.
fn fresh(path: &Path, bytes: u64) -> bool {
    let Ok(f) = std::fs::File::options().write(true).open(path) else {
        return false;
    };
    let ok = f.metadata().is_ok_and(|m| m.len() == bytes);
    if ok {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    ok
}

/// Deletes the least recently used files under `dir` until their total is at most `limit`
/// (never `keep`, the file just fetched). Returns the bytes freed.
pub fn evict(dir: &Path, limit: u64, keep: &Path) -> u64 {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                let used = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                files.push((used, m.len(), e.path()));
            }
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut freed = 0;
    for (_, len, p) in files {
        if total <= limit {
            break;
        }
        if p == keep {
            continue;
        }
        if std::fs::remove_file(&p).is_ok() {
            total -= len;
            freed += len;
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_newest_and_the_one_just_fetched() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("b");
        std::fs::create_dir_all(&sub)?;
        let t = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + s);
        for (name, age) in [("1.opus", 1), ("2.opus", 2), ("3.opus", 3), ("4.opus", 4)] {
            let p = sub.join(name);
            std::fs::write(&p, vec![0u8; 100])?;
            std::fs::File::options()
                .write(true)
                .open(&p)?
                .set_modified(t(age))?;
        }
        // The oldest one was just fetched: it stays, the next oldest go.
        let freed = evict(dir.path(), 250, &sub.join("1.opus"));
        assert_eq!(freed, 200);
        let mut left: Vec<String> = std::fs::read_dir(&sub)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        left.sort();
        assert_eq!(left, vec!["1.opus", "4.opus"]);
        Ok(())
    }
}
