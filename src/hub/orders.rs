//! The hub's half of orders (`archive::orders` has the protocol and the box's half): legal
//! holds, releases and erasures made at the hub, carried to every box holding a copy, and the
//! hub's own deletions from the archive.
//!
//! - **Holds** ([`place_hold`], [`release_hold`]): the hold goes into the hub's `legal_holds`
//!   (same four-eyes rules and triggers as on a box; the hub's admins), then one signed order
//!   per box: the box holding the call for a call hold, every box the hub knows for an agent or
//!   number hold. A release goes to the boxes the hold went to.
//! - **Object legal holds** ([`sync_object_holds`], in every [`round`]): the hub itself sets
//!   S3 legal hold ON on every version of the objects of each call a hold at the hub covers, so
//!   the archive copy is protected before any box is online, and OFF again at release for calls
//!   no other hold at the hub covers (a box re-asserts its own holds when it applies the
//!   release: `archive::lock::sync_holds`). Pending in `archive_hold_sync` until applied.
//! - **Publishing and acks** ([`round`]): orders not yet in the bucket are put there, and acks
//!   are read back and checked against the box's key (from its sidecars). `callrec hub` runs a
//!   round every `hub.poll_s`; the CLI runs one right after making an order.
//! - **Erasure** ([`erase`]): the calls with the number in the hub's index; refused whole under
//!   a legal hold, a call still recording, a COMPLIANCE-retained version (GDPR Art. 17(3)(b))
//!   or an object legal hold — before anything is deleted. Then the boxes are ordered to erase,
//!   every version of the calls' objects is deleted by the hub, the hub's rows are scrubbed,
//!   and after waiting (bounded) for the boxes' acks ONE signed receipt lists every copy
//!   removed: on each box (its ack), in the hub's index, and every archive version. A box that
//!   has not acked is `pending` in it; [`complete`] records the acks that came later.
//! - **Archive retention** ([`retention_run`]): the hub's job in a fleet (the boxes' store
//!   users may not delete); calls under a hold at the hub, an object legal hold or a
//!   retain-until date are kept.
//!
//! This module must never delete an object version under a hold or a COMPLIANCE date, never
//! publish an order that is not signed with the hub's key, and never delete a `calls` row
//! (a deleted call's row stays, as on a box, without its personal fields).

