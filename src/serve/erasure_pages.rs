//! Erasure (GDPR Art. 17) in the web UI (`/admin/erasure`, admins only; issue 13 item 4): the
//! list of erasures carried out, the form that asks for one (the customer's number, the
//! request's ticket, the admin's password typed again), the result page with the signed receipt
//! to download (`receipt.json`, `receipt.sig`, `box.pub`: the files `callrec erase --out`
//! writes, checked with the same OpenSSL command), and at the fleet's hub the boxes still
//! pending and a "complete" action (`callrec erase --complete`) once they have acked.
//!
//! The erasure is the CLI's, through the same functions: `archive::lock::erase` on a box (the
//! archived versions too when `[archive]` is set), `hub::orders::erase` at the hub (orders to
//! the boxes, every archive version, receipt v3). They refuse a call on legal hold, one still
//! recording, or a COMPLIANCE-retained object (409 with their reason) before anything is
//! deleted, and audit every call erased under the admin's name. Like the CLI, erasure needs one
//! admin (no second person); a hold release is what needs two.
//!
//! This module must never erase without the acting admin's password checked in the same
//! request, never decide a refusal itself, and never run an erasure on the async runtime or the
//! server's index writer: an erasure makes requests to the object store and at the hub waits
//! for the boxes' acks, so it runs in `spawn_blocking` on a connection of its own, whose writes
//! are each short transactions (none spans a request to the store).

use super::db::DbError;
use super::error::AppError;
use super::html::{esc, page};
use super::identity::Identity;
use super::list_page::{list_page, ListPage};
use super::state::St;
use crate::archive::lock::LockError;
use crate::config::Config;
use crate::evidence::erasure::{self, ErasureError};
use crate::hub::orders::OrderError;
use crate::store::lifecycle::{self, LifecycleError};
use crate::store::users::{self, UserError};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use std::collections::HashMap;
use std::path::PathBuf;

/// The longest the hub waits for the boxes' acks within one request (the form's default is
/// [`DEFAULT_WAIT_S`]); a box that has not acked by then is pending, and "complete" records it
/// later.
const MAX_WAIT_S: u64 = 60;
const DEFAULT_WAIT_S: u64 = 20;

/// The files a receipt's page offers, as `callrec erase --out` and `--complete` name them.
const FILES: [&str; 5] = [
    "receipt.json",
    "receipt.sig",
    "box.pub",
    "completion.json",
    "completion.sig",
];

/// Where a web erasure's receipt folder is kept: `<storage>/erasures/<deletion id>/` (what
/// `callrec erase --out` would have written; the hub's "complete" writes its record beside it).
fn folder(cfg: &Config, deletion_id: i64) -> PathBuf {
    cfg.storage
        .dir
        .join("erasures")
        .join(deletion_id.to_string())
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default()
}

fn wait_s(f: &HashMap<String, String>) -> u64 {
    field(f, "wait_s")
        .parse()
        .unwrap_or(DEFAULT_WAIT_S)
        .min(MAX_WAIT_S)
}

fn refused(status: StatusCode, e: impl std::fmt::Display) -> AppError {
    AppError::page(status, &e.to_string())
}

fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!("erasure: {e}");
    AppError::page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; it has been logged (journalctl -u callrec). Nothing was erased unless the erasure list shows it",
    )
}

fn erasure_error(e: ErasureError) -> AppError {
    match e {
        ErasureError::Held { .. }
        | ErasureError::Recording(_)
        | ErasureError::Lifecycle(LifecycleError::Held { .. })
        | ErasureError::Lifecycle(LifecycleError::Recording(_)) => refused(StatusCode::CONFLICT, e),
        ErasureError::ShortNumber(_) | ErasureError::NumberInReference => {
            refused(StatusCode::BAD_REQUEST, e)
        }
        ErasureError::Store(s) | ErasureError::Lifecycle(LifecycleError::Store(s)) => {
            AppError::from(s).with_html(true)
        }
        other => internal(other),
    }
}

fn lock_error(e: LockError) -> AppError {
    match e {
        LockError::Compliance { .. } | LockError::ObjectHeld { .. } => {
            refused(StatusCode::CONFLICT, e)
        }
        LockError::Erasure(e) => erasure_error(e),
        LockError::S3(_) | LockError::Archive(_) | LockError::BucketNotLocked { .. } => {
            refused(StatusCode::BAD_GATEWAY, e)
        }
        LockError::Store(s) => AppError::from(s).with_html(true),
        other => internal(other),
    }
}

