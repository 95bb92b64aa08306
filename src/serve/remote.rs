//! Where hub calls' (`callrec hub`) audio and peaks come from: the object store, not this disk.
//! `stream` answers audio requests for them with the client's Range passed through as one
//! ranged GET (`stream::hub_audio`); this file finds a call's objects, fetches the peaks object,
//! and hands out the checked cached copy to handlers that read a whole file (WAV, metrics).
//!
//! This module must never read a path from the request, and never answer for a call that has no
//! `hub_calls` row (a call the archive does not hold).

use super::error::AppError;
use super::state::St;
use crate::hub::remote::Remote;
use crate::hub::HubError;
use crate::store::hub::HubObjects;
use crate::store::CallRow;
use axum::http::StatusCode;
use std::sync::Arc;

pub(super) fn store_failed(call_id: i64, e: &HubError) -> AppError {
    tracing::warn!(call_id, "hub: {e}");
    AppError::api(
        StatusCode::BAD_GATEWAY,
        &format!("the archive did not deliver the audio of call {call_id}: {e}"),
    )
}

/// The remote and the call's objects; 404 for a call the archive index does not hold.
pub(super) async fn objects(
    st: &St,
    call: &CallRow,
) -> Result<(Arc<Remote>, HubObjects), AppError> {
    let remote = st
        .hub
        .clone()
        .ok_or_else(|| AppError::not_found("not a hub"))?;
    let call_id = call.id;
    let o = st
        .db
        .read_quick(move |c| crate::store::hub::objects_of(c, call_id).map_err(AppError::from))
        .await?
        .ok_or_else(|| {
            AppError::not_found(&format!(
                "call {call_id} is not in the archive index; run callrec hub rebuild"
            ))
        })?;
    Ok((remote, o))
}

/// The call's audio as a checked local copy in the hub's cache (for WAV and metrics).
pub(super) async fn local_file(st: &St, call: &CallRow) -> Result<std::path::PathBuf, AppError> {
    let (remote, o) = objects(st, call).await?;
    remote
        .cached_file(&call.rel_path, &o)
        .await
        .map_err(|e| store_failed(call.id, &e))
}

/// The call's peaks: the shipped `.dat` object (checked against the sidecar), or computed from
/// the cached audio when the box shipped none.
pub(super) async fn peaks(st: &St, call: &CallRow) -> Result<Vec<u8>, AppError> {
    let (remote, o) = objects(st, call).await?;
    if let (Some(key), Some(sha), Some(bytes)) = (&o.peaks_key, &o.peaks_sha256, o.peaks_bytes) {
        return remote
            .whole(key, sha, bytes)
            .await
            .map_err(|e| store_failed(call.id, &e));
    }
    let path = local_file(st, call).await?;
    let rate_hz = u32::try_from(call.rate_hz).unwrap_or(16000);
    let call_id = call.id;
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        crate::dsp::peaks::from_reader(std::io::BufReader::new(file), rate_hz)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| AppError::not_found("computing the waveform failed"))?
    .map_err(|e| AppError::not_found(&format!("no waveform for call {call_id}: {e}")))
}