use super::HubError;
use crate::archive::lock::{self, LockError, RetentionOutcome};
use crate::archive::orders::{self as proto, What, ORDER_FORMAT};
use crate::archive::s3x::{S3Error, S3x};
use crate::clock::format_utc;
use crate::config::Config;
use crate::evidence::erasure::{self, BoxCopy, ErasureError};
use crate::evidence::key::{self, BoxKey};
use crate::store::archive::RemovedCall;
use crate::store::holds::{self, HoldError, Scope};
use crate::store::lifecycle::{self, Deletion, DeletionKind};
use crate::store::orders::{self as sql, NewHubOrder};
use crate::store::{hub as hubsql, retention, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;
use std::path::Path;

/// First field of the record `callrec erase --complete` writes.
pub const COMPLETION_FORMAT: &str = "callrec-erasure-completion-v1";

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    #[error("object store: {0}")]
    S3(#[from] S3Error),
    #[error("the hub key: {0}")]
    Key(String),
    #[error("hub call {0} is not in the hub's index")]
    NoSuchCall(i64),
    #[error("{path}: {detail}")]
    Receipt { path: String, detail: String },
}

/// The hub's signing key (`<storage dir>/keys/`, made on first use like a box's).
pub fn hub_key(cfg: &Config) -> Result<BoxKey, OrderError> {
    key::ensure(&cfg.storage.dir)
        .map(|(k, _)| k)
        .map_err(|e| OrderError::Key(e.to_string()))
}

fn s3_of(cfg: &Config) -> Result<S3x, OrderError> {
    let a = cfg
        .archive
        .as_ref()
        .ok_or(crate::archive::ArchiveError::NotConfigured)
        .map_err(HubError::from)?;
    Ok(crate::archive::s3x::from_config(a).map_err(HubError::from)?)
}

fn prefix(cfg: &Config) -> String {
    cfg.archive
        .as_ref()
        .map(|a| a.prefix.clone())
        .unwrap_or_default()
}

/// A new order id: 16 random bytes, hex.
fn new_order_id() -> String {
    let mut b = [0u8; 16];
    // A clock-based id if the OS has no randomness to give (ids only need to be unique here).
    if getrandom::fill(&mut b).is_err() {
        let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        b[..8].copy_from_slice(&t.to_be_bytes());
    }
    hex::encode(b)
}

/// Writes one order per `(box, what)` with one order id; returns the id.
fn issue(
    conn: &Connection,
    key: &BoxKey,
    prefix: &str,
    made_by: &str,
    now_utc: &str,
    per_box: &[(String, What)],
) -> Result<String, OrderError> {
    let order_id = new_order_id();
    for (box_id, what) in per_box {
        let (hub_hold_id, reference) = match what {
            What::Hold { hub_hold_id, .. } | What::Release { hub_hold_id, .. } => {
                (Some(*hub_hold_id), None)
            }
            What::Erase {
                request_reference, ..
            } => (None, Some(request_reference.as_str())),
        };
        sql::add_hub_order(
            conn,
            &NewHubOrder {
                order_id: &order_id,
                box_id,
                kind: what.kind(),
                hub_hold_id,
                request_reference: reference,
                made_by,
                made_at_utc: now_utc,
            },
            |seq| {
                let body = proto::Order {
                    format: ORDER_FORMAT.to_owned(),
                    seq,
                    order_id: order_id.clone(),
                    box_id: box_id.clone(),
                    made_by: made_by.to_owned(),
                    made_at_utc: now_utc.to_owned(),
                    what: what.clone(),
                };
                (
                    proto::order_key(prefix, box_id, seq, &order_id),
                    proto::seal(key, &body),
                )
            },
        )?;
    }
    Ok(order_id)
}

/// What one round did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Round {
    pub published: usize,
    pub acked: usize,
    /// Calls whose objects' S3 legal hold was set ON or OFF.
    pub object_holds: usize,
}