fn order_error(e: OrderError) -> AppError {
    match e {
        OrderError::Erasure(e) => erasure_error(e),
        OrderError::Lock(e) => lock_error(e),
        OrderError::S3(_) | OrderError::Hub(_) => refused(StatusCode::BAD_GATEWAY, e),
        OrderError::Store(s) => AppError::from(s).with_html(true),
        other => internal(other),
    }
}

/// The acting admin's password, typed again on the form.
fn check_password(c: &rusqlite::Connection, id: &Identity, password: &str) -> Result<(), AppError> {
    match users::authenticate_admin(c, &id.actor, password) {
        Ok(_) => Ok(()),
        Err(UserError::Store(s)) => Err(AppError::from(s).with_html(true)),
        Err(_) => Err(AppError::page(
            StatusCode::FORBIDDEN,
            "wrong password: type your own password again to carry out an erasure",
        )),
    }
}

/// Runs `f` in the blocking pool on a connection of its own (module docs).
async fn on_own_connection<T: Send + 'static>(
    cfg: &Config,
    f: impl FnOnce(&Config, &rusqlite::Connection) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_rw(&cfg.db_path()).map_err(AppError::from)?;
        f(&cfg, &conn)
    })
    .await
    .unwrap_or_else(|_| Err(AppError::from(DbError::Panicked)))
}

pub async fn list(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
) -> Result<Html<String>, AppError> {
    let row = |e: &lifecycle::ErasureRecord| {
        format!(
            r#"<tr><td><a href="/admin/erasure/{d}">#{d}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&e.reason),
            esc(&e.created_at_utc),
            esc(&e.requested_by),
            e.calls,
            d = e.deletion_id
        )
    };
    let fleet = if crate::hub::is_hub(&st.cfg) {
        format!(
            r#"<p>This is the fleet's hub: the boxes holding a copy are ordered to erase it, the hub deletes every version in the archive, and the receipt lists each box's copy. A box that has not acked within the wait below is listed as pending; complete the record from the receipt's page once it has.</p>
<label>Wait for the boxes' acks (s, at most {MAX_WAIT_S}) <input name="wait_s" type="number" min="0" max="{MAX_WAIT_S}" value="{DEFAULT_WAIT_S}"></label>"#
        )
    } else {
        String::new()
    };
    let intro = format!(
        "\n<p>Erases every recording of one customer's number (GDPR Art. 17): the audio, peaks and transcript, the number and CTI ids in the index{}; a signed receipt lists what was removed and kept. A call on legal hold, still recording, or retained by the archive in COMPLIANCE mode refuses the whole request, and nothing is erased.</p>",
        if st.cfg.archive.is_some() {
            ", and every version of its objects in the archive"
        } else {
            ""
        }
    );
    let form_fields = format!(
        r#"<label>Customer's number <input name="number" required autocomplete="off"></label>
<label>Request ticket or case id (not the number) <input name="request" required></label>
{fleet}"#
    );
    let p = ListPage {
        title: "Erasure requests",
        intro: &intro,
        headers: &["Receipt", "Request", "Carried out", "By", "Recordings"],
        form_heading: "Carry out a request",
        form_action: "/admin/erasure",
        form_fields: &form_fields,
        form_button: "Erase",
        outro: "",
    };
    list_page(&st, &id, lifecycle::erasures, row, p).await
}

pub async fn erase(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Redirect, AppError> {
    let (number, reference) = (field(&f, "number"), field(&f, "request"));
    if number.is_empty() || reference.is_empty() {
        return Err(AppError::page(
            StatusCode::BAD_REQUEST,
            "give the customer's number and the request's ticket or case id",
        ));
    }
    let password = f.get("password").cloned().unwrap_or_default();
    let wait_s = wait_s(&f);
    let (deletion_id, wal_emptied) = on_own_connection(&st.cfg, move |cfg, conn| {
        check_password(conn, &id, &password)?;
        let (key, _) = crate::evidence::key::ensure(&cfg.storage.dir).map_err(internal)?;
        let now = chrono::Utc::now();
        let now_utc = crate::clock::format_utc(now);
        let req = erasure::Request {
            number: &number,
            reference: &reference,
            actor: &id.actor,
            now_utc: &now_utc,
        };
        let e = if crate::hub::is_hub(cfg) {
            crate::hub::orders::erase(cfg, conn, &key, &req, now, wait_s)
                .map_err(order_error)?
                .erased
        } else {
            crate::archive::lock::erase(cfg, conn, &key, &req, now).map_err(lock_error)?
        };
        let deletion_id = e.receipt.deletion_id;
        erasure::write_receipt(&folder(cfg, deletion_id), &e, &key).map_err(internal)?;
        Ok((deletion_id, e.wal_emptied))
    })
    .await?;
    Ok(Redirect::to(&format!(
        "/admin/erasure/{deletion_id}{}",
        if wal_emptied { "" } else { "?wal=kept" }
    )))
}

/// One box's copy as a receipt or completion lists it.
fn copies_table(copies: &[serde_json::Value]) -> String {
    let rows: String = copies
        .iter()
        .map(|c| {
            let s = |k: &str| c.get(k).map(|v| v.to_string()).unwrap_or_default();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(c.get("box_id").and_then(|v| v.as_str()).unwrap_or("?")),
                esc(&s("box_call_ids")),
                esc(c.get("status").and_then(|v| v.as_str()).unwrap_or("?"))
            )
        })
        .collect();
    format!(
        r#"<table class="results"><thead><tr><th>Box</th><th>Its calls</th><th>Copy</th></tr></thead><tbody>{rows}</tbody></table>"#
    )
}

