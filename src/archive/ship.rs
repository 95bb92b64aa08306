//! The shipper: `callrec ship` (its own process) or a thread of `callrec run`. It queues every
//! finalized call, uploads its audio, peaks and sidecar, and marks it archived with the store's
//! ETag once every object is confirmed, and ships the ledger as append-only JSON-lines segments;
//! failures are retried with exponential backoff, and alarm
//! `archive_backlog` is raised while the oldest unshipped call is older than `backlog_alarm_s`.
//!
//! Idempotent without conditional puts (ignored by versioned and Object Lock buckets): before
//! each upload the key is HEADed, and an object with our size and our SHA-256 in its
//! `x-amz-meta-sha256` is taken as already there. A shipper killed between an upload and its
//! mark therefore uploads nothing twice on the next start.
//!
//! Bounded memory: one call at a time; files up to [`SINGLE_PUT_MAX_BYTES`] are read whole (an
//! hour is ~15 MB), larger ones go up in [`PART_BYTES`] parts with at most two in flight.
//! Object Lock (`archive::lock`): at start the shipper learns the bucket's lock mode; every
//! confirmed object version then gets its retain-until date and, for a held call, its legal
//! hold before the call is marked archived (with the mode, date and hold recorded). Each round
//! also brings object legal holds in line with holds placed or released since, and at start and
//! hourly it aborts multipart uploads left under the box's prefix by a shipper that died.
//!
//! This must never touch the recorder (no control socket, no shared thread), never write a
//! recording, and never hold an SQLite write transaction across a network request.

