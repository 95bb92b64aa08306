//! The browser's evidence export: `POST /calls/{id}/export` (the form on the call page, CSRF
//! checked by the guard like every form) answers with the call's evidence bundle
//! (`evidence::bundle`, the same one `callrec export` makes) as one zip, on a box and at the hub
//! (where the original comes from the archive, `hub::export`). Leads, auditors and admins only
//! (`access::EXPORTERS`); the call must be visible to the caller; every export is audited by the
//! bundle itself (who, call, excerpt) before a byte is sent.
//!
//! Memory stays bounded: the bundle is built in a private folder under the storage dir, zipped
//! into a file there, and the open zip is streamed after its folder is removed. This handler
//! must never hold the index's write connection across a request to the object store, and never
//! send a path or a store error's text to the browser (they are logged).

use super::api::visible_call_row;
use super::error::AppError;
use super::identity::Identity;
use super::state::St;
use crate::evidence::bundle::{self, ExportError, Options};
use crate::evidence::{key, zip};
use crate::hub::export as hub_export;
use crate::hub::HubError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use std::path::PathBuf;

/// The export form: an optional excerpt, seconds from the start of the call (both or neither).
#[derive(Debug, Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Folders under the storage dir where web exports are built; removed before the answer starts.
pub const WORK_DIR: &str = "export-tmp";

fn page_err(status: StatusCode, message: &str) -> AppError {
    AppError::page(status, message)
}

fn excerpt_of(f: &ExportForm) -> Result<Option<(f64, f64)>, AppError> {
    let (from, to) = (f.from.trim(), f.to.trim());
    if from.is_empty() && to.is_empty() {
        return Ok(None);
    }
    let num = |s: &str| s.parse::<f64>().ok();
    match (num(from), num(to)) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Err(page_err(
            StatusCode::BAD_REQUEST,
            "give both From and To in seconds from the start of the call (e.g. 12.5 and 40), or neither for the whole call",
        )),
    }
}

fn export_err(call_id: i64, e: ExportError) -> AppError {
    match e {
        ExportError::NoSuchCall(_) => {
            page_err(StatusCode::NOT_FOUND, &format!("no call {call_id}"))
        }
        ExportError::Range { message, .. } => page_err(StatusCode::BAD_REQUEST, &message),
        ExportError::NotFinal { status, .. } => page_err(
            StatusCode::CONFLICT,
            &format!("call {call_id} is still {status}; export it after it ends"),
        ),
        ExportError::NoHash(_) => page_err(
            StatusCode::CONFLICT,
            &format!("call {call_id} has no recording to export"),
        ),
        e @ (ExportError::Tampered { .. } | ExportError::Missing { .. }) => {
            tracing::error!("export of call {call_id} refused: {e}");
            page_err(
                StatusCode::CONFLICT,
                &format!("call {call_id}'s recording is missing or does not match its SHA-256: nothing was exported. An administrator should run `callrec verify --store` and keep the disk as it is"),
            )
        }
        e => {
            tracing::error!("export of call {call_id} failed: {e}");
            page_err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the export failed; it has been logged. Retry, and tell the administrator if it persists",
            )
        }
    }
}

fn hub_err(call_id: i64, e: HubError) -> AppError {
    tracing::error!("export of call {call_id} at the hub refused: {e}");
    match e {
        HubError::Refused(_) => page_err(
            StatusCode::CONFLICT,
            &format!("call {call_id}'s archived recording does not match what its box shipped: nothing was exported. An administrator should run `callrec archive verify`"),
        ),
        _ => page_err(
            StatusCode::BAD_GATEWAY,
            "the archive could not be read; retry, and tell the administrator if it persists",
        ),
    }
}

/// A private, new folder for one export: `<storage dir>/export-tmp/<random>`.
fn work_dir(storage_dir: &std::path::Path) -> Result<PathBuf, AppError> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).map_err(|e| {
        tracing::error!("export: no randomness: {e}");
        page_err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the export failed; retry",
        )
    })?;
    let dir = storage_dir.join(WORK_DIR).join(hex::encode(b));
    std::fs::create_dir_all(&dir).map_err(|e| {
        tracing::error!("export: {}: {e}", dir.display());
        page_err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the export failed; retry",
        )
    })?;
    Ok(dir)
}