/// Brings the archive's object legal holds in line with the holds at the hub when they
/// changed since the last time (module docs); returns how many calls were set. Every call a
/// hold ever covered is visited (ON when a hold in force covers it, else OFF): holds are few,
/// and a PutObjectLegalHold that changes nothing is harmless. A failed request leaves the work
/// pending, so the next round tries again. With Object Lock off there is nothing to set.
pub fn sync_object_holds(conn: &Connection, cfg: &Config, s3: &S3x) -> Result<usize, OrderError> {
    let Some(seq) = crate::store::archive::hold_sync_due(conn)? else {
        return Ok(0);
    };
    let a = cfg
        .archive
        .as_ref()
        .ok_or(crate::archive::ArchiveError::NotConfigured)
        .map_err(HubError::from)?;
    if lock::resolve_mode(a, s3)?.is_none() {
        crate::store::archive::hold_synced(conn, seq)?;
        return Ok(0);
    }
    let all = holds::list(conn)?;
    let in_force: Vec<&holds::Hold> = all.iter().filter(|h| h.released_at_utc.is_none()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for h in &all {
        for c in hubsql::hold_candidates(conn, &h.scope)? {
            let (agent, number) = (c.agent.as_deref(), c.remote_number.as_deref());
            if !h.covers(c.call_id, agent, number) || !seen.insert(c.call_id) {
                continue;
            }
            let on = in_force.iter().any(|f| f.covers(c.call_id, agent, number));
            for v in lock::call_versions(s3, &c.audio_key)?
                .iter()
                .filter(|v| !v.delete_marker)
            {
                s3.put_legal_hold(&v.key, &v.version_id, on)?;
            }
            tracing::info!(
                call_id = c.call_id,
                legal_hold = if on { "ON" } else { "OFF" },
                "hub: object legal hold set"
            );
        }
    }
    crate::store::archive::hold_synced(conn, seq)?;
    Ok(seen.len())
}

/// Publishes the hub key and every order not yet in the bucket, then reads the acks there.
pub fn round(conn: &Connection, cfg: &Config, now_utc: &str) -> Result<Round, OrderError> {
    let mut r = Round::default();
    if crate::store::archive::hold_sync_due(conn)?.is_some() {
        // Orders are still published when the store refuses a legal hold (e.g. the hub's
        // store user lacks s3:PutObjectLegalHold): logged, tried again next round.
        match sync_object_holds(conn, cfg, &s3_of(cfg)?) {
            Ok(n) => r.object_holds = n,
            Err(e) => tracing::warn!("hub: object legal holds not brought in line yet: {e}"),
        }
    }
    let pending = sql::unpublished(conn)?;
    let unacked = sql::unacked(conn)?;
    if pending.is_empty() && unacked.is_empty() {
        return Ok(r);
    }
    let s3 = s3_of(cfg)?;
    let p = prefix(cfg);
    if !pending.is_empty() {
        let key = hub_key(cfg)?;
        s3.put(
            &proto::hub_key_object(&p),
            key.public_pem().as_bytes(),
            "application/x-pem-file",
        )?;
        for (seq, object_key, envelope) in pending {
            s3.put(&object_key, envelope.as_bytes(), "application/json")?;
            sql::mark_published(conn, seq, now_utc)?;
            r.published += 1;
        }
    }
    for o in sql::unacked(conn)? {
        let text = match s3.get_text(&proto::ack_key(&p, &o.box_id, &o.order_id)) {
            Ok(t) => t,
            Err(e) if e.status() == Some(404) => continue,
            Err(e) => return Err(e.into()),
        };
        match check_ack(conn, &o, &text) {
            Ok(()) => {
                sql::mark_acked(conn, o.seq, &text, now_utc)?;
                r.acked += 1;
            }
            Err(why) => tracing::error!(
                box_id = o.box_id,
                order_id = o.order_id,
                "orders: ack refused: {why}"
            ),
        }
    }
    Ok(r)
}

/// An ack is the box's (its key from its sidecars) and about this order.
fn check_ack(conn: &Connection, o: &sql::HubOrder, text: &str) -> Result<(), String> {
    let env: proto::Envelope =
        serde_json::from_str(text).map_err(|e| format!("not a signed envelope: {e}"))?;
    let keys = hubsql::box_keys(conn, &o.box_id).map_err(|e| e.to_string())?;
    let Some((fp, pem)) = keys
        .iter()
        .find(|(fp, _)| *fp == env.key_fingerprint_sha256)
    else {
        return Err(format!(
            "signed by key {}, which no sidecar of box {} named",
            env.key_fingerprint_sha256, o.box_id
        ));
    };
    let body = proto::open(text, fp, pem)?;
    let ack: proto::Ack = serde_json::from_str(&body).map_err(|e| format!("not an ack: {e}"))?;
    if ack.format != proto::ACK_FORMAT || ack.order_id != o.order_id || ack.box_id != o.box_id {
        return Err(format!(
            "an ack of order {} for box {}, not of {} for {}",
            ack.order_id, ack.box_id, o.order_id, o.box_id
        ));
    }
    Ok(())
}

/// A hold placed at the hub, and the order that carries it.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    pub hold_id: i64,
    pub order_id: Option<String>,
    pub boxes: Vec<String>,
}

