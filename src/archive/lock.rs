//! S3 Object Lock on the archive, and deleting from it: the write-once side of issue 13 item 2.
//!
//! - **Mode** ([`resolve_mode`]): `[archive] object_lock` = `off`, `governance`, `compliance`,
//!   or `auto` (the default): GetObjectLockConfiguration at shipper start; a bucket with Object
//!   Lock enabled gets `governance`, any other `off`. Asking for a mode the bucket cannot give
//!   is an error that names the cause, never a silent downgrade.
//! - **Retention** ([`lock_call`]): every version the shipper confirmed (audio, peaks,
//!   sidecar) gets PutObjectRetention with the mode and a retain-until date of the call's start
//!   plus its archive keep period (`store::retention::archive_keep_for`: the same rules as local
//!   retention). A date already past sets nothing (archive retention removes it soon); an
//!   existing longer date is kept (COMPLIANCE dates cannot be shortened, and we never try).
//! - **Legal holds**: a call under a hold in force gets PutObjectLegalHold ON before it is marked
//!   archived; holds placed or released later reach the store through [`sync_holds`]
//!   (migration 16's `archive_hold_sync`: pending until applied, across restarts), which also
//!   sets ON again the calls already held (the hub may have set them OFF at the release of a
//!   hold of its own: `hub::orders::sync_object_holds`).
//! - **Removal** ([`retention_run`], [`erase`]): every version (and delete marker) of a call's
//!   objects is deleted by version id — a delete without one only adds a delete marker. Nothing
//!   is deleted while a local hold or an object legal hold covers it, nor before its
//!   retain-until date; GOVERNANCE versions past their date need no bypass, and the bypass
//!   header is sent only for GOVERNANCE versions (an erasure). An erasure that meets a
//!   COMPLIANCE version still retained is refused before anything is deleted (GDPR Art.
//!   17(3)(b): a legal obligation to keep the recording). Each removal is audited per call and
//!   recorded, signed with the box key, in `archive_removals`.
//! - **Orphaned multipart uploads** ([`abort_orphaned_uploads`]).
//!
//! This module never deletes a local file or call row (erasure's local half is
//! `evidence::erasure`), never shortens or removes a retention date, and never holds a write
//! transaction across a request to the store.