use super::lock;
use super::s3x::{LockMode, S3Error, S3x};
use super::sidecar::{self, ObjectRef};
use super::{audio_key, describe_store_error, ArchiveError, Credentials, META_SHA256};
use crate::clock::{format_utc, Clock};
use crate::config::{ArchiveConfig, Config};
use crate::store::{self, alarms, archive as queue, CallStatus};
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};
use rusqlite::Connection;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest file sent in one PUT; above it, multipart.
pub const SINGLE_PUT_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Multipart part size (S3's minimum is 5 MiB except for the last part).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Calls taken from the queue per round, and queued per scan.
const BATCH: usize = 32;
/// A ledger segment holds at most this many entries...
const LEDGER_SEGMENT_MAX_ENTRIES: usize = 1000;
/// ...and is cut at least this often while entries arrive (the first one at once).
const LEDGER_SEGMENT_INTERVAL_S: i64 = 60;
/// How long the shipper sleeps when nothing is due.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often multipart uploads left behind are looked for (and at start)...
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// ...and how old one must be to be aborted by the hourly sweep. At start every upload under the
/// box's prefix is aborted: one shipper per box, and nothing of this one is in flight yet.
const ORPHAN_UPLOAD_AGE_S: i64 = 3600;

/// Why one call was not shipped.
#[derive(Debug, thiserror::Error)]
enum ShipError {
    /// May pass by itself or once an operator fixes the store side: retried with backoff.
    #[error("{0}")]
    Retry(String),
    /// The local side is wrong (file missing or changed, call deleted): marked failed.
    #[error("{0}")]
    Fail(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What the store confirmed for a call's audio object.
struct Confirmed {
    etag: String,
    version: Option<String>,
}

impl Confirmed {
    fn version_id(&self) -> String {
        self.version.clone().unwrap_or_default()
    }
}

/// What one round did, for logs and benches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub archived: usize,
    pub retried: usize,
    pub failed: usize,
    pub bytes_uploaded: u64,
    pub objects_skipped: usize,
}

/// The bucket's Object Lock mode as learnt at start ([`lock::resolve_mode`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum LockState {
    /// Not asked yet, or the store did not answer: nothing is shipped until it does.
    Unknown,
    Known(Option<LockMode>),
}

pub struct Shipper {
    cfg: ArchiveConfig,
    retention: crate::config::RetentionConfig,
    s3: S3x,
    lock: LockState,
    next_sweep: Option<std::time::Instant>,
    storage_dir: PathBuf,
    box_id: String,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    clock: Arc<dyn Clock>,
    /// When the next look for orders from the hub is due (`archive::orders`).
    next_orders: Option<std::time::Instant>,
    pub totals: Round,
}

impl Shipper {
    /// Reads the credentials and builds the client; nothing is sent yet.
    pub fn new(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Shipper, ArchiveError> {
        let a = cfg.archive.clone().ok_or(ArchiveError::NotConfigured)?;
        let creds = Credentials::load(&a.credentials_file)?;
        let store = Arc::new(super::client(&a, &creds)?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ArchiveError::Client(format!("starting the shipper's runtime: {e}")))?;
        Ok(Shipper {
            s3: S3x::new(&a, &creds),
            cfg: a,
            retention: cfg.retention.clone(),
            lock: LockState::Unknown,
            next_sweep: None,
            storage_dir: cfg.storage.dir.clone(),
            box_id: cfg.box_.id.clone(),
            store,
            rt,
            clock,
            next_orders: None,
            totals: Round::default(),
        })
    }

    /// Queues finalized calls not yet queued, then ships what is due; returns what it did.
    pub fn round(&mut self, conn: &Connection) -> Result<Round, store::StoreError> {
        let now = self.clock.utc_string();
        loop {
            let found = queue::unqueued(conn, 512)?;
            if found.is_empty() {
                break;
            }
            let keyed: Vec<(i64, String)> = found
                .iter()
                .map(|(id, box_id, started)| {
                    // A start time that makes no key still gets a stable, findable one.
                    let key =
                        audio_key(&self.cfg.prefix, box_id, started, *id).unwrap_or_else(|| {
                            format!("{}{box_id}/undated/{id}.opus", self.cfg.prefix)
                        });
                    (*id, key)
                })
                .collect();
            queue::enqueue(conn, &keyed, &now)?;
        }
        let mut r = Round::default();
        if let Err(msg) = self.start_lock() {
            // Without the bucket's lock mode nothing is shipped: it could be marked archived
            // without the retention the operator asked for. The queue shows why.
            for up in queue::due(conn, &now, BATCH)? {
                let wait_s = backoff_s(up.attempts, self.cfg.retry_max_s);
                let next =
                    format_utc(self.clock.now_utc() + chrono::Duration::seconds(wait_s as i64));
                queue::mark_retry(conn, up.call_id, &msg, &next)?;
                r.retried += 1;
            }
            self.alarm(conn)?;
            return Ok(r);
        }
        self.sweep_uploads();
        for up in queue::due(conn, &now, BATCH)? {
            match self.ship_one(conn, &up, &mut r) {
                Ok((c, lock)) => {
                    queue::mark_archived_locked(
                        conn,
                        up.call_id,
                        &c.etag,
                        c.version.as_deref(),
                        &lock,
                        &self.clock.utc_string(),
                    )?;
                    r.archived += 1;
                }
                Err(ShipError::Retry(msg)) => {
                    let wait_s = backoff_s(up.attempts, self.cfg.retry_max_s);
                    let next =
                        format_utc(self.clock.now_utc() + chrono::Duration::seconds(wait_s as i64));
                    tracing::warn!(call_id = up.call_id, retry_in_s = wait_s, "archive: {msg}");
                    queue::mark_retry(conn, up.call_id, &msg, &next)?;
                    r.retried += 1;
                    // The store is down or refuses us: the rest of the batch would only fail
                    // the same way, each after its own timeouts.
                    break;
                }
                Err(ShipError::Fail(msg)) => {
                    tracing::error!(call_id = up.call_id, "archive: not shipped: {msg}");
                    queue::mark_failed(conn, up.call_id, &msg)?;
                    r.failed += 1;
                }
                Err(ShipError::Store(e)) => return Err(e),
            }
        }
        if r.retried == 0 {
            let s3 = match self.lock {
                LockState::Known(Some(_)) => Some(&self.s3),
                _ => None,
            };
            match lock::sync_holds(conn, s3) {
                Ok(Some(n)) if n > 0 => {
                    tracing::info!(
                        calls = n,
                        "archive: object legal holds follow the holds in force"
                    )
                }
                Ok(_) => {}
                Err(lock::LockError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!("archive: object legal holds not brought in line yet: {e}")
                }
            }
            match self.ship_ledger(conn, &mut r) {
                Ok(_) => {}
                Err(ShipError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!("archive: ledger segment not shipped: {e}"),
            }
        }
        self.orders(conn);
        self.alarm(conn)?;
        for (t, x) in [
            (&mut self.totals.archived, r.archived),
            (&mut self.totals.retried, r.retried),
            (&mut self.totals.failed, r.failed),
            (&mut self.totals.objects_skipped, r.objects_skipped),
        ] {
            *t += x;
        }
        self.totals.bytes_uploaded += r.bytes_uploaded;
        Ok(r)
    }

    /// Learns the bucket's Object Lock mode once (GetObjectLockConfiguration); Err: why not.
    fn start_lock(&mut self) -> Result<(), String> {
        if let LockState::Known(_) = self.lock {
            return Ok(());
        }
        match lock::resolve_mode(&self.cfg, &self.s3) {
            Ok(m) => {
                tracing::info!(
                    object_lock = m.map_or("off", |m| m.as_str()),
                    bucket = self.cfg.bucket,
                    "archive: object lock mode"
                );
                self.lock = LockState::Known(m);
                Ok(())
            }
            Err(e) => {
                let msg = match &e {
                    lock::LockError::S3(s) => describe_s3_error(s, &self.cfg),
                    other => other.to_string(),
                };
                tracing::warn!("archive: {msg}");
                Err(msg)
            }
        }
    }

    /// Aborts multipart uploads left under this box's prefix: all at start, then hourly those
    /// older than [`ORPHAN_UPLOAD_AGE_S`]. Failures are logged and tried again next hour.
    fn sweep_uploads(&mut self) {
        let now = std::time::Instant::now();
        let older_than = match self.next_sweep {
            Some(t) if now < t => return,
            Some(_) => Some(self.clock.now_utc() - chrono::Duration::seconds(ORPHAN_UPLOAD_AGE_S)),
            None => None,
        };
        self.next_sweep = Some(now + UPLOAD_SWEEP_EVERY);
        let prefix = format!("{}{}/", self.cfg.prefix, self.box_id);
        match lock::abort_orphaned_uploads(&self.s3, &prefix, older_than) {
            Ok(a) if !a.is_empty() => {
                for u in &a {
                    tracing::warn!(
                        key = u.key,
                        upload_id = u.upload_id,
                        initiated = u.initiated,
                        "archive: aborted a multipart upload left behind"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "archive: listing or aborting multipart uploads left behind: {}",
                describe_s3_error(&e, &self.cfg)
            ),
        }
    }

    /// Sets the call's retention and legal hold on every confirmed version, when the bucket
    /// locks; returns what the store now has.
    fn lock_objects(
        &self,
        conn: &Connection,
        call_id: i64,
        objects: &[(String, String)],
    ) -> Result<queue::Lock, ShipError> {
        let LockState::Known(Some(mode)) = self.lock else {
            return Ok(queue::Lock::default());
        };
        let until =
            store::retention::archive_keep_for(conn, &self.retention, self.cfg.keep_days, call_id)?
                .map(|(_, _, until)| until);
        let hold = lock::held(conn, call_id)?;
        lock::lock_call(
            &self.s3,
            mode,
            objects,
            until.as_deref(),
            hold,
            self.clock.now_utc(),
        )
        .map_err(|e| ShipError::Retry(describe_s3_error(&e, &self.cfg)))
    }

    /// Ships the ledger entries not yet in the archive as one JSON-lines segment,
    /// `<prefix><box>/ledger/<first seq>-<last seq>.jsonl` (12 digits each), when there are
    /// [`LEDGER_SEGMENT_MAX_ENTRIES`] of them or the last segment is older than
    /// [`LEDGER_SEGMENT_INTERVAL_S`]. Segments are only ever added: a segment is recorded once the
    /// store confirmed it, and the next starts after it. A shipper killed between the upload and
    /// the record ships an overlapping segment next time (same entries, same hashes): harmless,
    /// the chain is checked by seq. Returns whether a segment was shipped.
    fn ship_ledger(&self, conn: &Connection, r: &mut Round) -> Result<bool, ShipError> {
        let after = queue::ledger_shipped_through(conn)?;
        let entries = store::ledger::entries_after(conn, after, LEDGER_SEGMENT_MAX_ENTRIES)?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(false);
        };
        let due = entries.len() >= LEDGER_SEGMENT_MAX_ENTRIES
            || queue::last_segment_at(conn)?
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .is_none_or(|t| {
                    (self.clock.now_utc() - t.to_utc()).num_seconds() >= LEDGER_SEGMENT_INTERVAL_S
                });
        if !due {
            return Ok(false);
        }
        let mut body = Vec::with_capacity(entries.len() * 512);
        for e in &entries {
            // Plain data always serializes; a failure would only leave the line out.
            if let Ok(line) = serde_json::to_vec(e) {
                body.extend_from_slice(&line);
                body.push(b'\n');
            }
        }
        let obj = ObjectRef {
            key: format!(
                "{}{}/ledger/{:012}-{:012}.jsonl",
                self.cfg.prefix, self.box_id, first.seq, last.seq
            ),
            sha256: crate::hash::sha256_hex(&body),
            bytes: body.len() as u64,
        };
        let c = self.put_bytes(&obj, body, "application/x-ndjson", r)?;
        queue::record_segment(
            conn,
            &queue::Segment {
                first_seq: first.seq,
                last_seq: last.seq,
                object_key: obj.key,
                sha256: obj.sha256,
                etag: c.etag,
                shipped_at_utc: self.clock.utc_string(),
            },
        )?;
        Ok(true)
    }

    /// Raises `archive_backlog` while the oldest unshipped call is older than the limit (its
    /// detail names the last error), clears it once the backlog is within the limit.
    fn alarm(&self, conn: &Connection) -> Result<(), store::StoreError> {
        let b = queue::backlog(conn, self.clock.now_utc())?;
        let now = self.clock.utc_string();
        if b.calls > 0 && b.oldest_age_s as u64 > self.cfg.backlog_alarm_s {
            let last = b
                .last_error
                .as_deref()
                .unwrap_or("no error recorded yet (is the shipper running?)");
            let detail = format!(
                "{} call(s) ({} bytes) not archived; the oldest ended at {}, more than archive.backlog_alarm_s = {} s ago. Last error: {last}",
                b.calls,
                b.bytes,
                b.oldest_ended_at_utc.as_deref().unwrap_or("?"),
                self.cfg.backlog_alarm_s,
            );
            alarms::raise(conn, alarms::ARCHIVE_BACKLOG, &detail, &now)?;
        } else {
            alarms::clear(conn, alarms::ARCHIVE_BACKLOG, &now)?;
        }
        Ok(())
    }

    fn ship_one(
        &self,
        conn: &Connection,
        up: &queue::Upload,
        r: &mut Round,
    ) -> Result<(Confirmed, queue::Lock), ShipError> {
        let call = store::get_call(conn, up.call_id)?;
        if !matches!(call.status, CallStatus::Complete | CallStatus::Interrupted) {
            return Err(ShipError::Fail(format!(
                "call {} is {} now: nothing left to ship",
                call.id, call.status
            )));
        }
        let Some(sha256) = call.sha256.clone() else {
            return Err(ShipError::Fail(format!(
                "call {} has no SHA-256 in its row",
                call.id
            )));
        };
        let audio_path = store::call_file(&self.storage_dir, &call.rel_path).ok_or_else(|| {
            ShipError::Fail(format!(
                "call {}: its row's path {:?} points outside the storage dir",
                call.id, call.rel_path
            ))
        })?;
        let stem = up.object_key.trim_end_matches(".opus");
        let audio = ObjectRef {
            key: up.object_key.clone(),
            sha256,
            bytes: u64::try_from(call.bytes).unwrap_or(0),
        };
        // Peaks first, audio next, sidecar last: a sidecar in the bucket means the call's
        // objects are all there (what the hub will index).
        let mut objects: Vec<(String, String)> = Vec::with_capacity(3);
        let peaks_path = crate::dsp::peaks::path_for(&audio_path);
        let peaks = match std::fs::read(&peaks_path) {
            Ok(bytes) => {
                let p = ObjectRef {
                    key: format!("{stem}.dat"),
                    sha256: crate::hash::sha256_hex(&bytes),
                    bytes: bytes.len() as u64,
                };
                let c = self.put_bytes(&p, bytes, "application/octet-stream", r)?;
                objects.push((p.key.clone(), c.version_id()));
                Some(p)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ShipError::Retry(format!(
                    "reading {}: {e}",
                    peaks_path.display()
                )))
            }
        };
        let confirmed = self.put_file(&audio_path, &audio, r)?;
        objects.push((audio.key.clone(), confirmed.version_id()));
        let json = sidecar::build(
            conn,
            &call,
            &audio,
            peaks.as_ref(),
            sidecar::box_key(&self.storage_dir),
        )?;
        let side = ObjectRef {
            key: format!("{stem}.json"),
            sha256: crate::hash::sha256_hex(&json),
            bytes: json.len() as u64,
        };
        let c = self.put_bytes(&side, json, "application/json", r)?;
        objects.push((side.key.clone(), c.version_id()));
        let lock = self.lock_objects(conn, call.id, &objects)?;
        Ok((confirmed, lock))
    }

    /// The object at `obj.key` if it already holds exactly these bytes (size and our SHA-256).
    fn already_there(&self, obj: &ObjectRef) -> Result<Option<Confirmed>, ShipError> {
        let path = ObjPath::from(obj.key.as_str());
        let head = self.rt.block_on(self.store.get_opts(
            &path,
            GetOptions {
                head: true,
                ..GetOptions::default()
            },
        ));
        match head {
            Ok(g) => {
                let theirs = g.attributes.get(&Attribute::Metadata(META_SHA256.into()));
                let same = g.meta.size == obj.bytes
                    && theirs.is_some_and(|v| v.as_ref() == obj.sha256.as_str());
                Ok(same.then(|| Confirmed {
                    etag: g.meta.e_tag.unwrap_or_default(),
                    version: g.meta.version,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // A key that may write but not read (a least-privilege box policy), or wrong
            // credentials: a HEAD answers 403 without a body either way. The upload then
            // happens, and its error body (if any) names the cause.
            Err(
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. },
            ) => Ok(None),
            Err(e) => Err(self.retry(&e)),
        }
    }

    fn retry(&self, e: &object_store::Error) -> ShipError {
        ShipError::Retry(describe_store_error(
            e,
            &self.cfg.endpoint,
            &self.cfg.bucket,
        ))
    }

    fn attributes(obj: &ObjectRef, content_type: &'static str) -> Attributes {
        Attributes::from_iter([
            (
                Attribute::Metadata(META_SHA256.into()),
                AttributeValue::from(obj.sha256.clone()),
            ),
            (Attribute::ContentType, AttributeValue::from(content_type)),
        ])
    }

    /// Uploads bytes already in memory (peaks, sidecar) unless the store has them.
    fn put_bytes(
        &self,
        obj: &ObjectRef,
        bytes: Vec<u8>,
        content_type: &'static str,
        r: &mut Round,
    ) -> Result<Confirmed, ShipError> {
        if let Some(c) = self.already_there(obj)? {
            r.objects_skipped += 1;
            return Ok(c);
        }
        let opts = PutOptions {
            attributes: Self::attributes(obj, content_type),
            ..PutOptions::default()
        };
        let res = self
            .rt
            .block_on(self.store.put_opts(
                &ObjPath::from(obj.key.as_str()),
                PutPayload::from(bytes),
                opts,
            ))
            .map_err(|e| self.retry(&e))?;
        r.bytes_uploaded += obj.bytes;
        self.confirmed(res, obj)
    }

    /// The store's confirmation of an upload: its ETag. Some stores (Ceph RGW after a multipart
    /// completion) answer without a usable one; then the object is HEADed, and only an object
    /// with our size and SHA-256 counts as confirmed.
    fn confirmed(
        &self,
        res: object_store::PutResult,
        obj: &ObjectRef,
    ) -> Result<Confirmed, ShipError> {
        match res.e_tag.filter(|e| !e.trim_matches('"').is_empty()) {
            Some(etag) => Ok(Confirmed {
                etag,
                version: res.version,
            }),
            None => match self.already_there(obj)? {
                Some(c) if !c.etag.trim_matches('"').is_empty() => Ok(c),
                _ => Err(ShipError::Retry(format!(
                    "the store confirmed {} without an ETag, and a HEAD does not show our object",
                    obj.key
                ))),
            },
        }
    }

    /// Uploads a call's audio unless the store has it, checking that the file still is what its
    /// row says (size and SHA-256) before the store may confirm it.
    fn put_file(
        &self,
        path: &Path,
        obj: &ObjectRef,
        r: &mut Round,
    ) -> Result<Confirmed, ShipError> {
        let local_bytes = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShipError::Fail(format!("{} is missing", path.display())))
            }
            Err(e) => return Err(ShipError::Retry(format!("{}: {e}", path.display()))),
        };
        if local_bytes != obj.bytes {
            return Err(ShipError::Fail(format!(
                "{} has {local_bytes} bytes, its row says {}: run callrec check",
                path.display(),
                obj.bytes
            )));
        }
        if let Some(c) = self.already_there(obj)? {
            r.objects_skipped += 1;
            return Ok(c);
        }
        let res = if local_bytes <= SINGLE_PUT_MAX_BYTES {
            let bytes = std::fs::read(path)
                .map_err(|e| ShipError::Retry(format!("reading {}: {e}", path.display())))?;
            if crate::hash::sha256_hex(&bytes) != obj.sha256 {
                return Err(changed(path));
            }
            let opts = PutOptions {
                attributes: Self::attributes(obj, "audio/ogg"),
                ..PutOptions::default()
            };
            self.rt
                .block_on(self.store.put_opts(
                    &ObjPath::from(obj.key.as_str()),
                    PutPayload::from(bytes),
                    opts,
                ))
                .map_err(|e| self.retry(&e))?
        } else {
            self.put_multipart(path, obj)?
        };
        r.bytes_uploaded += obj.bytes;
        self.confirmed(res, obj)
    }

    /// A large file in parts, hashed on the way: a file that no longer matches its row is
    /// aborted before completion, so the store never confirms it.
    fn put_multipart(
        &self,
        path: &Path,
        obj: &ObjectRef,
    ) -> Result<object_store::PutResult, ShipError> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| ShipError::Retry(format!("opening {}: {e}", path.display())))?;
        let opts = PutMultipartOptions {
            attributes: Self::attributes(obj, "audio/ogg"),
            ..PutMultipartOptions::default()
        };
        let key = ObjPath::from(obj.key.as_str());
        self.rt.block_on(async {
            let upload = self
                .store
                .put_multipart_opts(&key, opts)
                .await
                .map_err(|e| self.retry(&e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                // At most two parts in flight: memory stays near 3 × PART_BYTES.
                if let Err(e) = w.wait_for_capacity(2).await {
                    return Err(self.retry(&e));
                }
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(ShipError::Retry(format!("reading {}: {e}", path.display())));
                    }
                };
                sha2::Digest::update(&mut hasher, &buf[..n]);
                w.write(&buf[..n]);
            }
            if hex::encode(sha2::Digest::finalize(hasher)) != obj.sha256 {
                let _ = w.abort().await;
                return Err(changed(path));
            }
            w.finish().await.map_err(|e| self.retry(&e))
        })
    }
}