/// Places a hold at the hub (`by` authenticated by the caller) and writes the orders for the
/// boxes ([`round`] publishes them).
pub fn place_hold(
    conn: &Connection,
    cfg: &Config,
    scope: &Scope,
    reason: &str,
    by: &str,
    now_utc: &str,
) -> Result<Placed, OrderError> {
    let per_box: Vec<(String, Scope)> = match scope {
        Scope::Call { call_id } => {
            let o = hubsql::objects_of(conn, *call_id)?.ok_or(OrderError::NoSuchCall(*call_id))?;
            vec![(
                o.box_id,
                Scope::Call {
                    call_id: o.box_call_id,
                },
            )]
        }
        _ => sql::known_boxes(conn)?
            .into_iter()
            .map(|b| (b, scope.clone()))
            .collect(),
    };
    let hold_id = holds::place(conn, scope, reason, by, now_utc)?;
    let orders: Vec<(String, What)> = per_box
        .into_iter()
        .map(|(b, scope)| {
            (
                b,
                What::Hold {
                    hub_hold_id: hold_id,
                    scope,
                    reason: reason.to_owned(),
                },
            )
        })
        .collect();
    let boxes = orders.iter().map(|(b, _)| b.clone()).collect();
    let order_id = if orders.is_empty() {
        None
    } else {
        let key = hub_key(cfg)?;
        Some(issue(conn, &key, &prefix(cfg), by, now_utc, &orders)?)
    };
    Ok(Placed {
        hold_id,
        order_id,
        boxes,
    })
}

/// Releases a hold at the hub (four eyes as on a box) and orders the boxes it went to.
pub fn release_hold(
    conn: &Connection,
    cfg: &Config,
    hold_id: i64,
    by: &str,
    reason: &str,
    now_utc: &str,
) -> Result<(holds::Hold, Placed), OrderError> {
    let h = holds::release(conn, hold_id, by, reason, now_utc)?;
    let orders: Vec<(String, What)> = sql::boxes_of_hold(conn, hold_id)?
        .into_iter()
        .map(|b| {
            (
                b,
                What::Release {
                    hub_hold_id: hold_id,
                    reason: reason.to_owned(),
                },
            )
        })
        .collect();
    let boxes = orders.iter().map(|(b, _)| b.clone()).collect();
    let order_id = if orders.is_empty() {
        None
    } else {
        let key = hub_key(cfg)?;
        Some(issue(conn, &key, &prefix(cfg), by, now_utc, &orders)?)
    };
    Ok((
        h,
        Placed {
            hold_id,
            order_id,
            boxes,
        },
    ))
}

/// One round now; a failure is logged, and the hub's own rounds publish the orders later.
/// (The CLI calls it after an order; the web service leaves it to `callrec hub`'s rounds, so
/// that no request to the store runs on the index's writer thread.)
pub fn publish_now(conn: &Connection, cfg: &Config, now_utc: &str) {
    if let Err(e) = round(conn, cfg, now_utc) {
        tracing::warn!("orders: not published yet (callrec hub publishes them): {e}");
    }
}

/// The hub's erasure: the receipt (signed, stored) and where its box copies stand.
pub struct HubErased {
    pub erased: erasure::Erased,
    pub pending_boxes: Vec<String>,
}