use super::s3x::{LockMode, S3Error, S3x, Version};
use super::ArchiveError;
use crate::clock::format_utc;
use crate::config::{ArchiveConfig, Config, ObjectLock};
use crate::evidence::erasure::{self, ErasureError};
use crate::evidence::key::BoxKey;
use crate::store::archive::{self as queue, Lock, Removal, RemovedCall, RemovedVersion};
use crate::store::{self, holds, retention, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;
use std::path::Path;

/// First field of an archive removal record; a new layout gets a new tag.
pub const REMOVAL_FORMAT: &str = "callrec-archive-removal-v1";

/// The extensions of a call's objects, next to its stem (`<prefix><box>/yyyy/mm/dd/<id>`).
pub const OBJECT_SUFFIXES: [&str; 3] = [".opus", ".dat", ".json"];

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("object store: {0}")]
    S3(#[from] S3Error),
    #[error("archive.object_lock = {wanted:?}, but bucket {bucket} has no S3 Object Lock (GetObjectLockConfiguration): Object Lock can only be enabled when a bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket). Use such a bucket, or set archive.object_lock = \"off\"")]
    BucketNotLocked { wanted: String, bucket: String },
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    #[error("call {call_id}'s archived object {key} (version {version_id}) is under COMPLIANCE retention until {retain_until}; nothing was erased. The recording must be kept until then by a legal obligation (GDPR Art. 17(3)(b)): no one can delete it before that date, not even the bucket's owner")]
    Compliance {
        call_id: i64,
        key: String,
        version_id: String,
        retain_until: String,
    },
    #[error("call {call_id}'s archived object {key} (version {version_id}) has an S3 legal hold ON in the store, though no hold in force here covers it; nothing was erased. Release it where it was placed (the hub), or let the shipper bring it in line with the holds here")]
    ObjectHeld {
        call_id: i64,
        key: String,
        version_id: String,
    },
    #[error("no [archive] section in the config")]
    NotConfigured,
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The Object Lock mode to use with this bucket (see the module documentation).
pub fn resolve_mode(cfg: &ArchiveConfig, s3: &S3x) -> Result<Option<LockMode>, LockError> {
    let wanted = match cfg.object_lock {
        ObjectLock::Off => return Ok(None),
        ObjectLock::Auto => None,
        ObjectLock::Governance => Some(LockMode::Governance),
        ObjectLock::Compliance => Some(LockMode::Compliance),
    };
    let enabled = s3.object_lock_enabled()?;
    match (wanted, enabled) {
        (None, true) => Ok(Some(LockMode::Governance)),
        (None, false) => Ok(None),
        (Some(m), true) => Ok(Some(m)),
        (Some(m), false) => Err(LockError::BucketNotLocked {
            wanted: m.as_str().to_lowercase(),
            bucket: cfg.bucket.clone(),
        }),
    }
}

/// The stem of a call's objects from its audio key.
pub fn stem_of(audio_key: &str) -> &str {
    audio_key.strip_suffix(".opus").unwrap_or(audio_key)
}

/// Every version and delete marker of the call's objects (exactly `<stem>.opus|.dat|.json`).
pub fn call_versions(s3: &S3x, audio_key: &str) -> Result<Vec<Version>, S3Error> {
    let stem = stem_of(audio_key);
    let prefix = format!("{stem}.");
    Ok(s3
        .versions(&prefix)?
        .into_iter()
        .filter(|v| {
            OBJECT_SUFFIXES
                .iter()
                .any(|s| v.key == format!("{stem}{s}"))
        })
        .collect())
}

/// Sets retention (when a date is due in the future) and the legal hold (when `hold`) on each
/// confirmed object version of one call, and says what the store now has.
pub fn lock_call(
    s3: &S3x,
    mode: LockMode,
    objects: &[(String, String)],
    retain_until_utc: Option<&str>,
    hold: bool,
    now: DateTime<Utc>,
) -> Result<Lock, S3Error> {
    let until = retain_until_utc
        .filter(|u| DateTime::parse_from_rfc3339(u).is_ok_and(|t| t.with_timezone(&Utc) > now));
    let mut lock = Lock {
        mode: None,
        retain_until_utc: None,
        legal_hold: false,
    };
    for (key, version) in objects {
        if let Some(until) = until {
            if let Err(e) = s3.put_retention(key, version, mode, until, false) {
                // Already retained at least as long in at least this mode (a re-shipped call,
                // or a rule made shorter since): keep it, never shorten.
                match s3.get_retention(key, version)? {
                    Some(r) if r.retain_until.as_str() >= until => {}
                    _ => return Err(e),
                }
            }
            lock.mode = Some(mode.as_str().to_owned());
            lock.retain_until_utc = Some(until.to_owned());
        }
        if hold {
            s3.put_legal_hold(key, version, true)?;
            lock.legal_hold = true;
        }
    }
    Ok(lock)
}

/// Applies the holds in force to the archive's object legal holds when they changed since the
/// last time (pending in `archive_hold_sync`). Returns how many calls changed, or None when
/// nothing was pending. A call whose store request fails stays as it was and the counter is
/// not advanced, so the next round tries again.
pub fn sync_holds(conn: &Connection, s3: Option<&S3x>) -> Result<Option<usize>, LockError> {
    let Some(seq) = queue::hold_sync_due(conn)? else {
        return Ok(None);
    };
    let Some(s3) = s3 else {
        // Object Lock off: there are no object legal holds to set.
        queue::hold_synced(conn, seq)?;
        return Ok(Some(0));
    };
    let active = holds::active(conn)?;
    let mut changed = 0;
    for a in queue::archived(conn)? {
        let want = active
            .iter()
            .any(|h| h.covers(a.call_id, a.agent.as_deref(), a.remote_number.as_deref()));
        // A call a hold here covers is set ON again even when it was already: the fleet's hub
        // sets OFF at a release of its own hold without knowing this box's holds.
        if !want && !a.legal_hold {
            continue;
        }
        for v in call_versions(s3, &a.object_key)?
            .iter()
            .filter(|v| !v.delete_marker)
        {
            s3.put_legal_hold(&v.key, &v.version_id, want)?;
        }
        queue::set_legal_hold(conn, a.call_id, want)?;
        tracing::info!(
            call_id = a.call_id,
            legal_hold = if want { "ON" } else { "OFF" },
            "archive: object legal hold set"
        );
        changed += 1;
    }
    queue::hold_synced(conn, seq)?;
    Ok(Some(changed))
}

/// Aborts multipart uploads under `prefix` initiated before `older_than` (None: all of them,
/// which only a shipper with no upload of its own in flight may ask). Returns what it aborted.
pub fn abort_orphaned_uploads(
    s3: &S3x,
    prefix: &str,
    older_than: Option<DateTime<Utc>>,
) -> Result<Vec<super::s3x::Upload>, S3Error> {
    let mut aborted = Vec::new();
    for u in s3.multipart_uploads(prefix)? {
        let old = match older_than {
            None => true,
            Some(t) => {
                DateTime::parse_from_rfc3339(&u.initiated).is_ok_and(|i| i.with_timezone(&Utc) < t)
            }
        };
        if old {
            s3.abort_multipart(&u.key, &u.upload_id)?;
            aborted.push(u);
        }
    }
    Ok(aborted)
}

/// Why one version may not be deleted now, or None.
fn blocker(s3: &S3x, v: &Version, now: DateTime<Utc>) -> Result<Option<Blocker>, S3Error> {
    if v.delete_marker {
        return Ok(None);
    }
    if s3.legal_hold(&v.key, &v.version_id)? {
        return Ok(Some(Blocker::LegalHold));
    }
    if let Some(r) = s3.get_retention(&v.key, &v.version_id)? {
        let still = DateTime::parse_from_rfc3339(&r.retain_until)
            .map(|t| t.with_timezone(&Utc) > now)
            .unwrap_or(true);
        if still {
            return Ok(Some(Blocker::Retained(r.mode, r.retain_until)));
        }
    }
    Ok(None)
}

enum Blocker {
    LegalHold,
    Retained(LockMode, String),
}

/// Deletes every version and delete marker of the call's objects; GOVERNANCE versions with the
/// bypass header when `bypass_governance`. Returns what went.
fn delete_all(
    s3: &S3x,
    versions: &[Version],
    bypass_governance: bool,
) -> Result<Vec<RemovedVersion>, S3Error> {
    let mut out = Vec::new();
    for v in versions {
        s3.delete_version(&v.key, &v.version_id, bypass_governance)?;
        out.push(RemovedVersion {
            key: v.key.clone(),
            version_id: v.version_id.clone(),
            delete_marker: v.delete_marker,
        });
    }
    Ok(out)
}

/// One call archive retention keeps although its keep period has passed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub call_id: i64,
    pub due_at_utc: String,
    pub why: String,
}