/// `POST /calls/{id}/export`: the bundle as `call-<id>-evidence.zip`.
pub async fn export_zip(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(call_id): Path<i64>,
    form: axum::body::Bytes,
) -> Result<Response, AppError> {
    // Scope first: a call the caller cannot see does not exist for them, whatever the body.
    visible_call_row(&st, &id, call_id)
        .await
        .map_err(|e| e.with_html(true))?;
    let f: ExportForm = serde_urlencoded::from_bytes(&form).map_err(|_| {
        page_err(
            StatusCode::BAD_REQUEST,
            "send the export form (from, to) as application/x-www-form-urlencoded",
        )
    })?;
    let options = Options::new(false, excerpt_of(&f)?)
        .map_err(|e| page_err(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let work = work_dir(&st.cfg.storage.dir)?;
    let made = build(&st, &id, call_id, options, &work).await;
    let zipped = match made {
        Ok(z) => z,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    // Open, then unlink: the open file streams on; nothing is left once the answer is sent.
    let file = tokio::fs::File::open(&zipped.0).await;
    let _ = std::fs::remove_dir_all(&work);
    let file = file.map_err(|e| {
        export_err(
            call_id,
            ExportError::Io {
                path: zipped.0.display().to_string(),
                source: e,
            },
        )
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"call-{call_id}-evidence.zip\""),
            ),
            (header::CONTENT_LENGTH, zipped.1.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Fetches (at the hub), exports (audited) and zips; the zip's path and size.
async fn build(
    st: &St,
    id: &Identity,
    call_id: i64,
    options: Options,
    work: &std::path::Path,
) -> Result<(PathBuf, u64), AppError> {
    let looked = st
        .db
        .read_quick(move |c| hub_export::lookup(c, call_id).map_err(|e| hub_err(call_id, e)))
        .await?;
    // At the hub the original is fetched before the index's write connection is taken.
    let archived = match (&looked, &st.hub) {
        (Some(l), Some(remote)) => {
            let prefix = st.cfg.archive.as_ref().map_or("", |a| a.prefix.as_str());
            Some(
                hub_export::fetch(remote, prefix, l, work)
                    .await
                    .map_err(|e| hub_err(call_id, e))?,
            )
        }
        (Some(_), None) => {
            return Err(page_err(
                StatusCode::CONFLICT,
                "this call is in the archive, but this server has no archive configured",
            ))
        }
        (None, _) => None,
    };
    let storage_dir = st.cfg.storage.dir.clone();
    let box_id = st.cfg.box_.id.clone();
    let actor = id.who().name.to_owned();
    let out_dir = work.to_path_buf();
    let exported = st
        .db
        .write(move |conn| {
            let (k, _) = key::ensure(&storage_dir).map_err(|e| {
                tracing::error!("export: the signing key: {e}");
                page_err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the export failed: no signing key; tell the administrator",
                )
            })?;
            let x = bundle::Exporter {
                conn,
                storage_dir: &storage_dir,
                box_id: &box_id,
                key: &k,
                actor: &actor,
                out_dir: &out_dir,
                options,
                archived: archived.as_ref(),
            };
            bundle::export_call(&x, call_id).map_err(|e| export_err(call_id, e))
        })
        .await?;
    let folder = format!("call-{call_id}");
    let bundle_dir = PathBuf::from(&exported.dir);
    let to = work.join(format!("{folder}.zip"));
    let zipped = to.clone();
    let size = tokio::task::spawn_blocking(move || zip::zip_folder(&bundle_dir, &folder, &to))
        .await
        .map_err(|e| {
            export_err(
                call_id,
                ExportError::Io {
                    path: String::new(),
                    source: std::io::Error::other(e.to_string()),
                },
            )
        })?
        .map_err(|e| {
            export_err(
                call_id,
                ExportError::Io {
                    path: String::new(),
                    source: e,
                },
            )
        })?;
    Ok((zipped, size))
}