/// The hub's erasure (module docs). `wait_s` bounds the wait for the boxes' acks.
pub fn erase(
    cfg: &Config,
    conn: &Connection,
    key: &BoxKey,
    req: &erasure::Request,
    now: DateTime<Utc>,
    wait_s: u64,
) -> Result<HubErased, OrderError> {
    erasure::check_reference(req.number, req.reference)?;
    let found = erasure::find(conn, req.number)?;
    erasure::refuse_blocked(&found)?;
    let s3 = s3_of(cfg)?;
    // Every copy: (hub id, box, box call id, versions); checked before anything is touched.
    let mut todo = Vec::new();
    for id in found.live.iter().chain(&found.already_deleted) {
        let Some(o) = hubsql::objects_of(conn, *id)? else {
            continue;
        };
        let versions = lock::call_versions(&s3, &o.audio_key)?;
        lock::check_erasable(&s3, *id, &versions, now)?;
        todo.push((*id, o.box_id, o.box_call_id, versions));
    }
    let mut per_box: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (_, b, bc, _) in &todo {
        per_box.entry(b.clone()).or_default().push(*bc);
    }
    let orders: Vec<(String, What)> = per_box
        .iter()
        .map(|(b, ids)| {
            (
                b.clone(),
                What::Erase {
                    request_reference: req.reference.to_owned(),
                    box_call_ids: ids.clone(),
                },
            )
        })
        .collect();
    let order_id = if orders.is_empty() {
        None
    } else {
        Some(issue(
            conn,
            key,
            &prefix(cfg),
            req.actor,
            req.now_utc,
            &orders,
        )?)
    };
    publish_now(conn, cfg, req.now_utc);
    let mut removed = Vec::new();
    for (id, _, _, versions) in &todo {
        if versions.is_empty() {
            continue;
        }
        removed.push(RemovedCall {
            call_id: *id,
            versions: lock::delete_versions(&s3, versions, true)?,
        });
    }
    if !removed.is_empty() {
        lock::record_removal(
            conn,
            cfg,
            key,
            "erasure",
            &format!("erasure request {}", req.reference),
            req.actor,
            req.now_utc,
            &removed,
            &[],
        )?;
    }
    let copies = match &order_id {
        None => Vec::new(),
        Some(oid) => wait_for_acks(conn, cfg, oid, wait_s)?,
    };
    let pending_boxes = copies
        .iter()
        .filter(|c| c.status == "pending")
        .map(|c| c.box_id.clone())
        .collect();
    let erased = erasure::erase_with_copies(
        conn,
        &cfg.storage.dir,
        key,
        &cfg.box_.id,
        req,
        &removed,
        &copies,
    )?;
    Ok(HubErased {
        erased,
        pending_boxes,
    })
}

/// Rounds until every box acked order `order_id` or `wait_s` passed; the copies as they stand.
fn wait_for_acks(
    conn: &Connection,
    cfg: &Config,
    order_id: &str,
    wait_s: u64,
) -> Result<Vec<BoxCopy>, OrderError> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
    loop {
        if let Err(e) = round(conn, cfg, &format_utc(Utc::now())) {
            tracing::warn!("orders: {e}");
        }
        let rows = sql::hub_order(conn, order_id)?;
        if rows.iter().all(|r| r.acked_at_utc.is_some()) || std::time::Instant::now() >= until {
            return Ok(rows.iter().map(copy_of).collect());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A box's copy as its order row stands.
fn copy_of(r: &sql::HubOrder) -> BoxCopy {
    let env: Option<proto::Envelope> = r
        .ack_json
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let ack: Option<serde_json::Value> = env
        .as_ref()
        .and_then(|e| serde_json::from_str(&e.body).ok());
    let status = match ack.as_ref().and_then(|a| a.get("outcome")?.as_str()) {
        None => "pending",
        Some("applied") => "removed",
        Some(_) => "refused",
    };
    let box_call_ids = serde_json::from_str::<proto::Envelope>(&r.envelope_json)
        .ok()
        .and_then(|e| serde_json::from_str::<proto::Order>(&e.body).ok())
        .map(|o| match o.what {
            What::Erase { box_call_ids, .. } => box_call_ids,
            _ => Vec::new(),
        })
        .unwrap_or_default();
    BoxCopy {
        box_id: r.box_id.clone(),
        box_call_ids,
        order_id: r.order_id.clone(),
        status: status.to_owned(),
        ack,
        ack_signature_hex: env.map(|e| e.signature_hex),
    }
}

/// What `callrec erase --complete` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub format: &'static str,
    /// SHA-256 of the receipt.json this completes.
    pub receipt_sha256: String,
    pub request_reference: String,
    pub completed_at_utc: String,
    pub box_copies: Vec<BoxCopy>,
    pub still_pending: Vec<String>,
    pub signature: &'static str,
}

/// `callrec erase --complete DIR` (and the web UI's "complete"): reads DIR/receipt.json, waits
/// (bounded) for the acks of its pending boxes, and writes DIR/completion.json and
/// completion.sig (signed with the hub key); audited with `actor`.
pub fn complete(
    cfg: &Config,
    conn: &Connection,
    key: &BoxKey,
    dir: &Path,
    wait_s: u64,
    actor: &str,
) -> Result<Completion, OrderError> {
    let bad = |p: &Path, detail: String| OrderError::Receipt {
        path: p.display().to_string(),
        detail,
    };
    let rp = dir.join("receipt.json");
    let bytes = std::fs::read(&rp).map_err(|e| bad(&rp, e.to_string()))?;
    let r: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(&rp, e.to_string()))?;
    let copies = r
        .get("box_copies")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad(&rp, "not a hub erasure receipt (no box_copies)".into()))?;
    let mut order_ids: Vec<String> = copies
        .iter()
        .filter_map(|c| c.get("order_id")?.as_str().map(str::to_owned))
        .collect();
    order_ids.dedup();
    let mut now_copies = Vec::new();
    for oid in &order_ids {
        now_copies.extend(wait_for_acks(conn, cfg, oid, wait_s)?);
    }
    let still_pending = now_copies
        .iter()
        .filter(|c| c.status == "pending")
        .map(|c| c.box_id.clone())
        .collect();
    let c = Completion {
        format: COMPLETION_FORMAT,
        receipt_sha256: crate::hash::sha256_hex(&bytes),
        request_reference: r
            .get("request_reference")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        completed_at_utc: format_utc(Utc::now()),
        box_copies: now_copies,
        still_pending,
        signature: "Ed25519 (RFC 8032) over the exact bytes of completion.json, in completion.sig (64 raw bytes); public key in box.pub",
    };
    let mut json = serde_json::to_vec_pretty(&c).unwrap_or_default();
    json.push(b'\n');
    let sig = key.sign(&json);
    for (name, b) in [
        ("completion.json", json.as_slice()),
        ("completion.sig", sig.as_slice()),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, b).map_err(|e| bad(&p, e.to_string()))?;
    }
    crate::store::audit::append(
        conn,
        &crate::store::audit::Event {
            actor,
            action: "erasure.complete",
            call_id: None,
            detail: serde_json::json!({"request_reference": c.request_reference,
                "still_pending": c.still_pending}),
            ip: None,
        },
    )?;
    Ok(c)
}