/// What `callrec archive retention run` did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionOutcome {
    pub now_utc: String,
    pub dry_run: bool,
    /// Due and deletable: removed (or, dry run, to be removed) with every version.
    pub removed: Vec<RemovedCall>,
    pub kept: Vec<Kept>,
    /// The `archive_removals` row of this run (None when nothing was removed, or a dry run).
    pub removal_id: Option<i64>,
}

impl RetentionOutcome {
    /// A run's outcome before any call: the held calls of `plan` already listed as kept, each
    /// with `held_why(hold id)`.
    pub fn start(
        plan: &retention::Plan,
        now_utc: &str,
        dry_run: bool,
        held_why: impl Fn(i64) -> String,
    ) -> RetentionOutcome {
        let kept = plan
            .held
            .iter()
            .map(|d| Kept {
                call_id: d.call_id,
                due_at_utc: d.due_at_utc.clone(),
                why: held_why(d.held_by.unwrap_or_default()),
            })
            .collect();
        RetentionOutcome {
            now_utc: now_utc.to_owned(),
            dry_run,
            removed: Vec::new(),
            kept,
            removal_id: None,
        }
    }

    /// One due call whose audio object is `audio_key`: kept (with the reason) while a version
    /// is under a retention date or an object legal hold, else every version removed (on a
    /// dry run only listed). Returns whether it was removed.
    pub fn remove_due(
        &mut self,
        s3: &S3x,
        audio_key: &str,
        d: &retention::Due,
        now: DateTime<Utc>,
    ) -> Result<bool, LockError> {
        let versions = call_versions(s3, audio_key)?;
        if let Some(why) = retention_blocker(s3, &versions, now)? {
            self.kept.push(Kept {
                call_id: d.call_id,
                due_at_utc: d.due_at_utc.clone(),
                why,
            });
            return Ok(false);
        }
        let versions = if self.dry_run {
            versions
                .iter()
                .map(|v| RemovedVersion {
                    key: v.key.clone(),
                    version_id: v.version_id.clone(),
                    delete_marker: v.delete_marker,
                })
                .collect()
        } else {
            // Past their date: no bypass needed, none sent.
            delete_all(s3, &versions, false)?
        };
        self.removed.push(RemovedCall {
            call_id: d.call_id,
            versions,
        });
        Ok(true)
    }
}

#[derive(Serialize)]
struct Record<'a> {
    format: &'static str,
    box_id: &'a str,
    kind: &'a str,
    reason: &'a str,
    requested_by: &'a str,
    executed_at_utc: &'a str,
    endpoint: &'a str,
    bucket: &'a str,
    removed: &'a [RemovedCall],
    kept: &'a [Kept],
    signature: &'static str,
}