/// A raw request's failure for the operator, with what the S3 error code usually means.
fn describe_s3_error(e: &S3Error, cfg: &ArchiveConfig) -> String {
    let text = match e {
        S3Error::Status { code, .. } if !code.is_empty() => format!("{e} <Code>{code}</Code>"),
        _ => e.to_string(),
    };
    describe_store_error(&std::io::Error::other(text), &cfg.endpoint, &cfg.bucket)
}

fn changed(path: &Path) -> ShipError {
    ShipError::Fail(format!(
        "{} no longer matches the SHA-256 in its row: not shipped; run callrec check",
        path.display()
    ))
}

impl Shipper {
    /// Every `archive.orders_poll_s`: the hub's orders for this box (`archive::orders`). A
    /// failure is logged and retried at the next poll; it never stops shipping.
    fn orders(&mut self, conn: &Connection) {
        let now = std::time::Instant::now();
        if self.next_orders.is_some_and(|t| now < t) {
            return;
        }
        self.next_orders = Some(now + Duration::from_secs(self.cfg.orders_poll_s));
        let key = match crate::evidence::key::ensure(&self.storage_dir) {
            Ok((k, _)) => k,
            Err(e) => {
                tracing::warn!("orders: the box key (acks are signed with it): {e}");
                return;
            }
        };
        match super::orders::poll(
            conn,
            &self.s3,
            &self.cfg.prefix,
            &self.box_id,
            &self.storage_dir,
            &key,
            &self.clock.utc_string(),
        ) {
            Ok(p) if p.applied + p.refused + p.acked > 0 => tracing::info!(
                applied = p.applied,
                refused = p.refused,
                acked = p.acked,
                "orders from the hub"
            ),
            Ok(_) => {}
            // No order for this box yet is the common case: an empty listing, not an error.
            Err(e) => tracing::warn!("orders: not read yet: {e}"),
        }
    }
}

