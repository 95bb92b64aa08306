//! Evidence bundles at the hub (`callrec export` with a hub config, and the browser's zip): the
//! same bundle a box makes (`evidence::bundle`), for a call from any floor. The original is
//! streamed from the archive to a file next to the bundle, never whole in memory, and checked
//! against the SHA-256 in the call's sidecar, which is fetched again and checked by
//! `hub::sidecar` (the one validation of sidecars). The hub signs the manifest with its own key;
//! the recording box's signature chain travels in the bundle: its ledger entries for the call
//! and its public key, both as the box shipped them.
//!
//! This module must never export an original whose SHA-256 differs from its sidecar's, never
//! keep a partial download after it returns, and never write to the bucket.

use super::remote::Remote;
use super::HubError;
use crate::evidence::bundle::{self, Archived, ExportError, Exported, Exporter};
use crate::store::hub as hubdb;
use crate::store::hub::HubObjects;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HubExportError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Where a hub call's sidecar and objects are, as the hub indexed it: read from the index
/// before anything is fetched (a web handler must not hold the index across the network).
#[derive(Debug, Clone)]
pub struct Lookup {
    pub call_id: i64,
    pub objects: HubObjects,
    pub sidecar_key: String,
    pub ledger_head: Option<crate::store::ledger::Head>,
}

/// The hub call `call_id`'s lookup; None when it is not a hub call (a box's own call).
pub fn lookup(conn: &Connection, call_id: i64) -> Result<Option<Lookup>, HubError> {
    let Some(objects) = hubdb::objects_of(conn, call_id)? else {
        return Ok(None);
    };
    let Some((sidecar_key, _)) = hubdb::sidecar_of(conn, call_id)? else {
        return Ok(None);
    };
    let ledger_head = hubdb::ledger_head(conn, &objects.box_id)?;
    Ok(Some(Lookup {
        call_id,
        objects,
        sidecar_key,
        ledger_head,
    }))
}

/// The partial download of a call's original inside `out_dir` (moved into the bundle).
fn download_path(out_dir: &Path, call_id: i64) -> PathBuf {
    out_dir.join(format!(".call-{call_id}.download"))
}

/// Fetches the call's sidecar (checked by `hub::sidecar::parse` and against what the hub
/// indexed) and streams its audio into `out_dir`, checked against the sidecar's SHA-256 and
/// size. On any error the download is removed.
pub async fn fetch(
    remote: &Remote,
    prefix: &str,
    l: &Lookup,
    out_dir: &Path,
) -> Result<Archived, HubError> {
    let (bytes, etag) = remote.sidecar(&l.sidecar_key).await?;
    let side = super::sidecar::parse(&bytes, &l.sidecar_key, &etag, prefix).map_err(|why| {
        HubError::Refused(format!(
            "the sidecar {} in the archive does not check: {why}; nothing exported. Run `callrec archive verify --box {}`",
            l.sidecar_key, l.objects.box_id
        ))
    })?;
    let o = &l.objects;
    if side.objects != *o {
        return Err(HubError::Refused(format!(
            "the sidecar {} changed since the hub indexed it (box {} call {}): nothing exported; try again once the hub has indexed it (within a minute), or run `callrec hub rebuild`",
            l.sidecar_key, o.box_id, o.box_call_id
        )));
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| HubError::Io(format!("{}: {e}", out_dir.display())))?;
    let to = download_path(out_dir, l.call_id);
    let _ = std::fs::remove_file(&to); // left by an export that died
    let got = remote.download(&o.audio_key, &to).await;
    let (sha, n) = match got {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&to);
            return Err(e);
        }
    };
    if sha != o.audio_sha256 || n != o.audio_bytes {
        let _ = std::fs::remove_file(&to);
        return Err(HubError::Refused(format!(
            "the archived recording {} has SHA-256 {sha} ({n} bytes), but its sidecar says {} ({} bytes): the object changed after box {} shipped it. Nothing was exported; keep the bucket as it is and run `callrec archive verify --box {}`",
            o.audio_key, o.audio_sha256, o.audio_bytes, o.box_id, o.box_id
        )));
    }
    Ok(Archived {
        original: to,
        box_id: o.box_id.clone(),
        box_call_id: o.box_call_id,
        audio_key: o.audio_key.clone(),
        box_key: side.box_key,
        ledger: side.ledger,
        ledger_head: l.ledger_head.clone(),
    })
}

/// Exports one call as `bundle::export_call` does, audited; a hub call's original comes from
/// the archive (through `rt`, which must not be the caller's own async context), any other call
/// from the storage dir. `x.archived` is ignored (set here).
pub fn export_call(
    rt: &tokio::runtime::Handle,
    remote: Option<&Remote>,
    prefix: &str,
    x: &Exporter,
    call_id: i64,
) -> Result<Exported, HubExportError> {
    let Some(l) = lookup(x.conn, call_id)? else {
        let local = Exporter {
            archived: None,
            ..copy(x)
        };
        return Ok(bundle::export_call(&local, call_id)?);
    };
    let remote = remote
        .ok_or(crate::archive::ArchiveError::NotConfigured)
        .map_err(HubError::from)?;
    if x.out_dir.join(format!("call-{call_id}")).exists() {
        return Err(ExportError::Exists(
            bundle::bundle_dir(x.out_dir, call_id).display().to_string(),
        )
        .into());
    }
    let archived = rt.block_on(fetch(remote, prefix, &l, x.out_dir))?;
    let at_hub = Exporter {
        archived: Some(&archived),
        ..copy(x)
    };
    let r = bundle::export_call(&at_hub, call_id);
    // Moved into the bundle on success; left only when the export failed.
    let _ = std::fs::remove_file(&archived.original);
    Ok(r?)
}

/// The same exporter (its fields are references, its options small).
fn copy<'a>(x: &Exporter<'a>) -> Exporter<'a> {
    Exporter {
        conn: x.conn,
        storage_dir: x.storage_dir,
        box_id: x.box_id,
        key: x.key,
        actor: x.actor,
        out_dir: x.out_dir,
        options: x.options.clone(),
        archived: x.archived,
    }
}