/// Signs and stores a removal; returns its id.
#[allow(clippy::too_many_arguments)]
fn record(
    conn: &Connection,
    cfg: &Config,
    key: &BoxKey,
    kind: &str,
    reason: &str,
    actor: &str,
    now_utc: &str,
    removed: &[RemovedCall],
    kept: &[Kept],
) -> Result<i64, LockError> {
    let a = cfg.archive.as_ref().ok_or(LockError::NotConfigured)?;
    let rec = Record {
        format: REMOVAL_FORMAT,
        box_id: &cfg.box_.id,
        kind,
        reason,
        requested_by: actor,
        executed_at_utc: now_utc,
        endpoint: &a.endpoint,
        bucket: &a.bucket,
        removed,
        kept,
        signature: "Ed25519 (RFC 8032) over the exact bytes of this JSON, with the box key",
    };
    let mut json = serde_json::to_vec_pretty(&rec).unwrap_or_default();
    json.push(b'\n');
    let sig = hex::encode(key.sign(&json));
    let text = String::from_utf8_lossy(&json).into_owned();
    Ok(queue::record_removal(
        conn,
        &Removal {
            kind,
            reason,
            actor,
            now_utc,
            calls: removed,
            receipt_json: &text,
            receipt_sig_hex: &sig,
        },
    )?)
}