/// Seconds to wait after `attempts` failed attempts: 1, 2, 4, … capped at `cap_s`.
pub fn backoff_s(attempts: i64, cap_s: u64) -> u64 {
    let exp = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    (1u64 << exp).min(cap_s.max(1))
}

/// Ships until `stop` is set. Errors only when the shipper cannot start or the index fails.
pub fn run(cfg: Config, stop: Arc<AtomicBool>, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let mut shipper = Shipper::new(&cfg, clock.clone())?;
    std::fs::create_dir_all(&cfg.storage.dir)?;
    let conn = store::open_rw(&cfg.db_path())?;
    // A (re)start tries everything pending at once: the operator may have fixed the cause.
    queue::retry_now(&conn, &clock.utc_string())?;
    let a = cfg.archive.as_ref().ok_or(ArchiveError::NotConfigured)?;
    tracing::info!(
        endpoint = a.endpoint,
        bucket = a.bucket,
        prefix = a.prefix,
        "archive shipper started"
    );
    while !stop.load(Ordering::Relaxed) {
        let r = match shipper.round(&conn) {
            Ok(r) => r,
            Err(e) => {
                // The index busy or failing: try again shortly, never give up on the queue.
                tracing::error!("archive shipper: {e}");
                Round::default()
            }
        };
        if r.archived > 0 {
            tracing::info!(
                archived = r.archived,
                bytes = r.bytes_uploaded,
                "archive: shipped"
            );
        }
        // More due at once only when this round shipped a full batch; otherwise poll.
        if r.archived + r.failed < BATCH || r.retried > 0 {
            let until = std::time::Instant::now() + IDLE_POLL;
            while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    tracing::info!(
        archived = shipper.totals.archived,
        bytes = shipper.totals.bytes_uploaded,
        "archive shipper stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (0..6).map(|a| backoff_s(a, 10)).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff_s(1000, 300), 300);
        assert_eq!(backoff_s(-1, 300), 1);
    }
}