fn strings(v: &serde_json::Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn show(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(deletion_id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let (json, _) = receipt(&st, deletion_id).await?;
    let r: serde_json::Value = serde_json::from_str(&json).map_err(internal)?;
    let completion: Option<serde_json::Value> =
        tokio::fs::read(folder(&st.cfg, deletion_id).join("completion.json"))
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    let ids = |k: &str| -> Vec<i64> {
        r.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_i64().or_else(|| x.get("call_id")?.as_i64()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let archived: usize = r
        .get("archive_removed")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|c| {
                    c.get("versions")
                        .and_then(|v| v.as_array())
                        .map_or(0, Vec::len)
                })
                .sum()
        })
        .unwrap_or(0);
    let text = |k: &str| esc(r.get(k).and_then(|v| v.as_str()).unwrap_or_default());
    let mut body = format!(
        r#"<main><h1>Erasure #{deletion_id}</h1>
<p>Request {reference}, carried out by {by} at {at}: deleted the recordings of call(s) {deleted:?}; scrubbed {scrubbed} already deleted call row(s); removed {archived} object version(s) from the archive.</p>"#,
        reference = text("request_reference"),
        by = text("requested_by"),
        at = text("executed_at_utc"),
        deleted = ids("deleted_recordings"),
        scrubbed = ids("scrubbed_rows").len(),
    );
    if q.get("wal").map(String::as_str) == Some("kept") {
        body.push_str("<p class=\"warn\">The index's write-ahead log could not be emptied within 10 s (another process held a long read): it keeps old copies of the erased rows until the next checkpoint. Stop <code>callrec serve</code> for a moment, or run <code>sqlite3 callrec.db 'PRAGMA wal_checkpoint(TRUNCATE)'</code> when nothing reads the index.</p>");
    }
    let copies = r
        .get("box_copies")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let pending = match &completion {
        Some(c) => strings(c, "still_pending"),
        None => copies
            .iter()
            .filter(|c| c.get("status").and_then(|s| s.as_str()) == Some("pending"))
            .filter_map(|c| c.get("box_id")?.as_str().map(str::to_owned))
            .collect(),
    };
    if !copies.is_empty() {
        body.push_str("<h2>Copies on the boxes (receipt)</h2>");
        body.push_str(&copies_table(&copies));
    }
    if let Some(c) = &completion {
        body.push_str(&format!(
            "<h2>Completion ({})</h2>",
            esc(c
                .get("completed_at_utc")
                .and_then(|v| v.as_str())
                .unwrap_or_default())
        ));
        if let Some(a) = c.get("box_copies").and_then(|v| v.as_array()) {
            body.push_str(&copies_table(a));
        }
    }
    let have: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| !f.starts_with("completion") || completion.is_some())
        .collect();
    let links: String = have
        .iter()
        .map(|f| format!(r#"<li><a href="/admin/erasure/{deletion_id}/{f}" download>{f}</a></li>"#))
        .collect();
    body.push_str(&format!(
        "<h2>Signed receipt</h2><ul>{links}</ul><p>Check it in a folder holding these files with:</p><pre>{}</pre>",
        esc(erasure::verify_command())
    ));
    if completion.is_some() {
        body.push_str("<pre>openssl pkeyutl -verify -pubin -inkey box.pub -rawin -in completion.json -sigfile completion.sig</pre>");
    }
    if !pending.is_empty() {
        body.push_str(&format!(
            r#"<h2>Pending</h2><p>Box(es) {} have not acked the erasure order yet; they apply it when they are online. Then complete the record (a signed completion.json beside the receipt):</p>
<form class="filters" method="post" action="/admin/erasure/{deletion_id}/complete"><input type="hidden" name="csrf" value="{}">
<label>Wait for the acks (s, at most {MAX_WAIT_S}) <input name="wait_s" type="number" min="0" max="{MAX_WAIT_S}" value="{DEFAULT_WAIT_S}"></label>
<label>Your password <input type="password" name="password" required autocomplete="current-password"></label>
<button type="submit">Complete</button></form>"#,
            esc(&pending.join(", ")),
            esc(id.csrf().unwrap_or_default())
        ));
    }
    body.push_str("<p><a href=\"/admin/erasure\">All erasure requests</a></p></main>");
    Ok(Html(page(
        Some(&id),
        &format!("Erasure #{deletion_id}"),
        &body,
    )))
}

/// One file of a receipt's folder: the receipt from the index (the bytes signed and stored),
/// the box key's public half, the completion record from the folder.
pub async fn file(
    State(st): State<St>,
    Path((deletion_id, name)): Path<(i64, String)>,
) -> Result<Response, AppError> {
    let Some(name) = FILES.iter().copied().find(|f| *f == name) else {
        return Err(AppError::page(
            StatusCode::NOT_FOUND,
            "no such receipt file",
        ));
    };
    let (json, sig_hex) = receipt(&st, deletion_id).await?;
    let bytes = match name {
        "receipt.json" => json.into_bytes(),
        "receipt.sig" => hex::decode(&sig_hex).map_err(internal)?,
        "box.pub" => crate::evidence::key::load(&st.cfg.storage.dir)
            .map_err(internal)?
            .public_pem()
            .as_bytes()
            .to_vec(),
        _ => tokio::fs::read(folder(&st.cfg, deletion_id).join(name)).await.map_err(|_| {
            AppError::page(
                StatusCode::NOT_FOUND,
                "this erasure has no completion record (only a hub erasure that waited for its boxes has one)",
            )
        })?,
    };
    let ctype = if name.ends_with(".json") {
        "application/json"
    } else if name.ends_with(".pub") {
        "application/x-pem-file"
    } else {
        "application/octet-stream"
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// The hub's "complete" (`callrec erase --complete`): the acks that came since, signed.
pub async fn complete(
    State(st): State<St>,
    Extension(id): Extension<Identity>,
    Path(deletion_id): Path<i64>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Redirect, AppError> {
    if !crate::hub::is_hub(&st.cfg) {
        return Err(AppError::page(
            StatusCode::NOT_FOUND,
            "only an erasure made at the fleet's hub has boxes to complete",
        ));
    }
    let password = f.get("password").cloned().unwrap_or_default();
    let wait_s = wait_s(&f);
    on_own_connection(&st.cfg, move |cfg, conn| {
        check_password(conn, &id, &password)?;
        let Some((json, sig_hex)) =
            lifecycle::erasure_receipt(conn, deletion_id).map_err(AppError::from)?
        else {
            return Err(AppError::page(
                StatusCode::NOT_FOUND,
                &format!("no erasure receipt #{deletion_id}"),
            ));
        };
        let key = crate::hub::orders::hub_key(cfg).map_err(internal)?;
        // An erasure made with the CLI has no folder here: its receipt is the stored one.
        let dir = folder(cfg, deletion_id);
        if !dir.join("receipt.json").exists() {
            let sig = hex::decode(&sig_hex).map_err(internal)?;
            std::fs::create_dir_all(&dir).map_err(internal)?;
            for (name, bytes) in [
                ("receipt.json", json.as_bytes()),
                ("receipt.sig", sig.as_slice()),
                ("box.pub", key.public_pem().as_bytes()),
            ] {
                std::fs::write(dir.join(name), bytes).map_err(internal)?;
            }
        }
        crate::hub::orders::complete(cfg, conn, &key, &dir, wait_s, &id.actor)
            .map_err(order_error)?;
        Ok(())
    })
    .await?;
    Ok(Redirect::to(&format!("/admin/erasure/{deletion_id}")))
}

/// The erasure's signed receipt (JSON, signature hex) from the index, or a 404 page.
async fn receipt(st: &St, deletion_id: i64) -> Result<(String, String), AppError> {
    st.db
        .read(move |c| lifecycle::erasure_receipt(c, deletion_id).map_err(AppError::from))
        .await?
        .ok_or_else(|| {
            AppError::page(
                StatusCode::NOT_FOUND,
                &format!("no erasure receipt #{deletion_id}"),
            )
        })
}