/// `callrec archive retention run`: removes from the store every version of the objects of
/// archived calls whose archive keep period has passed (`store::retention::archive_plan`),
/// except those a legal hold covers here or in the store, or still retained by the store.
pub fn retention_run(
    cfg: &Config,
    conn: &Connection,
    key: &BoxKey,
    actor: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<RetentionOutcome, LockError> {
    let a = cfg.archive.as_ref().ok_or(LockError::NotConfigured)?;
    let s3 = super::s3x::from_config(a)?;
    let plan = retention::archive_plan(conn, &cfg.retention, a.keep_days, now)?;
    let now_utc = format_utc(now);
    let mut out = RetentionOutcome::start(&plan, &now_utc, dry_run, |hold| {
        format!("on legal hold #{hold}")
    });
    let uploads = queue::all(conn)?;
    for d in &plan.delete {
        if let Some(up) = uploads.iter().find(|u| u.call_id == d.call_id) {
            out.remove_due(&s3, &up.object_key, d, now)?;
        }
    }
    if !dry_run && !out.removed.is_empty() {
        let rules: std::collections::BTreeSet<String> = plan
            .delete
            .iter()
            .filter(|d| out.removed.iter().any(|r| r.call_id == d.call_id))
            .map(|d| format!("{:?} ({} days)", d.rule, d.keep_days))
            .collect();
        let reason = format!(
            "archive retention: keep period passed (rules {})",
            rules.into_iter().collect::<Vec<_>>().join(", ")
        );
        out.removal_id = Some(record(
            conn,
            cfg,
            key,
            "retention",
            &reason,
            actor,
            &now_utc,
            &out.removed,
            &out.kept,
        )?);
    }
    Ok(out)
}

/// `callrec erase` with `[archive]`: the local refusals first (legal hold, still recording),
/// then every archived version of the calls' objects is checked — a COMPLIANCE version still
/// retained, or an object legal hold, refuses the whole request before anything is deleted —
/// then deleted (GOVERNANCE versions with the bypass header), recorded, and the local erasure
/// runs with the removed versions in its signed receipt.
pub fn erase(
    cfg: &Config,
    conn: &Connection,
    key: &BoxKey,
    req: &erasure::Request,
    now: DateTime<Utc>,
) -> Result<erasure::Erased, LockError> {
    erasure::check_reference(req.number, req.reference)?;
    let found = erasure::find(conn, req.number)?;
    erasure::refuse_blocked(&found)?;
    let Some(a) = cfg.archive.as_ref() else {
        return Ok(erasure::erase(
            conn,
            &cfg.storage.dir,
            key,
            &cfg.box_.id,
            req,
        )?);
    };
    let s3 = super::s3x::from_config(a)?;
    let uploads = queue::all(conn)?;
    let mut todo = Vec::new();
    for id in found.live.iter().chain(&found.already_deleted) {
        // Any queue row: a pending or failed call may have objects in the store already.
        if let Some(up) = uploads.iter().find(|u| u.call_id == *id) {
            let versions = call_versions(&s3, &up.object_key)?;
            check_erasable(&s3, *id, &versions, now)?;
            if !versions.is_empty() {
                todo.push((*id, versions));
            }
        }
    }
    let mut removed = Vec::new();
    for (call_id, versions) in &todo {
        removed.push(RemovedCall {
            call_id: *call_id,
            versions: delete_all(&s3, versions, true)?,
        });
    }
    if !removed.is_empty() {
        let reason = format!("erasure request {}", req.reference);
        record(
            conn,
            cfg,
            key,
            "erasure",
            &reason,
            req.actor,
            req.now_utc,
            &removed,
            &[],
        )?;
    }
    Ok(erasure::erase_with_archive(
        conn,
        &cfg.storage.dir,
        key,
        &cfg.box_.id,
        req,
        &removed,
    )?)
}

/// Whether an erasure may delete these versions of call `call_id` now: a COMPLIANCE version
/// still retained (GDPR Art. 17(3)(b)) or an object legal hold refuses it.
pub fn check_erasable(
    s3: &S3x,
    call_id: i64,
    versions: &[Version],
    now: DateTime<Utc>,
) -> Result<(), LockError> {
    for v in versions {
        match blocker(s3, v, now)? {
            Some(Blocker::Retained(LockMode::Compliance, until)) => {
                return Err(LockError::Compliance {
                    call_id,
                    key: v.key.clone(),
                    version_id: v.version_id.clone(),
                    retain_until: until,
                })
            }
            Some(Blocker::LegalHold) => {
                return Err(LockError::ObjectHeld {
                    call_id,
                    key: v.key.clone(),
                    version_id: v.version_id.clone(),
                })
            }
            Some(Blocker::Retained(LockMode::Governance, _)) | None => {}
        }
    }
    Ok(())
}

/// Why archive retention must keep these versions now (an object legal hold, a retain-until
/// date not passed), or None when they may go.
fn retention_blocker(
    s3: &S3x,
    versions: &[Version],
    now: DateTime<Utc>,
) -> Result<Option<String>, S3Error> {
    for v in versions {
        match blocker(s3, v, now)? {
            None => {}
            Some(Blocker::LegalHold) => {
                return Ok(Some(format!(
                    "{} (version {}) has an S3 legal hold ON in the store",
                    v.key, v.version_id
                )))
            }
            Some(Blocker::Retained(mode, until)) => {
                return Ok(Some(format!(
                    "{} (version {}) is retained by the store in {} mode until {until}; the store refuses to delete it before then",
                    v.key,
                    v.version_id,
                    mode.as_str()
                )))
            }
        }
    }
    Ok(None)
}

/// Deletes every version and delete marker given (module docs: by version id, GOVERNANCE
/// ones with the bypass header when `bypass_governance`); returns what went.
pub fn delete_versions(
    s3: &S3x,
    versions: &[Version],
    bypass_governance: bool,
) -> Result<Vec<RemovedVersion>, S3Error> {
    delete_all(s3, versions, bypass_governance)
}

/// Signs (with `key`) and stores one removal from the archive in `archive_removals`; returns
/// its id. Used by the hub for its own retention runs and erasures.
#[allow(clippy::too_many_arguments)]
pub fn record_removal(
    conn: &Connection,
    cfg: &Config,
    key: &BoxKey,
    kind: &str,
    reason: &str,
    actor: &str,
    now_utc: &str,
    removed: &[RemovedCall],
    kept: &[Kept],
) -> Result<i64, LockError> {
    record(conn, cfg, key, kind, reason, actor, now_utc, removed, kept)
}

/// Writes a removal's record (`removal.json`, `removal.sig`, `box.pub`) into `out_dir`.
pub fn write_removal(
    conn: &Connection,
    id: i64,
    key: &BoxKey,
    out_dir: &Path,
) -> Result<(), LockError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| LockError::Io { path, source }
    };
    let Some((json, sig_hex)) = queue::removal_receipt(conn, id)? else {
        return Ok(());
    };
    let sig = hex::decode(&sig_hex).unwrap_or_default();
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    for (name, bytes) in [
        ("removal.json", json.as_bytes()),
        ("removal.sig", sig.as_slice()),
        ("box.pub", key.public_pem().as_bytes()),
    ] {
        let p = out_dir.join(name);
        std::fs::write(&p, bytes).map_err(io(&p))?;
    }
    Ok(())
}

/// The call row's fields a hold matches on, for the shipper.
pub fn held(conn: &Connection, call_id: i64) -> Result<bool, StoreError> {
    let row = store::get_call_row(conn, call_id)?;
    Ok(!holds::covering(conn, &row)?.is_empty())
}