/// `callrec archive retention run` at the hub (module docs).
pub fn retention_run(
    cfg: &Config,
    conn: &Connection,
    key: &BoxKey,
    actor: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<RetentionOutcome, OrderError> {
    let a = cfg
        .archive
        .as_ref()
        .ok_or(crate::archive::ArchiveError::NotConfigured)
        .map_err(HubError::from)?;
    let s3 = s3_of(cfg)?;
    let plan = retention::hub_archive_plan(conn, &cfg.retention, a.keep_days, now)?;
    let now_utc = format_utc(now);
    let mut out = RetentionOutcome::start(&plan, &now_utc, dry_run, |hold| {
        format!("on legal hold #{hold} at the hub")
    });
    let mut gone = Vec::new();
    for d in &plan.delete {
        let Some(o) = hubsql::objects_of(conn, d.call_id)? else {
            continue;
        };
        if out.remove_due(&s3, &o.audio_key, d, now)? {
            gone.push(d.call_id);
        }
    }
    if !dry_run && !out.removed.is_empty() {
        let reason = "archive retention at the hub: keep period passed";
        // The hub's rows follow the objects: deleted (cache files too), kept as history.
        let d = Deletion {
            kind: DeletionKind::Retention,
            reason,
            actor,
            now_utc: &now_utc,
        };
        lifecycle::mark_garbage(conn, &gone, &d).map_err(ErasureError::from)?;
        lifecycle::finish_garbage(conn, &cfg.storage.dir, &now_utc).map_err(ErasureError::from)?;
        out.removal_id = Some(lock::record_removal(
            conn,
            cfg,
            key,
            "retention",
            reason,
            actor,
            &now_utc,
            &out.removed,
            &out.kept,
        )?);
    }
    Ok(out)
}
